//! The header of a write-back journal file (FORMAT.md §13): what object it holds, its
//! place in the write order, the remote version a head replaces, and where the object's
//! bytes start. The store's write-back layer does the file I/O and checks the name.

pub const JOURNAL_MAGIC: &[u8; 4] = b"CRJ1";
pub const KIND_OBJECT: u8 = 1;
pub const KIND_HEAD: u8 = 2;
/// Magic, kind, seq and name length: the bytes before the name.
pub const BEFORE_NAME: usize = 4 + 1 + 8 + 2;
/// Base flag, base and data length: the bytes between the name and the data.
pub const AFTER_NAME: usize = 1 + 32 + 8;
/// The BLAKE3 checksum after the data, over every byte before it.
pub const CHECKSUM_LEN: usize = 32;

/// A decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHeader {
    pub seq: u64,
    pub name: String,
    /// Heads only: the remote version this head replaces (`None`: there must be none).
    pub base: Option<Option<[u8; 32]>>,
    /// Length of the object's bytes.
    pub len: u64,
    /// Where the object's bytes start in the file (the header's length).
    pub data_offset: u64,
}

/// Why a journal file's header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalHeaderError {
    #[error("truncated header")]
    Truncated,
    #[error("not a journal file")]
    Magic,
    #[error("name too long")]
    NameTooLong,
    #[error("name is not UTF-8")]
    NameNotUtf8,
    #[error("bad base flag")]
    BaseFlag,
    #[error("length does not match the file")]
    Length,
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("an object entry with a base etag")]
    ObjectWithBase,
}

/// The longest header whose name is at most `max_name` bytes: a reader needs no more of
/// the file than this to decode it.
pub const fn max_header_len(max_name: usize) -> usize {
    BEFORE_NAME + max_name + AFTER_NAME
}

/// `magic | kind u8 | seq u64 | name_len u16 | name | base flag u8 | base 32 | len u64`.
/// `base`: `None` for an object; `Some(base)` for a head.
pub fn encode_header(seq: u64, name: &str, base: Option<Option<&[u8; 32]>>, len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(BEFORE_NAME + name.len() + AFTER_NAME);
    h.extend_from_slice(JOURNAL_MAGIC);
    h.push(if base.is_some() {
        KIND_HEAD
    } else {
        KIND_OBJECT
    });
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    // Always 33 bytes, so rewriting a slot's base never moves its data.
    match base {
        Some(Some(e)) => {
            h.push(1);
            h.extend_from_slice(e);
        }
        _ => {
            h.push(0);
            h.extend_from_slice(&[0; 32]);
        }
    }
    h.extend_from_slice(&len.to_le_bytes());
    h
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], JournalHeaderError> {
    let s = b.get(*at..*at + n).ok_or(JournalHeaderError::Truncated)?;
    *at += n;
    Ok(s)
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// Decodes the header at the start of `b` (the file's first bytes, at least the header)
/// for a file of `file_len` bytes, refusing names over `max_name` bytes before looking
/// at them.
pub fn decode_header(
    b: &[u8],
    file_len: u64,
    max_name: usize,
) -> Result<JournalHeader, JournalHeaderError> {
    let mut at = 0;
    if take(b, &mut at, 4)? != JOURNAL_MAGIC {
        return Err(JournalHeaderError::Magic);
    }
    let kind = take(b, &mut at, 1)?[0];
    let seq = u64::from_le_bytes(le(take(b, &mut at, 8)?));
    let name_len = u16::from_le_bytes(le(take(b, &mut at, 2)?)) as usize;
    if name_len > max_name {
        return Err(JournalHeaderError::NameTooLong);
    }
    let name = String::from_utf8(take(b, &mut at, name_len)?.to_vec())
        .map_err(|_| JournalHeaderError::NameNotUtf8)?;
    let flag = take(b, &mut at, 1)?[0];
    let etag: [u8; 32] = le(take(b, &mut at, 32)?);
    let etag = match flag {
        0 => None,
        1 => Some(etag),
        _ => return Err(JournalHeaderError::BaseFlag),
    };
    let len = u64::from_le_bytes(le(take(b, &mut at, 8)?));
    let data_offset = at as u64;
    if data_offset
        .checked_add(len)
        .and_then(|v| v.checked_add(CHECKSUM_LEN as u64))
        != Some(file_len)
    {
        return Err(JournalHeaderError::Length);
    }
    let base = match kind {
        KIND_OBJECT if etag.is_none() => None,
        KIND_OBJECT => return Err(JournalHeaderError::ObjectWithBase),
        KIND_HEAD => Some(etag),
        _ => return Err(JournalHeaderError::Kind(kind)),
    };
    Ok(JournalHeader {
        seq,
        name,
        base,
        len,
        data_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_fixed_offsets() {
        let h = encode_header(6, "heads/00000002", Some(Some(&[7; 32])), 5);
        assert_eq!(h.len(), BEFORE_NAME + 14 + AFTER_NAME);
        let got = decode_header(&h, h.len() as u64 + 5 + 32, 512).unwrap();
        assert_eq!(got.base, Some(Some([7; 32])));
        assert_eq!((got.seq, got.len, got.data_offset), (6, 5, h.len() as u64));
        let o = encode_header(1, "packs/ab/x", None, 0);
        let got = decode_header(&o, o.len() as u64 + 32, 512).unwrap();
        assert_eq!(got.base, None);
        assert_eq!(
            decode_header(&o, o.len() as u64 + 32, 4),
            Err(JournalHeaderError::NameTooLong)
        );
        assert_eq!(
            decode_header(&o[..o.len() - 1], 0, 512),
            Err(JournalHeaderError::Truncated)
        );
        // The base flag sits right after the name: an object entry claiming a base, or a
        // flag other than 0 and 1, is named as such.
        let flag = BEFORE_NAME + "packs/ab/x".len();
        let mut with_base = o.clone();
        with_base[flag] = 1;
        assert_eq!(
            decode_header(&with_base, o.len() as u64 + 32, 512),
            Err(JournalHeaderError::ObjectWithBase)
        );
        with_base[flag] = 2;
        assert_eq!(
            decode_header(&with_base, o.len() as u64 + 32, 512),
            Err(JournalHeaderError::BaseFlag)
        );
    }
}
