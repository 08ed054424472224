//! The code that joins a new device to an account: 16 random Crockford base32 symbols
//! (80 bits) the new device shows and the person types on a trusted device. It is a
//! shared secret, not a hash of public keys: the join request carries a MAC under it (so
//! the approving device knows the keys it approves are the new device's) and the
//! approval carries one back (so the new device knows which manifest a device that saw the
//! code vouched for). A server sees neither the code nor anything it could search it from
//! in less than 2^80 work.

use super::recovery::{canonical_symbols, grouped4, random_symbols};
use crate::crypto::{self, CryptoError, SecretKey};
use zeroize::Zeroizing;

pub const SYMBOLS: usize = 16;

pub struct JoinCode(Zeroizing<Vec<u8>>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinCodeError {
    #[error("an approval code has {SYMBOLS} letters and digits (as XXXX-XXXX-XXXX-XXXX); got {0}")]
    WrongLength(usize),
    #[error("{0:?} cannot be in an approval code")]
    BadCharacter(char),
}

impl JoinCode {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(JoinCode(random_symbols(SYMBOLS)?))
    }

    /// What the person typed: any case, dashes and spaces ignored, I/L read as 1, O as 0.
    pub fn parse(input: &str) -> Result<Self, JoinCodeError> {
        let s = canonical_symbols(input).map_err(JoinCodeError::BadCharacter)?;
        if s.len() != SYMBOLS {
            return Err(JoinCodeError::WrongLength(s.len()));
        }
        Ok(JoinCode(s))
    }

    pub fn grouped(&self) -> Zeroizing<String> {
        grouped4(&self.0)
    }

    /// The MAC key both sides derive from the code.
    pub fn key(&self) -> SecretKey {
        self.key_for(crate::crypto::domains::JOIN_CODE)
    }

    /// The MAC key of a code of the same shape used for something else (a web sign-in
    /// code, `keys::web`): another derive context, so the two never share a key.
    pub(crate) fn key_for(&self, context: &str) -> SecretKey {
        crypto::derive_key(context, &[&self.0])
    }
}

/// MAC under the join key over a domain and message (BLAKE3 keyed).
pub fn mac(key: &SecretKey, domain: &str, msg: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key.expose());
    h.update(&(domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    h.update(msg);
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_typos_change_the_key() {
        let c = JoinCode::generate().unwrap();
        let g = c.grouped();
        assert_eq!(g.len(), 19);
        let back = JoinCode::parse(&g.to_lowercase()).unwrap();
        assert_eq!(back.key().expose(), c.key().expose());
        let mut typo = g.as_bytes().to_vec();
        typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
        let t = JoinCode::parse(std::str::from_utf8(&typo).unwrap()).unwrap();
        assert_ne!(t.key().expose(), c.key().expose());
        assert_eq!(
            JoinCode::parse("1234").err(),
            Some(JoinCodeError::WrongLength(4))
        );
        assert!(
            JoinCode::parse("UUUU-UUUU-UUUU-UUUU").is_err(),
            "U is not Crockford"
        );
        let k = c.key();
        assert_ne!(mac(&k, "a", b"x"), mac(&k, "b", b"x"));
    }
}
