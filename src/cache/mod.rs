//! Bounded caches. Decrypted chunks live in a byte-bounded LRU keyed by the chunk's MAC tag,
//! so a rewritten chunk can never be served from a stale entry.

use lru::LruCache;
use std::sync::{Arc, Mutex};

pub struct ChunkCache {
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<[u8; 32], Arc<Vec<u8>>>,
    bytes: usize,
    cap: usize,
}

impl ChunkCache {
    pub fn new(cap_bytes: usize) -> Self {
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                cap: cap_bytes,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, tag: &[u8; 32]) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.get(tag).cloned()
    }

    pub fn insert(&self, tag: [u8; 32], data: Arc<Vec<u8>>) {
        let mut g = self.lock();
        if data.len() > g.cap {
            return;
        }
        g.bytes += data.len();
        if let Some(old) = g.lru.put(tag, data) {
            g.bytes -= old.len();
        }
        while g.bytes > g.cap {
            match g.lru.pop_lru() {
                Some((_, v)) => g.bytes -= v.len(),
                None => break,
            }
        }
    }

    /// Bytes currently held and the bound.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.bytes, g.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_byte_bound() {
        let c = ChunkCache::new(1000);
        for i in 0..100u8 {
            c.insert([i; 32], Arc::new(vec![i; 300]));
            assert!(c.usage().0 <= 1000);
        }
        assert!(c.get(&[99; 32]).is_some());
        assert!(c.get(&[0; 32]).is_none());
        // replacing an entry does not double-count
        c.insert([99; 32], Arc::new(vec![1; 100]));
        assert_eq!(c.usage().0, 700);
    }
}
