//! The kernel's side: `fuser::Filesystem` for [`CirrusFs`], one method per FUSE request,
//! each finding the category the inode belongs to and replying with its answer or errno.

use super::attr::{from_system, generation, time_set};
use super::{CirrusFs, FS_ROOT, errno};
use crate::volume::{AclKind, Allocate, NewNode, NodeInfo, ROOT_INO, SetAttr, VolError};
use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use log::info;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// The SELinux label attribute (see `getxattr`).
const SELINUX_LABEL: &[u8] = b"security.selinux";

/// Files open with `FOPEN_NOFLUSH` (a close commits nothing, so it needs no round trip)
/// and `FOPEN_KEEP_CACHE`: the kernel keeps a file's pages across opens, which is safe as
/// every change to a file's content that the kernel did not make itself (a merge, a web
/// upload) drops them (`invalidate.rs`). Reads of whole chunks rely on it, since they
/// skip the chunk cache.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_NOFLUSH.union(FopenFlags::FOPEN_KEEP_CACHE);

impl CirrusFs {
    /// Creates a node under `parent` (refused in the root) and replies with its entry.
    fn create_entry(&self, parent: INodeNo, name: &OsStr, n: NewNode, op: &str, reply: ReplyEntry) {
        let Some((c, p)) = self.split(parent) else {
            reply.error(Self::root_refusal(op));
            return;
        };
        reply_entry(self, c.id, c.create_node(p, name.as_bytes(), n), op, reply);
    }

    /// Sets a POSIX ACL (the kernel checked that the caller owns the node, or may act as
    /// if it did, and that the ACL is valid). Set-group-ID goes when the caller is neither
    /// privileged nor in the file's group, as `posix_acl_update_mode` has it: the kernel
    /// tells the daemon only through an extension fuser does not speak.
    fn set_acl(&self, req: &Request, ino: INodeNo, kind: AclKind, value: &[u8], reply: ReplyEmpty) {
        if !self.acls_in_kernel {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let Some((c, i)) = self.split(ino) else {
            return reply.error(Self::root_refusal("setfacl"));
        };
        let keep_setgid =
            req.uid() == 0 || c.getattr(i).is_ok_and(|n| caller_in_group(req, n.attr.gid));
        reply_empty(c.set_acl(i, kind, value, keep_setgid), "setfacl", reply);
    }

    /// The entry of a node found by its id (the export path's lookups of "." and "..").
    fn lookup_by_id(&self, ino: INodeNo, reply: ReplyEntry) {
        if ino.0 == FS_ROOT {
            return reply.entry(&self.opts.ttl, &self.root_attr(), Generation(0));
        }
        match self.split(ino) {
            // A node with no link left is one removed while open: the kernel holds it
            // while it is open, so a handle that asks for it names something gone (a
            // directory kept through a crash must not come back to life by handle).
            Some((c, i)) => match c.getattr(i) {
                Ok(n) if n.attr.nlink == 0 => reply.error(Errno::ESTALE),
                r => reply_entry(self, c.id, r, "lookup by id", reply),
            },
            // A category that is not mounted: the handle names nothing here.
            None => reply.error(Errno::ESTALE),
        }
    }

    /// fsync of anything in a category commits that category (the root has nothing to do).
    fn commit_of(&self, ino: INodeNo, op: &str, reply: ReplyEmpty) {
        match self.split(ino) {
            Some((c, _)) => reply_empty(c.commit(), op, reply),
            None => reply.ok(),
        }
    }
}

impl CirrusFs {
    /// What a create-type request asks for, owned by the caller. With `FUSE_DONT_MASK`
    /// the kernel leaves the umask to us (it must not apply under a default ACL); without
    /// it the mode comes masked, and masking again changes nothing.
    fn node<'a>(
        &self,
        req: &Request,
        mode: u32,
        rdev: u64,
        target: Option<&'a [u8]>,
        umask: u32,
    ) -> NewNode<'a> {
        NewNode {
            mode,
            rdev,
            uid: req.uid(),
            gid: req.gid(),
            target,
            umask: umask & 0o777,
            inherit_acl: self.acls_in_kernel,
        }
    }
}

/// Whether the caller's primary or supplementary groups hold `gid` (the supplementary
/// ones from /proc, which FUSE does not pass; a process gone since counts as not).
fn caller_in_group(req: &Request, gid: u32) -> bool {
    if req.gid() == gid {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", req.pid())) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
}

fn reply_entry(
    fs: &CirrusFs,
    cat: u32,
    r: Result<NodeInfo, VolError>,
    op: &str,
    reply: ReplyEntry,
) {
    match r {
        Ok(n) => reply.entry(&fs.opts.ttl, &fs.attr_of(cat, &n), generation(&n)),
        Err(e) => reply.error(errno(&e, op)),
    }
}

fn reply_empty(r: Result<(), VolError>, op: &str, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e, op)),
    }
}

impl fuser::Filesystem for CirrusFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(self.opts.max_write) {
            let _ = config.set_max_write(max);
        }
        // The export path: lookups of "." and ".." by node id (below), so file handles
        // (NFS, open_by_handle_at) outlive the kernel's caches. A handle is node id and
        // generation (`attr::generation`, from the birth time).
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT) {
            info!(
                "kernel lacks FUSE capability {missing:?}; file handles go stale with its caches"
            );
        }
        for cap in self.opts.capabilities.iter().copied() {
            match config.add_capabilities(cap) {
                Ok(()) if cap.contains(InitFlags::FUSE_POSIX_ACL) => self.acls_in_kernel = true,
                Ok(()) => {}
                Err(missing) => {
                    info!("kernel lacks FUSE capability {missing:?}; continuing without it")
                }
            }
        }
        info!("FUSE session initialised");
        Ok(())
    }

    fn destroy(&mut self) {
        self.commit_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // The export path: the kernel asks for "." to find a node by id alone (a file
        // handle whose inode it no longer holds) and for ".." to reconnect a directory
        // to the tree. Only then: a path lookup never sends either.
        match name.as_bytes() {
            b"." => return self.lookup_by_id(parent, reply),
            b".." => {
                let up = match self.split(parent) {
                    None if parent.0 == FS_ROOT => Ok(INodeNo(FS_ROOT)),
                    None => Err(Errno::ESTALE),
                    Some((_, ROOT_INO)) => Ok(INodeNo(FS_ROOT)),
                    Some((c, i)) => c
                        .parent_of(i)
                        .map(|p| Self::global(c.id, p))
                        .map_err(|e| errno(&e, "lookup ..")),
                };
                return match up {
                    Ok(up) => self.lookup_by_id(up, reply),
                    Err(e) => reply.error(e),
                };
            }
            _ => {}
        }
        if parent.0 == FS_ROOT {
            match self.cat_by_name(name) {
                Some(c) => reply_entry(self, c.id, c.getattr(ROOT_INO), "lookup", reply),
                None => reply.error(Errno::ENOENT),
            }
            return;
        }
        match self.split(parent) {
            Some((c, p)) => reply_entry(self, c.id, c.lookup(p, name.as_bytes()), "lookup", reply),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == FS_ROOT {
            reply.attr(&self.opts.ttl, &self.root_attr());
            return;
        }
        match self.split(ino) {
            Some((c, i)) => match c.getattr(i) {
                Ok(n) => reply.attr(&self.opts.ttl, &self.attr_of(c.id, &n)),
                Err(e) => reply.error(errno(&e, "getattr")),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if ino.0 == FS_ROOT {
            reply.error(Self::root_refusal("setattr"));
            return;
        }
        let Some((c, i)) = self.split(ino) else {
            reply.error(Errno::ENOENT);
            return;
        };
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(from_system),
            unprivileged: req.uid() != 0,
        };
        match c.setattr(i, a) {
            Ok(n) => reply.attr(&self.opts.ttl, &self.attr_of(c.id, &n)),
            Err(e) => reply.error(errno(&e, "setattr")),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.split(ino) {
            Some((c, i)) => match c.readlink(i) {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e, "readlink")),
            },
            None => reply.error(Errno::EINVAL),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let n = self.node(req, mode, rdev as u64, None, umask);
        self.create_entry(parent, name, n, "mknod", reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mode = libc::S_IFDIR | (mode & 0o7777);
        self.create_entry(
            parent,
            name,
            self.node(req, mode, 0, None, umask),
            "mkdir",
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.split(parent) {
            Some((c, p)) => reply_empty(c.unlink(p, name.as_bytes()), "unlink", reply),
            None => reply.error(Self::root_refusal("unlink")),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.split(parent) {
            Some((c, p)) => reply_empty(c.rmdir(p, name.as_bytes()), "rmdir", reply),
            None => reply.error(Self::root_refusal("rmdir")),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = Some(target.as_os_str().as_bytes());
        let n = self.node(req, libc::S_IFLNK | 0o777, 0, target, 0);
        self.create_entry(parent, link_name, n, "symlink", reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some((c1, p1)), Some((c2, p2))) = (self.split(parent), self.split(newparent)) else {
            reply.error(Self::root_refusal("rename"));
            return;
        };
        if c1.id != c2.id {
            info!(
                "rename from category {} to {} refused with EXDEV (categories have separate keys)",
                c1.name, c2.name
            );
            reply.error(Errno::EXDEV);
            return;
        }
        let (from, to) = (name.as_bytes(), newname.as_bytes());
        let r = if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            // renameat2 asks CAP_MKNOD of its caller; overlayfs calls the VFS directly.
            // Either way the whiteout is a 0:0 node of mode 0, the caller's.
            c1.rename_whiteout(p1, from, p2, to, flags.bits(), (req.uid(), req.gid()))
        } else {
            c1.rename(p1, from, p2, to, flags.bits())
        };
        reply_empty(r, "rename", reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (Some((c1, i)), Some((c2, p))) = (self.split(ino), self.split(newparent)) else {
            reply.error(Self::root_refusal("link"));
            return;
        };
        if c1.id != c2.id {
            reply.error(Errno::EXDEV);
            return;
        }
        reply_entry(
            self,
            c1.id,
            c1.link(i, p, newname.as_bytes()),
            "link",
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.split(ino) {
            Some((c, i)) => match c.open_handle(i) {
                Ok(()) => {
                    if flags.0 & libc::O_ACCMODE != libc::O_WRONLY
                        && c.note_open_for_reading(i)
                        && let Some(k) = self.kernel.get()
                    {
                        k.attributes(ino);
                    }
                    reply.opened(FileHandle(0), OPEN_FLAGS)
                }
                Err(e) => reply.error(errno(&e, "open")),
            },
            None => reply.error(Errno::EISDIR),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        match self.split(ino) {
            Some((c, i)) => BUF.with(|b| {
                let mut buf = b.borrow_mut();
                match c.read_into(i, offset, size, &mut buf) {
                    Ok(()) => reply.data(&buf),
                    Err(e) => reply.error(errno(&e, "read")),
                }
            }),
            None => reply.error(Errno::EISDIR),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let kill_suidgid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.split(ino) {
            Some((c, i)) => match c.write_reporting(i, offset, data, kill_suidgid) {
                Ok((n, killed)) => {
                    // The write cleared set-user-ID/set-group-ID: the kernel's cached mode
                    // still has them until the attribute timeout (a write invalidates
                    // only size and times there), and `stat -c %a` or an exec would see
                    // them. Told before the reply, so the writer's next call cannot. (The
                    // kernel flags every unprivileged write, so only a real change.)
                    if killed && let Some(k) = self.kernel.get() {
                        k.attributes(ino);
                    }
                    reply.written(n)
                }
                Err(e) => reply.error(errno(&e, "write")),
            },
            None => reply.error(Errno::EISDIR),
        }
    }

    /// Not normally called: files are opened with FOPEN_NOFLUSH (data is committed by
    /// fsync, the periodic commit and unmount, so a close has nothing to wait for), which
    /// saves one kernel round trip per close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some((c, i)) = self.split(ino) {
            c.release_handle(i);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit_of(ino, "fsync", reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit_of(ino, "fsyncdir", reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // The listing itself is taken by the first readdir (offset 0), not here, so it is
        // built once per pass; this surfaces an unreadable directory early (EIO), and
        // counts the handle: a directory removed or renamed over while open stays (with
        // no link) until closed, so fstat of the handle still works, as on ext4.
        if ino.0 != FS_ROOT
            && let Some((c, i)) = self.split(ino)
            && let Err(e) = c.open_handle(i)
        {
            reply.error(errno(&e, "opendir"));
            return;
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        if ino.0 != FS_ROOT
            && let Some((c, i)) = self.split(ino)
        {
            c.release_handle(i);
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.snapshot(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, (i + 1) as u64, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let list = match self.snapshot(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        for (i, (child, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            let is_dot = name.as_slice() == b"." || name.as_slice() == b"..";
            // The kernel makes no dentry for . and ..; their attributes are not used.
            let (attr, ttl, generation) = match (is_dot, self.node_attr(*child)) {
                (false, Some((a, g))) => (a, self.opts.ttl, g),
                _ => {
                    let mut a = self.root_attr();
                    a.ino = *child;
                    a.kind = *kind;
                    (a, Duration::ZERO, Generation(0))
                }
            };
            if reply.add(
                *child,
                (i + 1) as u64,
                OsStr::from_bytes(name),
                &ttl,
                &attr,
                generation,
            ) {
                break;
            }
        }
        reply.ok();
    }

    /// Modes 0 and KEEP_SIZE reserve (nothing to preallocate in sealed chunks: the size
    /// grows unless kept, and the request fails with ENOSPC when the store, or the upload
    /// journal of a remote one, has less room than it asks for), PUNCH_HOLE and
    /// ZERO_RANGE zero the range (whole chunks become holes). Other modes: EOPNOTSUPP.
    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let how = match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 => Allocate::Reserve { keep_size },
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => Allocate::PunchHole,
            libc::FALLOC_FL_ZERO_RANGE => Allocate::ZeroRange { keep_size },
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        let Some((c, i)) = self.split(ino) else {
            return reply.error(Errno::EISDIR);
        };
        if let Allocate::Reserve { .. } = how {
            // The bytes the range could need beyond what the file holds now.
            let held = c.getattr(i).map(|n| n.size).unwrap_or(0);
            let wanted = offset.saturating_add(length).saturating_sub(held);
            if let Some((_, avail)) = (self.usage)()
                && wanted > avail
            {
                return reply.error(Errno::ENOSPC);
            }
        }
        reply_empty(c.fallocate(i, offset, length, how), "fallocate", reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (used, avail) = (self.usage)().unwrap_or((0, 1 << 40));
        let used_inodes: u64 = self.cats.values().map(|c| c.stats().1).sum();
        let free_inodes = 1u64 << 32;
        let bs = 4096u64;
        reply.statfs(
            (used + avail) / bs,
            avail / bs,
            avail / bs,
            used_inodes + free_inodes,
            free_inodes,
            bs as u32,
            255,
            bs as u32,
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if let Some(kind) = AclKind::of_name(name.as_bytes()) {
            return self.set_acl(req, ino, kind, value, reply);
        }
        match self.split(ino) {
            Some((c, i)) => reply_empty(
                c.setxattr(i, name.as_bytes(), value, flags),
                "setxattr",
                reply,
            ),
            None => reply.error(Errno::EPERM),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let acl = AclKind::of_name(name.as_bytes()).is_some();
        if acl && !self.acls_in_kernel {
            // ACLs stored by an ACL mount are not shown where the kernel does not
            // enforce them (getfacl would list denials that do not hold).
            return reply.error(Errno::EOPNOTSUPP);
        }
        let Some((c, i)) = self.split(ino) else {
            // The drive's root has no attributes, and stores none of any namespace.
            reply.error(if name.as_bytes().starts_with(b"user.") || acl {
                Errno::NO_XATTR
            } else {
                Errno::EOPNOTSUPP
            });
            return;
        };
        match c.getxattr(i, name.as_bytes()) {
            Ok(v) => {
                if size == 0 {
                    reply.size(v.len() as u32);
                } else if v.len() > size as usize {
                    reply.error(Errno::ERANGE);
                } else {
                    reply.data(&v);
                }
            }
            // GNU `ls -l` asks every file for its SELinux label, and keeps asking while the
            // answer is ENODATA: a round trip per file. SELinux labels FUSE mounts by
            // policy (genfscon), never from this attribute, so an unset label says
            // "unsupported" as before `security.*` was stored, and `ls` stops asking.
            Err(VolError::NoAttr) if name.as_bytes() == SELINUX_LABEL => {
                reply.error(Errno::EOPNOTSUPP)
            }
            Err(e) => reply.error(errno(&e, "getxattr")),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = match self.split(ino) {
            Some((c, i)) => match c.listxattr(i) {
                Ok(n) => n,
                Err(e) => {
                    reply.error(errno(&e, "listxattr"));
                    return;
                }
            },
            None => Vec::new(),
        };
        let mut buf = Vec::new();
        // As ext4, `trusted.*` names are listed to the privileged only (the kernel does
        // not filter a FUSE listing; root stands for CAP_SYS_ADMIN here).
        let privileged = req.uid() == 0;
        for n in names {
            if !privileged && n.starts_with(b"trusted.") {
                continue;
            }
            if !self.acls_in_kernel && AclKind::of_name(&n).is_some() {
                continue;
            }
            buf.extend_from_slice(&n);
            buf.push(0);
        }
        if size == 0 {
            reply.size(buf.len() as u32);
        } else if buf.len() > size as usize {
            reply.error(Errno::ERANGE);
        } else {
            reply.data(&buf);
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if AclKind::of_name(name.as_bytes()).is_some() && !self.acls_in_kernel {
            return reply.error(Errno::EOPNOTSUPP);
        }
        match self.split(ino) {
            Some((c, i)) => reply_empty(c.removexattr(i, name.as_bytes()), "removexattr", reply),
            None if name.as_bytes().starts_with(b"user.") => reply.error(Errno::NO_XATTR),
            None => reply.error(Errno::EOPNOTSUPP),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let Some((c, p)) = self.split(parent) else {
            reply.error(Self::root_refusal("create"));
            return;
        };
        let mode = libc::S_IFREG | (mode & 0o7777);
        match c
            .create_node(p, name.as_bytes(), self.node(req, mode, 0, None, umask))
            .and_then(|n| c.open_handle(n.ino).map(|_| n))
        {
            Ok(n) => reply.created(
                &self.opts.ttl,
                &self.attr_of(c.id, &n),
                generation(&n),
                FileHandle(0),
                OPEN_FLAGS,
            ),
            Err(e) => reply.error(errno(&e, "create")),
        }
    }
}
