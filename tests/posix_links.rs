//! Hard links, symbolic links, name and path length limits.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};

#[test]
fn hard_links_share_inode_and_content() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir(dir.join("sub")).expect("mkdir");
    let a = dir.join("a");
    fs::write(&a, b"shared").expect("write");
    let ino = lstat(&a).ino();
    fs::hard_link(&a, dir.join("b")).expect("link b");
    fs::hard_link(&a, dir.join("sub/c")).expect("link across dirs");
    for p in [&a, &dir.join("b"), &dir.join("sub/c")] {
        let m = lstat(p);
        assert_eq!(m.ino(), ino, "inode of {}", p.display());
        assert_eq!(m.nlink(), 3, "nlink of {}", p.display());
    }
    // Writing through one name is visible through the others.
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join("b"))
        .expect("open b");
    f.write_all_at(b"SHARED and more", 0).expect("write via b");
    drop(f);
    assert_eq!(read_all(&a), b"SHARED and more");
    assert_eq!(read_all(&dir.join("sub/c")), b"SHARED and more");
    // chmod through one name shows through all.
    chmod(&dir.join("sub/c"), 0o640);
    assert_eq!(perm_bits(&lstat(&a)), 0o640);
    // Unlink names one by one; the rest keep working.
    fs::remove_file(&a).expect("unlink a");
    assert_eq!(lstat(&dir.join("b")).nlink(), 2);
    assert_eq!(read_all(&dir.join("b")), b"SHARED and more");
    fs::remove_file(dir.join("b")).expect("unlink b");
    assert_eq!(lstat(&dir.join("sub/c")).nlink(), 1);
    assert_eq!(read_all(&dir.join("sub/c")), b"SHARED and more");
    assert_eq!(lstat(&dir.join("sub/c")).ino(), ino);
}

#[test]
fn many_hard_links() {
    let d = Drive::mount();
    let dir = d.notes();
    let a = dir.join("a");
    fs::write(&a, b"x").expect("write");
    for i in 0..100 {
        fs::hard_link(&a, dir.join(format!("l{i}"))).expect("link");
    }
    assert_eq!(lstat(&a).nlink(), 101);
    for i in 0..100 {
        fs::remove_file(dir.join(format!("l{i}"))).expect("unlink");
    }
    assert_eq!(lstat(&a).nlink(), 1);
}

#[test]
fn hard_link_errors() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir(dir.join("d")).expect("mkdir");
    fs::write(dir.join("f"), b"x").expect("write");
    fs::write(dir.join("g"), b"y").expect("write");
    assert_errno(
        fs::hard_link(dir.join("d"), dir.join("d2")),
        libc::EPERM,
        "link to a directory",
    );
    assert_errno(
        fs::hard_link(dir.join("f"), dir.join("g")),
        libc::EEXIST,
        "link onto existing name",
    );
    assert_eq!(read_all(&dir.join("g")), b"y");
    assert_eq!(lstat(&dir.join("f")).nlink(), 1);
}

#[test]
fn hard_link_updates_ctime() {
    let d = Drive::mount();
    let dir = d.notes();
    let a = dir.join("a");
    fs::write(&a, b"x").expect("write");
    let c0 = ctime(&lstat(&a));
    tick();
    fs::hard_link(&a, dir.join("b")).expect("link");
    assert!(
        ctime(&lstat(&a)) > c0,
        "link(2) must update the inode's ctime"
    );
}

#[test]
fn symlink_basics() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::write(dir.join("target.txt"), b"through the link").expect("write");
    let l = dir.join("link");
    symlink("target.txt", &l).expect("symlink");
    assert_eq!(
        fs::read_link(&l).expect("readlink"),
        PathBuf::from("target.txt")
    );
    let lm = lstat(&l);
    assert_eq!(fmt_bits(&lm), libc::S_IFLNK);
    assert_eq!(
        lm.len(),
        "target.txt".len() as u64,
        "st_size of a symlink is its target length"
    );
    let sm = stat(&l);
    assert!(sm.is_file());
    assert_eq!(sm.ino(), lstat(&dir.join("target.txt")).ino());
    assert_eq!(read_all(&l), b"through the link");
    // Writing through the link writes the target.
    fs::write(&l, b"rewritten").expect("write via link");
    assert_eq!(read_all(&dir.join("target.txt")), b"rewritten");
    assert_eq!(
        fmt_bits(&lstat(&l)),
        libc::S_IFLNK,
        "writing through must not replace the link"
    );
    // Absolute and relative-with-dotdot targets.
    fs::create_dir(dir.join("sub")).expect("mkdir");
    symlink("../target.txt", dir.join("sub/up")).expect("symlink ..");
    assert_eq!(read_all(&dir.join("sub/up")), b"rewritten");
    symlink(dir.join("target.txt"), dir.join("abs")).expect("symlink abs");
    assert_eq!(read_all(&dir.join("abs")), b"rewritten");
    // Errors.
    assert_errno(symlink("x", &l), libc::EEXIST, "symlink onto existing name");
    assert_errno(
        fs::read_link(dir.join("target.txt")),
        libc::EINVAL,
        "readlink on a regular file",
    );
    assert_errno(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&l),
        libc::ELOOP,
        "O_NOFOLLOW on a symlink",
    );
    // Removing the link leaves the target.
    fs::remove_file(&l).expect("unlink symlink");
    assert!(lstat(&dir.join("target.txt")).is_file());
}

#[test]
fn dangling_symlink() {
    let d = Drive::mount();
    let dir = d.notes();
    let l = dir.join("dangling");
    symlink("no/such/target", &l).expect("symlink");
    assert_eq!(fmt_bits(&lstat(&l)), libc::S_IFLNK);
    assert_eq!(
        fs::read_link(&l).expect("readlink"),
        PathBuf::from("no/such/target")
    );
    assert_errno(
        fs::metadata(&l),
        libc::ENOENT,
        "stat through dangling symlink",
    );
    assert_errno(
        File::open(&l),
        libc::ENOENT,
        "open through dangling symlink",
    );
    // Creating through a dangling link (without O_EXCL) creates the target.
    symlink("created-target", dir.join("creator")).expect("symlink");
    fs::write(dir.join("creator"), b"made").expect("create via dangling link");
    assert_eq!(read_all(&dir.join("created-target")), b"made");
}

#[test]
fn symlink_to_directory() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir_all(dir.join("real/inner")).expect("mkdir");
    fs::write(dir.join("real/inner/f"), b"deep").expect("write");
    symlink("real", dir.join("alias")).expect("symlink");
    assert!(stat(&dir.join("alias")).is_dir());
    assert_eq!(fmt_bits(&lstat(&dir.join("alias"))), libc::S_IFLNK);
    assert_eq!(list_names(&dir.join("alias")), vec!["inner".to_string()]);
    assert_eq!(read_all(&dir.join("alias/inner/f")), b"deep");
    fs::write(dir.join("alias/new"), b"via alias").expect("create through dir link");
    assert_eq!(read_all(&dir.join("real/new")), b"via alias");
    assert_errno(
        fs::remove_dir(dir.join("alias")),
        libc::ENOTDIR,
        "rmdir on a symlink to a dir",
    );
    fs::remove_file(dir.join("alias")).expect("unlink dir symlink");
    assert!(lstat(&dir.join("real")).is_dir());
}

#[test]
fn symlink_with_path_max_target() {
    let d = Drive::mount();
    let dir = d.notes();
    // PATH_MAX - 1 = 4095 bytes: the longest target symlink(2) accepts.
    let mut target = String::new();
    while target.len() < 4095 {
        let room = 4095 - target.len();
        let comp = "c".repeat(200.min(room));
        target.push_str(&comp);
        if target.len() < 4095 {
            target.push('/');
        }
    }
    assert_eq!(target.len(), 4095);
    let l = dir.join("long");
    symlink(&target, &l).expect("symlink with a 4095-byte target");
    let back = fs::read_link(&l).expect("readlink");
    assert_eq!(back.as_os_str().len(), 4095);
    assert_eq!(back.as_os_str().as_bytes(), target.as_bytes());
    assert_eq!(lstat(&l).len(), 4095);
    // 4096 bytes does not fit PATH_MAX with its NUL.
    let too_long = format!("{target}x");
    assert_errno(
        symlink(&too_long, dir.join("too-long")),
        libc::ENAMETOOLONG,
        "4096-byte symlink target",
    );
}

fn name_limits(dir: &Path) {
    let n255 = "n".repeat(255);
    let n256 = "n".repeat(256);
    let utf8 = long_utf8_name();
    for name in [&n255, &utf8] {
        let p = dir.join(name);
        fs::write(&p, name.as_bytes()).expect("create 255-byte name");
        assert_eq!(read_all(&p), name.as_bytes());
        assert!(list_names(dir).contains(name), "255-byte name listed");
        fs::rename(&p, dir.join("short")).expect("rename from 255");
        fs::rename(dir.join("short"), &p).expect("rename to 255");
        fs::remove_file(&p).expect("unlink 255");
    }
    fs::create_dir(dir.join(&n255)).expect("mkdir 255-byte name");
    symlink("t", dir.join(format!("{}l", &n255[..254]))).expect("symlink 255-byte name");
    let long = dir.join(&n256);
    assert_errno(
        File::create(&long),
        libc::ENAMETOOLONG,
        "create 256-byte name",
    );
    assert_errno(
        fs::create_dir(&long),
        libc::ENAMETOOLONG,
        "mkdir 256-byte name",
    );
    assert_errno(
        fs::symlink_metadata(&long),
        libc::ENAMETOOLONG,
        "lstat 256-byte name",
    );
    assert_errno(
        symlink("t", &long),
        libc::ENAMETOOLONG,
        "symlink 256-byte name",
    );
    fs::write(dir.join("src"), b"x").expect("write");
    assert_errno(
        fs::rename(dir.join("src"), &long),
        libc::ENAMETOOLONG,
        "rename to 256-byte name",
    );
    assert_errno(
        fs::hard_link(dir.join("src"), &long),
        libc::ENAMETOOLONG,
        "link to 256-byte name",
    );
    assert_errno(
        mkfifo(&long, 0o600),
        libc::ENAMETOOLONG,
        "mkfifo 256-byte name",
    );
    // 256 bytes of multi-byte UTF-8 (128 × 'é') is over the limit too.
    assert_errno(
        File::create(dir.join("é".repeat(128))),
        libc::ENAMETOOLONG,
        "create 256-byte UTF-8 name",
    );
}

#[test]
fn name_length_limits_standard() {
    let d = Drive::mount();
    name_limits(&d.notes());
}

#[test]
fn name_length_limits_e2e() {
    let d = Drive::mount();
    name_limits(&d.health());
}

fn openat_dir(parent: libc::c_int, name: &CString) -> libc::c_int {
    // SAFETY: valid fd and C string.
    cvt(unsafe {
        libc::openat(
            parent,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .unwrap_or_else(|e| panic!("openat dir: {e}"))
}

/// Component lengths (each 1..=255) such that the sum of ("/" + name) equals `total`.
fn component_lengths(total: usize) -> Vec<usize> {
    let mut lens = Vec::new();
    let mut left = total;
    while left > 0 {
        if left <= 256 {
            lens.push(left - 1);
            break;
        }
        // Avoid leaving a remainder of exactly 1 (a "/" with an empty name).
        let take = if left - 256 == 1 { 255 } else { 256 };
        lens.push(take - 1);
        left -= take;
    }
    assert!(
        lens.iter().all(|l| (1..=255).contains(l)),
        "bad split {lens:?}"
    );
    lens
}

#[test]
fn deep_path_of_path_max_minus_one() {
    let d = Drive::mount();
    let base = d.notes().join("deep");
    fs::create_dir(&base).expect("mkdir");
    let base_len = base.as_os_str().len();
    assert!(base_len < 1000, "base path unexpectedly long");
    // Absolute path of exactly 4095 bytes: nested directories, then a file.
    let lens = component_lengths(4095 - base_len);
    let mut fd = openat_dir(libc::AT_FDCWD, &cpath(&base));
    let mut full = base.as_os_str().as_bytes().to_vec();
    for (i, len) in lens.iter().enumerate() {
        let ch = b'a' + (i % 26) as u8;
        let name = CString::new(vec![ch; *len]).expect("name");
        full.push(b'/');
        full.extend_from_slice(name.as_bytes());
        if i + 1 == lens.len() {
            // SAFETY: valid fd and C string.
            let f = cvt(unsafe {
                libc::openat(
                    fd,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL | libc::O_CLOEXEC,
                    0o644,
                )
            })
            .expect("create leaf file");
            // SAFETY: `f` is our fd.
            let mut leaf = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(f) };
            leaf.write_all(b"at the bottom").expect("write leaf");
        } else {
            // SAFETY: valid fd and C string.
            cvt(unsafe { libc::mkdirat(fd, name.as_ptr(), 0o755) }).expect("mkdirat");
            let next = openat_dir(fd, &name);
            // SAFETY: closing our fd.
            unsafe { libc::close(fd) };
            fd = next;
        }
    }
    // SAFETY: closing our fd.
    unsafe { libc::close(fd) };
    assert_eq!(full.len(), 4095);
    let leaf = PathBuf::from(std::ffi::OsStr::from_bytes(&full));
    assert_eq!(
        read_all(&leaf),
        b"at the bottom",
        "open by a 4095-byte absolute path"
    );
    assert!(lstat(&leaf).is_file());
    let mut longer = full.clone();
    longer.push(b'x');
    assert_errno(
        fs::symlink_metadata(std::ffi::OsStr::from_bytes(&longer)),
        libc::ENAMETOOLONG,
        "4096-byte path",
    );
    // The whole tree can be removed again (openat-based walk).
    fs::remove_dir_all(&base).expect("remove deep tree");
    assert_errno(
        fs::symlink_metadata(&base),
        libc::ENOENT,
        "deep tree removed",
    );
}
