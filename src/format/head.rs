//! The head of a category: the root of its Merkle tree, with a monotonic counter and the
//! hash of the previous head so rollback and forks are detectable.

use super::codec::{FormatError, Reader, Writer};
use super::pack::BlobRef;

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
}

impl Head {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(super::FORMAT_VERSION)
            .u32(self.category)
            .u64(self.counter)
            .raw(&self.prev)
            .u32(self.key_version)
            .u64(self.next_ino)
            .u64(self.bytes)
            .u64(self.inodes)
            .u32(self.leaves.len() as u32);
        for (no, r) in &self.leaves {
            w.u64(*no);
            r.write(&mut w);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let category = r.u32()?;
        let counter = r.u64()?;
        let prev = r.hash()?;
        let key_version = r.u32()?;
        let next_ino = r.u64()?;
        let bytes_ = r.u64()?;
        let inodes = r.u64()?;
        let n = r.count(80)?;
        let mut leaves = Vec::with_capacity(n);
        for _ in 0..n {
            let no = r.u64()?;
            leaves.push((no, BlobRef::read(&mut r)?));
        }
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
