//! Tells the kernel what a change it did not ask for made stale (`volume::Stale`), so the
//! mount can let it cache names and attributes for long timeouts: every local change goes
//! through a kernel request, and every other one (merges, web changes, the purge of
//! Recently Deleted) through here.

use super::CirrusFs;
use crate::volume::Stale;
use fuser::{INodeNo, Notifier};
use log::{debug, warn};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The kernel's side of the mount, for notifications.
pub struct Invalidator {
    notifier: Notifier,
}

impl Invalidator {
    pub fn new(notifier: Notifier) -> Self {
        Invalidator { notifier }
    }

    /// Tells the kernel that the attributes of `ino` (a global inode number) changed. Safe
    /// from inside a request of this mount, before its reply: dropping cached attributes
    /// takes no lock the kernel holds while it waits (unlike a name, or cached pages).
    pub fn attributes(&self, ino: INodeNo) {
        match self.notifier.inval_inode(ino, -1, 0) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EBADF)) => {}
            // ENOENT: the kernel holds no such inode, so nothing is cached.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => warn!("cannot tell the kernel that inode {} changed: {e}", ino.0),
        }
    }

    /// Sends what category `cat` noted. Must not be called under a category's lock, nor
    /// from a request of this mount (the kernel may wait on both). Never fails: a failed
    /// notification is logged, and the kernel's copy then ages out with the timeout.
    pub fn tell(&self, cat: u32, stale: &[Stale]) {
        if stale.is_empty() {
            return;
        }
        let mut dirs = BTreeSet::new();
        for s in stale {
            let (what, res) = match s {
                Stale::Entry { parent, name } => {
                    dirs.insert(*parent);
                    (
                        "entry",
                        self.notifier
                            .inval_entry(CirrusFs::global(cat, *parent), OsStr::from_bytes(name)),
                    )
                }
                // Offset -1: attributes only; 0 with length 0: every cached page too.
                Stale::Node { ino, data } => (
                    "inode",
                    self.notifier.inval_inode(
                        CirrusFs::global(cat, *ino),
                        if *data { 0 } else { -1 },
                        0,
                    ),
                ),
            };
            match res {
                Ok(()) => {}
                // Unmounted (a poll that finishes uploads after the session ended).
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EBADF)) => {
                    debug!("the kernel is gone; {} notes dropped", stale.len());
                    return;
                }
                Err(e) => warn!("cannot tell the kernel that an {what} changed: {e}"),
            }
        }
        // A directory's size, times and link count change with its names.
        for d in dirs {
            if let Err(e) = self.notifier.inval_inode(CirrusFs::global(cat, d), -1, 0) {
                warn!("cannot tell the kernel that a folder changed: {e}");
            }
        }
        debug!("told the kernel of {} stale names and nodes", stale.len());
    }
}
