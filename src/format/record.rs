//! Inode records and the metadata leaves that hold them (names, structure, sizes,
//! attributes, chunk references). Sealed as `Leaf` blobs; see docs/FORMAT.md.

use super::codec::{FormatError, Reader, Writer};
use super::pack::{BLOB_REF_LEN, BlobRef};
use std::collections::BTreeMap;

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

impl Time {
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                Time {
                    sec: -(d.as_secs() as i64) - 1,
                    nsec: 1_000_000_000 - d.subsec_nanos().max(1),
                }
            }
        }
    }
    fn write(&self, w: &mut Writer) {
        w.i64(self.sec).u32(self.nsec);
    }
    fn read(r: &mut Reader) -> Result<Self, FormatError> {
        let sec = r.i64()?;
        let nsec = r.u32()?;
        if nsec >= 1_000_000_000 {
            return Err(FormatError::Invalid("nanoseconds out of range"));
        }
        Ok(Time { sec, nsec })
    }
}

/// POSIX attributes. `mode` includes the file-type bits (S_IFMT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub btime: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    /// File-type bits of the target (S_IFMT >> 12), for readdir without loading the target.
    pub kind: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Dir {
        parent: u64,
        entries: BTreeMap<Vec<u8>, DirEntry>,
    },
    File {
        size: u64,
        /// One slot per chunk; `None` is a hole (reads as zeros).
        chunks: Vec<Option<ChunkRef>>,
    },
    Symlink(Vec<u8>),
    /// FIFOs, sockets and device nodes: everything is in `Attr` (`rdev`).
    Special,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attr: Attr,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub payload: Payload,
}

/// A chunk slot: a hole, a ref to a blob in any pack, a blob in the same pack as the
/// leaf that holds the slot, or a base blob with a patch (FORMAT.md §5.1).
const SLOT_HOLE: u8 = 0;
const SLOT_REF: u8 = 1;
const SLOT_OWN_PACK: u8 = 2;
const SLOT_PATCHED: u8 = 3;

/// Where a chunk's plaintext is: one blob, or a base blob with the sectors a later small
/// write changed laid over it (`format::patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub base: BlobRef,
    pub patch: Option<PatchRef>,
}

/// A chunk's patch: the blob, and which 4 KiB sectors it holds (bit `s`: sector `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchRef {
    pub blob: BlobRef,
    pub sectors: u64,
}

impl ChunkRef {
    /// A chunk that is one blob.
    pub fn whole(base: BlobRef) -> Self {
        ChunkRef { base, patch: None }
    }

    /// What a sealed `blob` makes the chunk: the whole chunk, or with `patch_of` (the base
    /// and sectors it was sealed over) a patch. The patch names its base, so the slot
    /// reads as what was sealed whatever the record held meanwhile.
    pub fn sealed(blob: BlobRef, patch_of: Option<(BlobRef, u64)>) -> Self {
        match patch_of {
            Some((base, sectors)) => ChunkRef {
                base,
                patch: Some(PatchRef { blob, sectors }),
            },
            None => ChunkRef::whole(blob),
        }
    }

    /// The tag that names this version of the chunk's plaintext (the cache's key): the
    /// patch's when there is one, since it names its base.
    pub fn tag(&self) -> [u8; 32] {
        self.patch.map_or(self.base.tag, |p| p.blob.tag)
    }

    /// The blobs the chunk is read from: the base, then the patch if any.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        std::iter::once(&self.base).chain(self.patch.as_ref().map(|p| &p.blob))
    }
}

/// One blob of a slot, as slot 1 or slot 2 (the inner slots of slot 3).
fn write_blob(w: &mut Writer, r: &BlobRef, own: Option<OwnBlob>) {
    match own {
        Some(o) => {
            w.u8(SLOT_OWN_PACK).u32(o.offset).u32(o.len).raw(&o.tag);
        }
        None => {
            w.u8(SLOT_REF);
            r.write(w);
        }
    }
}

fn read_blob(r: &mut Reader, kind: u8, home_pack: &[u8; 32]) -> Result<BlobRef, FormatError> {
    match kind {
        SLOT_REF => BlobRef::read(r),
        SLOT_OWN_PACK => Ok(BlobRef {
            pack: *home_pack,
            offset: r.u32()?,
            len: r.u32()?,
            tag: r.hash()?,
        }),
        v => Err(FormatError::Unknown {
            what: "chunk slot",
            value: v as u64,
        }),
    }
}

/// Where a chunk sealed into the pack its leaf goes into lives in that pack. The pack's id
/// is the hash of the pack, this leaf included, so the slot cannot name it: a reader
/// takes it from the ref it found the leaf through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnBlob {
    pub offset: u32,
    pub len: u32,
    pub tag: [u8; 32],
}

impl OwnBlob {
    /// The ref it becomes once its pack's id is known.
    pub fn as_ref_in(&self, pack: [u8; 32]) -> BlobRef {
        BlobRef {
            pack,
            offset: self.offset,
            len: self.len,
            tag: self.tag,
        }
    }
}

/// A chunk sealed into the leaf's own pack: the whole chunk, or a patch over the base it
/// names with the sectors it holds (then the slot is 3, with the patch as slot 2 inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnChunk {
    pub blob: OwnBlob,
    pub patch_of: Option<(BlobRef, u64)>,
}

const P_DIR: u8 = 1;
const P_FILE: u8 = 2;
const P_SYMLINK: u8 = 3;
const P_SPECIAL: u8 = 4;

impl Record {
    /// Writes the record, with the chunk blobs `own` answers for as blobs of the leaf's
    /// own pack (slot 2, or inside slot 3: the patch if the chunk has one, else the
    /// chunk), whatever the record holds there.
    pub fn write_with(&self, w: &mut Writer, own: &dyn Fn(u64) -> Option<OwnChunk>) {
        let a = &self.attr;
        w.u32(a.mode).u32(a.uid).u32(a.gid).u32(a.nlink).u64(a.rdev);
        a.atime.write(w);
        a.mtime.write(w);
        a.ctime.write(w);
        a.btime.write(w);
        w.u32(self.xattrs.len() as u32);
        for (k, v) in &self.xattrs {
            w.bytes(k).bytes(v);
        }
        match &self.payload {
            Payload::Dir { parent, entries } => {
                w.u8(P_DIR).u64(*parent).u32(entries.len() as u32);
                for (name, e) in entries {
                    w.u8(e.kind).u64(e.ino).bytes(name);
                }
            }
            Payload::File { size, chunks } => {
                w.u8(P_FILE).u64(*size).u32(chunks.len() as u32);
                for (i, c) in chunks.iter().enumerate() {
                    // A blob sealed into the leaf's own pack (the patch, if it is one)
                    // replaces what the record holds, and is written as slot 2.
                    let (slot, own_blob) = match own(i as u64) {
                        Some(o) => (
                            Some(ChunkRef::sealed(o.blob.as_ref_in([0; 32]), o.patch_of)),
                            Some(o.blob),
                        ),
                        None => (*c, None),
                    };
                    match slot {
                        None => {
                            w.u8(SLOT_HOLE);
                        }
                        Some(ChunkRef { base, patch: None }) => write_blob(w, &base, own_blob),
                        Some(ChunkRef {
                            base,
                            patch: Some(p),
                        }) => {
                            w.u8(SLOT_PATCHED);
                            write_blob(w, &base, None);
                            write_blob(w, &p.blob, own_blob);
                            w.u64(p.sectors);
                        }
                    }
                }
            }
            Payload::Symlink(t) => {
                w.u8(P_SYMLINK).bytes(t);
            }
            Payload::Special => {
                w.u8(P_SPECIAL);
            }
        }
    }

    /// Reads a record of a leaf found in pack `home_pack` (what a slot 2 refers to).
    pub fn read(r: &mut Reader, home_pack: &[u8; 32]) -> Result<Self, FormatError> {
        let mode = r.u32()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let nlink = r.u32()?;
        let rdev = r.u64()?;
        let atime = Time::read(r)?;
        let mtime = Time::read(r)?;
        let ctime = Time::read(r)?;
        let btime = Time::read(r)?;
        let attr = Attr {
            mode,
            uid,
            gid,
            nlink,
            rdev,
            atime,
            mtime,
            ctime,
            btime,
        };
        let nx = r.count(8)?;
        let mut xattrs = BTreeMap::new();
        for _ in 0..nx {
            let k = r.bytes()?.to_vec();
            let v = r.bytes()?.to_vec();
            xattrs.insert(k, v);
        }
        let payload = match r.u8()? {
            P_DIR => {
                let parent = r.u64()?;
                let n = r.count(13)?;
                let mut entries = BTreeMap::new();
                for _ in 0..n {
                    let kind = r.u8()?;
                    let ino = r.u64()?;
                    let name = r.bytes()?.to_vec();
                    if name.is_empty() || name.len() > 255 || name.contains(&b'/') {
                        return Err(FormatError::Invalid("bad directory entry name"));
                    }
                    entries.insert(name, DirEntry { ino, kind });
                }
                Payload::Dir { parent, entries }
            }
            P_FILE => {
                let size = r.u64()?;
                let n = r.count(1)?;
                let mut chunks = Vec::with_capacity(n);
                for _ in 0..n {
                    match r.u8()? {
                        SLOT_HOLE => chunks.push(None),
                        SLOT_PATCHED => {
                            let k = r.u8()?;
                            let base = read_blob(r, k, home_pack)?;
                            let k = r.u8()?;
                            let blob = read_blob(r, k, home_pack)?;
                            let sectors = r.u64()?;
                            if sectors == 0 {
                                return Err(FormatError::Invalid("patch of no sector"));
                            }
                            chunks.push(Some(ChunkRef {
                                base,
                                patch: Some(PatchRef { blob, sectors }),
                            }));
                        }
                        k => chunks.push(Some(ChunkRef::whole(read_blob(r, k, home_pack)?))),
                    }
                }
                Payload::File { size, chunks }
            }
            P_SYMLINK => Payload::Symlink(r.bytes()?.to_vec()),
            P_SPECIAL => Payload::Special,
            v => {
                return Err(FormatError::Unknown {
                    what: "payload kind",
                    value: v as u64,
                });
            }
        };
        Ok(Record {
            attr,
            xattrs,
            payload,
        })
    }
}

/// Encodes a leaf: u32 count, then (ino u64, record)*, inodes ascending.
pub fn encode_leaf(records: &BTreeMap<u64, &Record>) -> Vec<u8> {
    encode_leaf_with(records, &BTreeMap::new())
}

/// Encodes a leaf whose chunks `own` (by inode and chunk index) are sealed into the same
/// pack as the leaf: they are written as slot 2, so a commit puts one pack, not two.
pub fn encode_leaf_with(
    records: &BTreeMap<u64, &Record>,
    own: &BTreeMap<(u64, u64), OwnChunk>,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(records.len() as u32);
    for (ino, rec) in records {
        w.u64(*ino);
        rec.write_with(&mut w, &|idx| own.get(&(*ino, idx)).copied());
    }
    w.finish()
}

/// Decodes a leaf found in pack `home_pack`: its slot-2 chunks are blobs of that pack.
pub fn decode_leaf(
    bytes: &[u8],
    home_pack: &[u8; 32],
) -> Result<BTreeMap<u64, Record>, FormatError> {
    let mut r = Reader::new(bytes);
    // smallest record: ino 8 + attrs 72 + xattr count 4 + payload kind 1
    let n = r.count(8 + 77)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let ino = r.u64()?;
        let rec = Record::read(&mut r, home_pack)?;
        out.insert(ino, rec);
    }
    r.end()?;
    Ok(out)
}

/// Size of a chunk slot on disk, for overhead figures.
pub const CHUNK_SLOT_LEN: usize = 1 + BLOB_REF_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    fn file(chunks: Vec<Option<ChunkRef>>) -> Record {
        Record {
            attr: Attr {
                mode: libc::S_IFREG | 0o644,
                uid: 1000,
                gid: 1000,
                nlink: 1,
                rdev: 0,
                atime: Time::default(),
                mtime: Time::default(),
                ctime: Time::default(),
                btime: Time::default(),
            },
            xattrs: BTreeMap::new(),
            payload: Payload::File {
                size: chunks.len() as u64 * crate::format::CHUNK_SIZE,
                chunks,
            },
        }
    }

    /// FORMAT.md §5.1, chunk slot 2: the bytes of a file record whose second chunk is in
    /// the leaf's own pack, and its reading as a ref into the pack the leaf came from.
    #[test]
    fn a_chunk_in_the_leaf_s_own_pack_is_slot_2_and_reads_as_that_pack() {
        let elsewhere = BlobRef {
            pack: [0xaa; 32],
            offset: 8,
            len: 100,
            tag: [0xbb; 32],
        };
        // The record still holds the chunk's old ref: the slot-2 answer wins over it.
        let w = Some(ChunkRef::whole(elsewhere));
        let rec = file(vec![w, w, None]);
        let own = OwnBlob {
            offset: 0x108,
            len: 0x40020,
            tag: [0xcc; 32],
        };
        let mut own_map = BTreeMap::new();
        own_map.insert(
            (5u64, 1u64),
            OwnChunk {
                blob: own,
                patch_of: None,
            },
        );
        let leaf = encode_leaf_with(&BTreeMap::from([(5u64, &rec)]), &own_map);
        // count 1, ino 5, then the 77-byte fixed part ends in the payload kind 2; the
        // payload is size, slot count 3, slot 1, slot 2, slot 0.
        let payload = &leaf[4 + 8 + 76..];
        let mut want = vec![2u8];
        want.extend_from_slice(&(3 * crate::format::CHUNK_SIZE).to_le_bytes());
        want.extend_from_slice(&3u32.to_le_bytes());
        want.push(1);
        want.extend_from_slice(&[0xaa; 32]);
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(&100u32.to_le_bytes());
        want.extend_from_slice(&[0xbb; 32]);
        want.extend_from_slice(&hex::decode("020801000020000400").unwrap());
        want.extend_from_slice(&[0xcc; 32]);
        want.push(0);
        assert_eq!(hex::encode(payload), hex::encode(&want));

        let home = [0xdd; 32];
        let back = decode_leaf(&leaf, &home).unwrap();
        let Payload::File { chunks, .. } = &back[&5].payload else {
            panic!("not a file")
        };
        assert_eq!(chunks[0], w);
        assert_eq!(chunks[1], Some(ChunkRef::whole(own.as_ref_in(home))));
        assert_eq!(chunks[2], None);
        // Without slot-2 answers the leaf is what it always was.
        let plain = encode_leaf(&BTreeMap::from([(5u64, &rec)]));
        assert_eq!(decode_leaf(&plain, &home).unwrap()[&5], rec);
        // An unknown slot kind is refused, as before.
        let mut bad = plain.clone();
        let at = 4 + 8 + 77 + 8 + 4;
        assert_eq!(bad[at], 1);
        bad[at] = 4;
        assert!(decode_leaf(&bad, &home).is_err());
    }

    /// FORMAT.md §5.1, chunk slot 3: a base and a patch (each as slot 1 or 2) and the
    /// sector mask; the patch in the leaf's own pack when the commit sealed it there.
    #[test]
    fn a_patched_chunk_is_slot_3_with_its_base_patch_and_sectors() {
        let base = BlobRef {
            pack: [0xaa; 32],
            offset: 8,
            len: 0x40020,
            tag: [0xbb; 32],
        };
        let patch = BlobRef {
            pack: [0x11; 32],
            offset: 0x200,
            len: 0x1050,
            tag: [0x22; 32],
        };
        let patched = Some(ChunkRef {
            base,
            patch: Some(PatchRef {
                blob: patch,
                sectors: 0b101,
            }),
        });
        let rec = file(vec![patched, None]);
        let leaf = encode_leaf(&BTreeMap::from([(5u64, &rec)]));
        let payload = &leaf[4 + 8 + 76..];
        let mut want = vec![2u8];
        want.extend_from_slice(&(2 * crate::format::CHUNK_SIZE).to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&[3, 1]);
        want.extend_from_slice(&[0xaa; 32]);
        want.extend_from_slice(&hex::decode("0800000020000400").unwrap());
        want.extend_from_slice(&[0xbb; 32]);
        want.push(1);
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&hex::decode("0002000050100000").unwrap());
        want.extend_from_slice(&[0x22; 32]);
        want.extend_from_slice(&5u64.to_le_bytes());
        want.push(0);
        assert_eq!(hex::encode(payload), hex::encode(&want));
        let home = [0xdd; 32];
        assert_eq!(decode_leaf(&leaf, &home).unwrap()[&5], rec);

        // Sealed in the leaf's own pack: the patch is an inner slot 2.
        let own = OwnBlob {
            offset: 0x300,
            len: 0x1050,
            tag: [0x33; 32],
        };
        let own_map = BTreeMap::from([(
            (5u64, 1u64),
            OwnChunk {
                blob: own,
                patch_of: Some((base, 0b10)),
            },
        )]);
        let leaf = encode_leaf_with(&BTreeMap::from([(5u64, &rec)]), &own_map);
        let back = decode_leaf(&leaf, &home).unwrap();
        let Payload::File { chunks, .. } = &back[&5].payload else {
            panic!("not a file")
        };
        assert_eq!(chunks[0], patched);
        assert_eq!(
            chunks[1],
            Some(ChunkRef {
                base,
                patch: Some(PatchRef {
                    blob: own.as_ref_in(home),
                    sectors: 0b10,
                }),
            })
        );

        // An empty mask, or an inner slot that is neither 1 nor 2, is refused.
        let plain = encode_leaf(&BTreeMap::from([(5u64, &rec)]));
        let mask_at = plain.len() - 1 - 8;
        let mut bad = plain.clone();
        bad[mask_at..mask_at + 8].fill(0);
        assert!(decode_leaf(&bad, &home).is_err());
        let inner_at = 4 + 8 + 77 + 8 + 4 + 1;
        for k in [0u8, 3] {
            let mut bad = plain.clone();
            assert_eq!(bad[inner_at], 1);
            bad[inner_at] = k;
            assert!(decode_leaf(&bad, &home).is_err());
        }
    }
}
