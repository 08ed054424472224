//! Frozen fixture vaults (tests/fixtures/vN, made once by scripts/make-fixture and never
//! regenerated): every later build must still mount and read them exactly.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "copying the fixture failed");
}

struct Mounted {
    home: PathBuf,
    mnt: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_fuse_mount(&self.mnt) {
            let _ = cirrus_command()
                .arg("--home")
                .arg(&self.home)
                .arg("umount")
                .arg(&self.mnt)
                .status();
        }
        if is_fuse_mount(&self.mnt) {
            force_unmount(&self.mnt);
        }
    }
}

fn mount_fixture(version: &str) -> Mounted {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    copy_tree(&src, &home);
    // As after restoring a home from a copy: the daemon refuses one others can enter.
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = cirrus_command()
        .arg("--home")
        .arg(&home)
        .arg("mount")
        .arg(&mnt)
        .arg("--passcode-file")
        .arg(home.join("PASSCODE"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mounting fixture {version} failed: {out:?}"
    );
    Mounted {
        home,
        mnt,
        _tmp: tmp,
    }
}

#[test]
fn format_v1_fixture_reads_back_exactly() {
    let m = mount_fixture("v1");
    let notes = m.mnt.join("Notes");
    let hello = notes.join("hello.txt");
    assert_eq!(fs::read(&hello).unwrap(), b"Hello, format v1!\n");
    let md = fs::metadata(&hello).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (981_173_106, 123_456_789));
    assert_eq!(md.nlink(), 2);
    assert_eq!(md.mode() & 0o7777, 0o644);
    let hard = fs::metadata(notes.join("dir/sub/hardlink")).unwrap();
    assert_eq!(hard.ino(), md.ino(), "hard link must share the inode");
    assert_eq!(get_xattr(&hello, "user.color").unwrap(), b"blue");
    assert_eq!(
        fs::read_link(notes.join("dir/link")).unwrap(),
        Path::new("../hello.txt")
    );
    assert_eq!(
        fs::metadata(notes.join("dir")).unwrap().mode() & 0o7777,
        0o750
    );
    let three = fs::read(notes.join("dir/three-chunks.txt")).unwrap();
    assert_eq!(three.len(), 700_000);
    assert!(three.iter().all(|b| *b == b'a'));
    let sparse = fs::read(notes.join("dir/sparse.bin")).unwrap();
    assert_eq!(sparse.len(), 1 << 20);
    assert_eq!(&sparse[300_000..300_006], b"island");
    assert!(sparse[..300_000].iter().all(|b| *b == 0));
    assert!(sparse[300_006..].iter().all(|b| *b == 0));
    assert_eq!(
        fs::read(m.mnt.join("Health/steps.txt")).unwrap(),
        b"end-to-end secret\n"
    );
    assert_eq!(
        fs::read(m.mnt.join("Mail/inbox.eml")).unwrap(),
        b"transit mail\n"
    );
    // The old format stays writable too.
    fs::write(notes.join("new.txt"), b"written by a newer build").unwrap();
    assert_eq!(
        fs::read(notes.join("new.txt")).unwrap(),
        b"written by a newer build"
    );
    // The first unlock upgraded the account: a signed manifest replaced the MAC'd table,
    // and every head is now signed (layout "CRH2").
    let store = m.home.join("store");
    assert!(store.join("account/manifest").exists());
    assert!(!store.join("account/categories").exists());
    assert!(m.home.join("device/identity").exists());
    let mut heads = 0;
    for h in fs::read_dir(store.join("heads")).unwrap() {
        let b = fs::read(h.unwrap().path()).unwrap();
        assert_eq!(&b[..4], b"CRH2", "an unsigned head survived the upgrade");
        heads += 1;
    }
    assert!(heads >= 3);
}

#[test]
fn upgraded_fixture_mounts_again_and_refuses_a_downgraded_head() {
    let m = mount_fixture("v1");
    let out = cirrus_command().arg("umount").arg(&m.mnt).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Put the fixture's original, unsigned Notes head back: a server downgrading the
    // format to bypass signatures.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/store/heads");
    let notes_head = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() == "00000005")
        .expect("Notes head in the fixture");
    fs::copy(&notes_head, m.home.join("store/heads/00000005")).unwrap();
    let out = cirrus_command()
        .arg("--home")
        .arg(&m.home)
        .arg("fsck")
        .arg("--passcode-file")
        .arg(m.home.join("PASSCODE"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unsigned head"), "{text}");
}

#[test]
fn corrupted_fixture_copy_is_detected_by_fsck() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    copy_tree(&src, &home);
    let fsck = || {
        cirrus_command()
            .arg("--home")
            .arg(&home)
            .arg("fsck")
            .arg("--passcode-file")
            .arg(home.join("PASSCODE"))
            .output()
            .unwrap()
    };
    let clean = fsck();
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    // Flip one byte in the middle of the largest pack (the three-chunk file's data).
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for sub in fs::read_dir(home.join("store/packs")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            packs.push((fs::metadata(&p).unwrap().len(), p));
        }
    }
    packs.sort();
    let (_, big) = packs.pop().unwrap();
    let mut b = fs::read(&big).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    fs::write(&big, &b).unwrap();
    let bad = fsck();
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(text.contains("Notes") && text.contains("chunk"), "{text}");
}
