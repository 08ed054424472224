//! The FUSE adapter: maps kernel requests onto categories. The root lists the categories
//! and is read-only; inode numbers carry the category in their top bits.
//! This file has the adapter's state, inode numbering and directory listings; `kernel.rs`
//! answers the FUSE requests, `attr.rs` converts attributes and times, `errno.rs` errors.

mod attr;
mod errno;
mod invalidate;
mod kernel;

use crate::format::record::Time;
use crate::volume::{Category, ROOT_INO};
use fuser::{Errno, FileAttr, FileHandle, FileType, INodeNo};
use log::warn;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use attr::kind_type;
pub use errno::errno;
pub use invalidate::Invalidator;

const CAT_SHIFT: u32 = 40;
const LOCAL_MASK: u64 = (1 << CAT_SHIFT) - 1;
const FS_ROOT: u64 = 1;

/// Mount-time options of the adapter.
#[derive(Debug, Clone)]
pub struct FsOptions {
    pub ttl: Duration,
    pub owner: (u32, u32),
    pub max_write: u32,
    /// FUSE capabilities to request when the kernel offers them.
    pub capabilities: Vec<fuser::InitFlags>,
}

type Listing = Vec<(INodeNo, FileType, Vec<u8>)>;

pub struct CirrusFs {
    cats: BTreeMap<u32, Arc<Category>>,
    /// Directory listings per open directory handle: offsets index a snapshot taken at
    /// opendir (and at rewind), so entries unlinked mid-listing never shift the others.
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    next_fh: AtomicU64,
    opts: FsOptions,
    mounted_at: Time,
    /// The kernel enforces POSIX ACLs (it granted `FUSE_POSIX_ACL` at init), so ACL
    /// names are stored and "no ACL" is ENODATA; without it they are unsupported.
    acls_in_kernel: bool,
    usage: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
    /// The kernel's side, once mounted (see [`CirrusFs::kernel_link`]).
    kernel: Arc<OnceLock<Invalidator>>,
}

impl CirrusFs {
    /// Where the mount runtime puts the kernel's side once the session exists (the
    /// adapter is handed to fuser before there is a notifier), so requests can tell the
    /// kernel of changes its own caches would not see.
    pub fn kernel_link(&self) -> Arc<OnceLock<Invalidator>> {
        self.kernel.clone()
    }

    pub fn new(
        cats: Vec<Arc<Category>>,
        opts: FsOptions,
        usage: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
    ) -> Self {
        CirrusFs {
            acls_in_kernel: false,
            cats: cats.into_iter().map(|c| (c.id, c)).collect(),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            opts,
            mounted_at: Time::now(),
            usage,
            kernel: Arc::new(OnceLock::new()),
        }
    }

    pub fn categories(&self) -> Vec<Arc<Category>> {
        self.cats.values().cloned().collect()
    }

    fn split(&self, ino: INodeNo) -> Option<(&Arc<Category>, u64)> {
        let cat = (ino.0 >> CAT_SHIFT) as u32;
        self.cats.get(&cat).map(|c| (c, ino.0 & LOCAL_MASK))
    }

    fn global(cat: u32, local: u64) -> INodeNo {
        INodeNo(((cat as u64) << CAT_SHIFT) | local)
    }

    fn root_refusal(op: &str) -> Errno {
        warn!(
            "{op} in the drive's root refused: the root holds only categories (use `{}`)",
            crate::hint::cmd_hint("category add")
        );
        Errno::EPERM
    }

    fn cat_by_name(&self, name: &OsStr) -> Option<&Arc<Category>> {
        self.cats
            .values()
            .find(|c| c.name.as_bytes() == name.as_bytes())
    }

    /// Attributes of any inode, or `None` when they cannot be read (the caller then gives
    /// the kernel nothing to cache).
    fn node_attr(&self, ino: INodeNo) -> Option<(FileAttr, fuser::Generation)> {
        if ino.0 == FS_ROOT {
            return Some((self.root_attr(), fuser::Generation(0)));
        }
        let (c, i) = self.split(ino)?;
        c.getattr(i)
            .ok()
            .map(|n| (self.attr_of(c.id, &n), attr::generation(&n)))
    }

    /// The listing snapshot of an open directory handle; offset 0 (a rewind) refreshes it.
    fn snapshot(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> Result<Arc<Listing>, Errno> {
        let cached = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        match cached {
            Some(l) if offset != 0 => Ok(l),
            _ => {
                let l = Arc::new(self.listing(ino)?);
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(fh.0, l.clone());
                Ok(l)
            }
        }
    }

    fn listing(&self, ino: INodeNo) -> Result<Listing, Errno> {
        let mut list: Listing = Vec::new();
        if ino.0 == FS_ROOT {
            list.push((INodeNo(FS_ROOT), FileType::Directory, b".".to_vec()));
            list.push((INodeNo(FS_ROOT), FileType::Directory, b"..".to_vec()));
            for c in self.cats.values() {
                list.push((
                    Self::global(c.id, ROOT_INO),
                    FileType::Directory,
                    c.name.as_bytes().to_vec(),
                ));
            }
            return Ok(list);
        }
        let (c, i) = self.split(ino).ok_or(Errno::ENOENT)?;
        let (parent, entries) = c.readdir(i).map_err(|e| errno(&e, "readdir"))?;
        c.note_listing(i);
        let up = if i == ROOT_INO {
            INodeNo(FS_ROOT)
        } else {
            Self::global(c.id, parent)
        };
        list.push((ino, FileType::Directory, b".".to_vec()));
        list.push((up, FileType::Directory, b"..".to_vec()));
        for (name, child, kind) in entries {
            list.push((Self::global(c.id, child), kind_type(kind), name));
        }
        Ok(list)
    }

    /// Commits every category (unmount, shutdown).
    pub fn commit_all(&self) {
        for c in self.cats.values() {
            if let Err(e) = c.commit() {
                log::error!("category {}: final commit failed: {e}", c.name);
            }
        }
        // The categories share the device's record of heads seen.
        if let Some(c) = self.cats.values().next() {
            c.flush_witness();
        }
    }
}
