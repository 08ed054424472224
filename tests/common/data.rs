//! Test data and byte comparisons: deterministic pseudo-random content, digests, and
//! asserts that name the first differing offset instead of dumping megabytes.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

/// Cirrus' content chunk size; I/O tests straddle multiples of it.
pub const CHUNK: usize = 256 * 1024;

/// Deterministic pseudo-random bytes (splitmix64).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// blake3 hex digest.
pub fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// blake3 of a file's content, streamed with reads of an odd size.
pub fn file_hash(p: &Path) -> String {
    let mut f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 100_003];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_hex().to_string()
}

/// Read a whole file.
pub fn read_all(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Compare two byte slices, reporting the first differing offset rather than dumping both.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual.iter().zip(expected).position(|(a, b)| a != b);
    match first {
        Some(i) => panic!(
            "{what}: content differs first at offset {i} (got {:#04x}, want {:#04x}); lengths {} vs {}",
            actual[i],
            expected[i],
            actual.len(),
            expected.len()
        ),
        None => panic!(
            "{what}: length {} but expected {}",
            actual.len(),
            expected.len()
        ),
    }
}

/// Whether `needle` occurs in `hay` (plaintext looked for in sealed bytes).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
