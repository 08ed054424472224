//! Full verification of a category for `fsck`: every leaf and every chunk is fetched and
//! authenticated, bypassing the cache.

use super::*;
use crate::format::record::Payload;

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub inodes: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
    /// Pack ids referenced by the head, leaves and chunks.
    pub packs: HashSet<[u8; 32]>,
}

/// Storage a category uses, from its metadata alone (no chunk is fetched).
#[derive(Debug, Default)]
pub struct Usage {
    /// Distinct pack objects holding its live blobs.
    pub packs: usize,
    /// Bytes of live sealed blobs (chunks and leaves).
    pub stored: u64,
    /// Plaintext bytes of file content.
    pub plaintext: u64,
}

impl Category {
    /// Every pack the current tree references (head, leaves, chunks, including chunks of
    /// files unlinked while open). Fails if any part of the tree cannot be read: a garbage
    /// collector must never decide from an incomplete picture.
    pub fn referenced_packs(&self) -> Result<HashSet<[u8; 32]>, String> {
        let errs = self.load_all();
        if let Some(e) = errs.into_iter().next() {
            return Err(e);
        }
        let s = self.lock();
        let mut packs: HashSet<[u8; 32]> = s.head.leaves.values().map(|r| r.pack).collect();
        for rec in s.tree.records.values() {
            if let Payload::File { chunks, .. } = &rec.payload {
                packs.extend(
                    chunks
                        .iter()
                        .flatten()
                        .flat_map(|r| r.blobs())
                        .map(|b| b.pack),
                );
            }
        }
        Ok(packs)
    }

    /// What the category's current tree occupies in the store.
    pub fn usage(&self) -> Usage {
        let _ = self.load_all();
        let s = self.lock();
        let mut packs = HashSet::new();
        let mut u = Usage::default();
        for r in s.head.leaves.values() {
            packs.insert(r.pack);
            u.stored += r.len as u64;
        }
        for rec in s.tree.records.values() {
            if let Payload::File { chunks, size } = &rec.payload {
                u.plaintext += size;
                for r in chunks.iter().flatten().flat_map(|r| r.blobs()) {
                    packs.insert(r.pack);
                    u.stored += r.len as u64;
                }
            }
        }
        u.packs = packs.len();
        u
    }

    /// Number of chunk references, for progress bars.
    pub fn chunk_count(&self) -> u64 {
        let _ = self.load_all();
        let s = self.lock();
        s.tree
            .records
            .values()
            .map(|r| match &r.payload {
                Payload::File { chunks, .. } => {
                    chunks.iter().filter(|c| c.is_some()).count() as u64
                }
                _ => 0,
            })
            .sum()
    }

    pub fn verify(&self, progress: &dyn Fn(u64)) -> VerifyReport {
        let mut rep = VerifyReport::default();
        for e in self.load_all() {
            rep.problems.push(e);
        }
        let s = self.lock();
        let keys = self.keys();
        for r in s.head.leaves.values() {
            rep.packs.insert(r.pack);
        }
        let mut inos: Vec<u64> = s.tree.records.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            rep.inodes += 1;
            let Some(rec) = s.tree.records.get(&ino) else {
                continue;
            };
            match &rec.payload {
                Payload::File { chunks, size } => {
                    rep.bytes += size;
                    for (idx, c) in chunks.iter().enumerate() {
                        let Some(r) = c else { continue };
                        rep.packs.extend(r.blobs().map(|b| b.pack));
                        rep.chunks += 1;
                        progress(1);
                        // A patched chunk: its base and its patch, laid over it.
                        let res = self.open_chunk_which(&keys, ino, idx as u64, r);
                        if let Err(e) = res {
                            rep.problems.push(e.to_string());
                        }
                    }
                }
                Payload::Dir { entries, .. } => {
                    for (name, e) in entries {
                        let leaf = Self::leaf_of(e.ino);
                        if !s.tree.records.contains_key(&e.ino)
                            && !s.tree.bad_leaves.contains_key(&leaf)
                        {
                            rep.problems.push(format!(
                                "directory inode {ino} names missing inode {} ({} bytes name)",
                                e.ino,
                                name.len()
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        rep
    }
}
