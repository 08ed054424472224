//! A category's encrypted file tree over any `Store`: inodes, directories and file chunks,
//! sealed into packs and committed under an authenticated head. Knows nothing of FUSE.

mod acl;
mod commit;
pub mod freshness;
mod io;
mod load;
mod merge;
mod patch;
mod recently_deleted;
mod rotate;
mod sealer;
mod stale;
mod sync;
#[cfg(test)]
pub(crate) mod testing;
mod tree;
mod verify;
mod web_inbox;

use crate::cache::ChunkCache;
use crate::crypto::{SecretKey, Suite};
use crate::format::pack::BlobRef;
use crate::format::record::Record;
use crate::format::table::{CategoryEntry, Class};
use crate::store::{Etag, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};

pub use acl::AclKind;
pub use io::Allocate;
pub use recently_deleted::KEEP_SECS as RECENTLY_DELETED_KEEP_SECS;
pub use rotate::{Rotation, RotationProgress};
pub use sealer::Sealer;
pub use stale::Stale;
pub use sync::SyncOutcome;
pub use tree::{Listed, NewNode, NodeInfo, SetAttr, TimeSet};
pub use verify::{Usage, VerifyReport};
pub use web_inbox::{RECENTLY_DELETED, RECENTLY_DELETED_MARK, WebApplied};

/// Local inode number of a category's root directory.
pub const ROOT_INO: u64 = 1;

/// Errors of the volume layer. `fs` maps them to errno in one place.
#[derive(Debug, thiserror::Error)]
pub enum VolError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("file name too long")]
    NameTooLong,
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("no such attribute")]
    NoAttr,
    #[error("attribute value too large")]
    AttrTooBig,
    #[error("operation not supported: {0}")]
    Unsupported(&'static str),
    #[error("file too large")]
    TooBig,
    #[error("too many links")]
    TooManyLinks,
    #[error("integrity violation in {what}: {why}")]
    Integrity { what: String, why: String },
    #[error("category {name} is unavailable: {why}")]
    Unavailable { name: String, why: String },
    #[error("no space left in the store ({0})")]
    NoSpace(String),
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

impl VolError {
    pub(crate) fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Full(n) => VolError::NoSpace(n),
            e => VolError::Store(e),
        }
    }
}

pub type VolResult<T> = Result<T, VolError>;

/// Why the witness cannot answer or record. Either way the rollback check cannot be
/// trusted, so a caller that needs `seen` fails closed (the category is unavailable)
/// instead of taking "nothing seen" for an answer.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The record is unusable in this process (a thread panicked while holding it).
    #[error("the record of heads seen is unusable after an internal error; remount")]
    Unavailable,
    /// The record could not be made durable.
    #[error("cannot save the record of heads seen: {0}")]
    Save(String),
}

/// What the device remembers about heads it has seen, so a store serving an older head
/// (rollback) or a different head with the same counter (fork) is detected.
pub trait HeadWitness: Send + Sync {
    /// Highest (counter, head object hash) seen for `category`, if any. An error never
    /// means "nothing seen".
    fn seen(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError>;
    /// Records a head this device has read or written. Must be durable before returning.
    fn record(&self, category: u32, counter: u64, hash: [u8; 32]) -> Result<(), WitnessError>;
    /// Records a head this device has just committed (and the store holds durably). It
    /// may reach the disk a moment after returning, which the record's owner bounds:
    /// the commit (an fsync) then does not wait for the record's own flushes. A crash in
    /// between leaves the record behind the store, which only means the check after the
    /// restart does not cover those last heads; it is never ahead, so never a false alarm.
    fn record_committed(
        &self,
        category: u32,
        counter: u64,
        hash: [u8; 32],
    ) -> Result<(), WitnessError> {
        self.record(category, counter, hash)
    }
    /// Makes every record on its way durable (at unmount, after the last commits).
    fn flush(&self) -> Result<(), WitnessError> {
        Ok(())
    }
    /// Highest head seen *in the store* (published by any device). Kept apart from
    /// [`HeadWitness::seen`], which also counts this device's commits not uploaded yet.
    fn seen_remote(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        self.seen(category | REMOTE_WITNESS)
    }
    fn record_remote(
        &self,
        category: u32,
        counter: u64,
        hash: [u8; 32],
    ) -> Result<(), WitnessError> {
        self.record(category | REMOTE_WITNESS, counter, hash)
    }
}

impl Category {
    /// The witness could not answer: the rollback check cannot run, so the request fails
    /// closed as unavailable (EIO) instead of taking the head unchecked.
    pub(crate) fn witness_failed(&self, e: WitnessError) -> VolError {
        VolError::Unavailable {
            name: self.name.clone(),
            why: e.to_string(),
        }
    }
}

/// Marks the witness entries of remote heads (category ids stay below 2^31).
const REMOTE_WITNESS: u32 = 1 << 31;

/// Who may publish heads: wraps a sealed head into the stored object (signing it) and
/// checks a stored one. The account layer implements it with device signatures;
/// [`UnsignedHeads`] is the layout-1 form of accounts that predate signatures.
pub trait HeadSigner: Send + Sync {
    fn envelope(
        &self,
        category: u32,
        key_version: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, HeadSignError>;
    /// Returns the key version and the sealed head, or why the object is not acceptable.
    fn check<'a>(&self, category: u32, obj: &'a [u8]) -> Result<(u32, &'a [u8]), HeadSignError>;
    /// The name of the device that signed `obj`, if the account removed that device and
    /// its signature is genuine: such a head is replaced, never merged.
    fn revoked_signer(&self, _category: u32, _obj: &[u8]) -> Option<String> {
        None
    }
}

/// Why a [`HeadSigner`] does not accept a head object.
#[derive(Debug, thiserror::Error)]
pub enum HeadSignError {
    #[error("malformed: {0}")]
    Malformed(#[from] crate::format::FormatError),
    #[error("unsigned head (format downgrade?) in an account whose heads are signed")]
    Unsigned,
    #[error("signed head in an account without a manifest")]
    SignedWithoutManifest,
    #[error("signed by a key that is not a trusted device of this account")]
    UntrustedSigner,
    #[error("the device signature does not verify")]
    BadSignature,
    /// A checker that only reads (a server, a test): it publishes nothing.
    #[error("this head checker cannot sign heads")]
    ReadOnly,
}

/// A witness that neither consults nor records any head: for views read only to find
/// what they reference (signatures and MACs are still checked; no rollback check), and
/// for tests of the volume alone.
pub struct NoWitness;

impl HeadWitness for NoWitness {
    fn seen(&self, _: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        Ok(None)
    }
    fn record(&self, _: u32, _: u64, _: [u8; 32]) -> Result<(), WitnessError> {
        Ok(())
    }
}

/// Layout-1 heads: no signature, only the category key's MAC.
pub struct UnsignedHeads;

impl HeadSigner for UnsignedHeads {
    fn envelope(
        &self,
        _category: u32,
        key_version: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, HeadSignError> {
        let mut obj = Vec::with_capacity(4 + sealed.len());
        obj.extend_from_slice(&key_version.to_le_bytes());
        obj.extend_from_slice(sealed);
        Ok(obj)
    }
    fn check<'a>(&self, _category: u32, obj: &'a [u8]) -> Result<(u32, &'a [u8]), HeadSignError> {
        let e = crate::format::manifest::decode_head_envelope(obj)?;
        if e.signature.is_some() {
            return Err(HeadSignError::SignedWithoutManifest);
        }
        Ok((e.key_version, e.sealed))
    }
}

/// Tuning knobs for a mounted volume.
#[derive(Clone)]
pub struct VolumeOptions {
    /// Bytes of written-but-unsealed chunk data per category before it is sealed into a pack.
    pub dirty_limit: usize,
    /// uid/gid that own a new category's root directory.
    pub owner: (u32, u32),
    /// Unsealed bytes across all categories of the mount, shared: a category seals its own
    /// dirty chunks once either its share or the total passes `dirty_limit`, so writing
    /// many categories at once stays within the budget too.
    pub dirty_total: Arc<AtomicUsize>,
    /// Signs heads this volume publishes and checks the ones it reads.
    pub heads: Arc<dyn HeadSigner>,
    /// This device's index in the account's device list: new inodes come from its own
    /// range (`format::head::device_range`), so trees of two devices merge. `None`:
    /// the shared allocator (tests of the volume alone).
    pub device_slot: Option<u32>,
    /// Seals written chunks off the request path (`sealer.rs`); `None`: in line, as a
    /// category opened outside a mount does.
    pub sealer: Option<Arc<Sealer>>,
    /// A read-only mount: reads leave the access time alone and a commit publishes
    /// nothing (the kernel refuses every change before it gets here).
    pub read_only: bool,
    /// When a read of a file updates its access time (the mount's atime option).
    pub atime: Atime,
    /// Whether listing a directory updates its access time too, by the same rule
    /// (`nodiratime` turns it off).
    pub dir_atime: bool,
}

/// The access-time rule of a mount, as Linux's mount options name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Atime {
    /// `relatime` (the default): when the access time is not newer than the last
    /// modification or change, or is a day old.
    #[default]
    Relative,
    /// `noatime`: never.
    Never,
    /// `strictatime`: on every access.
    Always,
}

impl VolumeOptions {
    /// For a category opened outside a mount (fsck, gc, re-signing heads, unit tests): a
    /// 1 MiB dirty limit, nothing shared with other categories, new roots owned by root.
    pub fn offline(heads: Arc<dyn HeadSigner>, device_slot: Option<u32>) -> VolumeOptions {
        VolumeOptions {
            dirty_limit: 1 << 20,
            owner: (0, 0),
            dirty_total: Default::default(),
            heads,
            device_slot,
            sealer: None,
            read_only: false,
            atime: Atime::Relative,
            dir_atime: true,
        }
    }
}

/// One category's unlocked key and identity.
pub struct CategorySetup {
    pub entry: CategoryEntry,
    pub key: SecretKey,
    pub key_version: u32,
    /// The previous key version and key, when its key object still exists: a rotation may
    /// be in progress (the head says whether it is), so blobs may still be sealed under it.
    pub old_key: Option<(u32, SecretKey)>,
}

#[cfg(test)]
impl CategorySetup {
    /// A standard category `id` named `name` under `key` at `version` (unit tests).
    pub(crate) fn standard(
        id: u32,
        name: &str,
        key: SecretKey,
        version: u32,
        old_key: Option<(u32, SecretKey)>,
    ) -> CategorySetup {
        CategorySetup {
            entry: CategoryEntry {
                id,
                name: name.into(),
                class: crate::format::table::Class::Standard,
                retired: false,
                key_version: version,
            },
            key,
            key_version: version,
            old_key,
        }
    }
}

/// The keys a category opens and seals with. Replaced as a whole, under the category lock,
/// when a rotation begins or ends. Readers take the `Arc` together with the refs they
/// collect under the lock, so a blob is always opened with the key set that was current
/// when its ref was read, even if the rotation has moved on by the time it is fetched.
pub(crate) struct Keys {
    /// The version everything new is sealed under.
    version: u32,
    key: SecretKey,
    /// Only while a rotation is in progress: blobs not yet re-encrypted open with it.
    old: Option<(u32, SecretKey)>,
}

impl Keys {
    /// Runs `open` with the current key and, only if authentication fails and a rotation
    /// is in progress, with the old one: the MAC is what tells the two apart. The opening
    /// functions leave the bytes untouched when the MAC fails, so the old key gets the
    /// same bytes. Returns the result and whether the old key was needed.
    fn with_fallback<T>(
        &self,
        mut open: impl FnMut(&crate::crypto::SecretKey) -> Result<T, crate::crypto::CryptoError>,
    ) -> Result<(T, bool), crate::crypto::CryptoError> {
        match open(&self.key) {
            Err(crate::crypto::CryptoError::BadTag) => match &self.old {
                Some((v, old)) => {
                    let r = open(old)?;
                    log::debug!("blob opened with the old key version {v}");
                    Ok((r, true))
                }
                None => Err(crate::crypto::CryptoError::BadTag),
            },
            r => r.map(|p| (p, false)),
        }
    }

    /// The plaintext of a sealed blob and whether the old key was needed.
    fn open(
        &self,
        suite: Suite,
        ctx: &[u8],
        sealed: &[u8],
    ) -> Result<(Vec<u8>, bool), crate::crypto::CryptoError> {
        self.with_fallback(|k| crate::crypto::open(k, suite, ctx, sealed))
    }

    /// [`Keys::open`] where the sealed bytes lie (`crypto::open_in_place`): the plaintext's
    /// range in `sealed`.
    fn open_in_place(
        &self,
        suite: Suite,
        ctx: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, crate::crypto::CryptoError> {
        self.with_fallback(|k| crate::crypto::open_in_place(k, suite, ctx, sealed))
            .map(|(r, _)| r)
    }

    /// [`Keys::open_in_place`] that also indexes the blob's sectors (`crypto::open_indexed`),
    /// and says whether it took the old key.
    #[allow(clippy::type_complexity)]
    fn open_indexed(
        &self,
        suite: Suite,
        ctx: &[u8],
        sealed: &mut [u8],
    ) -> Result<
        ((std::ops::Range<usize>, crate::crypto::SectorIndex), bool),
        crate::crypto::CryptoError,
    > {
        self.with_fallback(|k| crate::crypto::open_indexed(k, suite, ctx, sealed))
    }
}

/// An open category: its tree, guarded by one lock.
pub struct Category {
    pub id: u32,
    pub name: String,
    pub class: Class,
    keys: RwLock<Arc<Keys>>,
    suite: Suite,
    store: Arc<dyn Store>,
    cache: Arc<ChunkCache>,
    witness: Arc<dyn HeadWitness>,
    opts: VolumeOptions,
    state: Mutex<State>,
    /// Signalled when a batch of chunks on their way is done (`sealer.rs`).
    settled: Condvar,
    /// This category, for the sealing jobs it queues (set once by `open`).
    me: OnceLock<Weak<Category>>,
}

#[derive(Default)]
struct HeadInfo {
    counter: u64,
    /// Hash of the stored head object (chained into the next head).
    hash: [u8; 32],
    etag: Option<Etag>,
    /// The shared allocator of layouts 1 and 2 (kept; no longer advanced when this device
    /// has a range of its own).
    next_ino: u64,
    /// Per-device allocators (layout 3): device slot → next inode number in its range.
    alloc: BTreeMap<u32, u64>,
    leaves: BTreeMap<u64, BlobRef>,
    /// The last change made on the web that this tree has taken in (FORMAT.md §9f).
    web_seq: u64,
}

/// A sealed chunk waiting in the open pack buffer: the whole chunk, or a patch over the
/// stored base it names, with the sectors it holds (`patch.rs`).
#[derive(Clone, Copy)]
struct Pending {
    offset: u32,
    len: u32,
    tag: [u8; 32],
    patch_of: Option<(BlobRef, u64)>,
}

/// A chunk on its way (`sealer.rs`): its generation and plaintext.
type Generation = (u64, Arc<Vec<u8>>);

/// A category's mutable state, behind its one lock: the head it builds on, the tree, the
/// writes not yet in a head, and the rotation in progress.
#[derive(Default)]
struct State {
    head: HeadInfo,
    /// Unavailable categories answer EIO for everything (and the reason is logged).
    unavailable: Option<String>,
    tree: Tree,
    buf: WriteBuffer,
    rot: RotationState,
    /// Open file handles per inode (unlink-while-open keeps the inode alive).
    open: HashMap<u64, u32>,
    /// The next commit writes a head even if nothing else changed (rotation state moved).
    head_dirty: bool,
    /// What changes the kernel did not ask for made stale (`stale.rs`); `None` unmounted.
    stale: Option<Vec<stale::Stale>>,
}

/// The records loaded so far, by metadata leaf, and which leaves the next commit writes.
#[derive(Default)]
struct Tree {
    records: HashMap<u64, Record>,
    loaded_leaves: HashSet<u64>,
    bad_leaves: HashMap<u64, String>,
    dirty_leaves: BTreeSet<u64>,
    /// Plaintext bytes and inode count, maintained for `status`.
    bytes: u64,
    inodes: u64,
}

/// Written data on its way into a pack: plaintext not yet sealed, and the pack being
/// filled.
#[derive(Default)]
struct WriteBuffer {
    /// Written chunk plaintext not yet sealed, keyed by (ino, chunk index).
    dirty: HashMap<(u64, u64), Vec<u8>>,
    /// Of the chunks dirty or on their way, those that differ from a stored base only in
    /// some sectors: they may be sealed as a patch (`patch.rs`).
    plans: HashMap<(u64, u64), patch::Plan>,
    dirty_bytes: usize,
    /// The pack being filled: header + sealed blobs.
    pack: Vec<u8>,
    pending: HashMap<(u64, u64), Pending>,
    /// Chunks on their way (`sealer.rs`): generation and plaintext, counted in
    /// `dirty_bytes` (and in `sealing_bytes`) until installed.
    sealing: HashMap<(u64, u64), Generation>,
    sealing_bytes: usize,
    next_gen: u64,
    /// Batches queued or being sealed.
    batches: usize,
    /// Threads waiting for `batches` to reach 0 (no new batch is sent meanwhile).
    settle_waiters: usize,
    /// A batch failed: seal in line until the next successful commit.
    async_off: bool,
}

/// Key rotation (see `rotate.rs`), recorded in every head.
#[derive(Default)]
struct RotationState {
    /// The version being rotated away from (0: none).
    rotating_from: u32,
    /// `rotating_from` only records that the tree is still under the key before one
    /// taken from another device (`adopt_key`): no rotation of this device's runs, and a
    /// merge takes the other device's rotation state.
    rotation_adopted: bool,
    /// Every inode below it is re-encrypted.
    rotate_cursor: u64,
    /// Next chunk of the inode at the cursor to look at. Not recorded: a resumed rotation
    /// looks at that inode again from chunk 0 (chunks already resealed are skipped).
    rotate_chunk: u64,
    /// File bytes the rotation has passed, for progress; `None` until first computed.
    rotate_done: Option<u64>,
}

impl Category {
    /// The category lock, once no batch of chunks is on its way (`sealer.rs`): what is
    /// not a read or a write sees every written chunk dirty or stored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.settle(self.lock_raw())
    }

    /// The category lock as it comes: for reads and writes, which handle chunks on
    /// their way, and for the sealers themselves.
    fn lock_raw(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current key set. Take it while holding the category lock when the blobs to
    /// open were found under that lock (see [`Keys`]).
    fn keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the key set. When an old key leaves it (destroyed, or replaced by a newer
    /// old key at the next rotation), the category's sector indexes go too: each holds XTS
    /// subkeys of its blob's key, and none taken from a destroyed key may stay in memory.
    fn set_keys(&self, k: Keys) {
        self.update_keys(|_| Some(k));
    }

    /// [`Category::set_keys`] with the new set made from the current one under the lock
    /// (`None`: no change).
    fn update_keys(&self, f: impl FnOnce(&Keys) -> Option<Keys>) {
        let gone = {
            let mut g = self.keys.write().unwrap_or_else(|p| p.into_inner());
            let Some(k) = f(&g) else { return };
            let was = g.old.as_ref().map(|(v, _)| *v);
            let gone = was.is_some() && was != k.old.as_ref().map(|(v, _)| *v);
            *g = Arc::new(k);
            gone
        };
        if gone {
            self.cache.forget_indexes(self.id);
        }
    }

    /// The key version new blobs and heads are sealed under.
    pub fn key_version(&self) -> u32 {
        self.keys().version
    }

    fn add_dirty(&self, s: &mut State, n: usize) {
        s.buf.dirty_bytes += n;
        self.opts.dirty_total.fetch_add(n, Ordering::Relaxed);
    }

    fn sub_dirty(&self, s: &mut State, n: usize) {
        s.buf.dirty_bytes -= n;
        self.opts.dirty_total.fetch_sub(n, Ordering::Relaxed);
    }

    fn ckey(&self, ino: u64, index: u64, tag: [u8; 32]) -> crate::cache::ChunkKey {
        crate::cache::ChunkKey {
            category: self.id,
            ino,
            index,
            tag,
        }
    }

    fn leaf_of(ino: u64) -> u64 {
        ino / crate::format::LEAF_SPAN
    }

    /// The inode number the next new node gets.
    fn next_free_ino(&self, s: &State) -> u64 {
        match self.opts.device_slot {
            Some(slot) => s
                .head
                .alloc
                .get(&slot)
                .copied()
                .unwrap_or(crate::format::head::device_range(slot)),
            None => s.head.next_ino,
        }
    }

    fn take_ino(&self, s: &mut State, ino: u64) {
        match self.opts.device_slot {
            Some(slot) => {
                s.head.alloc.insert(slot, ino + 1);
            }
            None => s.head.next_ino = ino + 1,
        }
    }

    /// The first leaf at or after `leaf` that holds inodes (stored, or new and dirty).
    fn next_leaf_in_use(s: &State, leaf: u64) -> Option<u64> {
        let stored = s.head.leaves.range(leaf..).next().map(|(l, _)| *l);
        let dirty = s.tree.dirty_leaves.range(leaf..).next().copied();
        match (stored, dirty) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One past the last inode number that may be in use.
    fn end_of_inodes(s: &State) -> u64 {
        let last = s
            .head
            .leaves
            .keys()
            .next_back()
            .copied()
            .max(s.tree.dirty_leaves.iter().next_back().copied())
            .unwrap_or(0);
        (last + 1) * crate::format::LEAF_SPAN
    }

    /// Plaintext bytes, inode count, head counter, and whether it is available (for status).
    pub fn stats(&self) -> (u64, u64, u64, Option<String>) {
        let s = self.lock();
        (
            s.tree.bytes,
            s.tree.inodes,
            s.head.counter,
            s.unavailable.clone(),
        )
    }
}
