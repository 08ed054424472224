//! Write-back in front of a remote store: writes of data objects land in a local journal
//! and return at disk speed, a pool of uploader threads sends them with retries and
//! backoff, and reads go journal → disk cache → remote. Objects always reach the remote
//! before the head that references them, and a head is published with the remote's
//! compare-and-swap against the version it was based on, so two devices can never
//! silently overwrite each other. Knows no crypto: everything it holds is already sealed.
//!
//! What is written back is decided per name by [`Policy`]: content-addressed objects
//! (immutable) and category heads (deferred compare-and-swap). Everything else (the
//! account's manifest, keys, grants) is written through, because those changes need the
//! remote's answer before they count; copies are kept so an offline unlock still works.

mod disk_cache;
mod journal;

pub use disk_cache::DiskCache;
/// The journal file header codec, reachable from tests/fuzz_decoders.rs only.
#[doc(hidden)]
pub use journal::{
    Entry as JournalEntry, decode_header as decode_journal_header,
    encode_header as encode_journal_header,
};

use super::{Etag, Store, StoreError, etag_of};
use journal::{Entry, Journal};
use log::{debug, error, info, warn};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How an object name is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Content-addressed, never changes: journaled, uploaded in the background, and
    /// served from the disk cache first. `Some(hash)`: the name carries BLAKE3 of the
    /// content, checked on every fetch.
    Immutable(Option<[u8; 32]>),
    /// A mutable head: journaled as one slot per name, published with compare-and-swap
    /// after every object queued before it.
    Head,
    /// Written to the remote before `put` returns; read from the remote first.
    Through,
}

/// Limits and policy of a [`WriteBack`].
#[derive(Clone)]
pub struct WriteBackOptions {
    /// Bytes of clean objects kept on disk.
    pub disk_cache: u64,
    /// Bytes of unsent objects the journal may hold; a write past it is `Full` (ENOSPC).
    pub journal_max: u64,
    /// After the remote was found unreachable, reads that would need it fail at once for
    /// this long (then one is let through to probe), so an offline mount answers EIO in
    /// seconds instead of every read waiting for a timeout.
    pub offline_retry: Duration,
    pub classify: fn(&str) -> Policy,
}

impl WriteBackOptions {
    pub fn new(classify: fn(&str) -> Policy) -> Self {
        WriteBackOptions {
            disk_cache: 2 << 30,
            journal_max: 8 << 30,
            offline_retry: Duration::from_secs(5),
            classify,
        }
    }
}

/// A snapshot for `cirrus status` and progress bars.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncStatus {
    /// Objects and heads waiting in the journal (including those being sent).
    pub pending_objects: u64,
    pub pending_bytes: u64,
    pub uploading: u64,
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
    pub journal_max: u64,
    pub cache_bytes: u64,
    pub cache_max: u64,
    pub cache_objects: u64,
    /// Seconds since the epoch and the message of the last failure, if any.
    pub last_error: Option<(u64, String)>,
    pub offline: bool,
    /// Heads another device published first: `name: why` (kept in the journal).
    pub conflicts: Vec<String>,
    /// Journal files that failed their checks (moved to `journal/bad`).
    pub damaged: Vec<String>,
}

struct Slot {
    entry: Entry,
    etag: Etag,
}

/// How long [`WriteBack::wait_published`] waits for an unreachable store.
pub const OFFLINE_GIVE_UP: Duration = Duration::from_secs(10);

/// A remote head the next local head of its name replaces (see
/// [`WriteBack::rebase_on_next`]).
#[derive(Clone)]
struct Rebase {
    remote: Vec<u8>,
    /// It becomes the base of later merges (merged into), or not (superseded).
    is_base: bool,
}

#[derive(Default)]
struct St {
    /// No head goes out any more (this device was removed from the account).
    heads_held: bool,
    next_seq: u64,
    /// Pending objects, by sequence number.
    objects: BTreeMap<u64, Entry>,
    by_name: HashMap<String, u64>,
    in_flight: HashSet<u64>,
    heads: HashMap<String, Slot>,
    /// Head name → sequence number of its slot being uploaded.
    heads_in_flight: HashMap<String, u64>,
    /// Head slots replaced (or rebased away) while being uploaded: their bytes no longer
    /// count and their files go when the upload ends.
    retired: HashSet<u64>,
    /// The remote version of each head as last seen (`None`: absent).
    known: HashMap<String, Option<Etag>>,
    /// Merges waiting for their head: the next `put_if` expecting this remote object
    /// replaces the slot and makes the object its base (see `rebase_on_next`).
    rebasing: HashMap<String, Rebase>,
    /// The remote head object the local head of each name builds on (see `head_base`).
    bases: HashMap<String, Vec<u8>>,
    pending_bytes: u64,
    conflicts: BTreeMap<String, String>,
    damaged: Vec<String>,
    /// Objects that failed their checks: kept in the queue (unsent), so no later head
    /// that may name them goes out.
    damaged_seqs: HashSet<u64>,
    last_error: Option<(u64, String)>,
    offline_since: Option<Instant>,
    last_probe: Option<Instant>,
    backoff: Duration,
    retry_at: Option<Instant>,
    uploaded_objects: u64,
    uploaded_bytes: u64,
    journal_max: u64,
    stop: bool,
    /// Bytes in the store as last listed (`refresh_usage`).
    remote_bytes: Option<u64>,
}

pub struct WriteBack {
    remote: Arc<dyn Store>,
    journal: Journal,
    bases_dir: std::path::PathBuf,
    cache: DiskCache,
    opts: WriteBackOptions,
    st: Mutex<St>,
    changed: Condvar,
    /// One fetch per object at a time: readers of the same cold pack wait for the first.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// This process journaled something (so it should send it before exiting).
    journaled: AtomicBool,
    /// A sync thread merges conflicts (the daemon): waiting through one makes sense.
    merging: AtomicBool,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Outcome {
    Sent(Vec<u8>),
    Conflict(String),
    Failed(StoreError),
    Damaged(String),
}

impl WriteBack {
    /// Opens the journal in `journal_dir` (resuming what a previous run left) and the disk
    /// cache in `cache_dir`. Nothing is uploaded until [`WriteBack::start`].
    pub fn open(
        remote: Arc<dyn Store>,
        journal_dir: &Path,
        cache_dir: &Path,
        opts: WriteBackOptions,
    ) -> Result<Arc<WriteBack>, StoreError> {
        let (journal, entries, damaged) = Journal::open(journal_dir)?;
        for d in &damaged {
            error!("journal: damaged entry moved aside: {d}");
        }
        let cache = DiskCache::open(cache_dir, opts.disk_cache)?;
        let bases_dir = journal_dir.join("bases");
        std::fs::create_dir_all(&bases_dir).map_err(|e| StoreError::Io {
            name: "journal bases".into(),
            source: e,
        })?;
        let mut bases = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(&bases_dir) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if f.starts_with("TMP.") {
                    if journal::stale(&e) {
                        let _ = std::fs::remove_file(e.path());
                    }
                    continue;
                }
                if let (Some(name), Ok(d)) = (
                    f.strip_suffix(".head").map(|n| n.replace('~', "/")),
                    std::fs::read(e.path()),
                ) {
                    bases.insert(name, d);
                }
            }
        }
        let mut st = St {
            bases,
            journal_max: opts.journal_max,
            damaged,
            ..Default::default()
        };
        // Heads: of several slots of one name (a crash between writing the newer and
        // removing the older), the newest that passes its checks wins; it carries the
        // older one's base.
        let mut head_slots: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for e in entries {
            st.next_seq = st.next_seq.max(e.seq + 1);
            if e.is_head() {
                head_slots.entry(e.name.clone()).or_default().push(e);
            } else {
                st.pending_bytes += e.len;
                st.by_name.insert(e.name.clone(), e.seq);
                st.objects.insert(e.seq, e);
            }
        }
        for (name, mut slots) in head_slots {
            slots.sort_by_key(|e| std::cmp::Reverse(e.seq));
            let mut chosen = None;
            for e in slots {
                if chosen.is_some() {
                    journal.remove(&e);
                    continue;
                }
                match journal.read(&e) {
                    Ok(d) => {
                        st.pending_bytes += e.len;
                        chosen = Some(Slot {
                            etag: etag_of(&d),
                            entry: e,
                        });
                    }
                    Err(err) => {
                        error!("journal: {err}");
                        st.damaged.push(err.to_string());
                    }
                }
            }
            if let Some(slot) = chosen {
                st.heads.insert(name, slot);
            }
        }
        if st.pending_bytes > 0 {
            info!(
                "journal: {} objects, {} bytes still to upload from an earlier run",
                st.objects.len() + st.heads.len(),
                st.pending_bytes
            );
        }
        Ok(Arc::new(WriteBack {
            remote,
            journal,
            bases_dir,
            cache,
            opts,
            st: Mutex::new(st),
            changed: Condvar::new(),
            fetching: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            journaled: AtomicBool::new(false),
            merging: AtomicBool::new(false),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `threads` uploader threads.
    pub fn start(self: &Arc<Self>, threads: usize) {
        let mut w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..threads.max(1) {
            let me = self.clone();
            match std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || me.worker())
            {
                Ok(h) => w.push(h),
                Err(e) => error!("cannot start uploader thread: {e}"),
            }
        }
    }

    /// Stops the uploader threads after their current object (the journal keeps the rest).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
        let handles: Vec<_> = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.join();
        }
        self.lock().stop = false;
    }

    /// The head `name` as the remote store has it now (not the journal's), without
    /// changing what the local head is based on. `None`: the store has none.
    pub fn fetch_remote_head(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.remote_read(|| self.remote.get(name)) {
            Ok(d) => Ok(Some(d)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The remote version of `name` the local head builds on, as last seen.
    pub fn known_etag(&self, name: &str) -> Option<Etag> {
        self.lock().known.get(name).copied().flatten()
    }

    /// The remote head object the local head builds on: the common base for a merge.
    pub fn head_base(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let base = st.bases.get(name)?;
        // It must be the version the journal's slot (or the last read) is based on.
        let expect = match st.heads.get(name) {
            Some(slot) => slot.entry.base.flatten(),
            None => st.known.get(name).copied().flatten(),
        };
        (expect == Some(etag_of(base))).then(|| base.clone())
    }

    /// After a merge (or fast-forward) onto `remote`: the local head now builds on it.
    /// The slot of the superseded local head is dropped (the merged head replaces it).
    pub fn rebase(&self, name: &str, remote: &[u8]) {
        let mut st = self.lock();
        if let Some(old) = st.heads.remove(name) {
            self.retire(&mut st, old.entry);
        }
        st.conflicts.remove(name);
        st.rebasing.remove(name);
        st.known.insert(name.to_string(), Some(etag_of(remote)));
        self.cache.insert(name, remote);
        self.set_base(&mut st, name, remote);
        drop(st);
        self.changed.notify_all();
    }

    /// Drops a head slot that a newer head or a rebase replaced: its bytes stop counting,
    /// its file goes now, or when its upload ends if it is on its way.
    fn retire(&self, st: &mut St, old: Entry) {
        st.pending_bytes = st.pending_bytes.saturating_sub(old.len);
        if st.heads_in_flight.get(&old.name) == Some(&old.seq) {
            st.retired.insert(old.seq);
        } else {
            self.journal.remove(&old);
        }
    }

    /// A merge onto `remote` is about to commit: its head (the next `put_if` of `name`
    /// expecting `remote`) replaces the journal's slot in one durable write, and only
    /// then does `remote` become the base. Until that write, the old slot stays.
    pub fn rebase_on_next(&self, name: &str, remote: &[u8]) {
        self.lock().rebasing.insert(
            name.to_string(),
            Rebase {
                remote: remote.to_vec(),
                is_base: true,
            },
        );
    }

    /// Like [`WriteBack::rebase_on_next`] for a remote head that is replaced, not merged
    /// (published by a removed device): the next head overwrites it, and the base of
    /// later merges stays the last trusted head.
    pub fn supersede_on_next(&self, name: &str, remote: &[u8]) {
        self.lock().rebasing.insert(
            name.to_string(),
            Rebase {
                remote: remote.to_vec(),
                is_base: false,
            },
        );
    }

    fn set_base(&self, st: &mut St, name: &str, obj: &[u8]) {
        let path = self
            .bases_dir
            .join(format!("{}.head", name.replace('/', "~")));
        if let Err(e) = crate::store::write_file_atomic(&path, obj) {
            warn!("journal: cannot keep the base of {name}: {e}");
        }
        st.bases.insert(name.to_string(), obj.to_vec());
    }

    /// Whether a head `name` waits in the journal (not in the store yet).
    pub fn head_pending(&self, name: &str) -> bool {
        self.lock().heads.contains_key(name)
    }

    /// Stops publishing heads for good (this process): the device was removed from the
    /// account, and its changes would only be refused. They stay in the journal.
    pub fn hold_heads(&self, why: &str) {
        let mut st = self.lock();
        if !st.heads_held {
            warn!("{why}: no more changes are sent; they stay in the journal");
            st.heads_held = true;
            st.last_error = Some((now_secs(), why.to_string()));
        }
    }

    /// Whether any head waits in the journal.
    pub fn any_head_pending(&self) -> bool {
        !self.lock().heads.is_empty()
    }

    /// Whether some head waits for a merge (another device published first).
    pub fn has_conflicts(&self) -> bool {
        !self.lock().conflicts.is_empty()
    }

    /// Lists the store to learn how many bytes it holds (for `statfs`; the sync thread
    /// calls it now and then).
    pub fn refresh_usage(&self) -> Result<u64, StoreError> {
        let total: u64 = self.remote.list_info("")?.iter().map(|o| o.size).sum();
        self.lock().remote_bytes = Some(total);
        Ok(total)
    }

    /// The store without the journal in front: what other devices see.
    pub fn remote(&self) -> Arc<dyn Store> {
        self.remote.clone()
    }

    /// Records a sync problem found above this layer (shown by `status`).
    pub fn report_error(&self, msg: String) {
        self.lock().last_error = Some((now_secs(), msg));
    }

    /// Says that a sync thread takes in heads published elsewhere (and so resolves
    /// conflicts) while this store is open.
    pub fn set_merging(&self, on: bool) {
        self.merging.store(on, Ordering::Relaxed);
    }

    /// Waits until the journal holds no head `name` any more (it reached the store),
    /// starting the uploader if this process has none. `false`: it did not within
    /// `timeout`, the store has been unreachable for [`OFFLINE_GIVE_UP`], or it met a
    /// head published elsewhere and nothing here merges.
    pub fn wait_published(self: &Arc<Self>, name: &str, timeout: Duration) -> bool {
        if self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            self.start(2);
        }
        let started = Instant::now();
        let deadline = started + timeout;
        let mut st = self.lock();
        if st.offline_since.is_some() {
            // It may be back: try now rather than at the end of the backoff.
            st.retry_at = None;
            st.backoff = Duration::ZERO;
            st.last_probe = None;
            self.changed.notify_all();
        }
        loop {
            if !st.heads.contains_key(name) {
                return true;
            }
            let stuck = st.conflicts.contains_key(name) && !self.merging.load(Ordering::Relaxed);
            // Unreachable for a while during this wait: the caller learns now, not after
            // the whole timeout.
            let offline = st
                .offline_since
                .is_some_and(|t| t.max(started).elapsed() >= timeout.min(OFFLINE_GIVE_UP));
            if stuck || offline || Instant::now() >= deadline {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Whether this process put anything into the journal.
    pub fn journaled_here(&self) -> bool {
        self.journaled.load(Ordering::Relaxed)
    }

    pub fn set_limits(&self, disk_cache: u64, journal_max: u64) {
        self.cache.set_cap(disk_cache);
        self.lock().journal_max = journal_max;
    }

    /// Forgets backoff and past conflicts so the next upload is tried now (`cirrus sync`).
    pub fn kick(&self) {
        {
            let mut st = self.lock();
            st.retry_at = None;
            st.backoff = Duration::ZERO;
            st.last_probe = None;
            st.conflicts.clear();
        }
        self.changed.notify_all();
    }

    pub fn status(&self) -> SyncStatus {
        let (cache_bytes, cache_max, cache_objects) = self.cache.usage();
        let st = self.lock();
        SyncStatus {
            pending_objects: (st.objects.len() + st.heads.len()) as u64,
            pending_bytes: st.pending_bytes,
            uploading: (st.in_flight.len() + st.heads_in_flight.len()) as u64,
            uploaded_objects: st.uploaded_objects,
            uploaded_bytes: st.uploaded_bytes,
            journal_max: st.journal_max,
            cache_bytes,
            cache_max,
            cache_objects: cache_objects as u64,
            last_error: st.last_error.clone(),
            offline: st.offline_since.is_some(),
            conflicts: st
                .conflicts
                .iter()
                .map(|(n, w)| format!("{n}: {w}"))
                .collect(),
            damaged: st.damaged.clone(),
        }
    }

    /// Whether nothing is left to send except heads held back by a conflict.
    /// Nothing more will go out for now: objects sent, and heads sent, in conflict, or
    /// held (a removed device).
    fn drained(st: &St) -> bool {
        st.objects.is_empty()
            && (st.heads_held || st.heads.keys().all(|n| st.conflicts.contains_key(n)))
    }

    /// Waits until the queue is drained, `give_up` says so, or `stall` passes without a
    /// byte sent. Calls `progress` about every 200 ms. Returns the final status.
    pub fn wait_drained(
        &self,
        stall: Option<Duration>,
        give_up: &dyn Fn() -> bool,
        progress: &mut dyn FnMut(&SyncStatus),
    ) -> SyncStatus {
        let mut last_sent = self.lock().uploaded_bytes;
        let mut last_move = Instant::now();
        loop {
            let s = self.status();
            progress(&s);
            {
                let st = self.lock();
                if Self::drained(&st) {
                    break;
                }
                if st.uploaded_bytes != last_sent {
                    last_sent = st.uploaded_bytes;
                    last_move = Instant::now();
                }
                let _ = self
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .map(|(g, _)| drop(g));
            }
            if give_up() || stall.is_some_and(|d| last_move.elapsed() > d) {
                break;
            }
        }
        self.status()
    }

    fn worker(self: Arc<Self>) {
        while let Some(job) = self.next_job() {
            let out = self.send(&job);
            self.finish(job, out);
        }
    }

    fn next_job(&self) -> Option<Entry> {
        let mut st = self.lock();
        loop {
            if st.stop {
                return None;
            }
            let now = Instant::now();
            let wait = st.retry_at.filter(|t| *t > now).map(|t| t - now);
            if wait.is_none()
                && let Some(e) = Self::pick(&mut st)
            {
                return Some(e);
            }
            st = self
                .changed
                .wait_timeout(st, wait.unwrap_or(Duration::from_secs(1)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// The next thing to send: objects in order, any number at once; a head only when
    /// every object queued before it has been sent, one upload per head at a time.
    fn pick(st: &mut St) -> Option<Entry> {
        // Two entries for one name (only a non-content-addressed object can have them) go
        // one after the other, or the older one could land last and win.
        let busy: HashSet<&str> = st
            .in_flight
            .iter()
            .filter_map(|s| st.objects.get(s))
            .map(|e| e.name.as_str())
            .collect();
        let obj = st
            .objects
            .iter()
            .find(|(s, e)| {
                !st.in_flight.contains(s)
                    && !st.damaged_seqs.contains(s)
                    && !busy.contains(e.name.as_str())
            })
            .map(|(_, e)| e.clone());
        if let Some(e) = obj {
            st.in_flight.insert(e.seq);
            return Some(e);
        }
        if st.heads_held {
            return None;
        }
        let first_obj = st.objects.keys().next().copied().unwrap_or(u64::MAX);
        let head = st
            .heads
            .iter()
            .filter(|(n, s)| {
                s.entry.seq < first_obj
                    && !st.heads_in_flight.contains_key(*n)
                    && !st.conflicts.contains_key(*n)
            })
            .min_by_key(|(_, s)| s.entry.seq)
            .map(|(_, s)| s.entry.clone());
        if let Some(e) = &head {
            st.heads_in_flight.insert(e.name.clone(), e.seq);
        }
        head
    }

    fn send(&self, e: &Entry) -> Outcome {
        let data = match self.journal.read(e) {
            Ok(d) => d,
            Err(err) => return Outcome::Damaged(err.to_string()),
        };
        let res = match &e.base {
            None => self.remote.put(&e.name, &data),
            Some(base) => match self.remote.put_if(&e.name, &data, base.as_ref()) {
                Ok(_) => Ok(()),
                Err(StoreError::PreconditionFailed(_)) => {
                    // Sent before a crash, with the answer or the journal update lost?
                    match self.remote.get(&e.name) {
                        Ok(cur) if etag_of(&cur) == etag_of(&data) => Ok(()),
                        _ => {
                            return Outcome::Conflict(
                                "another device published this head first; the local changes stay in the journal".into(),
                            );
                        }
                    }
                }
                Err(err) => Err(err),
            },
        };
        match res {
            Ok(()) => Outcome::Sent(data),
            Err(err) => Outcome::Failed(err),
        }
    }

    fn finish(&self, e: Entry, out: Outcome) {
        let mut st = self.lock();
        if e.is_head() {
            st.heads_in_flight.remove(&e.name);
            self.finish_head(&mut st, e, out);
        } else {
            st.in_flight.remove(&e.seq);
            self.finish_object(&mut st, e, out);
        }
        drop(st);
        self.changed.notify_all();
    }

    fn sent(st: &mut St, len: u64) {
        st.offline_since = None;
        st.backoff = Duration::ZERO;
        st.retry_at = None;
        st.uploaded_objects += 1;
        st.uploaded_bytes += len;
    }

    fn finish_object(&self, st: &mut St, e: Entry, out: Outcome) {
        match out {
            Outcome::Sent(data) => {
                Self::sent(st, e.len);
                debug!("uploaded {} ({} bytes)", e.name, e.len);
                self.cache.insert(&e.name, &data);
                if st.objects.remove(&e.seq).is_some() {
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                }
                if st.by_name.get(&e.name) == Some(&e.seq) {
                    st.by_name.remove(&e.name);
                }
                self.journal.remove(&e);
            }
            // Objects have no compare-and-swap.
            Outcome::Conflict(_) => {}
            Outcome::Failed(err) => self.failed(st, &e, err),
            Outcome::Damaged(why) => {
                error!(
                    "upload of {}: {why}; heads journaled after it are held back",
                    e.name
                );
                st.damaged.push(why.clone());
                st.last_error = Some((now_secs(), why));
                st.damaged_seqs.insert(e.seq);
            }
        }
    }

    fn finish_head(&self, st: &mut St, e: Entry, out: Outcome) {
        let current = st.heads.get(&e.name).is_some_and(|s| s.entry.seq == e.seq);
        let retired = st.retired.remove(&e.seq);
        if retired {
            // Replaced while on its way: whatever happened, its file is done with.
            self.journal.remove(&e);
        }
        match out {
            Outcome::Sent(data) => {
                Self::sent(st, e.len);
                let etag = etag_of(&data);
                debug!("uploaded head {}", e.name);
                st.known.insert(e.name.clone(), Some(etag));
                if current {
                    st.heads.remove(&e.name);
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                    self.journal.remove(&e);
                    self.cache.insert(&e.name, &data);
                    self.set_base(st, &e.name, &data);
                    return;
                }
                // A newer head of the same lineage was journaled meanwhile: it now
                // builds on the one just published. (After a rebase the newer slot has
                // another base: it then meets a conflict and is merged.)
                let same_base = st.heads.get(&e.name).map(|s| s.entry.base == e.base);
                if same_base != Some(false) {
                    self.cache.insert(&e.name, &data);
                    self.set_base(st, &e.name, &data);
                }
                if same_base == Some(true)
                    && let Some(slot) = st.heads.get_mut(&e.name)
                {
                    match self.journal.read(&slot.entry).and_then(|d| {
                        self.journal
                            .write(slot.entry.seq, &e.name, Some(Some(&etag)), &d)
                    }) {
                        Ok(n) => slot.entry = n,
                        Err(err) => {
                            error!("journal: cannot rebase head {}: {err}", e.name);
                            slot.entry.base = Some(Some(etag));
                        }
                    }
                }
            }
            Outcome::Conflict(why) => {
                if current {
                    info!("upload of {}: {why}", e.name);
                    st.conflicts.insert(e.name.clone(), why);
                }
            }
            Outcome::Failed(err) => {
                if !retired {
                    self.failed(st, &e, err);
                }
            }
            Outcome::Damaged(why) => {
                error!("upload of {}: {why}", e.name);
                st.damaged.push(why.clone());
                st.last_error = Some((now_secs(), why));
                if current {
                    st.heads.remove(&e.name);
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                }
            }
        }
    }

    fn failed(&self, st: &mut St, e: &Entry, err: StoreError) {
        let offline = matches!(err, StoreError::Unreachable { .. });
        if offline && st.offline_since.is_none() {
            st.offline_since = Some(Instant::now());
        }
        // One warning per failing spell; the rest at debug (status shows the last).
        let first = st.backoff.is_zero();
        st.backoff = (st.backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
        st.retry_at = Some(Instant::now() + st.backoff);
        if first {
            warn!(
                "upload of {} failed: {err}; queued writes stay in the journal and are retried with backoff",
                e.name
            );
        } else {
            debug!(
                "upload of {} failed: {err}; retrying in {} s",
                e.name,
                st.backoff.as_secs()
            );
        }
        st.last_error = Some((now_secs(), format!("{}: {err}", e.name)));
    }

    /// Runs a read that needs the remote, failing fast while it is known to be offline.
    fn remote_read<T>(&self, op: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        {
            let mut st = self.lock();
            if let Some(since) = st.offline_since {
                let recent = st
                    .last_probe
                    .is_some_and(|p| p.elapsed() < self.opts.offline_retry);
                if recent {
                    return Err(StoreError::Unreachable {
                        endpoint: "the store".into(),
                        cause: format!(
                            "offline for {} s (retried every {} s)",
                            since.elapsed().as_secs(),
                            self.opts.offline_retry.as_secs()
                        ),
                        timed_out: false,
                    });
                }
                st.last_probe = Some(Instant::now());
            }
        }
        let r = op();
        let mut st = self.lock();
        match &r {
            Err(StoreError::Unreachable { .. }) => {
                if st.offline_since.is_none() {
                    warn!("store unreachable; serving from the local cache");
                    st.offline_since = Some(Instant::now());
                }
                st.last_probe = Some(Instant::now());
            }
            Ok(_) | Err(StoreError::NotFound(_)) => {
                if st.offline_since.take().is_some() {
                    info!("store reachable again");
                    st.retry_at = None;
                    self.changed.notify_all();
                }
            }
            Err(_) => {}
        }
        r
    }

    /// A whole immutable object through the disk cache, fetched once however many readers
    /// want it, and checked against the hash its name carries.
    fn fetch_immutable(&self, name: &str, hash: Option<[u8; 32]>) -> Result<Vec<u8>, StoreError> {
        if let Some(d) = self.cache.get(name) {
            return Ok(d);
        }
        let gate = {
            let mut f = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            f.entry(name.to_string()).or_default().clone()
        };
        let res = {
            let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
            match self.cache.get(name) {
                Some(d) => Ok(d),
                None => self.remote_read(|| self.remote.get(name)).and_then(|d| {
                    if let Some(h) = hash
                        && blake3::hash(&d).as_bytes() != &h
                    {
                        error!("store: {name} does not match its content hash");
                        return Err(StoreError::Corrupt(name.to_string()));
                    }
                    self.cache.insert(name, &d);
                    Ok(d)
                }),
            }
        };
        let mut f = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            f.remove(name);
        }
        res
    }

    /// The version of a head a compare-and-swap is checked against: the journal's slot,
    /// else the remote's as last seen (asked once if never seen).
    fn local_head_etag(&self, name: &str) -> Result<Option<Etag>, StoreError> {
        {
            let st = self.lock();
            if let Some(s) = st.heads.get(name) {
                return Ok(Some(s.etag));
            }
            if let Some(k) = st.known.get(name) {
                return Ok(*k);
            }
        }
        match self.get(name) {
            Ok(d) => Ok(Some(etag_of(&d))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn journal_object(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let seq = {
            let mut st = self.lock();
            if st.pending_bytes + data.len() as u64 > st.journal_max {
                let msg = format!(
                    "journal full ({} of {} bytes waiting for upload)",
                    st.pending_bytes, st.journal_max
                );
                warn!("{msg}: refusing {name}");
                st.last_error = Some((now_secs(), msg.clone()));
                return Err(StoreError::Full(msg));
            }
            st.next_seq += 1;
            // Reserve the space now so concurrent writers cannot overshoot together.
            st.pending_bytes += data.len() as u64;
            st.next_seq
        };
        self.journaled.store(true, Ordering::Relaxed);
        match self.journal.write(seq, name, None, data) {
            Ok(e) => {
                let mut st = self.lock();
                st.by_name.insert(name.to_string(), seq);
                st.objects.insert(seq, e);
                drop(st);
                self.changed.notify_all();
                Ok(())
            }
            Err(err) => {
                let mut st = self.lock();
                st.pending_bytes = st.pending_bytes.saturating_sub(data.len() as u64);
                Err(err)
            }
        }
    }

    fn journal_head(
        &self,
        name: &str,
        data: &[u8],
        expected: Option<&Etag>,
    ) -> Result<Etag, StoreError> {
        let mut st = self.lock();
        let rebase_to = st
            .rebasing
            .get(name)
            .filter(|r| expected == Some(&etag_of(&r.remote)))
            .cloned();
        let (cur, base) = match (&rebase_to, st.heads.get(name)) {
            (Some(r), _) => (Some(etag_of(&r.remote)), Some(etag_of(&r.remote))),
            (None, Some(s)) => (Some(s.etag), s.entry.base.unwrap_or(None)),
            (None, None) => {
                let k = match st.known.get(name).copied() {
                    Some(k) => k,
                    None => {
                        drop(st);
                        let local = self.local_head_etag(name)?;
                        st = self.lock();
                        st.known.get(name).copied().unwrap_or(local)
                    }
                };
                (k, k)
            }
        };
        if cur.as_ref() != expected {
            return Err(StoreError::PreconditionFailed(name.to_string()));
        }
        st.next_seq += 1;
        let seq = st.next_seq;
        // Written under the lock: the slot and its file change together.
        self.journaled.store(true, Ordering::Relaxed);
        let e = self.journal.write(seq, name, Some(base.as_ref()), data)?;
        let etag = etag_of(data);
        st.pending_bytes += e.len;
        if let Some(old) = st.heads.insert(name.to_string(), Slot { entry: e, etag }) {
            self.retire(&mut st, old.entry);
        }
        if let Some(r) = rebase_to {
            st.rebasing.remove(name);
            st.conflicts.remove(name);
            st.known.insert(name.to_string(), Some(etag_of(&r.remote)));
            self.cache.insert(name, &r.remote);
            if r.is_base {
                self.set_base(&mut st, name, &r.remote);
            }
        }
        drop(st);
        self.changed.notify_all();
        Ok(etag)
    }

    fn journal_entry(&self, name: &str) -> Option<Entry> {
        let st = self.lock();
        if let Some(s) = st.heads.get(name) {
            return Some(s.entry.clone());
        }
        st.by_name
            .get(name)
            .and_then(|seq| st.objects.get(seq))
            .cloned()
    }
}

/// Objects and bytes waiting in a journal directory, read without opening it (for a
/// process that does not own the uploader). Heads superseded by a crash count twice.
pub fn queued_in(journal_dir: &Path) -> (u64, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for sub in ["objects", "heads"] {
        let Ok(rd) = std::fs::read_dir(journal_dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("TMP.") {
                continue;
            }
            if let Ok(md) = e.metadata() {
                n += 1;
                bytes += md.len();
            }
        }
    }
    (n, bytes)
}

impl Store for WriteBack {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        super::check_name(name)?;
        match (self.opts.classify)(name) {
            Policy::Immutable(_) => self.journal_object(name, data),
            Policy::Head => {
                let cur = self.local_head_etag(name)?;
                self.journal_head(name, data, cur.as_ref()).map(|_| ())
            }
            Policy::Through => {
                self.remote.put(name, data)?;
                self.cache.insert(name, data);
                Ok(())
            }
        }
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        super::check_name(name)?;
        if let Some(e) = self.journal_entry(name) {
            match self.journal.read(&e) {
                Ok(d) => return Ok(d),
                // Sent and removed in the meantime: it is in the cache or the remote now.
                Err(err) => debug!("journal read of {name}: {err}"),
            }
        }
        match (self.opts.classify)(name) {
            Policy::Immutable(hash) => self.fetch_immutable(name, hash),
            policy => match self.remote_read(|| self.remote.get(name)) {
                Ok(d) => {
                    if policy == Policy::Head {
                        let mut st = self.lock();
                        st.known.insert(name.to_string(), Some(etag_of(&d)));
                        // What a volume opens from is what its next head builds on.
                        if !st.heads.contains_key(name) {
                            self.set_base(&mut st, name, &d);
                        }
                    }
                    self.cache.insert(name, &d);
                    Ok(d)
                }
                Err(StoreError::NotFound(n)) => {
                    if policy == Policy::Head {
                        self.lock().known.insert(name.to_string(), None);
                    }
                    self.cache.remove(name);
                    Err(StoreError::NotFound(n))
                }
                Err(e @ StoreError::Unreachable { .. }) => match self.cache.get(name) {
                    Some(d) => {
                        debug!("{name}: store offline, using the cached copy");
                        if policy == Policy::Head {
                            let mut st = self.lock();
                            st.known
                                .entry(name.to_string())
                                .or_insert(Some(etag_of(&d)));
                            if !st.heads.contains_key(name) && !st.bases.contains_key(name) {
                                self.set_base(&mut st, name, &d);
                            }
                        }
                        Ok(d)
                    }
                    None => Err(e),
                },
                Err(e) => Err(e),
            },
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        super::check_name(name)?;
        if let Some(e) = self.journal_entry(name) {
            match self.journal.read_range(&e, offset, len) {
                Ok(d) => return Ok(d),
                Err(err) => debug!("journal read of {name}: {err}"),
            }
        }
        if let Some(d) = self.cache.get_range(name, offset, len) {
            return Ok(d);
        }
        match (self.opts.classify)(name) {
            Policy::Immutable(hash) if self.cache.usage().1 > 0 => {
                // The whole object once, into the disk cache: the next ranges of a
                // sequential read are local.
                let d = self.fetch_immutable(name, hash)?;
                let start = (offset as usize).min(d.len());
                let end = start.saturating_add(len as usize).min(d.len());
                Ok(d[start..end].to_vec())
            }
            _ => self.remote_read(|| self.remote.get_range(name, offset, len)),
        }
    }

    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError> {
        super::check_name(name)?;
        match (self.opts.classify)(name) {
            Policy::Head => self.journal_head(name, data, expected),
            _ => {
                let e = self.remote.put_if(name, data, expected)?;
                self.cache.insert(name, data);
                Ok(e)
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: BTreeSet<String> = self.remote.list(prefix)?.into_iter().collect();
        let st = self.lock();
        names.extend(
            st.by_name
                .keys()
                .chain(st.heads.keys())
                .filter(|n| n.starts_with(prefix))
                .cloned(),
        );
        Ok(names.into_iter().collect())
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        super::check_name(name)?;
        let queued = {
            let mut st = self.lock();
            match st.by_name.get(name).copied() {
                Some(seq) if !st.in_flight.contains(&seq) => {
                    st.by_name.remove(name);
                    let e = st.objects.remove(&seq);
                    if let Some(e) = &e {
                        st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                        self.journal.remove(e);
                    }
                    e.is_some()
                }
                _ => false,
            }
        };
        self.cache.remove(name);
        match self.remote.delete(name) {
            Err(StoreError::NotFound(_)) if queued => Ok(()),
            r => r,
        }
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        super::check_name(name)?;
        if let Some(e) = self.journal_entry(name) {
            return Ok(e.len);
        }
        if let Some(n) = self.cache.size(name)
            && matches!((self.opts.classify)(name), Policy::Immutable(_))
        {
            return Ok(n);
        }
        self.remote_read(|| self.remote.size(name))
    }

    fn list_info(&self, prefix: &str) -> Result<Vec<super::ObjectInfo>, StoreError> {
        let mut out: BTreeMap<String, super::ObjectInfo> = self
            .remote
            .list_info(prefix)?
            .into_iter()
            .map(|o| (o.name.clone(), o))
            .collect();
        let st = self.lock();
        let queued = st
            .by_name
            .iter()
            .filter_map(|(n, seq)| st.objects.get(seq).map(|e| (n, e.len)))
            .chain(st.heads.iter().map(|(n, s)| (n, s.entry.len)));
        for (n, len) in queued {
            if n.starts_with(prefix) {
                out.insert(
                    n.clone(),
                    super::ObjectInfo {
                        name: n.clone(),
                        size: len,
                        modified: Some(SystemTime::now()),
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// Bytes in the store (as last listed) plus the journal; an object store has no
    /// fixed size, so the space left is reported as 1 PiB.
    fn usage(&self) -> Option<(u64, u64)> {
        let st = self.lock();
        match st.remote_bytes {
            Some(b) => Some((b + st.pending_bytes, 1 << 50)),
            None => self.remote.usage(),
        }
    }
}

#[cfg(test)]
mod tests;
