//! Taking in a head another device published: verify it, then fast-forward to it (no
//! local changes since the common base) or merge it with the local tree
//! (`merge.rs`) and commit the result on top of it. The caller supplies the base and
//! tells the store layer, through `on_rebase`, that the local head now builds on the
//! remote one.

use super::freshness::{Stale, check_freshness};
use super::load::VerifiedHead;
use super::merge::{self, ConflictNamer, Records};
use super::*;
use crate::format::pack::BlobRef;
use crate::format::record::{ChunkRef, Payload, decode_leaf};
use crate::format::{Context, LEAF_SPAN, ObjKind};
use log::{info, warn};

/// The tree a sync installs, with the conflict copies it made ((new inode, inode
/// whose local version it takes)) and what was decided.
struct Merged {
    records: Records,
    copies: Vec<(u64, u64)>,
    notes: Vec<String>,
}

/// A chunk of a file's local version that becomes chunk `idx` of its conflict copy.
struct CopiedChunk {
    new: u64,
    old: u64,
    idx: u64,
    blob: ChunkRef,
}

/// Which sides of a sync are in the middle of a key rotation of their own.
#[derive(Clone, Copy)]
struct Rotating {
    local: bool,
    remote: bool,
}

/// What [`Category::sync_remote`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The remote head is the local one.
    UpToDate,
    /// No local changes: the tree is now the remote's (head counter).
    FastForward(u64),
    /// Both sides changed: merged and committed as head `counter`, with `copies`
    /// conflict copies; `notes` says what was decided.
    Merged {
        counter: u64,
        copies: usize,
        notes: Vec<String>,
    },
}

impl Category {
    /// The key version a head object says it is sealed under (its clear prefix, after
    /// the signature check), to see whether another device moved to a newer key.
    pub fn key_version_of_head(&self, obj: &[u8]) -> Option<u32> {
        self.opts.heads.check(self.id, obj).ok().map(|(kv, _)| kv)
    }

    /// The highest head counter this device knows the store has: the newest remote head
    /// it verified, or its own head when nothing of it waits for upload (`published`).
    /// `published` is asked under the category lock, so no commit slips in between.
    pub fn counter_in_store(&self, published: &dyn Fn() -> bool) -> u64 {
        // An unreadable record counts as nothing known in the store: the smaller claim.
        // This device's withholding check against it only gets stricter, and the
        // acknowledgement it publishes never claims more than it verified. The category
        // itself fails closed on its next load or sync, which need the record.
        let seen = match self.witness.seen_remote(self.id) {
            Ok(s) => s.map_or(0, |(n, _)| n),
            Err(e) => {
                warn!("category {}: {e}", self.name);
                0
            }
        };
        let s = self.lock();
        if published() {
            seen.max(s.head.counter)
        } else {
            seen
        }
    }

    /// The counter of a remote head object, if it verifies.
    pub fn counter_of(&self, remote: &[u8]) -> Option<u64> {
        self.verify_head(remote).ok().map(|v| v.head.counter)
    }

    /// The device that published `remote`, if the account has removed it.
    pub fn revoked_signer(&self, remote: &[u8]) -> Option<String> {
        self.opts.heads.revoked_signer(self.id, remote)
    }

    /// Replaces a remote head published by a removed device (after its removal, or in
    /// the race with it): its changes are refused, and this device's tree is committed
    /// over it, with a counter above its own so devices that saw it take ours as newer.
    /// `on_supersede` runs just before that commit (the store layer lets it replace
    /// `remote`). Returns the new head's counter.
    /// `acked`: the highest counter another trusted device says the store has; an older
    /// head, like one older than this device has seen there, is a replay and refused.
    pub fn supersede_remote(
        &self,
        remote: &[u8],
        acked: u64,
        on_supersede: &dyn Fn(),
    ) -> VolResult<u64> {
        let mut s = self.lock();
        self.check_available(&s)?;
        self.commit_locked(&mut s)?;
        // Its counter, read without trusting it (the key may be gone already: then ours
        // is the best there is).
        let theirs = crate::format::manifest::decode_head_envelope(remote)
            .ok()
            .and_then(|e| self.open_head(e.key_version, e.sealed).ok())
            .map(|(h, _)| h.counter);
        let seen = self
            .witness
            .seen_remote(self.id)
            .map_err(|e| self.witness_failed(e))?;
        if let Some(n) = theirs {
            let floor = seen.map(|(c, _)| c).unwrap_or(0).max(acked);
            if n < floor || seen.is_some_and(|(c, h)| c == n && h != crate::crypto::hash(remote)) {
                return Err(VolError::Integrity {
                    what: format!("category {}: remote head", self.name),
                    why: format!(
                        "the store serves an old head #{n} of a removed device, after head \
                         #{floor}: a replay"
                    ),
                });
            }
        }
        // A counter far past anything seen is not taken over (it could wrap ours).
        let sane = seen.map(|(c, _)| c).unwrap_or(0).max(s.head.counter) + (1 << 32);
        s.head.counter = s
            .head
            .counter
            .max(theirs.filter(|n| *n < sane).unwrap_or(0));
        s.head.etag = Some(crate::store::etag_of(remote));
        on_supersede();
        s.head_dirty = true;
        self.commit_locked(&mut s)?;
        Ok(s.head.counter)
    }

    /// Another device rotated the key to `version`: new blobs are sealed under it, and
    /// the current key stays as the old one so this device's blobs still open (a merge
    /// reseals those it publishes).
    pub fn adopt_key(&self, version: u32, key: SecretKey) -> VolResult<()> {
        let mut s = self.lock();
        let cur = self.keys();
        if version <= cur.version {
            return Ok(());
        }
        // What waits in the pack buffer is sealed under the current key: out first.
        self.commit_locked(&mut s)?;
        self.set_keys(Keys {
            version,
            key,
            old: Some((cur.version, cur.key.duplicate())),
        });
        // The tree is still under the previous key until a merge or fast-forward onto
        // the other device's head replaces it: recorded as a rotation from it, so the
        // device says it still needs that key (and trial opens use it).
        if s.rot.rotating_from == 0 {
            s.rot.rotating_from = cur.version;
            s.rot.rotate_cursor = 0;
            s.rot.rotation_adopted = true;
        }
        info!(
            "category {}: now under key v{version} (rotated on another device)",
            self.name
        );
        Ok(())
    }

    /// Brings the remote head `remote` into this category. `base`: the head object the
    /// local tree was built on (None: unknown, so nothing is assumed in common and no
    /// local change can be lost). `device` and `date` name conflict copies.
    /// `on_rebase(true)`: the local state is now the remote's (fast-forward);
    /// `on_rebase(false)`: the next head committed (at once) builds on the remote one.
    pub fn sync_remote(
        &self,
        remote: &[u8],
        base: Option<&[u8]>,
        device: &str,
        date: &str,
        on_rebase: &dyn Fn(bool),
    ) -> VolResult<SyncOutcome> {
        let mut s = self.lock();
        self.check_available(&s)?;
        // Everything local goes into a head first (so it is in the journal, whatever
        // happens next).
        self.commit_locked(&mut s)?;
        let rv = self
            .verify_head(remote)
            .map_err(|why| self.remote_integrity(why))?;
        let keys = self.keys();
        if rv.hash == s.head.hash {
            return Ok(SyncOutcome::UpToDate);
        }
        self.check_remote_fresh(&rv)?;
        let rotating = self.rotations_meet(&s, &rv, &keys)?;
        let remote_leaves: BTreeMap<u64, BlobRef> = rv.head.leaves.iter().copied().collect();
        let base_leaves = self.base_leaves(base, &rv)?;
        let fast_forward = base_leaves.as_ref() == Some(&s.head.leaves);
        let remote_tree = self.load_tree(&keys, &remote_leaves)?;
        let merged = if fast_forward {
            Merged {
                records: remote_tree.clone(),
                copies: Vec::new(),
                notes: Vec::new(),
            }
        } else {
            self.merge_with_local(
                &mut s,
                &keys,
                base_leaves.as_ref(),
                &remote_tree,
                device,
                date,
            )?
        };
        let copied = self.copy_sources(&s, &keys, &merged.copies)?;
        let resealed = if keys.old.is_some() && !fast_forward {
            self.chunks_to_reseal(&s, &keys, &rv, &merged, &remote_tree)?
        } else {
            Vec::new()
        };
        let Merged {
            records,
            copies,
            notes,
        } = merged;
        Self::mark_replaced(&mut s, &records);
        let kept_open = Self::install_tree(&mut s, records, &remote_tree, &copies, rv.under_old);
        if let Err(e) = self.refill(&mut s, &keys, &copied, &resealed) {
            return Err(self.fail_half_merged(&mut s, e));
        }
        self.adopt_remote_head(&mut s, &rv, remote_leaves, fast_forward, rotating);
        let local_counter = s.head.counter;
        if let Err(e) = self
            .witness
            .record_remote(self.id, rv.head.counter, rv.hash)
        {
            warn!("category {}: cannot record the remote head: {e}", self.name);
        }
        if fast_forward && !kept_open && local_counter <= rv.head.counter {
            on_rebase(true);
            s.head.counter = rv.head.counter;
            if let Err(e) = self.witness.record(self.id, s.head.counter, rv.hash) {
                warn!("category {}: cannot record head: {e}", self.name);
            }
            info!(
                "category {}: took in head #{} from another device",
                self.name, rv.head.counter
            );
            return Ok(SyncOutcome::FastForward(rv.head.counter));
        }
        // A merge (or a fast-forward past a local head with a higher counter) is
        // committed on top of the remote head; the journal's slot is replaced only by
        // that commit, so nothing local is dropped before it is durable.
        on_rebase(false);
        s.head_dirty = true;
        self.commit_locked(&mut s)?;
        for n in &notes {
            info!("category {}: merge: {n}", self.name);
        }
        info!(
            "category {}: merged head #{} from another device with local changes: head #{} ({} conflict copies)",
            self.name,
            rv.head.counter,
            s.head.counter,
            copies.len()
        );
        Ok(SyncOutcome::Merged {
            counter: s.head.counter,
            copies: copies.len(),
            notes,
        })
    }

    fn remote_integrity(&self, why: String) -> VolError {
        VolError::Integrity {
            what: format!("category {}: remote head", self.name),
            why,
        }
    }

    /// The remote head must not be older than (rollback) or differ at the counter of
    /// (fork) the newest head this device has recorded seeing in the store.
    fn check_remote_fresh(&self, rv: &VerifiedHead) -> VolResult<()> {
        let Some((seen, seen_hash)) = self
            .witness
            .seen_remote(self.id)
            .map_err(|e| self.witness_failed(e))?
        else {
            return Ok(());
        };
        match check_freshness((rv.head.counter, &rv.hash), (seen, &seen_hash)) {
            Ok(_) => Ok(()),
            Err(Stale::Rollback { served, seen }) => Err(self.remote_integrity(format!(
                "rollback detected: the store serves head #{served} but this device has seen head #{seen} there"
            ))),
            Err(Stale::Fork { counter }) => Err(self.remote_integrity(format!(
                "fork detected: the store serves a different head #{counter} than it did before"
            ))),
        }
    }

    /// Key rotations: either side may be in the middle of one (blobs under both
    /// versions; this device holds both keys, see `adopt_key`). Refuses the combinations
    /// that cannot be taken in yet; returns which sides are rotating.
    fn rotations_meet(&self, s: &State, rv: &VerifiedHead, keys: &Keys) -> VolResult<Rotating> {
        let rotating = Rotating {
            local: s.rot.rotating_from != 0 && !s.rot.rotation_adopted,
            remote: rv.head.rotating_from != 0,
        };
        if (rv.under_old && keys.old.is_none())
            || (rotating.local && rotating.remote && rv.head.rotating_from != s.rot.rotating_from)
        {
            return Err(self.remote_integrity(format!(
                "the other device's head is under key version {} (rotating from {}), this \
                 device is at {} (rotating from {}); it is taken in once a rotation has finished",
                rv.head.key_version, rv.head.rotating_from, keys.version, s.rot.rotating_from
            )));
        }
        Ok(rotating)
    }

    /// The leaves of the base head (the newest head this device knows the store had),
    /// checked against the remote one: an older remote is a rollback, another with its
    /// counter a fork. An unusable base means merging without one.
    fn base_leaves(
        &self,
        base: Option<&[u8]>,
        rv: &VerifiedHead,
    ) -> VolResult<Option<BTreeMap<u64, BlobRef>>> {
        let Some(b) = base else {
            return Ok(None);
        };
        let v = match self.verify_head(b) {
            Ok(v) => v,
            Err(e) => {
                warn!(
                    "category {}: the base head is unusable ({e}); merging without one",
                    self.name
                );
                return Ok(None);
            }
        };
        match check_freshness((rv.head.counter, &rv.hash), (v.head.counter, &v.hash)) {
            Ok(_) => Ok(Some(v.head.leaves.into_iter().collect())),
            Err(Stale::Rollback { served, seen }) => Err(self.remote_integrity(format!(
                "rollback detected: the store serves head #{served} but had head #{seen} before"
            ))),
            Err(Stale::Fork { counter }) => Err(self.remote_integrity(format!(
                "fork detected: the store serves another head #{counter}"
            ))),
        }
    }

    /// Three-way merge of the whole local tree with the remote one (`merge.rs`); the
    /// inodes it hands to conflict copies are taken from this device's allocation.
    fn merge_with_local(
        &self,
        s: &mut State,
        keys: &Keys,
        base_leaves: Option<&BTreeMap<u64, BlobRef>>,
        remote_tree: &Records,
        device: &str,
        date: &str,
    ) -> VolResult<Merged> {
        for leaf in s.head.leaves.keys().copied().collect::<Vec<_>>() {
            self.ensure_leaf(s, leaf * LEAF_SPAN)?;
        }
        let local: Records = s.tree.records.clone();
        let base_tree = match base_leaves {
            Some(l) => self.load_tree(keys, l)?,
            None => Records::new(),
        };
        let mut next = self.next_free_ino(s);
        let namer = ConflictNamer {
            device: device.to_string(),
            date: date.to_string(),
        };
        let m = merge::merge(
            &base_tree,
            &local,
            remote_tree,
            &mut || {
                let i = next;
                next += 1;
                i
            },
            &namer,
        );
        if let Some(&(last, _)) = m.copies.iter().max_by_key(|(n, _)| *n) {
            self.take_ino(s, last);
        }
        Ok(Merged {
            records: m.records,
            copies: m.copies,
            notes: m.notes,
        })
    }

    /// Conflict copies get their content again under their own inode (chunks are
    /// sealed to the inode they belong to), read from the local version. Each chunk is
    /// opened once here, before anything changes, and again when it is resealed by
    /// [`Self::refill`]: one chunk at a time in memory, whatever the size of the files.
    fn copy_sources(
        &self,
        s: &State,
        keys: &Keys,
        copies: &[(u64, u64)],
    ) -> VolResult<Vec<CopiedChunk>> {
        let mut copied = Vec::new();
        for (new, old) in copies {
            let Some(Record {
                payload: Payload::File { chunks, .. },
                ..
            }) = s.tree.records.get(old)
            else {
                continue;
            };
            for (idx, r) in chunks.iter().enumerate() {
                if let Some(r) = r {
                    copied.push(CopiedChunk {
                        new: *new,
                        old: *old,
                        idx: idx as u64,
                        blob: *r,
                    });
                }
            }
        }
        for c in &copied {
            self.load_chunk_ref(keys, c.old, c.idx, &c.blob)?;
        }
        Ok(copied)
    }

    /// Chunks this device sealed under a key the other devices have since replaced (it
    /// adopted a rotation made elsewhere), to be resealed under the current one.
    fn chunks_to_reseal(
        &self,
        s: &State,
        keys: &Keys,
        rv: &VerifiedHead,
        merged: &Merged,
        remote_tree: &Records,
    ) -> VolResult<Vec<(u64, u64, ChunkRef)>> {
        let tags = |t: &Records| -> HashSet<[u8; 32]> {
            t.values()
                .filter_map(|r| match &r.payload {
                    Payload::File { chunks, .. } => Some(chunks.iter().flatten().map(|c| c.tag())),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        // The other device wrote under the old key: whatever of its tree is not ours is
        // looked at too.
        let ours = if rv.under_old {
            tags(&s.tree.records)
        } else {
            HashSet::new()
        };
        let theirs = tags(remote_tree);
        let copy_inos: HashSet<u64> = merged.copies.iter().map(|(n, _)| *n).collect();
        let mut resealed = Vec::new();
        for (ino, r) in &merged.records {
            // Conflict copies are resealed under their own inode anyway.
            if copy_inos.contains(ino) {
                continue;
            }
            let Payload::File { chunks, .. } = &r.payload else {
                continue;
            };
            for (idx, c) in chunks.iter().enumerate() {
                let Some(c) = c.filter(|c| {
                    !theirs.contains(&c.tag()) || (rv.under_old && !ours.contains(&c.tag()))
                }) else {
                    continue;
                };
                let (_, old) = self.open_chunk_which(keys, *ino, idx as u64, &c)?;
                if old {
                    resealed.push((*ino, idx as u64, c));
                }
            }
        }
        Ok(resealed)
    }

    /// Installs the merged tree on top of the remote head: leaves that differ from the
    /// remote's are dirty, conflict copies wait for [`Self::refill`]. Returns whether a
    /// file the other device deleted is kept because it is open here.
    fn install_tree(
        s: &mut State,
        mut records: Records,
        remote_tree: &Records,
        copies: &[(u64, u64)],
        under_old: bool,
    ) -> bool {
        // A file open here that the other device deleted stays readable through its
        // open handles (as after an unlink), until it is closed.
        let mut kept_open = false;
        for (ino, n) in &s.open {
            if *n == 0 || records.contains_key(ino) {
                continue;
            }
            if let Some(r) = s
                .tree
                .records
                .get(ino)
                .filter(|r| !matches!(r.payload, Payload::Dir { .. }))
            {
                let mut orphan = r.clone();
                orphan.attr.nlink = 0;
                records.insert(*ino, orphan);
                kept_open = true;
            }
        }
        for (new, _) in copies {
            if let Some(Record {
                payload: Payload::File { chunks, .. },
                ..
            }) = records.get_mut(new)
            {
                chunks.iter_mut().for_each(|c| *c = None);
            }
        }
        let leaf_set = |t: &Records| -> BTreeMap<u64, Vec<(u64, Record)>> {
            let mut m: BTreeMap<u64, Vec<(u64, Record)>> = BTreeMap::new();
            for (i, r) in t {
                m.entry(Self::leaf_of(*i))
                    .or_default()
                    .push((*i, r.clone()));
            }
            for v in m.values_mut() {
                v.sort_by_key(|(i, _)| *i);
            }
            m
        };
        let (mine, theirs) = (leaf_set(&records), leaf_set(remote_tree));
        let dirty: BTreeSet<u64> = mine
            .keys()
            .chain(theirs.keys())
            .copied()
            // Leaves of a head sealed under the old key are resealed under the new one.
            .filter(|l| under_old || mine.get(l) != theirs.get(l))
            .collect();
        s.tree.bytes = records
            .values()
            .map(|r| match &r.payload {
                Payload::File { size, .. } => *size,
                _ => 0,
            })
            .sum();
        s.tree.inodes = records.len() as u64;
        s.tree.loaded_leaves = mine.keys().chain(theirs.keys()).copied().collect();
        s.tree.records = records;
        s.tree.bad_leaves.clear();
        s.tree.dirty_leaves = dirty;
        kept_open
    }

    /// Seals the conflict copies' chunks under their new inodes, and the chunks to
    /// reseal under the current key. Everything here opened a moment ago; should a blob
    /// fail now (evicted from the disk cache while the store went away), see
    /// [`Self::fail_half_merged`].
    fn refill(
        &self,
        s: &mut State,
        keys: &Keys,
        copied: &[CopiedChunk],
        resealed: &[(u64, u64, ChunkRef)],
    ) -> VolResult<()> {
        for c in copied {
            let plain = self.load_chunk_ref(keys, c.old, c.idx, &c.blob)?;
            self.refill_chunk(s, c.new, c.idx, plain.as_ref().clone())?;
        }
        for (ino, idx, c) in resealed {
            let (plain, _) = self.open_chunk_which(keys, *ino, *idx, c)?;
            self.refill_chunk(s, *ino, *idx, plain)?;
        }
        Ok(())
    }

    /// The category is half-merged in memory: it stops (EIO) until a remount redoes the
    /// merge from the journal, whose slot still holds the local head.
    fn fail_half_merged(&self, s: &mut State, e: VolError) -> VolError {
        let why = format!("a merge failed halfway ({e}); unmount and mount again to redo it");
        warn!("category {}: {why}", self.name);
        s.unavailable = Some(why);
        // What was queued is dropped with the half-merged state (the remount redoes it);
        // the shared dirty budget must not keep counting it.
        let queued: usize = s.buf.dirty.values().map(|d| d.len()).sum();
        s.buf.dirty.clear();
        s.buf.plans.clear();
        self.sub_dirty(s, queued);
        e
    }

    /// The local head now builds on the remote one: its counter, hash, inode
    /// allocation, leaves and rotation state.
    fn adopt_remote_head(
        &self,
        s: &mut State,
        rv: &VerifiedHead,
        remote_leaves: BTreeMap<u64, BlobRef>,
        fast_forward: bool,
        rotating: Rotating,
    ) {
        s.head.counter = s.head.counter.max(rv.head.counter);
        s.head.hash = rv.hash;
        s.head.etag = Some(rv.etag);
        s.head.next_ino = s.head.next_ino.max(rv.head.next_ino);
        for (slot, next) in &rv.head.alloc {
            let e = s.head.alloc.entry(*slot).or_insert(*next);
            *e = (*e).max(*next);
        }
        // Both trees hold every web change up to their own `web_seq`: the merge, up to
        // the higher.
        s.head.web_seq = s.head.web_seq.max(rv.head.web_seq);
        s.head.leaves = remote_leaves;
        // Rotation state: below the cursor everything must be under the new key. What
        // this device adds is under it (written so, or resealed above); the other
        // device's tree is under it below its own cursor, or nowhere if it never rotated.
        if fast_forward
            || (rotating.remote && !rotating.local)
            || (!rotating.remote && !rv.under_old)
        {
            s.rot.rotating_from = rv.head.rotating_from;
            s.rot.rotate_cursor = rv.head.rotate_cursor;
            s.rot.rotation_adopted = false;
        } else if rotating.remote {
            s.rot.rotate_cursor = s.rot.rotate_cursor.min(rv.head.rotate_cursor);
        }
        // Otherwise (a head under the old key, from before this device's rotation): its
        // changes were resealed above and its leaves are resealed at the commit, so this
        // device's cursor stays true.
        s.rot.rotate_chunk = 0;
        s.rot.rotate_done = None;
    }

    /// Queues `plain` as chunk `idx` of `ino` for sealing, sealing what is queued once
    /// past the dirty limit (as writes do).
    fn refill_chunk(&self, s: &mut State, ino: u64, idx: u64, plain: Vec<u8>) -> VolResult<()> {
        self.add_dirty(s, plain.len());
        s.buf.dirty.insert((ino, idx), plain);
        s.buf.plans.remove(&(ino, idx));
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        if s.buf.dirty_bytes > self.opts.dirty_limit
            || self
                .opts
                .dirty_total
                .load(std::sync::atomic::Ordering::Relaxed)
                > self.opts.dirty_limit
        {
            self.seal_dirty(s)?;
        }
        Ok(())
    }

    /// Every record of a tree given by its leaf references (fetched and opened here).
    fn load_tree(&self, keys: &Keys, leaves: &BTreeMap<u64, BlobRef>) -> VolResult<Records> {
        let mut out = Records::new();
        for (leaf, r) in leaves {
            let what = || format!("metadata leaf {leaf} of a remote head");
            let sealed = self.fetch_blob(r, &what)?;
            let plain = self.open_blob(
                keys,
                Context::new(ObjKind::Leaf, self.id, 0, *leaf),
                &sealed,
                &what,
            )?;
            let recs = decode_leaf(&plain, &r.pack).map_err(|e| VolError::Integrity {
                what: what(),
                why: e.to_string(),
            })?;
            for (ino, rec) in recs {
                if Self::leaf_of(ino) == *leaf {
                    out.insert(ino, rec);
                }
            }
        }
        Ok(out)
    }
}
