//! Stateless cryptographic primitives: one sealing construction (AES-256-XTS + BLAKE3 MAC),
//! key derivation and randomness. No I/O, no knowledge of files or stores.

pub mod domains;
mod seal;
mod secret;
pub mod xts;

pub use seal::{
    SEAL_OVERHEAD, SectorIndex, Suite, open, open_in_place, open_indexed, padded_len, peek_tag,
    seal, seal_append, seal_append_with, seal_with, seal_with_nonce,
};
pub use secret::SecretKey;

/// Errors of the crypto layer. Deliberately coarse: an attacker learns nothing from which
/// check failed, but the caller's log says which object it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed object is truncated or malformed")]
    Malformed,
    #[error("sealed object uses suite {found}, expected suite {expected} (downgrade or mix-up)")]
    WrongSuite { expected: u8, found: u8 },
    #[error("authentication failed (corrupted, tampered with, or opened with the wrong key)")]
    BadTag,
    #[error("operating system randomness unavailable: {0}")]
    Random(String),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// Where nonces and fresh keys come from. Production code uses [`OsRandom`] (what
/// [`seal`] and [`random_key`] call); the test vectors (tests/vectors.rs) inject
/// [`FixedRandom`] so a sealed object is reproducible byte for byte.
pub trait RandomSource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError>;
}

/// The operating system's CSPRNG.
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        random_bytes(buf)
    }
}

/// Given bytes, handed out in order; an error once they run out. Only for test vectors:
/// a nonce must never repeat under one key.
pub struct FixedRandom {
    bytes: Vec<u8>,
    at: usize,
}

impl FixedRandom {
    pub fn new(bytes: Vec<u8>) -> Self {
        FixedRandom { bytes, at: 0 }
    }
}

impl RandomSource for FixedRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CryptoError> {
        let end = self.at + buf.len();
        let src = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| CryptoError::Random("fixed random bytes exhausted".into()))?;
        buf.copy_from_slice(src);
        self.at = end;
        Ok(())
    }
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<SecretKey, CryptoError> {
    random_key_with(&mut OsRandom)
}

/// A fresh 256-bit key from `rng`.
pub fn random_key_with(rng: &mut dyn RandomSource) -> Result<SecretKey, CryptoError> {
    let mut k = [0u8; 32];
    rng.fill(&mut k)?;
    let key = SecretKey::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    Ok(key)
}

/// BLAKE3 `derive_key` over several inputs, each length-prefixed so that no two input lists
/// collide. `context` must be a hard-coded, globally unique, application-specific string.
pub fn derive_key(context: &str, parts: &[&[u8]]) -> SecretKey {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    SecretKey::from_hash(h.finalize())
}

/// Plain BLAKE3 hash of bytes (object names, head chaining). Not secret.
pub fn hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// Constant-time comparison of two byte strings (`subtle`); strings of different
/// lengths differ (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
