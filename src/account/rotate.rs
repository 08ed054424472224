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
use crate::keys;
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
        "the rotation of {0} stopped before it finished; run `cirrus rotate --category {0}` \
         again to resume it"
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
}

/// The default batch: 64 MiB between commits, so an interrupted rotation loses little
/// and a 1 GiB category costs about 16 extra commits.
pub const DEFAULT_BATCH: u64 = 64 << 20;

/// What a finished rotation did.
#[derive(Debug, Clone, Copy)]
pub struct RotateReport {
    pub from: u32,
    pub to: u32,
    /// An unfinished rotation was continued (no new key version was made).
    pub resumed: bool,
}

impl Unlocked {
    /// Unwraps key `version` of category `e` (which need not be the table's current one).
    pub(crate) fn category_key_at(
        &self,
        e: &CategoryEntry,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        let mut at = e.clone();
        at.key_version = version;
        self.category_key(&at)
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

    /// Makes a fresh key for `version` of a category and stores it wrapped like every
    /// category key: under the account key (e2e) or the key service (standard, transit).
    fn create_key_version(
        &self,
        id: u32,
        class: Class,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        let key = crypto::random_key()?;
        let ctx = keys::category_key_context(id, version);
        let wrapped = match class {
            Class::E2e => keys::wrap(&self.account_key, ctx, &key)?,
            Class::Standard | Class::Transit => self.service.wrap(ctx, &key)?,
        };
        let mut obj = vec![class as u8];
        obj.extend_from_slice(&wrapped);
        // Durable before the table names it (FORMAT.md §7, writer rule 7). An object left
        // here by an attempt that died before publishing is simply replaced.
        self.store.put(&names::category_key(id, version), &obj)?;
        Ok(key)
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
        // Another command (`category add`) may have published since this was unlocked.
        self.table = self.load_table()?;
        let e = self
            .table
            .find(name)
            .cloned()
            .ok_or_else(|| AccountError::UnknownCategory(name.to_string()))?;
        if e.id != cat.id {
            return Err(RotateError::Refused(format!(
                "category {name} is not the one open here"
            )));
        }
        if let (_, _, _, Some(why)) = cat.stats() {
            return Err(RotateError::Refused(format!(
                "category {name} is unavailable ({why}); run `cirrus fsck`"
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
        } else if cur > 1 && old_left(cur - 1)? {
            // The tree is already under the current key; only the destruction is left.
            (cur - 1, true)
        } else {
            let to = cur
                .checked_add(1)
                .ok_or_else(|| RotateError::Refused("no key version left".into()))?;
            let key = self.create_key_version(e.id, e.class, to)?;
            for x in &mut self.table.entries {
                if x.id == e.id {
                    x.key_version = to;
                }
            }
            self.publish_table()?;
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
            let p = cat.rotate_step(opts.batch_bytes.max(1))?;
            progress(p);
            if p.finished {
                break;
            }
        }
        // The committed head records no rotation: nothing needs key `from` any more.
        match self.store.delete(&names::category_key(e.id, from)) {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        info!("category {name}: key version {from} destroyed");
        Ok(RotateReport {
            from,
            to: cat.key_version(),
            resumed,
        })
    }
}
