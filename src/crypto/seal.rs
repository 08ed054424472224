//! The sealing construction used for every stored byte (chunks, metadata, heads, wrapped
//! keys): fresh random nonce → BLAKE3 derives (XTS key pair, MAC key) from key and nonce →
//! AES-256-XTS over 4 KiB sectors → BLAKE3 keyed MAC over (context, header, ciphertext).
//! Layout and rationale: docs/FORMAT.md, "Sealed blob".

use super::xts::{SECTOR, Xts};
use super::{CryptoError, OsRandom, RandomSource, SecretKey};
use zeroize::Zeroizing;

/// Which protection a sealed blob carries. The byte is authenticated and the opener states
/// the suite it expects, so a blob cannot be downgraded to MAC-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// AES-256-XTS confidentiality + BLAKE3 MAC (`standard` and `e2e` classes, local state).
    XtsBlake3 = 1,
    /// BLAKE3 MAC only, body stored as plaintext (`transit` class: the server reads it).
    MacOnly = 2,
}

const NONCE: usize = 16;
const HEADER: usize = 1 + NONCE + 4;
const TAG: usize = 32;
/// Bytes a sealed blob adds to its plaintext (excluding XTS padding of tiny tails).
pub const SEAL_OVERHEAD: usize = HEADER + TAG;

/// Length of the XTS body for a plaintext of `len` bytes. XTS needs every sector to hold at
/// least one 16-byte block, so a short blob or a short last sector is zero-padded; the true
/// length is in the authenticated header.
pub fn padded_len(len: usize) -> usize {
    if len < 16 {
        return 16;
    }
    let tail = len % SECTOR;
    if tail != 0 && tail < 16 {
        len + (16 - tail)
    } else {
        len
    }
}

struct SubKeys {
    k1: Zeroizing<[u8; 32]>,
    k2: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

fn subkeys(key: &SecretKey, suite: Suite, nonce: &[u8; NONCE]) -> SubKeys {
    let mut h = blake3::Hasher::new_derive_key(super::domains::SEAL_SUBKEYS);
    h.update(&[suite as u8]);
    h.update(key.expose());
    h.update(nonce);
    let mut out = Zeroizing::new([0u8; 96]);
    h.finalize_xof().fill(&mut out[..]);
    let mut k = SubKeys {
        k1: Zeroizing::new([0; 32]),
        k2: Zeroizing::new([0; 32]),
        mac: Zeroizing::new([0; 32]),
    };
    k.k1.copy_from_slice(&out[..32]);
    k.k2.copy_from_slice(&out[32..64]);
    k.mac.copy_from_slice(&out[64..]);
    k
}

fn mac(mac_key: &[u8; 32], context: &[u8], header_and_body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(mac_key);
    h.update(&(context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(header_and_body);
    *h.finalize().as_bytes()
}

/// Seals `plaintext` under `key`, bound to `context` (which the opener must supply again).
pub fn seal(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal_with(&mut OsRandom, key, suite, context, plaintext)
}

/// [`seal`] drawing its nonce from `rng`.
pub fn seal_with(
    rng: &mut dyn RandomSource,
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE];
    rng.fill(&mut nonce)?;
    Ok(seal_with_nonce(key, suite, context, plaintext, &nonce))
}

/// [`seal`] with a caller-chosen nonce. Only for known-answer tests: a nonce must never be
/// reused under one key.
pub fn seal_with_nonce(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE],
) -> Vec<u8> {
    let body_len = match suite {
        Suite::XtsBlake3 => padded_len(plaintext.len()),
        Suite::MacOnly => plaintext.len(),
    };
    let mut out = Vec::with_capacity(HEADER + body_len + TAG);
    append_sealed(key, suite, context, plaintext, nonce, &mut out);
    out
}

/// Seals with a fresh nonce straight onto the end of `out` (a pack being filled), saving
/// an allocation and a copy per blob. Returns the blob's offset in `out`.
pub fn seal_append(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, CryptoError> {
    seal_append_with(&mut OsRandom, key, suite, context, plaintext, out)
}

/// [`seal_append`] drawing its nonce from `rng`.
pub fn seal_append_with(
    rng: &mut dyn RandomSource,
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, CryptoError> {
    let mut nonce = [0u8; NONCE];
    rng.fill(&mut nonce)?;
    let start = out.len();
    append_sealed(key, suite, context, plaintext, &nonce, out);
    Ok(start)
}

fn append_sealed(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE],
    out: &mut Vec<u8>,
) {
    assert!(
        plaintext.len() <= u32::MAX as usize,
        "sealed blobs are limited to 4 GiB"
    );
    let body_len = match suite {
        Suite::XtsBlake3 => padded_len(plaintext.len()),
        Suite::MacOnly => plaintext.len(),
    };
    let start = out.len();
    out.reserve(HEADER + body_len + TAG);
    out.push(suite as u8);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&(plaintext.len() as u32).to_le_bytes());
    out.extend_from_slice(plaintext);
    out.resize(start + HEADER + body_len, 0);
    let k = subkeys(key, suite, nonce);
    if suite == Suite::XtsBlake3 {
        Xts::new(&k.k1, &k.k2).encrypt_area(&mut out[start + HEADER..], 0);
    }
    let tag = mac(&k.mac, context, &out[start..]);
    out.extend_from_slice(&tag);
}

/// The authentication tag of a sealed blob (its last 32 bytes): what parents record to pin
/// one exact version of a child.
pub fn peek_tag(sealed: &[u8]) -> Option<[u8; 32]> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    sealed[sealed.len() - TAG..].try_into().ok()
}

/// Checks the tag in constant time and only then decrypts. Never returns unauthenticated
/// bytes.
pub fn open(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (len, body_len, k) = verify(key, suite, context, sealed)?;
    let mut body = sealed[HEADER..HEADER + body_len].to_vec();
    if suite == Suite::XtsBlake3 {
        Xts::new(&k.k1, &k.k2).decrypt_area(&mut body, 0);
    }
    body.truncate(len);
    Ok(body)
}

/// [`open`] where the sealed bytes lie: checks the MAC, then decrypts the body in place and
/// returns the plaintext's range in `sealed`. Nothing is changed unless the MAC holds, so
/// a caller may try another key on the same bytes. Spares a buffer per blob on the read
/// path (docs/BENCH.md, profiles).
pub fn open_in_place(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    sealed: &mut [u8],
) -> Result<std::ops::Range<usize>, CryptoError> {
    let (len, body_len, k) = verify(key, suite, context, sealed)?;
    if suite == Suite::XtsBlake3 {
        Xts::new(&k.k1, &k.k2).decrypt_area(&mut sealed[HEADER..HEADER + body_len], 0);
    }
    Ok(HEADER..HEADER + len)
}

/// What it takes to open single sectors of one blob whose MAC was checked as a whole: its
/// XTS keys and a digest of each ciphertext sector, taken right after the check. A random
/// read of 4 KiB then fetches, checks and decrypts one sector instead of the whole
/// 256 KiB blob (docs/BENCH.md, "fio randread"). Lives in memory only; the digests are
/// keyed with a key derived from the blob's MAC key, so the store cannot aim at them.
pub struct SectorIndex {
    suite: Suite,
    k1: Zeroizing<[u8; 32]>,
    k2: Zeroizing<[u8; 32]>,
    digest_key: Zeroizing<[u8; 32]>,
    /// Plaintext length.
    len: usize,
    /// Body length (the plaintext padded for XTS).
    body_len: usize,
    digests: Vec<[u8; SECTOR_DIGEST]>,
}

/// Bytes kept per sector: 128 bits. Other bytes with the digest of given ones cost 2^128
/// tries; two colliding sectors chosen together 2^64, but only to someone holding the
/// digest key, derived from the blob's MAC key: a holder of the category key, who can
/// seal any blob anyway.
const SECTOR_DIGEST: usize = 16;

/// The position needs no binding: sector `i` is only ever compared with the digest of the
/// bytes that were at `i`, so bytes from elsewhere pass only if they are the same bytes.
/// One call over the aligned sector lets BLAKE3 hash its four 1 KiB chunks side by side
/// (a prefix made it fall back to one chunk at a time: 4 of the 7 µs of a sector read).
fn sector_digest(key: &[u8; 32], sector: &[u8]) -> [u8; SECTOR_DIGEST] {
    let mut d = [0u8; SECTOR_DIGEST];
    d.copy_from_slice(&blake3::keyed_hash(key, sector).as_bytes()[..SECTOR_DIGEST]);
    d
}

impl SectorIndex {
    /// Plaintext length of the blob.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this index holds, for the cache's bound, with what the cache spends per entry
    /// (its key, the `Arc`, the LRU node: about 128 bytes).
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.digests.len() * SECTOR_DIGEST + 128
    }

    /// The sectors holding `plain` (clipped to the plaintext): their range within the
    /// sealed blob, and the plaintext offset the first of them starts at. None when
    /// `plain` lies past the plaintext.
    pub fn sealed_range(
        &self,
        plain: std::ops::Range<usize>,
    ) -> Option<(std::ops::Range<usize>, usize)> {
        let end = plain.end.min(self.len);
        if plain.start >= end {
            return None;
        }
        let first = plain.start / SECTOR;
        let last = (end - 1) / SECTOR;
        let from = first * SECTOR;
        let to = ((last + 1) * SECTOR).min(self.body_len);
        Some((HEADER + from..HEADER + to, from))
    }

    /// Checks and decrypts in place the sectors fetched from [`SectorIndex::sealed_range`]
    /// (`at` is the plaintext offset it returned). Nothing unchecked is decrypted: every
    /// sector's digest must match first.
    pub fn open_sectors(&self, at: usize, part: &mut [u8]) -> Result<(), CryptoError> {
        if !at.is_multiple_of(SECTOR) || at + part.len() > self.body_len {
            return Err(CryptoError::Malformed);
        }
        let first = at / SECTOR;
        for (i, sector) in part.chunks(SECTOR).enumerate() {
            let full = ((first + i + 1) * SECTOR).min(self.body_len) - (first + i) * SECTOR;
            let want = self.digests.get(first + i).ok_or(CryptoError::Malformed)?;
            if sector.len() != full || !super::ct_eq(&sector_digest(&self.digest_key, sector), want)
            {
                return Err(CryptoError::BadTag);
            }
        }
        if self.suite == Suite::XtsBlake3 {
            Xts::new(&self.k1, &self.k2).decrypt_area(part, first as u128);
        }
        Ok(())
    }
}

/// [`open_in_place`] that also returns a [`SectorIndex`] of the blob, for reading single
/// sectors of it later. Costs one more hash pass over the blob.
pub fn open_indexed(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    sealed: &mut [u8],
) -> Result<(std::ops::Range<usize>, SectorIndex), CryptoError> {
    let (len, body_len, k) = verify(key, suite, context, sealed)?;
    let digest_key = Zeroizing::new(blake3::derive_key(
        super::domains::SECTOR_DIGEST_KEY,
        &k.mac[..],
    ));
    let body = &mut sealed[HEADER..HEADER + body_len];
    let digests = body
        .chunks(SECTOR)
        .map(|sector| sector_digest(&digest_key, sector))
        .collect();
    if suite == Suite::XtsBlake3 {
        Xts::new(&k.k1, &k.k2).decrypt_area(body, 0);
    }
    let index = SectorIndex {
        suite,
        k1: k.k1,
        k2: k.k2,
        digest_key,
        len,
        body_len,
        digests,
    };
    Ok((HEADER..HEADER + len, index))
}

/// Checks a sealed object's layout and MAC; returns the plaintext length, the body length
/// and the subkeys to decrypt with.
fn verify(
    key: &SecretKey,
    suite: Suite,
    context: &[u8],
    sealed: &[u8],
) -> Result<(usize, usize, SubKeys), CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Malformed);
    }
    if sealed[0] != suite as u8 {
        return Err(CryptoError::WrongSuite {
            expected: suite as u8,
            found: sealed[0],
        });
    }
    let nonce: [u8; NONCE] = sealed[1..1 + NONCE]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    let len_bytes: [u8; 4] = sealed[1 + NONCE..HEADER]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let body_len = match suite {
        Suite::XtsBlake3 => padded_len(len),
        Suite::MacOnly => len,
    };
    if sealed.len() != HEADER + body_len + TAG {
        return Err(CryptoError::Malformed);
    }
    let (authed, tag) = sealed.split_at(HEADER + body_len);
    let k = subkeys(key, suite, &nonce);
    let expect = blake3::Hash::from(mac(&k.mac, context, authed));
    // blake3::Hash compares in constant time.
    let got = blake3::Hash::from_slice(tag).map_err(|_| CryptoError::Malformed)?;
    if expect != got {
        return Err(CryptoError::BadTag);
    }
    Ok((len, body_len, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_in_place_agrees_with_open_and_leaves_a_refused_blob_as_it_was() {
        let key = SecretKey::from_bytes([7; 32]);
        let other = SecretKey::from_bytes([8; 32]);
        for suite in [Suite::XtsBlake3, Suite::MacOnly] {
            for len in [0usize, 5, 16, 4095, 4097, 262_144] {
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let sealed = seal_with_nonce(&key, suite, b"ctx", &plain, &[3; NONCE]);
                let mut buf = sealed.clone();
                let r = open_in_place(&key, suite, b"ctx", &mut buf).unwrap();
                assert_eq!(&buf[r], &plain[..]);
                assert_eq!(open(&key, suite, b"ctx", &sealed).unwrap(), plain);
                // A wrong key, a wrong context and a flipped byte: refused, untouched.
                let mut buf = sealed.clone();
                assert_eq!(
                    open_in_place(&other, suite, b"ctx", &mut buf),
                    Err(CryptoError::BadTag)
                );
                assert_eq!(
                    open_in_place(&key, suite, b"ctX", &mut buf),
                    Err(CryptoError::BadTag)
                );
                assert_eq!(buf, sealed);
                let mut bad = sealed.clone();
                let at = bad.len() - TAG - 1;
                bad[at] ^= 1;
                let copy = bad.clone();
                assert!(open_in_place(&key, suite, b"ctx", &mut bad).is_err());
                assert_eq!(bad, copy);
            }
        }
    }

    /// Every sector range of a blob read through its index gives the plaintext's bytes;
    /// a changed byte, a sector moved to another position or another blob's sector is
    /// refused, and nothing of a refused part is decrypted.
    #[test]
    fn sectors_read_through_the_index_agree_with_open_and_are_checked() {
        let key = SecretKey::from_bytes([7; 32]);
        for suite in [Suite::XtsBlake3, Suite::MacOnly] {
            for len in [0usize, 5, 16, 4095, 4097, 8192 + 7, 262_144] {
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let sealed = seal_with_nonce(&key, suite, b"ctx", &plain, &[3; NONCE]);
                let mut buf = sealed.clone();
                assert_eq!(
                    open_indexed(&key, suite, b"ctX", &mut buf).err(),
                    Some(CryptoError::BadTag)
                );
                assert_eq!(buf, sealed, "a refused blob is left as it was");
                let (r, index) = open_indexed(&key, suite, b"ctx", &mut buf).unwrap();
                assert_eq!(&buf[r], &plain[..]);
                assert_eq!(index.len(), len);
                let cuts = [0, 1, 15, 4095, 4096, 4097, 5000, 8191, 8192, len / 2, len];
                for &a in &cuts {
                    for &b in &cuts {
                        let (a, b) = (a.min(len), b.min(len));
                        let Some((range, at)) = index.sealed_range(a..b) else {
                            assert!(a >= b, "{a}..{b} of {len} has sectors");
                            continue;
                        };
                        assert!(at <= a && at % SECTOR == 0);
                        let mut part = sealed[range.clone()].to_vec();
                        index.open_sectors(at, &mut part).unwrap();
                        assert_eq!(&part[a - at..b - at], &plain[a..b], "{a}..{b} of {len}");
                        // One flipped bit anywhere in the part: refused, untouched.
                        let mut bad = sealed[range.clone()].to_vec();
                        let flip = bad.len() / 2;
                        bad[flip] ^= 0x10;
                        let copy = bad.clone();
                        assert_eq!(index.open_sectors(at, &mut bad), Err(CryptoError::BadTag));
                        assert_eq!(bad, copy);
                        // The same bytes presented as another position.
                        if part.len() <= SECTOR && len > 2 * SECTOR {
                            let mut moved = sealed[range.clone()].to_vec();
                            let other = if at == 0 { SECTOR } else { 0 };
                            assert!(index.open_sectors(other, &mut moved).is_err());
                        }
                        // Misaligned or too long: malformed.
                        let mut p = sealed[range.clone()].to_vec();
                        assert_eq!(
                            index.open_sectors(at + 1, &mut p),
                            Err(CryptoError::Malformed)
                        );
                    }
                }
                // Another blob (another nonce) under the same key: its sectors are refused
                // (MAC-only blobs of the same plaintext hold the same bytes).
                if len >= SECTOR && suite == Suite::XtsBlake3 {
                    let twin = seal_with_nonce(&key, suite, b"ctx", &plain, &[4; NONCE]);
                    let mut part = twin[HEADER..HEADER + SECTOR].to_vec();
                    assert_eq!(index.open_sectors(0, &mut part), Err(CryptoError::BadTag));
                }
            }
        }
    }
}
