//! The embedded default store: one file per object under a directory, written with
//! temp-file + fsync + rename so every `put` is atomic and durable.

use super::beneath_linux::{self as beneath, Kind};
use super::{Etag, ObjectInfo, Store, StoreError, check_name, etag_of};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every object is opened relative to `root_fd`, never following a symbolic link below it
/// (see `beneath_linux`): a store directory shared with others (a network file system, a
/// group-writable disk) cannot be made to read or write outside itself through a link.
pub struct LocalStore {
    /// The root as resolved once at open (the root itself may be a link the user chose).
    root: PathBuf,
    root_fd: OwnedFd,
    /// Serializes compare-and-swap within this process; cross-process CAS on one local
    /// directory is not a supported setup (one daemon per home).
    cas: Mutex<()>,
    seq: AtomicU64,
    /// Packs read lately, kept open: a random read of one sector fetched 4 KiB with an
    /// open, a stat and a close around it, 8 of its 12 µs (docs/BENCH.md, "fio
    /// randread"). Packs never change (named by their hash). A put or delete through
    /// this store drops the descriptor; a pack deleted or replaced by another process
    /// reads as it was until its descriptor is evicted (or the drive remounted), which
    /// only spares a reader an error or keeps one: every byte read is still checked
    /// against its MAC or digest.
    open_packs: Mutex<lru::LruCache<String, Arc<File>>>,
}

/// Pack descriptors kept open (see `LocalStore::open_packs`).
const OPEN_PACKS: usize = 64;

/// The first buffer of a range read; it doubles while the file has more.
const RANGE_STEP: usize = 1 << 20;

/// Refuses an object, saying so in the log (its name only, never data).
fn refused(name: &str, why: &'static str) -> StoreError {
    log::warn!("local store: refusing object {name}: {why}");
    StoreError::Refused {
        name: name.to_string(),
        why,
    }
}

fn io_err(name: &str, e: std::io::Error) -> StoreError {
    match e.raw_os_error() {
        // What opening beneath the root answers for a link on the way (or an escape).
        Some(libc::ELOOP) | Some(libc::EXDEV) => {
            refused(name, "a symbolic link is in its path in the store")
        }
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::Full(name.to_string()),
        _ if e.kind() == ErrorKind::NotFound => StoreError::NotFound(name.to_string()),
        _ => StoreError::Io {
            name: name.to_string(),
            source: e,
        },
    }
}

/// `dir/file` split at the last `/`; `.` (the root) for a name without one.
fn split(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or((".", name))
}

fn modified(st: &libc::stat) -> Option<SystemTime> {
    let secs = u64::try_from(st.st_mtime).ok()?;
    let nanos = u32::try_from(st.st_mtime_nsec).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Whether the directory `rel` (no trailing `/`) may hold names starting with `prefix`.
fn may_hold(rel: &str, prefix: &str) -> bool {
    rel.is_empty() || prefix.starts_with(&format!("{rel}/")) || rel.starts_with(prefix)
}

impl LocalStore {
    /// Opens an existing store directory. A missing directory is an error (not silently
    /// created) so that a typo or an unmounted disk is noticed.
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        let shown = root.display().to_string();
        let missing = |e: std::io::Error| {
            if e.kind() == ErrorKind::NotFound {
                StoreError::Missing(shown.clone())
            } else {
                io_err(&shown, e)
            }
        };
        let root = std::fs::canonicalize(&root).map_err(missing)?;
        let f = File::open(&root).map_err(missing)?;
        if !f.metadata().map_err(|e| io_err(&shown, e))?.is_dir() {
            return Err(StoreError::BadUrl(shown, "not a directory".into()));
        }
        Ok(LocalStore {
            root,
            root_fd: OwnedFd::from(f),
            cas: Mutex::new(()),
            seq: AtomicU64::new(0),
            open_packs: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(OPEN_PACKS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        })
    }

    /// Creates the store directory (and parents) and opens it.
    pub fn create(root: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&root).map_err(|e| io_err(&root.display().to_string(), e))?;
        Self::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn root_fd(&self) -> BorrowedFd<'_> {
        self.root_fd.as_fd()
    }

    /// Opens an object for reading, with its size: a plain file reached without a link.
    fn open_object(&self, name: &str) -> Result<(File, u64), StoreError> {
        check_name(name)?;
        // O_NONBLOCK: a FIFO planted in the store must not hang the read (it is refused).
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = beneath::open(self.root_fd(), name, flags, 0).map_err(|e| io_err(name, e))?;
        let st = beneath::stat_fd(fd.as_fd()).map_err(|e| io_err(name, e))?;
        if beneath::kind_of_mode(st.st_mode) != Kind::File {
            return Err(refused(name, "not a plain file"));
        }
        Ok((File::from(fd), st.st_size as u64))
    }

    fn forget_open(&self, name: &str) {
        self.open_packs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(name);
    }

    /// An object to read part of: a pack's descriptor is kept open for the next read.
    fn open_for_range(&self, name: &str) -> Result<Arc<File>, StoreError> {
        if !name.starts_with("packs/") {
            return Ok(Arc::new(self.open_object(name)?.0));
        }
        let lock = || self.open_packs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = lock().get(name) {
            return Ok(f.clone());
        }
        let f = Arc::new(self.open_object(name)?.0);
        lock().put(name.to_string(), f.clone());
        Ok(f)
    }

    /// Refuses to replace or remove anything but a plain file (a link is never
    /// followed by rename or unlink, but it is not an object either). `Ok(false)`: absent.
    fn existing_is_file(
        &self,
        dir: BorrowedFd,
        name: &str,
        file: &str,
    ) -> Result<bool, StoreError> {
        match beneath::stat_at(dir, file) {
            Ok(st) => match beneath::kind_of_mode(st.st_mode) {
                Kind::File => Ok(true),
                Kind::Link => Err(refused(name, "a symbolic link in the store")),
                _ => Err(refused(name, "not a plain file")),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(name, e)),
        }
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.forget_open(name);
        check_name(name)?;
        let (dir, file) = split(name);
        let parent =
            beneath::open_dir_creating(self.root_fd(), dir).map_err(|e| io_err(name, e))?;
        let parent = parent.as_fd();
        self.existing_is_file(parent, name, file)?;
        // Upper case is outside the object-name alphabet, so `list` never returns it.
        let tmp = format!(
            "TMP.{}.{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let res = (|| {
            let mut f = File::from(beneath::create_new(parent, &tmp, 0o666)?);
            f.write_all(data)?;
            f.sync_data()?;
            beneath::rename_in(parent, &tmp, file)?;
            File::from(parent.try_clone_to_owned()?).sync_all()
        })();
        if res.is_err() {
            let _ = beneath::unlink_in(parent, &tmp);
        }
        res.map_err(|e| io_err(name, e))
    }

    /// Every object under the root whose name starts with `prefix`, with its `lstat`
    /// when `stat` is asked. Never descends into a linked directory nor lists a link
    /// (each is skipped with a warning: the rest of the store stays listable).
    fn walk(&self, prefix: &str, stat: bool) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let dir =
                match beneath::open_dir(self.root_fd(), if rel.is_empty() { "." } else { &rel }) {
                    Ok(d) => d,
                    // Removed meanwhile (an emptied directory, say).
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV)) => {
                        log::warn!("local store: not listing {rel}: a symbolic link in the store");
                        continue;
                    }
                    Err(e) => return Err(io_err(prefix, e)),
                };
            for (bytes, kind) in beneath::read_dir(dir.as_fd()).map_err(|e| io_err(prefix, e))? {
                let Ok(entry) = String::from_utf8(bytes) else {
                    continue;
                };
                let child = if rel.is_empty() {
                    entry.clone()
                } else {
                    format!("{rel}/{entry}")
                };
                match kind {
                    Kind::Dir if may_hold(&child, prefix) => stack.push(child),
                    Kind::File if child.starts_with(prefix) && check_name(&child).is_ok() => {
                        let (size, modified) = if stat {
                            match beneath::stat_at(dir.as_fd(), &entry) {
                                Ok(st) if beneath::kind_of_mode(st.st_mode) == Kind::File => {
                                    (st.st_size as u64, modified(&st))
                                }
                                // Removed or replaced since it was read.
                                Ok(_) => continue,
                                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                                Err(e) => return Err(io_err(&child, e)),
                            }
                        } else {
                            (0, None)
                        };
                        out.push(ObjectInfo {
                            name: child,
                            size,
                            modified,
                        });
                    }
                    Kind::Link if may_hold(&child, prefix) => {
                        log::warn!(
                            "local store: not listing {child}: a symbolic link in the store"
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

impl Store for LocalStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.write_atomic(name, data)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let (f, size) = self.open_object(name)?;
        // The size is the file's claim (a sparse file may claim a terabyte): read no more
        // than the cap, and preallocate no more than that either.
        if size > super::MAX_OBJECT {
            return Err(StoreError::Refused {
                name: name.to_string(),
                why: "larger than any object (1 GiB)",
            });
        }
        let mut v = Vec::with_capacity(size as usize);
        f.take(super::MAX_OBJECT)
            .read_to_end(&mut v)
            .map_err(|e| io_err(name, e))?;
        Ok(v)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let f = self.open_for_range(name)?;
        // `len` comes from a reference the store may have forged (up to 4 GiB): the
        // buffer grows with what the file really holds, never to the claim at once.
        let want = len.min(super::MAX_OBJECT) as usize;
        let mut buf = vec![0u8; want.min(RANGE_STEP)];
        let mut done = 0usize;
        while done < want {
            if done == buf.len() {
                buf.resize(want.min(buf.len().saturating_mul(2)), 0);
            }
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(name, e)),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError> {
        let _g = self.cas.lock().unwrap_or_else(|p| p.into_inner());
        let current = match self.get(name) {
            Ok(v) => Some(etag_of(&v)),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if current.as_ref() != expected {
            return Err(StoreError::PreconditionFailed(name.to_string()));
        }
        self.write_atomic(name, data)?;
        Ok(etag_of(data))
    }

    fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.walk(prefix, true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .walk(prefix, false)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        self.forget_open(name);
        let (dir, file) = split(name);
        let parent = beneath::open_dir(self.root_fd(), dir).map_err(|e| io_err(name, e))?;
        if !self.existing_is_file(parent.as_fd(), name, file)? {
            return Err(StoreError::NotFound(name.to_string()));
        }
        beneath::unlink_in(parent.as_fd(), file).map_err(|e| io_err(name, e))
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.open_object(name)?.1)
    }

    fn usage(&self) -> Option<(u64, u64)> {
        beneath::usage(self.root_fd())
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
