//! The account-key file of a device home (`device/account.key`, and `.prev`): which
//! account-key version it holds and the sealed key, so the opener knows which context
//! (index = version) the wrap is bound to. FORMAT.md §11.6.

use super::{Context, ObjKind};

pub const ACCOUNT_KEY_MAGIC: &[u8; 4] = b"CRAK";
/// Magic and version: the bytes before the sealed key.
pub const ACCOUNT_KEY_HEADER: usize = 8;

/// A parsed account-key file: the version it holds, the context its seal is bound to, and
/// the sealed key (borrowed from the file's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountKeyFile<'a> {
    pub version: u32,
    /// Whether the file has the `CRAK` header (a home made before key versions has a
    /// bare seal of version 1).
    pub versioned: bool,
    pub sealed: &'a [u8],
}

impl AccountKeyFile<'_> {
    /// The context the seal was made under: index = version, except the bare layout of
    /// homes made before key versions, sealed with index 0.
    pub fn context(&self) -> Context {
        let index = if self.versioned {
            self.version as u64
        } else {
            0
        };
        Context::new(ObjKind::AccountKey, 0, 0, index)
    }
}

/// The context a version-`version` account key is sealed under in this file.
pub fn context(version: u32) -> Context {
    Context::new(ObjKind::AccountKey, 0, 0, version as u64)
}

/// `"CRAK" | version u32 | sealed`.
pub fn encode(version: u32, sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ACCOUNT_KEY_HEADER + sealed.len());
    out.extend_from_slice(ACCOUNT_KEY_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(sealed);
    out
}

/// Reads either layout: with the magic and something after the header, the versioned
/// one; otherwise the whole file is a bare seal of version 1. Never fails: whether the
/// seal opens decides whether the file is good.
pub fn decode(bytes: &[u8]) -> AccountKeyFile<'_> {
    if bytes.len() > ACCOUNT_KEY_HEADER && bytes.starts_with(ACCOUNT_KEY_MAGIC) {
        let mut v = [0u8; 4];
        v.copy_from_slice(&bytes[4..8]);
        AccountKeyFile {
            version: u32::from_le_bytes(v),
            versioned: true,
            sealed: &bytes[ACCOUNT_KEY_HEADER..],
        }
    } else {
        AccountKeyFile {
            version: 1,
            versioned: false,
            sealed: bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_decode_with_their_contexts() {
        let b = encode(7, b"sealed-bytes");
        let f = decode(&b);
        assert_eq!(
            (f.version, f.versioned, f.sealed),
            (7, true, &b"sealed-bytes"[..])
        );
        assert_eq!(f.context(), context(7));
        let bare = decode(b"no magic here");
        assert_eq!((bare.version, bare.versioned), (1, false));
        assert_eq!(bare.context().index, 0);
        // A header with nothing after it is not a versioned file.
        assert!(!decode(&encode(3, b"")).versioned);
    }
}
