//! Maintenance of an account's store and keys, run beside or instead of a mount: garbage
//! collection ([`gc`]), the full check ([`fsck`]) and the key rotations a command owes
//! ([`rotation`]: the record of them, and running them through the daemon or here). A
//! library module, like restic's prune in its repository package: the CLI only draws the
//! progress these report through callbacks and prints their typed reports and errors.

pub mod fsck;
pub mod gc;
mod gc_views;
pub mod rotation;

use crate::account::Unlocked;
use crate::cache::ChunkCache;
use crate::store::Store;
use crate::volume::{Category, CategorySetup, HeadWitness, VolumeOptions};
use std::sync::Arc;

/// Opens one category read-mostly for an admin command (status, fsck): small caches.
pub fn open_for_inspection(
    acct: &Unlocked,
    setup: CategorySetup,
    cache: &Arc<ChunkCache>,
) -> Arc<Category> {
    open_for_inspection_in(acct, setup, cache, acct.store.clone(), acct.seen.clone())
}

/// [`open_for_inspection`] over another view of the store (e.g. the remote one, without
/// this device's journal) and witness.
pub fn open_for_inspection_in(
    acct: &Unlocked,
    setup: CategorySetup,
    cache: &Arc<ChunkCache>,
    store: Arc<dyn Store>,
    witness: Arc<dyn HeadWitness>,
) -> Arc<Category> {
    Category::open(
        setup,
        store,
        cache.clone(),
        witness,
        VolumeOptions::offline(acct.head_signer(), acct.device_slot()),
    )
}

/// Categories over an in-memory store, for the unit tests of this module.
#[cfg(test)]
pub(crate) mod testing {
    use crate::cache::ChunkCache;
    use crate::crypto::SecretKey;
    use crate::store::Store;
    use crate::volume::NoWitness;
    use crate::volume::{Category, CategorySetup, VolumeOptions};
    use std::sync::Arc;

    /// Category `id` under a fixed key, unsigned heads.
    pub fn open(store: &Arc<dyn Store>, id: u32) -> Arc<Category> {
        open_with(store, id, Arc::new(NoWitness))
    }

    /// [`open`] with a witness of heads seen.
    pub fn open_with(
        store: &Arc<dyn Store>,
        id: u32,
        witness: Arc<dyn crate::volume::HeadWitness>,
    ) -> Arc<Category> {
        Category::open(
            CategorySetup::standard(
                id,
                &format!("cat{id}"),
                SecretKey::from_bytes([id as u8; 32]),
                1,
                None,
            ),
            store.clone(),
            Arc::new(ChunkCache::new(4 << 20)),
            witness,
            VolumeOptions::offline(Arc::new(crate::volume::UnsignedHeads), Some(1)),
        )
    }

    /// A file `name` in the root holding `data`, committed. Returns its inode.
    pub fn write_file(c: &Category, name: &str, data: &[u8]) -> u64 {
        let n = c
            .create_node(
                crate::volume::ROOT_INO,
                name.as_bytes(),
                crate::volume::NewNode {
                    mode: libc::S_IFREG | 0o644,
                    rdev: 0,
                    uid: 0,
                    gid: 0,
                    target: None,
                },
            )
            .unwrap();
        c.write(n.ino, 0, data, false).unwrap();
        c.commit().unwrap();
        n.ino
    }
}
