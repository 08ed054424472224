//! The data-recovery proof (`account/recovery-proofs/<counter>`): tags over the manifest
//! a data recovery publishes, each under one of the account's `standard` category keys.
//! Only the account's devices and the key service hold those keys, so a device that the
//! recovery dropped can check a tag with a key of its own and tell its user "removed by
//! data recovery", while a manifest forged by the store alone still reads as an attack
//! (FORMAT.md §11.10).

use super::codec::{FormatError, Reader, Writer};

pub const PROOF_MAGIC: &[u8; 4] = b"CRDR";
pub const PROOF_LAYOUT: u16 = 1;

/// The `derive_key` context of a tag.
pub const TAG_CONTEXT: &str = crate::crypto::domains::DATA_RECOVERY_PROOF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryProof {
    /// The counter of the manifest it vouches for.
    pub counter: u64,
    /// Unix seconds of the recovery, as the recovering device's clock said (covered by
    /// the tags: as trustworthy as the manifest itself, no more).
    pub at: u64,
    /// (category id, key version, tag), one per standard category recovered, for the key
    /// version the manifest before the recovery names.
    pub tags: Vec<(u32, u32, [u8; 32])>,
}

/// The bytes a tag covers: the account, the manifest (by the BLAKE3 of its body) and the
/// time, and which key made the tag (so a tag cannot be moved to another key's slot).
pub fn tag_input(
    account_id: &[u8; 16],
    counter: u64,
    at: u64,
    manifest_body_hash: &[u8; 32],
    category: u32,
    version: u32,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(PROOF_MAGIC)
        .raw(account_id)
        .u64(counter)
        .u64(at)
        .raw(manifest_body_hash)
        .u32(category)
        .u32(version);
    w.finish()
}

impl RecoveryProof {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(PROOF_MAGIC)
            .u16(PROOF_LAYOUT)
            .u64(self.counter)
            .u64(self.at)
            .u32(self.tags.len() as u32);
        for (c, v, t) in &self.tags {
            w.u32(*c).u32(*v).raw(t);
        }
        w.finish()
    }

    pub fn decode(obj: &[u8]) -> Result<RecoveryProof, FormatError> {
        let mut r = Reader::new(obj);
        if r.take(4)? != PROOF_MAGIC {
            return Err(FormatError::Invalid("not a data-recovery proof"));
        }
        let layout = r.u16()?;
        if layout != PROOF_LAYOUT {
            return Err(FormatError::Version(layout));
        }
        let counter = r.u64()?;
        let at = r.u64()?;
        let n = r.count(40)?;
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            tags.push((r.u32()?, r.u32()?, r.hash()?));
        }
        r.end()?;
        Ok(RecoveryProof { counter, at, tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = RecoveryProof {
            counter: 9,
            at: 1_800_000_000,
            tags: vec![(2, 1, [5; 32]), (7, 3, [6; 32])],
        };
        let obj = p.encode();
        assert_eq!(obj.len(), 4 + 2 + 8 + 8 + 4 + 2 * 40);
        assert_eq!(RecoveryProof::decode(&obj).unwrap(), p);
        assert!(RecoveryProof::decode(&obj[..obj.len() - 1]).is_err());
        let mut longer = obj.clone();
        longer.push(0);
        assert!(RecoveryProof::decode(&longer).is_err());
        let mut bad = obj;
        bad[0] = b'X';
        assert!(RecoveryProof::decode(&bad).is_err());
    }

    #[test]
    fn the_tag_input_names_its_key() {
        let a = tag_input(&[1; 16], 9, 100, &[2; 32], 3, 1);
        assert_ne!(a, tag_input(&[1; 16], 9, 100, &[2; 32], 4, 1));
        assert_ne!(a, tag_input(&[1; 16], 9, 100, &[2; 32], 3, 2));
        assert_ne!(a, tag_input(&[1; 16], 9, 101, &[2; 32], 3, 1));
    }
}
