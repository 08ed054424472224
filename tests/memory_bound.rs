//! The daemon's memory stays bounded by --memory-cache (+64 MiB) whatever the file size:
//! write and then read back a 4 GiB file while sampling the daemon's RSS.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};

#[test]
fn rss_stays_under_cache_plus_64m_for_a_4gib_file() {
    const CACHE_MIB: u64 = 64;
    const SIZE: u64 = 4 << 30;
    let d = Drive::mount_with(MountOptions {
        memory_cache: Some(format!("{CACHE_MIB}M")),
        ..Default::default()
    });
    let pid = daemon_pid(&d);
    let rss = RssPeak::start(pid);
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
    let after_write = rss.kib();
    {
        let mut f = fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            f.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..8], &i.to_le_bytes(), "block {i} came back wrong");
            assert_eq!(&buf[8..], &block[8..], "block {i} came back wrong");
        }
    }
    let peak_kib = rss.stop();
    let bound_kib = (CACHE_MIB + 64) * 1024;
    eprintln!(
        "daemon RSS peak: {} MiB after writing 4 GiB, {} MiB overall (bound {} MiB)",
        after_write / 1024,
        peak_kib / 1024,
        bound_kib / 1024
    );
    assert!(
        peak_kib <= bound_kib,
        "daemon RSS peaked at {} MiB, over the {} MiB bound",
        peak_kib / 1024,
        bound_kib / 1024
    );
    fs::remove_file(&path).unwrap();
}
