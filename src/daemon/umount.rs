//! `cirrus umount`'s runtime: find the daemon of a mountpoint by its pidfile, unmount,
//! and wait for the daemon to finish flushing; a stale mount (daemon dead) is detached.

use super::DaemonError;
use super::control;
use super::mountpoint::{absolute, is_mounted, unmount_path};
use crate::home::Home;
use crate::store::writeback::SyncStatus;
use log::warn;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the daemon serving `mp` writes its pid and mountpoint.
pub(super) fn pidfile(home: &Home, mp: &Path) -> PathBuf {
    let h = blake3::hash(mp.as_os_str().as_encoded_bytes());
    home.run_dir()
        .join(format!("mount-{}.pid", &h.to_hex()[..16]))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether the daemon still runs. A zombie (exited, not yet reaped by whoever inherited
/// it) counts as gone.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// Whether daemon `pid` holds `home`'s daemon lock. The pidfile alone is not proof:
/// after the daemon died its pid may have been reused by an unrelated process, which
/// `umount` must not signal. Taking the lock (and letting go at once) proves no daemon
/// runs; a lock that cannot be checked counts as held, as the pidfile said before. A
/// held lock is the daemon's only when the pid its holder wrote in it is `pid`: `gc`,
/// `fsck` or `sync` hold it too while no daemon runs. No pid in it (a build before
/// this one, or a write that failed): the lock alone decides.
fn daemon_holds_lock(home: &Home, pid: i32) -> bool {
    let path = home.run_dir().join("daemon.lock");
    let Ok(f) = std::fs::File::open(&path) else {
        // No lock file: no daemon ever ran in this home.
        return false;
    };
    if matches!(f.try_lock(), Ok(())) {
        return false;
    }
    match read_pid(&path) {
        Some(holder) => holder == pid,
        None => true,
    }
}

/// What an unmount did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmounted {
    /// The daemon finished and exited (`mountpoint` is the absolute path).
    Clean { mountpoint: PathBuf },
    /// The mount's daemon was not running: the dead mount was detached.
    Stale { mountpoint: PathBuf },
}

/// What happens while waiting for the daemon to exit, for the caller to show.
pub enum UmountProgress<'a> {
    /// The daemon is still uploading: the queue as it published it.
    Uploading(&'a SyncStatus),
    /// Two seconds passed with nothing to show: the daemon is still writing.
    StillWriting,
}

/// Unmounts `mp` and waits up to `timeout` for its daemon to exit. `no_wait`: tell the
/// daemon to leave its upload queue in the journal instead of sending it first.
pub fn umount(
    home: &Home,
    mp: &Path,
    timeout: Duration,
    no_wait: bool,
    progress: &mut dyn FnMut(UmountProgress),
) -> Result<Unmounted, DaemonError> {
    let mp = absolute(mp);
    let pf = pidfile(home, &mp);
    let pid = read_pid(&pf).filter(|p| alive(*p) && daemon_holds_lock(home, *p));
    let mounted = is_mounted(&mp);
    if !mounted && pid.is_none() {
        let _ = std::fs::remove_file(&pf);
        return Err(DaemonError::NotMounted { mountpoint: mp });
    }
    if mounted {
        if pid.is_none() {
            unmount_path(&mp, true)?;
            let _ = std::fs::remove_file(&pf);
            return Ok(Unmounted::Stale { mountpoint: mp });
        }
        if no_wait && control::socket_exists(home) {
            let req = control::Request {
                op: "no-wait".into(),
                ..Default::default()
            };
            if let Err(e) = control::request(home, &req, &mut |_, _| {}) {
                warn!("cannot tell the daemon not to wait for uploads: {e}");
            }
        }
        unmount_path(&mp, false)?;
    } else if let Some(p) = pid {
        // Mount already gone but the daemon is still finishing: ask it to stop.
        // SAFETY: plain signal to a pid we read from our own pidfile.
        unsafe {
            libc::kill(p, libc::SIGTERM);
        }
    }
    if let Some(p) = pid {
        wait_exit(home, p, timeout, progress)?;
    }
    Ok(Unmounted::Clean { mountpoint: mp })
}

/// Waits for daemon `pid` to exit, reporting its uploads (or, after two seconds with
/// none, that it is still writing) through `progress`.
fn wait_exit(
    home: &Home,
    pid: i32,
    timeout: Duration,
    progress: &mut dyn FnMut(UmountProgress),
) -> Result<(), DaemonError> {
    let start = Instant::now();
    let mut said = false;
    while alive(pid) {
        if let Some(s) = super::read_sync_status(home).filter(|s| s.pending_objects > 0) {
            progress(UmountProgress::Uploading(&s));
            said = true;
        }
        if start.elapsed() > timeout {
            return Err(DaemonError::StillFlushing {
                pid,
                timeout,
                log: home.log_path(),
            });
        }
        if !said && start.elapsed() > Duration::from_secs(2) {
            progress(UmountProgress::StillWriting);
            said = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_signalled() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::new(d.path().join("home"));
        let mp = d.path().join("mnt");
        std::fs::create_dir_all(&mp).unwrap();
        // The daemon died (its lock is free) and an unrelated process got its pid.
        drop(super::super::lock_home(&home).unwrap());
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pf = pidfile(&home, &absolute(&mp));
        std::fs::write(&pf, format!("{}\n{}\n", other.id(), mp.display())).unwrap();
        let e = umount(&home, &mp, Duration::from_secs(1), false, &mut |_| {}).unwrap_err();
        assert!(matches!(e, DaemonError::NotMounted { .. }), "{e}");
        assert!(
            other.try_wait().unwrap().is_none(),
            "the unrelated process was killed"
        );
        assert!(!pf.exists(), "the stale pidfile is removed");
        // The lock held by another process (gc, fsck: here this test) while the pidfile
        // names the unrelated one: still not the daemon's, not signalled.
        let held = super::super::lock_home(&home).unwrap();
        std::fs::write(&pf, format!("{}\n{}\n", other.id(), mp.display())).unwrap();
        let e = umount(&home, &mp, Duration::from_secs(1), false, &mut |_| {}).unwrap_err();
        assert!(matches!(e, DaemonError::NotMounted { .. }), "{e}");
        assert!(other.try_wait().unwrap().is_none(), "killed");
        // The holder's own pid: the daemon's.
        assert!(daemon_holds_lock(&home, std::process::id() as i32));
        assert!(!daemon_holds_lock(&home, other.id() as i32));
        drop(held);
        let _ = other.kill();
        let _ = other.wait();
    }
}
