//! Changes made on the web (issue 12 step c, FORMAT.md §9f): the server cannot publish
//! heads that devices would take (they verify a device's signature), so each change the
//! web makes is an inbox object that the next syncing device opens, applies with its own
//! safe rules, and signs into its head. This module is their byte layout and names.

use super::FormatError;
use super::codec::{Reader, Writer};

/// Layout of the sealed change written by this build (its leading u16).
pub const WEB_CHANGE_LAYOUT: u16 = 1;

/// Plaintext bytes of one data part of an upload (the last may be shorter).
pub const PART_SIZE: usize = 1 << 20;

/// The most parts one upload may have: files up to 4 GiB.
pub const MAX_PARTS: u64 = 4096;

/// Path segments of the folder a change names, at most (below the category root).
pub const MAX_DEPTH: usize = 64;

/// What the web last saw of a node it replaces or deletes: a device applies the change
/// only to that same node, unchanged since (else the device's version wins, and nothing
/// is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub ino: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    pub size: u64,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebOp {
    /// A new file `name` in `dir`, its content in `parts` (BLAKE3 of each stored part
    /// object, in order); `replaces`: the file of that name the web overwrote.
    Upload {
        size: u64,
        mtime: i64,
        replaces: Option<Seen>,
        parts: Vec<[u8; 32]>,
    },
    /// A new folder `name` in `dir`.
    Mkdir,
    /// `name` in `dir` goes to the category's Recently Deleted folder.
    Delete { seen: Seen },
    /// `name` in `dir` moves to `to_dir` under the name `to_name` (a rename when the
    /// folder stays): only the node the web saw (same inode; edits since do not matter,
    /// as a move loses nothing), never onto a taken name.
    Rename {
        seen: Seen,
        to_dir: Vec<Vec<u8>>,
        to_name: Vec<u8>,
    },
}

/// A change as sealed in `web/<cat>/<seq>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebChange {
    /// Position in the category's sequence: a device applies changes in this order and
    /// records the last one in its head (`web_seq`), so an older one comes back refused.
    pub seq: u64,
    /// Random, unique: names the change in logs and on the devices.
    pub id: [u8; 16],
    /// Unix seconds on the server when it was made.
    pub created: u64,
    /// The head the web read when it made the change (counter, BLAKE3 of the object).
    pub base_counter: u64,
    pub base_hash: [u8; 32],
    /// Folder, as name segments from the category root, and the name the change is about.
    pub dir: Vec<Vec<u8>>,
    pub name: Vec<u8>,
    pub op: WebOp,
}

/// A name the web may write: what a directory entry may be (no `/`, not `.` or `..`, 1
/// to 255 bytes), and no control characters (NUL included), which no file picker
/// produces and which would only serve to confuse a listing or a log.
pub fn valid_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n != b"."
        && n != b".."
        && !n.iter().any(|&b| b == b'/' || b < 0x20 || b == 0x7f)
}

/// Number of parts of an upload of `size` bytes.
pub fn parts_for(size: u64) -> u64 {
    size.div_ceil(PART_SIZE as u64)
}

fn write_seen(w: &mut Writer, s: &Seen) {
    w.u64(s.ino)
        .i64(s.mtime_secs)
        .u32(s.mtime_nanos)
        .u64(s.size);
}

fn read_seen(r: &mut Reader) -> Result<Seen, FormatError> {
    Ok(Seen {
        ino: r.u64()?,
        mtime_secs: r.i64()?,
        mtime_nanos: r.u32()?,
        size: r.u64()?,
    })
}

/// A folder (name segments from the category root) and a name in it.
fn write_path(w: &mut Writer, dir: &[Vec<u8>], name: &[u8]) {
    w.u32(dir.len() as u32);
    for seg in dir {
        w.bytes(seg);
    }
    w.bytes(name);
}

/// A folder and a name, checked: a bounded depth, every segment a valid name.
fn read_path(r: &mut Reader) -> Result<(Vec<Vec<u8>>, Vec<u8>), FormatError> {
    let depth = r.count(5)?;
    if depth > MAX_DEPTH {
        return Err(FormatError::Invalid("web change: folder too deep"));
    }
    let mut dir = Vec::with_capacity(depth);
    for _ in 0..depth {
        dir.push(r.bytes()?.to_vec());
    }
    let name = r.bytes()?.to_vec();
    if !dir.iter().chain([&name]).all(|n| valid_name(n)) {
        return Err(FormatError::Invalid("web change: invalid name"));
    }
    Ok((dir, name))
}

impl WebChange {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(WEB_CHANGE_LAYOUT)
            .u64(self.seq)
            .raw(&self.id)
            .u64(self.created)
            .u64(self.base_counter)
            .raw(&self.base_hash);
        write_path(&mut w, &self.dir, &self.name);
        match &self.op {
            WebOp::Upload {
                size,
                mtime,
                replaces,
                parts,
            } => {
                w.u8(1).u64(*size).i64(*mtime);
                match replaces {
                    Some(s) => {
                        w.u8(1);
                        write_seen(&mut w, s);
                    }
                    None => {
                        w.u8(0);
                    }
                }
                w.u32(parts.len() as u32);
                for p in parts {
                    w.raw(p);
                }
            }
            WebOp::Mkdir => {
                w.u8(2);
            }
            WebOp::Delete { seen } => {
                w.u8(3);
                write_seen(&mut w, seen);
            }
            WebOp::Rename {
                seen,
                to_dir,
                to_name,
            } => {
                w.u8(4);
                write_seen(&mut w, seen);
                write_path(&mut w, to_dir, to_name);
            }
        }
        w.finish()
    }

    /// Decodes and checks a change: names an entry may have, a bounded depth, as many
    /// parts as the size needs.
    pub fn decode(bytes: &[u8]) -> Result<WebChange, FormatError> {
        let mut r = Reader::new(bytes);
        let layout = r.u16()?;
        if layout == 0 || layout > WEB_CHANGE_LAYOUT {
            return Err(FormatError::Version(layout));
        }
        let seq = r.u64()?;
        let mut id = [0u8; 16];
        id.copy_from_slice(r.take(16)?);
        let created = r.u64()?;
        let base_counter = r.u64()?;
        let base_hash = r.hash()?;
        let (dir, name) = read_path(&mut r)?;
        let op = match r.u8()? {
            1 => {
                let size = r.u64()?;
                let mtime = r.i64()?;
                let replaces = match r.u8()? {
                    0 => None,
                    1 => Some(read_seen(&mut r)?),
                    _ => return Err(FormatError::Invalid("web change: replaces flag")),
                };
                let n = r.count(32)?;
                if n as u64 != parts_for(size) || n as u64 > MAX_PARTS {
                    return Err(FormatError::Invalid(
                        "web change: parts do not match the size",
                    ));
                }
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(r.hash()?);
                }
                WebOp::Upload {
                    size,
                    mtime,
                    replaces,
                    parts,
                }
            }
            2 => WebOp::Mkdir,
            3 => WebOp::Delete {
                seen: read_seen(&mut r)?,
            },
            4 => {
                let seen = read_seen(&mut r)?;
                let (to_dir, to_name) = read_path(&mut r)?;
                WebOp::Rename {
                    seen,
                    to_dir,
                    to_name,
                }
            }
            _ => return Err(FormatError::Invalid("web change: unknown operation")),
        };
        r.end()?;
        Ok(WebChange {
            seq,
            id,
            created,
            base_counter,
            base_hash,
            dir,
            name,
            op,
        })
    }
}

#[cfg(test)]
impl WebChange {
    /// A change for the tests of every layer: its id from `seq`, a fixed creation time,
    /// no base head.
    pub(crate) fn sample(seq: u64, dir: &[&str], name: &str, op: WebOp) -> WebChange {
        WebChange {
            seq,
            id: [seq as u8; 16],
            created: 1_790_000_000,
            base_counter: 0,
            base_hash: [0; 32],
            dir: dir.iter().map(|d| d.as_bytes().to_vec()).collect(),
            name: name.as_bytes().to_vec(),
            op,
        }
    }
}

/// The outer layout of a stored change or part: the key version in clear (which key
/// opens it), then the sealed blob.
pub fn split_object(obj: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    let mut r = Reader::new(obj);
    let kv = r.u32()?;
    Ok((kv, &obj[4..]))
}

/// Prefix of category `cat`'s inbox in the store.
pub fn prefix(cat: u32) -> String {
    format!("web/{cat:08x}/")
}

/// Name of change `seq` of category `cat`: written last, create-only, so the name is
/// the claim on the sequence number and the change is whole once it is there.
pub fn change_name(cat: u32, seq: u64) -> String {
    format!("web/{cat:08x}/{seq:016x}")
}

/// Name of data part `n` of the upload whose change has id `id`: written before the
/// change, so it cannot carry the sequence number.
pub fn part_name(cat: u32, id: &[u8; 16], n: u64) -> String {
    format!("web/{cat:08x}/u{}.{n:08x}", hex::encode(id))
}

/// The sealing context's inode of an upload's parts: the first 8 bytes of its id.
pub fn part_inode(id: &[u8; 16]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_le_bytes(b)
}

/// An object of a category's inbox, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxName {
    Change(u64),
    Part([u8; 16], u64),
}

/// What an inbox object of category `cat` is, by its name; anything else under the
/// prefix is not ours.
pub fn parse_name(cat: u32, name: &str) -> Option<InboxName> {
    // Lowercase hex of exactly `len` digits, as the names above write them.
    fn hex_ok(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    let rest = name.strip_prefix(&prefix(cat))?;
    if let Some(part) = rest.strip_prefix('u') {
        let (id, n) = part.split_once('.')?;
        if !hex_ok(id, 32) || !hex_ok(n, 8) {
            return None;
        }
        let mut a = [0u8; 16];
        hex::decode_to_slice(id, &mut a).ok()?;
        let n = u64::from_str_radix(n, 16).ok().filter(|n| *n < MAX_PARTS)?;
        return Some(InboxName::Part(a, n));
    }
    hex_ok(rest, 16)
        .then(|| u64::from_str_radix(rest, 16).ok())
        .flatten()
        .map(InboxName::Change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: WebOp) -> WebChange {
        WebChange {
            seq: 7,
            id: [9; 16],
            created: 1_790_000_000,
            base_counter: 12,
            base_hash: [3; 32],
            dir: vec![b"Trips".to_vec(), b"2026".to_vec()],
            name: "caf\u{e9}.txt".as_bytes().to_vec(),
            op,
        }
    }

    #[test]
    fn changes_round_trip_and_bad_ones_are_refused() {
        let seen = Seen {
            ino: 5 << 32,
            mtime_secs: 1_700_000_000,
            mtime_nanos: 5,
            size: 10,
        };
        for op in [
            WebOp::Mkdir,
            WebOp::Delete { seen },
            WebOp::Upload {
                size: PART_SIZE as u64 + 1,
                mtime: 1_790_000_000,
                replaces: Some(seen),
                parts: vec![[1; 32], [2; 32]],
            },
            WebOp::Upload {
                size: 0,
                mtime: 0,
                replaces: None,
                parts: vec![],
            },
            WebOp::Rename {
                seen,
                to_dir: vec![],
                to_name: b"moved".to_vec(),
            },
            WebOp::Rename {
                seen,
                to_dir: vec![b"Trips".to_vec(), b"2027".to_vec()],
                to_name: "caf\u{e9}.txt".as_bytes().to_vec(),
            },
        ] {
            let c = sample(op);
            assert_eq!(WebChange::decode(&c.encode()).unwrap(), c);
        }
        // Parts that do not match the size, a bad name, trailing bytes, a newer layout.
        let mut c = sample(WebOp::Upload {
            size: 3,
            mtime: 0,
            replaces: None,
            parts: vec![],
        });
        assert!(WebChange::decode(&c.encode()).is_err());
        c.op = WebOp::Mkdir;
        for bad in [&b".."[..], b"", b"a/b", b"a\0", b"a\nb", b"\x7f"] {
            c.name = bad.to_vec();
            assert!(WebChange::decode(&c.encode()).is_err(), "{bad:?}");
        }
        c.name = b"ok".to_vec();
        for bad in [&b".."[..], b"", b"a/b", b"a\0"] {
            c.op = WebOp::Rename {
                seen: Seen {
                    ino: 1,
                    mtime_secs: 0,
                    mtime_nanos: 0,
                    size: 0,
                },
                to_dir: vec![],
                to_name: bad.to_vec(),
            };
            assert!(WebChange::decode(&c.encode()).is_err(), "rename to {bad:?}");
        }
        c.op = WebOp::Mkdir;
        let mut enc = c.encode();
        enc.push(0);
        assert!(WebChange::decode(&enc).is_err());
        let mut enc = c.encode();
        enc[0] = 2;
        assert!(matches!(
            WebChange::decode(&enc),
            Err(FormatError::Version(2))
        ));
    }

    #[test]
    fn names_parse_back_and_nothing_else_does() {
        let id = [0xab; 16];
        assert_eq!(change_name(2, 10), "web/00000002/000000000000000a");
        assert_eq!(
            part_name(2, &id, 3),
            format!("web/00000002/u{}.00000003", "ab".repeat(16))
        );
        assert_eq!(
            parse_name(2, &change_name(2, 10)),
            Some(InboxName::Change(10))
        );
        assert_eq!(
            parse_name(2, &part_name(2, &id, 3)),
            Some(InboxName::Part(id, 3))
        );
        let long_id = format!("web/00000002/u{}.00000003", "ab".repeat(17));
        for bad in [
            "web/00000003/000000000000000a",
            "web/00000002/000000000000000A",
            "web/00000002/00000000000000a",
            "web/00000002/000000000000000a.00000003",
            "web/00000002/uabab.00000003",
            long_id.as_str(),
            "web/00000002/x",
        ] {
            assert_eq!(parse_name(2, bad), None, "{bad}");
        }
    }
}
