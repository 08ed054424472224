//! Rotating a category key: create key version N+1, publish it in the table, have the
//! volume layer reseal the category's tree under it (in the daemon while mounted, or
//! in-process when not), and destroy key object N once no head needs it any more.
//!
//! Resumable at every point: a later `rotate` of the same category continues an unfinished
//! rotation instead of starting a new one. Key object N still in the store is what marks
//! a rotation as unfinished (it is deleted last).

use super::{AccountError, Unlocked};
use crate::crypto::{self, SecretKey};
use crate::format::names;
use crate::format::table::{CategoryEntry, Class};
use crate::store::StoreError;
use crate::volume::{Category, RotationProgress, VolError};
use log::{info, warn};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("{0}")]
    Volume(#[from] VolError),
    #[error("{0}")]
    Refused(String),
    #[error(
        "the rotation of {0} stopped before it finished; run `{hint}` again to resume it",
        hint = crate::hint::cmd_hint(&format!("rotate --category {}", .0))
    )]
    Interrupted(String),
}

impl From<StoreError> for RotateError {
    fn from(e: StoreError) -> Self {
        RotateError::Account(e.into())
    }
}

/// How a rotation runs.
pub struct RotateOptions<'a> {
    /// File bytes re-encrypted between two commits (each commit makes progress durable).
    pub batch_bytes: u64,
    /// Set by the daemon when it unmounts: stop after the current batch.
    pub stop: Option<&'a AtomicBool>,
    /// Move the category to this protection class with the new key (ADP). When the
    /// category already has it and no rotation is pending, nothing is done.
    pub class: Option<Class>,
}

/// The default batch: 64 MiB between commits, so an interrupted rotation loses little
/// and a 1 GiB category costs about 16 extra commits.
pub const DEFAULT_BATCH: u64 = 64 << 20;

/// The largest batch honoured, whoever asks (a control-socket request sets its own): a
/// cancel (unmount, Ctrl-C) is checked only between batches, so a huge one would rotate
/// the whole category first and hold the unmount for hours.
pub const MAX_BATCH: u64 = 1 << 30;

/// The file bytes one rotation step passes: the batch asked for, at least 1 and at most
/// [`MAX_BATCH`].
fn step_budget(batch_bytes: u64) -> u64 {
    batch_bytes.clamp(1, MAX_BATCH)
}

/// What a finished rotation did.
#[derive(Debug, Clone)]
pub struct RotateReport {
    pub from: u32,
    pub to: u32,
    /// An unfinished rotation was continued (no new key version was made).
    pub resumed: bool,
    /// Nothing to do: the category already had the class asked for.
    pub unchanged: bool,
    /// Trusted devices that may still need key `from`: it is kept, and destroyed by a
    /// later sync once they are past it (empty: it was destroyed).
    pub kept_for: Vec<String>,
}

impl Unlocked {
    /// Unwraps key `version` of category `e` (which need not be the table's current one).
    pub(crate) fn category_key_at(
        &self,
        e: &CategoryEntry,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        if let Err(err) = self.store.size(&names::category_key(e.id, version)) {
            // Destroyed (or never made): this device's keyring must not outlive it.
            return Err(err.into());
        }
        self.category_key_version(e, version)
    }

    /// The key version before the table's, if its key object is still in the store (a
    /// rotation may be unfinished; the head says whether the tree still needs it).
    pub(crate) fn old_category_key(&self, e: &CategoryEntry) -> Option<(u32, SecretKey)> {
        let v = e.key_version.checked_sub(1).filter(|v| *v >= 1)?;
        match self.category_key_at(e, v) {
            Ok(k) => Some((v, k)),
            Err(AccountError::Store(StoreError::NotFound(_))) => None,
            Err(err) => {
                warn!(
                    "category {}: key version {v} cannot be unlocked ({err}); blobs still \
                     under it will not open",
                    e.name
                );
                None
            }
        }
    }

    /// Makes a fresh key for `version` of a category, stores it wrapped like every
    /// category key (durable before the manifest names it; an object left by an attempt
    /// that died before publishing is simply replaced), and publishes the manifest that
    /// makes it current, with its commitment.
    pub(crate) fn create_key_version(
        &mut self,
        id: u32,
        class: Class,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        let key = crypto::random_key()?;
        self.store_category_key(id, version, class, &key)?;
        let mut next = self.manifest.clone();
        for x in &mut next.table.entries {
            if x.id == id {
                x.key_version = version;
                x.class = class;
            }
        }
        next.set_commitment(id, version, super::key_commitment(&key));
        self.publish_manifest(next)?;
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, version, key.duplicate());
        self.save_keyring()?;
        Ok(key)
    }

    /// Destroys key `version` of a category: its key object and this device's copy.
    pub(crate) fn destroy_key_version(&self, id: u32, version: u32) -> Result<(), AccountError> {
        match self.store.delete(&names::category_key(id, version)) {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id, version);
        self.save_keyring()
    }

    /// The other devices that still need key `version` of a category. Only devices that
    /// sync (a write-back store) acknowledge keys; on a local store devices take turns,
    /// and each takes a rotation in when it next opens the drive.
    fn needing(&self, id: u32, version: u32) -> Result<Vec<String>, AccountError> {
        if self.sync.is_none() {
            return Ok(Vec::new());
        }
        self.devices_needing(id, version)
    }

    /// Rotates (or resumes rotating) the key of category `name`, open as `cat`, and
    /// destroys the old key object at the end. `progress` is called after every batch.
    pub fn rotate_category(
        &mut self,
        name: &str,
        cat: &Category,
        opts: &RotateOptions,
        progress: &mut dyn FnMut(RotationProgress),
    ) -> Result<RotateReport, RotateError> {
        let report = self.rotate_category_inner(name, cat, opts, progress)?;
        // The copy of the Messages key kept under Backup names key versions: refresh it
        // when either moves, so Backup keeps restoring Messages.
        if !report.unchanged
            && self.backup_on()
            && (name == super::backup::MESSAGES || name == super::backup::BACKUP)
            && let Err(e) = self.enable_backup()
        {
            warn!("cannot refresh the Messages key kept under Backup: {e}");
        }
        Ok(report)
    }

    fn rotate_category_inner(
        &mut self,
        name: &str,
        cat: &Category,
        opts: &RotateOptions,
        progress: &mut dyn FnMut(RotationProgress),
    ) -> Result<RotateReport, RotateError> {
        let report = self.rotate_category_once(name, cat, opts, progress)?;
        // Finishing an earlier rotation (or only destroying a key object that the store
        // says is left over) does not move the category to the class asked for: go once
        // more, so "ADP on" never ends with a category still under a service-held key.
        if let Some(want) = opts.class {
            self.refresh_manifest()?;
            if self.table().find(name).is_some_and(|x| x.class != want) {
                let again = self.rotate_category_once(name, cat, opts, progress)?;
                if self.table().find(name).is_some_and(|x| x.class != want) {
                    return Err(RotateError::Refused(format!(
                        "category {name} did not reach class {}",
                        want.name()
                    )));
                }
                return Ok(again);
            }
        }
        Ok(report)
    }

    fn rotate_category_once(
        &mut self,
        name: &str,
        cat: &Category,
        opts: &RotateOptions,
        progress: &mut dyn FnMut(RotationProgress),
    ) -> Result<RotateReport, RotateError> {
        // Another command (`category add`) may have published since this was unlocked.
        self.refresh_manifest()?;
        let e = self
            .table()
            .find(name)
            .cloned()
            .ok_or_else(|| AccountError::UnknownCategory(name.to_string()))?;
        if let Some(why) = opts
            .class
            .and_then(|want| super::adp::class_change_refusal(&self.manifest, &e, want))
        {
            return Err(RotateError::Refused(why));
        }
        if e.id != cat.id {
            return Err(RotateError::Refused(format!(
                "category {name} is not the one open here"
            )));
        }
        if let (_, _, _, Some(why)) = cat.stats() {
            return Err(RotateError::Refused(format!(
                "category {name} is unavailable ({why}); run `{}`",
                crate::hint::cmd_hint("fsck")
            )));
        }
        let cur = cat.key_version();
        if cur != e.key_version {
            return Err(RotateError::Refused(format!(
                "the drive uses key version {cur} of {name} but the table names version {}; \
                 unmount and mount again, then retry",
                e.key_version
            )));
        }
        let old_left = |v: u32| -> Result<bool, RotateError> {
            match self.store.size(&names::category_key(e.id, v)) {
                Ok(_) => Ok(true),
                Err(StoreError::NotFound(_)) => Ok(false),
                Err(err) => Err(err.into()),
            }
        };
        let (from, resumed) = if let Some(r) = cat.rotation() {
            info!(
                "category {name}: resuming key rotation v{} -> v{}",
                r.from, r.to
            );
            (r.from, true)
        } else if cur > 1 && old_left(cur - 1)? && self.needing(e.id, cur - 1)?.is_empty() {
            // The tree is already under the current key; only the destruction is left.
            // (While another device still needs that key, a new rotation starts instead
            // and the old key waits for the sync that destroys it.)
            (cur - 1, true)
        } else if opts.class.is_some_and(|c| c == e.class) {
            return Ok(RotateReport {
                from: cur,
                to: cur,
                resumed: false,
                unchanged: true,
                kept_for: Vec::new(),
            });
        } else {
            let to = cur
                .checked_add(1)
                .ok_or_else(|| RotateError::Refused("no key version left".into()))?;
            let key = self.create_key_version(e.id, opts.class.unwrap_or(e.class), to)?;
            info!("category {name}: key rotation v{cur} -> v{to} starts");
            cat.begin_rotation(to, key)?;
            (cur, false)
        };
        if let Some(r) = cat.rotation() {
            progress(RotationProgress {
                done: r.done,
                total: r.total,
                finished: false,
            });
        }
        loop {
            if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(RotateError::Interrupted(name.to_string()));
            }
            let p = cat.rotate_step(step_budget(opts.batch_bytes))?;
            progress(p);
            if p.finished {
                break;
            }
        }
        // The committed head records no rotation: nothing needs key `from` any more,
        // once that head is in the store (with write-back it may still be in the
        // journal, and the store's head would still need the old key).
        if let Some(wb) = &self.sync
            && !wb.wait_published(&names::head(e.id), std::time::Duration::from_secs(120))
        {
            return Err(RotateError::Refused(format!(
                "category {name}: re-encrypted under key version {}, but its new head has not \
                 reached the store yet (offline?); key version {from} is kept until it has: \
                 run `{}` again once the store is reachable",
                cat.key_version(),
                crate::hint::cmd_hint(&format!("rotate --category {name}"))
            )));
        }
        let kept_for = self.needing(e.id, from)?;
        if kept_for.is_empty() {
            self.destroy_key_version(e.id, from)?;
            cat.drop_old_key_version(from);
            info!("category {name}: key version {from} destroyed");
        } else {
            info!(
                "category {name}: key version {from} is kept until {} take(s) in the new key",
                kept_for.join(", ")
            );
        }
        Ok(RotateReport {
            from,
            to: cat.key_version(),
            resumed,
            unchanged: false,
            kept_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_batch_is_bounded_so_a_cancel_is_honoured_soon() {
        // `{"op":"rotate","batch_bytes":18000000000000000000}` from the socket.
        assert_eq!(step_budget(18_000_000_000_000_000_000), MAX_BATCH);
        assert_eq!(step_budget(0), 1);
        assert_eq!(step_budget(DEFAULT_BATCH), DEFAULT_BATCH);
    }
}
