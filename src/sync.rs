//! Keeps a mounted drive in step with the account's other devices: looks at the heads
//! in the remote store (every poll interval, at once on `cirrus sync`, and whenever an
//! upload finds a head published elsewhere), and takes each new one in through the
//! volume (fast-forward or three-way merge). Uploading is the write-back layer's job.

use crate::crypto::SecretKey;
use crate::format::{gc_marks, names};
use crate::store::writeback::WriteBack;
use crate::store::{StoreError, etag_of};
use crate::volume::{Category, Stale, SyncOutcome};
use log::{info, warn};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What one poll did. Also the `pull` part of `cirrus sync --json` and of the daemon's
/// reply to a `sync` request (docs/USER-GUIDE.md), so its field names are that schema.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    /// Per category the poll took changes in, refused or failed on, in the order it
    /// looked; the daemon adds the others as [`PollOutcome::Unchanged`].
    pub categories: Vec<CategoryPoll>,
    /// The store could not be reached: nothing was looked at (the uploads say more).
    pub unreachable: Option<String>,
}

/// What a poll did to one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryPoll {
    pub name: String,
    pub outcome: PollOutcome,
    /// Conflict copies the merge made (only [`PollOutcome::Merged`] makes any).
    pub conflict_copies: usize,
    /// Problems with what the store served (rollback, tampering, a key not available);
    /// the message as logged, naming the category.
    pub error: Option<String>,
    /// Changes made on the web that the poll took in (FORMAT.md §9f).
    #[serde(default)]
    pub web_changes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollOutcome {
    /// Nothing new from other devices (or not looked at: unavailable, backing off).
    Unchanged,
    /// Took in another device's head that followed this device's.
    FastForward,
    /// Three-way merged another device's head with this device's changes.
    Merged,
    /// The store's head came from a removed device: replaced by this device's.
    Refused,
    /// Could not take the store's head in (see `error`).
    Failed,
}

impl PollReport {
    fn push(&mut self, name: &str, outcome: PollOutcome, conflict_copies: usize) {
        self.categories.push(CategoryPoll {
            name: name.to_string(),
            outcome,
            conflict_copies,
            error: None,
            web_changes: 0,
        });
    }

    fn failed(&mut self, name: &str, msg: String) {
        self.push(name, PollOutcome::Failed, 0);
        if let Some(c) = self.categories.last_mut() {
            c.error = Some(msg);
        }
    }

    fn named(&self, f: impl Fn(PollOutcome) -> bool) -> Vec<String> {
        let hit = self.categories.iter().filter(|c| f(c.outcome));
        hit.map(|c| c.name.clone()).collect()
    }

    /// Categories that took in another device's changes.
    pub fn pulled(&self) -> Vec<String> {
        self.named(|o| matches!(o, PollOutcome::FastForward | PollOutcome::Merged))
    }

    /// Categories whose store head came from a removed device and was replaced.
    pub fn refused(&self) -> Vec<String> {
        self.named(|o| o == PollOutcome::Refused)
    }

    /// Conflict copies made, over every category.
    pub fn copies(&self) -> usize {
        self.categories.iter().map(|c| c.conflict_copies).sum()
    }

    /// The failures' messages.
    pub fn errors(&self) -> Vec<String> {
        self.categories
            .iter()
            .filter_map(|c| c.error.clone())
            .collect()
    }

    /// Takes in what a `later` poll of the same sync did: a category it changed counts
    /// as changed (its copies added), and its failures and unreachability win.
    pub fn absorb(&mut self, later: PollReport) {
        for c in later.categories {
            match self.categories.iter_mut().find(|m| m.name == c.name) {
                Some(m) if c.outcome == PollOutcome::Unchanged => m.web_changes += c.web_changes,
                Some(m) => {
                    let copies = m.conflict_copies + c.conflict_copies;
                    let web = m.web_changes + c.web_changes;
                    let keep =
                        m.outcome == PollOutcome::Merged && c.outcome == PollOutcome::FastForward;
                    let outcome = if keep { m.outcome } else { c.outcome };
                    *m = CategoryPoll {
                        outcome,
                        conflict_copies: copies,
                        web_changes: web,
                        ..c
                    };
                }
                None => self.categories.push(c),
            }
        }
        if later.unreachable.is_some() {
            self.unreachable = later.unreachable;
        }
    }

    /// Adds each of `names` the poll did not report as [`PollOutcome::Unchanged`], so the
    /// report names every category.
    pub fn add_unchanged<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        for n in names {
            if !self.categories.iter().any(|c| c.name == n) {
                self.push(n, PollOutcome::Unchanged, 0);
            }
        }
    }
}

/// Why a hook of the account layer did not do its job. The syncer decides on the
/// variant, never on the message: what a variant carries is only shown.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The account is in use elsewhere (a rotation holds it): tried again next poll.
    #[error("the account is busy")]
    Busy,
    /// The account has removed this device (directly, or by a data recovery on another
    /// device): this device stops publishing heads. Carries the account's explanation.
    #[error("{0}")]
    DeviceRemoved(String),
    /// Anything else: reported and tried again later.
    #[error("{0}")]
    Failed(String),
}

/// Where a newer category key comes from: (category id, key version) → key.
pub type KeySource = dyn Fn(u32, u32) -> Result<SecretKey, HookError> + Send + Sync;

/// Per category open here: (category id, oldest key version this device may still need).
pub type Floors = Vec<(u32, u32)>;

/// A hook of the account layer that takes this device's floors.
pub type FloorsHook<T> = dyn Fn(&Floors) -> Result<T, HookError> + Send + Sync;

/// Per category open here: (category id, highest head counter known to be in the store).
pub type Heads = Vec<(u32, u64)>;

/// See [`AccountHooks::ack`].
pub type AckHook = dyn Fn(&Floors, &Heads, u64, GcAck) -> Result<(), HookError> + Send + Sync;

/// What this device's acknowledgement tells `cirrus gc` (FORMAT.md §14b).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcAck {
    /// The gc epoch read at the start of the last poll that ended with nothing
    /// unpublished.
    pub epoch: u64,
    /// Marks up to this epoch may name packs a merge of this device published again.
    pub revived: u64,
}

/// See [`AccountHooks::acked_heads`].
pub type AckedHeadsHook = dyn Fn() -> Result<HashMap<u32, (u64, String)>, HookError> + Send + Sync;

/// What the account layer does for the syncer (it sits above the volumes).
pub struct AccountHooks {
    pub keys: Box<KeySource>,
    /// Publishes this device's acknowledgement: its floors, the head counters it knows
    /// the store has, when it last had every head in the store (unix seconds), and what
    /// it tells gc.
    pub ack: Box<AckHook>,
    /// Per category, the highest head counter another device says the store has (and
    /// which device).
    pub acked_heads: Box<AckedHeadsHook>,
    /// Destroys the old key versions no trusted device needs any more, given this
    /// device's floors; returns what it destroyed.
    pub release: Box<FloorsHook<Vec<String>>>,
}

/// Why a removed device's write-back layer holds its heads (shown in `cirrus status`).
const DEVICE_REMOVED: &str = "this device was removed from the account";

/// The acknowledgement last published, and when old keys were last looked at.
#[derive(Default)]
struct Acked {
    floors: Option<Floors>,
    heads: Option<Heads>,
    /// When the other devices' head counters were last compared with the store's.
    fresh_check: Option<Instant>,
    /// Its `published` (unix seconds), and whether the journal was clean then.
    published: u64,
    clean: bool,
    /// The gc epoch it carries, and when the store's was last read.
    gc_epoch: u64,
    epoch_check: Option<Instant>,
    /// Its `gc_revived`, and whether a merge since needs it raised (see
    /// [`Syncer::may_revive`]).
    revived: u64,
    revival_pending: bool,
    released: Option<Instant>,
}

/// How often a poll also looks for old keys every device is past.
const RELEASE_EVERY: Duration = Duration::from_secs(60);

pub struct Syncer {
    cats: Vec<Arc<Category>>,
    wb: Arc<WriteBack>,
    hooks: AccountHooks,
    acked: Mutex<Acked>,
    /// This device's name, for conflict copies.
    device: String,
    /// One poll at a time (the background thread and `cirrus sync`).
    busy: Mutex<()>,
    /// Category → (no automatic try before, failures in a row).
    failures: Mutex<HashMap<u32, (Instant, u32)>>,
    /// When Recently Deleted was last looked at (at most hourly: a poll is every few
    /// seconds, and 30 days do not need that precision).
    purged: Mutex<Option<Instant>>,
    /// Where what a poll changed behind the kernel's back goes (set once mounted).
    kernel: OnceLock<TellKernel>,
}

/// Passes a category's `Stale` notes to the kernel (`fs::Invalidator`).
pub type TellKernel = Box<dyn Fn(u32, &[Stale]) + Send + Sync>;

impl Syncer {
    pub fn new(
        cats: Vec<Arc<Category>>,
        wb: Arc<WriteBack>,
        device: String,
        hooks: AccountHooks,
    ) -> Self {
        // An earlier mount may have published a merge and stopped (or crashed) before a
        // clean poll acknowledged it, whether or not a head still waits in the journal:
        // every mount counts as a possible revival until its first clean poll says so.
        // No file in the home needs to remember it, since the flag is set at every mount.
        let acked = Mutex::new(Acked {
            revival_pending: true,
            ..Default::default()
        });
        Syncer {
            cats,
            wb,
            acked,
            hooks,
            device,
            busy: Mutex::new(()),
            failures: Mutex::new(HashMap::new()),
            purged: Mutex::new(None),
            kernel: OnceLock::new(),
        }
    }

    /// From now on, every poll ends by telling the kernel what it changed (a mount sets
    /// this once; the categories must be watched, `Category::watch_for_kernel`).
    pub fn tell_kernel_with(&self, tell: TellKernel) {
        if self.kernel.set(tell).is_err() {
            warn!("the kernel is already told of this mount's changes");
        }
    }

    /// Hands each category's notes to the kernel, outside every category's lock.
    fn tell_kernel(&self) {
        let Some(tell) = self.kernel.get() else {
            return;
        };
        for c in &self.cats {
            tell(c.id, &c.take_stale());
        }
    }

    /// Whether the last tries of this category failed recently (then polls skip it for
    /// a while, doubling from 5 s to 5 min: a refused head is not fetched 5 times a
    /// second).
    fn backing_off(&self, cat: u32) -> bool {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(&cat)
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    fn note(&self, cat: u32, ok: bool) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            f.remove(&cat);
        } else {
            let n = f.get(&cat).map(|(_, n)| *n + 1).unwrap_or(0).min(6);
            f.insert(cat, (Instant::now() + Duration::from_secs(5 << n), n));
        }
    }

    /// Takes in every head another device has published since the last poll. `force`
    /// (`cirrus sync`): also categories whose last try failed a moment ago.
    pub fn poll(&self, force: bool) -> PollReport {
        let _one = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let mut rep = PollReport::default();
        let date = today();
        // What other devices say the store has, read before its heads are: a head older
        // than that, read after, is one the store withholds from this device.
        let acked = self.acked_heads_due(force);
        // The gc epoch, read before any head: if this poll ends clean, every pack gc
        // marked up to it is named by nothing of this device the store's heads lack.
        let gc_epoch = self.gc_epoch_due(force);
        // When this poll began, and whether it looked at every category: only then may it
        // say this device has everything in the store as of that time (for `cirrus gc`).
        let started = now_secs();
        let mut whole = true;
        for c in &self.cats {
            if c.stats().3.is_some() {
                whole = false;
                continue; // unavailable: nothing to merge into
            }
            let name = names::head(c.id);
            if !force && self.backing_off(c.id) {
                whole = false;
                continue;
            }
            let known = self.wb.known_etag(&name);
            let remote = match self.wb.fetch_remote_head(&name) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    rep.unreachable = Some(format!("cannot read the heads: {e}"));
                    // Offline: no point asking for every category.
                    break;
                }
            };
            if let Some((n, who)) = acked.get(&c.id)
                && *n > c.counter_in_store(&|| false)
                && let Some(m) = c.counter_of(&remote)
                && m < *n
            {
                self.note(c.id, false);
                let msg = format!(
                    "{}: the store serves head #{m}, but device {who} says it published head \
                     #{n}: the store is withholding or rolling back its changes",
                    c.name
                );
                log::error!("{msg}");
                self.wb.report_error(msg.clone());
                rep.failed(&c.name, msg);
                continue;
            }
            if known == Some(etag_of(&remote)) {
                continue;
            }
            // Published by a device the account removed: not merged but overwritten
            // (else a removed device still online would block every upload).
            if let Some(who) = c.revoked_signer(&remote) {
                let acked_n = acked.get(&c.id).map(|(n, _)| *n).unwrap_or(0);
                self.supersede(c, &remote, &who, acked_n, &mut rep);
                continue;
            }
            // Rotated (or moved by ADP) on another device: take the new key first.
            if let Some(kv) = c.key_version_of_head(&remote)
                && kv > c.key_version()
            {
                let adopted = match (self.hooks.keys)(c.id, kv) {
                    // A rotation holds the account: the next poll takes the key.
                    Err(HookError::Busy) => {
                        whole = false;
                        continue;
                    }
                    Err(e @ HookError::DeviceRemoved(_)) => {
                        // An honest removed device stops publishing at once: what it
                        // would publish is refused by the others anyway.
                        self.wb.hold_heads(DEVICE_REMOVED);
                        Err(e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                    Ok(k) => c.adopt_key(kv, k).map_err(|e| e.to_string()),
                };
                if let Err(e) = adopted {
                    self.note(c.id, false);
                    let msg = format!("{}: cannot take key version {kv}: {e}", c.name);
                    warn!("{msg}");
                    self.wb.report_error(msg.clone());
                    rep.failed(&c.name, msg);
                    continue;
                }
            }
            let base = self.wb.head_base(&name);
            // Our own upload may have landed since the store was read: then what was
            // read is older than the base, and not a rollback. Look again next time.
            if self.wb.known_etag(&name) != known {
                whole = false;
                continue;
            }
            let rebase = |now: bool| {
                if now {
                    self.wb.rebase(&name, &remote)
                } else {
                    self.wb.rebase_on_next(&name, &remote)
                }
            };
            let res = c.sync_remote(&remote, base.as_deref(), &self.device, &date, &rebase);
            self.note(c.id, res.is_ok());
            match res {
                Ok(SyncOutcome::UpToDate) => rebase(true),
                Ok(SyncOutcome::FastForward(_)) => rep.push(&c.name, PollOutcome::FastForward, 0),
                Ok(SyncOutcome::Merged { copies, .. }) => {
                    self.may_revive();
                    rep.push(&c.name, PollOutcome::Merged, copies);
                }
                Err(e) => {
                    let msg = format!("{}: cannot take in the other device's changes: {e}", c.name);
                    warn!("{msg}");
                    self.wb.report_error(msg.clone());
                    rep.failed(&c.name, msg);
                }
            }
        }
        if !rep.pulled().is_empty() {
            info!(
                "sync: took in changes of other devices in {} ({} conflict copies)",
                rep.pulled().join(", "),
                rep.copies()
            );
        }
        if rep.unreachable.is_none() {
            self.take_web_changes(&mut rep);
            self.purge_recently_deleted();
        }
        // Before the acknowledgement, so `cirrus sync` returns with the mount fresh.
        self.tell_kernel();
        if rep.unreachable.is_none() {
            self.acknowledge(force, started, whole && rep.errors().is_empty(), gc_epoch);
        }
        rep
    }

    /// Replaces the store's head of category `c`, published by removed device `who`, with
    /// this device's tree (`acked_n`: the highest counter another device acknowledged).
    fn supersede(
        &self,
        c: &Category,
        remote: &[u8],
        who: &str,
        acked_n: u64,
        rep: &mut PollReport,
    ) {
        let name = names::head(c.id);
        let res = c.supersede_remote(remote, acked_n, &|| {
            self.wb.supersede_on_next(&name, remote)
        });
        self.note(c.id, res.is_ok());
        match res {
            Ok(n) => {
                // This device's tree goes over the store's: like a merge, it may name again
                // what gc had marked.
                self.may_revive();
                warn!(
                    "{}: the store's head was published by {who}, a device removed from \
                     the account; its changes are refused and replaced by head #{n}",
                    c.name
                );
                rep.push(&c.name, PollOutcome::Refused, 0);
            }
            Err(e) => {
                let msg = format!(
                    "{}: cannot replace the head of removed device {who}: {e}",
                    c.name
                );
                warn!("{msg}");
                self.wb.report_error(msg.clone());
                rep.failed(&c.name, msg);
            }
        }
    }

    /// A merge (or a local tree put over the store's) may publish packs of this device's
    /// older tree that the store's heads had dropped and gc has marked since: once it is
    /// published, the acknowledgement says so (`gc_revived`), and gc marks those packs
    /// again in a new epoch.
    fn may_revive(&self) {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revival_pending = true;
    }

    /// Once everything is uploaded (unmount, `cirrus sync --wait`): when a merge's
    /// revival is not acknowledged yet, one more poll does it, so a device that stops
    /// now has said so before a gc run can count its older acknowledgement. Returns
    /// whether it polled.
    pub fn acknowledge_revival(&self) -> bool {
        let pending = self
            .acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revival_pending;
        if pending {
            self.poll(true);
        }
        pending
    }

    /// The other devices' head counters, when a comparison is due (every minute, and at
    /// once with `force`); empty otherwise or when they cannot be read.
    fn acked_heads_due(&self, force: bool) -> HashMap<u32, (u64, String)> {
        let mut a = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        if !force && a.fresh_check.is_some_and(|t| t.elapsed() < RELEASE_EVERY) {
            return HashMap::new();
        }
        drop(a);
        match (self.hooks.acked_heads)() {
            Ok(h) => {
                a = self.acked.lock().unwrap_or_else(|p| p.into_inner());
                a.fresh_check = Some(Instant::now());
                h
            }
            Err(HookError::Busy) => HashMap::new(),
            Err(e) => {
                log::debug!("cannot read the other devices' acknowledgements: {e}");
                HashMap::new()
            }
        }
    }

    /// The gc epoch in the store (`account/gc-marks`, FORMAT.md §14a), when a look is due
    /// (every minute, and at once with `force`): one ranged read of its header line.
    /// `None` when not due or unreadable: the acknowledgement then keeps its epoch.
    fn gc_epoch_due(&self, force: bool) -> Option<u64> {
        let mut a = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        if !force && a.epoch_check.is_some_and(|t| t.elapsed() < RELEASE_EVERY) {
            return None;
        }
        a.epoch_check = Some(Instant::now());
        drop(a);
        self.read_gc_epoch()
    }

    /// The gc epoch in the store now; `None` when it cannot be read.
    fn read_gc_epoch(&self) -> Option<u64> {
        match self
            .wb
            .remote()
            .get_range(gc_marks::GC_MARKS, 0, gc_marks::HEADER_LEN)
        {
            // Layout 1 (no header): an older gc, whose marks a newer one re-marks in
            // epoch 1 or later.
            Ok(b) => Some(gc_marks::epoch_of(&b).unwrap_or(0)),
            Err(StoreError::NotFound(_)) => Some(0),
            Err(e) => {
                log::debug!("cannot read the gc epoch: {e}");
                None
            }
        }
    }

    /// Per category open here, the highest head counter this device knows the store has.
    pub fn heads(&self) -> Heads {
        self.cats
            .iter()
            .map(|c| {
                let name = names::head(c.id);
                (c.id, c.counter_in_store(&|| !self.wb.head_pending(&name)))
            })
            .collect()
    }

    /// Per category open here, the oldest key version this device may still need: the
    /// one a rotation in progress started from, or the old key while a head that may
    /// use it waits in the journal; else the current one.
    pub fn floors(&self) -> Floors {
        self.cats
            .iter()
            .map(|c| {
                let v = c.key_version();
                // Unavailable: what it holds is unknown, so every old key may be needed.
                if c.stats().3.is_some() {
                    return (c.id, 1);
                }
                let floor = match c.rotating_from() {
                    Some(from) => from,
                    None if self.wb.head_pending(&names::head(c.id)) => {
                        c.old_key_version().unwrap_or(v)
                    }
                    None => v,
                };
                (c.id, floor.min(v))
            })
            .collect()
    }

    /// Publishes the key acknowledgement when it changed, and now and then (at once
    /// with `force`) destroys old keys every device is past.
    /// `started`, `whole`, `gc_epoch`: when the poll began, whether it took in every
    /// category, and the gc epoch read before it looked at any head.
    fn acknowledge(&self, force: bool, started: u64, whole: bool, gc_epoch: Option<u64>) {
        let floors = self.floors();
        let heads = self.heads();
        // Everything published (and every category current): what this device built on
        // when the poll began is in the store's heads. Uncommitted changes count as
        // unpublished even when their packs are already uploaded (written packs go out
        // before the commit that names them).
        let clean = whole && !self.wb.any_head_pending() && !self.cats.iter().any(|c| c.is_dirty());
        let mut a = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        let published = if clean { started } else { a.published };
        // A merge's head is in the store now: every gc run that may have read the heads
        // before it has at most the epoch read now + 1 (gc settles its header before it
        // reads the heads and writes its marks at exactly header + 1 by compare-and-swap),
        // so the marks up to that may name what the merge published. Unreadable: the
        // epoch waits.
        let (mut gc_epoch, mut revived, mut covered) = (gc_epoch, a.revived, false);
        if clean && a.revival_pending {
            match self.read_gc_epoch() {
                Some(e) => {
                    revived = revived.max(e.saturating_add(1));
                    covered = true;
                }
                None => gc_epoch = None,
            }
        }
        let epoch = match gc_epoch {
            Some(e) if clean => e,
            _ => a.gc_epoch,
        };
        let refresh = clean && (force || !a.clean || epoch != a.gc_epoch || revived != a.revived);
        if a.floors.as_ref() != Some(&floors) || a.heads.as_ref() != Some(&heads) || refresh {
            let gc = GcAck { epoch, revived };
            match (self.hooks.ack)(&floors, &heads, published, gc) {
                Ok(()) => {
                    a.floors = Some(floors.clone());
                    a.heads = Some(heads);
                    a.published = published;
                    a.gc_epoch = epoch;
                    a.revived = revived;
                    a.revival_pending &= !covered;
                    a.clean = clean;
                }
                Err(HookError::Busy) => {}
                Err(e) => warn!("cannot publish this device's acknowledgement: {e}"),
            }
        } else if covered {
            // Nothing new to say: the published `gc_revived` already covers the merge.
            a.revival_pending = false;
        }
        if force || a.released.is_none_or(|t| t.elapsed() >= RELEASE_EVERY) {
            drop(a);
            let res = (self.hooks.release)(&floors);
            if !matches!(res, Err(HookError::Busy)) {
                self.acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .released = Some(Instant::now());
            }
            match res {
                Ok(done) if !done.is_empty() => {
                    info!("sync: old keys destroyed: {}", done.join(", "))
                }
                Ok(_) => {}
                Err(HookError::Busy) => {}
                Err(e) => warn!("cannot look for old keys to destroy: {e}"),
            }
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Today's date in UTC as YYYY-MM-DD (for conflict copy names).
pub fn today() -> String {
    utc_date(jiff::Timestamp::now().as_second())
}

/// The UTC date of `secs` since the epoch, as YYYY-MM-DD.
fn utc_date(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d").to_string(),
        // Outside jiff's range (years -9999..=9999): no real clock says so.
        Err(_) => "0000-00-00".to_string(),
    }
}

#[cfg(test)]
#[path = "sync/tests.rs"]
mod tests;
#[path = "sync/web.rs"]
mod web;
pub use web::take_in_now as take_in_web_changes_now;
