//! Extraction from archives anyone could have written: set-ID bits and device nodes only
//! with `Permissions::Same`, and no entry reaches outside the target, by `..` or through
//! a symlink the archive made.

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use tar::{Builder, Header};

/// One tar entry: path, type, mode, content or link target, device numbers.
struct E<'a>(&'a str, EntryType, u32, &'a [u8]);

fn archive(entries: &[E]) -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    for E(path, t, mode, data) in entries {
        let mut h = Header::new_gnu();
        h.set_entry_type(*t);
        h.set_mode(*mode);
        h.set_mtime(1_700_000_000);
        // SAFETY: no preconditions.
        h.set_uid(unsafe { libc::geteuid() }.into());
        // SAFETY: no preconditions.
        h.set_gid(unsafe { libc::getegid() }.into());
        let body: &[u8] = match t {
            EntryType::Symlink | EntryType::Link => {
                h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
                &[]
            }
            EntryType::Char => {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                &[]
            }
            _ => data,
        };
        h.set_size(body.len() as u64);
        // set_path refuses `..`; an attacker's archive is not so polite.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn setuid_and_device() -> Vec<u8> {
    archive(&[
        E("bin", EntryType::Directory, 0o2775, b""),
        E("bin/su", EntryType::Regular, 0o4755, b"#!/bin/sh\n"),
        E("bin/sg", EntryType::Regular, 0o2711, b"x"),
        E("bin/null", EntryType::Char, 0o666, b""),
    ])
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn restricted_drops_set_id_bits_and_refuses_device_nodes() {
    let d = tempfile::tempdir().unwrap();
    let r = extract(&setuid_and_device()[..], d.path(), Permissions::Restricted);
    match r {
        Err(ExportError::DeviceRefused(p)) => assert_eq!(p, "bin/null"),
        other => panic!("expected the device to be refused: {other:?}"),
    }
    assert_eq!(mode(&d.path().join("bin/su")), 0o755);
    assert_eq!(mode(&d.path().join("bin/sg")), 0o711);
    assert!(fs::symlink_metadata(d.path().join("bin/null")).is_err());

    let plain = archive(&[
        E("d", EntryType::Directory, 0o3775, b""),
        E("d/su", EntryType::Regular, 0o4755, b"x"),
        E("d/t", EntryType::Regular, 0o1644, b"x"),
        E("d/ok", EntryType::Regular, 0o640, b"x"),
    ]);
    let d = tempfile::tempdir().unwrap();
    let rep = extract(&plain[..], d.path(), Permissions::Restricted).unwrap();
    assert_eq!(rep.special_bits_dropped, 2);
    // A directory keeps set-group-ID and sticky: no privilege in either.
    assert_eq!(mode(&d.path().join("d")), 0o3775);
    assert_eq!(mode(&d.path().join("d/su")), 0o755);
    assert_eq!(mode(&d.path().join("d/t")), 0o644);
    assert_eq!(mode(&d.path().join("d/ok")), 0o640);
}

/// One file whose PAX header carries `user.a`, `security.x` and `trusted.y`.
fn file_with_xattrs() -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.a", &b"1"[..]),
        ("SCHILY.xattr.security.x", &b"2"[..]),
        ("SCHILY.xattr.trusted.y", &b"3"[..]),
    ])
    .unwrap();
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::Regular);
    h.set_path("f").unwrap();
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    // SAFETY: no preconditions.
    h.set_uid(unsafe { libc::geteuid() }.into());
    // SAFETY: no preconditions.
    h.set_gid(unsafe { libc::getegid() }.into());
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

/// The value of xattr `name` on `p`, or `None` if it has none.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let len = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 64) };
    if len < 0 {
        let err = io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::ENODATA), "{name}: {err}");
        return None;
    }
    Some(buf[..len as usize].to_vec())
}

#[test]
fn restricted_restores_only_user_xattrs() {
    // The decision, which holds whoever runs the test.
    let r = Permissions::Restricted;
    assert!(r.keeps_xattr(b"user.a"));
    for name in [
        &b"security.x"[..],
        b"security.capability",
        b"trusted.y",
        b"system.posix_acl_access",
    ] {
        assert!(!r.keeps_xattr(name));
        assert!(Permissions::Same.keeps_xattr(name));
    }

    let d = tempfile::tempdir().unwrap();
    let rep = extract(&file_with_xattrs()[..], d.path(), Permissions::Restricted).unwrap();
    let f = d.path().join("f");
    assert_eq!(rep.xattrs_skipped, 2);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
    assert_eq!(xattr(&f, "user.a").as_deref(), Some(&b"1"[..]));
    assert_eq!(xattr(&f, "security.x"), None);
    assert_eq!(xattr(&f, "trusted.y"), None);

    // Only root can set trusted.*: as root, --same-permissions restores it, which shows
    // the absence above is the restricted mode's doing and not the filesystem's.
    if is_root() {
        let d = tempfile::tempdir().unwrap();
        let rep = extract(&file_with_xattrs()[..], d.path(), Permissions::Same).unwrap();
        let f = d.path().join("f");
        assert_eq!(rep.xattrs_skipped, 0);
        assert_eq!(xattr(&f, "user.a").as_deref(), Some(&b"1"[..]));
        assert_eq!(xattr(&f, "trusted.y").as_deref(), Some(&b"3"[..]));
    } else {
        eprintln!(
            "not root: the --same-permissions half of this test (trusted.* restored) did not run"
        );
    }
}

#[test]
fn same_permissions_keeps_set_id_bits_and_makes_devices_as_root() {
    let d = tempfile::tempdir().unwrap();
    let rep = extract(&setuid_and_device()[..], d.path(), Permissions::Same).unwrap();
    assert_eq!(rep.special_bits_dropped, 0);
    assert_eq!(mode(&d.path().join("bin")), 0o2775);
    assert_eq!(mode(&d.path().join("bin/su")), 0o4755);
    assert_eq!(mode(&d.path().join("bin/sg")), 0o2711);
    let dev = fs::symlink_metadata(d.path().join("bin/null"));
    if is_root() {
        let dev = dev.unwrap();
        assert!(dev.file_type().is_char_device());
        assert_eq!(dev.rdev(), libc::makedev(1, 3));
    } else {
        assert!(dev.is_err() && rep.warnings.iter().any(|w| w.contains("bin/null")));
    }
}

#[test]
fn no_entry_reaches_outside_the_target() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path();
    fs::write(out.join("victim"), b"untouched").unwrap();
    let out_s = out.to_str().unwrap();
    let victim = format!("{out_s}/victim");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            archive(&[E("../escaped", EntryType::Regular, 0o644, b"x")]),
        ),
        (
            "file through a symlinked directory",
            archive(&[
                E("evil", EntryType::Symlink, 0o777, out_s.as_bytes()),
                E("evil/escaped", EntryType::Regular, 0o644, b"x"),
            ]),
        ),
        (
            "directory through a symlinked directory",
            archive(&[
                E("evil", EntryType::Symlink, 0o777, out_s.as_bytes()),
                E("evil/escaped", EntryType::Directory, 0o755, b""),
            ]),
        ),
        (
            "file over a symlink to a file",
            archive(&[
                E("l", EntryType::Symlink, 0o777, victim.as_bytes()),
                E("l", EntryType::Regular, 0o644, b"overwritten"),
            ]),
        ),
        (
            "hard link through a symlinked directory",
            archive(&[
                E("evil", EntryType::Symlink, 0o777, out_s.as_bytes()),
                E("h", EntryType::Link, 0o644, b"evil/victim"),
            ]),
        ),
    ];
    for (what, data) in cases {
        let d = tempfile::tempdir().unwrap();
        let r = extract(&data[..], d.path(), Permissions::Same);
        assert!(
            matches!(
                r,
                Err(ExportError::UnsafePath(_)
                    | ExportError::BadEntry { .. }
                    | ExportError::Duplicate(_))
            ),
            "{what}: {r:?}"
        );
        assert_eq!(
            fs::read(out.join("victim")).unwrap(),
            b"untouched",
            "{what}"
        );
        assert!(!out.join("escaped").exists(), "{what}");
        assert!(
            !d.path().parent().unwrap().join("escaped").exists(),
            "{what}"
        );
        assert_eq!(fs::read_dir(out).unwrap().count(), 1, "{what}");
    }
}
