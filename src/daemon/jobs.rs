//! The daemon's background jobs beside the FUSE session: the syncer (pull other devices'
//! heads, with the account hooks it calls back into) and its thread, the key service's
//! notice watch, and the upload drain before the daemon exits.

use crate::account::{AccountError, Unlocked};
use crate::home::Home;
use crate::store::writeback::{SyncStatus, WriteBack};
use crate::sync::{AccountHooks, HookError, Syncer};
use crate::volume::Category;
use log::{info, warn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The syncer of a mount over a remote store, calling back into the shared account.
pub(super) fn syncer(
    cats: &[Arc<Category>],
    wb: &Arc<WriteBack>,
    device_name: String,
    acct: &Arc<Mutex<Unlocked>>,
) -> Arc<Syncer> {
    let (key_acct, ack_acct, release_acct, heads_acct) =
        (acct.clone(), acct.clone(), acct.clone(), acct.clone());
    let release_cats = cats.to_vec();
    Arc::new(Syncer::new(
        cats.to_vec(),
        wb.clone(),
        device_name,
        AccountHooks {
            keys: Box::new(move |cat, version| {
                account_if_free(&key_acct)?
                    .newer_category_key(cat, version)
                    .map_err(hook_error)
            }),
            // A rotation holds the account for minutes and may wait for this
            // thread to merge: the hooks skip a busy account (the next poll retries).
            ack: Box::new(move |floors, heads, published, gc| {
                account_if_free(&ack_acct)?
                    .write_ack(floors, heads, published, gc.epoch, gc.revived)
                    .map_err(hook_error)
            }),
            acked_heads: Box::new(move || {
                account_if_free(&heads_acct)?
                    .acked_heads()
                    .map_err(hook_error)
            }),
            release: Box::new(move |floors| {
                account_if_free(&release_acct)?
                    .destroy_released_keys(floors, &release_cats)
                    .map_err(hook_error)
            }),
        },
    ))
}

/// Polls the store every `every` (at once when the write-back saw a conflict), and
/// refreshes what `df` shows (the store's bytes) every 10 minutes.
pub(super) fn start_sync_thread(
    sy: Arc<Syncer>,
    wb: Arc<WriteBack>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    wb.set_merging(true);
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            // None: never polled, so poll at once. (`Instant::now() - every` would panic
            // when the machine has been up for less than `every`, e.g. at boot or with a
            // long `--poll-interval`.)
            let mut last: Option<Instant> = None;
            let mut last_usage: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                if last.is_none_or(|t| t.elapsed() >= every) || wb.has_conflicts() {
                    last = Some(Instant::now());
                    sy.poll(false);
                }
                if last_usage.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
                    last_usage = Some(Instant::now());
                    if let Err(e) = wb.refresh_usage() {
                        log::debug!("cannot list the store for its usage: {e}");
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .map_err(|e| warn!("cannot start the sync thread: {e}"))
        .ok()
}

/// Reads the key service's notices at every poll while mounted, and logs each new one
/// (and a pending password reset, once per reset) as a warning. No password is needed:
/// the remembered-device token is enough.
pub(super) fn start_notice_watch(acct: &Unlocked, every: Duration, stop: Arc<AtomicBool>) {
    let watch = match acct.notice_watch() {
        Ok(w) => w,
        Err(e) => {
            warn!("key service notices will not be read while mounted: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("notices".into())
        .spawn(move || {
            let mut last_id: Option<u64> = None;
            let mut warned_pending: Option<u64> = None;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    next = Instant::now() + every;
                    match watch.fetch() {
                        Ok(r) => {
                            // At mount, only what happened in the last week.
                            let week_ago = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs().saturating_sub(7 * 86400))
                                .unwrap_or(0);
                            let new = |n: &&crate::keyservice::api::Notice| match last_id {
                                Some(l) => n.id > l,
                                None => n.at >= week_ago,
                            };
                            for n in r.notices.iter().filter(new) {
                                warn!(
                                    "key service notice: {}",
                                    crate::account::notices::describe(n)
                                );
                            }
                            last_id = r.notices.last().map(|n| n.id).or(last_id);
                            if r.pending_reset != warned_pending {
                                if let Some(w) = crate::account::notices::pending_warning(&r) {
                                    warn!("{w}");
                                }
                                warned_pending = r.pending_reset;
                            }
                        }
                        Err(e) => log::debug!("cannot read the key service's notices: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the notice thread: {e}");
    }
}

/// Before the daemon exits: sends the upload queue, unless told not to wait, or the store
/// made no progress for a minute (offline: the journal keeps it for the next mount).
pub(super) fn finish_uploads(
    home: &Home,
    wb: &WriteBack,
    syncer: Option<&Syncer>,
    no_wait: &AtomicBool,
) {
    let mut last_log = Instant::now();
    let mut s = wait_uploads(home, wb, no_wait, &mut last_log);
    // Another device published meanwhile: merge, then send the merged head too.
    for _ in 0..3 {
        match syncer {
            Some(sy) if !s.conflicts.is_empty() && !no_wait.load(Ordering::Relaxed) => {
                sy.poll(true);
                s = wait_uploads(home, wb, no_wait, &mut last_log);
            }
            _ => break,
        }
    }
    // A merge published just now (here or by the last polls) is acknowledged before the
    // daemon goes: else a gc run could count this device's older acknowledgement while
    // it is away (FORMAT.md §14b, gc revived).
    if let Some(sy) = syncer
        && s.pending_objects == 0
        && !no_wait.load(Ordering::Relaxed)
        && sy.acknowledge_revival()
    {
        s = wait_uploads(home, wb, no_wait, &mut last_log);
    }
    wb.stop();
    if s.pending_objects > 0 {
        warn!(
            "{} in {} objects are not in the store yet; they stay in the journal and are sent at the next mount or `{}`",
            crate::hint::human(s.pending_bytes),
            s.pending_objects,
            crate::hint::cmd_hint("sync")
        );
    } else {
        info!("upload queue empty: everything is in the store");
    }
}

fn wait_uploads(
    home: &Home,
    wb: &WriteBack,
    no_wait: &AtomicBool,
    last_log: &mut Instant,
) -> SyncStatus {
    wb.wait_drained(
        Some(Duration::from_secs(60)),
        &|| no_wait.load(Ordering::Relaxed),
        &mut |s| {
            super::status::write_sync_status(home, s);
            if s.pending_objects > 0 && last_log.elapsed() > Duration::from_secs(10) {
                *last_log = Instant::now();
                info!(
                    "uploading before exit: {} in {} objects left",
                    crate::hint::human(s.pending_bytes),
                    s.pending_objects
                );
            }
        },
    )
}

/// The account, unless another thread (a rotation) holds it.
fn account_if_free(acct: &Mutex<Unlocked>) -> Result<MutexGuard<'_, Unlocked>, HookError> {
    match acct.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(HookError::Busy),
    }
}

/// What the syncer is told when an account hook fails: whether this device was removed
/// is decided on the error's variant, not on its message.
fn hook_error(e: AccountError) -> HookError {
    if e.removes_this_device() {
        HookError::DeviceRemoved(e.to_string())
    } else {
        HookError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_removals_reach_the_syncer_as_device_removed() {
        assert!(matches!(
            hook_error(AccountError::DeviceRemoved),
            HookError::DeviceRemoved(_)
        ));
        let e = AccountError::RemovedByDataRecovery {
            by: "laptop".into(),
            ago: "5 min".into(),
        };
        let msg = e.to_string();
        assert!(matches!(hook_error(e), HookError::DeviceRemoved(m) if m == msg));
        // Text that merely reads like a removal is not one (the old prefix test took
        // this for a removal).
        let lookalike = AccountError::BadCode("this device was removed from the account".into());
        assert!(matches!(hook_error(lookalike), HookError::Failed(_)));
    }
}
