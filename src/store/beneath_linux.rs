//! Opening paths beneath a directory descriptor without following any symbolic link:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or a walk opening one component
//! at a time with `O_NOFOLLOW` where the kernel has no `openat2` (before Linux 5.6).
//! A symbolic link anywhere in the path fails with `ELOOP` (an escape with `EXDEV`).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel answered `ENOSYS` to `openat2`, so later opens go straight to the walk.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Makes this thread's opens take the walk, as on a kernel without `openat2`.
    pub(super) static FORCE_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn use_openat2() -> bool {
    #[cfg(test)]
    if FORCE_WALK.with(|f| f.get()) {
        return false;
    }
    !NO_OPENAT2.load(Ordering::Relaxed)
}

/// Flags every open here carries: the descriptor is not inherited by children, and a
/// final symbolic link is refused even on the walk.
const ALWAYS: libc::c_int = libc::O_CLOEXEC | libc::O_NOFOLLOW;
/// How directories on the way are opened (readable, so they can be fsynced and listed).
const DIR: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor the kernel just returned, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One component (no `/`), relative to `dir`, never following a final symlink.
fn openat(
    dir: BorrowedFd,
    name: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: a valid descriptor and C string.
    let r = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | ALWAYS,
            mode as libc::c_uint,
        )
    });
    match r {
        // With O_DIRECTORY a link answers ENOTDIR, not ELOOP: said as openat2 says it, so
        // callers tell a refused link from a file in the way by one errno on both paths.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) && flags & libc::O_DIRECTORY != 0 => {
            match stat_at(dir, name) {
                Ok(st) if kind_of_mode(st.st_mode) == Kind::Link => {
                    Err(io::Error::from_raw_os_error(libc::ELOOP))
                }
                _ => Err(e),
            }
        }
        r => r,
    }
}

fn openat2(
    dir: BorrowedFd,
    rel: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstr(rel)?;
    // SAFETY: open_how is plain data; zeroed is its "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | ALWAYS) as u64;
    // The kernel refuses a mode without O_CREAT.
    if flags & libc::O_CREAT != 0 {
        how.mode = mode as u64;
    }
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: valid descriptor, C string and open_how of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(ret as libc::c_int)
}

/// The same as `open`, one component at a time (for kernels without `openat2`).
pub(super) fn walk(
    dir: BorrowedFd,
    rel: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let last = parts.pop().unwrap_or(".");
    let mut cur: Option<OwnedFd> = None;
    for p in parts {
        let at = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
        cur = Some(openat(at, p, DIR, 0)?);
    }
    let at = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
    openat(at, last, flags, mode)
}

/// Opens `rel` (components separated by `/`, none `..`) beneath `dir` without following
/// a symbolic link at any component.
pub(super) fn open(
    dir: BorrowedFd,
    rel: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    if use_openat2() {
        match openat2(dir, rel, flags, mode) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            // Some container seccomp filters answer EPERM for syscalls they do not know:
            // the walk then gives the real answer.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            r => return r,
        }
    }
    walk(dir, rel, flags, mode)
}

/// Opens directory `rel` beneath `dir`, creating missing components (mode 0777 less the
/// umask, as `create_dir_all` does); a symbolic link on the way is refused, not followed.
pub(super) fn open_dir_creating(dir: BorrowedFd, rel: &str) -> io::Result<OwnedFd> {
    match open(dir, rel, DIR, 0) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => return r,
    }
    let mut cur: Option<OwnedFd> = None;
    for p in rel.split('/') {
        let at = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir);
        let c = cstr(p)?;
        // SAFETY: a valid descriptor and C string. mkdirat never follows a final symlink
        // (it fails with EEXIST, and the open below then refuses the link).
        match check(unsafe { libc::mkdirat(at.as_raw_fd(), c.as_ptr(), 0o777) }) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
            _ => {}
        }
        cur = Some(openat(at, p, DIR, 0)?);
    }
    cur.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens a directory `rel` beneath `dir` (`.` for `dir` itself).
pub(super) fn open_dir(dir: BorrowedFd, rel: &str) -> io::Result<OwnedFd> {
    open(dir, rel, DIR, 0)
}

/// Creates a new file `name` in `dir` for writing (`O_EXCL`: never an existing file or link).
pub(super) fn create_new(dir: BorrowedFd, name: &str, mode: libc::mode_t) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )
}

/// `lstat` of one entry of `dir`.
pub(super) fn stat_at(dir: BorrowedFd, name: &str) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data the call fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and stat buffer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `fstat` of an open descriptor.
pub(super) fn stat_fd(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data the call fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and stat buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Renames `from` to `to`, both entries of `dir` (a final symlink is moved or replaced,
/// never followed).
pub(super) fn rename_in(dir: BorrowedFd, from: &str, to: &str) -> io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    let d = dir.as_raw_fd();
    // SAFETY: valid descriptor and C strings.
    check(unsafe { libc::renameat(d, f.as_ptr(), d, t.as_ptr()) })
}

/// Removes the non-directory entry `name` of `dir` (a symlink itself, never its target).
pub(super) fn unlink_in(dir: BorrowedFd, name: &str) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) })
}

/// What a directory entry is, from `readdir`'s type or, where the file system does not
/// give one, from `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Dir,
    File,
    Link,
    Other,
}

pub(super) fn kind_of_mode(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// The entries of an open directory (without `.` and `..`), with their kinds.
pub(super) fn read_dir(dir: BorrowedFd) -> io::Result<Vec<(Vec<u8>, Kind)>> {
    // fdopendir takes the descriptor over: give it a duplicate, closed by closedir.
    // SAFETY: a valid descriptor.
    let dup = owned(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    let raw = dup.into_raw_fd();
    // SAFETY: a valid directory descriptor; on success the stream owns it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the duplicate is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut out = Vec::new();
    let res = loop {
        // SAFETY: errno is thread-local; cleared so the end of the stream can be told
        // from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: a valid open stream.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: readdir returned a valid entry, alive until the next call.
        let (name, dtype) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let name = name.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match dtype {
            libc::DT_DIR => Kind::Dir,
            libc::DT_REG => Kind::File,
            libc::DT_LNK => Kind::Link,
            libc::DT_UNKNOWN => match std::str::from_utf8(name) {
                Ok(n) => match stat_at(dir, n) {
                    Ok(st) => kind_of_mode(st.st_mode),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => break Err(e),
                },
                Err(_) => Kind::Other,
            },
            _ => Kind::Other,
        };
        out.push((name.to_vec(), kind));
    };
    // SAFETY: the stream opened above, closed once (with its descriptor).
    unsafe { libc::closedir(stream) };
    res.map(|()| out)
}

/// `fstatvfs` of an open descriptor: (bytes used, bytes available).
pub(super) fn usage(fd: BorrowedFd) -> Option<(u64, u64)> {
    // SAFETY: statvfs is plain data the call fills in.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut s) } != 0 {
        return None;
    }
    let used = (s.f_blocks - s.f_bfree) * s.f_frsize;
    let avail = s.f_bavail * s.f_frsize;
    Some((used, avail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root(d: &std::path::Path) -> OwnedFd {
        OwnedFd::from(std::fs::File::open(d).unwrap())
    }

    /// Both ways of opening refuse a link at a middle or final component with ELOOP.
    #[test]
    fn open_and_walk_refuse_links_at_every_component() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), b"outside").unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("real/f"), b"inside").unwrap();
        symlink(outside.path(), d.path().join("dirlink")).unwrap();
        symlink(outside.path().join("f"), d.path().join("real/filelink")).unwrap();
        let r = root(d.path());
        for f in [open, walk] {
            assert!(f(r.as_fd(), "real/f", libc::O_RDONLY, 0).is_ok());
            for bad in ["dirlink/f", "real/filelink", "dirlink"] {
                let e = f(r.as_fd(), bad, libc::O_RDONLY, 0).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{bad}: {e}");
            }
        }
        let e = open_dir_creating(r.as_fd(), "dirlink/new").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(!outside.path().join("new").exists());
        assert!(open_dir_creating(r.as_fd(), "real/a/b").is_ok());
        assert!(d.path().join("real/a/b").is_dir());
    }

    #[test]
    fn read_dir_tells_links_from_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        symlink("sub", d.path().join("l")).unwrap();
        let mut got = read_dir(root(d.path()).as_fd()).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                (b"f".to_vec(), Kind::File),
                (b"l".to_vec(), Kind::Link),
                (b"sub".to_vec(), Kind::Dir),
            ]
        );
    }
}
