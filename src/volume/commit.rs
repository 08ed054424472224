//! Writing a category back: seal dirty chunks into the open pack, close packs (named by
//! their hash), seal changed leaves, then publish a new head (counter + 1, chained to the
//! previous one) with compare-and-swap. Ordering rule: a head is written only after every
//! object it references is durable in the store.

use super::*;
use crate::crypto;
use crate::format::head::Head;
use crate::format::pack::pack_header;
use crate::format::record::{ChunkRef, OwnBlob, OwnChunk, encode_leaf_with};
use crate::format::{Context, ObjKind, PACK_TARGET, names};
use log::{debug, error};

/// A commit's leaves share the open pack with its chunks only while the chunks' bytes are
/// at least this many times the leaves' (FORMAT.md §4): what a live chunk keeps in the
/// store beside it stays a fraction of it.
const SHARED_PACK_RATIO: usize = 4;

/// ... or while the leaves take at most this much, whatever the chunks (a patch of a few
/// sectors is smaller than the leaf that names it, and an fsync of one should still put
/// one pack): a live blob keeps at most this much of replaced leaves beside it.
const SHARED_LEAVES_FLOOR: usize = 16 * 1024;

/// ... and only while the chunks take at most this much (one chunk, an fsync's usual
/// share): gc deletes whole packs, so a leaf that stays current keeps the chunks beside
/// it in the store after they are replaced. With this cap that is at most a chunk's worth
/// per leaf (FORMAT.md §4).
const SHARED_PACK_MAX: usize = crate::format::CHUNK_SIZE as usize + 4096;

/// Starts a pack buffer with its capacity reserved once, so growing it never doubles
/// past the budget (`PACK_TARGET` plus one chunk).
pub(super) fn start_pack(pack: &mut Vec<u8>) {
    pack.reserve_exact(PACK_TARGET + crate::format::CHUNK_SIZE as usize + 4096);
    pack.extend_from_slice(&pack_header());
}

impl Category {
    /// Seals every dirty chunk of the category into the open pack.
    pub(super) fn seal_dirty(&self, s: &mut State) -> VolResult<()> {
        let mut keys: Vec<(u64, u64)> = s.buf.dirty.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(data) = s.buf.dirty.remove(&k) {
                self.sub_dirty(s, data.len());
                self.seal_chunk(s, k.0, k.1, data)?;
            }
        }
        Ok(())
    }

    fn seal_chunk(&self, s: &mut State, ino: u64, idx: u64, data: Vec<u8>) -> VolResult<()> {
        let plan = s.buf.plans.remove(&(ino, idx));
        let ((offset, len, tag), patch_of) = match super::patch::patch_for(plan, &data) {
            Some((patch, of)) => (
                self.seal_into_pack(s, Context::patch(self.id, ino, idx), &patch)?,
                Some(of),
            ),
            None => (
                self.seal_into_pack(s, Context::chunk(self.id, ino, idx), &data)?,
                None,
            ),
        };
        s.buf.pending.insert(
            (ino, idx),
            Pending {
                offset,
                len,
                tag,
                patch_of,
            },
        );
        self.cache.insert(self.ckey(ino, idx, tag), Arc::new(data));
        if s.buf.pack.len() >= PACK_TARGET {
            self.flush_pack(s)?;
        }
        Ok(())
    }

    /// Seals `plain` straight onto the end of the open pack; returns (offset, length, tag)
    /// of the blob there. The caller records where it lives once the pack is flushed.
    fn seal_into_pack(
        &self,
        s: &mut State,
        ctx: Context,
        plain: &[u8],
    ) -> VolResult<(u32, u32, [u8; 32])> {
        if s.buf.pack.is_empty() {
            start_pack(&mut s.buf.pack);
        }
        let offset = crypto::seal_append(
            &self.keys().key,
            self.suite,
            &ctx.to_bytes(),
            plain,
            &mut s.buf.pack,
        )
        .map_err(|e| VolError::Integrity {
            what: "sealing".into(),
            why: e.to_string(),
        })?;
        let tag = crypto::peek_tag(&s.buf.pack[offset..]).unwrap_or_default();
        Ok((offset as u32, (s.buf.pack.len() - offset) as u32, tag))
    }

    /// Writes the open pack to the store and turns its pending chunks into stored refs.
    /// The pack's id, if there was one to write.
    pub(super) fn flush_pack(&self, s: &mut State) -> VolResult<Option<[u8; 32]>> {
        if s.buf.pack.is_empty() {
            return Ok(None);
        }
        let id = crypto::hash(&s.buf.pack);
        let name = names::pack(&id);
        self.store.put(&name, &s.buf.pack).map_err(|e| {
            error!("category {}: cannot write pack {name}: {e}", self.name);
            VolError::from_store(e)
        })?;
        debug!(
            "category {}: wrote {name} ({} bytes)",
            self.name,
            s.buf.pack.len()
        );
        s.buf.pack.clear();
        self.install_pending(s, id);
        Ok(Some(id))
    }

    /// The plaintext of each leaf in `leaves` (`None`: no record left in it, so it leaves
    /// the head), with the chunks `own` lists as slot 2.
    fn encode_leaves(
        &self,
        s: &State,
        leaves: &[u64],
        own: &BTreeMap<(u64, u64), OwnChunk>,
    ) -> Vec<(u64, Option<Vec<u8>>)> {
        leaves
            .iter()
            .map(|leaf| {
                let lo = leaf * crate::format::LEAF_SPAN;
                let hi = lo + crate::format::LEAF_SPAN;
                let recs: BTreeMap<u64, &Record> = s
                    .tree
                    .records
                    .iter()
                    .filter(|(ino, _)| **ino >= lo && **ino < hi)
                    .map(|(i, r)| (*i, r))
                    .collect();
                (
                    *leaf,
                    (!recs.is_empty()).then(|| encode_leaf_with(&recs, own)),
                )
            })
            .collect()
    }

    /// Seals the leaves after what the open pack holds and puts it. Each leaf with where
    /// it went (`None`: removed), and the pack's id if there was one to put.
    #[allow(clippy::type_complexity)]
    fn put_leaves(
        &self,
        s: &mut State,
        plains: Vec<(u64, Option<Vec<u8>>)>,
    ) -> VolResult<(Vec<(u64, Option<(u32, u32, [u8; 32])>)>, Option<[u8; 32]>)> {
        let mut sealed_leaves = Vec::new();
        for (leaf, plain) in plains {
            let loc = match plain {
                None => None,
                Some(plain) => {
                    let ctx = Context::new(ObjKind::Leaf, self.id, 0, leaf);
                    Some(self.seal_into_pack(s, ctx, &plain)?)
                }
            };
            sealed_leaves.push((leaf, loc));
        }
        Ok((sealed_leaves, self.flush_pack(s)?))
    }

    /// Turns the chunks pending in a pack just put (as `id`) into stored refs.
    fn install_pending(&self, s: &mut State, id: [u8; 32]) {
        let pending: Vec<((u64, u64), Pending)> = s.buf.pending.drain().collect();
        for ((ino, idx), p) in pending {
            let blob = BlobRef {
                pack: id,
                offset: p.offset,
                len: p.len,
                tag: p.tag,
            };
            let r = ChunkRef::sealed(blob, p.patch_of);
            if let Some(Record {
                payload: crate::format::record::Payload::File { chunks, .. },
                ..
            }) = s.tree.records.get_mut(&ino)
            {
                let i = idx as usize;
                if i < chunks.len() {
                    chunks[i] = Some(r);
                    s.tree.dirty_leaves.insert(Self::leaf_of(ino));
                }
            }
        }
    }

    /// Whether anything awaits a commit.
    pub fn is_dirty(&self) -> bool {
        let s = self.lock();
        !s.buf.dirty.is_empty()
            || !s.buf.pending.is_empty()
            || !s.tree.dirty_leaves.is_empty()
            || s.head_dirty
    }

    /// Commits everything written so far under a new head. Durable when it returns.
    pub fn commit(&self) -> VolResult<()> {
        let mut s = self.lock_for_commit();
        self.commit_locked(&mut s)
    }

    /// Makes the record of this device's last commits durable (they are written behind
    /// the commits): at unmount, after the final commits.
    pub fn flush_witness(&self) {
        if let Err(e) = self.witness.flush() {
            error!(
                "category {}: cannot save the record of heads seen: {e}",
                self.name
            );
        }
    }

    /// Publishes a new head for the same tree, signed by this device: re-signs a head
    /// written by another signer or in an older layout. Fails on an unavailable category.
    pub fn republish_head(&self) -> VolResult<()> {
        let mut s = self.lock();
        if let Some(why) = &s.unavailable {
            return Err(VolError::Unavailable {
                name: self.name.clone(),
                why: why.clone(),
            });
        }
        self.commit_inner(&mut s, true)
    }

    pub(super) fn commit_locked(&self, s: &mut State) -> VolResult<()> {
        self.commit_inner(s, false)
    }

    fn commit_inner(&self, s: &mut State, force: bool) -> VolResult<()> {
        // A read-only mount never writes the store; nothing it does makes a change to
        // publish (a new category's empty root stays in memory).
        if s.unavailable.is_some() || self.opts.read_only {
            return Ok(());
        }
        if !force
            && s.buf.dirty.is_empty()
            && s.buf.pending.is_empty()
            && s.tree.dirty_leaves.is_empty()
            && !s.head_dirty
        {
            return Ok(());
        }
        // 1. data: sealed into the open pack (a full one is put on the way).
        self.seal_dirty(s)?;
        // 2. metadata leaves. When the chunks still in the open pack are few (an fsync's
        //    one chunk) and the leaves small beside them, the leaves go into that pack
        //    too, with those chunks as slot 2 ("in this pack", FORMAT.md §5.1): the commit
        //    then puts one pack, not two. Otherwise they get a pack of their own as
        //    before: gc deletes whole packs only, so whatever shares a pack with a blob
        //    that stays current stays in the store as long (both caps bound that).
        for (ino, _) in s.buf.pending.keys() {
            s.tree.dirty_leaves.insert(Self::leaf_of(*ino));
        }
        let chunk_bytes = s.buf.pack.len();
        if chunk_bytes > SHARED_PACK_MAX {
            self.flush_pack(s)?;
        }
        let leaves: Vec<u64> = s.tree.dirty_leaves.iter().copied().collect();
        let mut own: BTreeMap<(u64, u64), OwnChunk> = s
            .buf
            .pending
            .iter()
            .map(|(k, p)| {
                let blob = OwnBlob {
                    offset: p.offset,
                    len: p.len,
                    tag: p.tag,
                };
                (
                    *k,
                    OwnChunk {
                        blob,
                        patch_of: p.patch_of,
                    },
                )
            })
            .collect();
        let mut plains = self.encode_leaves(s, &leaves, &own);
        let leaf_bytes: usize = plains
            .iter()
            .filter_map(|(_, p)| p.as_ref())
            .map(Vec::len)
            .sum();
        if !own.is_empty()
            && leaf_bytes > SHARED_LEAVES_FLOOR
            && leaf_bytes.saturating_mul(SHARED_PACK_RATIO) > chunk_bytes
        {
            self.flush_pack(s)?;
            own.clear();
            plains = self.encode_leaves(s, &leaves, &own);
        }
        let data_len = s.buf.pack.len();
        let sealed = self.put_leaves(s, plains);
        if sealed.is_err() {
            // The chunks stay pending in the open pack (their offsets are below
            // `data_len`); the leaves are sealed again at the next commit.
            s.buf.pack.truncate(data_len);
        }
        let (sealed_leaves, meta_pack_id) = sealed?;
        let mut new_leaves = s.head.leaves.clone();
        for (leaf, loc) in sealed_leaves {
            match (loc, meta_pack_id) {
                (Some((offset, len, tag)), Some(pack)) => {
                    new_leaves.insert(
                        leaf,
                        BlobRef {
                            pack,
                            offset,
                            len,
                            tag,
                        },
                    );
                }
                _ => {
                    new_leaves.remove(&leaf);
                }
            }
        }
        // 3. the head, always under the current key
        let keys = self.keys();
        let head = Head {
            category: self.id,
            counter: s.head.counter + 1,
            prev: s.head.hash,
            key_version: keys.version,
            next_ino: s.head.next_ino,
            leaves: new_leaves.iter().map(|(k, v)| (*k, *v)).collect(),
            bytes: s.tree.bytes,
            inodes: s.tree.inodes,
            rotating_from: s.rot.rotating_from,
            rotate_cursor: s.rot.rotate_cursor,
            alloc: s.head.alloc.iter().map(|(k, v)| (*k, *v)).collect(),
            web_seq: s.head.web_seq,
        };
        let ctx = Context::new(ObjKind::Head, self.id, 0, 0);
        let sealed =
            crypto::seal(&keys.key, self.suite, &ctx.to_bytes(), &head.encode()).map_err(|e| {
                VolError::Integrity {
                    what: "sealing head".into(),
                    why: e.to_string(),
                }
            })?;
        let obj = self
            .opts
            .heads
            .envelope(self.id, keys.version, &sealed)
            .map_err(|e| VolError::Integrity {
                what: "signing head".into(),
                why: e.to_string(),
            })?;
        let name = names::head(self.id);
        let etag = self
            .store
            .put_if(&name, &obj, s.head.etag.as_ref())
            .map_err(|e| {
                error!(
                    "category {}: cannot publish head #{}: {e}",
                    self.name, head.counter
                );
                VolError::from_store(e)
            })?;
        let hash = crypto::hash(&obj);
        s.head.counter = head.counter;
        s.head.hash = hash;
        s.head.etag = Some(etag);
        s.head.leaves = new_leaves;
        s.tree.dirty_leaves.clear();
        s.head_dirty = false;
        // Whatever made a sealing batch fail is over: hand batches to the sealers again.
        s.buf.async_off = false;
        // Behind the commit: the head is durable, and the record of it may follow.
        if let Err(e) = self.witness.record_committed(self.id, head.counter, hash) {
            error!(
                "category {}: cannot record head #{}: {e}",
                self.name, head.counter
            );
        }
        debug!("category {}: committed head #{}", self.name, head.counter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{MemStore, Store};
    use crate::volume::testing::{new_file, open};
    use std::sync::Arc;

    fn packs(store: &Arc<dyn Store>) -> Vec<String> {
        store.list("packs/").unwrap()
    }

    fn read(c: &crate::volume::Category, ino: u64, len: usize) -> Vec<u8> {
        c.read(ino, 0, len as u32).unwrap()
    }

    /// FORMAT.md §4: a commit puts its leaves in the pack of the chunks it sealed when
    /// they are small beside them (one pack), and in a pack of their own when not; both
    /// read back, from this process and from a fresh open.
    #[test]
    fn leaves_share_the_pack_of_one_chunk_only_and_only_when_small_beside_it() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 3);
        let big = new_file(&c, "big");
        c.commit().unwrap();
        let before = packs(&store).len();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        c.write(big, 0, &data, false).unwrap();
        c.commit().unwrap();
        assert_eq!(
            packs(&store).len(),
            before + 1,
            "one pack for chunk and leaf"
        );

        // Many records in the leaf (past the 16 KiB floor), one byte of chunk: the leaf
        // gets its own pack.
        let names: Vec<u64> = (0..240)
            .map(|i| new_file(&c, &format!("a-file-with-a-name-long-enough-{i:08}")))
            .collect();
        c.commit().unwrap();
        let before = packs(&store).len();
        c.write(names[0], 0, b"x", false).unwrap();
        c.commit().unwrap();
        assert_eq!(
            packs(&store).len(),
            before + 2,
            "the chunk's pack, then the leaf's"
        );

        // More than a chunk of data: its own pack, so a leaf that stays current (the
        // root's, here unchanged by later commits) never keeps it once replaced.
        let large = new_file(&c, "large");
        c.commit().unwrap();
        let before = packs(&store);
        let old: Vec<u8> = (0..700_000u32).map(|i| (i * 3) as u8).collect();
        c.write(large, 0, &old, false).unwrap();
        c.commit().unwrap();
        let first: Vec<String> = packs(&store)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(first.len(), 2, "{first:?}");
        c.write(large, 0, &data, false).unwrap();
        c.write(large, 200_000, &data, false).unwrap();
        c.write(large, 400_000, &data[..100_000], false).unwrap();
        c.write(large, 500_000, &data, false).unwrap();
        c.commit().unwrap();
        let live = c.referenced_packs().unwrap();
        let data_pack = first
            .iter()
            .find(|p| store.size(p).unwrap() > 600_000)
            .unwrap();
        assert!(
            !live.iter().any(|id| data_pack.ends_with(&hex::encode(id))),
            "the replaced data's pack is no longer referenced"
        );

        for c in [c.clone(), open(&store, 3)] {
            assert_eq!(read(&c, big, data.len() + 1), data);
            assert_eq!(read(&c, names[0], 2), b"x");
            assert_eq!(read(&c, large, 700_001).len(), 700_000);
        }
    }
}
