//! `cirrus export` / `cirrus export-read` on real drives: a plain tar that system tar reads
//! (and that leaves end-to-end categories out), an encrypted archive that round-trips
//! every byte and attribute and shows no plaintext, and damaged archives that are refused.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::format::export::{EXPORT_HEADER_LEN, SEALED_SEGMENT_LEN};
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: usize = 1 << 20;
const HEALTH_SECRET: &str = "HEALTH-SECRET-7731 resting pulse 52";

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

fn cirrus(d: &Drive, args: &[&OsStr]) -> Out {
    let o = d
        .cirrus_cmd()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cirrus");
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn password_file(d: &Drive, name: &str, pw: &str) -> PathBuf {
    let p = d.root.join(name);
    fs::write(&p, format!("{pw}\n")).unwrap();
    p
}

/// `cirrus export --out OUT --passcode-file P <extra>` with cheap Argon2id costs.
fn export(d: &Drive, out: &Path, extra: &[&OsStr]) -> Out {
    let mut args: Vec<&OsStr> = vec![
        os("export"),
        os("--out"),
        out.as_os_str(),
        os("--passcode-file"),
        d.passcode_file.as_os_str(),
        os("--kdf-memory"),
        os("8192"),
        os("--kdf-time"),
        os("1"),
    ];
    args.extend_from_slice(extra);
    cirrus(d, &args)
}

fn export_read(d: &Drive, archive: &Path, pw: Option<&Path>, extra: &[&OsStr]) -> Out {
    let mut args: Vec<&OsStr> = vec![os("export-read"), archive.as_os_str()];
    if let Some(p) = pw {
        args.push(os("--archive-password-file"));
        args.push(p.as_os_str());
    }
    args.extend_from_slice(extra);
    cirrus(d, &args)
}

fn with_suffix(p: &Path, s: &str) -> PathBuf {
    PathBuf::from(format!("{}{s}", p.display()))
}

#[test]
fn unencrypted_export_is_a_plain_tar_that_leaves_e2e_categories_out() {
    let mut d = Drive::mount();
    build_sample_tree(
        &d.notes(),
        SampleTree {
            specials: true,
            sparse: true,
        },
    );
    fs::write(d.health().join("pulse.txt"), HEALTH_SECRET).unwrap();
    fs::write(d.category_path("Mail").join("m.eml"), b"transit mail\n").unwrap();
    let want = manifest(&d.notes());
    d.unmount();

    let out = d.root.join("backup.tar");
    let r = export(&d, &out, &[os("--unencrypted")]);
    assert!(r.ok, "{}", r.all());
    let left = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Left out:"))
        .unwrap_or_else(|| panic!("no `Left out:` line\n{}", r.all()));
    for name in ["Health", "Keychain", "Messages"] {
        assert!(
            left.contains(name),
            "{name} must be named as left out: {left}"
        );
    }
    assert!(r.stdout.contains("NOT encrypted"), "{}", r.all());
    assert!(!with_suffix(&out, ".partial").exists());
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let bytes = fs::read(&out).unwrap();
    assert!(!contains(&bytes, HEALTH_SECRET.as_bytes()));
    let listing = run_ok(Command::new(require_tool("tar")).arg("-tvf").arg(&out));
    for needle in [
        "Notes/a/b/big.bin",
        "Notes/a/b/c/lines.txt",
        "Notes/link-to-dir -> a/b/c",
        "Notes/special/fifo",
        "Mail/m.eml",
    ] {
        assert!(
            listing.contains(needle),
            "`tar -tvf` lacks {needle}:\n{listing}"
        );
    }
    assert!(
        listing.lines().any(|l| l.contains(" link to Notes/")),
        "a hard link entry:\n{listing}"
    );
    assert!(!listing.contains("Health"), "{listing}");

    // System tar restores it byte for byte, with modes, owners, times and xattrs.
    let x = d.root.join("by-tar");
    fs::create_dir(&x).unwrap();
    run_ok(
        Command::new(require_tool("tar"))
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&out)
            .arg("-C")
            .arg(&x),
    );
    assert_manifest_eq(
        &manifest(&x.join("Notes")),
        &want,
        "extracted by system tar",
    );
    assert!(!x.join("Health").exists());

    // And export-read reads a plain archive too, but not when a password says it should
    // have been encrypted.
    let r = export_read(&d, &out, None, &[os("--list")]);
    assert!(r.ok && r.stdout.contains("Notes/hello.txt"), "{}", r.all());
    let pw = password_file(&d, "pw", "some password");
    let r = export_read(&d, &out, Some(&pw), &[os("--list")]);
    assert!(!r.ok && r.stderr.contains("not encrypted"), "{}", r.all());

    // Never overwrites without --force; refuses to put an e2e category in plain text.
    let r = export(&d, &out, &[os("--unencrypted")]);
    assert!(!r.ok && r.stderr.contains("--force"), "{}", r.all());
    let r = export(
        &d,
        &out,
        &[
            os("--unencrypted"),
            os("--force"),
            os("--category"),
            os("Mail"),
        ],
    );
    assert!(r.ok, "{}", r.all());
    let listing = run_ok(Command::new(require_tool("tar")).arg("-tf").arg(&out));
    assert!(
        listing.contains("Mail/m.eml") && !listing.contains("Notes/"),
        "{listing}"
    );
    let other = d.root.join("health.tar");
    let r = export(
        &d,
        &other,
        &[os("--unencrypted"), os("--category"), os("Health")],
    );
    assert!(!r.ok && r.stderr.contains("end-to-end"), "{}", r.all());
    assert!(!other.exists() && !with_suffix(&other, ".partial").exists());
}

#[test]
fn encrypted_export_round_trips_everything_while_mounted_and_shows_no_plaintext() {
    let d = Drive::mount();
    build_sample_tree(
        &d.notes(),
        SampleTree {
            specials: true,
            sparse: true,
        },
    );
    let h = d.health();
    // Larger than a few 1 MiB segments, so its content spans segment boundaries.
    let big = pseudo_random(5 * MIB + 12_345, 9);
    fs::write(h.join("big.bin"), &big).unwrap();
    fs::write(h.join("pulse.txt"), HEALTH_SECRET).unwrap();
    fs::create_dir(h.join("records")).unwrap();
    fs::write(h.join("records/2026.csv"), b"date,steps\n").unwrap();
    std::os::unix::fs::symlink("../pulse.txt", h.join("records/latest")).unwrap();
    set_xattr(&h.join("pulse.txt"), "user.source", b"watch", 0).unwrap();
    // Exported while mounted: what counts is what is committed, and fsync commits.
    for dir in [d.notes(), d.health()] {
        fs::File::open(&dir).unwrap().sync_all().unwrap();
    }
    let want_notes = manifest(&d.notes());
    let want_health = manifest(&d.health());

    let out = d.root.join("backup.crex");
    let pw = password_file(&d, "pw", "correct archive password");
    let r = export(&d, &out, &[os("--archive-password-file"), pw.as_os_str()]);
    assert!(r.ok, "{}", r.all());
    assert!(!r.stderr.contains("deprecated"), "{}", r.all());
    assert!(!r.stdout.contains("Left out"), "{}", r.all());
    assert!(r.stdout.contains("Encrypted"), "{}", r.all());
    assert!(r.stdout.contains("mounted"), "{}", r.all());

    let bytes = fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"CREX");
    for plain in [
        HEALTH_SECRET.as_bytes(),
        b"hello, world",
        b"hello.txt",
        b"date,steps",
        b"a comment",
        &big[MIB..MIB + 64],
    ] {
        assert!(
            !contains(&bytes, plain),
            "the archive holds plaintext {:?}",
            String::from_utf8_lossy(plain)
        );
    }
    let segments = (bytes.len() - EXPORT_HEADER_LEN).div_ceil(SEALED_SEGMENT_LEN);
    assert!(segments >= 6, "{segments} segments");

    let r = export_read(&d, &out, Some(&pw), &[os("--list")]);
    assert!(r.ok, "{}", r.all());
    for needle in [
        "Health/big.bin",
        "Health/records/latest -> ../pulse.txt",
        "Notes/hello.txt",
    ] {
        assert!(
            r.stdout.contains(needle),
            "listing lacks {needle}:\n{}",
            r.all()
        );
    }
    assert!(r.stderr.contains("Verified all"), "{}", r.all());

    let x = d.root.join("restored");
    let r = export_read(&d, &out, Some(&pw), &[os("--extract"), x.as_os_str()]);
    assert!(r.ok, "{}", r.all());
    assert!(!with_suffix(&x, ".partial").exists());
    assert_eq!(file_hash(&x.join("Health/big.bin")), hash(&big));
    assert_manifest_eq(&manifest(&x.join("Notes")), &want_notes, "Notes restored");
    assert_manifest_eq(
        &manifest(&x.join("Health")),
        &want_health,
        "Health restored",
    );
    // Extracting again into the same place is refused, not merged.
    let r = export_read(&d, &out, Some(&pw), &[os("--extract"), x.as_os_str()]);
    assert!(!r.ok && r.stderr.contains("exists"), "{}", r.all());
}

#[test]
fn wrong_password_and_damaged_archives_are_refused() {
    let mut d = Drive::mount();
    let big = pseudo_random(3 * MIB + 500_000, 11);
    fs::write(d.health().join("big.bin"), &big).unwrap();
    fs::write(d.notes().join("small.txt"), b"small\n").unwrap();
    d.unmount();
    let out = d.root.join("backup.crex");
    let pw = password_file(&d, "pw", "right password");
    // The old spelling of --archive-password-file (issue 16): it still encrypts the
    // archive with that password, and warns.
    let r = export(
        &d,
        &out,
        &[
            os("--password-file"),
            pw.as_os_str(),
            os("--category"),
            os("Notes"),
            os("--category"),
            os("Health"),
        ],
    );
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stderr.contains("deprecated") && r.stderr.contains("--archive-password-file"),
        "{}",
        r.all()
    );
    let good = fs::read(&out).unwrap();
    let body = good.len() - EXPORT_HEADER_LEN;
    let n = body.div_ceil(SEALED_SEGMENT_LEN);
    assert!(n >= 4, "{n} segments");
    let seg = |i: usize| {
        let s = EXPORT_HEADER_LEN + i * SEALED_SEGMENT_LEN;
        good[s..(s + SEALED_SEGMENT_LEN).min(good.len())].to_vec()
    };

    // The intact archive reads fine (so the failures below are the damage's doing), with
    // the password it was given under the old spelling, and under export-read's own old
    // spelling too.
    let r = export_read(&d, &out, Some(&pw), &[os("--list")]);
    assert!(r.ok, "{}", r.all());
    let r = cirrus(
        &d,
        &[
            os("export-read"),
            out.as_os_str(),
            os("--password-file"),
            pw.as_os_str(),
            os("--list"),
        ],
    );
    assert!(r.ok && r.stderr.contains("deprecated"), "{}", r.all());

    let wrong = password_file(&d, "wrong", "wrong password");
    let mut flipped = good.clone();
    flipped[EXPORT_HEADER_LEN + SEALED_SEGMENT_LEN + SEALED_SEGMENT_LEN / 2] ^= 0x10;
    let truncated = good[..EXPORT_HEADER_LEN + (n - 1) * SEALED_SEGMENT_LEN].to_vec();
    let mut swapped = good[..EXPORT_HEADER_LEN].to_vec();
    for i in [0, 2, 1] {
        swapped.extend_from_slice(&seg(i));
    }
    for i in 3..n {
        swapped.extend_from_slice(&seg(i));
    }
    let mut header_edit = good.clone();
    header_edit[26] ^= 3; // the Argon2id time cost, 1 → 2: another key
    let mut salt_edit = good.clone();
    salt_edit[10] ^= 1;
    let mut appended = good.clone();
    appended.extend_from_slice(b"more bytes after the end");

    let cases: Vec<(&str, Vec<u8>, &Path, &str)> = vec![
        (
            "wrong password",
            good.clone(),
            &wrong,
            "wrong password or damaged archive",
        ),
        ("flipped byte", flipped, &pw, "damaged archive: segment 1"),
        ("last segment dropped", truncated, &pw, "truncated"),
        (
            "segments swapped",
            swapped,
            &pw,
            "damaged archive: segment 1",
        ),
        (
            "cost edited",
            header_edit,
            &pw,
            "wrong password or damaged archive",
        ),
        (
            "salt edited",
            salt_edit,
            &pw,
            "wrong password or damaged archive",
        ),
        ("bytes appended", appended, &pw, "damaged archive"),
    ];
    for (what, data, pw_file, msg) in cases {
        let file = d.root.join(format!("{}.crex", what.replace(' ', "-")));
        fs::write(&file, &data).unwrap();
        let r = export_read(&d, &file, Some(pw_file), &[os("--list")]);
        assert!(!r.ok, "{what}: --list must fail\n{}", r.all());
        assert!(
            r.stderr.contains(msg),
            "{what}: expected {msg:?}\n{}",
            r.all()
        );
        let x = d.root.join(format!("x-{}", what.replace(' ', "-")));
        let r = export_read(&d, &file, Some(pw_file), &[os("--extract"), x.as_os_str()]);
        assert!(!r.ok, "{what}: --extract must fail\n{}", r.all());
        assert!(
            r.stderr.contains(msg),
            "{what}: expected {msg:?}\n{}",
            r.all()
        );
        assert!(!x.exists(), "{what}: the target directory must not appear");
        if what == "wrong password" {
            assert!(r.stderr.contains("Nothing was extracted"), "{}", r.all());
            assert!(!with_suffix(&x, ".partial").exists());
        }
        // The big file spans the damaged part: it must not be left half-written.
        let partial_big = with_suffix(&x, ".partial").join("Health/big.bin");
        if partial_big.exists() {
            assert_eq!(
                file_hash(&partial_big),
                hash(&big),
                "{what}: only whole, verified files may remain"
            );
        }
    }
}

/// A plain tar with a set-user-ID file and a character device, as anyone could write one.
fn setuid_and_device_tar(path: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let entries: [(&str, tar::EntryType, u32, &[u8]); 3] = [
        ("x/su", tar::EntryType::Regular, 0o4755, b"#!/bin/sh\n"),
        ("x/sg", tar::EntryType::Regular, 0o2750, b"x"),
        ("x/null", tar::EntryType::Char, 0o666, b""),
    ];
    for (name, t, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(t);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        // SAFETY: no preconditions.
        h.set_uid(unsafe { libc::geteuid() }.into());
        // SAFETY: no preconditions.
        h.set_gid(unsafe { libc::getegid() }.into());
        if t == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn plain_tar_drops_set_id_bits_and_refuses_devices_unless_same_permissions() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let d = tempfile::tempdir().unwrap();
    let tar = d.path().join("foreign.tar");
    setuid_and_device_tar(&tar);
    let read = |extra: &[&str]| {
        let o = Command::new(cirrus_bin())
            .arg("--home")
            .arg(d.path().join("home"))
            .arg("export-read")
            .arg(&tar)
            .args(extra)
            .output()
            .unwrap();
        let all = format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), all)
    };
    let mode = |p: PathBuf| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;

    // By default: the device is refused (by name), and what came before lost its set-ID bits.
    let x = d.path().join("default");
    let (ok, out) = read(&["--extract", x.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("x/null: a device node; refused"),
        "the device must be named:\n{out}"
    );
    assert!(!x.exists());
    let partial = with_suffix(&x, ".partial");
    assert_eq!(mode(partial.join("x/su")), 0o755);
    assert_eq!(mode(partial.join("x/sg")), 0o750);
    assert!(fs::symlink_metadata(partial.join("x/null")).is_err());

    // --same-permissions keeps the archive's modes and makes the device (root only).
    let y = d.path().join("same");
    let (ok, out) = read(&["--extract", y.to_str().unwrap(), "--same-permissions"]);
    assert!(ok, "{out}");
    assert_eq!(mode(y.join("x/su")), 0o4755);
    assert_eq!(mode(y.join("x/sg")), 0o2750);
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let dev = fs::symlink_metadata(y.join("x/null")).unwrap();
        assert!(dev.file_type().is_char_device(), "{out}");
        assert_eq!(dev.rdev(), libc::makedev(1, 3));
    } else {
        assert!(out.contains("only root"), "{out}");
    }
}
