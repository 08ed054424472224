//! What the kernel says is mounted (`/proc/self/mountinfo`), and the last resorts for a
//! hung FUSE mount: the watchdog that aborts it and the forced unmount.

use super::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Abort a FUSE mount's connection and detach it (last resort; root only).
pub fn force_unmount(mnt: &Path) {
    if let Some(info) = mount_info(mnt) {
        abort_fuse_connection(info.dev);
    }
    let c = cpath(mnt);
    // SAFETY: plain syscalls on a valid C string.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_FORCE);
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
    if mount_info(mnt).is_some() {
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(mnt)
            .stdin(Stdio::null())
            .output();
    }
}

fn abort_fuse_connection(dev: (u32, u32)) {
    let id = (u64::from(dev.0) << 20) | u64::from(dev.1);
    let abort = PathBuf::from(format!("/sys/fs/fuse/connections/{id}/abort"));
    if abort.exists() {
        let _ = fs::write(&abort, "1");
    }
}

/// Kills a hung mount after a deadline so the stuck test fails with ENOTCONN.
pub(super) struct Watchdog {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<()>,
}

impl Watchdog {
    pub(super) fn start(mnt: PathBuf, dev: (u32, u32), timeout: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                eprintln!(
                    "watchdog: {} mounted for more than {timeout:?}; aborting the FUSE connection",
                    mnt.display()
                );
                abort_fuse_connection(dev);
                let c = cpath(&mnt);
                // SAFETY: plain syscall on a valid C string. MNT_FORCE aborts a FUSE
                // connection even where fusectl is not mounted.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_FORCE);
                }
            }
        });
        Watchdog { stop: tx, handle }
    }

    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub dev: (u32, u32),
    pub fstype: String,
    /// The file system's own options (after the `-`).
    pub options: String,
    /// The mount's flags (ro, nosuid, nodev, noexec, noatime, ...).
    pub flags: String,
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    // Spaces, tabs, newlines and backslashes appear as \ooo octal escapes.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The (topmost) mount at exactly `path`, if any. Never touches the mounted file system.
pub fn mount_info(path: &Path) -> Option<MountInfo> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    let mut found = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 || unescape_mountinfo(fields[4]) != want {
            continue;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        let (maj, min) = fields[2].split_once(':')?;
        found = Some(MountInfo {
            dev: (maj.parse().ok()?, min.parse().ok()?),
            fstype: fields.get(sep + 1)?.to_string(),
            options: fields.get(sep + 3).unwrap_or(&"").to_string(),
            flags: fields[5].to_string(),
        });
    }
    found
}

/// True when a FUSE file system is mounted at exactly `path`.
pub fn is_fuse_mount(path: &Path) -> bool {
    mount_info(path).is_some_and(|m| m.fstype.starts_with("fuse"))
}
