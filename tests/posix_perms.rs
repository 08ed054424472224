//! Permission checks for users other than the owner, and a drive mounted by a non-root
//! user. Operations run in forked children that switch to the `cirrustest` account; on
//! Cirrus the drive is mounted with `--allow-other` so that account can reach it.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Setup {
    _drive: Drive,
    base: PathBuf,
    user: TestUser,
}

fn setup() -> Setup {
    let user = test_user();
    let drive = Drive::mount_with(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    let base = drive.notes().join("perm");
    fs::create_dir(&base).expect("mkdir base");
    chmod(&base, 0o755);
    drive.open_up_for_others(&base);
    // Positive control: the test user can reach the base directory at all.
    let c = cpath(&base);
    let code = as_user(&user, || {
        // SAFETY: zeroed POD out-struct; raw syscall on a prepared C string.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        rc(unsafe { libc::stat(c.as_ptr(), &mut st) })
    });
    assert_code(
        code,
        0,
        "test user stats the base directory (is allow_other in effect?)",
    );
    Setup {
        _drive: drive,
        base,
        user,
    }
}

fn new_file(p: &Path, mode: u32, owner: Option<(u32, u32)>) {
    fs::write(p, b"payload").expect("write");
    if let Some((u, g)) = owner {
        lchown(p, u, g);
    }
    chmod(p, mode);
}

fn new_dir(p: &Path, mode: u32, owner: Option<(u32, u32)>) {
    fs::create_dir(p).expect("mkdir");
    if let Some((u, g)) = owner {
        lchown(p, u, g);
    }
    chmod(p, mode);
}

const CREAT: libc::c_int = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;

#[test]
fn other_user_cannot_read_private_root_file() {
    let s = setup();
    let (secret, public) = (s.base.join("secret"), s.base.join("public"));
    new_file(&secret, 0o600, None);
    new_file(&public, 0o644, None);
    let (cs, cp) = (cpath(&secret), cpath(&public));
    assert_code(
        as_user(&s.user, || open_close(&cp, libc::O_RDONLY, 0)),
        0,
        "read 0644 root file",
    );
    assert_code(
        as_user(&s.user, || open_close(&cs, libc::O_RDONLY, 0)),
        libc::EACCES,
        "read 0600 root file",
    );
    assert_code(
        as_user(&s.user, || open_close(&cs, libc::O_WRONLY, 0)),
        libc::EACCES,
        "write 0600 root file",
    );
    assert_code(
        as_user(&s.user, || open_close(&cp, libc::O_WRONLY, 0)),
        libc::EACCES,
        "write 0644 root file",
    );
    // Root is not bound by the mode bits.
    assert_eq!(read_all(&secret), b"payload");
}

#[test]
fn other_user_cannot_write_into_root_dir() {
    let s = setup();
    let open_dir = s.base.join("open");
    new_dir(&open_dir, 0o777, None);
    let victim = s.base.join("victim");
    new_file(&victim, 0o666, None);
    let c_new = cpath(&s.base.join("new"));
    let c_newdir = cpath(&s.base.join("newdir"));
    let c_victim = cpath(&victim);
    let c_moved = cpath(&s.base.join("moved"));
    let c_ok = cpath(&open_dir.join("mine"));
    let u = &s.user;
    assert_code(
        as_user(u, || open_close(&c_new, CREAT, 0o644)),
        libc::EACCES,
        "create in 0755 root dir",
    );
    // SAFETY (closures below): raw syscalls on prepared C strings.
    assert_code(
        as_user(u, || rc(unsafe { libc::mkdir(c_newdir.as_ptr(), 0o755) })),
        libc::EACCES,
        "mkdir in 0755 root dir",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::unlink(c_victim.as_ptr()) })),
        libc::EACCES,
        "unlink in 0755 root dir",
    );
    assert_code(
        as_user(u, || {
            rc(unsafe { libc::rename(c_victim.as_ptr(), c_moved.as_ptr()) })
        }),
        libc::EACCES,
        "rename in 0755 root dir",
    );
    assert_code(
        as_user(u, || {
            rc(unsafe { libc::symlink(c_victim.as_ptr(), c_new.as_ptr()) })
        }),
        libc::EACCES,
        "symlink in 0755 root dir",
    );
    // Writing to a world-writable file inside is fine: the dir mode guards names only.
    assert_code(
        as_user(u, || {
            open_close(&c_victim, libc::O_WRONLY | libc::O_TRUNC, 0)
        }),
        0,
        "write 0666 file",
    );
    // Positive control: a world-writable directory accepts the user's file.
    assert_code(
        as_user(u, || open_close(&c_ok, CREAT, 0o644)),
        0,
        "create in 0777 dir",
    );
    assert!(
        !s.base.join("new").exists()
            && !s.base.join("newdir").exists()
            && !s.base.join("moved").exists()
    );
    assert!(victim.exists());
}

#[test]
fn sticky_dir_protects_other_users_files() {
    let s = setup();
    let u = &s.user;
    let sticky = s.base.join("sticky");
    new_dir(&sticky, 0o1777, None);
    let victim = sticky.join("roots-file");
    new_file(&victim, 0o666, None);
    let victim_dir = sticky.join("roots-dir");
    new_dir(&victim_dir, 0o777, None);
    let plain = s.base.join("plain");
    new_dir(&plain, 0o777, None);
    let plain_victim = plain.join("roots-file");
    new_file(&plain_victim, 0o644, None);
    let (cv, cvd, cmv) = (
        cpath(&victim),
        cpath(&victim_dir),
        cpath(&sticky.join("moved")),
    );
    let (cown, cpv) = (cpath(&sticky.join("users-file")), cpath(&plain_victim));
    // SAFETY (closures below): raw syscalls on prepared C strings.
    assert_code(
        as_user(u, || rc(unsafe { libc::unlink(cv.as_ptr()) })),
        libc::EPERM,
        "unlink other's file in sticky dir",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::rename(cv.as_ptr(), cmv.as_ptr()) })),
        libc::EPERM,
        "rename other's file in sticky dir",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::rmdir(cvd.as_ptr()) })),
        libc::EPERM,
        "rmdir other's dir in sticky dir",
    );
    assert!(victim.exists() && victim_dir.exists());
    // The user's own file in the sticky dir can go.
    assert_code(
        as_user(u, || {
            let r = open_close(&cown, CREAT, 0o644);
            if r != 0 {
                return r;
            }
            rc(unsafe { libc::unlink(cown.as_ptr()) })
        }),
        0,
        "create and delete own file in sticky dir",
    );
    // Without the sticky bit, write permission on the dir suffices.
    assert_code(
        as_user(u, || rc(unsafe { libc::unlink(cpv.as_ptr()) })),
        0,
        "unlink in non-sticky 0777 dir",
    );
    assert!(!plain_victim.exists());
}

#[test]
fn chmod_by_non_owner_is_eperm() {
    let s = setup();
    let u = &s.user;
    let roots = s.base.join("roots");
    new_file(&roots, 0o666, None);
    let mine = s.base.join("mine");
    new_file(&mine, 0o644, Some((u.uid, u.gid)));
    let (cr, cm) = (cpath(&roots), cpath(&mine));
    // SAFETY (closures below): raw syscalls on prepared C strings.
    assert_code(
        as_user(u, || rc(unsafe { libc::chmod(cr.as_ptr(), 0o777) })),
        libc::EPERM,
        "chmod of root's file",
    );
    assert_eq!(perm_bits(&lstat(&roots)), 0o666);
    assert_code(
        as_user(u, || rc(unsafe { libc::chmod(cm.as_ptr(), 0o600) })),
        0,
        "chmod of own file",
    );
    assert_eq!(perm_bits(&lstat(&mine)), 0o600);
    // setgid on a file whose group the user is not in is silently dropped.
    lchown(&mine, u.uid, 0);
    assert_code(
        as_user(u, || rc(unsafe { libc::chmod(cm.as_ptr(), 0o2755) })),
        0,
        "chmod g+s, foreign group",
    );
    assert_eq!(
        perm_bits(&lstat(&mine)),
        0o755,
        "S_ISGID must be cleared for a non-member"
    );
}

#[test]
fn chown_by_non_root_is_eperm() {
    let s = setup();
    let u = &s.user;
    let mine = s.base.join("mine");
    new_file(&mine, 0o644, Some((u.uid, u.gid)));
    let roots = s.base.join("roots");
    new_file(&roots, 0o666, None);
    let link = s.base.join("mylink");
    std::os::unix::fs::symlink("mine", &link).expect("symlink");
    lchown(&link, u.uid, u.gid);
    let (cm, cr, cl) = (cpath(&mine), cpath(&roots), cpath(&link));
    let (uid, gid) = (u.uid, u.gid);
    let keep = u32::MAX; // (uid_t)-1: leave unchanged
    // SAFETY (closures below): raw syscalls on prepared C strings.
    assert_code(
        as_user(u, || rc(unsafe { libc::chown(cm.as_ptr(), 0, keep) })),
        libc::EPERM,
        "give own file to root",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::chown(cm.as_ptr(), keep, 0) })),
        libc::EPERM,
        "chgrp to a group not a member of",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::chown(cr.as_ptr(), uid, keep) })),
        libc::EPERM,
        "take root's file",
    );
    assert_code(
        as_user(u, || rc(unsafe { libc::lchown(cl.as_ptr(), 0, 0) })),
        libc::EPERM,
        "lchown own symlink to root",
    );
    let m = lstat(&mine);
    assert_eq!(
        (m.uid(), m.gid()),
        (uid, gid),
        "failed chown must not change ownership"
    );
    assert_eq!((lstat(&roots).uid(), lstat(&roots).gid()), (0, 0));
    // No-op chown of one's own file to one's own ids is allowed.
    assert_code(
        as_user(u, || rc(unsafe { libc::chown(cm.as_ptr(), uid, gid) })),
        0,
        "chown to own ids",
    );
}

#[test]
fn utimes_by_non_owner() {
    let s = setup();
    let u = &s.user;
    let writable = s.base.join("writable");
    new_file(&writable, 0o666, None);
    let readonly = s.base.join("readonly");
    new_file(&readonly, 0o644, None);
    let (cw, cr) = (cpath(&writable), cpath(&readonly));
    let explicit = [
        libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 2,
            tv_nsec: 0,
        },
    ];
    // SAFETY (closures below): raw syscalls on prepared data.
    assert_code(
        as_user(u, || {
            rc(unsafe { libc::utimensat(libc::AT_FDCWD, cw.as_ptr(), std::ptr::null(), 0) })
        }),
        0,
        "utimensat(NULL) with write permission",
    );
    assert_code(
        as_user(u, || {
            rc(unsafe { libc::utimensat(libc::AT_FDCWD, cw.as_ptr(), explicit.as_ptr(), 0) })
        }),
        libc::EPERM,
        "explicit times on someone else's file",
    );
    assert_code(
        as_user(u, || {
            rc(unsafe { libc::utimensat(libc::AT_FDCWD, cr.as_ptr(), std::ptr::null(), 0) })
        }),
        libc::EACCES,
        "utimensat(NULL) without write permission",
    );
    assert_ne!(mtime(&lstat(&writable)).0, 2);
}

/// (file name, mode, (uid, gid), open flags, expected errno or 0)
type AccessCase = (&'static str, u32, (u32, u32), libc::c_int, i32);

#[test]
fn permission_classes_owner_group_other() {
    let s = setup();
    let u = &s.user;
    let cases: Vec<AccessCase> = vec![
        // Owner bits apply to the owner even when group/other bits are more generous.
        (
            "own-0444-write",
            0o444,
            (u.uid, u.gid),
            libc::O_WRONLY,
            libc::EACCES,
        ),
        (
            "own-0066-read",
            0o066,
            (u.uid, u.gid),
            libc::O_RDONLY,
            libc::EACCES,
        ),
        ("own-0200-write", 0o200, (u.uid, u.gid), libc::O_WRONLY, 0),
        (
            "own-0200-read",
            0o200,
            (u.uid, u.gid),
            libc::O_RDONLY,
            libc::EACCES,
        ),
        // Group bits apply to group members who are not the owner.
        ("grp-0640-read", 0o640, (0, u.gid), libc::O_RDONLY, 0),
        (
            "grp-0640-write",
            0o640,
            (0, u.gid),
            libc::O_WRONLY,
            libc::EACCES,
        ),
        (
            "grp-0606-read",
            0o606,
            (0, u.gid),
            libc::O_RDONLY,
            libc::EACCES,
        ),
        ("grp-0660-rdwr", 0o660, (0, u.gid), libc::O_RDWR, 0),
        // Other bits for everyone else.
        ("oth-0604-read", 0o604, (0, 0), libc::O_RDONLY, 0),
        ("oth-0640-read", 0o640, (0, 0), libc::O_RDONLY, libc::EACCES),
        ("oth-0602-write", 0o602, (0, 0), libc::O_WRONLY, 0),
    ];
    for (name, mode, owner, flags, want) in cases {
        let p = s.base.join(name);
        new_file(&p, mode, Some(owner));
        let c = cpath(&p);
        assert_code(as_user(u, || open_close(&c, flags, 0)), want, name);
    }
}

#[test]
fn directory_search_and_read_permissions() {
    let s = setup();
    let u = &s.user;
    let closed = s.base.join("closed");
    new_dir(&closed, 0o700, None);
    fs::write(closed.join("f"), b"x").expect("write");
    let search_only = s.base.join("search-only");
    new_dir(&search_only, 0o711, None);
    fs::write(search_only.join("f"), b"x").expect("write");
    chmod(&search_only.join("f"), 0o644);
    let list_only = s.base.join("list-only");
    new_dir(&list_only, 0o744, None);
    fs::write(list_only.join("f"), b"x").expect("write");
    let stat_code = |p: &Path| {
        let c = cpath(p);
        as_user(u, || {
            // SAFETY: zeroed POD out-struct; raw syscall.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            rc(unsafe { libc::stat(c.as_ptr(), &mut st) })
        })
    };
    let opendir_code = |p: &Path| {
        let c = cpath(p);
        as_user(u, || open_close(&c, libc::O_RDONLY | libc::O_DIRECTORY, 0))
    };
    assert_code(
        stat_code(&closed.join("f")),
        libc::EACCES,
        "stat inside 0700 dir",
    );
    assert_code(opendir_code(&closed), libc::EACCES, "opendir 0700 dir");
    assert_code(
        stat_code(&search_only.join("f")),
        0,
        "stat known name in 0711 dir",
    );
    let c = cpath(&search_only.join("f"));
    assert_code(
        as_user(u, || open_close(&c, libc::O_RDONLY, 0)),
        0,
        "read file in 0711 dir",
    );
    assert_code(opendir_code(&search_only), libc::EACCES, "opendir 0711 dir");
    assert_code(opendir_code(&list_only), 0, "opendir 0744 dir");
    assert_code(
        stat_code(&list_only.join("f")),
        libc::EACCES,
        "stat inside 0744 dir (no search)",
    );
}

#[test]
fn files_created_by_user_are_owned_by_user() {
    let s = setup();
    let u = &s.user;
    let open = s.base.join("open");
    new_dir(&open, 0o777, None);
    let (cf, cd) = (cpath(&open.join("file")), cpath(&open.join("dir")));
    let code = as_user(u, || {
        let r = open_close(&cf, CREAT, 0o640);
        if r != 0 {
            return r;
        }
        // SAFETY: raw syscall on a prepared C string.
        rc(unsafe { libc::mkdir(cd.as_ptr(), 0o750) })
    });
    assert_code(code, 0, "user creates a file and a dir");
    for p in [open.join("file"), open.join("dir")] {
        let m = lstat(&p);
        assert_eq!(
            (m.uid(), m.gid()),
            (u.uid, u.gid),
            "owner of {}",
            p.display()
        );
    }
    assert_eq!(perm_bits(&lstat(&open.join("file"))) & !0o640, 0);
}

/// Unmounts (as root, forcibly) a user's mount if a test leaves it behind.
struct UserMountGuard(PathBuf);

impl Drop for UserMountGuard {
    fn drop(&mut self) {
        if mount_info(&self.0).is_some() {
            force_unmount(&self.0);
        }
    }
}

#[test]
fn non_root_user_can_mount_own_drive() {
    let user = test_user();
    require_tool("runuser");
    let tmp = tempfile::Builder::new()
        .prefix("cirrus-user-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    let root = fs::canonicalize(tmp.path()).expect("canonicalize");
    lchown(&root, user.uid, user.gid);
    chmod(&root, 0o700);
    let sh = require_tool("sh");
    if is_plain() {
        let dir = root.join("own");
        let script = format!(
            "mkdir '{0}' && echo 'written by user' > '{0}/f' && cat '{0}/f'",
            dir.display()
        );
        let out = run_ok(
            runuser(&user, &sh)
                .arg("-c")
                .arg(&script)
                .current_dir(&root),
        );
        assert_eq!(out, "written by user\n");
        let m = lstat(&dir.join("f"));
        assert_eq!((m.uid(), m.gid()), (user.uid, user.gid));
        return;
    }
    let fusermount = require_tool("fusermount3");
    let fm = fs::metadata(&fusermount).expect("stat fusermount3");
    assert!(
        fm.uid() == 0 && fm.mode() & 0o4000 != 0,
        "{} must be setuid root for non-root mounts (reinstall the fuse3 package)",
        fusermount.display()
    );
    // The user runs its own copy of the binary (the build dir may not be reachable).
    let bin = root.join("cirrus");
    fs::copy(cirrus_bin(), &bin).expect("copy cirrus binary");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod binary");
    let (home, mnt, pf) = (root.join("home"), root.join("mnt"), root.join("passcode"));
    for d in [&home, &mnt] {
        fs::create_dir(d).expect("mkdir");
        lchown(d, user.uid, user.gid);
    }
    fs::write(&pf, PASSCODE).expect("write passcode");
    chmod(&pf, 0o600);
    lchown(&pf, user.uid, user.gid);
    let _guard = UserMountGuard(mnt.clone());
    let cirrus_as_user = |args: &[&std::ffi::OsStr], what: &str| {
        let mut cmd = runuser(&user, &bin);
        cmd.env(cirrus::keys::floor::INSECURE_TEST_ENV, "1");
        cmd.arg("--home").arg(&home).args(args).current_dir(&root);
        let (status, out) = run_logged(
            &mut cmd,
            Duration::from_secs(180),
            &root.join(format!("{what}.out")),
        );
        if !status.success() {
            let log = fs::read_to_string(home.join("cirrus.log")).unwrap_or_default();
            panic!(
                "`cirrus {what}` as {} failed ({status}):\n{out}\ndaemon log:\n{log}",
                user.name
            );
        }
    };
    cirrus_as_user(
        &[
            "init".as_ref(),
            "--passcode-file".as_ref(),
            pf.as_os_str(),
            "--kdf-memory".as_ref(),
            "8192".as_ref(),
            "--kdf-time".as_ref(),
            "1".as_ref(),
        ],
        "init",
    );
    let file = mnt.join("Notes/hello.txt");
    let script = format!(
        "echo 'written by user' > '{0}' && cat '{0}' && stat -c %u '{0}'",
        file.display()
    );
    for round in 0..2 {
        cirrus_as_user(
            &[
                "mount".as_ref(),
                mnt.as_os_str(),
                "--passcode-file".as_ref(),
                pf.as_os_str(),
            ],
            "mount",
        );
        assert!(is_fuse_mount(&mnt), "user mount not visible in mountinfo");
        if round == 0 {
            let out = run_ok(
                runuser(&user, &sh)
                    .arg("-c")
                    .arg(&script)
                    .current_dir(&root),
            );
            assert_eq!(out, format!("written by user\n{}\n", user.uid));
        } else {
            let out = run_ok(
                runuser(&user, &sh)
                    .arg("-c")
                    .arg(format!("cat '{}'", file.display()))
                    .current_dir(&root),
            );
            assert_eq!(out, "written by user\n", "content after the user remounted");
        }
        cirrus_as_user(&["umount".as_ref(), mnt.as_os_str()], "umount");
        assert!(
            mount_info(&mnt).is_none(),
            "still mounted after the user's umount"
        );
    }
}

#[test]
fn setuid_and_setgid_bits_are_cleared_like_a_local_filesystem() {
    let s = setup();
    let f = s.base.join("suid-prog");
    fs::write(&f, b"#!/bin/sh\n").expect("create");
    lchown(&f, s.user.uid, s.user.gid);
    // chmod after chown: chown itself clears the bits (checked below)
    chmod(&f, 0o6775);
    assert_eq!(perm_bits(&stat(&f)), 0o6775);
    // A write by an unprivileged writer clears set-user-ID and (group-executable)
    // set-group-ID.
    let c = cpath(&f);
    let code = as_user(&s.user, || {
        // SAFETY: raw syscalls on a prepared C string and a local buffer.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_APPEND);
            if fd < 0 {
                return errno();
            }
            let r = libc::write(fd, b"echo hi\n".as_ptr().cast(), 8);
            libc::close(fd);
            if r != 8 { errno() } else { 0 }
        }
    });
    assert_code(code, 0, "owner appends to its setuid file");
    assert_eq!(
        perm_bits(&stat(&f)),
        0o0775,
        "write must clear S_ISUID and S_ISGID"
    );
    // A write by root (CAP_FSETID) keeps them.
    chmod(&f, 0o6775);
    fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .and_then(|mut h| std::io::Write::write_all(&mut h, b"# root\n"))
        .expect("root appends");
    assert_eq!(perm_bits(&stat(&f)), 0o6775, "root's write keeps the bits");
    // chown clears them even when root does it.
    lchown(&f, 0, 0);
    assert_eq!(
        perm_bits(&stat(&f)),
        0o0775,
        "chown must clear S_ISUID and S_ISGID"
    );
    // A setgid file without group-execute keeps S_ISGID on chown (mandatory-locking mark).
    chmod(&f, 0o2664);
    lchown(&f, s.user.uid, s.user.gid);
    assert_eq!(perm_bits(&stat(&f)), 0o2664);
    // Truncation by an unprivileged owner clears set-user-ID.
    chmod(&f, 0o4755);
    let code = as_user(&s.user, || {
        // SAFETY: raw syscall on a prepared C string.
        rc(unsafe { libc::truncate(c.as_ptr(), 3) })
    });
    assert_code(code, 0, "owner truncates its setuid file");
    assert_eq!(perm_bits(&stat(&f)), 0o0755, "truncate must clear S_ISUID");
    assert_eq!(stat(&f).len(), 3);
}

/// The mode as a `stat` that asks for nothing else sees it (`statx` with `STATX_MODE`
/// only, as `stat -c %a` does): the kernel answers from its cache while the mode is
/// valid there, even when size and times are not.
fn mode_only(path: &Path) -> u32 {
    let c = cpath(path);
    // SAFETY: zeroed POD out-struct; raw syscall on a valid C string.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MODE, &mut st) };
    assert_eq!(
        r,
        0,
        "statx {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    u32::from(st.stx_mode) & 0o7777
}

/// After a non-root write clears set-user-ID and set-group-ID (the daemon does it, with
/// FUSE's KILLPRIV_V2), the kernel sees the new mode at once, through buffered and direct
/// writes alike, although the mount lets it cache attributes for a minute.
#[test]
fn setid_bits_cleared_by_a_write_show_at_once() {
    let s = setup();
    if s._drive.is_plain() {
        return;
    }
    let f = s.base.join("setid-now");
    fs::write(&f, vec![0u8; 8192]).expect("create");
    lchown(&f, s.user.uid, s.user.gid);
    let c = cpath(&f);
    // An aligned block for O_DIRECT, made before the child runs.
    let mut block = vec![7u8; 2 * 4096];
    let off = block.as_ptr().align_offset(4096);
    let aligned = block[off..].as_mut_ptr() as usize;
    for (direct, how) in [(false, "buffered"), (true, "direct")] {
        chmod(&f, 0o6755);
        // Cached by the kernel now, for the mount's attribute timeout.
        assert_eq!(mode_only(&f), 0o6755);
        let code = as_user(&s.user, || {
            let flags = libc::O_WRONLY | if direct { libc::O_DIRECT } else { 0 };
            // SAFETY: raw syscalls on a prepared C string and a block owned by the parent
            // (still mapped in the forked child).
            unsafe {
                let fd = libc::open(c.as_ptr(), flags);
                if fd < 0 {
                    return errno();
                }
                let r = libc::pwrite(fd, aligned as *const libc::c_void, 4096, 0);
                libc::close(fd);
                if r != 4096 { errno() } else { 0 }
            }
        });
        assert_code(code, 0, &format!("owner's {how} write"));
        assert_eq!(
            mode_only(&f),
            0o0755,
            "a {how} write by the owner: the kernel still shows the set-id bits"
        );
    }
    drop(block);
}
