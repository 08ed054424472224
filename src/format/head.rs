//! The head of a category: the root of its Merkle tree, with a monotonic counter and the
//! hash of the previous head so rollback and forks are detectable.

use super::codec::{FormatError, Reader, Writer};
use super::pack::BlobRef;

/// Layout of the sealed head written by this build (its leading u16). Kept apart from
/// `FORMAT_VERSION`, which also goes into every sealing context and must stay 1 so old
/// blobs keep opening. Layout 1 lacks the two rotation fields; layout 2 lacks the
/// per-device inode allocators; layout 3 lacks `web_seq`; decode reads all four. A head
/// with `web_seq` 0 is written in layout 3, byte for byte as before changes from the web
/// existed, so builds that predate them keep reading every head of an account that never
/// used them.
pub const HEAD_LAYOUT: u16 = 4;

/// First local inode number of the range device `slot` (its index in the manifest's
/// device list) allocates from: devices never hand out the same number, so trees written
/// concurrently on two devices merge without renumbering (FORMAT.md §5.3). Numbers below
/// `device_range(0)` are the shared range of layouts 1 and 2, no longer allocated from.
pub const fn device_range(slot: u32) -> u64 {
    ((slot as u64) + 1) << 32
}

/// Devices that can have an inode range: local inode numbers stay below 2^40.
pub const MAX_DEVICE_SLOTS: u32 = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub category: u32,
    pub counter: u64,
    /// BLAKE3 of the previous head object's stored bytes (zero for the first head).
    pub prev: [u8; 32],
    pub key_version: u32,
    pub next_ino: u64,
    /// Leaf number → sealed leaf, ascending.
    pub leaves: Vec<(u64, BlobRef)>,
    /// Plaintext bytes of file content and number of inodes (for `status`).
    pub bytes: u64,
    pub inodes: u64,
    /// Key version a rotation is moving away from: blobs may still be sealed under it.
    /// 0 = no rotation in progress (always 0 in layout 1).
    pub rotating_from: u32,
    /// Rotation progress: every inode below it is fully re-encrypted under `key_version`.
    pub rotate_cursor: u64,
    /// Layout 3: (device slot, next inode number in its range), ascending by slot.
    pub alloc: Vec<(u32, u64)>,
    /// Layout 4: the sequence number of the last change made on the web that this tree
    /// has taken in (FORMAT.md §9f); 0 = none.
    pub web_seq: u64,
}

impl Head {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let layout = if self.web_seq == 0 { 3 } else { HEAD_LAYOUT };
        w.u16(layout)
            .u32(self.category)
            .u64(self.counter)
            .raw(&self.prev)
            .u32(self.key_version)
            .u64(self.next_ino)
            .u64(self.bytes)
            .u64(self.inodes)
            .u32(self.rotating_from)
            .u64(self.rotate_cursor)
            .u32(self.leaves.len() as u32);
        for (no, r) in &self.leaves {
            w.u64(*no);
            r.write(&mut w);
        }
        w.u32(self.alloc.len() as u32);
        for (slot, next) in &self.alloc {
            w.u32(*slot).u64(*next);
        }
        if layout >= 4 {
            w.u64(self.web_seq);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        let layout = r.u16()?;
        if layout == 0 || layout > HEAD_LAYOUT {
            return Err(FormatError::Version(layout));
        }
        let category = r.u32()?;
        let counter = r.u64()?;
        let prev = r.hash()?;
        let key_version = r.u32()?;
        let next_ino = r.u64()?;
        let bytes_ = r.u64()?;
        let inodes = r.u64()?;
        let (rotating_from, rotate_cursor) = if layout >= 2 {
            (r.u32()?, r.u64()?)
        } else {
            (0, 0)
        };
        let n = r.count(80)?;
        let mut leaves = Vec::with_capacity(n);
        for _ in 0..n {
            let no = r.u64()?;
            leaves.push((no, BlobRef::read(&mut r)?));
        }
        let mut alloc = Vec::new();
        if layout >= 3 {
            let n = r.count(12)?;
            for _ in 0..n {
                alloc.push((r.u32()?, r.u64()?));
            }
        }
        let web_seq = if layout >= 4 { r.u64()? } else { 0 };
        r.end()?;
        Ok(Head {
            category,
            counter,
            prev,
            key_version,
            next_ino,
            leaves,
            bytes: bytes_,
            inodes,
            rotating_from,
            rotate_cursor,
            alloc,
            web_seq,
        })
    }
}

/// The outer layout of a head object: key version u32 in clear (so the reader knows which
/// key to use), then the sealed head.
pub fn split_head_object(obj: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    let mut r = Reader::new(obj);
    let kv = r.u32()?;
    Ok((kv, &obj[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Head {
        Head {
            category: 7,
            counter: 42,
            prev: [9; 32],
            key_version: 3,
            next_ino: 1000,
            leaves: vec![(
                0,
                BlobRef {
                    pack: [1; 32],
                    offset: 8,
                    len: 300,
                    tag: [2; 32],
                },
            )],
            bytes: 12345,
            inodes: 17,
            rotating_from: 2,
            rotate_cursor: 513,
            alloc: vec![(0, device_range(0) + 7), (3, device_range(3) + 1)],
            web_seq: 0,
        }
    }

    #[test]
    fn layout_3_round_trips_with_rotation_fields_and_allocators() {
        let h = sample();
        let b = h.encode();
        assert_eq!(
            u16::from_le_bytes([b[0], b[1]]),
            3,
            "no web changes: layout 3"
        );
        assert_eq!(Head::decode(&b).unwrap(), h);
    }

    #[test]
    fn layout_4_carries_the_last_web_change_and_only_when_there_is_one() {
        let h = Head {
            web_seq: 9,
            ..sample()
        };
        let b = h.encode();
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 4);
        assert_eq!(b.len(), sample().encode().len() + 8);
        assert_eq!(Head::decode(&b).unwrap(), h);
        // Layout 4 without its last field is truncated, never read as web_seq 0.
        assert!(Head::decode(&b[..b.len() - 8]).is_err());
    }

    #[test]
    fn layout_1_decodes_with_no_rotation() {
        // Layout 1, byte for byte as FORMAT.md §5.3 specified it before rotation existed.
        let h = sample();
        let mut w = Writer::new();
        w.u16(1)
            .u32(h.category)
            .u64(h.counter)
            .raw(&h.prev)
            .u32(h.key_version)
            .u64(h.next_ino)
            .u64(h.bytes)
            .u64(h.inodes)
            .u32(1)
            .u64(0);
        h.leaves[0].1.write(&mut w);
        let got = Head::decode(&w.finish()).unwrap();
        assert_eq!(got.rotating_from, 0);
        assert_eq!(got.rotate_cursor, 0);
        assert_eq!(
            got,
            Head {
                rotating_from: 0,
                rotate_cursor: 0,
                alloc: vec![],
                ..h
            }
        );
    }

    #[test]
    fn layout_2_decodes_with_no_allocators() {
        let h = sample();
        let mut b = Head {
            alloc: vec![],
            ..h.clone()
        }
        .encode();
        b[..2].copy_from_slice(&2u16.to_le_bytes());
        b.truncate(b.len() - 4); // layout 2 ends with the leaves
        let got = Head::decode(&b).unwrap();
        assert_eq!(got, Head { alloc: vec![], ..h });
    }

    #[test]
    fn unknown_layouts_are_refused() {
        for v in [0u16, 5, 0xffff] {
            let mut b = sample().encode();
            b[..2].copy_from_slice(&v.to_le_bytes());
            assert_eq!(Head::decode(&b), Err(FormatError::Version(v)));
        }
        // A layout-2 head cut short inside the rotation fields is truncated, not misread.
        let b = sample().encode();
        assert!(Head::decode(&b[..80]).is_err());
    }
}
