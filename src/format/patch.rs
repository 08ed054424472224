//! Chunk patches: the 4 KiB sectors a small write changed in a stored chunk, sealed on
//! their own so that the write does not reseal the whole 256 KiB chunk (FORMAT.md §5.1,
//! chunk slot 03). A patch names the tag of the base it applies to, and the sectors it
//! holds, which the leaf's slot also names: a patch laid over another base, or read with
//! other sectors, is refused rather than read as wrong plaintext.

use super::CHUNK_SIZE;
use super::codec::{FormatError, Reader, Writer};

/// Bytes per patch sector (the XTS sector of FORMAT.md §1.2).
pub const SECTOR: usize = 4096;

/// Sectors per chunk: one bit each in a slot's sector mask.
pub const SECTORS: usize = (CHUNK_SIZE as usize) / SECTOR;

const _: () = assert!(SECTORS == 64, "a u64 masks the sectors of a chunk");

/// Base tag 32 ‖ len u32 ‖ sector mask u64.
const HEADER: usize = 32 + 4 + 8;

/// The byte range sector `s` covers in a chunk of `len` bytes (empty past the end).
fn span(s: usize, len: usize) -> std::ops::Range<usize> {
    let start = (s * SECTOR).min(len);
    start..((s + 1) * SECTOR).min(len)
}

/// Bytes of data a patch of `sectors` over a chunk of `len` bytes holds.
pub fn data_len(sectors: u64, len: usize) -> usize {
    (0..SECTORS)
        .filter(|s| sectors >> s & 1 == 1)
        .map(|s| span(s, len).len())
        .sum()
}

/// The mask of the sectors that bytes `range` of a chunk touch.
pub fn sectors_of(range: std::ops::Range<usize>) -> u64 {
    if range.is_empty() {
        return 0;
    }
    let first = range.start / SECTOR;
    let last = ((range.end - 1) / SECTOR).min(SECTORS - 1);
    (first..=last).fold(0u64, |m, s| m | 1 << s)
}

/// The plaintext of a patch: `sectors` of `chunk` (the chunk's whole new plaintext), over
/// the base whose tag is `base_tag`. `None` if a sector lies past the chunk's end or the
/// mask is empty (the caller seals the whole chunk instead).
pub fn encode(base_tag: &[u8; 32], chunk: &[u8], sectors: u64) -> Option<Vec<u8>> {
    let len = chunk.len();
    if sectors == 0 || len > CHUNK_SIZE as usize {
        return None;
    }
    if (0..SECTORS).any(|s| sectors >> s & 1 == 1 && span(s, len).is_empty()) {
        return None;
    }
    let mut w = Writer::new();
    w.raw(base_tag).u32(len as u32).u64(sectors);
    let mut out = w.finish();
    out.reserve_exact(data_len(sectors, len));
    for s in (0..SECTORS).filter(|s| sectors >> s & 1 == 1) {
        out.extend_from_slice(&chunk[span(s, len)]);
    }
    Some(out)
}

/// The chunk a patch makes of its base: the base's bytes (up to the patch's length), zeros
/// up to that length, and the patch's sectors laid over them. `base_tag` and `sectors` are
/// what the leaf's slot says; the patch must say the same.
pub fn apply(
    base: &[u8],
    base_tag: &[u8; 32],
    sectors: u64,
    patch: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let mut r = Reader::new(patch);
    if r.hash()? != *base_tag {
        return Err(FormatError::Invalid("patch of another base"));
    }
    let len = r.u32()? as usize;
    if r.u64()? != sectors {
        return Err(FormatError::Invalid("patch sectors differ from the slot's"));
    }
    if len > CHUNK_SIZE as usize || len < base.len() || sectors == 0 {
        return Err(FormatError::Invalid("patch length out of range"));
    }
    if (0..SECTORS).any(|s| sectors >> s & 1 == 1 && span(s, len).is_empty()) {
        return Err(FormatError::Invalid("patch sector past the chunk's end"));
    }
    let data = r.take(data_len(sectors, len))?;
    r.end()?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(base);
    out.resize(len, 0);
    let mut at = 0;
    for s in (0..SECTORS).filter(|s| sectors >> s & 1 == 1) {
        let sp = span(s, len);
        out[sp.clone()].copy_from_slice(&data[at..at + sp.len()]);
        at += sp.len();
    }
    Ok(out)
}

/// Size of a patch's plaintext.
pub fn plain_len(sectors: u64, len: usize) -> usize {
    HEADER + data_len(sectors, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn sectors_of_a_range() {
        assert_eq!(sectors_of(0..0), 0);
        assert_eq!(sectors_of(0..1), 1);
        assert_eq!(sectors_of(4095..4097), 0b11);
        assert_eq!(sectors_of(8192..12288), 0b100);
        assert_eq!(sectors_of(0..CHUNK_SIZE as usize), u64::MAX);
    }

    /// FORMAT.md §5.1, patch plaintext: header bytes, then the sectors in order, the last
    /// one cut at the chunk's end.
    #[test]
    fn a_patch_holds_its_sectors_after_the_base_tag_length_and_mask() {
        let chunk = pattern(3 * SECTOR + 100, 7);
        let p = encode(&[0xab; 32], &chunk, 0b1001).unwrap();
        assert_eq!(&p[..32], &[0xab; 32]);
        assert_eq!(&p[32..36], &((3 * SECTOR + 100) as u32).to_le_bytes());
        assert_eq!(&p[36..44], &0b1001u64.to_le_bytes());
        assert_eq!(&p[44..44 + SECTOR], &chunk[..SECTOR]);
        assert_eq!(&p[44 + SECTOR..], &chunk[3 * SECTOR..]);
        assert_eq!(p.len(), plain_len(0b1001, chunk.len()));
        // A sector past the end, or no sector, is no patch.
        assert!(encode(&[0; 32], &chunk, 1 << 4).is_none());
        assert!(encode(&[0; 32], &chunk, 0).is_none());
    }

    #[test]
    fn applying_a_patch_gives_the_chunk_it_was_made_from() {
        let base = pattern(2 * SECTOR + 10, 1);
        let mut chunk = base.clone();
        chunk[5000] ^= 0xff;
        chunk.resize(5 * SECTOR + 7, 0);
        chunk[4 * SECTOR + 3] = 9;
        let sectors = sectors_of(5000..5001) | sectors_of(4 * SECTOR..5 * SECTOR + 7);
        let p = encode(&[1; 32], &chunk, sectors).unwrap();
        assert_eq!(apply(&base, &[1; 32], sectors, &p).unwrap(), chunk);
        // The base's tail past its own end and the patch's sectors reads as zeros: the
        // sectors 2..3 in between were not written.
        assert!(chunk[2 * SECTOR + 10..4 * SECTOR].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_patch_is_refused_over_another_base_other_sectors_or_a_longer_base() {
        let base = pattern(SECTOR * 2, 1);
        let mut chunk = base.clone();
        chunk[0] ^= 1;
        let p = encode(&[1; 32], &chunk, 1).unwrap();
        assert!(apply(&base, &[2; 32], 1, &p).is_err());
        assert!(apply(&base, &[1; 32], 3, &p).is_err());
        let longer = pattern(SECTOR * 3, 1);
        assert!(apply(&longer, &[1; 32], 1, &p).is_err());
        let mut cut = p.clone();
        cut.pop();
        assert!(apply(&base, &[1; 32], 1, &cut).is_err());
        let mut long = p.clone();
        long.push(0);
        assert!(apply(&base, &[1; 32], 1, &long).is_err());
    }
}
