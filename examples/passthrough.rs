//! The FUSE ceiling of `scripts/bench` (docs/BENCH.md "The ceiling row"): a passthrough
//! filesystem with no crypto, mounted the way Cirrus mounts (same `fuser`, same session and
//! thread model, TTL, `max_write`, mount options, FUSE capabilities and read-ahead), so each
//! bench column shows how far Cirrus is from what FUSE itself allows on this machine.
//!
//! Usage: `passthrough BACKING_DIR MOUNTPOINT [THREADS]` (THREADS defaults to Cirrus's
//! `--threads` default, 2). It serves in the foreground until unmounted (`fusermount3 -u`).
//!
//! Inodes are the backing files' inode numbers (plus 2; the root is 1), mapped to the last
//! path seen for them; file handles are `std::fs::File`s used with positional I/O. It keeps
//! what Cirrus's adapter does per request (a `lookup`, `getattr` and `getxattr` each reach
//! the daemon) and nothing more: files are created as the daemon's user (the bench runs as
//! root), and set-user-ID bits are left to the backing filesystem. Not a test: nothing in CI
//! runs it. Build with `cargo build --release --example passthrough`.

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Cirrus's defaults (`cirrus mount --attr-timeout`, `--max-write-kib`, `--fuse-caps`,
/// `--readahead-kib`; src/cli/mount.rs, src/daemon/mountpoint.rs).
const TTL: Duration = Duration::from_secs(60);
const MAX_WRITE: u32 = 1024 * 1024;
const READAHEAD_KIB: u32 = 4096;
const DEFAULT_THREADS: usize = 2;
const ROOT: u64 = 1;

type Listing = Vec<(u64, FileType, OsString)>;

struct Passthrough {
    backing: PathBuf,
    /// FUSE inode → the last backing path seen for it.
    paths: Mutex<HashMap<u64, PathBuf>>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    /// Listing snapshots per open directory handle (as Cirrus: offsets index a snapshot).
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    next_fh: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn err(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn last_err() -> Errno {
    err(&io::Error::last_os_error())
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn file_type(ft: std::fs::FileType) -> FileType {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = nsec.clamp(0, 999_999_999) as u32;
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::new(0, nsec)
    }
}

fn attr(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind: file_type(m.file_type()),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(s)) => match s.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
            Err(e) => {
                // Before 1970: fuser built it as UNIX_EPOCH - Duration::new(-sec, nsec).
                let d = e.duration();
                libc::timespec {
                    tv_sec: -(d.as_secs() as libc::time_t),
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            }
        },
    }
}

/// Replies to a getxattr/listxattr-style request from a buffer-filling call.
fn reply_xattr(size: u32, reply: ReplyXattr, call: impl Fn(*mut libc::c_void, usize) -> isize) {
    let mut buf = vec![0u8; size as usize];
    let n = call(buf.as_mut_ptr().cast(), buf.len());
    if n < 0 {
        reply.error(last_err());
    } else if size == 0 {
        reply.size(n as u32);
    } else {
        reply.data(&buf[..n as usize]);
    }
}

impl Passthrough {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        lock(&self.paths).get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn ino_of(&self, path: &Path, m: &Metadata) -> u64 {
        if path == self.backing {
            ROOT
        } else {
            m.ino().wrapping_add(2)
        }
    }

    /// Records `path` for its inode and returns its attributes.
    fn remember(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(&path).map_err(|e| err(&e))?;
        let ino = self.ino_of(&path, &m);
        lock(&self.paths).insert(ino, path);
        Ok(attr(ino, &m))
    }

    fn reply_entry(&self, path: PathBuf, reply: ReplyEntry) {
        match self.remember(path) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        lock(&self.files).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_file(&self, f: File) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(fh, Arc::new(f));
        FileHandle(fh)
    }

    fn listing(&self, ino: INodeNo) -> Result<Listing, Errno> {
        let path = self.path(ino)?;
        let parent = match path.parent() {
            Some(p) if path != self.backing => {
                let m = std::fs::symlink_metadata(p).map_err(|e| err(&e))?;
                self.ino_of(p, &m)
            }
            _ => ROOT,
        };
        let mut list: Listing = vec![
            (ino.0, FileType::Directory, ".".into()),
            (parent, FileType::Directory, "..".into()),
        ];
        for e in std::fs::read_dir(&path).map_err(|e| err(&e))? {
            let e = e.map_err(|e| err(&e))?;
            let kind = e
                .file_type()
                .map(file_type)
                .unwrap_or(FileType::RegularFile);
            list.push((e.ino().wrapping_add(2), kind, e.file_name()));
        }
        Ok(list)
    }

    fn snapshot(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> Result<Arc<Listing>, Errno> {
        let cached = lock(&self.dirs).get(&fh.0).cloned();
        match cached {
            Some(l) if offset != 0 => Ok(l),
            _ => {
                let l = Arc::new(self.listing(ino)?);
                lock(&self.dirs).insert(fh.0, l.clone());
                Ok(l)
            }
        }
    }

    /// After a rename, every remembered path under `from` moves under `to`.
    fn moved(&self, from: &Path, to: &Path) {
        let mut paths = lock(&self.paths);
        for p in paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// `unlink` and `rmdir`: `op` on the backing path, then the inode is forgotten.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        op: fn(&Path) -> io::Result<()>,
        reply: ReplyEmpty,
    ) {
        match self.child(parent, name).and_then(|p| {
            let gone = self.ino_at(&p);
            op(&p).map_err(|e| err(&e))?;
            self.forget_path(gone, &p);
            Ok(())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// The inode `path` names now, if any (taken before it is removed or replaced).
    fn ino_at(&self, path: &Path) -> Option<u64> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| self.ino_of(path, &m))
    }

    /// Forgets inode `gone` if `path` is still the path remembered for it. O(1): a scan of
    /// every remembered path made `rm -rf` of the bench's tree quadratic (4.8 s).
    fn forget_path(&self, gone: Option<u64>, path: &Path) {
        let mut paths = lock(&self.paths);
        if let Some(ino) = gone
            && paths.get(&ino).is_some_and(|p| p == path)
        {
            paths.remove(&ino);
        }
    }

    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        ids: (Option<u32>, Option<u32>),
        size: Option<u64>,
        times: (Option<TimeOrNow>, Option<TimeOrNow>),
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let path = self.path(ino)?;
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| err(&e))?;
        }
        if ids.0.is_some() || ids.1.is_some() {
            std::os::unix::fs::lchown(&path, ids.0, ids.1).map_err(|e| err(&e))?;
        }
        if let Some(size) = size {
            match fh.map(|fh| self.file(fh)) {
                Some(Ok(f)) => f.set_len(size),
                _ => OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)),
            }
            .map_err(|e| err(&e))?;
        }
        if times.0.is_some() || times.1.is_some() {
            let c = cstr(&path)?;
            let ts = [timespec(times.0), timespec(times.1)];
            // SAFETY: c is a NUL-terminated path and ts holds two timespecs.
            let r = unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    ts.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r != 0 {
                return Err(last_err());
            }
        }
        let m = std::fs::symlink_metadata(&path).map_err(|e| err(&e))?;
        Ok(attr(ino.0, &m))
    }
}

impl fuser::Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        use fuser::InitFlags as F;
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(max);
        }
        for cap in [
            F::FUSE_DO_READDIRPLUS | F::FUSE_READDIRPLUS_AUTO,
            F::FUSE_PARALLEL_DIROPS,
            F::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if let Err(missing) = config.add_capabilities(cap) {
                eprintln!("passthrough: kernel lacks FUSE capability {missing:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok(p) => self.reply_entry(p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = match fh.map(|fh| self.file(fh)) {
            Some(Ok(f)) => f.metadata().map_err(|e| err(&e)),
            _ => self
                .path(ino)
                .and_then(|p| std::fs::symlink_metadata(p).map_err(|e| err(&e))),
        };
        match m {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, (uid, gid), size, (atime, mtime), fh) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(|e| err(&e)))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, name).and_then(|p| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&p)
                .map(|()| p)
                .map_err(|e| err(&e))
        });
        match r {
            Ok(p) => self.reply_entry(p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| std::fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| std::fs::remove_dir(p), reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        match self.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p)
                .map(|()| p)
                .map_err(|e| err(&e))
        }) {
            Ok(p) => self.reply_entry(p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.bits() != 0 {
            reply.error(Errno::EINVAL);
            return;
        }
        let r = self.child(parent, name).and_then(|from| {
            let to = self.child(newparent, newname)?;
            let replaced = self.ino_at(&to);
            std::fs::rename(&from, &to).map_err(|e| err(&e))?;
            self.forget_path(replaced, &to);
            self.moved(&from, &to);
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self.path(ino).and_then(|from| {
            let to = self.child(newparent, newname)?;
            std::fs::hard_link(&from, &to)
                .map(|()| to)
                .map_err(|e| err(&e))
        });
        match r {
            Ok(p) => self.reply_entry(p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & libc::O_ACCMODE;
        let r = self.path(ino).and_then(|p| {
            OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                // Not O_APPEND: the kernel already gives appends the file's end as offset.
                .custom_flags(flags.0 & libc::O_TRUNC)
                .open(p)
                .map_err(|e| err(&e))
        });
        match r {
            Ok(f) => reply.opened(self.add_file(f), FopenFlags::FOPEN_NOFLUSH),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.child(parent, name).and_then(|p| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .custom_flags(flags & libc::O_EXCL)
                .mode(mode & !umask & 0o7777)
                .open(&p)
                .map_err(|e| err(&e))?;
            Ok((self.remember(p)?, f))
        });
        match r {
            Ok((a, f)) => reply.created(
                &TTL,
                &a,
                Generation(0),
                self.add_file(f),
                FopenFlags::FOPEN_NOFLUSH,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            buf.resize(size as usize, 0);
            let mut done = 0;
            while done < buf.len() {
                match f.read_at(&mut buf[done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        reply.error(err(&e));
                        return;
                    }
                }
            }
            reply.data(&buf[..done]);
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self
            .file(fh)
            .and_then(|f| f.write_all_at(data, offset).map_err(|e| err(&e)))
        {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    /// Not normally called: files are opened with FOPEN_NOFLUSH, as in Cirrus.
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
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.file(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(|e| err(&e))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino) {
            Ok(_) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.dirs).remove(&fh.0);
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
        for (i, (child, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), (i + 1) as u64, *kind, name) {
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
        let (list, dir) = match self
            .snapshot(ino, fh, offset)
            .and_then(|l| Ok((l, self.path(ino)?)))
        {
            Ok(x) => x,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        for (i, (child, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            let is_dot = name == "." || name == "..";
            // The kernel makes no dentry for . and ..; their attributes are not used.
            let (a, ttl) = if is_dot {
                let Ok(m) = std::fs::symlink_metadata(&dir) else {
                    break;
                };
                let mut a = attr(*child, &m);
                a.kind = *kind;
                (a, Duration::ZERO)
            } else {
                match self.remember(dir.join(name)) {
                    Ok(a) => (a, TTL),
                    // Gone since the snapshot: left out, as a fresh listing would.
                    Err(_) => continue,
                }
            };
            if reply.add(
                INodeNo(a.ino.0),
                (i + 1) as u64,
                name,
                &ttl,
                &a,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Ok(c) = cstr(&self.backing) else {
            reply.error(Errno::EINVAL);
            return;
        };
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is a NUL-terminated path and s a valid statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            reply.error(last_err());
            return;
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // As Cirrus: only user.* is stored, and other namespaces say so, which lets
        // `ls -l` stop asking for labels and ACLs after the first file.
        if !name.as_bytes().starts_with(b"user.") {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let (Ok(p), Ok(n)) = (
            self.path(ino).and_then(|p| cstr(&p)),
            CString::new(name.as_bytes()),
        ) else {
            reply.error(Errno::ENOENT);
            return;
        };
        // SAFETY: p and n are NUL-terminated; buf is valid for len bytes.
        reply_xattr(size, reply, |buf, len| unsafe {
            libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf, len)
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let Ok(p) = self.path(ino).and_then(|p| cstr(&p)) else {
            reply.error(Errno::ENOENT);
            return;
        };
        // SAFETY: p is NUL-terminated; buf is valid for len bytes.
        reply_xattr(size, reply, |buf, len| unsafe {
            libc::llistxattr(p.as_ptr(), buf.cast(), len)
        });
    }
}

/// Cirrus's read-ahead (src/daemon/mountpoint.rs `set_readahead`): needs root.
fn set_readahead(mp: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let want = mp.to_string_lossy();
    let dev = info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        (f.nth(1)? == want).then_some(dev)
    });
    if let Some(dev) = dev {
        let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
        if let Err(e) = std::fs::write(&knob, READAHEAD_KIB.to_string()) {
            eprintln!("passthrough: read-ahead left at the default ({knob}: {e})");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (backing, mp) = match args.as_slice() {
        [b, m] | [b, m, _] => (std::fs::canonicalize(b)?, std::fs::canonicalize(m)?),
        _ => return Err("usage: passthrough BACKING_DIR MOUNTPOINT [THREADS]".into()),
    };
    let threads = match args.get(2) {
        Some(t) => t.to_string_lossy().parse()?,
        None => DEFAULT_THREADS,
    };
    let fs = Passthrough {
        paths: Mutex::new(HashMap::from([(ROOT, backing.clone())])),
        backing,
        files: Mutex::new(HashMap::new()),
        dirs: Mutex::new(HashMap::new()),
        next_fh: AtomicU64::new(1),
    };
    // As src/daemon/mod.rs `mount_session`.
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("passthrough".into()),
        fuser::MountOption::Subtype("passthrough".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::Owner;
    config.n_threads = Some(threads);
    config.clone_fd = true;
    let session = fuser::Session::new(fs, &mp, &config)?;
    let bg = session.spawn()?;
    set_readahead(&mp);
    bg.join()?;
    Ok(())
}
