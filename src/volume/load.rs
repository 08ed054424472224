//! Reading a category from the store: head verification (authenticity, rollback, fork),
//! lazy leaf loading, and fetching + opening chunks.

use super::freshness::{Stale, check_freshness};
use super::*;
use crate::crypto;
use crate::format::head::Head;
use crate::format::record::{Attr, Payload, Time, decode_leaf};
use crate::format::{Context, ObjKind, names};
use log::{error, info, warn};

/// A head that passed every check, with its object hash and etag.
pub(super) struct VerifiedHead {
    pub head: Head,
    pub hash: [u8; 32],
    pub etag: Etag,
    /// Sealed under the old key version (see `Category::adopt_rotation`).
    pub under_old: bool,
}

impl Category {
    /// Opens a category: reads and verifies its head, or starts an empty tree if the store
    /// has none yet. A bad head makes the category unavailable, not the whole drive.
    pub fn open(
        setup: CategorySetup,
        store: Arc<dyn Store>,
        cache: Arc<ChunkCache>,
        witness: Arc<dyn HeadWitness>,
        opts: VolumeOptions,
    ) -> Arc<Category> {
        let suite = match setup.entry.class {
            Class::Transit => Suite::MacOnly,
            _ => Suite::XtsBlake3,
        };
        let cat = Category {
            id: setup.entry.id,
            name: setup.entry.name.clone(),
            class: setup.entry.class,
            keys: RwLock::new(Arc::new(Keys {
                version: setup.key_version,
                key: setup.key,
                old: setup.old_key,
            })),
            suite,
            store,
            cache,
            witness,
            opts,
            state: Mutex::new(State::default()),
            settled: Condvar::new(),
            me: OnceLock::new(),
        };
        {
            let mut s = cat.lock();
            match cat.read_head() {
                Ok(Some(VerifiedHead {
                    head,
                    hash,
                    etag,
                    under_old,
                })) => {
                    if let Err(why) = cat.adopt_rotation(&mut s, &head, under_old) {
                        error!(
                            "category {}: {why}; serving it as unavailable (EIO)",
                            cat.name
                        );
                        s.unavailable = Some(why);
                    }
                    s.head = HeadInfo {
                        counter: head.counter,
                        hash,
                        etag: Some(etag),
                        next_ino: head.next_ino,
                        alloc: head.alloc.into_iter().collect(),
                        web_seq: head.web_seq,
                        leaves: head.leaves.into_iter().collect(),
                    };
                    s.tree.bytes = head.bytes;
                    s.tree.inodes = head.inodes;
                    if let Err(e) = cat.witness.record(cat.id, head.counter, hash) {
                        warn!("category {}: cannot record seen head: {e}", cat.name);
                    }
                }
                Ok(None) => {
                    cat.drop_old_key();
                    match cat.witness.seen(cat.id) {
                        Ok(Some((n, _))) => {
                            let why = format!(
                                "its head object is missing from the store, but this device has seen head #{n}"
                            );
                            error!("category {}: {why}", cat.name);
                            s.unavailable = Some(why);
                        }
                        Ok(None) => cat.init_empty(&mut s),
                        // Fail closed: without the record, an empty category could be a
                        // rollback to before the first head.
                        Err(e) => {
                            let why = e.to_string();
                            error!("category {}: {why}", cat.name);
                            s.unavailable = Some(why);
                        }
                    }
                }
                Err(why) => {
                    error!(
                        "category {}: {why}; serving it as unavailable (EIO)",
                        cat.name
                    );
                    s.unavailable = Some(why);
                }
            }
        }
        let cat = Arc::new(cat);
        let _ = cat.me.set(Arc::downgrade(&cat));
        cat
    }

    fn init_empty(&self, s: &mut State) {
        let now = Time::now();
        let root = Record {
            attr: Attr {
                mode: libc::S_IFDIR | 0o755,
                uid: self.opts.owner.0,
                gid: self.opts.owner.1,
                nlink: 2,
                rdev: 0,
                atime: now,
                mtime: now,
                ctime: now,
                btime: now,
            },
            xattrs: Default::default(),
            payload: Payload::Dir {
                parent: ROOT_INO,
                entries: Default::default(),
            },
        };
        s.head.next_ino = ROOT_INO + 1;
        s.tree.records.insert(ROOT_INO, root);
        s.tree.loaded_leaves.insert(Self::leaf_of(ROOT_INO));
        s.tree.dirty_leaves.insert(Self::leaf_of(ROOT_INO));
        s.tree.inodes = 1;
        info!("category {}: new empty tree", self.name);
    }

    /// Reads and verifies the head. `Ok(None)`: no head stored yet. The flag says it was
    /// sealed under the old key version: the table already names the new one, but the
    /// rotation's first head was never written (see `adopt_rotation`).
    fn read_head(&self) -> Result<Option<VerifiedHead>, String> {
        let name = names::head(self.id);
        let obj = match self.store.get(&name) {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(format!("cannot read head {name}: {e}")),
        };
        let v = self.verify_head(&obj)?;
        if let Some((seen, seen_hash)) = self.witness.seen(self.id).map_err(|e| e.to_string())? {
            match check_freshness((v.head.counter, &v.hash), (seen, &seen_hash)) {
                Ok(_) => {}
                Err(Stale::Rollback { served, seen }) => {
                    return Err(format!(
                        "rollback detected: the store serves head #{served} but this device has seen head #{seen}"
                    ));
                }
                Err(Stale::Fork { counter }) => {
                    return Err(format!(
                        "fork detected: the store serves a different head #{counter} than this device saw"
                    ));
                }
            }
        }
        Ok(Some(v))
    }

    /// Opens the sealed part of a head under key version `kv` (the old key too) and checks
    /// it belongs to this category; says whether the old key was used. The signature is
    /// the caller's business.
    pub(super) fn open_head(&self, kv: u32, sealed: &[u8]) -> Result<(Head, bool), String> {
        let name = names::head(self.id);
        let keys = self.keys();
        let (key, under_old) = match &keys.old {
            _ if kv == keys.version => (&keys.key, false),
            Some((v, old)) if kv == *v => (old, true),
            _ => {
                return Err(format!(
                    "head {name} claims key version {kv}, this device holds version {}",
                    keys.version
                ));
            }
        };
        let ctx = Context::new(ObjKind::Head, self.id, 0, 0);
        let plain = crypto::open(key, self.suite, &ctx.to_bytes(), sealed)
            .map_err(|e| format!("head {name} failed authentication: {e}"))?;
        let head = Head::decode(&plain).map_err(|e| format!("head {name} is malformed: {e}"))?;
        if head.category != self.id {
            return Err(format!("head {name} belongs to category {}", head.category));
        }
        // The version in the signed envelope picked the key; the sealed head must name the
        // same one, or a writer sealed it under a key it did not mean (FORMAT.md §7).
        if head.key_version != kv {
            return Err(format!(
                "head {name} is sealed under key version {kv} but names version {}",
                head.key_version
            ));
        }
        Ok((head, under_old))
    }

    /// Checks a head object on its own: signature, key version, authenticity, category.
    pub(super) fn verify_head(&self, obj: &[u8]) -> Result<VerifiedHead, String> {
        let name = names::head(self.id);
        let hash = crypto::hash(obj);
        let (kv, sealed) = self
            .opts
            .heads
            .check(self.id, obj)
            .map_err(|e| format!("head {name}: {e}"))?;
        let (head, under_old) = self.open_head(kv, sealed)?;
        // Numbers a device would allocate or index by must stay in range (a bad value
        // would wrap an inode number or a leaf offset).
        let max_leaf = (1u64 << 40) / crate::format::LEAF_SPAN;
        let bad_alloc = head.alloc.iter().any(|(slot, next)| {
            *slot >= crate::format::head::MAX_DEVICE_SLOTS
                || *next < crate::format::head::device_range(*slot)
                || *next > crate::format::head::device_range(*slot + 1)
        });
        if bad_alloc || head.leaves.iter().any(|(l, _)| *l >= max_leaf) || head.next_ino > 1 << 40 {
            return Err(format!("head {name} holds inode numbers out of range"));
        }
        Ok(VerifiedHead {
            head,
            hash,
            etag: crate::store::etag_of(obj),
            under_old,
        })
    }

    /// A blob that cannot be read or opened: logged once here, returned for EIO.
    pub(super) fn integrity(&self, what: String, why: String) -> VolError {
        let err = VolError::Integrity { what, why };
        error!("category {}: {err}", self.name);
        err
    }

    /// Fetches a sealed blob by reference and checks it is exactly the referenced version.
    pub(super) fn fetch_blob(&self, r: &BlobRef, what: &dyn Fn() -> String) -> VolResult<Vec<u8>> {
        let pack = names::pack(&r.pack);
        let bytes = self
            .store
            .get_range(&pack, r.offset as u64, r.len as u64)
            .map_err(|e| self.integrity(what(), format!("cannot read {pack}@{}: {e}", r.offset)))?;
        if bytes.len() != r.len as usize || crypto::peek_tag(&bytes) != Some(r.tag) {
            return Err(self.integrity(
                what(),
                format!(
                    "{pack}@{} does not hold the referenced blob (swapped, truncated or corrupted)",
                    r.offset
                ),
            ));
        }
        Ok(bytes)
    }

    /// Opens a blob with `keys` (trying the old key during a rotation, see [`Keys`]).
    pub(super) fn open_blob(
        &self,
        keys: &Keys,
        ctx: Context,
        sealed: &[u8],
        what: &dyn Fn() -> String,
    ) -> VolResult<Vec<u8>> {
        self.open_blob_which(keys, ctx, sealed, what)
            .map(|(p, _)| p)
    }

    /// [`Category::open_blob`], also telling whether the old key was needed.
    pub(super) fn open_blob_which(
        &self,
        keys: &Keys,
        ctx: Context,
        sealed: &[u8],
        what: &dyn Fn() -> String,
    ) -> VolResult<(Vec<u8>, bool)> {
        keys.open(self.suite, &ctx.to_bytes(), sealed)
            .map_err(|e| self.integrity(what(), e.to_string()))
    }

    pub(super) fn check_available(&self, s: &State) -> VolResult<()> {
        match &s.unavailable {
            Some(why) => Err(VolError::Unavailable {
                name: self.name.clone(),
                why: why.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Makes sure the leaf holding `ino` is in memory.
    pub(super) fn ensure_leaf(&self, s: &mut State, ino: u64) -> VolResult<()> {
        self.check_available(s)?;
        let leaf = Self::leaf_of(ino);
        if s.tree.loaded_leaves.contains(&leaf) {
            return Ok(());
        }
        if let Some(why) = s.tree.bad_leaves.get(&leaf) {
            return Err(VolError::Integrity {
                what: format!("metadata leaf {leaf}"),
                why: why.clone(),
            });
        }
        let Some(r) = s.head.leaves.get(&leaf).copied() else {
            s.tree.loaded_leaves.insert(leaf);
            return Ok(());
        };
        let what = || format!("metadata leaf {leaf}");
        let keys = self.keys();
        let res = self.fetch_blob(&r, &what).and_then(|sealed| {
            let plain = self.open_blob(
                &keys,
                Context::new(ObjKind::Leaf, self.id, 0, leaf),
                &sealed,
                &what,
            )?;
            decode_leaf(&plain, &r.pack).map_err(|e| VolError::Integrity {
                what: what(),
                why: e.to_string(),
            })
        });
        match res {
            Ok(recs) => {
                for (ino, rec) in recs {
                    if Self::leaf_of(ino) != leaf {
                        warn!(
                            "category {}: leaf {leaf} holds foreign inode {ino}; ignored",
                            self.name
                        );
                        continue;
                    }
                    if rec.attr.nlink == 0 && !matches!(rec.payload, Payload::Dir { .. }) {
                        // Unlinked while open when the daemon stopped: reclaim now.
                        if let Payload::File { size, .. } = &rec.payload {
                            s.tree.bytes = s.tree.bytes.saturating_sub(*size);
                        }
                        s.tree.inodes = s.tree.inodes.saturating_sub(1);
                        s.tree.dirty_leaves.insert(leaf);
                        continue;
                    }
                    s.tree.records.insert(ino, rec);
                }
                s.tree.loaded_leaves.insert(leaf);
                Ok(())
            }
            Err(e) => {
                s.tree.bad_leaves.insert(leaf, e.to_string());
                Err(e)
            }
        }
    }

    /// Loads every leaf (fsck, status). Returns the errors met.
    pub fn load_all(&self) -> Vec<String> {
        let mut s = self.lock();
        if let Some(why) = &s.unavailable {
            return vec![why.clone()];
        }
        let leaves: Vec<u64> = s.head.leaves.keys().copied().collect();
        let mut errs = Vec::new();
        for leaf in leaves {
            if let Err(e) = self.ensure_leaf(&mut s, leaf * crate::format::LEAF_SPAN) {
                errs.push(e.to_string());
            }
        }
        errs
    }

    /// Decrypted content of a stored chunk, through the RAM cache. `keys`: the key set
    /// taken when the ref was read.
    pub(super) fn load_chunk(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        r: &BlobRef,
    ) -> VolResult<Arc<Vec<u8>>> {
        if let Some(c) = self.cache.get(&self.ckey(ino, idx, r.tag)) {
            return Ok(c);
        }
        let what = || format!("chunk {idx} of inode {ino}");
        let sealed = self.fetch_blob(r, &what)?;
        let plain =
            Arc::new(self.open_blob(keys, Context::chunk(self.id, ino, idx), &sealed, &what)?);
        self.cache.insert(self.ckey(ino, idx, r.tag), plain.clone());
        Ok(plain)
    }

    /// A chunk's plaintext copied into `out` (the chunk's whole span in the file; a chunk
    /// written shorter reads as zeros past its end), decrypted where it was
    /// fetched and not kept in the cache: for reads of whole chunks, which the kernel's
    /// page cache keeps. Filling the cache with a cold stream cost a fresh page per 4 KiB
    /// (a quarter of the daemon's time reading cold; docs/BENCH.md, profiles).
    pub(super) fn read_chunk_into(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        r: &BlobRef,
        out: &mut [u8],
    ) -> VolResult<()> {
        if let Some(c) = self.cache.get(&self.ckey(ino, idx, r.tag)) {
            super::io::copy_part(&c, 0, out);
            return Ok(());
        }
        let what = || format!("chunk {idx} of inode {ino}");
        let mut sealed = self.fetch_blob(r, &what)?;
        let ctx = Context::chunk(self.id, ino, idx).to_bytes();
        let range = keys
            .open_in_place(self.suite, &ctx, &mut sealed)
            .map_err(|e| self.integrity(what(), e.to_string()))?;
        super::io::copy_part(&sealed[range], 0, out);
        Ok(())
    }

    /// Part of a stored chunk (`out.len()` bytes from `in_chunk`) for a read that does not
    /// span it: from the decrypted chunk if cached; else, if the chunk was read before and
    /// its sector index is still cached, only the sectors holding the part are fetched,
    /// checked against it and decrypted; else the whole chunk is opened, cached and
    /// indexed. A random 4 KiB read over a file larger than the cache thereby costs one
    /// sector, not 256 KiB of MAC and XTS (docs/BENCH.md, "fio randread").
    pub(super) fn read_part(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        r: &BlobRef,
        in_chunk: usize,
        out: &mut [u8],
    ) -> VolResult<()> {
        let key = self.ckey(ino, idx, r.tag);
        if let Some(c) = self.cache.get(&key) {
            super::io::copy_part(&c, in_chunk, out);
            return Ok(());
        }
        let what = || format!("chunk {idx} of inode {ino}");
        if let Some(index) = self.cache.get_index(&key) {
            let Some((range, at)) = index.sealed_range(in_chunk..in_chunk + out.len()) else {
                out.fill(0); // past the chunk's end: zeros
                return Ok(());
            };
            let pack = names::pack(&r.pack);
            let fail = |why: String| self.integrity(what(), why);
            if range.end > r.len as usize {
                return Err(fail(format!(
                    "{pack}@{}: sector index past the blob",
                    r.offset
                )));
            }
            let mut part = self
                .store
                .get_range(
                    &pack,
                    r.offset as u64 + range.start as u64,
                    range.len() as u64,
                )
                .map_err(|e| fail(format!("cannot read {pack}@{}: {e}", r.offset)))?;
            if part.len() != range.len() {
                return Err(fail(format!(
                    "{pack}@{} does not hold the referenced blob (truncated)",
                    r.offset
                )));
            }
            index
                .open_sectors(at, &mut part)
                .map_err(|e| fail(format!("{pack}@{}: a sector {e}", r.offset)))?;
            part.truncate(index.len() - at); // XTS padding of a short tail
            super::io::copy_part(&part, in_chunk - at, out);
            return Ok(());
        }
        let mut sealed = self.fetch_blob(r, &what)?;
        let ctx = Context::chunk(self.id, ino, idx).to_bytes();
        let ((range, index), old) = keys
            .open_indexed(self.suite, &ctx, &mut sealed)
            .map_err(|e| self.integrity(what(), e.to_string()))?;
        let plain = Arc::new(sealed[range].to_vec());
        super::io::copy_part(&plain, in_chunk, out);
        self.cache.insert(key, plain);
        // A blob under the old key is about to be resealed, and the index would hold
        // subkeys of a key that is to be destroyed (a read in flight could insert it after
        // `set_keys` forgot the category's indexes).
        if !old {
            self.cache.insert_index(key, Arc::new(index));
        }
        Ok(())
    }

    /// The sealed bytes of a chunk that is still in the open pack buffer.
    pub(super) fn pending_sealed<'a>(
        s: &'a State,
        ino: u64,
        idx: u64,
        p: &Pending,
    ) -> VolResult<&'a [u8]> {
        let start = p.offset as usize;
        s.buf
            .pack
            .get(start..start + p.len as usize)
            .ok_or_else(|| VolError::Integrity {
                what: format!("chunk {idx} of inode {ino} (unsynced)"),
                why: "pending blob outside the pack buffer".into(),
            })
    }

    /// Opens a chunk that is still in the open pack buffer.
    pub(super) fn load_pending(
        &self,
        s: &State,
        ino: u64,
        idx: u64,
        p: Pending,
    ) -> VolResult<Arc<Vec<u8>>> {
        if let Some(c) = self.cache.get(&self.ckey(ino, idx, p.tag)) {
            return Ok(c);
        }
        let what = || format!("chunk {idx} of inode {ino} (unsynced)");
        let sealed = Self::pending_sealed(s, ino, idx, &p)?;
        let plain = Arc::new(match p.patch_of {
            Some((base, sectors)) => {
                self.open_patched(&self.keys(), ino, idx, &base, sectors, sealed, true)?
                    .0
            }
            None => self.open_blob(
                &self.keys(),
                Context::chunk(self.id, ino, idx),
                sealed,
                &what,
            )?,
        });
        self.cache.insert(self.ckey(ino, idx, p.tag), plain.clone());
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ChunkCache;
    use crate::format::CHUNK_SIZE;
    use crate::store::{MemStore, Store};
    use crate::volume::{CategorySetup, NoWitness, UnsignedHeads, VolumeOptions};

    /// Random reads over a file four times the chunk cache: every byte agrees with what
    /// was written, and once a chunk is indexed, a read checks only the sectors it fetched
    /// (a changed byte in another sector of the chunk goes unnoticed by it, is refused by
    /// the read of its own sector, and is refused by a read of the whole chunk).
    #[test]
    fn random_reads_through_sector_indexes_agree_and_refuse_a_changed_sector() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = Category::open(
            CategorySetup::standard(
                3,
                "cat3",
                crate::crypto::SecretKey::from_bytes([3; 32]),
                1,
                None,
            ),
            store.clone(),
            Arc::new(ChunkCache::new(1 << 20)),
            Arc::new(NoWitness),
            VolumeOptions::offline(Arc::new(UnsignedHeads), Some(1)),
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let size = 16 * CHUNK_SIZE as usize - 5000;
        let data: Vec<u8> = (0..size).map(|_| next() as u8).collect();
        let ino = crate::volume::testing::write_file(&c, "f", &data);
        for round in 0..600 {
            let len = if round % 3 == 0 {
                4096
            } else {
                (next() % 20_000) as usize + 1
            };
            let off = (next() as usize) % (size + 100);
            let got = c.read(ino, off as u64, len as u32).unwrap();
            let want = &data[off.min(size)..(off + len).min(size)];
            assert!(got == want, "read of {len} at {off}");
        }
        // Chunk 0: indexed by now; push its plaintext out of the cache.
        let key = c.ckey(ino, 0, {
            let s = c.lock();
            match Category::chunk_source(&s, ino, 0) {
                super::super::io::Source::Stored(r) => r.tag(),
                _ => panic!("chunk 0 is not stored"),
            }
        });
        assert!(
            c.cache.get_index(&key).is_some(),
            "chunk 0 was never indexed"
        );
        for idx in 1..8 {
            c.read(ino, idx * CHUNK_SIZE + 10, 10).unwrap();
        }
        assert!(c.cache.get(&key).is_none(), "chunk 0 is still cached");
        // Change one byte of sector 5 of chunk 0's blob, in the store.
        let r = match Category::chunk_source(&c.lock(), ino, 0) {
            super::super::io::Source::Stored(r) => r.base,
            _ => unreachable!(),
        };
        let name = names::pack(&r.pack);
        let mut pack = store.get(&name).unwrap();
        pack[r.offset as usize + 21 + 5 * 4096 + 100] ^= 1;
        store.put(&name, &pack).unwrap();
        // Sectors 0 and 7 still read right: only what was fetched is checked.
        assert_eq!(c.read(ino, 0, 4096).unwrap(), &data[..4096]);
        assert_eq!(
            c.read(ino, 7 * 4096 + 3, 50).unwrap(),
            &data[7 * 4096 + 3..7 * 4096 + 53]
        );
        // Sector 5, alone or within a longer read: refused.
        for (off, len) in [(5 * 4096, 1), (4 * 4096 + 4000, 200), (0, 100_000)] {
            assert!(
                matches!(c.read(ino, off, len), Err(VolError::Integrity { .. })),
                "read of {len} at {off} was not refused"
            );
        }
        // The whole chunk (a streaming read): refused by its MAC.
        assert!(matches!(
            c.read(ino, 0, CHUNK_SIZE as u32),
            Err(VolError::Integrity { .. })
        ));
    }

    /// `read_into` does not zero its buffer first: a buffer holding another read's bytes
    /// must still give zeros for holes, for a chunk written shorter than its span and past
    /// a chunk's end, whether the chunk is dirty, cached, stored or read a sector at a time.
    #[test]
    fn a_reused_read_buffer_never_shows_old_bytes() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = crate::volume::testing::open(&store, 4);
        let ino = crate::volume::testing::new_file(&c, "holes");
        let cs = CHUNK_SIZE as usize;
        // chunk 0: 5000 bytes then (after the truncate below) zeros; chunk 1: a hole;
        // chunk 2: 100 bytes at 2 KiB; the file ends 3000 bytes into chunk 3.
        c.write(ino, 0, &[1u8; 5000], false).unwrap();
        c.write(ino, 2 * CHUNK_SIZE + 2048, &[2u8; 100], false)
            .unwrap();
        let a = crate::volume::SetAttr {
            size: Some(3 * CHUNK_SIZE + 3000),
            ..Default::default()
        };
        c.setattr(ino, a).unwrap();
        let mut want = vec![0u8; 3 * cs + 3000];
        want[..5000].fill(1);
        want[2 * cs + 2048..2 * cs + 2148].fill(2);
        let check = |c: &Category, when: &str| {
            for (off, len) in [
                (0, 4 * cs),
                (4096, 8192),
                (cs - 10, 20),
                (2 * cs, cs),
                (2 * cs + 2000, 4096),
                (3 * cs, cs),
            ] {
                let mut buf = vec![0xAAu8; 2 * cs];
                c.read_into(ino, off as u64, len as u32, &mut buf).unwrap();
                let end = (off + len).min(want.len());
                assert!(buf == want[off..end], "{when}: read of {len} at {off}");
            }
        };
        check(&c, "dirty");
        c.commit().unwrap();
        check(&c, "committed");
        let fresh = crate::volume::testing::open(&store, 4);
        check(&fresh, "opened again (stored)");
        check(&fresh, "again (cached or indexed)");
    }
}
