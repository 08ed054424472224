//! Extended attributes: `user.*`, and `security.*` and `trusted.*` for root, and POSIX
//! ACLs (`system.posix_acl_*`) kept by the daemon and enforced by the kernel.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;

#[test]
fn xattr_set_get_list_remove() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    assert_eq!(
        user_xattrs(&f),
        Vec::<String>::new(),
        "new file has no user xattrs"
    );
    set_xattr(&f, "user.a", b"1", 0).expect("set user.a");
    set_xattr(&f, "user.empty", b"", 0).expect("set empty value");
    let binary = [0u8, 1, 2, 0, 255, 254, 10, 13];
    set_xattr(&f, "user.bin", &binary, 0).expect("set binary value");
    set_xattr(&f, "user.with.dots and space", b"odd name", 0).expect("set odd name");
    assert_eq!(get_xattr(&f, "user.a").expect("get"), b"1");
    assert_eq!(get_xattr(&f, "user.empty").expect("get empty"), b"");
    assert_eq!(get_xattr(&f, "user.bin").expect("get bin"), binary);
    assert_eq!(
        get_xattr(&f, "user.with.dots and space").expect("get"),
        b"odd name"
    );
    assert_eq!(
        user_xattrs(&f),
        vec![
            "user.a",
            "user.bin",
            "user.empty",
            "user.with.dots and space"
        ],
        "listxattr"
    );
    // Size query, then ERANGE for a too-small buffer.
    let (size, _) = get_xattr_sized(&f, "user.bin", 0).expect("size query");
    assert_eq!(size, binary.len());
    assert_errno(
        get_xattr_sized(&f, "user.bin", 3),
        libc::ERANGE,
        "getxattr with small buffer",
    );
    // Overwrite with a shorter, then longer value.
    set_xattr(&f, "user.a", b"", 0).expect("overwrite empty");
    assert_eq!(get_xattr(&f, "user.a").expect("get"), b"");
    set_xattr(&f, "user.a", &[7u8; 1000], 0).expect("overwrite longer");
    assert_eq!(get_xattr(&f, "user.a").expect("get"), vec![7u8; 1000]);
    remove_xattr(&f, "user.a").expect("remove");
    assert_errno(get_xattr(&f, "user.a"), libc::ENODATA, "get removed xattr");
    assert_eq!(
        user_xattrs(&f),
        vec!["user.bin", "user.empty", "user.with.dots and space"]
    );
    // Content and other attributes are unaffected.
    assert_eq!(read_all(&f), b"x");
}

#[test]
fn xattr_missing_is_enodata() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    assert_errno(
        get_xattr(&f, "user.missing"),
        libc::ENODATA,
        "getxattr missing",
    );
    assert_errno(
        remove_xattr(&f, "user.missing"),
        libc::ENODATA,
        "removexattr missing",
    );
    assert_errno(
        get_xattr(&d.notes().join("nofile"), "user.x"),
        libc::ENOENT,
        "getxattr on missing file",
    );
}

/// Mounted with `-o noacl`, ACL names are unsupported, so GNU `ls` stops asking for
/// them on the mount and lists on; ACLs an ACL mount stored are neither shown nor
/// listed (the kernel does not enforce them) nor inherited, and come back with `acl`.
#[test]
fn with_noacl_the_acl_names_are_unsupported() {
    let mut d = Drive::mount();
    if d.is_plain() {
        return;
    }
    let (shared, f) = (d.notes().join("shared"), d.notes().join("f"));
    fs::create_dir(&shared).unwrap();
    fs::write(&f, b"x").expect("write");
    let (ok, t) = out(std::process::Command::new("setfacl")
        .args(["-m", "u:4242:r", "-d", "-m", "u:4242:rwx"])
        .arg(&shared));
    assert!(ok, "{t}");
    d.mount_options().extra = vec!["-o".into(), "noacl".into()];
    d.remount();
    assert!(
        list_xattr(&shared).unwrap().is_empty(),
        "no ACL names listed"
    );
    fs::write(shared.join("new"), b"y").unwrap();
    d.mount_options().extra = vec![];
    d.remount();
    let (_, t) = out(std::process::Command::new("getfacl").arg("-n").arg(&shared));
    assert!(t.contains("default:user:4242:rwx"), "kept: {t}");
    let (_, t) = out(std::process::Command::new("getfacl")
        .arg("-n")
        .arg(shared.join("new")));
    assert!(!t.contains("4242"), "not inherited under noacl: {t}");
    d.mount_options().extra = vec!["-o".into(), "noacl".into()];
    d.remount();
    // u::rw-,g::r--,o::r-- (FORMAT.md, "POSIX ACLs").
    let acl = [
        2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 4, 0, 4, 0, 255, 255, 255, 255, 0x20, 0, 4, 0,
        255, 255, 255, 255,
    ];
    for name in ["system.posix_acl_access", "system.posix_acl_default"] {
        assert_errno(get_xattr(&f, name), libc::EOPNOTSUPP, name);
        assert_errno(get_xattr(&d.notes(), name), libc::EOPNOTSUPP, name);
        assert_errno(get_xattr(&shared, name), libc::EOPNOTSUPP, name);
        assert_errno(set_xattr(&d.notes(), name, &acl, 0), libc::EOPNOTSUPP, name);
    }
    let out = std::process::Command::new("ls")
        .arg("-l")
        .arg(d.notes())
        .output()
        .expect("ls");
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw") && l.ends_with(" f")),
        "{listing}"
    );
}

/// What the ACL script prints in a directory: getfacl, modes and `ls -l`'s ACL mark
/// through setfacl, chmod, creation under default ACLs (with a umask they replace),
/// equivalent ACLs, removal, set-group-ID dropped when an owner outside the file's group
/// sets an ACL and kept when a supplementary group makes them a member, and the umask
/// where no default ACL is.
fn acl_script(user: &TestUser) -> String {
    format!(
        r#"
umask 022
show() {{ for x in "$@"; do stat -c '%A %n' "$x"; getfacl -n "$x"; ls -ld "$x" | cut -c1-11; done; }}
touch f
setfacl -m u:{uid}:r,g:{gid}:rw f; show f
chmod 640 f; show f
setfacl -m m::rwx f; show f
setfacl -x g:{gid} f; show f
setfacl -b f; show f
setfacl -m u::rwx,g::r-x,o::--x f; show f
setfacl -m u:12345:rwx f; chmod 600 f; show f
mkdir d; setfacl -d -m u:{uid}:rwx,g::r-x,o::- d; show d
touch d/a; mkdir d/sub; mkfifo d/p; ln -s a d/l; (umask 077; touch d/b); show d/a d/sub d/p d/b
getfacl -n d/l 2>&1 | head -3
setfacl -d -m m::r d; touch d/c; show d/c
setfacl -k d; touch d/e; show d d/e
setfacl -d -m u::rwx,g::rwx,o::rwx d; (umask 077; touch d/g; mkdir d/h); show d/g d/h
touch s; chown {uid}:0 s; chmod 2770 s; runuser -u {name} -- setfacl -m u:0:r s && echo owner set; show s
touch s2; chown {uid}:0 s2; chmod 2770 s2; setpriv --reuid={uid} --regid={gid} --groups=0 setfacl -m u:0:r s2 && echo member set; show s2
(umask 027; mkfifo q; mkdir r; touch t; ln -s t u); show q r t
setfacl -m 'u:bad user:r' f 2>&1 | tail -1 | cut -d: -f1
"#,
        uid = user.uid,
        gid = user.gid,
        name = user.name,
    )
}

fn run_acl_script(dir: &std::path::Path, script: &str) -> String {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// POSIX ACLs give the same answers as on tmpfs (the kernel's own rules, as ext4's): the
/// same script of setfacl, getfacl, chmod, creates under default ACLs and an owner's
/// setfacl on a set-group-ID file prints the same in a tmpfs folder and on the drive,
/// and again after a remount. Each step fails on a mount without the daemon's ACL rules
/// (mode not following the mask, no inheritance, umask applied under a default ACL).
#[test]
fn posix_acls_behave_as_on_tmpfs() {
    let mut d = Drive::mount_with(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    if d.is_plain() {
        return;
    }
    require_tool("setfacl");
    let user = test_user();
    let script = acl_script(&user);
    let reference = tempfile::tempdir_in("/dev/shm").expect("tmpfs folder");
    fs::set_permissions(reference.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let want = run_acl_script(reference.path(), &script);
    assert!(
        want.contains(&format!("user:{}:r--", user.uid)) && want.contains("default:"),
        "tmpfs here has no ACLs, so there is nothing to compare with:\n{want}"
    );
    for step in [
        "owner set\n-rwxrwx--- s\n",
        "member set\n-rwxrws--- s2\n",
        "prw-r----- q\n",
    ] {
        assert!(want.contains(step), "{step:?} in the tmpfs run:\n{want}");
    }
    let dir = d.notes().join("acl");
    fs::create_dir(&dir).unwrap();
    d.open_up_for_others(&dir);
    let got = run_acl_script(&dir, &script);
    assert_eq!(got, want, "the drive differs from tmpfs");
    // Stored: the same after a remount (the kernel's cached ACLs are gone).
    let listing = |dir: &std::path::Path| {
        run_acl_script(
            dir,
            "for x in f d d/a d/sub d/p d/b d/c d/e d/g d/h s s2 q r t; do stat -c '%A %n' $x; getfacl -n $x; done",
        )
    };
    let before = listing(&dir);
    assert_eq!(before, listing(reference.path()));
    d.remount();
    assert_eq!(listing(&dir), before, "after a remount");
}

/// The kernel enforces the ACLs the daemon keeps, and drops its cached copy when one
/// changes: a named user entry grants what the mode denies, the mask limits it, its
/// removal takes it away at once, and a default ACL lets the user create in a folder
/// the mode closes to them.
#[test]
fn the_kernel_enforces_stored_acls() {
    let d = Drive::mount_with(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    if d.is_plain() {
        return;
    }
    require_tool("setfacl");
    let user = test_user();
    let dir = d.notes().join("acl");
    fs::create_dir(&dir).unwrap();
    d.open_up_for_others(&dir);
    let f = dir.join("secret");
    fs::write(&f, b"x").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let setfacl = |args: &[&str], path: &std::path::Path| {
        let (ok, t) = out(std::process::Command::new("setfacl").args(args).arg(path));
        assert!(ok, "setfacl {args:?}: {t}");
    };
    let cf = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
    let open_as_user = |flags| as_user(&user, || open_close(&cf, flags, 0));
    assert_eq!(open_as_user(libc::O_RDONLY), libc::EACCES, "mode 0600");
    setfacl(&["-m", &format!("u:{}:r", user.uid)], &f);
    assert_eq!(open_as_user(libc::O_RDONLY), 0, "granted by a named entry");
    assert_eq!(open_as_user(libc::O_WRONLY), libc::EACCES, "read only");
    setfacl(&["-m", "m::-"], &f);
    assert_eq!(open_as_user(libc::O_RDONLY), libc::EACCES, "masked out");
    setfacl(&["-m", "m::r"], &f);
    assert_eq!(open_as_user(libc::O_RDONLY), 0, "mask back");
    setfacl(&["-x", &format!("u:{}", user.uid)], &f);
    assert_eq!(open_as_user(libc::O_RDONLY), libc::EACCES, "entry removed");
    // A folder closed to others by its mode, opened to the user by ACLs: the user's
    // new file inherits the default ACL.
    let sub = dir.join("shared");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    let new = std::ffi::CString::new(sub.join("mine").as_os_str().as_encoded_bytes()).unwrap();
    let create = || {
        as_user(&user, || {
            open_close(&new, libc::O_CREAT | libc::O_WRONLY, 0o600)
        })
    };
    assert_eq!(create(), libc::EACCES, "mode 0700");
    let grant = format!("u:{}:rwx", user.uid);
    setfacl(&["-m", &grant, "-d", "-m", &grant], &sub);
    setfacl(&["-m", &grant], &sub);
    assert_eq!(create(), 0, "granted by the folder's ACL");
    let (ok, t) = out(std::process::Command::new("getfacl")
        .arg("-n")
        .arg(sub.join("mine")));
    assert!(ok && t.contains(&format!("user:{}:rwx", user.uid)), "{t}");
    assert!(
        t.contains("mask::---"),
        "mode 0600 masks the inherited entry: {t}"
    );
}

/// `security.*` and `trusted.*` for root: stored and read back across a remount,
/// `setcap`/`getcap` work, a write drops the file capability as on ext4, and an
/// unprivileged user may set neither (the kernel refuses before the daemon is asked).
#[test]
fn security_and_trusted_attributes_for_root() {
    let mut d = Drive::mount_with(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    if d.is_plain() {
        return;
    }
    let f = d.notes().join("prog");
    fs::write(&f, b"#!/bin/sh\n").expect("write");
    // Unset names of these namespaces are "no such attribute" now, not "unsupported",
    // but for the SELinux label: "unsupported" keeps `ls -l` from asking every file.
    assert_errno(
        get_xattr(&f, "security.label"),
        libc::ENODATA,
        "unset security.*",
    );
    assert_errno(
        get_xattr(&f, "security.selinux"),
        libc::EOPNOTSUPP,
        "unset SELinux label",
    );
    set_xattr(&f, "security.selinux", b"system_u:object_r:x_t:s0", 0).expect("set label");
    assert_eq!(
        get_xattr(&f, "security.selinux").unwrap(),
        b"system_u:object_r:x_t:s0"
    );
    remove_xattr(&f, "security.selinux").expect("remove label");
    assert_errno(get_xattr(&f, "trusted.x"), libc::ENODATA, "unset trusted.*");
    set_xattr(&f, "trusted.overlay.opaque", b"y", 0).expect("set trusted.*");
    set_xattr(&f, "security.label", b"secret-label", 0).expect("set security.*");
    let setcap = require_tool("setcap");
    let getcap = require_tool("getcap");
    let (ok, t) = out(std::process::Command::new(&setcap)
        .arg("cap_net_raw+ep")
        .arg(&f));
    assert!(ok, "setcap: {t}");
    let (ok, t) = out(std::process::Command::new(&getcap).arg(&f));
    assert!(ok && t.contains("cap_net_raw=ep"), "getcap: {t}");
    d.remount();
    assert_eq!(get_xattr(&f, "trusted.overlay.opaque").unwrap(), b"y");
    assert_eq!(get_xattr(&f, "security.label").unwrap(), b"secret-label");
    let names = list_xattr(&f).unwrap();
    for n in [
        "trusted.overlay.opaque",
        "security.label",
        "security.capability",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} not listed: {names:?}");
    }
    let (_, t) = out(std::process::Command::new(&getcap).arg(&f));
    assert!(t.contains("cap_net_raw=ep"), "after a remount: {t}");
    // A write drops the capability (and only it).
    fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .and_then(|mut h| std::io::Write::write_all(&mut h, b"echo\n"))
        .expect("append");
    assert_errno(
        get_xattr(&f, "security.capability"),
        libc::ENODATA,
        "the capability after a write",
    );
    assert_eq!(get_xattr(&f, "security.label").unwrap(), b"secret-label");
    // Not for an unprivileged user, even on a file of theirs.
    let user = test_user();
    d.open_up_for_others(&d.notes());
    let theirs = d.notes().join("theirs");
    fs::write(&theirs, b"x").unwrap();
    std::os::unix::fs::chown(&theirs, Some(user.uid), Some(user.gid)).unwrap();
    let path = cpath(&theirs);
    for name in ["trusted.x", "security.label"] {
        let cname = std::ffi::CString::new(name).unwrap();
        let code = as_user(&user, || {
            // SAFETY: a raw syscall on C strings prepared before the child runs.
            let r = unsafe {
                libc::setxattr(path.as_ptr(), cname.as_ptr(), b"1".as_ptr().cast(), 1, 0)
            };
            if r == 0 { 0 } else { errno() }
        });
        assert_eq!(code, libc::EPERM, "{name} set by an unprivileged user");
    }
    assert_errno(
        get_xattr(&theirs, "trusted.x"),
        libc::ENODATA,
        "nothing was set",
    );
    // trusted.* names are listed to the privileged only, as on ext4.
    let prog = cpath(&f);
    let mut buf = vec![0u8; 4096];
    let (ptr, cap) = (buf.as_mut_ptr() as usize, buf.len());
    let code = as_user(&user, || {
        // SAFETY: listxattr into a buffer the parent owns (still mapped in the child).
        let n = unsafe { libc::listxattr(prog.as_ptr(), ptr as *mut libc::c_char, cap) };
        if n < 0 {
            return errno();
        }
        // SAFETY: the kernel wrote n bytes there.
        let got = unsafe { std::slice::from_raw_parts(ptr as *const u8, n as usize) };
        let has = |name: &[u8]| got.split(|&b| b == 0).any(|x| x == name);
        match (has(b"trusted.overlay.opaque"), has(b"security.label")) {
            (false, true) => 0,
            (true, _) => 1001,
            (false, false) => 1002,
        }
    });
    assert_eq!(
        code, 0,
        "a user's listing: 1001 shows trusted.*, 1002 lacks security.*"
    );
    drop(buf);
    assert!(
        list_xattr(&f)
            .unwrap()
            .iter()
            .any(|x| x == "trusted.overlay.opaque")
    );
}

#[test]
fn xattr_create_and_replace_flags() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    assert_errno(
        set_xattr(&f, "user.k", b"v", libc::XATTR_REPLACE),
        libc::ENODATA,
        "XATTR_REPLACE on missing",
    );
    assert_errno(
        get_xattr(&f, "user.k"),
        libc::ENODATA,
        "failed REPLACE must not create",
    );
    set_xattr(&f, "user.k", b"v1", libc::XATTR_CREATE).expect("XATTR_CREATE new");
    assert_errno(
        set_xattr(&f, "user.k", b"v2", libc::XATTR_CREATE),
        libc::EEXIST,
        "XATTR_CREATE on existing",
    );
    assert_eq!(
        get_xattr(&f, "user.k").expect("get"),
        b"v1",
        "failed CREATE must not overwrite"
    );
    set_xattr(&f, "user.k", b"v3", libc::XATTR_REPLACE).expect("XATTR_REPLACE existing");
    assert_eq!(get_xattr(&f, "user.k").expect("get"), b"v3");
}

#[test]
fn xattr_values_up_to_64k() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    for (i, size) in [1usize, 255, 4096, 4097, 32_768, 65_536]
        .into_iter()
        .enumerate()
    {
        let name = format!("user.v{i}");
        let v = pseudo_random(size, i as u64);
        set_xattr(&f, &name, &v, 0).unwrap_or_else(|e| panic!("setxattr {size} bytes: {e}"));
        assert_eq!(get_xattr(&f, &name).expect("get"), v, "{size}-byte value");
        // Only one large value at a time (file systems may cap the total).
        remove_xattr(&f, &name).expect("remove");
    }
    let v = pseudo_random(65_536, 77);
    set_xattr(&f, "user.big", &v, 0).expect("set 64 KiB");
    assert_errno(
        set_xattr(&f, "user.bigger", &[0u8; 65_537], 0),
        libc::E2BIG,
        "value over XATTR_SIZE_MAX",
    );
    assert_eq!(get_xattr(&f, "user.big").expect("get"), v);
    // Name length limit: 255 bytes in total is the kernel maximum.
    let long_name = format!("user.{}", "n".repeat(250));
    set_xattr(&f, &long_name, b"v", 0).expect("255-byte xattr name");
    assert_eq!(get_xattr(&f, &long_name).expect("get"), b"v");
    let too_long = format!("user.{}", "n".repeat(251));
    assert_errno(
        set_xattr(&f, &too_long, b"v", 0),
        libc::ERANGE,
        "256-byte xattr name",
    );
}

#[test]
fn xattr_many_names() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    let mut want = Vec::new();
    for i in 0..100 {
        let name = format!("user.attr-{i:03}");
        set_xattr(&f, &name, format!("value {i}").as_bytes(), 0).expect("set");
        want.push(name);
    }
    assert_eq!(user_xattrs(&f), want);
    for (i, name) in want.iter().enumerate() {
        assert_eq!(
            get_xattr(&f, name).expect("get"),
            format!("value {i}").as_bytes()
        );
    }
}

#[test]
fn xattr_on_directories_and_symlinks() {
    let d = Drive::mount();
    let dir = d.notes().join("d");
    fs::create_dir(&dir).expect("mkdir");
    set_xattr(&dir, "user.dir", b"on a dir", 0).expect("setxattr dir");
    assert_eq!(get_xattr(&dir, "user.dir").expect("get"), b"on a dir");
    assert_eq!(user_xattrs(&dir), vec!["user.dir"]);
    // Through a symlink (following) reaches the target ...
    fs::write(d.notes().join("t"), b"t").expect("write");
    let l = d.notes().join("l");
    symlink("t", &l).expect("symlink");
    set_xattr(&l, "user.via-link", b"v", 0).expect("setxattr through link");
    assert_eq!(
        get_xattr(&d.notes().join("t"), "user.via-link").expect("get"),
        b"v"
    );
    // ... while user.* on the symlink itself is not permitted.
    assert_errno(
        lset_xattr(&l, "user.on-link", b"v", 0),
        libc::EPERM,
        "lsetxattr user.* on a symlink",
    );
}

#[test]
fn xattr_survives_rename_and_hard_link() {
    let mut d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"x").expect("write");
    set_xattr(&f, "user.keep", b"kept", 0).expect("set");
    fs::rename(&f, dir.join("g")).expect("rename");
    fs::hard_link(dir.join("g"), dir.join("h")).expect("link");
    assert_eq!(
        get_xattr(&dir.join("g"), "user.keep").expect("get"),
        b"kept"
    );
    assert_eq!(
        get_xattr(&dir.join("h"), "user.keep").expect("get via link"),
        b"kept"
    );
    set_xattr(&dir.join("h"), "user.more", b"m", 0).expect("set via link");
    d.remount();
    let dir = d.notes();
    assert_eq!(user_xattrs(&dir.join("g")), vec!["user.keep", "user.more"]);
    assert_eq!(get_xattr(&dir.join("g"), "user.more").expect("get"), b"m");
}
