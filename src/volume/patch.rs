//! Small writes into stored chunks sealed as patches: the sectors the writes changed, over
//! the stored chunk they changed, rather than the whole 256 KiB chunk again (FORMAT.md
//! §5.1, chunk slot 03). A 4 KiB random write sealed and stored 256 KiB, and left as much
//! behind for gc (docs/BENCH.md, "The slow spots of the outside suite").

use super::*;
use crate::format::Context;
use crate::format::patch;
use crate::format::record::ChunkRef;
use std::ops::Range;

/// A chunk, dirty or on its way, that differs from the stored `base` only in `sectors`
/// (those of the patch it had, and those written since).
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub base: BlobRef,
    pub sectors: u64,
}

/// A patch is sealed only while its data is at most this share of the chunk; beyond it
/// the whole chunk is sealed again, and later patches start from that. So a read never
/// lays more than a quarter of a chunk over its base, and patches never chain: each holds
/// every sector changed since its base.
const MAX_SHARE: usize = 4;

/// What to seal for `plain` under `plan`: a patch (its plaintext, and the base and sectors
/// its slot names) when that is worth it, else `None` (the whole chunk).
pub(super) fn patch_for(plan: Option<Plan>, plain: &[u8]) -> Option<(Vec<u8>, (BlobRef, u64))> {
    let p = plan?;
    if patch::data_len(p.sectors, plain.len()) * MAX_SHARE > plain.len() {
        return None;
    }
    patch::encode(&p.base.tag, plain, p.sectors).map(|b| (b, (p.base, p.sectors)))
}

/// The plan a chunk's stored version starts: it is its own base, with its patch's sectors.
pub(super) fn plan_of_stored(r: &ChunkRef) -> Plan {
    Plan {
        base: r.base,
        sectors: r.patch.map_or(0, |p| p.sectors),
    }
}

impl Category {
    /// After a write of bytes `range` into chunk `key`, whose version before it had the
    /// plan `from`: the chunk keeps that plan, widened by the sectors written. Without a
    /// plan it is sealed whole. While an old key is held (a rotation, or a key taken from
    /// another device whose tree may still be under the old one) nothing is patched: a
    /// patch would keep a base under the old key in use, where a whole seal moves the
    /// chunk to the new key.
    pub(super) fn note_write(
        &self,
        s: &mut State,
        key: (u64, u64),
        from: Option<Plan>,
        range: Range<usize>,
    ) {
        // The keys are looked at only when there is a plan, not on every write.
        let old_key_held =
            s.rot.rotating_from != 0 || (from.is_some() && self.keys().old.is_some());
        match from {
            Some(mut p) if !old_key_held => {
                p.sectors |= patch::sectors_of(range);
                s.buf.plans.insert(key, p);
            }
            _ => {
                s.buf.plans.remove(&key);
            }
        }
    }

    /// A stored chunk's plaintext (from the cache if there; a patched chunk is cached
    /// whole under its patch's tag).
    pub(super) fn load_chunk_ref(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        r: &ChunkRef,
    ) -> VolResult<Arc<Vec<u8>>> {
        let Some(p) = r.patch else {
            return self.load_chunk(keys, ino, idx, &r.base);
        };
        if let Some(c) = self.cache.get(&self.ckey(ino, idx, p.blob.tag)) {
            return Ok(c);
        }
        let what = || format!("chunk {idx} of inode {ino} (patch)");
        let sealed = self.fetch_blob(&p.blob, &what)?;
        let plain = Arc::new(
            self.open_patched(keys, ino, idx, &r.base, p.sectors, &sealed, true)?
                .0,
        );
        self.cache
            .insert(self.ckey(ino, idx, p.blob.tag), plain.clone());
        Ok(plain)
    }

    /// A stored chunk's plaintext, not cached, and whether the old key was needed for any
    /// of its blobs (key rotation, sync after a rotation elsewhere, fsck): every blob is
    /// fetched and opened, none taken from the cache, which does not say under which key
    /// a blob was.
    pub(super) fn open_chunk_which(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        r: &ChunkRef,
    ) -> VolResult<(Vec<u8>, bool)> {
        match r.patch {
            None => {
                let what = || format!("chunk {idx} of inode {ino}");
                let sealed = self.fetch_blob(&r.base, &what)?;
                self.open_blob_which(keys, Context::chunk(self.id, ino, idx), &sealed, &what)
            }
            Some(p) => {
                let what = || format!("chunk {idx} of inode {ino} (patch)");
                let sealed = self.fetch_blob(&p.blob, &what)?;
                self.open_patched(keys, ino, idx, &r.base, p.sectors, &sealed, false)
            }
        }
    }

    /// Opens the sealed patch `sealed` of chunk `idx` and lays it over its stored `base`:
    /// the chunk's plaintext, and whether the old key was needed for either. With
    /// `cached_base`, the base is taken from the cache if there (which then reports it as
    /// under the current key); otherwise, or if not there, it is fetched and opened (and
    /// not cached: the patched chunk is what is read).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_patched(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        base: &BlobRef,
        sectors: u64,
        sealed: &[u8],
        cached_base: bool,
    ) -> VolResult<(Vec<u8>, bool)> {
        let what = || format!("chunk {idx} of inode {ino} (patch)");
        let (patch_plain, old_patch) =
            self.open_blob_which(keys, Context::patch(self.id, ino, idx), sealed, &what)?;
        let cached = cached_base
            .then(|| self.cache.get(&self.ckey(ino, idx, base.tag)))
            .flatten();
        let (base_plain, old_base) = match cached {
            Some(c) => (c, false),
            None => {
                let what = || format!("chunk {idx} of inode {ino} (base of a patch)");
                let sealed = self.fetch_blob(base, &what)?;
                let (p, old) =
                    self.open_blob_which(keys, Context::chunk(self.id, ino, idx), &sealed, &what)?;
                (Arc::new(p), old)
            }
        };
        let plain = patch::apply(&base_plain, &base.tag, sectors, &patch_plain)
            .map_err(|e| self.integrity(what(), e.to_string()))?;
        Ok((plain, old_patch || old_base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::Payload;
    use crate::store::MemStore;
    use crate::volume::testing::{new_file, open};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn slots(c: &Category, ino: u64) -> Vec<Option<ChunkRef>> {
        let s = c.lock();
        match &s.tree.records[&ino].payload {
            Payload::File { chunks, .. } => chunks.clone(),
            _ => panic!("not a file"),
        }
    }

    fn stored_bytes(store: &Arc<dyn Store>) -> u64 {
        store
            .list("packs/")
            .unwrap()
            .iter()
            .map(|p| store.size(p).unwrap())
            .sum()
    }

    fn same(got: &[u8], want: &[u8], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        if let Some(i) = (0..want.len()).find(|i| got[*i] != want[*i]) {
            panic!("{what}: first difference at byte {i}");
        }
    }

    /// A read of up to `max` bytes somewhere in file `ino`, against the model.
    fn random_read(c: &Category, ino: u64, rng: &mut Rng, model: &[u8], max: u64, what: &str) {
        let off = rng.below(model.len() as u64 + 1) as usize;
        let len = rng.below(max) as usize;
        let want = &model[off..(off + len).min(model.len())];
        let got = c.read(ino, off as u64, len as u32).unwrap();
        same(&got, want, &format!("{what}: read of {len} at {off}"));
    }

    /// Small writes at random into a committed file, with commits in between (some after
    /// every write, like a database's fsync), truncations and holes: every read, here and
    /// from a fresh open of the store, gives what a model of the file says; chunks are
    /// patched, and what a small write costs the store is about what it wrote.
    #[test]
    fn small_writes_seal_patches_that_read_back_as_written() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 3);
        let ino = new_file(&c, "db");
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let mut model: Vec<u8> = (0..1_100_000u32).map(|i| (i * 13 + 7) as u8).collect();
        c.write(ino, 0, &model, false).unwrap();
        c.commit().unwrap();

        // Writes of 1 byte to two sectors, each committed alone: patches, and the store
        // grows by a patch and a leaf per commit, not by a chunk.
        let before = stored_bytes(&store);
        for i in 0..20u64 {
            let off = rng.below(model.len() as u64 - 5000) as usize;
            let data: Vec<u8> = (0..(1 + i as usize * 300))
                .map(|_| rng.next() as u8)
                .collect();
            model[off..off + data.len()].copy_from_slice(&data);
            c.write(ino, off as u64, &data, false).unwrap();
            c.commit().unwrap();
        }
        let grown = stored_bytes(&store) - before;
        assert!(
            grown < 20 * 48 * 1024,
            "20 small committed writes stored {grown} bytes (a chunk each would be 5 MiB)"
        );
        let patched = slots(&c, ino)
            .iter()
            .flatten()
            .filter(|r| r.patch.is_some())
            .count();
        assert!(patched > 0, "no chunk was patched");
        same(
            &c.read(ino, 0, 2 << 20).unwrap(),
            &model,
            "after small commits",
        );
        same(
            &open(&store, 3).read(ino, 0, 2 << 20).unwrap(),
            &model,
            "reopened",
        );

        // Then a mix: writes of any size (some past a patch's quarter, some crossing
        // chunks, some extending the file), truncations and punched holes, commits now and
        // then; checked against the model, here and reopened, along the way.
        for round in 0..300 {
            match rng.below(20) {
                0 => {
                    let n = rng.below(model.len() as u64 + 300_000) as usize;
                    model.resize(n, 0);
                    let a = crate::volume::SetAttr {
                        size: Some(n as u64),
                        ..Default::default()
                    };
                    c.setattr(ino, a).unwrap();
                }
                1 if !model.is_empty() => {
                    let off = rng.below(model.len() as u64) as usize;
                    let len = (rng.below(300_000) as usize + 1).min(model.len() - off);
                    model[off..off + len].fill(0);
                    c.fallocate(
                        ino,
                        off as u64,
                        len as u64,
                        crate::volume::Allocate::PunchHole,
                    )
                    .unwrap();
                }
                _ => {
                    let off = rng.below(model.len() as u64 + 10_000) as usize;
                    let len = match rng.below(4) {
                        0 => rng.below(70_000) as usize + 1,
                        _ => rng.below(9000) as usize + 1,
                    };
                    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    if model.len() < off + len {
                        model.resize(off + len, 0);
                    }
                    model[off..off + len].copy_from_slice(&data);
                    c.write(ino, off as u64, &data, false).unwrap();
                }
            }
            if rng.below(4) == 0 {
                c.commit().unwrap();
            }
            if round % 50 == 49 {
                c.commit().unwrap();
                let fresh = open(&store, 3);
                // Random reads first, with nothing cached.
                for _ in 0..40 {
                    random_read(
                        &fresh,
                        ino,
                        &mut rng,
                        &model,
                        9000,
                        &format!("round {round}, fresh"),
                    );
                }
                same(
                    &fresh.read(ino, 0, 4 << 20).unwrap(),
                    &model,
                    &format!("reopened at round {round}"),
                );
            }
            random_read(&c, ino, &mut rng, &model, 20_000, &format!("round {round}"));
        }
        c.commit().unwrap();
        same(&c.read(ino, 0, 4 << 20).unwrap(), &model, "at the end");
        same(
            &open(&store, 3).read(ino, 0, 4 << 20).unwrap(),
            &model,
            "reopened at the end",
        );
        // fsck's check opens every patch over its base.
        let rep = open(&store, 3).verify(&|_| {});
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    }

    /// A patch whose bytes changed in the store is refused (EIO), never laid over its
    /// base; and a base that changed is refused although the patch is intact.
    #[test]
    fn a_changed_patch_or_base_is_refused() {
        for which in ["patch", "base"] {
            let store: Arc<dyn Store> = Arc::new(MemStore::new());
            let c = open(&store, 3);
            let ino = new_file(&c, "f");
            let data = vec![7u8; 300_000];
            c.write(ino, 0, &data, false).unwrap();
            c.commit().unwrap();
            c.write(ino, 5000, b"changed", false).unwrap();
            c.commit().unwrap();
            let r = slots(&c, ino)[0].unwrap();
            let p = r.patch.expect("a patch");
            let blob = if which == "patch" { p.blob } else { r.base };
            let name = crate::format::names::pack(&blob.pack);
            let mut pack = store.get(&name).unwrap();
            pack[blob.offset as usize + 40] ^= 1;
            store.put(&name, &pack).unwrap();
            let fresh = open(&store, 3);
            assert!(
                matches!(fresh.read(ino, 5000, 7), Err(VolError::Integrity { .. })),
                "a changed {which} was not refused"
            );
            // The other chunk, whole, still reads.
            assert_eq!(fresh.read(ino, 262_144, 10).unwrap(), vec![7u8; 10]);
        }
    }

    /// A base that only a patch names still counts as referenced (gc keeps its pack),
    /// as does the patch's pack; the packs of replaced patches do not.
    #[test]
    fn gc_keeps_the_pack_of_a_base_only_a_patch_names() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 3);
        let ino = new_file(&c, "f");
        // One chunk, sealed with the leaf in one pack: once the leaf is rewritten, only
        // the patches name anything in it.
        c.write(ino, 0, &vec![1u8; 200_000], false).unwrap();
        c.commit().unwrap();
        let base = slots(&c, ino)[0].unwrap().base;
        let mut patches = Vec::new();
        for i in 0..3u64 {
            c.write(ino, 100_000 + i * 5000, b"x", false).unwrap();
            c.commit().unwrap();
            let r = slots(&c, ino)[0].unwrap();
            assert_eq!(r.base, base, "patches keep their base");
            patches.push(r.patch.unwrap().blob.pack);
        }
        let live = c.referenced_packs().unwrap();
        assert!(live.contains(&base.pack), "the base's pack");
        assert!(live.contains(&patches[2]), "the current patch's pack");
        for old in &patches[..2] {
            // A replaced patch's pack is live only through the leaf it shares it with,
            // which later commits rewrote elsewhere.
            assert!(
                !live.contains(old),
                "a replaced patch's pack is still referenced"
            );
        }
    }

    /// The choice between a patch and the whole chunk.
    #[test]
    fn a_patch_is_sealed_only_up_to_a_quarter_of_the_chunk() {
        let base = BlobRef {
            pack: [1; 32],
            offset: 8,
            len: 100,
            tag: [2; 32],
        };
        let plain = vec![0u8; CHUNK_SIZE_USIZE];
        let plan = |sectors| Some(Plan { base, sectors });
        assert!(patch_for(None, &plain).is_none());
        assert!(
            patch_for(plan(0xffff), &plain).is_some(),
            "16 sectors: a quarter"
        );
        assert!(patch_for(plan(0x1ffff), &plain).is_none(), "17 sectors");
        // A short chunk: a quarter of its own length.
        assert!(patch_for(plan(1), &plain[..16384]).is_some());
        assert!(patch_for(plan(1), &plain[..16383]).is_none());
        assert!(patch_for(plan(0), &plain).is_none(), "no sector");
    }

    const CHUNK_SIZE_USIZE: usize = crate::format::CHUNK_SIZE as usize;
}
