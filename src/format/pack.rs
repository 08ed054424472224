//! Pack objects: immutable concatenations of sealed blobs, named by their BLAKE3 hash.
//! Layout: "CRPK" | version u16 | reserved u16 | blob* ; blobs are found through refs.

use super::codec::{FormatError, Reader, Writer};

pub const PACK_MAGIC: &[u8; 4] = b"CRPK";
pub const PACK_HEADER: usize = 8;

/// Where a sealed blob lives and which exact version it is: pack id, byte range and the
/// blob's MAC tag. Parents store refs, so swapping or rolling back a child is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub pack: [u8; 32],
    pub offset: u32,
    pub len: u32,
    pub tag: [u8; 32],
}

pub const BLOB_REF_LEN: usize = 72;

impl BlobRef {
    pub fn write(&self, w: &mut Writer) {
        w.raw(&self.pack)
            .u32(self.offset)
            .u32(self.len)
            .raw(&self.tag);
    }
    pub fn read(r: &mut Reader) -> Result<Self, FormatError> {
        Ok(BlobRef {
            pack: r.hash()?,
            offset: r.u32()?,
            len: r.u32()?,
            tag: r.hash()?,
        })
    }
}

pub fn pack_header() -> [u8; PACK_HEADER] {
    let mut h = [0u8; PACK_HEADER];
    h[..4].copy_from_slice(PACK_MAGIC);
    h[4..6].copy_from_slice(&super::FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a pack's header (used by fsck).
pub fn check_header(bytes: &[u8]) -> Result<u16, FormatError> {
    let mut r = Reader::new(bytes);
    if r.take(4)? != PACK_MAGIC {
        return Err(FormatError::Invalid("not a pack (bad magic)"));
    }
    let v = r.version()?;
    Ok(v)
}
