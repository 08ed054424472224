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

const P_DIR: u8 = 1;
const P_FILE: u8 = 2;
const P_SYMLINK: u8 = 3;
const P_SPECIAL: u8 = 4;

impl Record {
    pub fn write(&self, w: &mut Writer) {
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
                for c in chunks {
                    match c {
                        None => {
                            w.u8(0);
                        }
                        Some(r) => {
                            w.u8(1);
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

    pub fn read(r: &mut Reader) -> Result<Self, FormatError> {
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
                        0 => chunks.push(None),
                        1 => chunks.push(Some(BlobRef::read(r)?)),
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
    let mut w = Writer::new();
    w.u32(records.len() as u32);
    for (ino, rec) in records {
        w.u64(*ino);
        rec.write(&mut w);
    }
    w.finish()
}

pub fn decode_leaf(bytes: &[u8]) -> Result<BTreeMap<u64, Record>, FormatError> {
    let mut r = Reader::new(bytes);
    // smallest record: ino 8 + attrs 72 + xattr count 4 + payload kind 1
    let n = r.count(8 + 77)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let ino = r.u64()?;
        let rec = Record::read(&mut r)?;
        out.insert(ino, rec);
    }
    r.end()?;
    Ok(out)
}

/// Size of a chunk slot on disk, for overhead figures.
pub const CHUNK_SLOT_LEN: usize = 1 + BLOB_REF_LEN;
