//! The embedded default store: one file per object under a directory, written with
//! temp-file + fsync + rename so every `put` is atomic and durable.

use super::{Etag, Store, StoreError, check_name, etag_of};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct LocalStore {
    root: PathBuf,
    /// Serializes compare-and-swap within this process; cross-process CAS on one local
    /// directory is not a supported setup (one daemon per home).
    cas: Mutex<()>,
    seq: AtomicU64,
}

fn io_err(name: &str, e: std::io::Error) -> StoreError {
    if e.kind() == ErrorKind::NotFound {
        StoreError::NotFound(name.to_string())
    } else if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        StoreError::Full(name.to_string())
    } else {
        StoreError::Io {
            name: name.to_string(),
            source: e,
        }
    }
}

impl LocalStore {
    /// Opens an existing store directory. A missing directory is an error (not silently
    /// created) so that a typo or an unmounted disk is noticed.
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        let md = fs::metadata(&root).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                StoreError::Missing(root.display().to_string())
            } else {
                io_err(&root.display().to_string(), e)
            }
        })?;
        if !md.is_dir() {
            return Err(StoreError::BadUrl(
                root.display().to_string(),
                "not a directory".into(),
            ));
        }
        Ok(LocalStore {
            root,
            cas: Mutex::new(()),
            seq: AtomicU64::new(0),
        })
    }

    /// Creates the store directory (and parents) and opens it.
    pub fn create(root: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(&root).map_err(|e| io_err(&root.display().to_string(), e))?;
        Self::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_err(name, e))?;
        // Upper case is outside the object-name alphabet, so `list` never returns it.
        let tmp = dir.join(format!(
            "TMP.{}.{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let res = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(|e| io_err(name, e))
    }
}

impl Store for LocalStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.write_atomic(name, data)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(name)?;
        let mut f = File::open(&path).map_err(|e| io_err(name, e))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(|e| io_err(name, e))?;
        Ok(v)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path(name)?;
        let f = File::open(&path).map_err(|e| io_err(name, e))?;
        let mut buf = vec![0u8; len as usize];
        let mut done = 0usize;
        while done < buf.len() {
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

    fn list_info(&self, prefix: &str) -> Result<Vec<super::ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        for name in self.list(prefix)? {
            let md = match fs::metadata(self.path(&name)?) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&name, e)),
            };
            out.push(super::ObjectInfo {
                name,
                size: md.len(),
                modified: md.modified().ok(),
            });
        }
        Ok(out)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(prefix, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| io_err(prefix, e))?;
                let p = ent.path();
                let ft = ent.file_type().map_err(|e| io_err(prefix, e))?;
                if ft.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&self.root) {
                    let rel = rel.to_string_lossy().to_string();
                    if rel.starts_with(prefix) && check_name(&rel).is_ok() {
                        out.push(rel);
                    }
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        fs::remove_file(path).map_err(|e| io_err(name, e))
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        let path = self.path(name)?;
        let mut f = File::open(&path).map_err(|e| io_err(name, e))?;
        f.seek(SeekFrom::End(0)).map_err(|e| io_err(name, e))
    }

    fn usage(&self) -> Option<(u64, u64)> {
        let c = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return None;
        }
        let used = (s.f_blocks - s.f_bfree) * s.f_frsize;
        let avail = s.f_bavail * s.f_frsize;
        Some((used, avail))
    }
}
