//! Categories opened outside a mount, read-mostly, for what inspects them: `status`
//! (whether run by the command or by the mounted daemon), fsck and gc.

use super::Unlocked;
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
