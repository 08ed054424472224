//! Throughput of the sealing construction on one core: `cargo bench --bench seal`.
//!
//! Plain `std::time` loop (no harness): for each operation, several samples of a timed
//! batch over a 1 MiB blob; the median sample is reported in GB/s (10^9 bytes per second).
//! Optional argument: the blob size in KiB (default 1024).
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cirrus::crypto::xts::{SECTOR, Xts};
use cirrus::crypto::{SecretKey, Suite, open, seal_with_nonce};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SAMPLES: usize = 15;
const SAMPLE_TARGET: Duration = Duration::from_millis(60);

/// Runs `f` in batches and returns the median seconds per call.
fn measure(mut f: impl FnMut()) -> f64 {
    // Warm up and size a batch to about SAMPLE_TARGET.
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < SAMPLE_TARGET / 2 {
        f();
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / f64::from(calls);
    let batch = ((SAMPLE_TARGET.as_secs_f64() / per_call).ceil() as u32).max(1);
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_secs_f64() / f64::from(batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}

fn report(name: &str, bytes: usize, secs: f64) {
    println!(
        "{name:<28} {:>7.2} GB/s   ({:>8.1} us per {} KiB)",
        bytes as f64 / secs / 1e9,
        secs * 1e6,
        bytes / 1024
    );
}

fn main() {
    // `cargo bench` passes `--bench`; take the first numeric argument as the size in KiB.
    let kib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let len = kib * 1024;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let key = SecretKey::from_bytes([7; 32]);
    let nonce = [9u8; 16];
    let ctx = b"bench context";

    println!(
        "blob {kib} KiB, one thread, aes hardware acceleration: {}",
        aes::hardware_accelerated()
    );

    let sealed = seal_with_nonce(&key, Suite::XtsBlake3, ctx, &data, &nonce);
    assert_eq!(open(&key, Suite::XtsBlake3, ctx, &sealed).unwrap(), data);

    let t = measure(|| {
        black_box(seal_with_nonce(
            &key,
            Suite::XtsBlake3,
            ctx,
            black_box(&data),
            &nonce,
        ));
    });
    report("seal (XtsBlake3)", len, t);
    let t = measure(|| {
        black_box(open(&key, Suite::XtsBlake3, ctx, black_box(&sealed)).unwrap());
    });
    report("open (XtsBlake3)", len, t);

    let sealed_mac = seal_with_nonce(&key, Suite::MacOnly, ctx, &data, &nonce);
    let t = measure(|| {
        black_box(seal_with_nonce(
            &key,
            Suite::MacOnly,
            ctx,
            black_box(&data),
            &nonce,
        ));
    });
    report("seal (MacOnly)", len, t);
    let t = measure(|| {
        black_box(open(&key, Suite::MacOnly, ctx, black_box(&sealed_mac)).unwrap());
    });
    report("open (MacOnly)", len, t);

    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let xts = Xts::new(&k1, &k2);
    let mut buf = data.clone();
    let t = measure(|| xts.encrypt_area(black_box(&mut buf), 0));
    report("raw XTS encrypt (fast)", len, t);
    let t = measure(|| xts.decrypt_area(black_box(&mut buf), 0));
    report("raw XTS decrypt (fast)", len, t);

    let reference = Xts::reference(&k1, &k2);
    let t = measure(|| {
        reference.encrypt_area(black_box(&mut buf), SECTOR, 0, xts_mode::get_tweak_default)
    });
    report("raw XTS encrypt (xts-mode)", len, t);

    // The ceiling for XTS: AES-256 alone (no tweaks), one `encrypt_blocks` call per sector.
    let aes = <aes::Aes256 as aes::cipher::KeyInit>::new(&k1.into());
    let t = measure(|| {
        for sector in black_box(&mut buf).chunks_mut(SECTOR) {
            let (blocks, _) = aes::cipher::Array::slice_as_chunks_mut(sector);
            aes::cipher::BlockCipherEncrypt::encrypt_blocks(&aes, blocks);
        }
    });
    report("AES-256 blocks only (ECB)", len, t);

    let t = measure(|| {
        black_box(blake3::keyed_hash(&[3; 32], black_box(&data)));
    });
    report("BLAKE3 keyed hash", len, t);

    let mut copy = vec![0u8; len];
    let t = measure(|| copy.copy_from_slice(black_box(&data)));
    report("memcpy (for scale)", len, t);
}
