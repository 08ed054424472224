//! Byte layout of an export archive (`cirrus export`): the clear header of an encrypted one
//! (Argon2id salt and costs), the sealing context of its 1 MiB segments (position and
//! "last" flag, so segments cannot be reordered, dropped or cut off unnoticed), how a
//! reader tells it from a plain tar, and the PAX time text both kinds use. Pure functions:
//! no I/O and no cryptography (`crate::export` seals and opens). Spec: docs/FORMAT.md,
//! "Export archive".

use super::codec::{FormatError, Reader, Writer};
use super::{Context, ObjKind};

/// First bytes of an encrypted export.
pub const EXPORT_MAGIC: &[u8; 4] = b"CREX";
/// Version of the encrypted export layout written by this build.
pub const EXPORT_VERSION: u16 = 1;
pub const SALT_LEN: usize = 16;
/// magic 4 | version 2 | salt 16 | memory_kib 4 | time 4.
pub const EXPORT_HEADER_LEN: usize = 4 + 2 + SALT_LEN + 4 + 4;
/// Plaintext bytes per segment. Every segment but the last holds exactly this much.
pub const SEGMENT_SIZE: usize = 1 << 20;
/// Bytes sealing adds to a segment: suite 1, nonce 16, length 4, tag 32 (the crate's
/// `SEAL_OVERHEAD`, which a test checks). 1 MiB is a whole number of 4 KiB XTS sectors,
/// so a full segment gets no padding.
pub const SEGMENT_OVERHEAD: usize = 53;
/// Size of every sealed segment but the last.
pub const SEALED_SEGMENT_LEN: usize = SEGMENT_SIZE + SEGMENT_OVERHEAD;
/// Smallest sealed segment: an empty plaintext padded to one 16-byte block.
pub const MIN_SEALED_SEGMENT_LEN: usize = SEGMENT_OVERHEAD + 16;
/// Argon2id memory bounds in KiB. The upper one keeps a forged header from making a
/// reader allocate without limit; 4 GiB is far above any sensible cost.
pub const MIN_KDF_MEMORY_KIB: u32 = 8;
pub const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;
/// Argon2id time cost bounds (passes over the memory).
pub const MIN_KDF_TIME: u32 = 1;
pub const MAX_KDF_TIME: u32 = 100;
/// BLAKE3 `derive_key` context of the archive key (inputs: the Argon2id output, then the
/// whole header, so a changed salt, cost or version gives another key).
pub const KEY_CONTEXT: &str = crate::crypto::domains::EXPORT_ARCHIVE;
/// Tar block size: what a reader looks at to recognise a plain tar.
pub const TAR_BLOCK: usize = 512;

/// The clear header of an encrypted export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportHeader {
    pub salt: [u8; SALT_LEN],
    pub memory_kib: u32,
    pub time: u32,
}

/// Checks Argon2id costs against the bounds a reader accepts.
pub fn check_costs(memory_kib: u32, time: u32) -> Result<(), FormatError> {
    if !(MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB).contains(&memory_kib) {
        return Err(FormatError::Invalid(
            "Argon2id memory must be 8 KiB to 4 GiB (8 to 4194304 KiB)",
        ));
    }
    if !(MIN_KDF_TIME..=MAX_KDF_TIME).contains(&time) {
        return Err(FormatError::Invalid("Argon2id time cost must be 1 to 100"));
    }
    Ok(())
}

impl ExportHeader {
    pub fn encode(&self) -> [u8; EXPORT_HEADER_LEN] {
        let mut w = Writer::new();
        w.raw(EXPORT_MAGIC)
            .u16(EXPORT_VERSION)
            .raw(&self.salt)
            .u32(self.memory_kib)
            .u32(self.time);
        let mut out = [0u8; EXPORT_HEADER_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Decodes the first `EXPORT_HEADER_LEN` bytes of an archive (more is an error: the
    /// caller splits the header from the segments).
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != EXPORT_MAGIC {
            return Err(FormatError::Invalid(
                "not an encrypted Cirrus export (bad magic)",
            ));
        }
        let v = r.u16()?;
        if v == 0 || v > EXPORT_VERSION {
            return Err(FormatError::Version(v));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(r.take(SALT_LEN)?);
        let memory_kib = r.u32()?;
        let time = r.u32()?;
        r.end()?;
        check_costs(memory_kib, time)?;
        Ok(ExportHeader {
            salt,
            memory_kib,
            time,
        })
    }
}

/// The sealing context of segment `index`: kind ExportSegment, category 0, inode 1 on the
/// last segment and 0 on every other, index = segment number from 0. A segment opens only
/// at its own position and with its own "last" flag.
pub fn segment_context(index: u64, last: bool) -> Context {
    Context::new(ObjKind::ExportSegment, 0, last as u64, index)
}

/// Checks a sealed segment's size against its place: every segment but the last is exactly
/// `SEALED_SEGMENT_LEN` bytes; the last is between `MIN_SEALED_SEGMENT_LEN` and that.
pub fn check_sealed_len(len: usize, last: bool) -> Result<(), FormatError> {
    let ok = if last {
        (MIN_SEALED_SEGMENT_LEN..=SEALED_SEGMENT_LEN).contains(&len)
    } else {
        len == SEALED_SEGMENT_LEN
    };
    if ok {
        Ok(())
    } else {
        Err(FormatError::Invalid("sealed segment of the wrong size"))
    }
}

/// What a file holds, judged from its first bytes (up to one tar block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Starts with `CREX` and is not a valid tar header.
    Encrypted,
    /// A tar header with a valid checksum, or an all-zero block (an empty tar).
    Tar,
    Unknown,
}

/// Tells an encrypted export from a plain tar. A tar member could be named `CREX...`, so a
/// valid tar header checksum wins over the magic. The bytes of an encrypted export at that
/// place are sealed, so random: they almost never form a valid checksum.
pub fn detect(prefix: &[u8]) -> ArchiveKind {
    if prefix.len() >= TAR_BLOCK {
        let block = &prefix[..TAR_BLOCK];
        if block.iter().all(|b| *b == 0) || tar_checksum_ok(block) {
            return ArchiveKind::Tar;
        }
    }
    if prefix.starts_with(EXPORT_MAGIC) {
        ArchiveKind::Encrypted
    } else {
        ArchiveKind::Unknown
    }
}

/// POSIX tar header checksum: the unsigned sum of the block's bytes with the 8-byte
/// checksum field (offset 148) counted as spaces, stored as octal.
fn tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return false;
    }
    let mut stored: u32 = 0;
    for d in digits {
        stored = match stored.checked_mul(8) {
            Some(v) => v + (d - b'0') as u32,
            None => return false,
        };
    }
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|b| *b as u32)
        .sum::<u32>()
        + 8 * b' ' as u32;
    sum == stored
}

/// A time as a PAX `mtime` value: decimal seconds with up to nine fraction digits, negative
/// before 1970 (so `(-1, 500000000)` is `-0.5`).
pub fn pax_time(sec: i64, nsec: u32) -> String {
    let (neg, whole, frac) = if sec < 0 && nsec > 0 {
        // sec + nsec/1e9 = -((-sec - 1) + (1e9 - nsec)/1e9)
        (true, (-(sec + 1)) as u64, 1_000_000_000 - nsec)
    } else if sec < 0 {
        (true, sec.unsigned_abs(), 0)
    } else {
        (false, sec as u64, nsec)
    };
    let sign = if neg { "-" } else { "" };
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let f = format!("{frac:09}");
    format!("{sign}{whole}.{}", f.trim_end_matches('0'))
}

/// Parses a PAX time value (`[-]digits[.digits]`); fraction digits past nine are dropped.
pub fn parse_pax_time(s: &[u8]) -> Option<(i64, u32)> {
    let (neg, rest) = match s.split_first() {
        Some((b'-', r)) => (true, r),
        _ => (false, s),
    };
    let (int, frac) = match rest.iter().position(|b| *b == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut whole: i64 = 0;
    for d in int {
        whole = whole.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| (d - b'0') as u32);
    }
    if !neg {
        return Some((whole, nsec));
    }
    if nsec == 0 {
        Some((whole.checked_neg()?, 0))
    } else {
        Some((whole.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nsec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{self, SecretKey, Suite};

    fn header() -> ExportHeader {
        ExportHeader {
            salt: *b"0123456789abcdef",
            memory_kib: 8192,
            time: 2,
        }
    }

    #[test]
    fn header_layout_is_byte_exact_and_round_trips() {
        let h = header();
        let b = h.encode();
        assert_eq!(b.len(), 30);
        assert_eq!(&b[..4], b"CREX");
        assert_eq!(&b[4..6], &[1, 0]);
        assert_eq!(&b[6..22], b"0123456789abcdef");
        assert_eq!(&b[22..26], &8192u32.to_le_bytes());
        assert_eq!(&b[26..30], &2u32.to_le_bytes());
        assert_eq!(ExportHeader::decode(&b), Ok(h));
    }

    #[test]
    fn header_decode_rejects_damage_and_absurd_costs() {
        let good = header().encode();
        let mut bad_magic = good;
        bad_magic[0] = b'X';
        assert!(ExportHeader::decode(&bad_magic).is_err());
        for v in [0u16, 2] {
            let mut b = good;
            b[4..6].copy_from_slice(&v.to_le_bytes());
            assert_eq!(ExportHeader::decode(&b), Err(FormatError::Version(v)));
        }
        assert!(ExportHeader::decode(&good[..29]).is_err());
        let mut longer = good.to_vec();
        longer.push(0);
        assert_eq!(ExportHeader::decode(&longer), Err(FormatError::Trailing));
        for (m, t) in [(4, 1), (MAX_KDF_MEMORY_KIB + 1, 1), (8192, 0), (8192, 101)] {
            let h = ExportHeader {
                memory_kib: m,
                time: t,
                ..header()
            };
            assert!(ExportHeader::decode(&h.encode()).is_err(), "{m} {t}");
        }
    }

    #[test]
    fn segment_contexts_bind_kind_position_and_last_flag() {
        let c = segment_context(7, false).to_bytes();
        assert_eq!(c[8], 11, "kind ExportSegment");
        assert_eq!(&c[9..13], &[0; 4], "no category");
        assert_eq!(&c[13..21], &0u64.to_le_bytes());
        assert_eq!(&c[21..29], &7u64.to_le_bytes());
        assert_eq!(
            &segment_context(7, true).to_bytes()[13..21],
            &1u64.to_le_bytes()
        );
        let mut all = std::collections::HashSet::new();
        for i in 0..4 {
            for last in [false, true] {
                assert!(all.insert(segment_context(i, last).to_bytes()));
            }
        }
    }

    #[test]
    fn sizes_match_the_seal_construction() {
        assert_eq!(SEGMENT_OVERHEAD, crypto::SEAL_OVERHEAD);
        assert_eq!(crypto::padded_len(SEGMENT_SIZE), SEGMENT_SIZE);
        assert_eq!(
            crypto::padded_len(0) + SEGMENT_OVERHEAD,
            MIN_SEALED_SEGMENT_LEN
        );
        assert!(check_sealed_len(SEALED_SEGMENT_LEN, false).is_ok());
        assert!(check_sealed_len(SEALED_SEGMENT_LEN - 1, false).is_err());
        assert!(check_sealed_len(SEALED_SEGMENT_LEN, true).is_ok());
        assert!(check_sealed_len(MIN_SEALED_SEGMENT_LEN, true).is_ok());
        assert!(check_sealed_len(MIN_SEALED_SEGMENT_LEN - 1, true).is_err());
        assert!(check_sealed_len(SEALED_SEGMENT_LEN + 1, true).is_err());
    }

    /// The framing property itself: a segment opens only at its own index and with its own
    /// "last" flag, so swapping, dropping (index gap) or cutting off the final segment
    /// (the new last one carries flag 0) fails authentication.
    #[test]
    fn a_segment_opens_only_at_its_place() {
        let key = SecretKey::from_bytes([5; 32]);
        let seal = |i, last, p: &[u8]| {
            crypto::seal(
                &key,
                Suite::XtsBlake3,
                &segment_context(i, last).to_bytes(),
                p,
            )
            .unwrap()
        };
        let open = |i, last, s: &[u8]| {
            crypto::open(
                &key,
                Suite::XtsBlake3,
                &segment_context(i, last).to_bytes(),
                s,
            )
        };
        let s0 = seal(0, false, b"first");
        let s1 = seal(1, true, b"last");
        assert_eq!(open(0, false, &s0).unwrap(), b"first");
        assert_eq!(open(1, true, &s1).unwrap(), b"last");
        // swapped
        assert!(open(0, false, &s1).is_err() && open(1, true, &s0).is_err());
        // final segment dropped: segment 0 is now last
        assert!(open(0, true, &s0).is_err());
        // final segment moved up after a dropped middle one
        assert!(open(0, true, &s1).is_err());
        // another key (password) opens nothing
        let other = SecretKey::from_bytes([6; 32]);
        assert!(
            crypto::open(
                &other,
                Suite::XtsBlake3,
                &segment_context(0, false).to_bytes(),
                &s0
            )
            .is_err()
        );
    }

    #[test]
    fn detects_encrypted_tar_and_garbage() {
        let mut enc = header().encode().to_vec();
        enc.extend_from_slice(&[0xa5; 600]);
        assert_eq!(detect(&enc), ArchiveKind::Encrypted);
        assert_eq!(detect(&enc[..40]), ArchiveKind::Encrypted);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "CREX-named-file", &b"abc"[..])
            .unwrap();
        let t = b.into_inner().unwrap();
        assert_eq!(
            detect(&t),
            ArchiveKind::Tar,
            "a valid tar header wins over the magic"
        );
        assert_eq!(detect(&[0u8; 1024]), ArchiveKind::Tar);
        assert_eq!(detect(b"PK\x03\x04 something else"), ArchiveKind::Unknown);
        let mut broken = t.clone();
        broken[0] ^= 1;
        assert_eq!(detect(&broken), ArchiveKind::Unknown);
    }

    #[test]
    fn pax_times_round_trip_including_before_1970() {
        for (s, n, text) in [
            (0i64, 0u32, "0"),
            (1_700_000_000, 0, "1700000000"),
            (1_700_000_000, 123_456_789, "1700000000.123456789"),
            (5, 500_000_000, "5.5"),
            (-1, 500_000_000, "-0.5"),
            (-2, 0, "-2"),
            (-100, 1, "-99.999999999"),
        ] {
            assert_eq!(pax_time(s, n), text);
            assert_eq!(parse_pax_time(text.as_bytes()), Some((s, n)), "{text}");
        }
        assert_eq!(parse_pax_time(b"12.1234567891"), Some((12, 123_456_789)));
        for bad in [
            &b""[..],
            b"-",
            b".5",
            b"1.2.3",
            b"1e9",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_pax_time(bad), None, "{bad:?}");
        }
    }
}
