//! The systemd notify protocol for `cirrus mount --foreground` under `Type=notify`:
//! `READY=1` once the drive is mounted, `STATUS=` with the sync state when it changes,
//! `STOPPING=1` when unmounting begins. Without `NOTIFY_SOCKET` (not run by systemd)
//! each call does nothing. A failed send is logged once, never fatal: the drive works
//! the same without a service manager listening.

use crate::store::writeback::SyncStatus;
use log::warn;
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};

static WARNED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    // The variable stays set: READY, STATUS and STOPPING all go to the same socket.
    if let Err(e) = sd_notify::notify(false, states)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        warn!("cannot tell the service manager our state (NOTIFY_SOCKET): {e}");
    }
}

/// The drive is mounted and serving.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line state for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Unmounting has begun (a signal, `cirrus umount` or `umount`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("unmounting")]);
}

/// The one line `systemctl status` shows for a mount with a remote store.
pub fn sync_line(s: &SyncStatus) -> String {
    let mut line = if s.offline {
        format!("offline; {} objects waiting to upload", s.pending_objects)
    } else if s.pending_objects > 0 {
        format!("uploading: {} objects waiting", s.pending_objects)
    } else {
        "mounted; everything uploaded".to_string()
    };
    if !s.conflicts.is_empty() {
        line.push_str(&format!("; {} conflicts", s.conflicts.len()));
    }
    line
}
