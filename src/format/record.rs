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
        chunks: Vec<Option<BlobRef>>,
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

/// A chunk slot: a hole, a ref to a blob in any pack, or a blob in the same pack as the
/// leaf that holds the slot (FORMAT.md §5.1).
const SLOT_HOLE: u8 = 0;
const SLOT_REF: u8 = 1;
const SLOT_OWN_PACK: u8 = 2;

/// Where a chunk sealed into the pack its leaf goes into lives in that pack. The pack's id
/// is the hash of the pack, this leaf included, so the slot cannot name it: a reader
/// takes it from the ref it found the leaf through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnBlob {
    pub offset: u32,
    pub len: u32,
    pub tag: [u8; 32],
}

const P_DIR: u8 = 1;
const P_FILE: u8 = 2;
const P_SYMLINK: u8 = 3;
const P_SPECIAL: u8 = 4;

impl Record {
    /// Writes the record, with the chunk slots `own` answers for as blobs of the leaf's
    /// own pack (slot 2), whatever the record holds there.
    pub fn write_with(&self, w: &mut Writer, own: &dyn Fn(u64) -> Option<OwnBlob>) {
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
                    match (own(i as u64), c) {
                        (Some(o), _) => {
                            w.u8(SLOT_OWN_PACK).u32(o.offset).u32(o.len).raw(&o.tag);
                        }
                        (None, None) => {
                            w.u8(SLOT_HOLE);
                        }
                        (None, Some(r)) => {
                            w.u8(SLOT_REF);
                            r.write(w);
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
                        SLOT_REF => chunks.push(Some(BlobRef::read(r)?)),
                        SLOT_OWN_PACK => chunks.push(Some(BlobRef {
                            pack: *home_pack,
                            offset: r.u32()?,
                            len: r.u32()?,
                            tag: r.hash()?,
                        })),
                        v => {
                            return Err(FormatError::Unknown {
                                what: "chunk slot",
                                value: v as u64,
                            });
                        }
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
    own: &BTreeMap<(u64, u64), OwnBlob>,
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

    fn file(chunks: Vec<Option<BlobRef>>) -> Record {
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
        let rec = file(vec![Some(elsewhere), Some(elsewhere), None]);
        let own = OwnBlob {
            offset: 0x108,
            len: 0x40020,
            tag: [0xcc; 32],
        };
        let mut own_map = BTreeMap::new();
        own_map.insert((5u64, 1u64), own);
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
        assert_eq!(chunks[0], Some(elsewhere));
        assert_eq!(
            chunks[1],
            Some(BlobRef {
                pack: home,
                offset: 0x108,
                len: 0x40020,
                tag: [0xcc; 32],
            })
        );
        assert_eq!(chunks[2], None);
        // Without slot-2 answers the leaf is what it always was.
        let plain = encode_leaf(&BTreeMap::from([(5u64, &rec)]));
        assert_eq!(decode_leaf(&plain, &home).unwrap()[&5], rec);
        // An unknown slot kind is refused, as before.
        let mut bad = plain.clone();
        let at = 4 + 8 + 77 + 8 + 4;
        assert_eq!(bad[at], 1);
        bad[at] = 3;
        assert!(decode_leaf(&bad, &home).is_err());
    }
}
