//! The encrypted archive as a stream: a `Write` that cuts the tar stream into 1 MiB
//! segments and seals each as it fills, and a `Read` that verifies and opens one segment
//! at a time. At most one segment of plaintext and one sealed segment are in memory per
//! direction, whatever the archive's size, and no byte of a segment is released before
//! that whole segment has been authenticated.

use super::ExportError;
use crate::crypto::{self, CryptoError, SecretKey, Suite};
use crate::format::export::{
    ExportHeader, KEY_CONTEXT, SEALED_SEGMENT_LEN, SEGMENT_SIZE, check_sealed_len, segment_context,
};
use crate::keys::{self, KdfParams, Passcode};
use std::io::{self, BufRead, Read, Write};
use zeroize::Zeroizing;

/// The archive key: BLAKE3-derive(Argon2id(password, salt, costs), header). Deriving from
/// the header too means an edited salt, cost or version gives a key that opens nothing.
pub fn archive_key(password: &Passcode, header: &ExportHeader) -> Result<SecretKey, ExportError> {
    let a = keys::argon2id(
        password.expose().as_bytes(),
        &header.salt,
        KdfParams {
            memory_kib: header.memory_kib,
            time: header.time,
            lanes: 1,
        },
    )?;
    Ok(crypto::derive_key(KEY_CONTEXT, &[&a[..], &header.encode()]))
}

/// Seals everything written to it into segments on `inner`. Call [`SealingWriter::finish`]:
/// it seals the last segment with the "last" flag; without it the archive is truncated
/// and readers refuse it.
pub struct SealingWriter<W: Write> {
    inner: W,
    key: SecretKey,
    /// Plaintext of the segment being filled. A full buffer is sealed only when more data
    /// arrives, so the last segment is known to be last when it is sealed.
    plain: Zeroizing<Vec<u8>>,
    sealed: Vec<u8>,
    index: u64,
}

impl<W: Write> SealingWriter<W> {
    pub fn new(inner: W, key: SecretKey) -> Self {
        SealingWriter {
            inner,
            key,
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT_SIZE)),
            sealed: Vec::with_capacity(SEALED_SEGMENT_LEN),
            index: 0,
        }
    }

    fn seal_segment(&mut self, last: bool) -> io::Result<()> {
        self.sealed.clear();
        crypto::seal_append(
            &self.key,
            Suite::XtsBlake3,
            &segment_context(self.index, last).to_bytes(),
            &self.plain,
            &mut self.sealed,
        )
        .map_err(io::Error::other)?;
        self.inner.write_all(&self.sealed)?;
        self.plain.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last segment and returns the inner writer, flushed. Returns the number
    /// of segments too.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.seal_segment(true)?;
        self.inner.flush()?;
        Ok((self.inner, self.index))
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.plain.len() == SEGMENT_SIZE {
            self.seal_segment(false)?;
        }
        let n = buf.len().min(SEGMENT_SIZE - self.plain.len());
        self.plain.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Passes the flush on; a partly filled segment stays buffered (sealing it early would
    /// make a short segment in the middle, which readers refuse).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why an encrypted archive was refused. Carried inside `io::Error` through the tar reader
/// and recovered with [`fault_of`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentFault {
    #[error("wrong password or damaged archive")]
    WrongPasswordOrDamaged,
    #[error(
        "damaged archive: segment {0} failed authentication (altered, moved, or taken from \
         another archive)"
    )]
    Altered(u64),
    #[error("damaged archive: segment {0} is cut short or has the wrong size")]
    BadSize(u64),
    #[error(
        "the archive is truncated: it ends after segment {0}, and its final segment is missing"
    )]
    Truncated(u64),
    #[error("damaged archive: more data follows the final segment ({0})")]
    Trailing(u64),
    #[error("the archive is truncated: it holds a header but no segment")]
    Empty,
}

impl SegmentFault {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// The segment failure inside an I/O error, however deeply the tar reader wrapped it.
pub fn fault_of(e: &io::Error) -> Option<SegmentFault> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|i| i as &(dyn std::error::Error + 'static));
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<SegmentFault>() {
            return Some(f.clone());
        }
        // io::Error's own source() skips the error it wraps, so look inside it here.
        if let Some(inner) = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            cur = Some(inner);
            continue;
        }
        cur = err.source();
    }
    None
}

/// Reads the segments that follow the header from `inner`, and yields their plaintext
/// once each is verified. Returns end of file only after the final segment, and only if
/// nothing follows it.
pub struct OpeningReader<R: BufRead> {
    inner: R,
    key: SecretKey,
    sealed: Vec<u8>,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    index: u64,
    finished: bool,
    /// Once refused, always refused: a reader that retried could skip a bad segment.
    fault: Option<SegmentFault>,
}

impl<R: BufRead> OpeningReader<R> {
    pub fn new(inner: R, key: SecretKey) -> Self {
        OpeningReader {
            inner,
            key,
            sealed: Vec::with_capacity(SEALED_SEGMENT_LEN),
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            index: 0,
            finished: false,
            fault: None,
        }
    }

    /// Segments verified so far.
    pub fn segments(&self) -> u64 {
        self.index
    }

    /// True once the final segment was verified.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn open_at(&self, last: bool) -> Result<Vec<u8>, CryptoError> {
        crypto::open(
            &self.key,
            Suite::XtsBlake3,
            &segment_context(self.index, last).to_bytes(),
            &self.sealed,
        )
    }

    /// Reads, verifies and opens the next segment. Whether it is the last one is decided
    /// by what follows it in the file: nothing (last) or more bytes (not last).
    fn next_segment(&mut self) -> io::Result<Result<(), SegmentFault>> {
        self.sealed.clear();
        while self.sealed.len() < SEALED_SEGMENT_LEN {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(SEALED_SEGMENT_LEN - self.sealed.len());
            self.sealed.extend_from_slice(&buf[..n]);
            self.inner.consume(n);
        }
        let last = self.inner.fill_buf()?.is_empty();
        if self.sealed.is_empty() {
            return Ok(Err(match self.index {
                0 => SegmentFault::Empty,
                i => SegmentFault::Truncated(i - 1),
            }));
        }
        if check_sealed_len(self.sealed.len(), last).is_err() {
            return Ok(Err(SegmentFault::BadSize(self.index)));
        }
        let plain = match self.open_at(last) {
            Ok(p) => p,
            Err(CryptoError::BadTag) => {
                // Tell cut-off and appended-to archives apart from altered ones: the
                // segment opens with the other "last" flag.
                let other = self.open_at(!last).is_ok();
                return Ok(Err(match (other, last, self.index) {
                    (true, true, i) => SegmentFault::Truncated(i),
                    (true, false, i) => SegmentFault::Trailing(i),
                    (false, _, 0) => SegmentFault::WrongPasswordOrDamaged,
                    (false, _, i) => SegmentFault::Altered(i),
                }));
            }
            Err(_) => return Ok(Err(SegmentFault::BadSize(self.index))),
        };
        if !last && plain.len() != SEGMENT_SIZE {
            return Ok(Err(SegmentFault::BadSize(self.index)));
        }
        self.plain = Zeroizing::new(plain);
        self.pos = 0;
        self.index += 1;
        self.finished = last;
        Ok(Ok(()))
    }
}

impl<R: BufRead> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.fault {
            return Err(f.clone().into_io());
        }
        while self.pos == self.plain.len() {
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            if let Err(f) = self.next_segment()? {
                log::debug!("export archive refused: {f}");
                self.fault = Some(f.clone());
                return Err(f.into_io());
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::export::EXPORT_HEADER_LEN;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    fn seal_all(data: &[u8], pieces: usize) -> Vec<u8> {
        let mut w = SealingWriter::new(Vec::new(), key(1));
        // Uneven writes, so segment boundaries fall inside writes.
        for part in data.chunks(pieces.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap().0
    }

    fn open_all(sealed: &[u8], k: u8) -> Result<Vec<u8>, SegmentFault> {
        let mut r = OpeningReader::new(io::BufReader::new(sealed), key(k));
        let mut out = Vec::new();
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(fault_of(&e).expect("a segment fault")),
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for len in [
            0,
            1,
            15,
            16,
            SEGMENT_SIZE - 1,
            SEGMENT_SIZE,
            SEGMENT_SIZE + 1,
            3 * SEGMENT_SIZE,
            3 * SEGMENT_SIZE + 4097,
        ] {
            let d = data(len);
            let s = seal_all(&d, 100_003);
            let full = len.div_ceil(SEGMENT_SIZE).max(1);
            assert!(s.len() >= (full - 1) * SEALED_SEGMENT_LEN, "{len}");
            assert_eq!(open_all(&s, 1).unwrap(), d, "len {len}");
        }
    }

    fn three_segments() -> (Vec<u8>, Vec<u8>) {
        let d = data(2 * SEGMENT_SIZE + 1000);
        let s = seal_all(&d, 65536);
        assert_eq!(s.len(), 2 * SEALED_SEGMENT_LEN + 1000 + 53);
        (d, s)
    }

    #[test]
    fn wrong_key_is_refused_at_the_first_segment() {
        let (_, s) = three_segments();
        assert_eq!(open_all(&s, 2), Err(SegmentFault::WrongPasswordOrDamaged));
    }

    #[test]
    fn flipped_swapped_dropped_cut_and_appended_segments_are_refused() {
        let (_, s) = three_segments();
        let seg = |i: usize| {
            s[i * SEALED_SEGMENT_LEN..((i + 1) * SEALED_SEGMENT_LEN).min(s.len())].to_vec()
        };

        let mut flipped = s.clone();
        flipped[SEALED_SEGMENT_LEN + 5000] ^= 0x40;
        assert_eq!(open_all(&flipped, 1), Err(SegmentFault::Altered(1)));

        let swapped = [seg(1), seg(0), seg(2)].concat();
        assert_eq!(
            open_all(&swapped, 1),
            Err(SegmentFault::WrongPasswordOrDamaged)
        );
        let swapped = [seg(0), seg(2), seg(1)].concat();
        assert!(open_all(&swapped, 1).is_err());

        let dropped_middle = [seg(0), seg(2)].concat();
        assert_eq!(open_all(&dropped_middle, 1), Err(SegmentFault::Altered(1)));

        let dropped_last = [seg(0), seg(1)].concat();
        assert_eq!(open_all(&dropped_last, 1), Err(SegmentFault::Truncated(1)));

        let cut = &s[..s.len() - 10];
        assert_eq!(open_all(cut, 1), Err(SegmentFault::BadSize(2)));

        let mut appended = s.clone();
        appended.extend_from_slice(&seg(2));
        assert!(open_all(&appended, 1).is_err());

        assert_eq!(open_all(&[], 1), Err(SegmentFault::Empty));
    }

    #[test]
    fn nothing_of_a_bad_segment_is_released() {
        let (d, s) = three_segments();
        let mut flipped = s.clone();
        flipped[2 * SEALED_SEGMENT_LEN + 100] ^= 1;
        let mut r = OpeningReader::new(io::BufReader::new(&flipped[..]), key(1));
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        assert_eq!(out, &d[..2 * SEGMENT_SIZE], "exactly the verified segments");
        // and it stays refused
        let mut b = [0u8; 10];
        assert!(r.read(&mut b).is_err());
    }

    #[test]
    fn the_key_depends_on_the_whole_header() {
        let h = ExportHeader {
            salt: [3; 16],
            memory_kib: 8,
            time: 1,
        };
        let p = Passcode::new("pw".into());
        let k1 = archive_key(&p, &h).unwrap();
        let k2 = archive_key(&p, &ExportHeader { time: 2, ..h }).unwrap();
        let k3 = archive_key(&Passcode::new("pw2".into()), &h).unwrap();
        assert_ne!(k1.expose(), k2.expose());
        assert_ne!(k1.expose(), k3.expose());
        assert_eq!(archive_key(&p, &h).unwrap().expose(), k1.expose());
        assert_eq!(h.encode().len(), EXPORT_HEADER_LEN);
    }
}
