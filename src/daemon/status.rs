//! The files a running daemon publishes in `HOME/run/` for the commands beside it:
//! `status` (JSON: pid, mountpoint, cache use; counts only, no names, no keys) and `sync.json`
//! (the upload queue), read by `cirrus status`, `sync` and `umount`.

use crate::home::Home;
use crate::store::writeback::SyncStatus;
use std::path::{Path, PathBuf};

/// Where the daemon publishes its own report for `cirrus status`.
pub fn mount_status_path(home: &Home) -> PathBuf {
    home.run_dir().join("status")
}

/// What a running daemon says about itself in `run/status` (JSON; no names, no keys:
/// counts only). `cirrus status` shows it, and `status --json` passes it on as its
/// `mounted` field (docs/USER-GUIDE.md), so its field names are part of that schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountStatus {
    pub pid: u32,
    pub mountpoint: PathBuf,
    pub memory_cache_used_bytes: u64,
    pub memory_cache_max_bytes: u64,
    /// Categories with changes not yet committed (the next commit interval takes them).
    pub uncommitted_categories: usize,
    /// Mounted with `--read-only`: nothing is written to the store, and no key
    /// acknowledgement is published (docs/USER-GUIDE.md, "Read-only mounts").
    #[serde(default)]
    pub read_only: bool,
}

/// Rewrites `path` with the daemon's report.
pub(super) fn write_mount_status(path: &Path, run: &super::Running, read_only: bool) {
    let (used, cap) = run.cache.usage();
    let s = MountStatus {
        pid: std::process::id(),
        mountpoint: run.mp.clone(),
        memory_cache_used_bytes: used as u64,
        memory_cache_max_bytes: cap as u64,
        uncommitted_categories: run.cats.iter().filter(|c| c.is_dirty()).count(),
        read_only,
    };
    if let Ok(j) = serde_json::to_vec(&s) {
        let _ = crate::home::write_atomic(path, &j);
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
