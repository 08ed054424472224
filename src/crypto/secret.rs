//! The one type that holds key material: zeroized on drop, no `Debug`, no `Clone`.

use zeroize::Zeroizing;

/// A 256-bit secret key. Read it only through [`SecretKey::expose`], so every use of raw
/// key bytes is visible at the call site.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    pub(crate) fn from_hash(h: blake3::Hash) -> Self {
        SecretKey(Zeroizing::new(*h.as_bytes()))
    }

    /// Parses a key from a slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// An explicit copy, for the rare places (handing a key to another thread's owner)
    /// where two owners are needed. Deliberately not `Clone`.
    pub fn duplicate(&self) -> Self {
        Self::from_bytes(*self.0)
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}
