//! The files a running daemon publishes in `HOME/run/` for the commands beside it:
//! `status` (JSON: pid, mountpoint, cache use; counts only, no names, no keys) and `sync.json`
//! (the upload queue), read by `cirrus status`, `sync` and `umount`.

use crate::cache::ChunkCache;
use crate::home::Home;
pub use crate::report::MountStatus;
use crate::store::writeback::SyncStatus;
use crate::volume::Category;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the daemon publishes its own report for `cirrus status`.
pub fn mount_status_path(home: &Home) -> PathBuf {
    home.run_dir().join("status")
}

/// Rewrites `path` with the daemon's report.
pub(super) fn write_mount_status(path: &Path, run: &super::Running, read_only: bool) {
    let s = mount_status(&run.mp, &run.cache, &run.cats, read_only);
    if let Ok(j) = serde_json::to_vec(&s) {
        let _ = crate::home::write_atomic(path, &j);
    }
}

/// The daemon's report on itself now.
pub(super) fn mount_status(
    mp: &Path,
    cache: &ChunkCache,
    cats: &[Arc<Category>],
    read_only: bool,
) -> MountStatus {
    let (used, cap) = cache.usage();
    MountStatus {
        pid: std::process::id(),
        mountpoint: mp.to_path_buf(),
        memory_cache_used_bytes: used as u64,
        memory_cache_max_bytes: cap as u64,
        uncommitted_categories: cats.iter().filter(|c| c.is_dirty()).count(),
        read_only,
    }
}

/// The running daemon's report, if a daemon is running (a file left by a killed one
/// names a dead pid, and is not).
pub fn read_mount_status(home: &Home) -> Option<MountStatus> {
    let bytes = std::fs::read(mount_status_path(home)).ok()?;
    let s: MountStatus = serde_json::from_slice(&bytes).ok()?;
    let pid = i32::try_from(s.pid).ok()?;
    // SAFETY: existence check only.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(s)
}

/// Where the daemon publishes its upload state for `status`, `sync` and `umount`.
pub fn sync_status_path(home: &Home) -> PathBuf {
    home.run_dir().join("sync.json")
}

pub fn write_sync_status(home: &Home, s: &SyncStatus) {
    if let Ok(j) = serde_json::to_vec(s) {
        let _ = crate::home::write_atomic(&sync_status_path(home), &j);
    }
}

pub fn read_sync_status(home: &Home) -> Option<SyncStatus> {
    let bytes = std::fs::read(sync_status_path(home)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
