//! Maintenance of an account's store and keys, run beside or instead of a mount: garbage
//! collection ([`gc`]), the full check ([`fsck`]) and the key rotations a command owes
//! ([`rotation`]: the record of them, and running them through the daemon or here). A
//! library module, like restic's prune in its repository package: the CLI only draws the
//! progress these report through callbacks and prints their typed reports and errors.

pub mod fsck;
pub mod gc;
mod gc_views;
pub mod rotation;
pub mod web_releases;

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

/// The volume's test categories, under the name this module's tests use.
#[cfg(test)]
pub(crate) use crate::volume::testing;
