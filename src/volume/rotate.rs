//! Key rotation of one category while it stays in use: every chunk and leaf is resealed
//! under a new key version. Progress is a cursor over inode numbers, recorded in every
//! head, so a crash loses at most the work since the last commit and a later run resumes
//! from there. Until the rotation ends, blobs open with the new key or, failing that, the
//! old one (see [`Keys`]); only after a head says it ended may the old key be destroyed.

use super::*;
use crate::format::record::{ChunkRef, Payload};
use crate::format::{CHUNK_SIZE, LEAF_SPAN};
use log::info;

/// Stored chunks fetched and opened per release of the category lock (4 MiB): FUSE
/// requests wait at most for one such piece's map updates, never for its I/O.
const PIECE_CHUNKS: usize = 16;
/// Chunk slots and inodes looked at per lock hold, so a long run of holes, chunks already
/// resealed or deleted inode numbers does not hold the lock either.
const SCAN_LIMIT: usize = 4096;

/// Stored chunks of one inode to look at: (chunk index, ref).
type Batch = Vec<(u64, ChunkRef)>;
/// Chunks that needed the old key: (chunk index, tag of the blob read, plaintext).
type Stale = Vec<(u64, [u8; 32], Vec<u8>)>;

/// A rotation in progress, for progress bars and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Key version being rotated away from.
    pub from: u32,
    /// Key version everything is being resealed under.
    pub to: u32,
    /// Every inode below it is re-encrypted (committed or about to be).
    pub cursor: u64,
    /// File bytes the rotation has passed, and the category's file bytes.
    pub done: u64,
    pub total: u64,
}

/// What [`Category::rotate_step`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationProgress {
    pub done: u64,
    pub total: u64,
    /// The final head (no rotation) is committed: the old key is no longer needed.
    pub finished: bool,
}

/// Plaintext bytes of chunk `idx` of a file of `size` bytes (the range it covers).
fn chunk_span(size: u64, idx: u64) -> u64 {
    size.saturating_sub(idx * CHUNK_SIZE).min(CHUNK_SIZE)
}

impl Category {
    /// At open, after the head was verified: takes over the rotation state it records.
    /// `under_old`: the head is sealed under the old key although the table names the new
    /// one, i.e. the table was published and the rotation's first head never written; the
    /// rotation then starts here from cursor 0.
    pub(super) fn adopt_rotation(
        &self,
        s: &mut State,
        head: &crate::format::head::Head,
        under_old: bool,
    ) -> Result<(), String> {
        let keys = self.keys();
        if under_old {
            let from = keys.old.as_ref().map(|(v, _)| *v).unwrap_or_default();
            if head.rotating_from != 0 {
                return Err(format!(
                    "its head is sealed under key version {from} and records a rotation from \
                     version {}, but the table already names version {}",
                    head.rotating_from, keys.version
                ));
            }
            info!(
                "category {}: key rotation v{from} -> v{} was begun but not recorded; \
                 it starts at the next commit",
                self.name, keys.version
            );
            s.rot.rotating_from = from;
            s.rot.rotate_cursor = 0;
            s.head_dirty = true;
            return Ok(());
        }
        if head.rotating_from == 0 {
            self.drop_old_key();
            return Ok(());
        }
        match &keys.old {
            Some((v, _)) if *v == head.rotating_from => {
                s.rot.rotating_from = head.rotating_from;
                s.rot.rotate_cursor = head.rotate_cursor;
                info!(
                    "category {}: key rotation v{} -> v{} in progress (inode cursor {})",
                    self.name, head.rotating_from, keys.version, head.rotate_cursor
                );
                Ok(())
            }
            _ => Err(format!(
                "a key rotation from version {} is in progress but that key is not available",
                head.rotating_from
            )),
        }
    }

    /// The key version a rotation in progress started from (None: no rotation).
    pub fn rotating_from(&self) -> Option<u32> {
        Some(self.lock().rot.rotating_from).filter(|v| *v != 0)
    }

    /// The old key version this category still holds (see [`Category::drop_old_key`]).
    pub fn old_key_version(&self) -> Option<u32> {
        self.keys().old.as_ref().map(|(v, _)| *v)
    }

    /// Forgets the old key, whichever version it is (no rotation needs it).
    pub fn drop_old_key(&self) {
        self.drop_old_key_if(|_| true);
    }

    /// Forgets the old key if it is version `v`, the one just destroyed. Another device's
    /// key taken in meanwhile (`adopt_key`) has made another version the old one, which
    /// reads still need: that one stays.
    pub fn drop_old_key_version(&self, v: u32) {
        self.drop_old_key_if(|old| old == v);
    }

    /// The check and the change are one step under the key set's lock: a key set read
    /// before a concurrent `adopt_key` and written back after it would lose the new key.
    /// (`begin_rotation` and `adopt_key`, the only changes of the current key, read and
    /// write the set under the category lock, so they are ordered with each other; what
    /// they write never carries the old key they read, so a drop between is kept.)
    fn drop_old_key_if(&self, which: impl Fn(u32) -> bool) {
        self.update_keys(|k| match &k.old {
            Some((v, _)) if which(*v) => Some(Keys {
                version: k.version,
                key: k.key.duplicate(),
                old: None,
            }),
            _ => None,
        });
    }

    /// Starts rotating to `version` with `key`: what was written so far is committed under
    /// the current key, which then becomes the old one, and a head sealed under the new
    /// key records the rotation at cursor 0. The caller has made the new key durable.
    pub fn begin_rotation(&self, version: u32, key: SecretKey) -> VolResult<()> {
        let mut s = self.lock();
        self.check_available(&s)?;
        if s.rot.rotation_adopted {
            return Err(VolError::Invalid(
                "another device's key change is not taken in here yet; run `cirrus sync` first",
            ));
        }
        if s.rot.rotating_from != 0 {
            return Err(VolError::Invalid("a key rotation is already in progress"));
        }
        let cur = self.keys();
        if version <= cur.version {
            return Err(VolError::Invalid("the new key version must be higher"));
        }
        // Commit first: afterwards nothing waits in the pack buffer under the old key, and
        // the tree the rotation walks is the committed one.
        self.commit_locked(&mut s)?;
        self.set_keys(Keys {
            version,
            key,
            old: Some((cur.version, cur.key.duplicate())),
        });
        s.rot.rotating_from = cur.version;
        s.rot.rotate_cursor = 0;
        s.rot.rotate_chunk = 0;
        s.rot.rotate_done = Some(0);
        s.head_dirty = true;
        info!(
            "category {}: key rotation v{} -> v{version} begins",
            self.name, cur.version
        );
        // If this commit fails the periodic one retries it; a crash before it is handled
        // at open (the head is then still sealed under the old key: `adopt_rotation`).
        self.commit_locked(&mut s)
    }

    /// The rotation in progress, if any (loads the leaves below the cursor once, to count
    /// the bytes already passed).
    pub fn rotation(&self) -> Option<Rotation> {
        let mut s = self.lock();
        if s.rot.rotating_from == 0 || s.rot.rotation_adopted || s.unavailable.is_some() {
            return None;
        }
        let done = self.rotation_done(&mut s);
        Some(Rotation {
            from: s.rot.rotating_from,
            to: self.keys().version,
            cursor: s.rot.rotate_cursor,
            done: done.min(s.tree.bytes),
            total: s.tree.bytes,
        })
    }

    fn rotation_done(&self, s: &mut State) -> u64 {
        if let Some(d) = s.rot.rotate_done {
            return d;
        }
        let cursor = s.rot.rotate_cursor;
        let leaves: Vec<u64> = s
            .head
            .leaves
            .keys()
            .copied()
            .filter(|l| l * LEAF_SPAN < cursor)
            .collect();
        for leaf in leaves {
            // An unreadable leaf only makes the estimate low; the rotation reports it.
            let _ = self.ensure_leaf(s, leaf * LEAF_SPAN);
        }
        let mut done: u64 = s
            .tree
            .records
            .iter()
            .filter(|(ino, _)| **ino < cursor)
            .map(|(_, r)| match &r.payload {
                Payload::File { size, .. } => *size,
                _ => 0,
            })
            .sum();
        if let Some(Record {
            payload: Payload::File { size, .. },
            ..
        }) = s.tree.records.get(&cursor)
        {
            done += (s.rot.rotate_chunk * CHUNK_SIZE).min(*size);
        }
        s.rot.rotate_done = Some(done);
        done
    }

    /// Re-encrypts from the cursor on until about `budget` file bytes were passed, then
    /// commits (so the cursor is durable). Holds the category lock only in short pieces:
    /// chunks are fetched and opened without it, and put back as dirty plaintext (sealed
    /// under the new key like any write, within the mount's dirty budget) only if the file
    /// still references the exact blob read. Once the cursor passes the last inode, the
    /// final head (no rotation) is committed and the old key forgotten: `finished`.
    pub fn rotate_step(&self, budget: u64) -> VolResult<RotationProgress> {
        let mut passed = 0u64;
        {
            let mut s = self.lock();
            self.check_available(&s)?;
            if s.rot.rotating_from == 0 {
                return Ok(RotationProgress {
                    done: s.tree.bytes,
                    total: s.tree.bytes,
                    finished: true,
                });
            }
            self.rotation_done(&mut s);
            // The leaf at the cursor: resealed even if the cursor came from an older head.
            let leaf = Self::leaf_of(s.rot.rotate_cursor);
            s.tree.dirty_leaves.insert(leaf);
        }
        while passed < budget {
            let (ino, batch, keys) = {
                let mut s = self.lock();
                match self.rotation_scan(&mut s, &mut passed)? {
                    Some((ino, batch)) => (ino, batch, self.keys()),
                    None => return self.finish_rotation(&mut s),
                }
            };
            if batch.is_empty() {
                continue;
            }
            let stale = match self.open_for_rotation(&keys, ino, batch) {
                Ok(v) => v,
                Err(e) => {
                    // The scan already moved past these chunks: look at the inode again
                    // from its start next time, or they would be skipped.
                    let mut s = self.lock();
                    if s.rot.rotate_cursor == ino {
                        s.rot.rotate_chunk = 0;
                    }
                    return Err(e);
                }
            };
            let mut s = self.lock();
            for (idx, tag, plain) in stale {
                // Only if the file still holds the blob we read; otherwise it was rewritten
                // (under the new key), truncated or freed meanwhile.
                if let io::Source::Stored(r) = Self::chunk_source(&s, ino, idx)
                    && r.tag() == tag
                {
                    self.add_dirty(&mut s, plain.len());
                    s.buf.dirty.insert((ino, idx), plain);
                    s.buf.plans.remove(&(ino, idx));
                    s.tree.dirty_leaves.insert(Self::leaf_of(ino));
                }
            }
            if s.buf.dirty_bytes > self.opts.dirty_limit
                || self.opts.dirty_total.load(Ordering::Relaxed) > self.opts.dirty_limit
            {
                self.seal_dirty(&mut s)?;
            }
        }
        let mut s = self.lock();
        self.commit_locked(&mut s)?;
        Ok(RotationProgress {
            done: s.rot.rotate_done.unwrap_or(0).min(s.tree.bytes),
            total: s.tree.bytes,
            finished: false,
        })
    }

    /// Under the lock: moves the cursor over what needs no fetching (holes, chunks already
    /// dirty or pending, non-files, unused inode numbers) and returns the inode at the
    /// cursor with up to `PIECE_CHUNKS` stored chunks to look at, or `None` once past the
    /// last inode. Each leaf the cursor enters is marked dirty, so every leaf is resealed.
    fn rotation_scan(&self, s: &mut State, passed: &mut u64) -> VolResult<Option<(u64, Batch)>> {
        let mut batch = Vec::new();
        for _ in 0..SCAN_LIMIT {
            let mut ino = s.rot.rotate_cursor;
            if s.rot.rotate_chunk == 0 {
                // Inode numbers are sparse (one range per device): skip unused leaves.
                let leaf = Self::leaf_of(ino);
                match Self::next_leaf_in_use(s, leaf) {
                    None => return Ok(None),
                    Some(l) if l != leaf => {
                        ino = l * LEAF_SPAN;
                        s.rot.rotate_cursor = ino;
                    }
                    Some(_) => {}
                }
            }
            if ino.is_multiple_of(LEAF_SPAN) && s.rot.rotate_chunk == 0 {
                s.tree.dirty_leaves.insert(Self::leaf_of(ino));
            }
            self.ensure_leaf(s, ino).map_err(|e| VolError::Integrity {
                what: format!("key rotation at inode {ino}"),
                why: format!("{e}; run `cirrus fsck`"),
            })?;
            let (size, nchunks) = match s.tree.records.get(&ino) {
                Some(Record {
                    payload: Payload::File { size, chunks },
                    ..
                }) => (*size, chunks.len() as u64),
                _ => (0, 0),
            };
            while s.rot.rotate_chunk < nchunks && batch.len() < PIECE_CHUNKS {
                let idx = s.rot.rotate_chunk;
                if let io::Source::Stored(r) = Self::chunk_source(s, ino, idx) {
                    batch.push((idx, r));
                }
                s.rot.rotate_chunk += 1;
                let n = chunk_span(size, idx);
                *passed += n;
                if let Some(d) = s.rot.rotate_done.as_mut() {
                    *d += n;
                }
            }
            if !batch.is_empty() {
                // The cursor stays on this inode until the batch is back under the lock
                // (the next scan moves it): a commit in between must not record the inode
                // as done while some of its chunks are still only under the old key.
                return Ok(Some((ino, batch)));
            }
            s.rot.rotate_cursor = ino + 1;
            s.rot.rotate_chunk = 0;
        }
        Ok(Some((s.rot.rotate_cursor, batch)))
    }

    /// Fetches and opens a batch of chunks (no lock held); keeps those that still needed
    /// the old key, with the tag of the blob they came from.
    fn open_for_rotation(&self, keys: &Keys, ino: u64, batch: Batch) -> VolResult<Stale> {
        let mut stale = Vec::new();
        for (idx, r) in batch {
            // A patched chunk needs resealing if its base or its patch is under the old
            // key; it is resealed whole.
            let (plain, old) = self.open_chunk_which(keys, ino, idx, &r)?;
            // Already under the new key (a resumed rotation): nothing to reseal.
            if old {
                stale.push((idx, r.tag(), plain));
            }
        }
        Ok(stale)
    }

    fn finish_rotation(&self, s: &mut State) -> VolResult<RotationProgress> {
        let from = s.rot.rotating_from;
        s.rot.rotating_from = 0;
        s.rot.rotate_cursor = 0;
        s.rot.rotate_chunk = 0;
        s.rot.rotate_done = None;
        s.head_dirty = true;
        if let Err(e) = self.commit_locked(s) {
            // Still rotating as far as the store knows: keep the old key.
            s.rot.rotating_from = from;
            s.rot.rotate_cursor = Self::end_of_inodes(s);
            return Err(e);
        }
        // The old key stays in the set until the account layer destroys it: another
        // device may still publish a head under it (merged and resealed here).
        info!(
            "category {}: key rotation v{from} -> v{} finished",
            self.name,
            self.key_version()
        );
        Ok(RotationProgress {
            done: s.tree.bytes,
            total: s.tree.bytes,
            finished: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Context;
    use crate::store::MemStore;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    fn open(
        store: &Arc<dyn Store>,
        version: u32,
        k: SecretKey,
        old: Option<(u32, SecretKey)>,
    ) -> Arc<Category> {
        Category::open(
            CategorySetup::standard(3, "Photos", k, version, old),
            store.clone(),
            Arc::new(ChunkCache::new(4 << 20)),
            Arc::new(crate::volume::NoWitness),
            // Its 1 MiB dirty limit makes rotation seal and flush packs along the way.
            VolumeOptions::offline(Arc::new(crate::volume::UnsignedHeads), Some(2)),
        )
    }

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    fn file(c: &Category, name: &str, content: &[u8]) -> u64 {
        let n = c
            .create_node(
                ROOT_INO,
                name.as_bytes(),
                NewNode {
                    mode: libc::S_IFREG | 0o644,
                    rdev: 0,
                    uid: 0,
                    gid: 0,
                    target: None,
                    umask: 0,
                    inherit_acl: true,
                },
            )
            .unwrap();
        c.write(n.ino, 0, content, false).unwrap();
        n.ino
    }

    fn read_all(c: &Category, ino: u64, len: usize) -> Vec<u8> {
        c.read(ino, 0, len as u32 + 10).unwrap()
    }

    /// A tree under key 1 with several multi-chunk files, a sparse one and many inodes.
    fn populate(c: &Category) -> Vec<(u64, Vec<u8>)> {
        let mut files = Vec::new();
        for i in 0..5u8 {
            let d = data(700_000 + i as usize * 300_000, i);
            files.push((file(c, &format!("f{i}"), &d), d));
        }
        for i in 0..300u32 {
            let d = format!("small {i}").into_bytes();
            files.push((file(c, &format!("s{i}"), &d), d));
        }
        let sparse = file(c, "sparse", b"start");
        c.write(sparse, 3 << 20, b"end", false).unwrap();
        let mut sd = vec![0u8; (3 << 20) + 3];
        sd[..5].copy_from_slice(b"start");
        sd[3 << 20..].copy_from_slice(b"end");
        files.push((sparse, sd));
        c.commit().unwrap();
        files
    }

    /// The account destroys a version and drops it here only if it is still the old key:
    /// one that another device's key change made the old key since stays.
    #[test]
    fn only_the_destroyed_version_is_dropped() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let ino = file(&c, "f", b"under key 1");
        c.commit().unwrap();
        drop(c);
        // A rotation 1 -> 2 starts at open (the table is ahead of the head).
        let c = open(&store, 2, key(2), Some((1, key(1))));
        c.drop_old_key_version(3);
        assert_eq!((c.key_version(), c.old_key_version()), (2, Some(1)));
        while !c.rotate_step(1 << 20).unwrap().finished {}
        c.drop_old_key_version(1);
        assert_eq!((c.key_version(), c.old_key_version()), (2, None));
        // This device rotates 2 -> 3, then takes in another device's key 4 before the
        // account destroys 2: key 3 is now the old key, which the tree's blobs need.
        c.begin_rotation(3, key(3)).unwrap();
        while !c.rotate_step(1 << 20).unwrap().finished {}
        c.adopt_key(4, key(4)).unwrap();
        c.drop_old_key_version(2);
        assert_eq!((c.key_version(), c.old_key_version()), (4, Some(3)));
        assert_eq!(read_all(&c, ino, 11), b"under key 1");
    }

    #[test]
    fn trial_open_uses_the_old_key_only_when_the_mac_says_so() {
        let ctx = Context::chunk(3, 5, 0).to_bytes();
        let under = |k: &SecretKey| crate::crypto::seal(k, Suite::XtsBlake3, &ctx, b"x").unwrap();
        let keys = Keys {
            version: 2,
            key: key(2),
            old: Some((1, key(1))),
        };
        assert_eq!(
            keys.open(Suite::XtsBlake3, &ctx, &under(&key(2))).unwrap(),
            (b"x".to_vec(), false)
        );
        assert_eq!(
            keys.open(Suite::XtsBlake3, &ctx, &under(&key(1))).unwrap(),
            (b"x".to_vec(), true)
        );
        // A third key, or the old key once the rotation ended: authentication fails.
        assert_eq!(
            keys.open(Suite::XtsBlake3, &ctx, &under(&key(9))),
            Err(crate::crypto::CryptoError::BadTag)
        );
        let done = Keys {
            version: 2,
            key: key(2),
            old: None,
        };
        assert_eq!(
            done.open(Suite::XtsBlake3, &ctx, &under(&key(1))),
            Err(crate::crypto::CryptoError::BadTag)
        );
        // Other failures are not retried (a downgraded suite stays an error).
        let mac_only = crate::crypto::seal(&key(1), Suite::MacOnly, &ctx, b"x").unwrap();
        assert!(matches!(
            keys.open(Suite::XtsBlake3, &ctx, &mac_only),
            Err(crate::crypto::CryptoError::WrongSuite { .. })
        ));
    }

    fn patched(c: &Category, ino: u64) -> usize {
        match &c.lock().tree.records[&ino].payload {
            Payload::File { chunks, .. } => chunks
                .iter()
                .flatten()
                .filter(|r| r.patch.is_some())
                .count(),
            _ => 0,
        }
    }

    /// Chunks patched before a rotation are resealed whole under the new key (a patch's
    /// base may be under the old one), and writes during the rotation patch nothing: once
    /// it has ended, the new key alone opens every chunk.
    #[test]
    fn a_rotation_reseals_patched_chunks_whole_and_patches_nothing_meanwhile() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let mut d = data(900_000, 3);
        let ino = file(&c, "p", &d);
        c.commit().unwrap();
        for off in [1000usize, 300_000, 600_000] {
            d[off] ^= 1;
            c.write(ino, off as u64, &d[off..off + 1], false).unwrap();
            c.commit().unwrap();
        }
        assert_eq!(patched(&c, ino), 3, "three chunks patched under key 1");
        c.begin_rotation(2, key(2)).unwrap();
        let mut off = 5000usize;
        loop {
            d[off] ^= 0x55;
            c.write(ino, off as u64, &d[off..off + 1], false).unwrap();
            off = (off + 263_000) % d.len();
            if c.rotate_step(256 << 10).unwrap().finished {
                break;
            }
        }
        c.commit().unwrap();
        assert_eq!(
            patched(&c, ino),
            0,
            "a patch was written or kept during the rotation"
        );
        assert_eq!(read_all(&c, ino, d.len())[..d.len()], d[..]);
        drop(c);
        let fresh = open(&store, 2, key(2), None);
        assert_eq!(read_all(&fresh, ino, d.len())[..d.len()], d[..]);
    }

    #[test]
    fn rotation_reseals_everything_while_reads_and_writes_go_on() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let mut files = populate(&c);
        c.begin_rotation(2, key(2)).unwrap();
        assert_eq!(c.key_version(), 2);
        let r = c.rotation().unwrap();
        assert_eq!((r.from, r.to, r.cursor, r.done), (1, 2, 0, 0));
        let mut steps = 0;
        loop {
            for (ino, d) in &files {
                assert_eq!(&read_all(&c, *ino, d.len()), d, "inode {ino} mid-rotation");
            }
            // A write at each step: to a file behind the cursor, then ahead of it.
            let (ino, d) = &mut files[steps % 5];
            d[1000] ^= 0xff;
            c.write(*ino, 1000, &d[1000..1001], false).unwrap();
            let p = c.rotate_step(512 << 10).unwrap();
            steps += 1;
            assert!(p.done <= p.total);
            if p.finished {
                break;
            }
        }
        assert!(steps > 5, "small batches make many steps ({steps})");
        assert!(c.rotation().is_none());
        c.commit().unwrap();
        drop(c);
        // The new key alone opens every blob of the tree; fsck's full check agrees.
        let c = open(&store, 2, key(2), None);
        let rep = c.verify(&|_| {});
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert!(rep.chunks > 20);
        for (ino, d) in &files {
            assert_eq!(&read_all(&c, *ino, d.len()), d);
        }
        // And the old key alone opens nothing: not even the head.
        let old = open(&store, 1, key(1), None);
        assert!(
            old.stats().3.is_some(),
            "the old key must not open the head"
        );
        let bad = open(&store, 2, key(1), None);
        assert!(bad.stats().3.is_some());
    }

    /// Partial reads of chunks the 4 MiB cache cannot all hold: the misses index them.
    fn read_parts(c: &Category, ino: u64, chunks: u64) {
        for round in 0..3u64 {
            for idx in 0..chunks {
                c.read(ino, idx * CHUNK_SIZE + 100 * round, 100).unwrap();
            }
        }
    }

    /// Sector indexes hold XTS subkeys of their blob's key: none taken under a key may
    /// stay in memory once that key has left the category's set, and none is taken under
    /// an old key (a read in flight could insert it after the key was dropped).
    #[test]
    fn no_sector_index_outlives_the_old_key_or_is_taken_under_it() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let size = 24 * CHUNK_SIZE as usize;
        let ino = file(&c, "big", &data(size, 4));
        c.commit().unwrap();
        read_parts(&c, ino, 24);
        assert!(c.cache.indexes_of(3) > 0, "nothing was indexed");
        // Key 1 becomes the old key: its indexes may stay while it is held.
        c.begin_rotation(2, key(2)).unwrap();
        while !c.rotate_step(1 << 20).unwrap().finished {}
        c.drop_old_key();
        assert_eq!(c.cache.indexes_of(3), 0);
        assert_eq!(read_all(&c, ino, size), data(size, 4));
        // A rotation that ends while another device still needs the old key keeps it; the
        // next rotation replaces it as the old key, and the account then destroys it
        // without `drop_old_key` (which is for the old key held): its indexes go at the
        // replacement.
        let key_of_chunk = |c: &Category, idx: u64| {
            let s = c.lock();
            match Category::chunk_source(&s, ino, idx) {
                super::super::io::Source::Stored(r) => c.ckey(ino, idx, r.tag()),
                _ => panic!("chunk {idx} is not stored"),
            }
        };
        read_parts(&c, ino, 24);
        let under_2 = (0..24)
            .map(|idx| key_of_chunk(&c, idx))
            .find(|k| c.cache.get_index(k).is_some())
            .expect("no chunk indexed under key 2");
        c.begin_rotation(3, key(3)).unwrap();
        while !c.rotate_step(1 << 20).unwrap().finished {}
        read_parts(&c, ino, 24);
        assert_ne!(key_of_chunk(&c, under_2.index), under_2, "not resealed");
        assert!(
            c.cache.get_index(&under_2).is_some(),
            "a key 2 index went before key 2 left the set"
        );
        c.begin_rotation(4, key(4)).unwrap();
        assert_eq!(c.old_key_version(), Some(3));
        assert_eq!(c.cache.indexes_of(3), 0, "key 2's indexes outlived it");
        drop(c);
        // A device that opens with the old key held and every blob still under it indexes
        // nothing it reads.
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let ino = file(&c, "big", &data(size, 5));
        c.commit().unwrap();
        drop(c);
        let c = open(&store, 2, key(2), Some((1, key(1))));
        read_parts(&c, ino, 24);
        assert_eq!(c.cache.indexes_of(3), 0, "indexed a blob under the old key");
        assert_eq!(read_all(&c, ino, size), data(size, 5));
    }

    #[test]
    fn a_head_naming_another_key_version_than_its_envelope_is_refused() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        file(&c, "a", b"hello");
        c.commit().unwrap();
        drop(c);
        // Re-seal the stored head under the right key, naming version 2 inside.
        let name = crate::format::names::head(3);
        let obj = store.get(&name).unwrap();
        let env = crate::format::manifest::decode_head_envelope(&obj).unwrap();
        assert_eq!(env.key_version, 1);
        let ctx = Context::new(crate::format::ObjKind::Head, 3, 0, 0).to_bytes();
        let plain = crate::crypto::open(&key(1), Suite::XtsBlake3, &ctx, env.sealed).unwrap();
        let mut head = crate::format::head::Head::decode(&plain).unwrap();
        head.key_version = 2;
        let sealed = crate::crypto::seal(&key(1), Suite::XtsBlake3, &ctx, &head.encode()).unwrap();
        let forged = crate::volume::UnsignedHeads
            .envelope(3, 1, &sealed)
            .unwrap();
        store.put(&name, &forged).unwrap();
        let c = open(&store, 1, key(1), None);
        let why = c.stats().3.expect("the category is unavailable");
        assert!(why.contains("names version 2"), "{why}");
    }

    #[test]
    fn a_crash_resumes_from_the_last_committed_cursor() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let files = populate(&c);
        c.begin_rotation(2, key(2)).unwrap();
        let p = c.rotate_step(1 << 20).unwrap();
        assert!(!p.finished && p.done > 0);
        let p2 = c.rotate_step(1 << 20).unwrap();
        assert!(!p2.finished && p2.done > p.done);
        // Uncommitted work after the last step is lost with the process.
        drop(c);
        let c = open(&store, 2, key(2), Some((1, key(1))));
        let r = c.rotation().expect("the head records the rotation");
        assert_eq!((r.from, r.to), (1, 2));
        assert!(
            r.cursor > 0 && r.done > 0 && r.done <= p2.done,
            "{r:?} {p2:?}"
        );
        for (ino, d) in &files {
            assert_eq!(&read_all(&c, *ino, d.len()), d);
        }
        while !c.rotate_step(4 << 20).unwrap().finished {}
        drop(c);
        let c = open(&store, 2, key(2), None);
        assert!(c.verify(&|_| {}).problems.is_empty());
        assert!(c.rotation().is_none());
        // A head that still needs the old key cannot be opened without it.
        let store2: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store2, 1, key(1), None);
        populate(&c);
        c.begin_rotation(2, key(2)).unwrap();
        drop(c);
        let c = open(&store2, 2, key(2), None);
        assert!(c.stats().3.unwrap().contains("rotation"));
    }

    #[test]
    fn a_table_ahead_of_the_head_starts_the_rotation_at_open() {
        // The account published key version 2, then died before the first head under it.
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 1, key(1), None);
        let files = populate(&c);
        drop(c);
        let c = open(&store, 2, key(2), Some((1, key(1))));
        assert!(c.stats().3.is_none());
        let r = c.rotation().unwrap();
        assert_eq!((r.from, r.to, r.cursor), (1, 2, 0));
        for (ino, d) in &files {
            assert_eq!(&read_all(&c, *ino, d.len()), d);
        }
        while !c.rotate_step(8 << 20).unwrap().finished {}
        drop(c);
        let c = open(&store, 2, key(2), None);
        assert!(c.verify(&|_| {}).problems.is_empty());
    }
}
