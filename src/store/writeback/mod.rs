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
mod heads;
mod journal;
mod reads;
mod uploader;

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
        // What can still be written before writes fail with "no space left" is the
        // journal's room (uploads make more); the bucket itself has no known bound.
        let room = st.journal_max.saturating_sub(st.pending_bytes);
        match st.remote_bytes {
            Some(b) => Some((b + st.pending_bytes, room)),
            None => self
                .remote
                .usage()
                .map(|(used, avail)| (used, avail.min(room))),
        }
    }
}

#[cfg(test)]
mod tests;
