//! The command line around a mounted drive: status, one daemon per home, categories.

mod common;

use common::*;
use std::fs;

fn out(cmd: &mut std::process::Command) -> (bool, String) {
    let o = cmd.output().expect("run cirrus");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn status_reports_classes_sizes_and_the_running_daemon() {
    let d = Drive::mount();
    fs::write(d.notes().join("n.txt"), vec![7u8; 300_000]).unwrap();
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
            .to_string()
    };
    assert!(line("Health").contains("e2e"), "{text}");
    assert!(line("Notes").contains("standard"), "{text}");
    assert!(
        line("Mail").contains("transit") && line("Mail").contains("UNENCRYPTED"),
        "{text}"
    );
    assert!(
        text.contains("mounted: at"),
        "status must see the running daemon:\n{text}"
    );
    // The write is reported once committed (fsync commits).
    fs::File::open(d.notes().join("n.txt"))
        .unwrap()
        .sync_all()
        .unwrap();
    let (_, text) = out(d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file));
    let notes = text
        .lines()
        .find(|l| l.starts_with("Notes"))
        .unwrap()
        .to_string();
    assert!(
        notes.contains("293.0 KiB"),
        "Notes should hold 300000 bytes: {notes}"
    );
}

#[test]
fn a_home_is_served_by_one_daemon_only() {
    let d = Drive::mount();
    let other = d.root.join("second-mnt");
    fs::create_dir(&other).unwrap();
    let (ok, text) = out(d
        .cirrus_cmd()
        .arg("mount")
        .arg(&other)
        .arg("--passcode-file")
        .arg(&d.passcode_file));
    assert!(!ok, "a second daemon on the same home must be refused");
    assert!(text.contains("already mounted"), "{text}");
    assert!(!is_fuse_mount(&other));
}

#[test]
fn categories_can_be_added_and_retired() {
    let mut d = Drive::mount();
    let (ok, text) = out(d
        .cirrus_cmd()
        .args([
            "category",
            "add",
            "Recipes",
            "--class",
            "e2e",
            "--passcode-file",
        ])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "add", "Recipes", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(!ok && text.contains("already exists"), "{text}");
    d.remount();
    let r = d.category_path("Recipes");
    fs::write(r.join("soup.txt"), b"salt").unwrap();
    assert_eq!(fs::read(r.join("soup.txt")).unwrap(), b"salt");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "list", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && text
            .lines()
            .any(|l| l.starts_with("Recipes") && l.contains("e2e")),
        "{text}"
    );
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "remove", "Recipes", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    d.remount();
    assert!(
        !d.mnt.join("Recipes").exists(),
        "a retired category is not shown"
    );
    // The root itself stays read-only.
    let e = fs::create_dir(d.mnt.join("NewTopLevel")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    // And files cannot move between categories (separate keys).
    fs::write(d.notes().join("m.txt"), b"x").unwrap();
    let e = fs::rename(d.notes().join("m.txt"), d.health().join("m.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
}

#[test]
fn gc_deletes_only_unreferenced_packs_and_only_while_unmounted() {
    let mut d = Drive::mount();
    let keep = pseudo_random(700_000, 1);
    let f = d.notes().join("rewritten.bin");
    fs::write(&f, pseudo_random(700_000, 2)).unwrap();
    fs::File::open(&f).unwrap().sync_all().unwrap();
    fs::write(&f, &keep).unwrap();
    fs::File::open(&f).unwrap().sync_all().unwrap();
    fs::write(d.health().join("stays.txt"), b"e2e data").unwrap();
    // refused while mounted
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(!ok && text.contains("unmounted"), "{text}");
    d.unmount();
    // Fresh garbage is younger than the default grace period (another device might be
    // about to publish a head naming it): kept.
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.starts_with("0 unreferenced"), "{text}");
    assert!(
        text.contains("unreferenced and old for the grace period"),
        "{text}"
    );
    // Old enough, but only now found unreferenced: marked, not deleted, until it has
    // stayed unreferenced for the grace period too (an offline device may still name it).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "2s", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.starts_with("deleted 0 "), "{text}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "2s", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && !text.starts_with("0 "),
        "marked long enough ago: {text}"
    );
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "0", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let would: usize = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(would >= 1, "the rewritten data must leave garbage: {text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "0", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.contains(&format!("deleted {would} ")), "{text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["fsck", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && text.contains("no damage") && !text.contains("not referenced"),
        "{text}"
    );
    d.mount_again();
    assert_bytes_eq(
        &fs::read(d.notes().join("rewritten.bin")).unwrap(),
        &keep,
        "after gc",
    );
    assert_eq!(fs::read(d.health().join("stays.txt")).unwrap(), b"e2e data");
}
