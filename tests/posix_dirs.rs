//! Directories: mkdir/rmdir, error cases, readdir completeness, link counts, `.` and `..`.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

#[test]
fn mkdir_and_rmdir() {
    let d = Drive::mount();
    let dir = d.notes();
    let p = dir.join("newdir");
    fs::create_dir(&p).expect("mkdir");
    let m = lstat(&p);
    assert!(m.is_dir());
    assert_eq!(fmt_bits(&m), libc::S_IFDIR);
    assert!(list_names(&dir).contains(&"newdir".to_string()));
    assert_errno(fs::create_dir(&p), libc::EEXIST, "mkdir existing dir");
    fs::write(dir.join("file"), b"x").expect("write");
    assert_errno(
        fs::create_dir(dir.join("file")),
        libc::EEXIST,
        "mkdir over a file",
    );
    fs::remove_dir(&p).expect("rmdir");
    assert_errno(fs::symlink_metadata(&p), libc::ENOENT, "stat after rmdir");
    assert!(!list_names(&dir).contains(&"newdir".to_string()));
    assert_errno(fs::remove_dir(&p), libc::ENOENT, "rmdir twice");
    // The name is reusable, for a file too.
    fs::write(&p, b"now a file").expect("reuse name");
    assert!(lstat(&p).is_file());
}

#[test]
fn mkdir_modes() {
    let d = Drive::mount();
    let dir = d.notes();
    // (name, mode passed to mkdir, expected result with umask 0). mkdir(2) keeps the
    // sticky bit but never takes S_ISGID from its argument (only from a setgid parent).
    let cases = [
        ("m700", 0o700, 0o700),
        ("m711", 0o711, 0o711),
        ("m1777", 0o1777, 0o1777),
        ("m2750", 0o2750, 0o750),
    ];
    let paths: Vec<_> = cases.iter().map(|(n, _, _)| cpath(&dir.join(n))).collect();
    let code = in_child(None, || {
        // SAFETY: raw syscalls on prepared C strings.
        unsafe {
            libc::umask(0);
            for (c, (_, mode, _)) in paths.iter().zip(cases.iter()) {
                if libc::mkdir(c.as_ptr(), *mode) != 0 {
                    return errno();
                }
            }
        }
        0
    });
    assert_code(code, 0, "mkdir with modes");
    for (name, _, want) in cases {
        let got = perm_bits(&lstat(&dir.join(name)));
        assert_eq!(got, want, "mkdir {name}: mode {got:o}, want {want:o}");
    }
    // DirBuilder (mkdir with the process umask) then an exact chmod.
    fs::DirBuilder::new()
        .mode(0o750)
        .create(dir.join("built"))
        .expect("mkdir");
    chmod(&dir.join("built"), 0o2750);
    assert_eq!(perm_bits(&lstat(&dir.join("built"))), 0o2750);
}

#[test]
fn rmdir_non_empty_is_enotempty() {
    let d = Drive::mount();
    let dir = d.notes();
    for (name, child_is_dir) in [
        ("with-file", false),
        ("with-dir", true),
        ("with-hidden", false),
    ] {
        let p = dir.join(name);
        fs::create_dir(&p).expect("mkdir");
        let child = p.join(if name == "with-hidden" {
            ".hidden"
        } else {
            "child"
        });
        if child_is_dir {
            fs::create_dir(&child).expect("mkdir child");
        } else {
            fs::write(&child, b"x").expect("write child");
        }
        assert_errno(
            fs::remove_dir(&p),
            libc::ENOTEMPTY,
            &format!("rmdir {name}"),
        );
        assert!(lstat(&p).is_dir(), "{name} must survive a failed rmdir");
        assert!(child.exists(), "child of {name} must survive");
        if child_is_dir {
            fs::remove_dir(&child).expect("rmdir child");
        } else {
            fs::remove_file(&child).expect("unlink child");
        }
        fs::remove_dir(&p).expect("rmdir now empty");
    }
}

#[test]
fn rmdir_special_names() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir(dir.join("d")).expect("mkdir");
    fs::create_dir(dir.join("d/sub")).expect("mkdir");
    assert_errno(
        fs::remove_dir(dir.join("d/sub/.")),
        libc::EINVAL,
        "rmdir d/sub/.",
    );
    assert_errno(
        fs::remove_dir(dir.join("d/sub/..")),
        libc::ENOTEMPTY,
        "rmdir d/sub/..",
    );
    assert!(lstat(&dir.join("d/sub")).is_dir());
}

#[test]
fn enoent_cases() {
    let d = Drive::mount();
    let dir = d.notes();
    let missing = dir.join("missing");
    assert_errno(File::open(&missing), libc::ENOENT, "open missing");
    assert_errno(
        fs::symlink_metadata(&missing),
        libc::ENOENT,
        "lstat missing",
    );
    assert_errno(
        fs::symlink_metadata(missing.join("x")),
        libc::ENOENT,
        "lstat below missing dir",
    );
    assert_errno(
        File::create(missing.join("x")),
        libc::ENOENT,
        "create in missing dir",
    );
    assert_errno(
        fs::create_dir(missing.join("x")),
        libc::ENOENT,
        "mkdir in missing dir",
    );
    assert_errno(fs::remove_file(&missing), libc::ENOENT, "unlink missing");
    assert_errno(fs::remove_dir(&missing), libc::ENOENT, "rmdir missing");
    assert_errno(
        fs::rename(&missing, dir.join("y")),
        libc::ENOENT,
        "rename missing",
    );
    assert_errno(fs::read_link(&missing), libc::ENOENT, "readlink missing");
    assert_errno(
        fs::hard_link(&missing, dir.join("z")),
        libc::ENOENT,
        "link missing",
    );
    assert_errno(
        fs::read_dir(&missing).map(drop),
        libc::ENOENT,
        "opendir missing",
    );
    assert!(!dir.join("y").exists() && !dir.join("z").exists());
}

#[test]
fn enotdir_cases() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("file");
    fs::write(&f, b"x").expect("write");
    assert_errno(
        fs::symlink_metadata(f.join("x")),
        libc::ENOTDIR,
        "lstat file/x",
    );
    assert_errno(File::open(f.join("x")), libc::ENOTDIR, "open file/x");
    assert_errno(File::create(f.join("x")), libc::ENOTDIR, "create file/x");
    assert_errno(fs::create_dir(f.join("x")), libc::ENOTDIR, "mkdir file/x");
    assert_errno(fs::remove_dir(&f), libc::ENOTDIR, "rmdir file");
    assert_errno(fs::read_dir(&f).map(drop), libc::ENOTDIR, "opendir file");
    let c = cpath(&dir.join("file/"));
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert_eq!(fd, -1, "open(\"file/\") must fail");
    assert_eq!(errno(), libc::ENOTDIR, "open with trailing slash on a file");
}

#[test]
fn eisdir_cases() {
    let d = Drive::mount();
    let dir = d.notes();
    let sub = dir.join("sub");
    fs::create_dir(&sub).expect("mkdir");
    assert_errno(
        OpenOptions::new().write(true).open(&sub),
        libc::EISDIR,
        "open dir O_WRONLY",
    );
    assert_errno(
        OpenOptions::new().read(true).write(true).open(&sub),
        libc::EISDIR,
        "open dir O_RDWR",
    );
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&sub),
        libc::EISDIR,
        "O_CREAT on existing dir",
    );
    assert_errno(fs::remove_file(&sub), libc::EISDIR, "unlink dir");
    let mut fd = File::open(&sub).expect("open dir O_RDONLY");
    let mut buf = [0u8; 16];
    assert_errno(fd.read(&mut buf), libc::EISDIR, "read(2) on a dir fd");
    assert!(lstat(&sub).is_dir());
}

/// Listing of `dir` without `.`/`..`: name → d_type; panics on duplicates.
fn listing(dir: &Path) -> BTreeMap<String, u8> {
    let mut out = BTreeMap::new();
    let mut dots = 0;
    for (name, _ino, ty) in raw_readdir(dir).expect("readdir") {
        if name == b"." || name == b".." {
            dots += 1;
            continue;
        }
        let n = String::from_utf8(name).expect("utf8 name");
        assert!(
            out.insert(n.clone(), ty).is_none(),
            "readdir returned {n:?} twice"
        );
    }
    assert_eq!(
        dots, 2,
        "readdir must return `.` and `..` exactly once each"
    );
    out
}

#[test]
fn readdir_lists_1000_entries() {
    let d = Drive::mount();
    let dir = d.notes().join("many");
    fs::create_dir(&dir).expect("mkdir");
    let mut expect = BTreeMap::new();
    for i in 0..1000usize {
        // Varying name lengths (1..~200 bytes) so entries pack unevenly into buffers.
        let name = format!("{i:04}-{}", "n".repeat((i * 7) % 200));
        if i % 10 == 0 {
            fs::create_dir(dir.join(&name)).expect("mkdir entry");
            expect.insert(name, libc::DT_DIR);
        } else if i % 10 == 1 {
            std::os::unix::fs::symlink("target", dir.join(&name)).expect("symlink entry");
            expect.insert(name, libc::DT_LNK);
        } else {
            File::create(dir.join(&name)).expect("create entry");
            expect.insert(name, libc::DT_REG);
        }
    }
    assert_eq!(
        listing(&dir),
        expect,
        "readdir of 1000 entries (name → d_type)"
    );
    assert_eq!(list_names(&dir).len(), 1000);
    // Remove every third entry; the listing must follow exactly.
    for (i, (name, ty)) in expect.clone().into_iter().enumerate() {
        if i % 3 == 0 {
            if ty == libc::DT_DIR {
                fs::remove_dir(dir.join(&name)).expect("rmdir");
            } else {
                fs::remove_file(dir.join(&name)).expect("unlink");
            }
            expect.remove(&name);
        }
    }
    assert_eq!(
        listing(&dir),
        expect,
        "readdir after removing every third entry"
    );
}

#[test]
fn readdir_while_unlinking_returns_every_entry() {
    // rm-style loop: read an entry, unlink it, read the next. Every entry not yet removed
    // must still be returned (POSIX), so one pass empties the directory.
    let d = Drive::mount();
    let dir = d.notes().join("drain");
    fs::create_dir(&dir).expect("mkdir");
    for i in 0..600 {
        File::create(dir.join(format!("entry-{i:03}-{}", "x".repeat(i % 50)))).expect("create");
    }
    let c = cpath(&dir);
    let mut seen = 0;
    // SAFETY: valid C string; stream closed below.
    let stream = unsafe { libc::opendir(c.as_ptr()) };
    assert!(
        !stream.is_null(),
        "opendir: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `stream` is open.
    let dfd = unsafe { libc::dirfd(stream) };
    loop {
        // SAFETY: `stream` is open.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            break;
        }
        // SAFETY: valid entry returned by readdir.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        // SAFETY: valid dirfd and name.
        cvt(unsafe { libc::unlinkat(dfd, name.as_ptr(), 0) }).expect("unlinkat during readdir");
        seen += 1;
    }
    // SAFETY: closing our stream.
    unsafe { libc::closedir(stream) };
    let left = list_names(&dir);
    assert!(
        left.is_empty(),
        "{} entries were skipped by readdir while unlinking (saw {seen}): {:?}",
        left.len(),
        &left[..left.len().min(10)]
    );
    assert_eq!(seen, 600);
    fs::remove_dir(&dir).expect("rmdir drained dir");
}

#[test]
fn directory_nlink_counts() {
    let d = Drive::mount();
    let base = d.notes();
    let dir = base.join("d");
    fs::create_dir(&dir).expect("mkdir");
    assert_eq!(lstat(&dir).nlink(), 2, "new empty dir");
    let parent_before = lstat(&base).nlink();
    for s in ["s1", "s2", "s3"] {
        fs::create_dir(dir.join(s)).expect("mkdir sub");
    }
    assert_eq!(lstat(&dir).nlink(), 5, "2 + 3 subdirs");
    fs::write(dir.join("file"), b"x").expect("file");
    std::os::unix::fs::symlink("s1", dir.join("link")).expect("symlink");
    assert_eq!(lstat(&dir).nlink(), 5, "files and symlinks do not count");
    fs::remove_dir(dir.join("s3")).expect("rmdir");
    assert_eq!(lstat(&dir).nlink(), 4, "after rmdir");
    let other = base.join("other");
    fs::create_dir(&other).expect("mkdir other");
    fs::rename(dir.join("s2"), other.join("s2")).expect("move subdir");
    assert_eq!(
        lstat(&dir).nlink(),
        3,
        "source parent after moving a subdir out"
    );
    assert_eq!(
        lstat(&other).nlink(),
        3,
        "target parent after moving a subdir in"
    );
    assert_eq!(
        lstat(&base).nlink(),
        parent_before + 1,
        "grandparent counts d and other"
    );
    assert_eq!(lstat(&dir.join("s1")).nlink(), 2);
}

#[test]
fn dot_and_dotdot_entries() {
    let d = Drive::mount();
    let base = d.notes();
    let dir = base.join("d");
    fs::create_dir(&dir).expect("mkdir");
    fs::create_dir(dir.join("sub")).expect("mkdir sub");
    let ino_base = lstat(&base).ino();
    let ino_dir = lstat(&dir).ino();
    let ino_sub = lstat(&dir.join("sub")).ino();
    assert_eq!(lstat(&dir.join(".")).ino(), ino_dir, "stat d/.");
    assert_eq!(lstat(&dir.join("..")).ino(), ino_base, "stat d/..");
    assert_eq!(lstat(&dir.join("sub/..")).ino(), ino_dir, "stat d/sub/..");
    assert_eq!(lstat(&dir.join("sub/../sub/.")).ino(), ino_sub);
    // readdir of an empty directory: exactly `.` and `..`, with the right inode numbers.
    let entries = raw_readdir(&dir.join("sub")).expect("readdir");
    let mut names: Vec<&[u8]> = entries.iter().map(|(n, _, _)| n.as_slice()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![b".".as_slice(), b"..".as_slice()],
        "empty dir listing"
    );
    for (name, ino, ty) in &entries {
        assert_eq!(
            *ty,
            libc::DT_DIR,
            "d_type of {:?}",
            String::from_utf8_lossy(name)
        );
        let want = if name == b"." { ino_sub } else { ino_dir };
        assert_eq!(
            *ino,
            want,
            "d_ino of {:?} in d/sub",
            String::from_utf8_lossy(name)
        );
    }
    // std's read_dir hides them; the listing of d is just "sub".
    assert_eq!(list_names(&dir), vec!["sub".to_string()]);
}
