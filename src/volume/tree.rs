//! The namespace: lookup, create, link, unlink, rename, attributes and xattrs. Permission
//! checks are the kernel's (`default_permissions`); this keeps POSIX structure and times.

use super::acl::{self, AclKind};
use super::*;
use crate::format::record::{Attr, DirEntry, Payload, Time};

/// A node as the filesystem layer sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub ino: u64,
    pub attr: Attr,
    pub size: u64,
    pub blocks: u64,
}

/// A directory entry as listed: name, inode, file-type bits (S_IFMT >> 12).
pub type Listed = (Vec<u8>, u64, u8);

/// What to create: type and permission bits, device number, owner, symlink target, the
/// creator's umask, which applies unless the directory has a default ACL (0 when `mode`
/// is already masked), and whether a default ACL is inherited (not on a mount without
/// ACLs, as on ext4 mounted `noacl`).
#[derive(Debug, Clone, Copy)]
pub struct NewNode<'a> {
    pub mode: u32,
    pub rdev: u64,
    pub uid: u32,
    pub gid: u32,
    pub target: Option<&'a [u8]>,
    pub umask: u32,
    pub inherit_acl: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum TimeSet {
    Now,
    At(Time),
}

/// The attribute changes of one `setattr` call.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<Time>,
    /// The caller lacks CAP_FSETID: a truncation clears set-user/group-ID bits.
    pub unprivileged: bool,
}

pub const NAME_MAX: usize = 255;
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;
const XATTR_SIZE_MAX: usize = 65536;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;

fn check_name(name: &[u8]) -> VolResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(VolError::Invalid("bad file name"));
    }
    if name.len() > NAME_MAX {
        return Err(VolError::NameTooLong);
    }
    Ok(())
}

fn kind_of(mode: u32) -> u8 {
    ((mode & libc::S_IFMT) >> 12) as u8
}

fn is_dir(rec: &Record) -> bool {
    matches!(rec.payload, Payload::Dir { .. })
}

impl Category {
    fn rec(s: &State, ino: u64) -> VolResult<&Record> {
        s.tree.records.get(&ino).ok_or(VolError::NotFound)
    }

    fn rec_mut(s: &mut State, ino: u64) -> VolResult<&mut Record> {
        let r = s.tree.records.get_mut(&ino).ok_or(VolError::NotFound)?;
        Ok(r)
    }

    fn entries(s: &State, ino: u64) -> VolResult<&BTreeMap<Vec<u8>, DirEntry>> {
        match &Self::rec(s, ino)?.payload {
            Payload::Dir { entries, .. } => Ok(entries),
            _ => Err(VolError::NotDir),
        }
    }

    fn entries_mut(s: &mut State, ino: u64) -> VolResult<&mut BTreeMap<Vec<u8>, DirEntry>> {
        match &mut Self::rec_mut(s, ino)?.payload {
            Payload::Dir { entries, .. } => Ok(entries),
            _ => Err(VolError::NotDir),
        }
    }

    fn touch(s: &mut State, ino: u64, mtime: bool, now: Time) {
        if let Some(r) = s.tree.records.get_mut(&ino) {
            r.attr.ctime = now;
            if mtime {
                r.attr.mtime = now;
            }
            s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        }
    }

    fn info(s: &State, ino: u64) -> VolResult<NodeInfo> {
        let r = Self::rec(s, ino)?;
        let size = match &r.payload {
            Payload::File { size, .. } => *size,
            Payload::Symlink(t) => t.len() as u64,
            Payload::Dir { .. } => 4096,
            Payload::Special => 0,
        };
        let blocks = match &r.payload {
            Payload::File { .. } => Self::allocated(s, ino).div_ceil(512),
            Payload::Dir { .. } => 8,
            _ => 0,
        };
        Ok(NodeInfo {
            ino,
            attr: r.attr.clone(),
            size,
            blocks,
        })
    }

    pub fn getattr(&self, ino: u64) -> VolResult<NodeInfo> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        Self::info(&s, ino)
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> VolResult<NodeInfo> {
        if name.len() > NAME_MAX {
            return Err(VolError::NameTooLong);
        }
        let mut s = self.lock();
        self.ensure_leaf(&mut s, parent)?;
        let child = Self::entries(&s, parent)?
            .get(name)
            .ok_or(VolError::NotFound)?
            .ino;
        self.ensure_leaf(&mut s, child)?;
        Self::info(&s, child)
    }

    /// Creates a node of any type (`mode` carries S_IFMT). `target` is a symlink's target.
    pub fn create_node(&self, parent: u64, name: &[u8], n: NewNode) -> VolResult<NodeInfo> {
        let mut s = self.lock();
        self.create_locked(&mut s, parent, name, n)
    }

    fn create_locked(
        &self,
        s: &mut State,
        parent: u64,
        name: &[u8],
        n: NewNode,
    ) -> VolResult<NodeInfo> {
        let NewNode {
            mode,
            rdev,
            uid,
            gid,
            target,
            umask,
            inherit_acl,
        } = n;
        check_name(name)?;
        self.ensure_leaf(s, parent)?;
        let (pmode, pgid, (mode, xattrs)) = {
            let p = Self::rec(s, parent)?;
            (
                p.attr.mode,
                p.attr.gid,
                if inherit_acl {
                    acl::inherit(&p.xattrs, mode, umask)
                } else {
                    acl::inherit(&BTreeMap::new(), mode, umask)
                },
            )
        };
        if Self::entries(s, parent)?.contains_key(name) {
            return Err(VolError::Exists);
        }
        let ino = self.next_free_ino(s);
        self.ensure_leaf(s, ino)?;
        let fmt = mode & libc::S_IFMT;
        let mut mode = mode;
        let gid = if pmode & libc::S_ISGID != 0 {
            if fmt == libc::S_IFDIR {
                mode |= libc::S_ISGID;
            }
            pgid
        } else {
            gid
        };
        let now = Time::now();
        let payload = match fmt {
            libc::S_IFDIR => Payload::Dir {
                parent,
                entries: BTreeMap::new(),
            },
            libc::S_IFREG => Payload::File {
                size: 0,
                chunks: Vec::new(),
            },
            libc::S_IFLNK => Payload::Symlink(target.unwrap_or_default().to_vec()),
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => Payload::Special,
            _ => return Err(VolError::Invalid("unknown file type")),
        };
        let rec = Record {
            attr: Attr {
                mode,
                uid,
                gid,
                nlink: if fmt == libc::S_IFDIR { 2 } else { 1 },
                rdev: if matches!(fmt, libc::S_IFCHR | libc::S_IFBLK) {
                    rdev
                } else {
                    0
                },
                atime: now,
                mtime: now,
                ctime: now,
                btime: now,
            },
            xattrs,
            payload,
        };
        self.take_ino(s, ino);
        s.tree.records.insert(ino, rec);
        s.tree.inodes += 1;
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Self::entries_mut(s, parent)?.insert(
            name.to_vec(),
            DirEntry {
                ino,
                kind: kind_of(mode),
            },
        );
        if fmt == libc::S_IFDIR {
            Self::rec_mut(s, parent)?.attr.nlink += 1;
        }
        Self::touch(s, parent, true, now);
        Self::info(s, ino)
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> VolResult<NodeInfo> {
        check_name(newname)?;
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        self.ensure_leaf(&mut s, newparent)?;
        let rec = Self::rec(&s, ino)?;
        if is_dir(rec) {
            return Err(VolError::NotPermitted("hard links to directories"));
        }
        let kind = kind_of(rec.attr.mode);
        if rec.attr.nlink >= u32::MAX - 1 {
            return Err(VolError::TooManyLinks);
        }
        if Self::entries(&s, newparent)?.contains_key(newname) {
            return Err(VolError::Exists);
        }
        Self::entries_mut(&mut s, newparent)?.insert(newname.to_vec(), DirEntry { ino, kind });
        let now = Time::now();
        Self::rec_mut(&mut s, ino)?.attr.nlink += 1;
        Self::touch(&mut s, ino, false, now);
        Self::touch(&mut s, newparent, true, now);
        Self::info(&s, ino)
    }

    /// Drops one link of `ino`; frees it when no link and no open handle remain.
    fn drop_link(&self, s: &mut State, ino: u64, now: Time) {
        let remove = match s.tree.records.get_mut(&ino) {
            Some(r) => {
                if is_dir(r) {
                    r.attr.nlink = 0;
                } else {
                    r.attr.nlink = r.attr.nlink.saturating_sub(1);
                }
                r.attr.ctime = now;
                r.attr.nlink == 0 && s.open.get(&ino).copied().unwrap_or(0) == 0
            }
            None => false,
        };
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        if remove {
            self.free(s, ino);
        }
    }

    fn free(&self, s: &mut State, ino: u64) {
        if let Some(r) = s.tree.records.remove(&ino) {
            if let Payload::File { size, chunks } = &r.payload {
                s.tree.bytes = s.tree.bytes.saturating_sub(*size);
                for idx in 0..chunks.len() as u64 {
                    self.drop_unsealed(s, ino, idx);
                    s.buf.pending.remove(&(ino, idx));
                }
            }
            s.tree.inodes = s.tree.inodes.saturating_sub(1);
            s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        }
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> VolResult<()> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, parent)?;
        let e = *Self::entries(&s, parent)?
            .get(name)
            .ok_or(VolError::NotFound)?;
        self.ensure_leaf(&mut s, e.ino)?;
        if is_dir(Self::rec(&s, e.ino)?) {
            return Err(VolError::IsDir);
        }
        Self::entries_mut(&mut s, parent)?.remove(name);
        let now = Time::now();
        Self::touch(&mut s, parent, true, now);
        self.drop_link(&mut s, e.ino, now);
        Ok(())
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> VolResult<()> {
        if name == b"." {
            return Err(VolError::Invalid("rmdir of ."));
        }
        if name == b".." {
            return Err(VolError::NotEmpty);
        }
        let mut s = self.lock();
        self.ensure_leaf(&mut s, parent)?;
        let e = *Self::entries(&s, parent)?
            .get(name)
            .ok_or(VolError::NotFound)?;
        self.ensure_leaf(&mut s, e.ino)?;
        if !Self::entries(&s, e.ino)?.is_empty() {
            return Err(VolError::NotEmpty);
        }
        Self::entries_mut(&mut s, parent)?.remove(name);
        let now = Time::now();
        let p = Self::rec_mut(&mut s, parent)?;
        p.attr.nlink = p.attr.nlink.saturating_sub(1);
        Self::touch(&mut s, parent, true, now);
        self.drop_link(&mut s, e.ino, now);
        Ok(())
    }

    fn set_parent(s: &mut State, dir: u64, new_parent: u64) {
        if let Some(Record {
            payload: Payload::Dir { parent, .. },
            ..
        }) = s.tree.records.get_mut(&dir)
        {
            *parent = new_parent;
            s.tree.dirty_leaves.insert(Self::leaf_of(dir));
        }
    }

    fn adjust_nlink(s: &mut State, ino: u64, delta: i32) {
        if let Some(r) = s.tree.records.get_mut(&ino) {
            r.attr.nlink = (r.attr.nlink as i64 + delta as i64).max(0) as u32;
            s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        }
    }

    /// Fails with EINVAL when `dir` is `target` or one of its ancestors.
    fn check_not_ancestor(&self, s: &mut State, dir: u64, target: u64) -> VolResult<()> {
        let mut p = target;
        for _ in 0..100_000 {
            if p == dir {
                return Err(VolError::Invalid("cannot move a directory into itself"));
            }
            if p == ROOT_INO {
                return Ok(());
            }
            self.ensure_leaf(s, p)?;
            p = match &Self::rec(s, p)?.payload {
                Payload::Dir { parent, .. } => *parent,
                _ => return Err(VolError::NotDir),
            };
        }
        Err(VolError::Invalid("directory tree too deep or cyclic"))
    }

    /// rename(2) with RENAME_NOREPLACE or RENAME_EXCHANGE in `flags`.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> VolResult<()> {
        if flags & RENAME_WHITEOUT != 0 {
            return Err(VolError::Invalid("RENAME_WHITEOUT needs the caller's ids"));
        }
        self.rename_locked(&mut self.lock(), parent, name, newparent, newname, flags)
    }

    /// rename(2) with RENAME_WHITEOUT (and maybe RENAME_NOREPLACE), as overlayfs asks of
    /// its upper layer: the source name is left holding a whiteout, a character device
    /// 0:0 owned by the caller (`owner`), made in the same step.
    pub fn rename_whiteout(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
        owner: (u32, u32),
    ) -> VolResult<()> {
        let flags = flags & !RENAME_WHITEOUT;
        if flags & RENAME_EXCHANGE != 0 {
            return Err(VolError::Invalid("RENAME_WHITEOUT with RENAME_EXCHANGE"));
        }
        let mut s = self.lock();
        // What could still fail after the rename is done first: the whiteout's name and
        // the leaf its inode number lives in. A rename left without its whiteout would
        // let the lower file show through again in an overlay.
        check_name(name)?;
        let ino = self.next_free_ino(&s);
        self.ensure_leaf(&mut s, ino)?;
        self.rename_locked(&mut s, parent, name, newparent, newname, flags)?;
        let whiteout = NewNode {
            mode: libc::S_IFCHR,
            rdev: 0,
            uid: owner.0,
            gid: owner.1,
            target: None,
            umask: 0,
            inherit_acl: true,
        };
        self.create_locked(&mut s, parent, name, whiteout)?;
        Ok(())
    }

    fn rename_locked(
        &self,
        s: &mut State,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> VolResult<()> {
        check_name(newname)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(VolError::Invalid("unsupported rename flags"));
        }
        self.ensure_leaf(s, parent)?;
        self.ensure_leaf(s, newparent)?;
        let src = *Self::entries(s, parent)?
            .get(name)
            .ok_or(VolError::NotFound)?;
        Self::entries(s, newparent)?;
        let dst = Self::entries(s, newparent)?.get(newname).copied();
        self.ensure_leaf(s, src.ino)?;
        if let Some(d) = dst {
            self.ensure_leaf(s, d.ino)?;
        }
        let src_dir = is_dir(Self::rec(s, src.ino)?);
        let now = Time::now();

        if flags & RENAME_EXCHANGE != 0 {
            let d = dst.ok_or(VolError::NotFound)?;
            let dst_dir = is_dir(Self::rec(s, d.ino)?);
            if src_dir && parent != newparent {
                self.check_not_ancestor(s, src.ino, newparent)?;
            }
            if dst_dir && parent != newparent {
                self.check_not_ancestor(s, d.ino, parent)?;
            }
            Self::entries_mut(s, parent)?.insert(name.to_vec(), d);
            Self::entries_mut(s, newparent)?.insert(newname.to_vec(), src);
            if src_dir {
                Self::set_parent(s, src.ino, newparent);
            }
            if dst_dir {
                Self::set_parent(s, d.ino, parent);
            }
            if src_dir != dst_dir && parent != newparent {
                let (to_new, to_old) = if src_dir { (1, -1) } else { (-1, 1) };
                Self::adjust_nlink(s, newparent, to_new);
                Self::adjust_nlink(s, parent, to_old);
            }
            Self::touch(s, src.ino, false, now);
            Self::touch(s, d.ino, false, now);
            Self::touch(s, parent, true, now);
            Self::touch(s, newparent, true, now);
            return Ok(());
        }

        if let Some(d) = dst {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(VolError::Exists);
            }
            if d.ino == src.ino {
                // Two links to one inode: POSIX says do nothing.
                return Ok(());
            }
            let dst_dir = is_dir(Self::rec(s, d.ino)?);
            match (src_dir, dst_dir) {
                (true, false) => return Err(VolError::NotDir),
                (false, true) => return Err(VolError::IsDir),
                (true, true) => {
                    if !Self::entries(s, d.ino)?.is_empty() {
                        return Err(VolError::NotEmpty);
                    }
                }
                (false, false) => {}
            }
        }
        if src_dir && parent != newparent {
            self.check_not_ancestor(s, src.ino, newparent)?;
        }
        if let Some(d) = dst {
            Self::entries_mut(s, newparent)?.remove(newname);
            if is_dir(Self::rec(s, d.ino)?) {
                Self::adjust_nlink(s, newparent, -1);
            }
            self.drop_link(s, d.ino, now);
        }
        Self::entries_mut(s, parent)?.remove(name);
        Self::entries_mut(s, newparent)?.insert(newname.to_vec(), src);
        if src_dir && parent != newparent {
            Self::set_parent(s, src.ino, newparent);
            Self::adjust_nlink(s, parent, -1);
            Self::adjust_nlink(s, newparent, 1);
        }
        Self::touch(s, src.ino, false, now);
        Self::touch(s, parent, true, now);
        Self::touch(s, newparent, true, now);
        Ok(())
    }

    pub fn readlink(&self, ino: u64) -> VolResult<Vec<u8>> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        match &Self::rec(&s, ino)?.payload {
            Payload::Symlink(t) => Ok(t.clone()),
            _ => Err(VolError::Invalid("not a symlink")),
        }
    }

    /// The directory a directory sits in (the root's is itself). A record naming a
    /// parent that is not a directory (another device wrote it) is an integrity error.
    pub fn parent_of(&self, ino: u64) -> VolResult<u64> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let parent = match &Self::rec(&s, ino)?.payload {
            Payload::Dir { parent, .. } => *parent,
            _ => return Err(VolError::NotDir),
        };
        self.ensure_leaf(&mut s, parent)?;
        match Self::rec(&s, parent).map(is_dir) {
            Ok(true) => Ok(parent),
            _ => Err(VolError::Integrity {
                what: format!("directory {ino}"),
                why: "its parent is not a directory".into(),
            }),
        }
    }

    /// Directory listing: (name, ino, kind) plus the parent inode.
    pub fn readdir(&self, ino: u64) -> VolResult<(u64, Vec<Listed>)> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        match &Self::rec(&s, ino)?.payload {
            Payload::Dir { parent, entries } => Ok((
                *parent,
                entries
                    .iter()
                    .map(|(n, e)| (n.clone(), e.ino, e.kind))
                    .collect(),
            )),
            _ => Err(VolError::NotDir),
        }
    }

    pub fn setattr(&self, ino: u64, a: SetAttr) -> VolResult<NodeInfo> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let now = Time::now();
        if let Some(size) = a.size {
            self.truncate_locked(&mut s, ino, size)?;
            let r = Self::rec_mut(&mut s, ino)?;
            r.attr.mtime = now;
            if a.unprivileged && a.mode.is_none() {
                r.attr.mode = super::io::killed_mode(r.attr.mode);
            }
            super::io::drop_file_capability(&mut r.xattrs);
        }
        // chown of anything but a directory clears set-user/group-ID, even for root (the
        // kernel leaves this to us once the filesystem handles it, KILLPRIV_V2).
        let is_dir = matches!(Self::rec(&s, ino)?.payload, Payload::Dir { .. });
        if (a.uid.is_some() || a.gid.is_some()) && !is_dir {
            let r = Self::rec_mut(&mut s, ino)?;
            if a.mode.is_none() {
                r.attr.mode = super::io::killed_mode(r.attr.mode);
            }
            super::io::drop_file_capability(&mut r.xattrs);
        }
        let r = Self::rec_mut(&mut s, ino)?;
        if let Some(m) = a.mode {
            r.attr.mode = (r.attr.mode & libc::S_IFMT) | (m & !libc::S_IFMT);
            acl::follow_chmod(&mut r.xattrs, r.attr.mode);
        }
        if let Some(u) = a.uid {
            r.attr.uid = u;
        }
        if let Some(g) = a.gid {
            r.attr.gid = g;
        }
        if let Some(t) = a.atime {
            r.attr.atime = match t {
                TimeSet::Now => now,
                TimeSet::At(t) => t,
            };
        }
        if let Some(t) = a.mtime {
            r.attr.mtime = match t {
                TimeSet::Now => now,
                TimeSet::At(t) => t,
            };
        }
        r.attr.ctime = a.ctime.unwrap_or(now);
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Self::info(&s, ino)
    }

    pub fn open_handle(&self, ino: u64) -> VolResult<()> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        Self::rec(&s, ino)?;
        *s.open.entry(ino).or_insert(0) += 1;
        Ok(())
    }

    pub fn release_handle(&self, ino: u64) {
        let mut s = self.lock();
        let left = match s.open.get_mut(&ino) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            s.open.remove(&ino);
            if s.tree.records.get(&ino).is_some_and(|r| r.attr.nlink == 0) {
                self.free(&mut s, ino);
            }
        }
    }

    /// Sets an xattr of the stored namespaces (ACLs go through [`Category::set_acl`]).
    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> VolResult<()> {
        user_namespace(name)?;
        if name.len() > 255 {
            return Err(VolError::AttrTooBig);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(VolError::AttrTooBig);
        }
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = Self::rec_mut(&mut s, ino)?;
        let exists = r.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(VolError::Exists);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(VolError::NoAttr);
        }
        r.xattrs.insert(name.to_vec(), value.to_vec());
        r.attr.ctime = Time::now();
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Ok(())
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> VolResult<Vec<u8>> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = Self::rec(&s, ino)?;
        if let Some(kind) = AclKind::of_name(name) {
            return acl::for_kernel(r, kind).ok_or(VolError::NoAttr);
        }
        match r.xattrs.get(name) {
            Some(v) => Ok(v.clone()),
            // A name of another namespace that a record holds anyway (written by an older
            // or foreign build) is still readable, as `listxattr` lists it.
            None => user_namespace(name).and(Err(VolError::NoAttr)),
        }
    }

    /// The names `getxattr` answers: a stored ACL it would not hand out (one that does
    /// not parse, or that the mode says in full) is not listed either, so a reader that
    /// lists then reads (`cirrus export`, `cp -a`) never meets a listed name that is gone.
    pub fn listxattr(&self, ino: u64) -> VolResult<Vec<Vec<u8>>> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = Self::rec(&s, ino)?;
        Ok(r.xattrs
            .keys()
            .filter(|n| AclKind::of_name(n).is_none_or(|k| acl::for_kernel(r, k).is_some()))
            .cloned()
            .collect())
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> VolResult<()> {
        if let Some(kind) = AclKind::of_name(name) {
            return self.remove_acl(ino, kind);
        }
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = Self::rec_mut(&mut s, ino)?;
        if r.xattrs.remove(name).is_none() {
            return user_namespace(name).and(Err(VolError::NoAttr));
        }
        r.attr.ctime = Time::now();
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Ok(())
    }
}

/// The namespaces stored: `user.*`, and `security.*` and `trusted.*`, which the kernel
/// lets only privileged callers set (CAP_SYS_ADMIN for `trusted.*`, CAP_SETFCAP for
/// `security.capability`) before a request reaches the daemon. Reading a name of another
/// namespace (`system.*`) says so (EOPNOTSUPP, as setting one does) rather than "no such
/// attribute" (ENODATA): tools then stop asking for it on this mount after the first
/// file, instead of costing a kernel round trip each per file.
fn user_namespace(name: &[u8]) -> VolResult<()> {
    if [b"user.".as_slice(), b"security.", b"trusted."]
        .iter()
        .any(|ns| name.starts_with(ns))
    {
        Ok(())
    } else {
        Err(VolError::Unsupported(
            "only user.*, security.* and trusted.* extended attributes",
        ))
    }
}
