//! Clean copies of remote objects on local disk, bounded in bytes and evicted in LRU order,
//! so a cold read is paid once and a restart or an offline spell does not empty the cache.
//! Everything here is already sealed (or is a public object of the store): losing or
//! corrupting a file costs a refetch, never data, so writes are not fsync'd.

use crate::store::StoreError;
use log::{debug, warn};
use lru::LruCache;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct DiskCache {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Object name → size in bytes, least recently used first.
    lru: LruCache<String, u64>,
    bytes: u64,
    cap: u64,
    tmp_seq: u64,
}

/// The cache file of an object: its name with `/` as `~` (outside the name alphabet, so
/// the mapping is one-to-one and a listing maps back).
fn file_name(name: &str) -> String {
    name.replace('/', "~")
}

fn object_name(file: &str) -> Option<String> {
    let n = file.replace('~', "/");
    crate::store::check_name(&n).ok().map(|_| n)
}

fn io_err(name: &str, e: std::io::Error) -> StoreError {
    StoreError::Io {
        name: format!("disk cache {name}"),
        source: e,
    }
}

impl DiskCache {
    /// Opens (creating) the cache directory and indexes what a previous run left there,
    /// oldest modification first, then trims it to `cap` bytes.
    pub fn open(dir: &Path, cap: u64) -> Result<DiskCache, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("directory", e))?;
        let mut found = Vec::new();
        for ent in std::fs::read_dir(dir).map_err(|e| io_err("directory", e))? {
            let ent = ent.map_err(|e| io_err("directory", e))?;
            let file = ent.file_name().to_string_lossy().into_owned();
            let Ok(md) = ent.metadata() else { continue };
            match object_name(&file) {
                Some(name) if md.is_file() => {
                    let mtime = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((mtime, name, md.len()));
                }
                // A temp file from a crash (old enough that no live writer owns it), or
                // a stranger: not ours to keep.
                _ => {
                    if super::journal::stale(&ent) {
                        let _ = std::fs::remove_file(ent.path());
                    }
                }
            }
        }
        found.sort();
        let mut inner = Inner {
            lru: LruCache::unbounded(),
            bytes: 0,
            cap,
            tmp_seq: 0,
        };
        for (_, name, len) in found {
            inner.bytes += len;
            inner.lru.put(name, len);
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
        };
        cache.trim();
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(file_name(name))
    }

    pub fn set_cap(&self, cap: u64) {
        self.lock().cap = cap;
        self.trim();
    }

    /// (bytes held, byte limit, objects held).
    pub fn usage(&self) -> (u64, u64, usize) {
        let g = self.lock();
        (g.bytes, g.cap, g.lru.len())
    }

    /// Stores a copy (replacing an older one). Objects larger than the whole cache are
    /// not kept. Failures are logged and ignored: the cache is an optimisation.
    pub fn insert(&self, name: &str, data: &[u8]) {
        let tmp = {
            let mut g = self.lock();
            if data.len() as u64 > g.cap {
                return;
            }
            g.tmp_seq += 1;
            self.dir
                .join(format!("TMP.{}.{}", std::process::id(), g.tmp_seq))
        };
        let res = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, self.path(name)));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            warn!("disk cache: cannot keep {name}: {e}");
            return;
        }
        {
            let mut g = self.lock();
            if let Some(old) = g.lru.put(name.to_string(), data.len() as u64) {
                g.bytes -= old;
            }
            g.bytes += data.len() as u64;
        }
        self.trim();
    }

    /// The whole object, if cached.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        if !self.touch(name) {
            return None;
        }
        match std::fs::read(self.path(name)) {
            Ok(d) => Some(d),
            Err(e) => {
                self.forget(name, &e);
                None
            }
        }
    }

    /// `len` bytes at `offset` (fewer past the end), if cached.
    pub fn get_range(&self, name: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        if !self.touch(name) {
            return None;
        }
        let res = (|| {
            let mut f = File::open(self.path(name))?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(len.min(64 << 20) as usize);
            f.take(len).read_to_end(&mut buf)?;
            Ok::<_, std::io::Error>(buf)
        })();
        match res {
            Ok(b) => Some(b),
            Err(e) => {
                self.forget(name, &e);
                None
            }
        }
    }

    pub fn size(&self, name: &str) -> Option<u64> {
        self.lock().lru.peek(name).copied()
    }

    pub fn remove(&self, name: &str) {
        let mut g = self.lock();
        if let Some(len) = g.lru.pop(name) {
            g.bytes -= len;
            let _ = std::fs::remove_file(self.path(name));
        }
    }

    fn touch(&self, name: &str) -> bool {
        self.lock().lru.get(name).is_some()
    }

    fn forget(&self, name: &str, e: &std::io::Error) {
        debug!("disk cache: {name} unreadable ({e}); dropped");
        let mut g = self.lock();
        if let Some(len) = g.lru.pop(name) {
            g.bytes -= len;
        }
    }

    /// Evicts least recently used objects until the total fits the limit.
    fn trim(&self) {
        let mut victims = Vec::new();
        {
            let mut g = self.lock();
            while g.bytes > g.cap {
                let Some((name, len)) = g.lru.pop_lru() else {
                    break;
                };
                g.bytes -= len;
                victims.push(name);
            }
        }
        for name in victims {
            let _ = std::fs::remove_file(self.path(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(dir.path(), 300).unwrap();
        c.insert("packs/aa/one", &[1; 100]);
        c.insert("packs/aa/two", &[2; 100]);
        c.insert("heads/00000001", &[3; 100]);
        assert_eq!(c.get_range("packs/aa/one", 10, 5), Some(vec![1; 5])); // one is now recent
        c.insert("packs/aa/four", &[4; 100]);
        assert!(
            c.get("packs/aa/two").is_none(),
            "two was least recently used"
        );
        assert_eq!(c.get("packs/aa/one"), Some(vec![1; 100]));
        assert_eq!(c.usage(), (300, 300, 3));
        c.insert("packs/aa/huge", &[5; 301]);
        assert!(c.get("packs/aa/huge").is_none(), "larger than the cache");
        drop(c);
        let c = DiskCache::open(dir.path(), 300).unwrap();
        assert_eq!(c.usage().2, 3);
        assert_eq!(c.get("heads/00000001"), Some(vec![3; 100]));
        c.set_cap(100);
        assert_eq!(c.usage().2, 1);
    }

    #[test]
    fn a_vanished_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(dir.path(), 1000).unwrap();
        c.insert("packs/aa/x", b"hello");
        std::fs::remove_file(dir.path().join("packs~aa~x")).unwrap();
        assert!(c.get("packs/aa/x").is_none());
        assert_eq!(c.usage().0, 0);
    }
}
