//! What a sealed blob is, bound into its MAC so a blob cannot be replayed as another.

use super::FORMAT_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjKind {
    Chunk = 1,
    Leaf = 2,
    Head = 3,
    CategoryKey = 4,
    CategoryTable = 5,
    AccountKey = 6,
    DeviceState = 7,
    /// A device's own key pairs, sealed under its device key.
    DeviceIdentity = 8,
    /// The device's keyring of category keys.
    Keyring = 9,
    /// The account key sealed to a device or a recovery method (index = key version).
    AccountKeyGrant = 10,
    /// One segment of an encrypted export archive (index = segment number, inode = 1 on
    /// the final segment, else 0; see `format::export`).
    ExportSegment = 11,
    /// This device's remembered-device token for the key service.
    ServerToken = 12,
    /// A category key released by a trusted device to one web session (index = key
    /// version; `keys::web`).
    WebRelease = 13,
    /// A change made on the web, waiting in the category's inbox (index = its sequence
    /// number; `format::web_change`).
    WebChange = 14,
    /// One data part of an upload made on the web (inode = the change's sequence number,
    /// index = the part's number).
    WebPart = 15,
    /// The sectors a small write changed in a stored chunk (`format::patch`; inode and
    /// index are the chunk's, like `Chunk`).
    Patch = 16,
}

/// The sealing context: format version, object kind, category, inode and index. Fields that
/// do not apply to a kind are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub kind: ObjKind,
    pub version: u16,
    pub category: u32,
    pub ino: u64,
    pub index: u64,
}

impl Context {
    pub fn new(kind: ObjKind, category: u32, ino: u64, index: u64) -> Self {
        Context {
            kind,
            version: FORMAT_VERSION,
            category,
            ino,
            index,
        }
    }

    pub fn chunk(category: u32, ino: u64, index: u64) -> Self {
        Self::new(ObjKind::Chunk, category, ino, index)
    }

    pub fn patch(category: u32, ino: u64, index: u64) -> Self {
        Self::new(ObjKind::Patch, category, ino, index)
    }

    /// 31 bytes: "cirrus" | version u16 | kind u8 | category u32 | ino u64 | index u64.
    pub fn to_bytes(&self) -> [u8; 31] {
        let mut b = [0u8; 31];
        b[..6].copy_from_slice(crate::crypto::domains::STORE_CONTEXT_MAGIC);
        b[6..8].copy_from_slice(&self.version.to_le_bytes());
        b[8] = self.kind as u8;
        b[9..13].copy_from_slice(&self.category.to_le_bytes());
        b[13..21].copy_from_slice(&self.ino.to_le_bytes());
        b[21..29].copy_from_slice(&self.index.to_le_bytes());
        // two reserved bytes, zero
        b
    }
}
