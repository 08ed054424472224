//! Categories over an in-memory store for unit tests of the layers above the volume
//! (maintenance, sync): fixed keys, unsigned heads, no device home.

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

/// A new empty file `name` in the root, owned by root. Returns its inode.
pub fn new_file(c: &Category, name: &str) -> u64 {
    let n = crate::volume::NewNode {
        mode: libc::S_IFREG | 0o644,
        rdev: 0,
        uid: 0,
        gid: 0,
        target: None,
        umask: 0,
        inherit_acl: true,
    };
    c.create_node(crate::volume::ROOT_INO, name.as_bytes(), n)
        .unwrap()
        .ino
}

/// A file `name` in the root holding `data`, committed. Returns its inode.
pub fn write_file(c: &Category, name: &str, data: &[u8]) -> u64 {
    let ino = new_file(c, name);
    c.write(ino, 0, data, false).unwrap();
    c.commit().unwrap();
    ino
}
