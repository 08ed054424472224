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
    /// plan it is sealed whole. During a key rotation nothing is patched: a patch would
    /// keep a base under the old key in use (the rotation reseals what it reads whole).
    pub(super) fn note_write(
        s: &mut State,
        key: (u64, u64),
        from: Option<Plan>,
        range: Range<usize>,
    ) {
        match from {
            Some(mut p) if s.rot.rotating_from == 0 => {
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
        let plain = Arc::new(self.open_patched(keys, ino, idx, &r.base, p.sectors, &sealed)?.0);
        self.cache.insert(self.ckey(ino, idx, p.blob.tag), plain.clone());
        Ok(plain)
    }

    /// A stored chunk's plaintext, not cached, and whether the old key was needed for any
    /// of its blobs (key rotation, sync after a rotation elsewhere).
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
                self.open_patched(keys, ino, idx, &r.base, p.sectors, &sealed)
            }
        }
    }

    /// Opens the sealed patch `sealed` of chunk `idx` and lays it over its stored `base`:
    /// the chunk's plaintext, and whether the old key was needed for either. The base is
    /// taken from the cache if there, else fetched and opened (not cached: the patched
    /// chunk is what is read).
    pub(super) fn open_patched(
        &self,
        keys: &Keys,
        ino: u64,
        idx: u64,
        base: &BlobRef,
        sectors: u64,
        sealed: &[u8],
    ) -> VolResult<(Vec<u8>, bool)> {
        let what = || format!("chunk {idx} of inode {ino} (patch)");
        let (patch_plain, old_patch) =
            self.open_blob_which(keys, Context::patch(self.id, ino, idx), sealed, &what)?;
        let (base_plain, old_base) = match self.cache.get(&self.ckey(ino, idx, base.tag)) {
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
