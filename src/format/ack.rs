//! Key acknowledgements (`account/acks/<device>`): for each category a device has open,
//! the oldest key version it may still need, signed by that device. A rotation destroys
//! an old key version only once every other trusted device's acknowledgement is past it
//! (FORMAT.md §14b), so no device is left with data under a key that is gone. It also
//! says when the device last had everything published (for `cirrus gc`) and which head
//! counters it knows the store has (so a store withholding a head is caught), the gc
//! epoch it had caught up with (`format::gc_marks`), and up to which epoch a merge of it
//! may have named marked packs again.

use super::codec::{FormatError, Reader, Writer};

/// Layout 2 (written): layout 1 plus the gc epoch after `published`.
pub const ACK_MAGIC: &[u8; 4] = b"CRA2";
/// Layout 1 (read only): no gc epoch.
pub const ACK_MAGIC_V1: &[u8; 4] = b"CRA1";
pub const ACK_SIGN_DOMAIN: &str = crate::crypto::domains::SIGN_ACK;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub account_id: [u8; 16],
    /// The signing key of the device that wrote it.
    pub device: [u8; 32],
    /// Unix seconds when it was written (shown to the user; a replayed older ack only
    /// holds keys longer, since floors never go down).
    pub written: u64,
    /// Unix seconds when the device last had every head published (its journal held
    /// none; 0: not yet): what it builds on since then is in the store's heads, which
    /// `cirrus gc` reads.
    pub published: u64,
    /// The gc epoch (`format::gc_marks`) the device read at the start of a poll that then
    /// ended with nothing of it unpublished: every pack gc marked in that epoch or before
    /// is named by no edit of the device that the store's heads do not hold. `None`: a
    /// layout-1 acknowledgement, which counts as epoch 0 (holds every marked pack).
    pub gc_epoch: Option<u64>,
    /// Layout 2: marks of this gc epoch or earlier may name packs that a merge of the
    /// device published again after they were marked (0: none); gc marks them again in
    /// a new epoch. Never lowered. Not encoded in layout 1 (reads as 0).
    pub gc_revived: u64,
    /// (category id, oldest key version the device may still need), sorted by id. A
    /// category not listed is not open on the device.
    pub floors: Vec<(u32, u32)>,
    /// (category id, highest head counter the device knows the store has), sorted by
    /// id: another device served an older head than that is being lied to.
    pub heads: Vec<(u32, u64)>,
}

impl Ack {
    /// The bytes the signature covers (everything before it).
    pub fn body(&self) -> Vec<u8> {
        // The layout follows the field, so a layout-1 ack read back re-encodes to the very
        // bytes its signature covers.
        let mut w = Writer::new();
        w.raw(match self.gc_epoch {
            Some(_) => ACK_MAGIC,
            None => ACK_MAGIC_V1,
        })
        .raw(&self.account_id)
        .raw(&self.device)
        .u64(self.written)
        .u64(self.published);
        if let Some(e) = self.gc_epoch {
            w.u64(e).u64(self.gc_revived);
        }
        w.u32(self.floors.len() as u32);
        for (c, v) in &self.floors {
            w.u32(*c).u32(*v);
        }
        w.u32(self.heads.len() as u32);
        for (c, n) in &self.heads {
            w.u32(*c).u64(*n);
        }
        w.finish()
    }

    pub fn encode(&self, sig: &[u8; 64]) -> Vec<u8> {
        let mut b = self.body();
        b.extend_from_slice(sig);
        b
    }

    /// The ack and its signature (not checked here: the account layer knows the keys).
    pub fn decode(obj: &[u8]) -> Result<(Ack, [u8; 64]), FormatError> {
        let Some(cut) = obj.len().checked_sub(64) else {
            return Err(FormatError::Truncated {
                at: obj.len(),
                needed: 64 - obj.len(),
            });
        };
        let (body, sig) = obj.split_at(cut);
        let mut r = Reader::new(body);
        let layout2 = match r.take(4)? {
            m if m == ACK_MAGIC => true,
            m if m == ACK_MAGIC_V1 => false,
            _ => return Err(FormatError::Invalid("not a key acknowledgement")),
        };
        let account_id: [u8; 16] = r
            .take(16)?
            .try_into()
            .map_err(|_| FormatError::Invalid("account id"))?;
        let device = r.hash()?;
        let written = r.u64()?;
        let published = r.u64()?;
        let (gc_epoch, gc_revived) = if layout2 {
            (Some(r.u64()?), r.u64()?)
        } else {
            (None, 0)
        };
        let n = r.count(8)?;
        let mut floors = Vec::with_capacity(n);
        for _ in 0..n {
            floors.push((r.u32()?, r.u32()?));
        }
        let n = r.count(12)?;
        let mut heads = Vec::with_capacity(n);
        for _ in 0..n {
            heads.push((r.u32()?, r.u64()?));
        }
        r.end()?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| FormatError::Invalid("signature"))?;
        Ok((
            Ack {
                account_id,
                device,
                written,
                published,
                gc_epoch,
                gc_revived,
                floors,
                heads,
            },
            sig,
        ))
    }

    /// Whether the device may still need key `version` of `category`. A category it
    /// does not list (not open there, or added since) counts as needed: keeping a key
    /// longer is safe, destroying it early is not.
    pub fn needs(&self, category: u32, version: u32) -> bool {
        self.floors
            .iter()
            .find(|(c, _)| *c == category)
            .is_none_or(|(_, floor)| *floor <= version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_what_it_needs() {
        let a = Ack {
            account_id: [7; 16],
            device: [9; 32],
            written: 1_800_000_000,
            published: 1_799_999_000,
            gc_epoch: Some(4),
            gc_revived: 3,
            floors: vec![(1, 2), (5, 1)],
            heads: vec![(1, 40), (5, 3)],
        };
        let obj = a.encode(&[3; 64]);
        let (b, sig) = Ack::decode(&obj).unwrap();
        assert_eq!(b, a);
        assert_eq!(sig, [3; 64]);
        assert!(a.needs(1, 2) && a.needs(1, 7));
        assert!(!a.needs(1, 1), "below its floor");
        assert!(a.needs(2, 1), "a category it does not list");
        assert!(Ack::decode(&obj[..obj.len() - 1]).is_err());
        let mut bad = obj.clone();
        bad[0] = b'X';
        assert!(Ack::decode(&bad).is_err());
        assert!(Ack::decode(&[0; 10]).is_err());
    }

    #[test]
    fn a_layout_1_ack_reads_as_epoch_none_and_re_encodes_to_its_own_bytes() {
        let a = Ack {
            account_id: [7; 16],
            device: [9; 32],
            written: 1_800_000_000,
            published: 1_799_999_000,
            gc_epoch: None,
            gc_revived: 0,
            floors: vec![(1, 2)],
            heads: vec![(1, 40)],
        };
        let obj = a.encode(&[3; 64]);
        assert_eq!(&obj[..4], b"CRA1");
        // 4 + 16 + 32 + 8 + 8, then the floors count: no epoch in layout 1.
        assert_eq!(obj[68..72], 1u32.to_le_bytes());
        let (b, _) = Ack::decode(&obj).unwrap();
        assert_eq!(b.gc_epoch, None);
        assert_eq!(b.encode(&[3; 64]), obj, "the signed bytes are unchanged");
        let v2 = Ack {
            gc_epoch: Some(0x0102),
            gc_revived: 7,
            ..a
        }
        .encode(&[3; 64]);
        assert_eq!(&v2[..4], b"CRA2");
        assert_eq!(v2[68..76], 0x0102u64.to_le_bytes());
        assert_eq!(v2[76..84], 7u64.to_le_bytes());
        assert_eq!(v2.len(), obj.len() + 16);
    }
}
