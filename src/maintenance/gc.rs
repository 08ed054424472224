//! Garbage collection: deletes packs that no category's tree references. Runs with this
//! device's drive unmounted (it holds the daemon lock); other devices may be mounted and
//! syncing: packs younger than the grace period are kept, because a device uploads its
//! packs before the head that references them (FORMAT.md §7), so for a while they belong
//! to no published head.
//!
//! Mark and grace: when gc first finds a pack unreferenced it records the time in the
//! store (`account/gc-marks`, FORMAT.md §14a); the pack goes only once it has stayed
//! unreferenced for the whole grace period, and (with other devices syncing) once each of
//! them has acknowledged every head published since the mark (FORMAT.md §14b).

use super::{open_for_inspection, open_for_inspection_in};
use crate::account::{AccountError, Unlocked};
use crate::cache::ChunkCache;
use crate::daemon::DaemonError;
use crate::format::names;
use crate::store::{Store, StoreError};
use crate::volume::NoWitness;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
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
    Acks(AccountError),
    #[error("cannot record the unreferenced packs: {0}")]
    Marks(StoreError),
    #[error("cannot delete {name}: {source}")]
    Delete { name: String, source: StoreError },
}

/// Collects the account's store: takes the daemon lock (no mount of this home can start
/// meanwhile), finds what every category references, then [`sweep`]s.
pub fn collect(acct: &Unlocked, opts: GcOptions) -> Result<GcReport, GcError> {
    let _lock = crate::daemon::lock_home(&acct.home).map_err(GcError::Mounted)?;
    let referenced = referenced_packs(acct)?;
    let mut acks = |since| acct.devices_unpublished_since(since).map_err(GcError::Acks);
    let acks: Option<&mut dyn FnMut(u64) -> Result<Vec<String>, GcError>> = match &acct.sync {
        Some(_) => Some(&mut acks),
        None => None,
    };
    sweep(&*acct.store, &referenced, opts, SystemTime::now(), acks)
}

/// The packs every category (retired ones too) references, in this device's view (its
/// journal's heads first) and, with a remote store, in the store's own heads, which other
/// devices may have moved on.
fn referenced_packs(acct: &Unlocked) -> Result<HashSet<[u8; 32]>, GcError> {
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut referenced = HashSet::new();
    let mut views: Vec<(&'static str, Option<Arc<dyn Store>>)> = vec![("local", None)];
    if let Some(wb) = &acct.sync {
        views.push(("store", Some(wb.remote())));
    }
    for (view, store) in views {
        for (entry, setup) in acct.all_category_setups() {
            let setup = setup.map_err(|reason| GcError::Locked {
                category: entry.name.clone(),
                reason,
            })?;
            let c = match &store {
                None => open_for_inspection(acct, setup, &cache),
                Some(s) => {
                    open_for_inspection_in(acct, setup, &cache, s.clone(), Arc::new(NoWitness))
                }
            };
            let packs = c.referenced_packs().map_err(|reason| GcError::Unreadable {
                category: entry.name.clone(),
                view,
                reason,
            })?;
            referenced.extend(packs);
        }
    }
    Ok(referenced)
}

/// The mark-and-grace pass over `store`'s packs at time `now`: deletes each pack not in
/// `referenced` that is older than the grace period and has been unreferenced for it,
/// and that no device still has to acknowledge (`acks(since)`: the devices that have not
/// synced every head published since `since`; `None` without other devices), then
/// records the marks of the packs kept. A dry run changes nothing.
pub fn sweep(
    store: &dyn Store,
    referenced: &HashSet<[u8; 32]>,
    opts: GcOptions,
    now: SystemTime,
    mut acks: Option<&mut dyn FnMut(u64) -> Result<Vec<String>, GcError>>,
) -> Result<GcReport, GcError> {
    let list = store.list_info("packs/").map_err(GcError::List)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let grace = opts.grace;
    let marks_before = read_marks(store);
    let mut marks = BTreeMap::new();
    let mut doomed = Vec::new();
    let mut report = GcReport {
        in_use: referenced.len(),
        ..Default::default()
    };
    let mut behind: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut held_by = BTreeSet::new();
    for o in list {
        let Some(id) = names::parse_pack(&o.name) else {
            continue;
        };
        if referenced.contains(&id) {
            continue;
        }
        let since = *marks_before.get(&id).unwrap_or(&now_secs);
        let unreferenced_long = now_secs.saturating_sub(since) >= grace.as_secs();
        let old_enough = match o.modified {
            Some(t) => now.duration_since(t).unwrap_or_default() >= grace,
            // Age unknown: only a zero grace deletes it.
            None => grace.is_zero(),
        };
        if !(old_enough && unreferenced_long) {
            marks.insert(id, since);
            report.young += 1;
            continue;
        }
        let waiting_for = match acks.as_deref_mut() {
            Some(acks) => match behind.get(&since) {
                Some(w) => w.clone(),
                None => behind.entry(since).or_insert(acks(since)?).clone(),
            },
            None => Vec::new(),
        };
        if waiting_for.is_empty() {
            doomed.push((o.name, o.size));
        } else {
            marks.insert(id, since);
            report.held += 1;
            held_by.extend(waiting_for);
        }
    }
    report.held_by = held_by.into_iter().collect();
    report.deleted = doomed.len();
    report.deleted_bytes = doomed.iter().map(|(_, s)| s).sum();
    if opts.dry_run {
        return Ok(report);
    }
    write_marks(store, &marks)?;
    for (name, _) in &doomed {
        store.delete(name).map_err(|source| GcError::Delete {
            name: name.clone(),
            source,
        })?;
    }
    Ok(report)
}

/// The store object where gc keeps when it first found each pack unreferenced
/// (FORMAT.md §14a): lines of `<pack id hex> <unix seconds>`.
const MARKS: &str = "account/gc-marks";

fn read_marks(store: &dyn Store) -> HashMap<[u8; 32], u64> {
    let Ok(bytes) = store.get(MARKS) else {
        return Default::default();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let (id, t) = l.split_once(' ')?;
            let id: [u8; 32] = hex::decode(id).ok()?.try_into().ok()?;
            Some((id, t.trim().parse().ok()?))
        })
        .collect()
}

fn write_marks(store: &dyn Store, marks: &BTreeMap<[u8; 32], u64>) -> Result<(), GcError> {
    let text: String = marks
        .iter()
        .map(|(id, t)| format!("{} {t}\n", hex::encode(id)))
        .collect();
    store.put(MARKS, text.as_bytes()).map_err(GcError::Marks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::store::{Etag, ObjectInfo};
    use std::sync::Mutex;

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
        assert!(s.get(MARKS).is_ok());
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
        assert!(s.get(MARKS).is_err(), "a dry run writes no marks");
        // Without a mark, the real run only marks it; a dry run after that counts it.
        run(&s, &none, false, T0 + 10 * DAY);
        let r = run(&s, &none, true, T0 + 20 * DAY);
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(s.has(&p), "but deletes nothing");
        run(&s, &none, false, T0 + 20 * DAY);
        assert!(!s.has(&p));
    }

    #[test]
    fn a_pack_waits_for_the_devices_that_have_not_synced() {
        let s = Aged::default();
        s.at(T0);
        let p = s.pack(1);
        let none = HashSet::new();
        run(&s, &none, false, T0 + 10 * DAY);
        let mut asked = Vec::new();
        let mut acks = |since: u64| {
            asked.push(since);
            Ok(vec!["phone".to_string()])
        };
        let r = sweep(&s, &none, opts(false), at(T0 + 20 * DAY), Some(&mut acks)).unwrap();
        assert_eq!((r.deleted, r.held), (0, 1));
        assert_eq!(r.held_by, vec!["phone".to_string()]);
        assert_eq!(asked, vec![T0 + 10 * DAY], "asked since the mark");
        assert!(s.has(&p));
        let mut synced = |_| Ok(Vec::new());
        let r = sweep(&s, &none, opts(false), at(T0 + 20 * DAY), Some(&mut synced)).unwrap();
        assert_eq!(r.deleted, 1);
        assert!(!s.has(&p));
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
}
