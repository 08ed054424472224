//! The daemon's memory stays bounded by --memory-cache (+64 MiB) whatever the file size:
//! write and then read back a 4 GiB file while sampling the daemon's RSS.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[test]
fn rss_stays_under_cache_plus_64m_for_a_4gib_file() {
    const CACHE_MIB: u64 = 64;
    const SIZE: u64 = 4 << 30;
    let d = Drive::mount_with(MountOptions {
        memory_cache: Some(format!("{CACHE_MIB}M")),
        ..Default::default()
    });
    let pid = daemon_pid(&d);
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let path = d.category_path("Drive").join("big.bin");
    let block: Vec<u8> = pseudo_random(1 << 20, 11);
    {
        let mut f = fs::File::create(&path).unwrap();
        for i in 0..(SIZE >> 20) {
            let mut b = block.clone();
            b[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&b).unwrap();
        }
        f.sync_all().unwrap();
    }
    let after_write = peak.load(Ordering::Relaxed);
    {
        let mut f = fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            f.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..8], &i.to_le_bytes(), "block {i} came back wrong");
            assert_eq!(&buf[8..], &block[8..], "block {i} came back wrong");
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_kib = peak.load(Ordering::Relaxed);
    let bound_kib = (CACHE_MIB + 64) * 1024;
    eprintln!(
        "daemon RSS peak: {} MiB after writing 4 GiB, {} MiB overall (bound {} MiB)",
        after_write / 1024,
        peak_kib / 1024,
        bound_kib / 1024
    );
    assert!(peak_kib > 0, "RSS was never sampled");
    assert!(
        peak_kib <= bound_kib,
        "daemon RSS peaked at {} MiB, over the {} MiB bound",
        peak_kib / 1024,
        bound_kib / 1024
    );
    fs::remove_file(&path).unwrap();
}
