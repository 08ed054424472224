//! Damage, crash and bad-input behaviour of a real mounted drive: tampered, swapped,
//! deleted and rolled-back objects give EIO (never wrong bytes) and `fsck` reports them;
//! fsync'd data survives kill -9; bad input gives a one-line error and changes nothing.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Category ids follow the default table order: Notes is 5, Photos 6, Health 14.
const NOTES_HEAD: &str = "heads/00000005";

fn store(d: &Drive) -> PathBuf {
    d.home.join("store")
}

fn packs(d: &Drive) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = store(d).join("packs");
    for sub in fs::read_dir(&root).expect("list packs") {
        for f in fs::read_dir(sub.expect("entry").path()).expect("list pack dir") {
            out.push(f.expect("entry").path());
        }
    }
    out
}

fn newest_pack_over(d: &Drive, min_size: u64, before: &[PathBuf]) -> PathBuf {
    let mut cands: Vec<(u64, PathBuf)> = packs(d)
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| (fs::metadata(&p).expect("stat pack").len(), p))
        .filter(|(len, _)| *len >= min_size)
        .collect();
    cands.sort();
    cands
        .pop()
        .unwrap_or_else(|| panic!("no new pack of at least {min_size} bytes"))
        .1
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("fsync");
}

fn read_err(path: &Path) -> i32 {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error().unwrap_or(-1),
    };
    let mut v = Vec::new();
    match f.read_to_end(&mut v) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn log_text(d: &Drive) -> String {
    fs::read_to_string(d.home.join("cirrus.log")).unwrap_or_default()
}

fn fsck(d: &Drive) -> (i32, String) {
    let out = d
        .cirrus_cmd()
        .args(["fsck", "--passcode-file"])
        .arg(&d.passcode_file)
        .output()
        .expect("run fsck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Writes `keep` and then `victim` in separate commits, so they land in different packs;
/// returns the pack that holds `victim`'s content.
fn two_files(d: &Drive) -> (PathBuf, PathBuf, Vec<u8>, PathBuf) {
    let notes = d.notes();
    let keep = notes.join("keep.txt");
    write_synced(&keep, b"this file must stay readable");
    let before = packs(d);
    let victim = notes.join("victim.bin");
    let data = pseudo_random(600_000, 7);
    write_synced(&victim, &data);
    let pack = newest_pack_over(d, 500_000, &before);
    (keep, victim, data, pack)
}

#[test]
fn flipped_byte_in_a_pack_gives_eio_and_fsck_reports_it() {
    let mut d = Drive::mount();
    let (keep, victim, _data, pack) = two_files(&d);
    fs::write(d.health().join("other.txt"), b"other category").unwrap();
    d.unmount();
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&pack, &bytes).unwrap();
    d.mount_again();
    assert_eq!(
        read_err(&victim),
        libc::EIO,
        "tampered content must give EIO"
    );
    assert_eq!(fs::read(&keep).unwrap(), b"this file must stay readable");
    assert_eq!(
        fs::read(d.health().join("other.txt")).unwrap(),
        b"other category"
    );
    let log = log_text(&d);
    assert!(
        log.contains("chunk") && log.contains("inode"),
        "log must say which object failed:\n{log}"
    );
    let (code, out) = fsck(&d);
    assert_eq!(code, 1, "fsck must fail:\n{out}");
    assert!(out.contains("Notes"), "fsck must name the category:\n{out}");
}

#[test]
fn deleted_pack_gives_eio_and_fsck_reports_it() {
    let mut d = Drive::mount();
    let (keep, victim, _data, pack) = two_files(&d);
    d.unmount();
    fs::remove_file(&pack).unwrap();
    d.mount_again();
    assert_eq!(read_err(&victim), libc::EIO);
    assert_eq!(fs::read(&keep).unwrap(), b"this file must stay readable");
    let (code, out) = fsck(&d);
    assert_eq!(code, 1, "fsck must fail:\n{out}");
}

#[test]
fn swapped_pack_gives_eio() {
    let mut d = Drive::mount();
    let (_keep, victim, _data, pack) = two_files(&d);
    // a second large pack with other content of the same category
    let before = packs(&d);
    write_synced(&d.notes().join("decoy.bin"), &pseudo_random(600_000, 9));
    let decoy = newest_pack_over(&d, 500_000, &before);
    d.unmount();
    fs::copy(&decoy, &pack).unwrap();
    d.mount_again();
    assert_eq!(
        read_err(&victim),
        libc::EIO,
        "a swapped object must give EIO"
    );
    let (code, _) = fsck(&d);
    assert_eq!(code, 1);
}

#[test]
fn rolled_back_head_is_refused_and_other_categories_work() {
    let mut d = Drive::mount();
    let notes = d.notes();
    write_synced(&notes.join("v1.txt"), b"version one");
    let head = store(&d).join(NOTES_HEAD);
    let old = fs::read(&head).expect("Notes head exists after fsync");
    write_synced(&notes.join("v2.txt"), b"version two");
    fs::write(d.health().join("h.txt"), b"health data").unwrap();
    d.unmount();
    fs::write(&head, &old).unwrap();
    d.mount_again();
    // The folder is listed but answers EIO (category_path would insist on a directory).
    let e = fs::read_dir(d.mnt.join("Notes"))
        .map(|_| 0)
        .unwrap_or_else(|e| e.raw_os_error().unwrap_or(-1));
    assert_eq!(e, libc::EIO, "a rolled-back category must answer EIO");
    assert_eq!(fs::read(d.health().join("h.txt")).unwrap(), b"health data");
    let log = log_text(&d);
    assert!(
        log.contains("rollback"),
        "log must explain the refusal:\n{log}"
    );
    let (code, out) = fsck(&d);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rollback"), "{out}");
}

#[test]
fn corrupted_head_makes_only_that_category_unavailable() {
    let mut d = Drive::mount();
    write_synced(&d.notes().join("a.txt"), b"a");
    write_synced(&d.health().join("b.txt"), b"b");
    d.unmount();
    let head = store(&d).join(NOTES_HEAD);
    let mut bytes = fs::read(&head).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x80;
    fs::write(&head, &bytes).unwrap();
    d.mount_again();
    assert_eq!(read_err(&d.mnt.join("Notes").join("a.txt")), libc::EIO);
    assert_eq!(fs::read(d.health().join("b.txt")).unwrap(), b"b");
}

#[test]
fn no_plaintext_name_or_content_reaches_the_disk() {
    let mut d = Drive::mount();
    let name = "zq-secret-filename-4711.txt";
    let content = "ZQ-SECRET-CONTENT-0815 ".repeat(200);
    for cat in ["Notes", "Health"] {
        let dir = d.category_path(cat).join("zq-secret-dirname-42");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(name), &content).unwrap();
    }
    fs::write(
        d.category_path("Mail").join("zq-transit-name.txt"),
        "ZQ-TRANSIT-CONTENT",
    )
    .unwrap();
    d.unmount();
    let mut found_transit = false;
    let mut stack = vec![d.home.clone()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = fs::read(&path).unwrap();
            for needle in [name.as_bytes(), b"ZQ-SECRET-CONTENT", b"zq-secret-dirname"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} contains plaintext {:?}",
                    path.display(),
                    String::from_utf8_lossy(needle)
                );
            }
            found_transit |= bytes.windows(18).any(|w| w == b"ZQ-TRANSIT-CONTENT");
        }
    }
    assert!(
        found_transit,
        "the transit class is stored readable by design; the test must see it"
    );
}

fn kill9(d: &mut Drive) {
    let pid = daemon_pid(d);
    // SAFETY: sending a signal to the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    for _ in 0..200 {
        // SAFETY: existence check only.
        if unsafe { libc::kill(pid, 0) } != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The stale mount must be cleaned by `cirrus umount`.
    let out = d.cirrus_cmd().arg("umount").arg(&d.mnt).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "umount of a stale mount failed: {out:?}"
    );
    assert!(text.contains("stale"), "{text}");
    d.mark_unmounted();
}

#[test]
fn fsynced_data_survives_kill_9_and_unsynced_data_is_old_or_new_per_chunk() {
    let mut d = Drive::mount_with(MountOptions {
        commit_interval: Some(3600),
        ..Default::default()
    });
    let notes = d.notes();
    let synced = pseudo_random(3 * CHUNK + 123, 1);
    write_synced(&notes.join("synced.bin"), &synced);
    let old = pseudo_random(4 * CHUNK, 2);
    write_synced(&notes.join("rewritten.bin"), &old);
    let new = pseudo_random(4 * CHUNK, 3);
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(notes.join("rewritten.bin"))
            .unwrap();
        f.write_all(&new).unwrap();
    }
    fs::write(notes.join("unsynced.txt"), b"maybe").unwrap();
    kill9(&mut d);
    d.mount_again();
    let notes = d.notes();
    assert_bytes_eq(
        &fs::read(notes.join("synced.bin")).unwrap(),
        &synced,
        "fsync'd file",
    );
    let got = fs::read(notes.join("rewritten.bin")).unwrap();
    assert_eq!(got.len(), old.len());
    for (i, c) in got.chunks(CHUNK).enumerate() {
        let o = &old[i * CHUNK..(i + 1) * CHUNK];
        let n = &new[i * CHUNK..(i + 1) * CHUNK];
        assert!(c == o || c == n, "chunk {i} is neither old nor new content");
    }
    match fs::read(notes.join("unsynced.txt")) {
        Ok(v) => assert!(v == b"maybe" || v.is_empty(), "garbage: {v:?}"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
    }
    let (code, out) = fsck(&d);
    assert_eq!(code, 0, "fsck after a crash must be clean:\n{out}");
}

fn cirrus_in(home: &Path) -> Command {
    let mut c = cirrus_command();
    c.arg("--home").arg(home);
    c
}

fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.output().expect("run cirrus");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got {out:?}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "no panic allowed: {err}");
}

#[test]
fn bad_input_gives_a_clear_error_and_changes_nothing() {
    let mut d = Drive::mount();
    fs::write(d.notes().join("keep.txt"), b"kept").unwrap();
    // already mounted
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .arg("--passcode-file")
            .arg(&d.passcode_file),
        "already mounted",
    );
    d.unmount();
    let wrong = d.root.join("wrong-passcode");
    fs::write(&wrong, "not the passcode").unwrap();
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .arg("--passcode-file")
            .arg(&wrong),
        "wrong passcode",
    );
    assert!(!is_fuse_mount(&d.mnt), "a wrong passcode must not mount");
    // missing mountpoint
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(d.root.join("nope"))
            .arg("--passcode-file")
            .arg(&d.passcode_file),
        "does not exist",
    );
    // unknown category, bad class, bad size
    fails_with(
        d.cirrus_cmd()
            .args(["category", "remove", "NoSuchCategory", "--passcode-file"])
            .arg(&d.passcode_file),
        "unknown category",
    );
    fails_with(
        d.cirrus_cmd()
            .args([
                "category",
                "add",
                "X",
                "--class",
                "secret",
                "--passcode-file",
            ])
            .arg(&d.passcode_file),
        "unknown protection class",
    );
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .args(["--memory-cache", "12X", "--passcode-file"])
            .arg(&d.passcode_file),
        "12X",
    );
    // init over an existing account
    fails_with(
        d.cirrus_cmd()
            .args([
                "init",
                "--kdf-memory",
                "8192",
                "--kdf-time",
                "1",
                "--passcode-file",
            ])
            .arg(&d.passcode_file),
        "already exists",
    );
    // missing store
    let st = store(&d);
    let moved = d.root.join("store-moved");
    fs::rename(&st, &moved).unwrap();
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .arg("--passcode-file")
            .arg(&d.passcode_file),
        "store",
    );
    fs::rename(&moved, &st).unwrap();
    // malformed config
    let cfg = d.home.join("config.toml");
    let good = fs::read(&cfg).unwrap();
    fs::write(&cfg, "version = [").unwrap();
    fails_with(
        d.cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .arg("--passcode-file")
            .arg(&d.passcode_file),
        "malformed",
    );
    fs::write(&cfg, &good).unwrap();
    // and the account still works, data intact
    d.mount_again();
    assert_eq!(fs::read(d.notes().join("keep.txt")).unwrap(), b"kept");
    // no account at all
    let empty = d.root.join("empty-home");
    fails_with(
        cirrus_in(&empty)
            .arg("status")
            .arg("--passcode-file")
            .arg(&d.passcode_file),
        "no Cirrus account",
    );
    assert!(!empty.exists(), "a failed command must not create a home");
}

#[test]
fn full_disk_gives_enospc_and_keeps_earlier_data() {
    let base = tempfile::tempdir().unwrap();
    let small = base.path().join("small");
    fs::create_dir(&small).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a small tmpfs failed");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Umount(small.clone());
    let home = small.join("home");
    let mnt = base.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let pass = base.path().join("pass");
    fs::write(&pass, PASSCODE).unwrap();
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
    let ok = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    ok(cirrus_in(&home)
        .args([
            "init",
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
            "--passcode-file",
        ])
        .arg(&pass));
    ok(cirrus_in(&home)
        .arg("mount")
        .arg(&mnt)
        .arg("--passcode-file")
        .arg(&pass));
    let notes = mnt.join("Notes");
    write_synced(&notes.join("early.txt"), b"written before the disk filled");
    let mut got_enospc = false;
    for i in 0..40 {
        let r = (|| -> std::io::Result<()> {
            let mut f = fs::File::create(notes.join(format!("fill{i}.bin")))?;
            f.write_all(&pseudo_random(1 << 20, i))?;
            f.sync_all()
        })();
        if let Err(e) = r {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::ENOSPC),
                "full disk must be ENOSPC: {e}"
            );
            got_enospc = true;
            break;
        }
    }
    assert!(
        got_enospc,
        "filling a 24 MiB disk with 40 MiB must hit ENOSPC"
    );
    assert_eq!(
        fs::read(notes.join("early.txt")).unwrap(),
        b"written before the disk filled"
    );
    let log = fs::read_to_string(home.join("cirrus.log")).unwrap();
    assert!(log.contains("no space") || log.contains("full"), "{log}");
    ok(cirrus_in(&home).arg("umount").arg(&mnt));
}

/// The tids of `pid`'s threads whose name starts with `name` (`/proc/PID/task/TID/comm`).
fn threads_named(pid: i32, name: &str) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list threads")
        .filter_map(|e| {
            let tid = e.ok()?.file_name().to_string_lossy().into_owned();
            let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
            comm.trim().starts_with(name).then_some(tid)
        })
        .collect()
}

/// Issue 15: an fsync waits for the store's durable writes only, one pack (its chunks and
/// leaves together) and the head, each a file and a directory sync: four syncs on the
/// request path, where there were eight (two packs, and the record of heads seen, which
/// the daemon's writer thread now saves behind the commits). strace counts the daemon's
/// syncs by thread over 20 write+fsync.
#[test]
fn an_fsync_waits_for_four_syncs_and_the_record_of_heads_follows() {
    use std::os::unix::fs::FileExt;
    let d = Drive::mount();
    let pid = daemon_pid(&d);
    let path = d.notes().join("db");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    // The first commit starts the writer of the record of heads seen.
    file.write_all_at(b"first", 0).unwrap();
    file.sync_all().unwrap();
    // A new thread names itself once it runs: wait for the name.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let writer = loop {
        let w = threads_named(pid, "write-behind");
        if !w.is_empty() || std::time::Instant::now() > until {
            break w;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(writer.len(), 1, "one writer thread: {writer:?}");
    // The kernel's requests are served by fuser's threads: the request path.
    let fuse = threads_named(pid, "fuser");
    assert!(!fuse.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace");
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,syncfs,sync_file_range",
            "-o",
        ])
        .arg(&log)
        .args(["-p", &pid.to_string()])
        .spawn()
        .expect("strace (scripts/setup-test-deps installs it)");
    // strace has attached once it has written its first line, or after a while with
    // nothing to write: a sync of the probe file below shows the attach happened.
    let probe = d.notes().join("probe");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        write_synced(&probe, b"probe");
        if fs::read_to_string(&log).is_ok_and(|t| !t.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < until, "strace never attached");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = fs::read_to_string(&log).unwrap().lines().count();
    for i in 0..20u64 {
        file.write_all_at(&[i as u8; 4096], i * 4096).unwrap();
        file.sync_all().unwrap();
    }
    // Long enough for the writer's save of the last commits (50 ms after them).
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: SIGINT to the strace this test started; it detaches and exits.
    assert_eq!(unsafe { libc::kill(strace.id() as i32, libc::SIGINT) }, 0);
    strace.wait().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    let mut request_path = 0;
    let mut by_writer = 0;
    for line in text.lines().skip(start) {
        let tid = line.split_whitespace().next().unwrap_or("");
        if !line.contains("sync") || !line.trim_end().ends_with("= 0") {
            continue;
        }
        // The main thread's are the periodic commits and the status file.
        if writer.iter().any(|w| w == tid) {
            by_writer += 1;
        } else if fuse.iter().any(|f| f == tid) {
            request_path += 1;
        }
    }
    // A periodic commit in the window may have taken a write before its fsync, leaving
    // that fsync nothing to do: fewer, never more.
    assert!(
        (40..=80).contains(&request_path),
        "{request_path} syncs on the request path for 20 fsyncs (four each):\n{text}"
    );
    assert!(
        by_writer >= 2,
        "the writer never saved the record of heads seen:\n{text}"
    );
}

fn stored_bytes(d: &Drive) -> u64 {
    packs(d)
        .iter()
        .map(|p| fs::metadata(p).expect("stat pack").len())
        .sum()
}

/// Small fsync'd writes into a large file, as a database makes: each stores a patch of
/// the sectors it changed (FORMAT.md §5.1, chunk slot 03), not its 256 KiB chunk again.
/// What was fsync'd survives kill -9, fsck finds nothing wrong, and a changed byte in a
/// patch gives EIO for that chunk only, never the base's old bytes.
#[test]
fn small_fsynced_writes_store_patches_that_survive_kill_9() {
    use std::os::unix::fs::FileExt;
    let mut d = Drive::mount_with(MountOptions {
        commit_interval: Some(3600),
        ..Default::default()
    });
    let path = d.notes().join("db");
    let mut model = pseudo_random(16 * CHUNK, 11);
    write_synced(&path, &model);
    let before = stored_bytes(&d);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let edits = pseudo_random(40 * 4096, 12);
    let mut before_last = Vec::new();
    for i in 0..40usize {
        if i == 39 {
            before_last = packs(&d);
        }
        // Spread over the file, not aligned to sectors (some cross two).
        let off = (i * 397_331 + 1000) % (model.len() - 5000);
        let data = &edits[i * 4096..(i + 1) * 4096];
        file.write_all_at(data, off as u64).unwrap();
        file.sync_all().unwrap();
        model[off..off + 4096].copy_from_slice(data);
    }
    drop(file);
    let grown = stored_bytes(&d) - before;
    // A chunk each would be 40 × 256 KiB = 10 MiB; a patch each is about 8 KiB of sectors
    // plus the leaf beside it.
    assert!(
        grown < 40 * 32 * 1024,
        "40 fsync'd 4 KiB writes stored {grown} bytes"
    );
    // The last write's pack, found by what it added (mtimes tie at the clock's tick).
    let added: Vec<PathBuf> = packs(&d)
        .into_iter()
        .filter(|p| !before_last.contains(p))
        .collect();
    assert_eq!(added.len(), 1, "the last fsync stored {added:?}");
    let newest = added[0].clone();
    kill9(&mut d);
    d.mount_again();
    let path = d.notes().join("db");
    assert_bytes_eq(&fs::read(&path).unwrap(), &model, "after kill -9");
    d.unmount();
    let (code, out) = fsck(&d);
    assert_eq!(code, 0, "fsck:\n{out}");
    // The last commit's pack: its patch first (pack header 8, blob header 21), then the
    // leaf. A byte of the patch changed: the last write's chunk gives EIO, the rest of
    // the file reads.
    let mut bytes = fs::read(&newest).unwrap();
    bytes[8 + 21 + 100] ^= 1;
    fs::write(&newest, &bytes).unwrap();
    d.mount_again();
    let path = d.notes().join("db");
    let last = (39 * 397_331 + 1000) % (model.len() - 5000);
    let f = fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 100];
    let err = f.read_at(&mut buf, last as u64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let other = if last < 8 * CHUNK { 12 * CHUNK } else { CHUNK };
    f.read_exact_at(&mut buf, other as u64).unwrap();
    assert_eq!(buf, model[other..other + 100]);
}
