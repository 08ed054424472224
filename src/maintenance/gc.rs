//! Garbage collection: deletes packs that no category's tree references. Runs with this
//! device's drive unmounted (it holds the daemon lock); other devices may be mounted and
//! syncing: packs younger than the grace period are kept, because a device uploads its
//! packs before the head that references them (FORMAT.md §7), so for a while they belong
//! to no published head.
//!
//! Mark, grace and epoch: when gc first finds a pack unreferenced it records it in the
//! store (`account/gc-marks`, FORMAT.md §14a) with the time and the run's gc epoch (each
//! run raises it). The pack goes only once it has been unreferenced for the whole grace
//! period and (with other devices syncing) once each of them has acknowledged that
//! epoch: it read it at the start of a poll that ended with nothing of it unpublished
//! (FORMAT.md §14b). A count, not a clock, so no device's clock skew matters. A device
//! whose merge may have named marked packs again says up to which epoch (`gc revived`),
//! and those marks start over in a new epoch.

use super::gc_views::referenced_packs;
use crate::account::{GcAcks, Unlocked};
use crate::daemon::DaemonError;
use crate::format::gc_marks::{self, GC_MARKS, Mark, Marks};
use crate::format::names;
use crate::store::{Etag, Store, StoreError, etag_of};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to collect.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Count what would be deleted; delete nothing and record no marks.
    pub dry_run: bool,
    /// How long a pack must be old and unreferenced before it goes.
    pub grace: Duration,
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Packs deleted (dry run: that would be).
    pub deleted: usize,
    pub deleted_bytes: u64,
    /// Packs some category references.
    pub in_use: usize,
    /// Unreferenced packs kept: not yet old or unreferenced for the grace period.
    pub young: usize,
    /// Unreferenced packs kept until the devices in `held_by` have synced.
    pub held: usize,
    pub held_by: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{0} (gc runs only while the drive is unmounted)")]
    Mounted(DaemonError),
    #[error(
        "category {category}: {reason}; nothing deleted (run `{}`)",
        crate::hint::cmd_hint("fsck")
    )]
    Locked { category: String, reason: String },
    #[error(
        "category {category} ({view} view): {reason}; nothing deleted (run `{}`)",
        crate::hint::cmd_hint("fsck")
    )]
    Unreadable {
        category: String,
        view: &'static str,
        reason: String,
    },
    #[error("cannot list the store: {0}")]
    List(StoreError),
    #[error("cannot read the devices' acknowledgements: {0}")]
    Acks(crate::account::AccountError),
    #[error("cannot read or record the unreferenced packs: {0}")]
    Marks(StoreError),
    /// Another gc run (another device's) wrote the marks while this one ran.
    #[error(
        "another gc run changed {GC_MARKS} meanwhile; nothing deleted (run `{}` again)",
        crate::hint::cmd_hint("gc")
    )]
    Concurrent,
    #[error("cannot delete {name}: {source}")]
    Delete { name: String, source: StoreError },
}

/// Collects the account's store: takes the daemon lock (no mount of this home can start
/// meanwhile), reads the other devices' acknowledgements, then finds what every
/// category references, then [`sweep`]s.
pub fn collect(acct: &Unlocked, opts: GcOptions) -> Result<GcReport, GcError> {
    let _lock = crate::daemon::lock_home(&acct.home).map_err(GcError::Mounted)?;
    collect_in(
        &*acct.store,
        opts,
        SystemTime::now(),
        || match &acct.sync {
            Some(_) => acct.gc_acks().map(Some).map_err(GcError::Acks),
            None => Ok(None),
        },
        |acks| referenced_packs(acct, acks),
    )
}

/// The order that makes an acknowledgement safe to count: every acknowledgement is read
/// (and verified) *before* any head. One that counts then comes from a poll that ended
/// clean before the heads were read, so whatever that device published is in them; read
/// after the heads, it could come from a poll that published a head naming a pack gc
/// did not see referenced.
///
/// And the order that keeps a merge's `gc revived` true (FORMAT.md §14b): a device that
/// publishes a merge reads the header *after* publishing and counts on any run that read
/// the heads before its merge making its marks at exactly that header + 1. So the marks
/// (and their etag) are read first, the header is raised to what the acknowledgements
/// demand *before* the heads are read, and the marks are written at exactly header + 1
/// with a compare-and-swap on that etag: another gc run in between (another device's)
/// aborts this one before it deletes anything.
fn collect_in(
    store: &dyn Store,
    opts: GcOptions,
    now: SystemTime,
    read_acks: impl FnOnce() -> Result<Option<GcAcks>, GcError>,
    read_heads: impl FnOnce(Option<&GcAcks>) -> Result<HashSet<[u8; 32]>, GcError>,
) -> Result<GcReport, GcError> {
    let before = read_marks(store)?;
    let acks = read_acks()?;
    let before = raise_epoch(store, before, acks.as_ref(), opts.dry_run)?;
    let referenced = read_heads(acks.as_ref())?;
    sweep(store, &referenced, opts, now, acks.as_ref(), before)
}

/// The marks as read, with the etag a compare-and-swap replaces them on (`None`: no
/// marks object yet).
#[derive(Debug, Clone, Default)]
struct MarksRead {
    marks: Marks,
    etag: Option<Etag>,
}

/// Raises the header's epoch to the highest the acknowledgements demand (an acknowledged
/// epoch, or a merge's `gc revived`), so this run's epoch (header + 1) is above both: a
/// marks object lost or rolled back never lets an old acknowledgement cover a new mark,
/// and a revival never covers less than the marks it was meant for. A header-only change
/// (the marks are kept), by compare-and-swap; a dry run only computes it.
fn raise_epoch(
    store: &dyn Store,
    before: MarksRead,
    acks: Option<&GcAcks>,
    dry_run: bool,
) -> Result<MarksRead, GcError> {
    let revived = acks.map_or(0, |a| a.revived);
    let acked_max = acks
        .and_then(|a| a.epochs.iter().map(|(_, e)| *e).max())
        .unwrap_or(0);
    let floor = acked_max.max(revived);
    if floor <= before.marks.epoch {
        return Ok(before);
    }
    let marks = Marks {
        epoch: floor,
        packs: before.marks.packs,
    };
    if dry_run {
        return Ok(MarksRead {
            marks,
            etag: before.etag,
        });
    }
    let etag = put_marks(store, &marks, before.etag.as_ref())?;
    Ok(MarksRead {
        marks,
        etag: Some(etag),
    })
}

/// Replaces the marks object only if it is still the version read (`expected`).
fn put_marks(store: &dyn Store, marks: &Marks, expected: Option<&Etag>) -> Result<Etag, GcError> {
    match store.put_if(GC_MARKS, &gc_marks::encode(marks), expected) {
        Ok(e) => Ok(e),
        Err(StoreError::PreconditionFailed(_)) => Err(GcError::Concurrent),
        Err(e) => Err(GcError::Marks(e)),
    }
}

/// The mark-and-grace pass over `store`'s packs at time `now`: deletes each pack not in
/// `referenced` that is older than the grace period, has been marked unreferenced for
/// it, and whose mark's epoch every other device has acknowledged (`acks`: the other
/// devices' acknowledgements; `None` without other devices). Then records the marks of
/// the packs kept, in this run's epoch (`before`'s header + 1, [`raise_epoch`] having
/// put it above every acknowledged and revived one): a pack found referenced loses its
/// mark, and so does one marked up to an epoch a merge may have revived packs of
/// (`GcAcks::revived`), so they start over. A dry run changes nothing.
fn sweep(
    store: &dyn Store,
    referenced: &HashSet<[u8; 32]>,
    opts: GcOptions,
    now: SystemTime,
    acks: Option<&GcAcks>,
    before: MarksRead,
) -> Result<GcReport, GcError> {
    let list = store.list_info("packs/").map_err(GcError::List)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let grace = opts.grace;
    // This run's epoch: new marks are made in it; a device has acknowledged it only once
    // it read it after the marks below are written.
    let epochs = acks.map(|a| a.epochs.as_slice()).unwrap_or_default();
    let revived = acks.map_or(0, |a| a.revived);
    let epoch = before.marks.epoch.saturating_add(1);
    let (etag, before) = (before.etag, before.marks);
    let mut marks = Marks {
        epoch,
        packs: BTreeMap::new(),
    };
    let mut doomed = Vec::new();
    let mut report = GcReport {
        in_use: referenced.len(),
        ..Default::default()
    };
    let mut held_by = BTreeSet::new();
    for o in list {
        let Some(id) = names::parse_pack(&o.name) else {
            continue;
        };
        if referenced.contains(&id) {
            continue;
        }
        // A layout-1 mark (no epoch), or one a merge may have revived the pack since, is
        // made again in this run's epoch: it keeps its time for the grace, but no
        // acknowledgement can have covered it yet.
        let mark = match before.packs.get(&id) {
            Some(m) => Mark {
                since: m.since,
                epoch: Some(m.epoch.filter(|e| *e > revived).unwrap_or(epoch)),
            },
            None => Mark {
                since: now_secs,
                epoch: Some(epoch),
            },
        };
        let unreferenced_long = now_secs.saturating_sub(mark.since) >= grace.as_secs();
        let old_enough = match o.modified {
            Some(t) => now.duration_since(t).unwrap_or_default() >= grace,
            // Age unknown: only a zero grace deletes it.
            None => grace.is_zero(),
        };
        if !(old_enough && unreferenced_long) {
            marks.packs.insert(id, mark);
            report.young += 1;
            continue;
        }
        let marked_in = mark.epoch.unwrap_or(epoch);
        let waiting_for: Vec<&String> = epochs
            .iter()
            .filter(|(_, acked)| *acked < marked_in)
            .map(|(n, _)| n)
            .collect();
        if waiting_for.is_empty() {
            doomed.push((o.name, o.size));
        } else {
            marks.packs.insert(id, mark);
            report.held += 1;
            held_by.extend(waiting_for.into_iter().cloned());
        }
    }
    report.held_by = held_by.into_iter().collect();
    report.deleted = doomed.len();
    report.deleted_bytes = doomed.iter().map(|(_, s)| s).sum();
    if opts.dry_run {
        return Ok(report);
    }
    // Another run wrote the marks since they were read: its epoch and this one's would
    // collide, so this one stops before deleting anything.
    put_marks(store, &marks, etag.as_ref())?;
    for (name, _) in &doomed {
        store.delete(name).map_err(|source| GcError::Delete {
            name: name.clone(),
            source,
        })?;
    }
    Ok(report)
}

/// The marks in the store, none before the first run. Unreadable: gc stops, since a
/// lost epoch would start the count again.
fn read_marks(store: &dyn Store) -> Result<MarksRead, GcError> {
    match store.get(GC_MARKS) {
        Ok(bytes) => Ok(MarksRead {
            marks: gc_marks::decode(&bytes),
            etag: Some(etag_of(&bytes)),
        }),
        Err(StoreError::NotFound(_)) => Ok(MarksRead::default()),
        Err(e) => Err(GcError::Marks(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::store::{Etag, ObjectInfo};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// A [`MemStore`] that reports when each object was written (the memory store does
    /// not), with a clock the test sets.
    #[derive(Default)]
    struct Aged {
        inner: MemStore,
        clock: Mutex<u64>,
        written: Mutex<HashMap<String, u64>>,
    }

    impl Aged {
        fn at(&self, secs: u64) {
            *self.clock.lock().unwrap() = secs;
        }
        fn pack(&self, seed: u8) -> [u8; 32] {
            let id = crate::crypto::hash(&[seed]);
            self.put(&names::pack(&id), &[seed; 100]).unwrap();
            id
        }
        fn has(&self, id: &[u8; 32]) -> bool {
            self.inner.get(&names::pack(id)).is_ok()
        }
    }

    impl Store for Aged {
        fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
            let t = *self.clock.lock().unwrap();
            self.written.lock().unwrap().insert(name.into(), t);
            self.inner.put(name, data)
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
            self.inner.get(name)
        }
        fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
            self.inner.get_range(name, offset, len)
        }
        fn put_if(&self, name: &str, data: &[u8], e: Option<&Etag>) -> Result<Etag, StoreError> {
            self.inner.put_if(name, data, e)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(prefix)
        }
        fn delete(&self, name: &str) -> Result<(), StoreError> {
            self.inner.delete(name)
        }
        fn size(&self, name: &str) -> Result<u64, StoreError> {
            self.inner.size(name)
        }
        fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            let written = self.written.lock().unwrap();
            self.list(prefix)?
                .into_iter()
                .map(|name| {
                    let size = self.size(&name)?;
                    let t = written.get(&name).copied().unwrap_or(0);
                    Ok(ObjectInfo {
                        modified: Some(UNIX_EPOCH + Duration::from_secs(t)),
                        name,
                        size,
                    })
                })
                .collect()
        }
    }

    /// A whole run with the heads already in hand (read after the acknowledgements).
    fn sweep(
        store: &dyn Store,
        refs: &HashSet<[u8; 32]>,
        opts: GcOptions,
        now: SystemTime,
        acks: Option<&GcAcks>,
    ) -> Result<GcReport, GcError> {
        collect_in(store, opts, now, || Ok(acks.cloned()), |_| Ok(refs.clone()))
    }

    const DAY: u64 = 86_400;
    const T0: u64 = 1_700_000_000;

    fn opts(dry_run: bool) -> GcOptions {
        GcOptions {
            dry_run,
            grace: Duration::from_secs(3 * DAY),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn run(s: &Aged, refs: &HashSet<[u8; 32]>, dry: bool, now: u64) -> GcReport {
        sweep(s, refs, opts(dry), at(now), None).unwrap()
    }

    #[test]
    fn young_packs_stay_old_unreferenced_ones_go_after_their_grace() {
        let s = Aged::default();
        s.at(T0);
        let old = s.pack(1);
        let none = HashSet::new();
        // First pass: the old pack is only now found unreferenced, so it is marked.
        let r = run(&s, &none, false, T0 + DAY);
        assert_eq!((r.deleted, r.young), (0, 1), "{r:?}");
        assert!(s.has(&old));
        // The marks persist in the store: a later run counts from the first one.
        assert!(s.get(GC_MARKS).is_ok());
        s.at(T0 + 3 * DAY);
        let young = s.pack(2);
        let r = run(&s, &none, false, T0 + 4 * DAY + 1);
        assert_eq!((r.deleted, r.deleted_bytes, r.young), (1, 100, 1), "{r:?}");
        assert!(!s.has(&old), "old and unreferenced for the grace: deleted");
        assert!(s.has(&young), "written less than the grace ago: kept");
    }

    #[test]
    fn referenced_packs_are_kept_however_old() {
        let s = Aged::default();
        s.at(T0);
        let used = s.pack(1);
        let refs: HashSet<_> = [used].into();
        run(&s, &refs, false, T0 + 10 * DAY);
        let r = run(&s, &refs, false, T0 + 20 * DAY);
        assert_eq!((r.deleted, r.young, r.in_use), (0, 0, 1), "{r:?}");
        assert!(s.has(&used));
    }

    #[test]
    fn a_dry_run_deletes_nothing_and_records_no_mark() {
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        run(&s, &none, true, T0 + 10 * DAY);
        assert!(s.get(GC_MARKS).is_err(), "a dry run writes no marks");
        // Without a mark, the real run only marks it; a dry run after that counts it.
        run(&s, &none, false, T0 + 10 * DAY);
        let r = run(&s, &none, true, T0 + 20 * DAY);
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(s.has(&p), "but deletes nothing");
        run(&s, &none, false, T0 + 20 * DAY);
        assert!(!s.has(&p));
    }

    fn with_acks(s: &Aged, refs: &HashSet<[u8; 32]>, now: u64, acks: &[(&str, u64)]) -> GcReport {
        revived_acks(s, refs, now, acks, 0)
    }

    fn revived_acks(
        s: &Aged,
        refs: &HashSet<[u8; 32]>,
        now: u64,
        acks: &[(&str, u64)],
        revived: u64,
    ) -> GcReport {
        let acks = GcAcks {
            epochs: acks.iter().map(|(n, e)| (n.to_string(), *e)).collect(),
            revived,
            ..Default::default()
        };
        sweep(s, refs, opts(false), at(now), Some(&acks)).unwrap()
    }

    fn epoch_of(s: &Aged, id: &[u8; 32]) -> Option<u64> {
        let m = gc_marks::decode(&s.get(GC_MARKS).unwrap());
        m.packs.get(id).and_then(|m| m.epoch)
    }

    #[test]
    fn a_pack_waits_until_every_device_acknowledged_its_epoch() {
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        with_acks(&s, &none, T0 + 10 * DAY, &[("phone", 0)]);
        assert_eq!(epoch_of(&s, &p), Some(1), "marked in the first epoch");
        // However late the phone's clock says it synced: only its epoch counts.
        let r = with_acks(&s, &none, T0 + 20 * DAY, &[("phone", 0), ("tablet", 9)]);
        assert_eq!((r.deleted, r.held), (0, 1));
        assert_eq!(r.held_by, vec!["phone".to_string()]);
        assert!(s.has(&p));
        assert_eq!(epoch_of(&s, &p), Some(1), "a held mark keeps its epoch");
        let r = with_acks(&s, &none, T0 + 20 * DAY, &[("phone", 1), ("tablet", 9)]);
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(!s.has(&p));
    }

    #[test]
    fn each_run_raises_the_epoch_above_every_acknowledged_one() {
        let s = Aged::default();
        s.at(T0);
        let none = HashSet::new();
        with_acks(&s, &none, T0, &[]);
        with_acks(&s, &none, T0, &[]);
        assert_eq!(gc_marks::decode(&s.get(GC_MARKS).unwrap()).epoch, 2);
        // The marks object lost (or rolled back) while a device acknowledged epoch 5: a
        // new mark must still be one it has not acknowledged.
        s.inner.delete(GC_MARKS).unwrap();
        let p = s.pack(1);
        let r = with_acks(&s, &none, T0 + 10 * DAY, &[("phone", 5)]);
        assert_eq!(r.deleted, 0);
        assert_eq!(epoch_of(&s, &p), Some(6));
        let r = with_acks(&s, &none, T0 + 20 * DAY, &[("phone", 5)]);
        assert_eq!((r.deleted, r.held), (0, 1), "phone has not seen epoch 6");
    }

    #[test]
    fn a_layout_1_mark_keeps_its_time_but_waits_for_a_new_epoch() {
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let old = format!("{} {}\n", hex::encode(p), T0 + DAY);
        s.put(GC_MARKS, old.as_bytes()).unwrap();
        // An old device's acknowledgement (no epoch) reads as 0; a new one may have
        // acknowledged epoch 0 too (no header to read): neither covers the old mark.
        let r = with_acks(&s, &HashSet::new(), T0 + 10 * DAY, &[("phone", 0)]);
        assert_eq!((r.deleted, r.held), (0, 1), "{r:?}");
        let m = gc_marks::decode(&s.get(GC_MARKS).unwrap());
        assert_eq!(
            (m.epoch, m.packs[&p].since, m.packs[&p].epoch),
            (1, T0 + DAY, Some(1))
        );
        let r = with_acks(&s, &HashSet::new(), T0 + 10 * DAY, &[("phone", 1)]);
        assert_eq!(r.deleted, 1, "{r:?}");
    }

    #[test]
    fn a_pack_found_referenced_again_loses_its_mark() {
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        with_acks(&s, &none, T0 + 10 * DAY, &[("phone", 0)]);
        assert_eq!(epoch_of(&s, &p), Some(1));
        // A merge names it again: the mark goes.
        with_acks(&s, &[p].into(), T0 + 11 * DAY, &[("phone", 1)]);
        assert_eq!(epoch_of(&s, &p), None);
        // Unreferenced again later: a new mark in the new epoch, which the phone's
        // acknowledgement of an earlier one does not cover.
        let r = with_acks(&s, &none, T0 + 30 * DAY, &[("phone", 2)]);
        assert_eq!((r.deleted, r.young), (0, 1), "{r:?}");
        assert_eq!(epoch_of(&s, &p), Some(3));
    }

    #[test]
    fn a_merge_that_may_have_revived_a_pack_restarts_its_mark() {
        // P marked in epoch 1; B merges an offline edit naming P (its head names P) and
        // a later head drops P again, all between two runs; B still holds the merged
        // tree. B's acknowledgement says epoch 1 but also that marks up to epoch 2 may
        // be revived: P is marked again, in a new epoch B has not acknowledged.
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        with_acks(&s, &none, T0 + 10 * DAY, &[("b", 0)]);
        let r = revived_acks(&s, &none, T0 + 20 * DAY, &[("b", 1)], 2);
        assert_eq!((r.deleted, r.held), (0, 1), "{r:?}");
        assert!(s.has(&p));
        assert_eq!(epoch_of(&s, &p), Some(3), "above the revived epoch");
        assert_eq!(
            s.get(GC_MARKS).unwrap()[..26],
            *b"gc-epoch 0000000000000003\n"
        );
        // B polls clean after that (its tree now lacks P): it goes.
        let r = revived_acks(&s, &none, T0 + 21 * DAY, &[("b", 3)], 2);
        assert_eq!(r.deleted, 1, "{r:?}");
    }

    #[test]
    fn acknowledgements_are_read_before_the_heads() {
        // Device B publishes a head naming P and acknowledges the epoch while gc loads the
        // heads (it read them before B's upload): that acknowledgement must not count.
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        with_acks(&s, &none, T0 + 10 * DAY, &[("b", 0)]);
        let b_epoch = std::cell::Cell::new(0);
        let r = collect_in(
            &s,
            opts(false),
            at(T0 + 20 * DAY),
            || {
                Ok(Some(GcAcks {
                    epochs: vec![("b".into(), b_epoch.get())],
                    ..Default::default()
                }))
            },
            |_| {
                b_epoch.set(1);
                Ok(HashSet::new())
            },
        )
        .unwrap();
        assert_eq!((r.deleted, r.held), (0, 1), "{r:?}");
        assert!(s.has(&p), "B's merged head names it");
    }

    #[test]
    fn the_packs_a_category_references_survive() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = super::super::testing::open(&store, 3);
        super::super::testing::write_file(&c, "a", &[7u8; 300_000]);
        let refs = c.referenced_packs().unwrap();
        assert!(!refs.is_empty());
        let stray = crate::crypto::hash(b"stray");
        store.put(&names::pack(&stray), b"x").unwrap();
        // The memory store knows no ages: a zero grace deletes what is unreferenced.
        let o = GcOptions {
            dry_run: false,
            grace: Duration::ZERO,
        };
        let r = sweep(&*store, &refs, o, SystemTime::now(), None).unwrap();
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(store.get(&names::pack(&stray)).is_err());
        drop(c);
        let c = super::super::testing::open(&store, 3);
        assert!(c.verify(&|_| {}).problems.is_empty());
    }

    #[test]
    fn a_run_aborts_before_deleting_when_another_wrote_the_marks() {
        // Q was marked long ago and is unreferenced in X's view; while X reads the heads,
        // another device's run W finds Q referenced again (a merge named it) and writes
        // its marks. X must not delete Q on its stale view, nor overwrite W's epoch.
        let s = Aged::default();
        s.at(T0);
        let q = s.pack(1);
        let none = HashSet::new();
        with_acks(&s, &none, T0 + 10 * DAY, &[("b", 0)]);
        assert_eq!(epoch_of(&s, &q), Some(1));
        let acks = GcAcks {
            epochs: vec![("b".into(), 1)],
            ..Default::default()
        };
        let r = collect_in(
            &s,
            opts(false),
            at(T0 + 20 * DAY),
            || Ok(Some(acks.clone())),
            |_| {
                sweep(&s, &[q].into(), opts(false), at(T0 + 20 * DAY), Some(&acks)).unwrap();
                Ok(HashSet::new())
            },
        );
        assert!(matches!(r, Err(GcError::Concurrent)), "{r:?}");
        assert!(s.has(&q), "nothing deleted");
        let m = gc_marks::decode(&s.get(GC_MARKS).unwrap());
        assert_eq!((m.epoch, m.packs.get(&q)), (2, None), "W's marks stand");
    }

    #[test]
    fn a_revival_acknowledged_during_a_run_covers_its_marks() {
        // Marks at epoch 5; an acknowledgement says revived 6. Run X reads it, then the
        // heads (P unreferenced); meanwhile B publishes a merge naming P and, as a
        // device does, reads the header after publishing: revived = header + 1. X's
        // marks of P must be in an epoch that revival covers, or a later run (every
        // acknowledgement past it) deletes P while B's merged tree names it.
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let five = Marks {
            epoch: 5,
            packs: BTreeMap::new(),
        };
        s.put(GC_MARKS, &gc_marks::encode(&five)).unwrap();
        let b_revived = std::cell::Cell::new(0);
        collect_in(
            &s,
            opts(false),
            at(T0 + 10 * DAY),
            || {
                Ok(Some(GcAcks {
                    epochs: vec![("b".into(), 5), ("c".into(), 5)],
                    revived: 6,
                    ..Default::default()
                }))
            },
            |_| {
                let head = s.get_range(GC_MARKS, 0, gc_marks::HEADER_LEN).unwrap();
                b_revived.set(gc_marks::epoch_of(&head).unwrap() + 1);
                Ok(HashSet::new())
            },
        )
        .unwrap();
        let marked = epoch_of(&s, &p).unwrap();
        assert!(marked <= b_revived.get(), "{marked} > {}", b_revived.get());
        // Every device past X's epoch, B's revival standing: P is marked again, not
        // deleted.
        let e = gc_marks::decode(&s.get(GC_MARKS).unwrap()).epoch;
        let r = revived_acks(
            &s,
            &none(),
            T0 + 20 * DAY,
            &[("b", e), ("c", e)],
            b_revived.get(),
        );
        assert_eq!((r.deleted, r.young + r.held), (0, 1), "{r:?}");
        assert!(s.has(&p));
    }

    fn none() -> HashSet<[u8; 32]> {
        HashSet::new()
    }
}
