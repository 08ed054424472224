//! Bounded caches. Decrypted chunks live in a byte-bounded LRU keyed by the chunk's MAC tag,
//! so a rewritten chunk can never be served from a stale entry. Next to it, a much smaller
//! LRU keeps the sector index of chunks read at random (`crypto::SectorIndex`), so that a
//! chunk evicted from the first can be read again a sector at a time.

use crate::crypto::SectorIndex;
use lru::LruCache;
use std::sync::{Arc, Mutex};

/// Share of the cache's bound given to sector indexes: about 1.2 KiB per 256 KiB chunk, so
/// a 64th of the bound indexes twice as many chunks as the rest holds decrypted.
const INDEX_SHARE: usize = 64;

/// Where a decrypted chunk belongs and which sealed version it came from. The position is
/// part of the key so a forged reference to another file's (or category's) tag can never
/// be served from the cache: the blob must be fetched and opened under its own context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub category: u32,
    pub ino: u64,
    pub index: u64,
    pub tag: [u8; 32],
}

pub struct ChunkCache {
    inner: Mutex<Inner>,
    indexes: Mutex<Indexes>,
}

struct Indexes {
    lru: LruCache<ChunkKey, Arc<SectorIndex>>,
    bytes: usize,
    cap: usize,
}

struct Inner {
    lru: LruCache<ChunkKey, Arc<Vec<u8>>>,
    bytes: usize,
    cap: usize,
}

impl ChunkCache {
    /// A cache of at most `cap_bytes`, decrypted chunks and sector indexes together.
    pub fn new(cap_bytes: usize) -> Self {
        let index_cap = cap_bytes / INDEX_SHARE;
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                cap: cap_bytes - index_cap,
            }),
            indexes: Mutex::new(Indexes {
                lru: LruCache::unbounded(),
                bytes: 0,
                cap: index_cap,
            }),
        }
    }

    fn lock_indexes(&self) -> std::sync::MutexGuard<'_, Indexes> {
        self.indexes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get_index(&self, key: &ChunkKey) -> Option<Arc<SectorIndex>> {
        self.lock_indexes().lru.get(key).cloned()
    }

    pub fn insert_index(&self, key: ChunkKey, index: Arc<SectorIndex>) {
        let mut g = self.lock_indexes();
        let size = index.memory();
        if size > g.cap {
            return;
        }
        g.bytes += size;
        if let Some(old) = g.lru.put(key, index) {
            g.bytes -= old.memory();
        }
        while g.bytes > g.cap {
            match g.lru.pop_lru() {
                Some((_, v)) => g.bytes -= v.memory(),
                None => break,
            }
        }
    }

    /// Drops every sector index of `category`. Each holds XTS subkeys of its blob's key, so
    /// when an old key is destroyed after a rotation, the subkeys taken from it must go too
    /// (a later memory dump must not open an old blob). Indexes under the new key go with
    /// them and are rebuilt on the next random read.
    pub fn forget_indexes(&self, category: u32) {
        let mut g = self.lock_indexes();
        let doomed: Vec<ChunkKey> = g
            .lru
            .iter()
            .filter(|(k, _)| k.category == category)
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            if let Some(v) = g.lru.pop(&k) {
                g.bytes -= v.memory();
            }
        }
    }

    /// How many sector indexes of `category` are held.
    #[cfg(test)]
    pub fn indexes_of(&self, category: u32) -> usize {
        let g = self.lock_indexes();
        g.lru.iter().filter(|(k, _)| k.category == category).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &ChunkKey) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.get(key).cloned()
    }

    /// Removes and returns an entry: for a chunk about to be rewritten, whose buffer the
    /// writer can then take over instead of copying it (the old version is stale anyway).
    pub fn take(&self, key: &ChunkKey) -> Option<Arc<Vec<u8>>> {
        let mut g = self.lock();
        let v = g.lru.pop(key)?;
        g.bytes -= v.len();
        Some(v)
    }

    pub fn insert(&self, key: ChunkKey, data: Arc<Vec<u8>>) {
        let mut g = self.lock();
        if data.len() > g.cap {
            return;
        }
        g.bytes += data.len();
        if let Some(old) = g.lru.put(key, data) {
            g.bytes -= old.len();
        }
        while g.bytes > g.cap {
            match g.lru.pop_lru() {
                Some((_, v)) => g.bytes -= v.len(),
                None => break,
            }
        }
    }

    /// Bytes currently held and the bound, decrypted chunks and sector indexes together.
    pub fn usage(&self) -> (usize, usize) {
        let (b, c) = {
            let g = self.lock();
            (g.bytes, g.cap)
        };
        let g = self.lock_indexes();
        (b + g.bytes, c + g.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_byte_bound() {
        let k = |i: u8| ChunkKey {
            category: 1,
            ino: 2,
            index: i as u64,
            tag: [i; 32],
        };
        let c = ChunkCache::new(1000);
        for i in 0..100u8 {
            c.insert(k(i), Arc::new(vec![i; 300]));
            assert!(c.usage().0 <= 1000);
        }
        assert!(c.get(&k(99)).is_some());
        assert!(c.get(&k(0)).is_none());
        // the same tag at another position is a miss
        assert!(c.get(&ChunkKey { ino: 3, ..k(99) }).is_none());
        // replacing an entry does not double-count
        c.insert(k(99), Arc::new(vec![1; 100]));
        assert_eq!(c.usage().0, 700);
    }

    #[test]
    fn forgetting_a_categorys_indexes_keeps_the_others_and_their_bytes() {
        let key = crate::crypto::SecretKey::from_bytes([7; 32]);
        let suite = crate::crypto::Suite::XtsBlake3;
        let index = || {
            let mut b = crate::crypto::seal(&key, suite, b"ctx", &[5u8; 9000]).unwrap();
            Arc::new(
                crate::crypto::open_indexed(&key, suite, b"ctx", &mut b)
                    .unwrap()
                    .1,
            )
        };
        let k = |category: u32, i: u8| ChunkKey {
            category,
            ino: 2,
            index: i as u64,
            tag: [i; 32],
        };
        let c = ChunkCache::new(1 << 20);
        c.insert(k(1, 9), Arc::new(vec![1; 100]));
        for i in 0..3 {
            c.insert_index(k(1, i), index());
            c.insert_index(k(2, i), index());
        }
        let full = c.usage().0;
        assert_eq!((c.indexes_of(1), c.indexes_of(2)), (3, 3));
        c.forget_indexes(1);
        assert_eq!((c.indexes_of(1), c.indexes_of(2)), (0, 3));
        assert!(c.get_index(&k(2, 0)).is_some());
        // The bytes went with them; the decrypted chunk stays.
        assert_eq!(c.usage().0, full - 3 * index().memory());
        assert!(c.get(&k(1, 9)).is_some());
    }
}
