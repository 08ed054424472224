//! rename(2) and renameat2(2): replacement rules, error cases, flags, moving directories.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn rename_file_over_file_replaces_target() {
    let d = Drive::mount();
    let dir = d.notes();
    let (a, b, b2) = (dir.join("a"), dir.join("b"), dir.join("b-other-link"));
    fs::write(&a, b"content A").expect("write a");
    fs::write(&b, b"content B, longer").expect("write b");
    fs::hard_link(&b, &b2).expect("link b");
    let ino_a = lstat(&a).ino();
    let ino_b = lstat(&b).ino();
    assert_eq!(lstat(&b).nlink(), 2);
    fs::rename(&a, &b).expect("rename a -> b");
    assert_errno(
        fs::symlink_metadata(&a),
        libc::ENOENT,
        "source name after rename",
    );
    assert_eq!(read_all(&b), b"content A");
    assert_eq!(
        lstat(&b).ino(),
        ino_a,
        "target name now refers to the source inode"
    );
    assert_eq!(lstat(&b).nlink(), 1);
    // The replaced inode survives through its other hard link.
    assert_eq!(read_all(&b2), b"content B, longer");
    assert_eq!(lstat(&b2).ino(), ino_b);
    assert_eq!(lstat(&b2).nlink(), 1, "replaced inode lost one link");
    assert_eq!(
        list_names(&dir),
        vec!["b".to_string(), "b-other-link".to_string()]
    );
}

#[test]
fn rename_dir_over_empty_dir() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir_all(dir.join("src/inner")).expect("mkdir");
    fs::write(dir.join("src/file"), b"moved along").expect("write");
    fs::create_dir(dir.join("dst")).expect("mkdir dst");
    let ino = lstat(&dir.join("src")).ino();
    fs::rename(dir.join("src"), dir.join("dst")).expect("rename dir over empty dir");
    assert_errno(
        fs::symlink_metadata(dir.join("src")),
        libc::ENOENT,
        "old dir name",
    );
    assert_eq!(lstat(&dir.join("dst")).ino(), ino);
    assert_eq!(read_all(&dir.join("dst/file")), b"moved along");
    assert!(lstat(&dir.join("dst/inner")).is_dir());
    assert_eq!(lstat(&dir.join("dst")).nlink(), 3);
}

#[test]
fn rename_dir_over_non_empty_dir_is_enotempty() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir(dir.join("src")).expect("mkdir");
    fs::create_dir(dir.join("dst")).expect("mkdir");
    fs::write(dir.join("dst/keep"), b"keep").expect("write");
    assert_errno(
        fs::rename(dir.join("src"), dir.join("dst")),
        libc::ENOTEMPTY,
        "rename over non-empty dir",
    );
    assert!(lstat(&dir.join("src")).is_dir());
    assert_eq!(read_all(&dir.join("dst/keep")), b"keep");
}

#[test]
fn rename_file_over_dir_is_eisdir() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::write(dir.join("f"), b"f").expect("write");
    fs::create_dir(dir.join("d")).expect("mkdir");
    assert_errno(
        fs::rename(dir.join("f"), dir.join("d")),
        libc::EISDIR,
        "rename file over dir",
    );
    assert!(lstat(&dir.join("d")).is_dir());
    assert_eq!(read_all(&dir.join("f")), b"f");
}

#[test]
fn rename_dir_over_file_is_enotdir() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::write(dir.join("f"), b"f").expect("write");
    fs::create_dir(dir.join("d")).expect("mkdir");
    assert_errno(
        fs::rename(dir.join("d"), dir.join("f")),
        libc::ENOTDIR,
        "rename dir over file",
    );
    assert!(lstat(&dir.join("d")).is_dir());
    assert_eq!(read_all(&dir.join("f")), b"f");
}

#[test]
fn rename_across_directories() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir_all(dir.join("one/deeper")).expect("mkdir");
    fs::create_dir(dir.join("two")).expect("mkdir");
    let data = pseudo_random(CHUNK + 5, 1);
    fs::write(dir.join("one/deeper/f"), &data).expect("write");
    let ino = lstat(&dir.join("one/deeper/f")).ino();
    fs::rename(dir.join("one/deeper/f"), dir.join("two/g")).expect("rename across dirs");
    assert_eq!(list_names(&dir.join("one/deeper")), Vec::<String>::new());
    assert_eq!(list_names(&dir.join("two")), vec!["g".to_string()]);
    assert_eq!(lstat(&dir.join("two/g")).ino(), ino);
    assert_bytes_eq(&read_all(&dir.join("two/g")), &data, "moved file");
    // Replace across directories too.
    fs::write(dir.join("one/h"), b"replacement").expect("write");
    fs::rename(dir.join("one/h"), dir.join("two/g")).expect("rename over across dirs");
    assert_eq!(read_all(&dir.join("two/g")), b"replacement");
    // Across categories (standard -> e2e) inside one drive.
    let health = d.health();
    fs::write(dir.join("to-health"), b"crossing classes").expect("write");
    match fs::rename(dir.join("to-health"), health.join("moved")) {
        Ok(()) => assert_eq!(read_all(&health.join("moved")), b"crossing classes"),
        // Different encryption classes may be separate file systems: then EXDEV is the
        // only acceptable refusal, and the source must be intact (mv falls back to copy).
        Err(e) => {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EXDEV),
                "cross-category rename: {e:?}"
            );
            assert_eq!(read_all(&dir.join("to-health")), b"crossing classes");
        }
    }
}

#[test]
fn rename_into_own_subdirectory_is_einval() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir_all(dir.join("a/b/c")).expect("mkdir");
    assert_errno(
        fs::rename(dir.join("a"), dir.join("a/b/c/a")),
        libc::EINVAL,
        "rename dir into its own subdir",
    );
    assert_errno(
        fs::rename(dir.join("a"), dir.join("a/x")),
        libc::EINVAL,
        "rename dir into itself",
    );
    assert!(lstat(&dir.join("a/b/c")).is_dir());
}

#[test]
fn rename_to_itself_is_a_noop() {
    let d = Drive::mount();
    let dir = d.notes();
    let f = dir.join("f");
    fs::write(&f, b"same").expect("write");
    let ino = lstat(&f).ino();
    fs::rename(&f, &f).expect("rename to itself");
    assert_eq!(read_all(&f), b"same");
    assert_eq!(lstat(&f).ino(), ino);
    fs::create_dir(dir.join("d")).expect("mkdir");
    fs::rename(dir.join("d"), dir.join("d")).expect("rename dir to itself");
    assert!(lstat(&dir.join("d")).is_dir());
    // Two hard links to the same inode: rename does nothing, both names stay.
    fs::hard_link(&f, dir.join("f2")).expect("link");
    fs::rename(&f, dir.join("f2")).expect("rename onto own hard link");
    assert_eq!(read_all(&f), b"same");
    assert_eq!(read_all(&dir.join("f2")), b"same");
    assert_eq!(lstat(&f).nlink(), 2);
}

#[test]
fn renameat2_noreplace() {
    let d = Drive::mount();
    let dir = d.notes();
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    fs::write(&a, b"A").expect("write");
    fs::write(&b, b"B").expect("write");
    assert_errno(
        renameat2(&a, &b, libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto existing",
    );
    assert_eq!(read_all(&a), b"A");
    assert_eq!(read_all(&b), b"B");
    renameat2(&a, &c, libc::RENAME_NOREPLACE).expect("RENAME_NOREPLACE to a free name");
    assert_errno(
        fs::symlink_metadata(&a),
        libc::ENOENT,
        "source after NOREPLACE",
    );
    assert_eq!(read_all(&c), b"A");
    fs::create_dir(dir.join("d")).expect("mkdir");
    assert_errno(
        renameat2(&c, &dir.join("d"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "NOREPLACE onto dir",
    );
}

#[test]
fn renameat2_exchange() {
    let d = Drive::mount();
    let dir = d.notes();
    let (a, b) = (dir.join("a"), dir.join("b"));
    fs::write(&a, b"content of a").expect("write");
    fs::write(&b, b"B").expect("write");
    let (ia, ib) = (lstat(&a).ino(), lstat(&b).ino());
    renameat2(&a, &b, libc::RENAME_EXCHANGE).expect("RENAME_EXCHANGE files");
    assert_eq!(read_all(&a), b"B");
    assert_eq!(read_all(&b), b"content of a");
    assert_eq!((lstat(&a).ino(), lstat(&b).ino()), (ib, ia));
    // File <-> directory, across parents.
    fs::create_dir_all(dir.join("p/dir")).expect("mkdir");
    fs::write(dir.join("p/dir/inside"), b"in").expect("write");
    renameat2(&a, &dir.join("p/dir"), libc::RENAME_EXCHANGE).expect("exchange file and dir");
    assert!(lstat(&a).is_dir());
    assert_eq!(read_all(&a.join("inside")), b"in");
    assert_eq!(read_all(&dir.join("p/dir")), b"B");
    assert_eq!(lstat(&dir.join("p")).nlink(), 2, "p lost its subdir");
    assert_errno(
        renameat2(&b, &dir.join("nope"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a missing target",
    );
    assert_eq!(read_all(&b), b"content of a");
}

/// RENAME_WHITEOUT (what overlayfs asks of its upper layer): the source name is left
/// holding a whiteout, a character device 0:0 of the caller, in the same step; with
/// NOREPLACE over a taken name nothing changes; with EXCHANGE it is EINVAL. Then
/// overlayfs itself over a drive folder: removing and renaming files of the lower layer
/// leaves whiteouts in the upper one, and the merged view is right across a remount of
/// the overlay.
#[test]
fn rename_whiteout_and_overlayfs_on_the_drive() {
    let mut d = Drive::mount();
    let dir = d.notes();
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    fs::write(&a, b"content of a").unwrap();
    fs::write(&c, b"content of c").unwrap();
    renameat2(&a, &b, libc::RENAME_WHITEOUT).expect("RENAME_WHITEOUT");
    assert_eq!(read_all(&b), b"content of a");
    let w = lstat(&a);
    assert_eq!(w.mode() & libc::S_IFMT, libc::S_IFCHR, "a whiteout");
    assert_eq!((w.rdev(), w.uid(), w.nlink()), (0, 0, 1));
    assert_errno(
        renameat2(&b, &c, libc::RENAME_WHITEOUT | libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "NOREPLACE over a taken name",
    );
    assert_eq!(read_all(&b), b"content of a");
    assert_errno(
        renameat2(&b, &c, libc::RENAME_WHITEOUT | libc::RENAME_EXCHANGE),
        libc::EINVAL,
        "with EXCHANGE",
    );
    d.remount();
    assert_eq!(lstat(&a).mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(read_all(&b), b"content of a");

    let lower = tempfile::tempdir().unwrap();
    let merged = tempfile::tempdir().unwrap();
    for n in ["gone", "moved", "kept"] {
        fs::write(lower.path().join(n), n).unwrap();
    }
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.path().display(),
        upper.display(),
        work.display()
    );
    let mount = || {
        let (ok, t) = out(std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(merged.path()));
        assert!(ok, "overlayfs over the drive: {t}");
    };
    let umount = || {
        let (ok, t) = out(std::process::Command::new("umount").arg(merged.path()));
        assert!(ok, "umount overlay: {t}");
    };
    mount();
    let m = merged.path();
    fs::remove_file(m.join("gone")).unwrap();
    fs::rename(m.join("moved"), m.join("renamed")).unwrap();
    fs::write(m.join("new"), b"new").unwrap();
    let names = |p: &std::path::Path| {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(m), ["kept", "new", "renamed"]);
    umount();
    for n in ["gone", "moved"] {
        let s = lstat(&upper.join(n));
        assert_eq!(
            (s.mode() & libc::S_IFMT, s.rdev()),
            (libc::S_IFCHR, 0),
            "{n}: a whiteout in the upper layer"
        );
    }
    mount();
    assert_eq!(names(m), ["kept", "new", "renamed"]);
    assert_eq!(read_all(&m.join("renamed")), b"moved");
    umount();
}

#[test]
fn directory_move_updates_dotdot() {
    let mut d = Drive::mount();
    let dir = d.notes();
    fs::create_dir_all(dir.join("one/moving/child")).expect("mkdir");
    fs::create_dir(dir.join("two")).expect("mkdir");
    fs::rename(dir.join("one/moving"), dir.join("two/moved")).expect("move dir");
    let check = |dir: &std::path::Path| {
        let two = lstat(&dir.join("two")).ino();
        let moved = lstat(&dir.join("two/moved")).ino();
        assert_eq!(lstat(&dir.join("two/moved/..")).ino(), two, "stat moved/..");
        assert_eq!(lstat(&dir.join("two/moved/child/..")).ino(), moved);
        let entries = raw_readdir(&dir.join("two/moved")).expect("readdir");
        let dotdot = entries
            .iter()
            .find(|(n, _, _)| n == b"..")
            .expect("`..` entry");
        assert_eq!(
            dotdot.1, two,
            "d_ino of `..` in the moved dir must be the new parent"
        );
        assert_eq!(lstat(&dir.join("one")).nlink(), 2);
        assert_eq!(lstat(&dir.join("two")).nlink(), 3);
    };
    check(&dir);
    d.remount();
    check(&d.notes());
}

/// A directory renamed over, or removed, while open stays reachable through its handle
/// until closed, as on ext4: fstat gives the directory with no link, listing it gives
/// nothing. An open file renamed over keeps its data and shows no link either.
#[test]
fn open_handles_of_replaced_directories_and_files_still_stat() {
    use std::os::fd::AsRawFd;
    let d = Drive::mount();
    let n = d.notes();
    let fstat = |f: &fs::File| {
        // SAFETY: zeroed POD out-struct; fstat on an fd we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::fstat(f.as_raw_fd(), &mut st) };
        (r, std::io::Error::last_os_error(), st)
    };
    fs::create_dir(n.join("src-dir")).unwrap();
    fs::create_dir(n.join("dst-dir")).unwrap();
    let replaced = fs::File::open(n.join("dst-dir")).unwrap();
    fs::create_dir(n.join("gone-dir")).unwrap();
    let removed = fs::File::open(n.join("gone-dir")).unwrap();
    fs::rename(n.join("src-dir"), n.join("dst-dir")).unwrap();
    fs::remove_dir(n.join("gone-dir")).unwrap();
    for (f, what) in [(&replaced, "renamed over"), (&removed, "removed")] {
        let (r, e, st) = fstat(f);
        assert_eq!(r, 0, "fstat of an open directory {what}: {e}");
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFDIR, "{what}");
        assert_eq!(st.st_nlink, 0, "{what}");
    }
    // The survivor is the renamed one, with its own links.
    assert_eq!(fs::metadata(n.join("dst-dir")).unwrap().nlink(), 2);
    let (r, e, _) = fstat(&fs::File::open(n.join("dst-dir")).unwrap());
    assert_eq!(r, 0, "{e}");
    // No new entry can be made in a dead directory (the kernel refuses it).
    let c = std::ffi::CString::new("x").unwrap();
    // SAFETY: mkdirat on an fd we own and a valid C string.
    let r = unsafe { libc::mkdirat(removed.as_raw_fd(), c.as_ptr(), 0o755) };
    assert_eq!(r, -1);
    drop((replaced, removed));
    // Files: the same through an open handle.
    fs::write(n.join("src-file"), b"new").unwrap();
    fs::write(n.join("dst-file"), b"old content").unwrap();
    let old = fs::File::open(n.join("dst-file")).unwrap();
    fs::rename(n.join("src-file"), n.join("dst-file")).unwrap();
    let (r, e, st) = fstat(&old);
    assert_eq!(r, 0, "fstat of an open file renamed over: {e}");
    assert_eq!((st.st_nlink, st.st_size), (0, 11));
    let mut buf = [0u8; 11];
    assert_eq!(
        std::os::unix::fs::FileExt::read_at(&old, &mut buf, 0).unwrap(),
        11
    );
    assert_eq!(&buf, b"old content");
    drop(old);
    assert_eq!(fs::read(n.join("dst-file")).unwrap(), b"new");
    let names: Vec<_> = fs::read_dir(&n)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"dst-dir".to_string()) && !names.contains(&"gone-dir".to_string()),
        "{names:?}"
    );
}
