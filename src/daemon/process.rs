//! The daemon process itself: one per home (the lock), and its hardening (no core dumps,
//! memory locked when allowed, allocator settings measured for the chunk buffers).

use super::DaemonError;
use crate::home::Home;
use log::{info, warn};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

/// One daemon per home: two would race on the same heads and lose each other's commits.
/// Commands that must not run beside a mount (gc, an offline rotation) take it too.
pub fn lock_home(home: &Home) -> Result<std::fs::File, DaemonError> {
    let run = home.run_dir();
    let run_err = |source| DaemonError::RunDir {
        path: run.clone(),
        source,
    };
    // Private from the start: the control socket is bound in it before it is chmod-ed.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&run)
        .map_err(run_err)?;
    // Earlier versions made it with the umask (often 0755): tighten it if it is ours.
    let meta = std::fs::metadata(&run).map_err(run_err)?;
    // SAFETY: geteuid has no preconditions.
    if meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).map_err(run_err)?;
    }
    let p = run.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|source| DaemonError::OpenLock {
            path: p.clone(),
            source,
        })?;
    // Held for the daemon's lifetime (released when `f` is dropped). Only "held by
    // someone else" means another daemon; any other failure is reported as itself.
    match f.try_lock() {
        Ok(()) => {
            // Whose lock it is, for `umount` (the pid in a pidfile may have been reused
            // by another process while this one holds the lock). Not secret. Unwritten
            // (a full disk), `umount` falls back to the lock alone.
            let _ = f
                .set_len(0)
                .and_then(|()| (&f).write_all(format!("{}\n", std::process::id()).as_bytes()));
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::AlreadyMounted {
            home: home.root.clone(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(DaemonError::Lock { path: p, source }),
    }
}

/// The daemon serves its control socket (key rotations, sync) to whoever can reach
/// `run/`: the home and `run/` must be the daemon user's own and closed to everyone else.
pub(super) fn check_private(home: &Home) -> Result<(), DaemonError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    for dir in [home.root.clone(), home.run_dir()] {
        let meta = std::fs::metadata(&dir).map_err(|source| DaemonError::RunDir {
            path: dir.clone(),
            source,
        })?;
        if meta.uid() != euid || meta.mode() & 0o077 != 0 {
            return Err(DaemonError::NotPrivate {
                path: dir,
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
    }
    Ok(())
}

/// Every command that unlocks keys keeps them out of core dumps.
pub fn no_core_dumps() {
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Keeps secrets out of core dumps and, where allowed, out of swap.
pub(super) fn harden_process() {
    no_core_dumps();
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        // Memory: chunk buffers (256 KiB) stay in the heap, where same-sized blocks are
        // reused; a fixed threshold keeps glibc from raising it (it would otherwise move
        // every large buffer into the heap after the first free and fragment it). One
        // arena: with one per thread, blocks freed by the other thread (cache evictions)
        // stay resident in an arena that no longer allocates them. Measured in
        // tests/memory_bound.rs: 143 MiB RSS with glibc defaults, 72 MiB with these.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Keep up to 8 MiB free at the heap top instead of returning and refaulting it
        // for every chunk buffer.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        if libc::geteuid() == 0 {
            let inf = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf);
            if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) != 0 {
                warn!(
                    "mlockall failed ({}); keys may reach swap",
                    std::io::Error::last_os_error()
                );
            }
        } else {
            info!("not root: memory is not locked, keys may reach swap if swap is enabled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_lock_on_the_same_home_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::new(d.path().to_path_buf());
        let held = lock_home(&home).unwrap();
        let e = lock_home(&home).unwrap_err();
        assert!(matches!(e, DaemonError::AlreadyMounted { .. }), "{e}");
        assert!(e.to_string().contains("already mounted"), "{e}");
        drop(held);
        assert!(lock_home(&home).is_ok());
    }

    #[test]
    fn run_is_private_and_a_home_open_to_others_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::new(d.path().join("home"));
        std::fs::create_dir(&home.root).unwrap();
        std::fs::set_permissions(&home.root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(home.run_dir()).unwrap();
        // As an earlier version left it: lock_home tightens it.
        std::fs::set_permissions(home.run_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(lock_home(&home).unwrap());
        let mode = std::fs::metadata(home.run_dir()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        check_private(&home).unwrap();
        std::fs::set_permissions(&home.root, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = check_private(&home).unwrap_err();
        assert!(matches!(e, DaemonError::NotPrivate { .. }), "{e}");
        assert!(e.to_string().contains("chmod 700"), "{e}");
    }
}
