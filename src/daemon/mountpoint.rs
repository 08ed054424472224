//! The kernel side of a mountpoint: whether something is mounted there (read from
//! /proc/self/mountinfo, never by a stat that could hang on a dead mount), unmounting,
//! and the FUSE capabilities and read-ahead the daemon asks for.

use super::DaemonError;
use log::{info, warn};
use std::path::{Path, PathBuf};

/// Whether `path` is a mountpoint right now (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    mount_device(path).is_some()
}

/// The "major:minor" device of the filesystem mounted at `path`, read from
/// /proc/self/mountinfo (no stat, so it never waits on the filesystem itself).
pub fn mount_device(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_string_lossy();
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let mp = f.nth(1)?;
        (unescape_mountinfo(mp) == want).then(|| dev.to_string())
    })
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Absolute form of a mountpoint path, even when it is a dead FUSE mount (ENOTCONN).
pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    })
}

/// How many times an unmount that finds the mount busy tries again, 100 ms apart.
const BUSY_TRIES: u32 = 10;

/// Unmounts with the kernel (root) or fusermount3 (users). `lazy` detaches a dead mount.
pub fn unmount_path(mp: &Path, lazy: bool) -> Result<(), DaemonError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes())
            .map_err(|_| DaemonError::NulInMountpoint)?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // A file closed a moment ago can still pin the mount: the copy of its descriptor
        // that a process being started elsewhere holds until its exec, say. Busy is only
        // reported once it lasts.
        let mut busy_tries = 0;
        // SAFETY: c is a valid NUL-terminated path.
        while unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) && busy_tries < BUSY_TRIES {
                busy_tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            return Err(if e.raw_os_error() == Some(libc::EBUSY) {
                DaemonError::Busy {
                    mountpoint: mp.to_path_buf(),
                }
            } else {
                DaemonError::Unmount {
                    mountpoint: mp.to_path_buf(),
                    reason: e.to_string(),
                }
            });
        }
        Ok(())
    } else {
        let flag = if lazy { "-uz" } else { "-u" };
        let out = std::process::Command::new("fusermount3")
            .arg(flag)
            .arg(mp)
            .output()
            .map_err(DaemonError::NoFusermount)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(DaemonError::Unmount {
                mountpoint: mp.to_path_buf(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// FUSE capabilities to request. Defaults from measurements (docs/BENCH.md): readdirplus
/// and parallel directory operations help `ls -lR` and untar; KILLPRIV_V2 (we clear
/// set-user/group-ID bits ourselves) spares the kernel's getxattr("security.capability")
/// round trip before every write; POSIX ACLs are enforced by the kernel, which caches
/// them per inode (the daemon keeps them and the mode in step, `volume/acl.rs`);
/// writeback caching did not pay for its semantic risk.
pub(super) fn capabilities(spec: &str) -> Vec<fuser::InitFlags> {
    use fuser::InitFlags as F;
    let mut v = Vec::new();
    for name in spec.split(',').map(str::trim) {
        match name {
            "readdirplus" => v.push(F::FUSE_DO_READDIRPLUS | F::FUSE_READDIRPLUS_AUTO),
            "parallel-dirops" => v.push(F::FUSE_PARALLEL_DIROPS),
            "writeback" => v.push(F::FUSE_WRITEBACK_CACHE),
            // The umask is then ours to apply, since a default ACL replaces it.
            "posix-acl" => v.extend([F::FUSE_POSIX_ACL, F::FUSE_DONT_MASK]),
            "killpriv" => v.push(F::FUSE_HANDLE_KILLPRIV_V2),
            "" | "none" => {}
            other => warn!("--fuse-caps: unknown capability {other:?} ignored"),
        }
    }
    v
}

/// Raises the kernel's read-ahead window of our mount (measured: 0.88 GB/s with the
/// default 128 KiB, 1.4 GB/s with 4 MiB for a cold sequential read). Needs root; other
/// users keep the default.
pub(super) fn set_readahead(mp: &Path, kib: u32) {
    let Some(dev) = mount_device(mp) else {
        warn!(
            "cannot find the device of {} to tune read-ahead",
            mp.display()
        );
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&knob, kib.to_string()) {
        Ok(()) => info!("read-ahead set to {kib} KiB ({knob})"),
        Err(e) => info!("read-ahead left at the kernel default ({knob}: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescapes_spaces() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
