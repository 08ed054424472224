//! The files a running daemon publishes in `HOME/run/` for the commands beside it:
//! `status` (pid, mountpoint, cache use: counts only, no names, no keys) and `sync.json`
//! (the upload queue), read by `cirrus status`, `sync` and `umount`.

use crate::cache::ChunkCache;
use crate::home::Home;
use crate::store::writeback::SyncStatus;
use crate::volume::Category;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the daemon publishes its own report for `cirrus status`.
pub fn mount_status_path(home: &Home) -> PathBuf {
    home.run_dir().join("status")
}

/// A small plaintext report for `cirrus status` (no names, no keys: counts only).
pub(super) fn write_mount_status(
    path: &Path,
    mp: &Path,
    cache: &ChunkCache,
    cats: &[Arc<Category>],
) {
    let (used, cap) = cache.usage();
    let unsynced = cats.iter().filter(|c| c.is_dirty()).count();
    let text = format!(
        "{}\nat {}\nmemory cache {} of {} MiB\n{} categories with uncommitted changes\n",
        std::process::id(),
        mp.display(),
        used >> 20,
        cap >> 20,
        unsynced
    );
    let _ = crate::home::write_atomic(path, text.as_bytes());
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
