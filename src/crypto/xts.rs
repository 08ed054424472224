//! AES-256-XTS (IEEE 1619) over 4 KiB sectors, batched: all tweaks of a sector are computed
//! first so that AES runs over the whole sector in one `encrypt_blocks` call (AES-NI
//! pipelines 8 blocks at a time; with VAES-512, 64). The `xts-mode` crate does one AES call
//! per 16-byte block and is 3-17x slower (benches/seal.rs; the spread depends on inlining);
//! it stays the reference this module is tested against, and handles the
//! ciphertext-stealing tail of a sector whose length is not a multiple of 16.

use aes::Aes256;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

/// Sector size of the sealing construction. The tweak of sector `i` is `i` (LE, 128 bits).
pub const SECTOR: usize = 4096;

type Block = Array<u8, aes::cipher::consts::U16>;

/// An XTS key pair: `k1` encrypts data, `k2` encrypts tweaks.
pub struct Xts {
    k1: Aes256,
    k2: Aes256,
}

#[inline]
fn mul_alpha(t: u128) -> u128 {
    // Multiplication by x in GF(2^128) with the little-endian convention of IEEE 1619.
    let carry = (t >> 127) as u8;
    (t << 1) ^ (0x87 * carry as u128)
}

impl Xts {
    pub fn new(k1: &[u8; 32], k2: &[u8; 32]) -> Self {
        Xts {
            k1: Aes256::new(&Array(*k1)),
            k2: Aes256::new(&Array(*k2)),
        }
    }

    /// Builds the equivalent `xts-mode` object (the reference implementation).
    pub fn reference(k1: &[u8; 32], k2: &[u8; 32]) -> xts_mode::Xts128<Aes256> {
        xts_mode::Xts128::new(Aes256::new(&Array(*k1)), Aes256::new(&Array(*k2)))
    }

    fn first_tweak(&self, sector_index: u128) -> u128 {
        let mut t = Block::from(sector_index.to_le_bytes());
        self.k2.encrypt_block(&mut t);
        u128::from_le_bytes(t.0)
    }

    /// Encrypts `area` in place as consecutive sectors of [`SECTOR`] bytes starting at sector
    /// `first`. Every sector, including the last, must be at least 16 bytes long.
    pub fn encrypt_area(&self, area: &mut [u8], first: u128) {
        for (i, sector) in area.chunks_mut(SECTOR).enumerate() {
            self.crypt_sector(sector, first + i as u128, true);
        }
    }

    /// Inverse of [`Xts::encrypt_area`].
    pub fn decrypt_area(&self, area: &mut [u8], first: u128) {
        for (i, sector) in area.chunks_mut(SECTOR).enumerate() {
            self.crypt_sector(sector, first + i as u128, false);
        }
    }

    fn crypt_sector(&self, sector: &mut [u8], index: u128, encrypt: bool) {
        assert!(sector.len() >= 16, "XTS sector shorter than one block");
        if !sector.len().is_multiple_of(16) {
            // Ciphertext stealing: rare (only the tail of an odd-sized blob), so the
            // reference implementation does it.
            let reference = XtsRef { x: self };
            reference.crypt(sector, index, encrypt);
            return;
        }
        let nblocks = sector.len() / 16;
        let mut tweaks = [0u128; SECTOR / 16];
        let mut t = self.first_tweak(index);
        for tw in tweaks.iter_mut().take(nblocks) {
            *tw = t;
            t = mul_alpha(t);
        }
        let blocks = as_blocks(sector);
        for (b, tw) in blocks.iter_mut().zip(tweaks.iter()) {
            let v = u128::from_le_bytes(b.0) ^ tw;
            b.0 = v.to_le_bytes();
        }
        if encrypt {
            self.k1.encrypt_blocks(blocks);
        } else {
            self.k1.decrypt_blocks(blocks);
        }
        for (b, tw) in blocks.iter_mut().zip(tweaks.iter()) {
            let v = u128::from_le_bytes(b.0) ^ tw;
            b.0 = v.to_le_bytes();
        }
    }
}

fn as_blocks(buf: &mut [u8]) -> &mut [Block] {
    debug_assert!(buf.len().is_multiple_of(16));
    // Array<u8, U16> is a transparent wrapper over [u8; 16] (alignment 1).
    let (blocks, rest) = Array::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    blocks
}

/// Thin adapter so the ciphertext-stealing path reuses `xts-mode` with our keys.
struct XtsRef<'a> {
    x: &'a Xts,
}

impl XtsRef<'_> {
    fn crypt(&self, sector: &mut [u8], index: u128, encrypt: bool) {
        let r = xts_mode::Xts128::new(self.x.k1.clone(), self.x.k2.clone());
        let tweak = xts_mode::get_tweak_default(index);
        if encrypt {
            r.encrypt_sector(sector, tweak);
        } else {
            r.decrypt_sector(sector, tweak);
        }
    }
}
