//! Attributes: permission bits, ownership, timestamps (exact, implicit updates), statvfs.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

/// Timestamps set by the kernel come from a coarse clock: allow this much lag.
const SLACK: Duration = Duration::from_millis(50);

#[track_caller]
fn assert_recent(ts: (i64, i64), before: (i64, i64), what: &str) {
    let after = now();
    assert!(
        ts >= before,
        "{what}: {ts:?} is older than the operation (started {before:?})"
    );
    assert!(
        ts.0 <= after.0 + 1,
        "{what}: {ts:?} is in the future (now {after:?})"
    );
}

const OLD: Ts = Ts::At(1_000_000_000, 111);

fn make_old(p: &Path) {
    set_times(p, OLD, OLD, false).unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

#[test]
fn chmod_preserves_all_permission_bits() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"x").expect("write");
    for mode in [
        0o000, 0o644, 0o755, 0o4755, 0o2755, 0o6755, 0o1755, 0o7777, 0o4000, 0o2644, 0o600,
    ] {
        chmod(&f, mode);
        assert_eq!(perm_bits(&lstat(&f)), mode, "chmod {mode:o}");
        assert_eq!(
            fmt_bits(&lstat(&f)),
            libc::S_IFREG,
            "file type must survive chmod {mode:o}"
        );
    }
    // fchmod through an fd.
    let fd = File::open(&f).expect("open");
    fd.set_permissions(fs::Permissions::from_mode(0o4711))
        .expect("fchmod");
    assert_eq!(perm_bits(&lstat(&f)), 0o4711);
    let sub = dir.join("d");
    fs::create_dir(&sub).expect("mkdir");
    for mode in [0o1777, 0o2755, 0o7755, 0o700, 0o000, 0o755] {
        chmod(&sub, mode);
        assert_eq!(perm_bits(&lstat(&sub)), mode, "chmod dir {mode:o}");
    }
    // chmod on a symlink path changes the target.
    symlink("f", dir.join("l")).expect("symlink");
    chmod(&dir.join("l"), 0o640);
    assert_eq!(perm_bits(&lstat(&f)), 0o640);
    assert_eq!(fmt_bits(&lstat(&dir.join("l"))), libc::S_IFLNK);
}

#[test]
fn chown_and_lchown_by_root() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"x").expect("write");
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).expect("chown");
    let m = lstat(&f);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    // -1 leaves a field alone.
    std::os::unix::fs::chown(&f, None, Some(4321)).expect("chown gid only");
    assert_eq!((lstat(&f).uid(), lstat(&f).gid()), (1234, 4321));
    std::os::unix::fs::chown(&f, Some(99), None).expect("chown uid only");
    assert_eq!((lstat(&f).uid(), lstat(&f).gid()), (99, 4321));
    // fchown.
    let fd = File::open(&f).expect("open");
    std::os::unix::fs::fchown(&fd, Some(7), Some(8)).expect("fchown");
    assert_eq!((lstat(&f).uid(), lstat(&f).gid()), (7, 8));
    // lchown changes the link, chown through the link changes the target.
    let l = dir.join("l");
    symlink("f", &l).expect("symlink");
    std::os::unix::fs::lchown(&l, Some(2000), Some(3000)).expect("lchown");
    assert_eq!((lstat(&l).uid(), lstat(&l).gid()), (2000, 3000));
    assert_eq!(
        (lstat(&f).uid(), lstat(&f).gid()),
        (7, 8),
        "lchown must not touch the target"
    );
    std::os::unix::fs::chown(&l, Some(0), Some(0)).expect("chown via link");
    assert_eq!((lstat(&f).uid(), lstat(&f).gid()), (0, 0));
    assert_eq!((lstat(&l).uid(), lstat(&l).gid()), (2000, 3000));
    // Directories.
    fs::create_dir(dir.join("d")).expect("mkdir");
    std::os::unix::fs::chown(dir.join("d"), Some(4000), Some(4001)).expect("chown dir");
    assert_eq!(
        (lstat(&dir.join("d")).uid(), lstat(&dir.join("d")).gid()),
        (4000, 4001)
    );
}

#[test]
fn chown_clears_setuid_and_setgid_on_files() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"x").expect("write");
    chmod(&f, 0o6755);
    std::os::unix::fs::chown(&f, Some(1000), Some(1000)).expect("chown");
    assert_eq!(
        perm_bits(&lstat(&f)),
        0o755,
        "chown of a regular file drops setuid and setgid"
    );
    // Directories keep theirs.
    let sub = dir.join("d");
    fs::create_dir(&sub).expect("mkdir");
    chmod(&sub, 0o3775);
    std::os::unix::fs::chown(&sub, Some(1000), Some(1000)).expect("chown dir");
    assert_eq!(
        perm_bits(&lstat(&sub)),
        0o3775,
        "chown of a directory keeps its special bits"
    );
}

#[test]
fn utimensat_sets_exact_nanoseconds() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"x").expect("write");
    set_times(
        &f,
        Ts::At(1_000_000_000, 123_456_789),
        Ts::At(1_234_567_890, 987_654_321),
        true,
    )
    .expect("utimensat");
    let m = lstat(&f);
    assert_eq!(atime(&m), (1_000_000_000, 123_456_789), "atime");
    assert_eq!(mtime(&m), (1_234_567_890, 987_654_321), "mtime");
    // Same through an fd (futimens).
    let fd = File::open(&f).expect("open");
    let ts = [
        libc::timespec {
            tv_sec: 1_111_111_111,
            tv_nsec: 1,
        },
        libc::timespec {
            tv_sec: 1_222_222_222,
            tv_nsec: 999_999_999,
        },
    ];
    // SAFETY: valid fd and 2-element array.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).expect("futimens");
    let m = lstat(&f);
    assert_eq!(
        (atime(&m), mtime(&m)),
        ((1_111_111_111, 1), (1_222_222_222, 999_999_999))
    );
    // A directory.
    fs::create_dir(dir.join("d")).expect("mkdir");
    set_times(
        &dir.join("d"),
        Ts::At(1_300_000_000, 42),
        Ts::At(1_300_000_001, 43),
        true,
    )
    .expect("utimensat dir");
    let m = lstat(&dir.join("d"));
    assert_eq!(
        (atime(&m), mtime(&m)),
        ((1_300_000_000, 42), (1_300_000_001, 43))
    );
    // A symlink itself (AT_SYMLINK_NOFOLLOW); the target is untouched.
    let l = dir.join("l");
    symlink("f", &l).expect("symlink");
    set_times(
        &l,
        Ts::At(1_400_000_000, 5),
        Ts::At(1_400_000_001, 6),
        false,
    )
    .expect("utimensat nofollow");
    let lm = lstat(&l);
    assert_eq!(
        (atime(&lm), mtime(&lm)),
        ((1_400_000_000, 5), (1_400_000_001, 6))
    );
    assert_eq!(
        mtime(&lstat(&f)),
        (1_222_222_222, 999_999_999),
        "target must be untouched"
    );
}

#[test]
fn utimensat_now_and_omit() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    set_times(&f, Ts::At(1_000_000_000, 1), Ts::At(1_000_000_000, 2), true).expect("set old");
    let c0 = ctime(&lstat(&f));
    tick();
    let before = now_minus(SLACK);
    set_times(&f, Ts::Omit, Ts::Now, true).expect("mtime=NOW atime=OMIT");
    let m = lstat(&f);
    assert_eq!(atime(&m), (1_000_000_000, 1), "UTIME_OMIT must keep atime");
    assert_recent(mtime(&m), before, "UTIME_NOW mtime");
    assert!(ctime(&m) > c0, "utimensat must advance ctime");
    let m_now = mtime(&m);
    let before = now_minus(SLACK);
    set_times(&f, Ts::Now, Ts::Omit, true).expect("atime=NOW mtime=OMIT");
    let m = lstat(&f);
    assert_recent(atime(&m), before, "UTIME_NOW atime");
    assert_eq!(mtime(&m), m_now, "UTIME_OMIT must keep mtime");
    // Both omitted: nothing changes (not even ctime, per POSIX it may; only check times).
    set_times(&f, Ts::Omit, Ts::Omit, true).expect("both OMIT");
    assert_eq!(mtime(&lstat(&f)), m_now);
    // utimensat(NULL) = both now.
    set_times(&f, Ts::At(5, 5), Ts::At(6, 6), true).expect("set");
    let before = now_minus(SLACK);
    let c = cpath(&f);
    // SAFETY: valid C string; NULL times means "now".
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) })
        .expect("utimensat NULL");
    let m = lstat(&f);
    assert_recent(atime(&m), before, "atime after utimensat(NULL)");
    assert_recent(mtime(&m), before, "mtime after utimensat(NULL)");
}

#[test]
fn timestamps_far_future_and_before_epoch() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    for (s, ns) in [
        (0i64, 0i64),
        (-1_000_000, 5),
        (-86_400 * 365 * 50, 999_999_999),
        (4_102_444_800, 999_999_999),
        (2_147_483_648, 7),
    ] {
        set_times(&f, Ts::At(s, ns), Ts::At(s, ns), true)
            .unwrap_or_else(|e| panic!("utimensat {s}.{ns}: {e}"));
        let m = lstat(&f);
        assert_eq!(mtime(&m), (s, ns), "mtime {s}.{ns:09}");
        assert_eq!(atime(&m), (s, ns), "atime {s}.{ns:09}");
    }
}

#[test]
fn write_updates_mtime_and_ctime_but_read_does_not() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"initial").expect("write");
    make_old(&f);
    let c0 = ctime(&lstat(&f));
    // Reading leaves mtime and ctime alone.
    assert_eq!(read_all(&f), b"initial");
    let m = lstat(&f);
    assert_eq!(mtime(&m), (1_000_000_000, 111));
    assert_eq!(ctime(&m), c0, "read must not change ctime");
    tick();
    let before = now_minus(SLACK);
    let mut w = OpenOptions::new().write(true).open(&f).expect("open");
    w.write_all(b"changed").expect("write");
    drop(w);
    let m = lstat(&f);
    assert_recent(mtime(&m), before, "mtime after write");
    assert!(ctime(&m) > c0, "ctime after write");
    assert_recent(ctime(&m), before, "ctime after write");
}

/// Reset `dir`'s times, run `op`, and require that it bumped the dir's mtime and ctime.
#[track_caller]
fn assert_bumps_dir(dir: &Path, what: &str, op: impl FnOnce()) {
    make_old(dir);
    let c0 = ctime(&lstat(dir));
    tick();
    let before = now_minus(SLACK);
    op();
    let m = lstat(dir);
    assert_recent(mtime(&m), before, &format!("parent mtime after {what}"));
    assert!(ctime(&m) > c0, "parent ctime after {what}");
}

#[test]
fn creating_entries_updates_parent_times() {
    let d = Drive::mount();
    let dir = d.notes().join("p");
    fs::create_dir(&dir).expect("mkdir");
    assert_bumps_dir(&dir, "create", || {
        drop(File::create(dir.join("f")).expect("create"))
    });
    assert_bumps_dir(&dir, "mkdir", || {
        fs::create_dir(dir.join("d")).expect("mkdir")
    });
    assert_bumps_dir(&dir, "symlink", || {
        symlink("f", dir.join("l")).expect("symlink")
    });
    assert_bumps_dir(&dir, "link", || {
        fs::hard_link(dir.join("f"), dir.join("h")).expect("link")
    });
    assert_bumps_dir(&dir, "mkfifo", || {
        mkfifo(&dir.join("fifo"), 0o600).expect("mkfifo")
    });
    // Writing to an existing file inside does not touch the directory's mtime.
    make_old(&dir);
    fs::write(dir.join("f"), b"data").expect("write");
    assert_eq!(
        mtime(&lstat(&dir)),
        (1_000_000_000, 111),
        "writing a child must not change dir mtime"
    );
}

#[test]
fn removing_entries_updates_parent_times() {
    let d = Drive::mount();
    let dir = d.notes().join("p");
    fs::create_dir_all(dir.join("d")).expect("mkdir");
    fs::write(dir.join("f"), b"x").expect("write");
    symlink("f", dir.join("l")).expect("symlink");
    assert_bumps_dir(&dir, "unlink", || {
        fs::remove_file(dir.join("f")).expect("unlink")
    });
    assert_bumps_dir(&dir, "unlink symlink", || {
        fs::remove_file(dir.join("l")).expect("unlink")
    });
    assert_bumps_dir(&dir, "rmdir", || {
        fs::remove_dir(dir.join("d")).expect("rmdir")
    });
}

#[test]
fn rename_updates_both_parents_times() {
    let d = Drive::mount();
    let base = d.notes();
    let (a, b) = (base.join("a"), base.join("b"));
    fs::create_dir(&a).expect("mkdir");
    fs::create_dir(&b).expect("mkdir");
    fs::write(a.join("f"), b"x").expect("write");
    make_old(&a.join("f"));
    make_old(&a);
    make_old(&b);
    let (ca, cb) = (ctime(&lstat(&a)), ctime(&lstat(&b)));
    tick();
    let before = now_minus(SLACK);
    fs::rename(a.join("f"), b.join("g")).expect("rename");
    for (dir, c0, what) in [(&a, ca, "source parent"), (&b, cb, "target parent")] {
        let m = lstat(dir);
        assert_recent(mtime(&m), before, &format!("{what} mtime after rename"));
        assert!(ctime(&m) > c0, "{what} ctime after rename");
    }
    assert_eq!(
        mtime(&lstat(&b.join("g"))),
        (1_000_000_000, 111),
        "rename must not change the file's mtime"
    );
    // Same-directory rename bumps that directory.
    assert_bumps_dir(&b, "rename within dir", || {
        fs::rename(b.join("g"), b.join("h")).expect("rename")
    });
    // Replacing an existing entry too.
    fs::write(b.join("i"), b"y").expect("write");
    assert_bumps_dir(&b, "rename over existing", || {
        fs::rename(b.join("h"), b.join("i")).expect("rename")
    });
}

#[test]
fn metadata_changes_update_ctime_only() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    fs::write(&f, b"x").expect("write");
    make_old(&f);
    type Op<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let ops: Vec<Op> = vec![
        ("chmod", Box::new(|| chmod(&f, 0o600))),
        (
            "chown",
            Box::new(|| std::os::unix::fs::chown(&f, Some(1), Some(1)).expect("chown")),
        ),
        (
            "setxattr",
            Box::new(|| set_xattr(&f, "user.t", b"v", 0).expect("setxattr")),
        ),
        (
            "removexattr",
            Box::new(|| remove_xattr(&f, "user.t").expect("removexattr")),
        ),
    ];
    for (what, op) in ops {
        let c0 = ctime(&lstat(&f));
        tick();
        let before = now_minus(SLACK);
        op();
        let m = lstat(&f);
        assert!(ctime(&m) > c0, "{what} must advance ctime");
        assert_recent(ctime(&m), before, &format!("ctime after {what}"));
        assert_eq!(
            mtime(&m),
            (1_000_000_000, 111),
            "{what} must not change mtime"
        );
    }
}

#[test]
fn new_file_attributes() {
    let d = Drive::mount();
    let dir = d.notes();
    let before = now_minus(SLACK);
    let f = dir.join("f");
    File::create(&f).expect("create");
    let m = lstat(&f);
    assert_eq!(fmt_bits(&m), libc::S_IFREG);
    assert_eq!(m.nlink(), 1);
    assert_eq!(m.len(), 0);
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(
        (m.uid(), m.gid()),
        (uid, gid),
        "owner of a new file is the creator"
    );
    assert_recent(mtime(&m), before, "mtime of new file");
    assert_recent(ctime(&m), before, "ctime of new file");
    assert_recent(atime(&m), before, "atime of new file");
    assert!(m.blksize() > 0, "st_blksize");
    assert_ne!(m.ino(), lstat(&dir).ino());
    assert_eq!(m.dev(), lstat(&dir).dev(), "same st_dev as its directory");
}

#[test]
fn st_blocks_accounts_for_data() {
    let d = Drive::mount();
    let f = d.notes().join("f");
    let mut w = File::create(&f).expect("create");
    w.write_all(&pseudo_random(1024 * 1024, 1)).expect("write");
    w.sync_all().expect("fsync");
    drop(w);
    let m = lstat(&f);
    assert!(
        m.blocks() > 0,
        "st_blocks of a 1 MiB file is 0 (du would report nothing)"
    );
    assert!(
        m.blocks() * 512 <= 4 * 1024 * 1024,
        "st_blocks implausibly large: {}",
        m.blocks()
    );
}

#[test]
fn setgid_directory_is_inherited() {
    let d = Drive::mount();
    let dir = d.notes().join("shared");
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::chown(&dir, Some(0), Some(4242)).expect("chown");
    chmod(&dir, 0o2775);
    File::create(dir.join("f")).expect("create");
    assert_eq!(
        lstat(&dir.join("f")).gid(),
        4242,
        "file in setgid dir takes the dir's group"
    );
    fs::create_dir(dir.join("sub")).expect("mkdir");
    let m = lstat(&dir.join("sub"));
    assert_eq!(m.gid(), 4242, "subdir in setgid dir takes the dir's group");
    assert_ne!(
        m.mode() & libc::S_ISGID,
        0,
        "subdir of a setgid dir is setgid too"
    );
    // Without setgid, new entries get the creator's group.
    chmod(&dir, 0o775);
    File::create(dir.join("g")).expect("create");
    // SAFETY: no preconditions.
    assert_eq!(lstat(&dir.join("g")).gid(), unsafe { libc::getegid() });
}

fn statvfs(p: &Path) -> libc::statvfs {
    let c = cpath(p);
    // SAFETY: zeroed POD struct filled by the kernel.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut s) })
        .unwrap_or_else(|e| panic!("statvfs {}: {e}", p.display()));
    s
}

#[test]
fn statvfs_reports_sane_values() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::write(dir.join("f"), b"x").expect("write");
    for p in [dir.clone(), dir.join("f"), d.health()] {
        let s = statvfs(&p);
        assert!(s.f_bsize > 0, "f_bsize of {}", p.display());
        assert!(s.f_frsize > 0, "f_frsize of {}", p.display());
        assert!(s.f_namemax >= 255, "f_namemax {} < 255", s.f_namemax);
        assert!(
            s.f_bfree <= s.f_blocks,
            "f_bfree {} > f_blocks {}",
            s.f_bfree,
            s.f_blocks
        );
        assert!(
            s.f_bavail <= s.f_bfree,
            "f_bavail {} > f_bfree {}",
            s.f_bavail,
            s.f_bfree
        );
        assert!(
            s.f_ffree <= s.f_files,
            "f_ffree {} > f_files {}",
            s.f_ffree,
            s.f_files
        );
    }
    let f = File::open(dir.join("f")).expect("open");
    // SAFETY: zeroed POD struct filled by the kernel.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstatvfs(f.as_raw_fd(), &mut s) }).expect("fstatvfs");
    assert!(s.f_bsize > 0 && s.f_namemax >= 255);
    // df(1) copes with it.
    let out = run_ok(
        std::process::Command::new(require_tool("df"))
            .arg("-P")
            .arg(&dir),
    );
    assert!(out.lines().count() >= 2, "df output: {out}");
}

#[test]
fn read_updates_a_stale_access_time_like_relatime() {
    let d = Drive::mount();
    let f = d.notes().join("atime.txt");
    fs::write(&f, b"read me").expect("write");
    // An access time older than the modification time is stale: a read refreshes it.
    set_times(&f, Ts::At(1_000_000_000, 0), Ts::Now, true).expect("utimensat");
    let before = atime(&stat(&f));
    assert_eq!(before, (1_000_000_000, 0));
    assert_eq!(fs::read(&f).expect("read"), b"read me");
    let after = atime(&stat(&f));
    assert!(after > before, "read must update a stale atime: {after:?}");
    assert!(
        after >= mtime(&stat(&f)),
        "refreshed atime is not before mtime"
    );
    // A fresh access time is left alone by the next read (relatime).
    tick();
    let _ = fs::read(&f).expect("read again");
    assert_eq!(
        atime(&stat(&f)),
        after,
        "relatime: a fresh atime is not rewritten"
    );
}

/// The atime mount options (`-o noatime`, `-o strictatime`, `-o nodiratime`, and
/// relatime's listing of a directory): each rule on reads, on running a program, and on
/// listing a directory.
#[test]
fn atime_mount_options_each_keep_their_rule() {
    let stale = (1_000_000_000, 0);
    let prepare = |d: &Drive| {
        let f = d.notes().join("a.sh");
        fs::write(&f, b"#!/bin/sh\nexit 0\n").expect("write");
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let dir = d.notes().join("dir");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("x"), b"x").unwrap();
        set_times(&f, Ts::At(stale.0, stale.1), Ts::Now, true).expect("utimensat");
        set_times(&dir, Ts::At(stale.0, stale.1), Ts::Now, true).expect("utimensat");
        (f, dir)
    };
    let mount = |opts: &str| {
        Drive::mount_with(MountOptions {
            extra: vec!["-o".into(), opts.into()],
            ..Default::default()
        })
    };
    // noatime: neither a read, nor running the file, nor a listing touches it.
    let d = mount("noatime");
    if d.is_plain() {
        return;
    }
    let (f, dir) = prepare(&d);
    let _ = fs::read(&f).unwrap();
    assert!(std::process::Command::new(&f).status().unwrap().success());
    let _ = fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        atime(&stat(&f)),
        stale,
        "noatime: read or exec changed atime"
    );
    assert_eq!(
        atime(&stat(&dir)),
        stale,
        "noatime: a listing changed atime"
    );
    drop(d);
    // relatime (the default): running a program reads it, a listing reads the folder.
    let d = Drive::mount();
    let (f, dir) = prepare(&d);
    assert!(std::process::Command::new(&f).status().unwrap().success());
    let _ = fs::read_dir(&dir).unwrap().count();
    assert!(
        atime(&stat(&f)) > stale,
        "relatime: exec left a stale atime"
    );
    assert!(
        atime(&stat(&dir)) > stale,
        "relatime: a listing left a stale atime"
    );
    drop(d);
    // strictatime: every read, even with a fresh atime; nodiratime: not for folders.
    let d = mount("strictatime,nodiratime");
    let (f, dir) = prepare(&d);
    let _ = fs::read(&f).unwrap();
    let first = atime(&stat(&f));
    assert!(first > stale);
    tick();
    let _ = fs::read(&f).unwrap();
    assert!(
        atime(&stat(&f)) > first,
        "strictatime: a read left atime as it was"
    );
    let _ = fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        atime(&stat(&dir)),
        stale,
        "nodiratime: a listing changed atime"
    );
}
