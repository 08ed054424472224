//! What gc counts as referenced: the packs of every tree a device may still build on.
//! This device's own (its journal's heads, and the merge bases its journal keeps, which a
//! merge loads), and the store's heads, checked against what this device and the other
//! devices' acknowledgements saw so a stale head served by the store aborts gc instead
//! of hiding what a newer head names. Apart from `gc.rs` so the sweep stays readable.

use super::gc::GcError;
use super::{open_for_inspection, open_for_inspection_in};
use crate::account::{GcAcks, Unlocked};
use crate::cache::ChunkCache;
use crate::format::names;
use crate::store::{Etag, ObjectInfo, Store, StoreError};
use crate::volume::{Category, HeadWitness, NoWitness, WitnessError};
#[cfg(test)]
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

/// The packs every category (retired ones too) references, in this device's view (its
/// journal's heads and merge bases) and, with a remote store, in the store's own heads,
/// which other devices may have moved on. `acks`: the other devices' acknowledgements,
/// read before any head.
pub(super) fn referenced_packs(
    acct: &Unlocked,
    acks: Option<&GcAcks>,
) -> Result<HashSet<[u8; 32]>, GcError> {
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut referenced = HashSet::new();
    let views: &[&'static str] = match acct.sync {
        Some(_) => &["local", "merge base", "store"],
        None => &["local"],
    };
    for &view in views {
        for (entry, setup) in acct.all_category_setups() {
            let setup = setup.map_err(|reason| GcError::Locked {
                category: entry.name.clone(),
                reason,
            })?;
            let packs = match (view, &acct.sync) {
                (_, None) | ("local", _) => {
                    open_for_inspection(acct, setup, &cache).referenced_packs()
                }
                // A merge loads the base's leaves with no fallback: its packs must stay.
                ("merge base", Some(wb)) => {
                    let head = names::head(entry.id);
                    let Some(base) = wb.head_base(&head) else {
                        continue;
                    };
                    let store = Arc::new(BaseView::new(acct.store.clone(), head, base));
                    open_for_inspection_in(acct, setup, &cache, store, Arc::new(NoWitness))
                        .referenced_packs()
                }
                (_, Some(wb)) => {
                    let witness = Arc::new(RemoteSeen(acct.seen.clone()));
                    let c = open_for_inspection_in(acct, setup, &cache, wb.remote(), witness);
                    store_packs(&c, acks.and_then(|a| a.heads.get(&entry.id)))
                }
            };
            referenced.extend(packs.map_err(|reason| GcError::Unreadable {
                category: entry.name.clone(),
                view,
                reason,
            })?);
        }
    }
    Ok(referenced)
}

/// The packs of a category opened on the store's head, unless that head is older than
/// one another device says the store has (`acked`: counter, device): then the store
/// withholds or rolls back a head whose packs gc would miss. (The rollback check against
/// this device's own record is [`RemoteSeen`]'s, at open.)
pub(super) fn store_packs(
    c: &Category,
    acked: Option<&(u64, String)>,
) -> Result<HashSet<[u8; 32]>, String> {
    let packs = c.referenced_packs()?;
    let served = c.stats().2;
    if let Some((n, who)) = acked
        && served < *n
    {
        return Err(format!(
            "the store serves head #{served}, but device {who} says it has head #{n}: \
             the store is withholding or rolling back changes"
        ));
    }
    Ok(packs)
}

/// The store view's rollback check: the newest head this device saw *in the store* (its
/// own commits still in the journal do not count). Records nothing: gc only reads.
pub(super) struct RemoteSeen(pub Arc<dyn HeadWitness>);

impl HeadWitness for RemoteSeen {
    fn seen(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        self.0.seen_remote(category)
    }
    fn record(&self, _: u32, _: u64, _: [u8; 32]) -> Result<(), WitnessError> {
        Ok(())
    }
}

/// A read-only view of `inner` in which the head object `name` is the merge base the
/// journal keeps for it.
pub(super) struct BaseView {
    inner: Arc<dyn Store>,
    name: String,
    base: Vec<u8>,
}

impl BaseView {
    pub(super) fn new(inner: Arc<dyn Store>, name: String, base: Vec<u8>) -> Self {
        BaseView { inner, name, base }
    }
    fn read_only(&self, name: &str) -> StoreError {
        StoreError::Io {
            name: name.to_string(),
            source: std::io::Error::other("a merge-base view is read-only"),
        }
    }
}

impl Store for BaseView {
    fn put(&self, name: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(self.read_only(name))
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        if name == self.name {
            return Ok(self.base.clone());
        }
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if name == self.name {
            let b = self.base.get(offset as usize..).unwrap_or_default();
            return Ok(b[..b.len().min(len as usize)].to_vec());
        }
        self.inner.get_range(name, offset, len)
    }
    fn put_if(&self, name: &str, _: &[u8], _: Option<&Etag>) -> Result<Etag, StoreError> {
        Err(self.read_only(name))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        Err(self.read_only(name))
    }
    fn size(&self, name: &str) -> Result<u64, StoreError> {
        if name == self.name {
            return Ok(self.base.len() as u64);
        }
        self.inner.size(name)
    }
    fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list_info(prefix)
    }
}

/// A witness in memory, for the tests.
#[cfg(test)]
#[derive(Default)]
pub(super) struct MemWitness(pub std::sync::Mutex<HashMap<u32, (u64, [u8; 32])>>);

#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn a_merge_base_keeps_the_packs_its_tree_names() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = testing::open(&store, 3);
        testing::write_file(&c, "old", &[5u8; 300_000]);
        let base = store.get(&names::head(3)).unwrap();
        let then = c.referenced_packs().unwrap();
        c.unlink(crate::volume::ROOT_INO, b"old").unwrap();
        c.commit().unwrap();
        let now = c.referenced_packs().unwrap();
        let gone: HashSet<_> = then.difference(&now).copied().collect();
        assert!(!gone.is_empty(), "the old file's packs leave the head");
        let view = Arc::new(BaseView::new(store.clone(), names::head(3), base));
        let b = testing::open(&(view.clone() as Arc<dyn Store>), 3);
        let in_base = b.referenced_packs().unwrap();
        assert!(gone.is_subset(&in_base), "the base still names them");
        assert!(view.put(&names::head(3), b"x").is_err(), "read-only");
    }

    #[test]
    fn a_stale_store_head_aborts_instead_of_hiding_packs() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = testing::open(&store, 3);
        testing::write_file(&c, "a", b"one");
        let old = store.get(&names::head(3)).unwrap();
        testing::write_file(&c, "b", b"two");
        let counter = c.stats().2;
        let seen = Arc::new(MemWitness::default());
        seen.record_remote(
            3,
            counter,
            crate::crypto::hash(&store.get(&names::head(3)).unwrap()),
        )
        .unwrap();
        drop(c);
        // The store rolls the head back to the older one.
        store.put(&names::head(3), &old).unwrap();
        let open = |w: Arc<dyn HeadWitness>| testing::open_with(&store, 3, w);
        // Against what this device saw in the store: refused at open.
        let c = open(Arc::new(RemoteSeen(seen)));
        assert!(
            store_packs(&c, None).is_err(),
            "rollback below this device's record"
        );
        // Against another device's acknowledgement.
        let c = open(Arc::new(NoWitness));
        let acked = (counter, "phone".to_string());
        let e = store_packs(&c, Some(&acked)).unwrap_err();
        assert!(e.contains("device phone says"), "{e}");
        assert!(store_packs(&c, Some(&(counter - 1, "phone".into()))).is_ok());
    }
}
