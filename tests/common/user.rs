//! The unprivileged test user (`cirrustest`) and running code as it: a forked child
//! that switches credentials and reports an errno, for the permission tests.

use super::*;
use std::env;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Name of the unprivileged account the permission tests run as.
pub const TEST_USER: &str = "cirrustest";

#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new(require_tool("id"))
        .arg(flag)
        .arg(TEST_USER)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The `cirrustest` account, created (idempotently, under a lock) if missing.
pub fn test_user() -> TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the permission tests must run as root"
        );
        let lock_path = env::temp_dir().join(".cirrus-test-user.lock");
        let lock = File::create(&lock_path).expect("create user lock file");
        // SAFETY: valid fd; the lock is released when `lock` is closed.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        if id_of("-u").is_none() {
            let useradd = require_tool("useradd");
            run_ok(Command::new(useradd).args([
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/sh",
                TEST_USER,
            ]));
        }
        let uid = id_of("-u").expect("uid of test user");
        let gid = id_of("-g").expect("gid of test user");
        assert_ne!(uid, 0, "{TEST_USER} must not be root");
        drop(lock);
        TestUser {
            name: TEST_USER,
            uid,
            gid,
        }
    })
    .clone()
}

/// `runuser -u cirrustest -- PROGRAM`.
pub fn runuser(user: &TestUser, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(require_tool("runuser"));
    c.args(["-u", user.name, "--"]).arg(program);
    c
}

const CHILD_SETUP_FAILED: i32 = 250;
const CHILD_PANICKED: i32 = 251;

/// Run `f` in a forked child (optionally after switching to `creds` = (uid, gid), with no
/// supplementary groups) and return its result: by convention an errno, 0 for success.
///
/// `f` runs after fork() in a multithreaded process: it must only make raw libc calls on
/// data prepared beforehand (C strings, buffers), not allocate or lock.
pub fn in_child<F: FnOnce() -> i32>(creds: Option<(u32, u32)>, f: F) -> i32 {
    // SAFETY: fork; the child only runs `f` (see above) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: raw syscalls in the single-threaded child.
        unsafe {
            if let Some((uid, gid)) = creds {
                let none: *const libc::gid_t = std::ptr::null();
                if libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, none) != 0
                    || libc::syscall(
                        libc::SYS_setresgid,
                        gid as libc::c_long,
                        gid as libc::c_long,
                        gid as libc::c_long,
                    ) != 0
                    || libc::syscall(
                        libc::SYS_setresuid,
                        uid as libc::c_long,
                        uid as libc::c_long,
                        uid as libc::c_long,
                    ) != 0
                {
                    libc::_exit(CHILD_SETUP_FAILED);
                }
            }
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(CHILD_PANICKED);
            libc::_exit(code);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
    }
    assert!(
        libc::WIFEXITED(status),
        "child died abnormally (wait status {status:#x})"
    );
    let code = libc::WEXITSTATUS(status);
    assert_ne!(
        code, CHILD_SETUP_FAILED,
        "child could not switch credentials to {creds:?}"
    );
    assert_ne!(code, CHILD_PANICKED, "child panicked");
    code
}

/// [`in_child`] as the test user.
pub fn as_user<F: FnOnce() -> i32>(user: &TestUser, f: F) -> i32 {
    in_child(Some((user.uid, user.gid)), f)
}

/// Current errno.
pub fn errno() -> i32 {
    // SAFETY: errno location is always valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// Map a libc return value to 0 (success) or errno (failure). Async-signal-safe.
pub fn rc(ret: libc::c_int) -> i32 {
    if ret < 0 { errno() } else { 0 }
}

/// open(path, flags, mode) then close; 0 or errno. Async-signal-safe.
pub fn open_close(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> i32 {
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return errno();
    }
    // SAFETY: fd was just opened.
    unsafe { libc::close(fd) };
    0
}

/// Human-readable errno name for messages.
pub fn errno_name(e: i32) -> String {
    format!("{} ({})", e, io::Error::from_raw_os_error(e))
}
