//! The recovery key a user writes down: 28 characters of Crockford base32 (no I, L, O, U),
//! shown in groups of four. 25 characters carry 125 random bits; two more are a BLAKE3
//! check over them and the last is a Luhn mod 32 check character, so every single mistyped
//! character (and most swaps of neighbours) is caught before any key derivation runs.
//! Issue 3 wraps the account key under it (Argon2id over `secret()`).

use crate::crypto::{CryptoError, random_bytes};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DATA: usize = 25;
/// Characters in a recovery key, without group separators.
pub const LEN: usize = 28;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryKeyError {
    #[error("a recovery key has {LEN} characters; this one has {0}")]
    WrongLength(usize),
    #[error("{0:?} is not a recovery-key character (letters and digits except I, L, O, U)")]
    BadCharacter(char),
    #[error("this recovery key has a typo (its check characters do not match)")]
    Checksum,
}

/// A recovery key in canonical form (28 upper-case symbols). Never printed by `Debug`.
pub struct RecoveryKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

fn value(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    // Crockford's decoding aliases: I and L read as 1, O as 0.
    let c = match c {
        b'I' | b'L' => b'1',
        b'O' => b'0',
        c => c,
    };
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u8)
}

fn blake_check(data: &[u8]) -> [u8; 2] {
    let h = blake3::derive_key(crate::crypto::domains::RECOVERY_KEY_CHECK, data);
    [
        ALPHABET[(h[0] & 31) as usize],
        ALPHABET[(h[1] & 31) as usize],
    ]
}

/// Luhn mod 32 over symbol values: the check symbol that makes the weighted sum 0 mod 32.
fn luhn_check(symbols: &[u8]) -> u8 {
    let mut factor = 2u32;
    let mut sum = 0u32;
    for s in symbols.iter().rev() {
        let v = value(*s).unwrap_or(0) as u32;
        let addend = factor * v;
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    ALPHABET[((32 - sum % 32) % 32) as usize]
}

/// What a person typed, as canonical upper-case symbols: any case, dashes and spaces
/// skipped, I/L read as 1 and O as 0. Err: the first character that cannot be a symbol.
pub(crate) fn canonical_symbols(input: &str) -> Result<Zeroizing<Vec<u8>>, char> {
    let mut s = Zeroizing::new(Vec::with_capacity(input.len()));
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let v = u8::try_from(c).ok().and_then(value).ok_or(c)?;
        s.push(ALPHABET[v as usize]);
    }
    Ok(s)
}

/// Symbols in groups of four joined by dashes, for showing to a person.
pub(crate) fn grouped4(symbols: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(symbols.len() + symbols.len() / 4));
    for (i, c) in symbols.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(*c as char);
    }
    out
}

/// `n` random symbols (one random byte & 31 each: simple and unbiased).
pub(crate) fn random_symbols(n: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut raw = Zeroizing::new(vec![0u8; n]);
    random_bytes(&mut raw[..])?;
    Ok(Zeroizing::new(
        raw.iter().map(|b| ALPHABET[(b & 31) as usize]).collect(),
    ))
}

impl RecoveryKey {
    /// A fresh random recovery key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self::finish(random_symbols(DATA)?))
    }

    fn finish(mut s: Zeroizing<Vec<u8>>) -> Self {
        let b = blake_check(&s);
        s.extend_from_slice(&b);
        let l = luhn_check(&s);
        s.push(l);
        RecoveryKey(s)
    }

    /// Parses what a user typed: any case, with or without dashes and spaces.
    pub fn parse(input: &str) -> Result<Self, RecoveryKeyError> {
        let s = canonical_symbols(input).map_err(RecoveryKeyError::BadCharacter)?;
        if s.len() != LEN {
            return Err(RecoveryKeyError::WrongLength(s.len()));
        }
        let expect = Self::finish(Zeroizing::new(s[..DATA].to_vec()));
        if !crate::crypto::ct_eq(&expect.0, &s) {
            return Err(RecoveryKeyError::Checksum);
        }
        Ok(expect)
    }

    /// For showing once to the user: seven groups of four, e.g. `ABCD-EFGH-...`.
    pub fn grouped(&self) -> Zeroizing<String> {
        grouped4(&self.0)
    }

    /// The secret part (the 25 random symbols), input to the key derivation.
    pub fn secret(&self) -> &[u8] {
        &self.0[..DATA]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_their_grouped_form() {
        for _ in 0..50 {
            let k = RecoveryKey::generate().unwrap();
            let shown = k.grouped();
            assert_eq!(shown.len(), LEN + 6);
            assert_eq!(shown.split('-').count(), 7);
            let back = RecoveryKey::parse(&shown).unwrap();
            assert_eq!(back.secret(), k.secret());
            // lower case, spaces and Crockford aliases are accepted
            let sloppy = shown.to_lowercase().replace('-', " ");
            assert_eq!(RecoveryKey::parse(&sloppy).unwrap().secret(), k.secret());
        }
    }

    #[test]
    fn aliases_read_as_their_digits() {
        let k = RecoveryKey::generate().unwrap();
        let s = String::from_utf8(k.0.to_vec()).unwrap();
        let aliased = s.replace('1', "l").replace('0', "o");
        assert_eq!(RecoveryKey::parse(&aliased).unwrap().secret(), k.secret());
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        for _ in 0..5 {
            let k = RecoveryKey::generate().unwrap();
            let s = k.0.to_vec();
            for pos in 0..LEN {
                for &c in ALPHABET.iter() {
                    if c == s[pos] {
                        continue;
                    }
                    let mut t = s.clone();
                    t[pos] = c;
                    let typed = String::from_utf8(t).unwrap();
                    assert_eq!(
                        RecoveryKey::parse(&typed).unwrap_err(),
                        RecoveryKeyError::Checksum,
                        "typo at {pos} not caught"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_length_and_characters_are_named() {
        assert_eq!(
            RecoveryKey::parse("ABCD").unwrap_err(),
            RecoveryKeyError::WrongLength(4)
        );
        assert_eq!(
            RecoveryKey::parse("ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-234U").unwrap_err(),
            RecoveryKeyError::BadCharacter('U')
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = RecoveryKey::generate().unwrap();
        assert_eq!(format!("{k:?}"), "RecoveryKey(<redacted>)");
    }
}
