//! The scene the reader's tests read: a real account made by `account::init` on a local
//! store with the embedded key service, written through the volume as a device writes,
//! and an [`AccountAccess`] over that same service with a witness in memory (what the
//! key service's database holds for a real server).

use super::{Drive, ReadError};
use crate::account::{InitOptions, Unlocked, init, unlock};
use crate::crypto::SecretKey;
use crate::format::names;
use crate::home::Home;
use crate::keys::Passcode;
use crate::keyservice::{EmbeddedKeyService, ServiceKeys};
use crate::volume::{
    Category, HeadSigner, HeadWitness, NewNode, ROOT_INO, VolError, VolumeOptions, WitnessError,
};
use crate::web::access::{AccessError, AccountAccess};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Heads seen, in memory; never lowered.
#[derive(Default)]
pub(super) struct MemWitness(Mutex<HashMap<u32, (u64, [u8; 32])>>);

impl HeadWitness for MemWitness {
    fn seen(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        Ok(self.0.lock().unwrap().get(&category).copied())
    }
    fn record(&self, category: u32, counter: u64, hash: [u8; 32]) -> Result<(), WitnessError> {
        let mut m = self.0.lock().unwrap();
        if m.get(&category).is_none_or(|(n, _)| *n <= counter) {
            m.insert(category, (counter, hash));
        }
        Ok(())
    }
}

/// The key service's side of one account, as a test stands it in.
pub(super) struct TestAccess {
    pub service: EmbeddedKeyService,
    trusted: Mutex<(Vec<u8>, u64)>,
    /// The counters passed to `advance_manifest`, in order.
    pub advanced: Mutex<Vec<u64>>,
    witness: Arc<MemWitness>,
}

impl AccountAccess for TestAccess {
    fn unwrap_service(&self, ctx: &[u8], wrapped: &[u8]) -> Result<SecretKey, AccessError> {
        // The embedded service takes a typed context: rebuild it from the bytes (category
        // at 9..13, version at 21..29) and check it is the same context.
        let bad = || AccessError::Unwrap("not a category key context".into());
        let cat = u32::from_le_bytes(ctx.get(9..13).ok_or_else(bad)?.try_into().unwrap());
        let v = u64::from_le_bytes(ctx.get(21..29).ok_or_else(bad)?.try_into().unwrap());
        let c = crate::keys::category_key_context(cat, v as u32);
        if c.to_bytes()[..] != *ctx {
            return Err(bad());
        }
        self.service
            .unwrap(c, wrapped, "test key")
            .map_err(|e| AccessError::Unwrap(e.to_string()))
    }
    fn trusted_manifest(&self) -> Result<Vec<u8>, AccessError> {
        Ok(self.trusted.lock().unwrap().0.clone())
    }
    fn advance_manifest(&self, obj: &[u8], counter: u64) -> Result<(), AccessError> {
        self.advanced.lock().unwrap().push(counter);
        let mut t = self.trusted.lock().unwrap();
        if counter > t.1 {
            *t = (obj.to_vec(), counter);
        }
        Ok(())
    }
    fn witness(&self) -> Arc<dyn HeadWitness> {
        self.witness.clone()
    }
}

/// An account with one device, and the server's view of it.
pub(super) struct Scene {
    pub acct: Unlocked,
    pub access: Arc<TestAccess>,
    _dir: tempfile::TempDir,
}

pub(super) fn file_node() -> NewNode<'static> {
    NewNode {
        mode: libc::S_IFREG | 0o644,
        rdev: 0,
        uid: 0,
        gid: 0,
        target: None,
        umask: 0,
        inherit_acl: true,
    }
}

impl Scene {
    /// A new account whose manifest the server trusts as it is now (`web on`).
    pub fn new() -> Scene {
        crate::keys::floor::allow_insecure_test_kdf();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("home");
        let passcode = Passcode::new("correct horse".into());
        let opts = InitOptions {
            store_url: None,
            kdf: crate::keys::floor::INSECURE_TEST_FLOOR,
            device_name: "laptop".into(),
            server: None,
        };
        init(&Home::new(root.clone()), &passcode, opts).unwrap();
        let acct = unlock(Home::new(root), &passcode).unwrap();
        let obj = acct.store.get(names::MANIFEST).unwrap();
        let access = Arc::new(TestAccess {
            service: EmbeddedKeyService::open(&acct.home.keyservice_dir()).unwrap(),
            trusted: Mutex::new((obj, acct.manifest().counter)),
            advanced: Mutex::new(Vec::new()),
            witness: Arc::new(MemWitness::default()),
        });
        Scene {
            acct,
            access,
            _dir: dir,
        }
    }

    pub fn drive(&self) -> Result<Drive, ReadError> {
        Drive::open(self.acct.store.clone(), self.access.clone())
    }

    pub fn id(&self, name: &str) -> u32 {
        self.acct.table().find(name).unwrap().id
    }

    /// Category `name` as this device opens it, its heads signed by `heads` (None: by
    /// this device).
    pub fn category(&self, name: &str, heads: Option<Arc<dyn HeadSigner>>) -> Arc<Category> {
        let setup = self
            .acct
            .category_setups()
            .into_iter()
            .find(|(e, _)| e.name == name)
            .unwrap()
            .1
            .unwrap();
        Category::open(
            setup,
            self.acct.store.clone(),
            Arc::new(crate::cache::ChunkCache::new(1 << 20)),
            self.acct.seen.clone(),
            VolumeOptions::offline(
                heads.unwrap_or_else(|| self.acct.head_signer()),
                self.acct.device_slot(),
            ),
        )
    }

    /// Writes `data` at `path` in category `name` (folders made as needed) and commits.
    pub fn write(&self, name: &str, path: &[&str], data: &[u8]) {
        let c = self.category(name, None);
        write_in(&c, path, data);
    }
}

/// Writes `data` at `path` in `c` (folders made as needed, an existing file replaced)
/// and commits.
pub(super) fn write_in(c: &Category, path: &[&str], data: &[u8]) {
    let (file, dirs) = path.split_last().unwrap();
    let mut dir = ROOT_INO;
    for d in dirs {
        dir = match c.lookup(dir, d.as_bytes()) {
            Ok(n) => n.ino,
            Err(VolError::NotFound) => {
                let mut n = file_node();
                n.mode = libc::S_IFDIR | 0o755;
                c.create_node(dir, d.as_bytes(), n).unwrap().ino
            }
            Err(e) => panic!("{e}"),
        };
    }
    let ino = match c.lookup(dir, file.as_bytes()) {
        Ok(n) => n.ino,
        Err(_) => {
            c.create_node(dir, file.as_bytes(), file_node())
                .unwrap()
                .ino
        }
    };
    c.write(ino, 0, data, false).unwrap();
    c.commit().unwrap();
}
