//! Thin wrappers over the syscalls the POSIX tests observe (times, modes, owners,
//! special files, renameat2, raw readdir), returning errno instead of hiding it.

use super::*;
use std::ffi::{CStr, CString};
use std::fmt::Debug;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Path to a C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path contains NUL")
}

/// Convert a libc return value into io::Result.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Convert a libc ssize_t return value into io::Result.
pub fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Assert that `r` failed with exactly `expected`.
#[track_caller]
pub fn assert_errno<T: Debug>(r: io::Result<T>, expected: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected {}, but it succeeded ({v:?})",
            errno_name(expected)
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(expected),
            "{what}: expected {}, got {e:?}",
            errno_name(expected)
        ),
    }
}

/// Assert a child-process result code (see [`in_child`]).
#[track_caller]
pub fn assert_code(code: i32, expected: i32, what: &str) {
    assert_eq!(
        code,
        expected,
        "{what}: expected {}, got {}",
        if expected == 0 {
            "success".to_string()
        } else {
            errno_name(expected)
        },
        if code == 0 {
            "success".to_string()
        } else {
            errno_name(code)
        }
    );
}

/// A timestamp argument for [`set_times`].
#[derive(Clone, Copy, Debug)]
pub enum Ts {
    At(i64, i64),
    Now,
    Omit,
}

impl Ts {
    fn timespec(self) -> libc::timespec {
        match self {
            Ts::At(s, ns) => libc::timespec {
                tv_sec: s as libc::time_t,
                tv_nsec: ns as libc::c_long,
            },
            Ts::Now => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            Ts::Omit => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        }
    }
}

/// utimensat(AT_FDCWD, path, [atime, mtime], follow ? 0 : AT_SYMLINK_NOFOLLOW).
pub fn set_times(path: &Path, atime: Ts, mtime: Ts, follow: bool) -> io::Result<()> {
    let c = cpath(path);
    let ts = [atime.timespec(), mtime.timespec()];
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: valid C string and 2-element array.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) }).map(drop)
}

/// (sec, nsec) pairs from metadata.
pub fn mtime(m: &fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}
pub fn ctime(m: &fs::Metadata) -> (i64, i64) {
    (m.ctime(), m.ctime_nsec())
}
pub fn atime(m: &fs::Metadata) -> (i64, i64) {
    (m.atime(), m.atime_nsec())
}

/// Wall clock now as (sec, nsec).
pub fn now() -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Wall clock minus `slack` (kernel timestamps come from a coarse clock).
pub fn now_minus(slack: Duration) -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock") - slack;
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Sleep long enough that a fresh timestamp is strictly newer than one taken before.
pub fn tick() {
    thread::sleep(Duration::from_millis(30));
}

pub fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

pub fn stat(p: &Path) -> fs::Metadata {
    fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

/// File type bits of st_mode.
pub fn fmt_bits(m: &fs::Metadata) -> u32 {
    m.mode() & libc::S_IFMT
}

/// Permission bits (incl. setuid/setgid/sticky).
pub fn perm_bits(m: &fs::Metadata) -> u32 {
    m.mode() & 0o7777
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn mknod(p: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

/// renameat2(AT_FDCWD, from, AT_FDCWD, to, flags).
pub fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let a = cpath(from);
    let b = cpath(to);
    // SAFETY: valid C strings.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Raw directory listing via readdir(3), including `.` and `..`: (name, d_ino, d_type).
pub fn raw_readdir(dir: &Path) -> io::Result<Vec<(Vec<u8>, u64, u8)>> {
    let c = cpath(dir);
    // SAFETY: valid C string; the stream is closed below.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: errno reset so end-of-stream and error can be told apart.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is an open stream.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = errno();
            // SAFETY: closing our stream.
            unsafe { libc::closedir(d) };
            if e != 0 {
                return Err(io::Error::from_raw_os_error(e));
            }
            return Ok(out);
        }
        // SAFETY: readdir returned a valid entry.
        let (name, ino, ty) = unsafe {
            let e = &*ent;
            (
                CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
                e.d_ino,
                e.d_type,
            )
        };
        out.push((name, ino, ty));
    }
}

/// Names in a directory (without `.`/`..`), sorted.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}
