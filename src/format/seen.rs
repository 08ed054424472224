//! The plaintext of the device's record of what it has seen (`device/seen`): the highest
//! table/manifest counter with the accepted manifest's body hash, and the highest head of
//! each category. Sealed by the home (context DeviceState); FORMAT.md §6 and §11.6.

use super::codec::{FormatError, Reader, Writer};
use std::collections::BTreeMap;

/// Bytes of one head entry: category u32, counter u64, head-object hash.
const ENTRY_LEN: usize = 4 + 8 + 32;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeenRecord {
    /// Counter of the highest category table / account manifest seen.
    pub table: u64,
    /// Category (or a reserved key: `category | 2^31` the remote witness, `2^30 | slot`
    /// an acknowledgement's `written`) → (counter, hash), ascending.
    pub heads: BTreeMap<u32, (u64, [u8; 32])>,
    /// BLAKE3 of the manifest body accepted at `table`; zero until the account has a
    /// manifest. Once set, an account without a manifest is a downgrade.
    pub manifest: [u8; 32],
}

impl SeenRecord {
    /// `table u64 | count u32 | (category u32 | counter u64 | hash 32)* | manifest 32`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.table).u32(self.heads.len() as u32);
        for (c, (n, h)) in &self.heads {
            w.u32(*c).u64(*n).raw(h);
        }
        w.raw(&self.manifest);
        w.finish()
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(b);
        let table = r.u64()?;
        let n = r.count(ENTRY_LEN)?;
        let mut heads = BTreeMap::new();
        for _ in 0..n {
            let c = r.u32()?;
            let counter = r.u64()?;
            let h = r.hash()?;
            heads.insert(c, (counter, h));
        }
        // Written since manifests exist; older records end here. Anything else after the
        // entries is damage, not a record without a manifest hash.
        let manifest = match r.remaining() {
            0 => [0; 32],
            32 => r.hash()?,
            _ => return Err(FormatError::Trailing),
        };
        Ok(SeenRecord {
            table,
            heads,
            manifest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_records_from_before_manifests() {
        let mut s = SeenRecord {
            table: 9,
            manifest: [5; 32],
            ..Default::default()
        };
        s.heads.insert(3, (12, [1; 32]));
        s.heads.insert(3 | 1 << 31, (11, [2; 32]));
        let b = s.encode();
        assert_eq!(b.len(), 8 + 4 + 2 * ENTRY_LEN + 32);
        assert_eq!(SeenRecord::decode(&b).unwrap(), s);
        let old = SeenRecord::decode(&b[..b.len() - 32]).unwrap();
        assert_eq!(old.manifest, [0; 32]);
        assert_eq!(old.heads, s.heads);
        // A record cut inside its manifest hash, or with bytes after it, is damage.
        for bad in [
            &b[..b.len() - 1],
            &b[..b.len() - 31],
            &[&b[..], &[0]].concat()[..],
        ] {
            assert_eq!(SeenRecord::decode(bad), Err(FormatError::Trailing));
        }
    }
}
