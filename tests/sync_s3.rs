//! Write-back to a real SeaweedFS (tests/common/seaweed.rs): writes land in the journal
//! and return; `cirrus sync` and `umount` push them; a store that goes away leaves the
//! drive working from its cache with the queue shown by `status`; a restart of the
//! server or of the daemon loses nothing; a full journal is ENOSPC; an object corrupted
//! in the bucket is EIO, never wrong data.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::seaweed::Seaweed;
use common::*;
use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

/// A drive initialised on `s3://BUCKET/<prefix>` of `sw`, not mounted yet.
fn s3_drive(sw: &Seaweed, prefix: &str, mount_args: &[&str]) -> Drive {
    sw.drive(prefix, mount_args, &[])
}

fn cirrus(d: &Drive, args: &[&str]) -> std::process::Output {
    let mut c = d.cirrus_cmd();
    c.args(args);
    run(&mut c)
}

fn status(d: &Drive) -> String {
    let o = cirrus(
        d,
        &[
            "status",
            "--passcode-file",
            d.passcode_file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "status failed: {}", text(&o));
    text(&o)
}

fn journal_files(d: &Drive) -> usize {
    ["objects", "heads"]
        .iter()
        .map(|s| {
            fs::read_dir(d.home.join("journal").join(s))
                .map(|r| r.count())
                .unwrap_or(0)
        })
        .sum()
}

/// Bytes of the pack objects in the bucket under `prefix`.
fn packs_in_bucket(sw: &Seaweed, prefix: &str) -> Vec<String> {
    use cirrus::store::Store;
    sw.store(prefix).list("packs/").unwrap()
}

#[test]
fn sync_pushes_the_journal_and_a_fresh_cache_reads_it_back() {
    let sw = Seaweed::start();
    let mut d = s3_drive(&sw, "wb", &[]);
    d.mount_again();
    let big = pseudo_random(20 << 20, 11);
    fs::write(d.notes().join("big.bin"), &big).unwrap();
    fs::write(d.notes().join("small.txt"), b"queued first").unwrap();
    let sy = common::status::sync_json(&d);
    assert_eq!(sy["complete"], true, "{sy:#}");
    assert_eq!(sy["upload"]["pending_objects"], 0, "{sy:#}");
    assert!(
        sy["upload"]["uploaded_bytes"].as_u64() >= Some(20 << 20),
        "{sy:#}"
    );
    assert_eq!(journal_files(&d), 0, "journal drained");
    assert!(packs_in_bucket(&sw, "wb").len() >= 3);
    let st = common::status::status_json(&d);
    assert_eq!(st["upload"]["pending_objects"], 0, "{st:#}");
    d.unmount();
    // Nothing local left to read from: every byte comes back from the bucket.
    fs::remove_dir_all(d.home.join("cache")).unwrap();
    d.mount_again();
    assert_eq!(fs::read(d.notes().join("big.bin")).unwrap(), big);
    assert_eq!(
        fs::read(d.notes().join("small.txt")).unwrap(),
        b"queued first"
    );
    // The cold read filled the disk cache.
    let cached = fs::read_dir(d.home.join("cache")).unwrap().count();
    assert!(cached >= 3, "{cached} objects cached");
}

#[test]
fn offline_writes_queue_and_drain_when_the_store_returns() {
    let mut sw = Seaweed::start();
    let mut d = s3_drive(&sw, "off", &["--commit-interval", "1"]);
    d.mount_again();
    let before = pseudo_random(3 << 20, 1);
    fs::write(d.notes().join("before.bin"), &before).unwrap();
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    sw.kill();
    // Writes still work (the store stays down until after them: nothing here can wait
    // for it) and are kept. How fast they return is for the benchmarks.
    let during = pseudo_random(12 << 20, 2);
    fs::write(d.notes().join("during.bin"), &during).unwrap();
    fs::create_dir(d.notes().join("made offline")).unwrap();
    let f = fs::File::create(d.notes().join("made offline/f.txt")).unwrap();
    (&f).write_all(b"offline edit").unwrap();
    f.sync_all().unwrap();
    drop(f);
    // Cached data still reads.
    assert_eq!(fs::read(d.notes().join("before.bin")).unwrap(), before);
    // `status` tells the user what is waiting and why.
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = common::status::status_json(&d);
        if st["upload"]["offline"] == true || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let up = &st["upload"];
    assert_eq!(up["offline"], true, "{st:#}");
    assert!(up["last_error"]["message"].is_string(), "{st:#}");
    assert!(up["pending_objects"].as_u64() > Some(0), "{st:#}");
    // The text says so too.
    let st = status(&d);
    assert!(
        st.contains("OFFLINE") && st.contains("last sync error"),
        "{st}"
    );
    // `sync --wait` gives up with a clear message instead of hanging.
    let o = cirrus(&d, &["sync", "--wait", "--stall-timeout", "3"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not yet in the store"), "{}", text(&o));
    sw.restart();
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(journal_files(&d), 0);
    d.unmount();
    fs::remove_dir_all(d.home.join("cache")).unwrap();
    d.mount_again();
    assert_eq!(fs::read(d.notes().join("during.bin")).unwrap(), during);
    assert_eq!(
        fs::read(d.notes().join("made offline/f.txt")).unwrap(),
        b"offline edit"
    );
}

#[test]
fn an_uncached_read_while_offline_is_a_prompt_eio() {
    let mut sw = Seaweed::start();
    let mut d = s3_drive(&sw, "eio", &["--disk-cache", "0", "--memory-cache", "16M"]);
    d.mount_again();
    let data = pseudo_random(8 << 20, 3);
    fs::write(d.notes().join("cold.bin"), &data).unwrap();
    d.unmount();
    d.mount_again();
    // The listing is loaded (metadata in RAM); the file's data is not.
    assert_eq!(
        fs::metadata(d.notes().join("cold.bin")).unwrap().len(),
        8 << 20
    );
    sw.kill();
    let err = fs::read(d.notes().join("cold.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The failed fetch put the drive offline (its log says so; `status` cannot say it
    // here: with no disk cache it needs the store), so the next read fails on the fast
    // path without asking the store. How fast is for the benchmarks, not a test's clock.
    eventually(
        "the daemon's log says it is offline",
        Duration::from_secs(30),
        || {
            fs::read_to_string(d.home.join("cirrus.log"))
                .unwrap_or_default()
                .contains("store unreachable; serving from the local cache")
        },
    );
    let err = fs::read(d.notes().join("cold.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    sw.restart();
    // The offline spell ends at the next probe (every 5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match fs::read(d.notes().join("cold.bin")) {
            Ok(back) => {
                assert_eq!(back, data);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("still failing after the store came back: {e}"),
        }
    }
}

#[test]
fn umount_waits_for_uploads_and_no_wait_leaves_them_for_the_next_mount() {
    let mut sw = Seaweed::start();
    let mut d = s3_drive(&sw, "um", &[]);
    d.mount_again();
    let a = pseudo_random(16 << 20, 4);
    fs::write(d.notes().join("a.bin"), &a).unwrap();
    d.unmount();
    assert_eq!(journal_files(&d), 0, "umount waited for the queue");
    let packs = packs_in_bucket(&sw, "um").len();
    assert!(packs >= 2, "{packs}");

    d.mount_again();
    sw.kill();
    let b = pseudo_random(9 << 20, 5);
    fs::write(d.notes().join("b.bin"), &b).unwrap();
    // With the store down, an umount that waited for the queue could only fail once
    // its timeout ran out: success here is the proof it did not wait.
    let o = cirrus(&d, &["umount", d.mnt.to_str().unwrap(), "--no-wait"]);
    assert!(o.status.success(), "{}", text(&o));
    d.mark_unmounted();
    assert!(text(&o).contains("not in the store yet"), "{}", text(&o));
    assert!(journal_files(&d) > 0);
    // The next mount resumes the queue.
    sw.restart();
    d.mount_again();
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(journal_files(&d), 0);
    d.unmount();
    fs::remove_dir_all(d.home.join("cache")).unwrap();
    d.mount_again();
    assert_eq!(fs::read(d.notes().join("b.bin")).unwrap(), b);
    assert_eq!(fs::read(d.notes().join("a.bin")).unwrap(), a);
}

#[test]
fn a_killed_daemon_keeps_its_journal_and_sync_sends_it_unmounted() {
    let mut sw = Seaweed::start();
    let mut d = s3_drive(&sw, "kill", &[]);
    d.mount_again();
    sw.kill();
    let data = pseudo_random(5 << 20, 6);
    let path = d.notes().join("fsynced.bin");
    let f = fs::File::create(&path).unwrap();
    (&f).write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    // kill -9 the daemon: the fsync'd data is in the journal only.
    let pid = daemon_pid(&d);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_gone(pid);
    force_unmount(&d.mnt);
    d.mark_unmounted();
    assert!(journal_files(&d) >= 2);
    sw.restart();
    // No passcode needed: the journal holds only sealed objects.
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(journal_files(&d), 0);
    fs::remove_dir_all(d.home.join("cache")).unwrap();
    d.mount_again();
    assert_eq!(fs::read(&path).unwrap(), data);
}

#[test]
fn a_full_journal_is_enospc_and_keeps_what_it_has() {
    let mut sw = Seaweed::start();
    let mut d = s3_drive(&sw, "full", &["--journal-max", "64M"]);
    d.mount_again();
    sw.kill();
    let chunk = pseudo_random(1 << 20, 7);
    let mut f = fs::File::create(d.notes().join("fill.bin")).unwrap();
    let mut written = 0usize;
    let err = loop {
        match f.write_all(&chunk).and_then(|_| {
            if written.is_multiple_of(16 << 20) {
                f.sync_all()
            } else {
                Ok(())
            }
        }) {
            Ok(()) => written += chunk.len(),
            Err(e) => break e,
        }
        assert!(written < 512 << 20, "no ENOSPC after {written} bytes");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(written >= 32 << 20, "only {written} bytes before ENOSPC");
    drop(f);
    let st = status(&d);
    assert!(st.contains("journal full"), "{st}");
    // Once the store is back, the queue drains and writes have room again.
    sw.restart();
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    fs::write(d.notes().join("after.txt"), b"room again").unwrap();
    d.unmount();
    d.mount_again();
    assert_eq!(
        fs::read(d.notes().join("after.txt")).unwrap(),
        b"room again"
    );
}

#[test]
fn an_object_corrupted_in_the_bucket_is_eio_not_wrong_data() {
    use cirrus::store::Store;
    let sw = Seaweed::start();
    let mut d = s3_drive(&sw, "rot", &[]);
    d.mount_again();
    let data = pseudo_random(4 << 20, 8);
    fs::write(d.notes().join("victim.bin"), &data).unwrap();
    d.unmount();
    fs::remove_dir_all(d.home.join("cache")).unwrap();
    // Flip a byte in every pack through the S3 API.
    let s = sw.store("rot");
    for name in s.list("packs/").unwrap() {
        let mut obj = s.get(&name).unwrap();
        let at = obj.len() / 2;
        obj[at] ^= 0x40;
        s.put(&name, &obj).unwrap();
    }
    d.mount_again();
    let res = fs::read_dir(d.mnt.join("Notes")).map(|rd| rd.count());
    match res {
        // The listing itself lives in a (now corrupted) pack.
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
        Ok(_) => {
            let err = fs::read(d.notes().join("victim.bin")).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        }
    }
    let log = fs::read_to_string(d.home.join("cirrus.log")).unwrap();
    assert!(log.contains("does not match its content hash"), "{log}");
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rss_stays_under_cache_plus_64m_during_a_4gib_upload() {
    const CACHE_MIB: u64 = 64;
    const SIZE: u64 = 4 << 30;
    let sw = Seaweed::start();
    let mut d = s3_drive(&sw, "mem", &["--memory-cache", "64M"]);
    d.mount_again();
    let pid = daemon_pid(&d);
    let rss = RssPeak::start(pid);
    let block = pseudo_random(1 << 20, 12);
    {
        let mut f = fs::File::create(d.notes().join("big.bin")).unwrap();
        for i in 0..(SIZE >> 20) {
            let mut b = block.clone();
            b[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&b).unwrap();
        }
        f.sync_all().unwrap();
    }
    // Until everything is in the bucket.
    let o = cirrus(&d, &["sync", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(journal_files(&d), 0);
    let peak_kib = rss.stop();
    let bound_kib = (CACHE_MIB + 64) * 1024;
    eprintln!(
        "daemon RSS peak during a 4 GiB upload to S3: {} MiB (bound {} MiB)",
        peak_kib / 1024,
        bound_kib / 1024
    );
    assert!(
        peak_kib <= bound_kib,
        "daemon RSS peaked at {} MiB, over the {} MiB bound",
        peak_kib / 1024,
        bound_kib / 1024
    );
    // The bucket holds it all (a few packs of 8 MiB per 8 MiB written).
    assert!(packs_in_bucket(&sw, "mem").len() >= (SIZE >> 23) as usize);
}
