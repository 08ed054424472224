//! Between the volume's attributes and fuser's: times (before 1970 too), file types
//! from modes, and the `FileAttr` the kernel caches for a node or the drive's root.

use super::{CirrusFs, FS_ROOT};
use crate::format::record::{Attr, Time};
use crate::volume::{NodeInfo, TimeSet};
use fuser::{FileAttr, FileType, Generation, INodeNo, TimeOrNow};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn to_system(t: Time) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::new((-t.sec) as u64, 0) + Duration::new(0, t.nsec)
    }
}

/// Inverse of fuser's conversion of kernel times: fuser turns (sec < 0, nsec) into
/// `UNIX_EPOCH - Duration::new(-sec, nsec)`, so that is what we undo (a plain
/// before-epoch subtraction would be off by up to 2 ns · 10^9 for pre-1970 times).
pub(super) fn from_system(t: SystemTime) -> Time {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Time {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            Time {
                sec: -(d.as_secs() as i64),
                nsec: d.subsec_nanos(),
            }
        }
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

/// A node's generation for the kernel (and so for file handles, which carry node id and
/// generation): taken from its birth time, which nothing changes. Node ids are inode
/// numbers, never reused once a head records them; but a crash can lose the last
/// allocations before their commit, and a number then given again must not open what an
/// NFS client's old handle named. Every reply naming a node must give the same value, or
/// the kernel takes the node for a new one.
pub(super) fn generation(n: &NodeInfo) -> Generation {
    let b = n.attr.btime;
    Generation(u64::from((b.sec as u32) ^ b.nsec.rotate_left(7)))
}

pub(super) fn kind_type(kind: u8) -> FileType {
    file_type((kind as u32) << 12)
}

pub(super) fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(from_system(s)),
    }
}

impl CirrusFs {
    pub(super) fn attr_of(&self, cat: u32, n: &NodeInfo) -> FileAttr {
        let a: &Attr = &n.attr;
        FileAttr {
            ino: Self::global(cat, n.ino),
            size: n.size,
            blocks: n.blocks,
            atime: to_system(a.atime),
            mtime: to_system(a.mtime),
            ctime: to_system(a.ctime),
            crtime: to_system(a.btime),
            kind: file_type(a.mode),
            perm: (a.mode & 0o7777) as u16,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    pub(super) fn root_attr(&self) -> FileAttr {
        let t = to_system(self.mounted_at);
        FileAttr {
            ino: INodeNo(FS_ROOT),
            size: 4096,
            blocks: 8,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2 + self.cats.len() as u32,
            uid: self.opts.owner.0,
            gid: self.opts.owner.1,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}
