//! Persistence across unmount/mount: a full manifest (types, modes, owners, sizes,
//! nanosecond mtimes, link counts, hard-link identity, symlink targets, content hashes,
//! xattrs, device numbers) must be identical before and after. In plain mode the remount
//! is a no-op and the comparisons still run.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, symlink};

fn remount_preserves_manifest(category: &str) {
    let mut d = Drive::mount();
    let tree = d.category_path(category).join("tree");
    fs::create_dir(&tree).expect("mkdir");
    build_sample_tree(
        &tree,
        SampleTree {
            specials: true,
            sparse: true,
        },
    );
    let before = manifest(&tree);
    assert!(
        before.len() > 40,
        "sample tree unexpectedly small: {}",
        before.len()
    );
    d.remount();
    let tree = d.category_path(category).join("tree");
    assert_manifest_eq(
        &manifest(&tree),
        &before,
        &format!("{category} tree after remount"),
    );
    // And once more, with nothing touched in between.
    d.remount();
    assert_manifest_eq(
        &manifest(&d.category_path(category).join("tree")),
        &before,
        "after a second remount",
    );
}

#[test]
fn remount_preserves_manifest_standard() {
    remount_preserves_manifest("Notes");
}

#[test]
fn remount_preserves_manifest_e2e() {
    remount_preserves_manifest("Health");
}

#[test]
fn modifications_after_remount_persist() {
    let mut d = Drive::mount();
    let tree = d.notes().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    build_sample_tree(
        &tree,
        SampleTree {
            specials: true,
            sparse: false,
        },
    );
    d.remount();
    let t = d.notes().join("tree");
    // Modify everything that can be modified.
    let mut f = OpenOptions::new()
        .append(true)
        .open(t.join("a/b/big.bin"))
        .expect("open");
    f.write_all(&pseudo_random(CHUNK + 1, 5)).expect("append");
    drop(f);
    File::options()
        .write(true)
        .open(t.join("a/chunk.bin"))
        .expect("open")
        .set_len(1000)
        .expect("truncate");
    OpenOptions::new()
        .write(true)
        .open(t.join("a/chunk-plus-1.bin"))
        .expect("open")
        .write_all_at(b"patched in the middle", 100_000)
        .expect("pwrite");
    fs::rename(t.join("hello.txt"), t.join("a/renamed.txt")).expect("rename");
    fs::rename(t.join("deep"), t.join("a/b/moved-deep")).expect("move dir");
    fs::remove_file(t.join("one.txt")).expect("unlink");
    fs::remove_file(t.join("hl-3")).expect("unlink a hard link");
    fs::remove_dir(t.join("empty")).expect("rmdir");
    fs::create_dir(t.join("new-dir")).expect("mkdir");
    fs::write(t.join("new-dir/new-file"), b"created after remount").expect("write");
    symlink("../a/renamed.txt", t.join("new-dir/new-link")).expect("symlink");
    fs::hard_link(t.join("new-dir/new-file"), t.join("a/new-hard-link")).expect("link");
    chmod(&t.join("exec.sh"), 0o700);
    lchown(&t.join("readonly.txt"), 31337, 31338);
    set_xattr(&t.join("a/b"), "user.added", b"later", 0).expect("setxattr");
    remove_xattr(&t.join("a"), "user.dirattr").expect("removexattr");
    set_xattr(
        &t.join("a/b/big.bin"),
        "user.empty",
        b"no longer empty",
        libc::XATTR_REPLACE,
    )
    .expect("replace xattr");
    set_times(
        &t.join("with space.txt"),
        Ts::At(1_700_000_000, 1),
        Ts::At(1_700_000_001, 999_999_999),
        true,
    )
    .expect("utimens");
    renameat2(
        &t.join("exec.sh"),
        &t.join("readonly.txt"),
        libc::RENAME_EXCHANGE,
    )
    .expect("exchange");
    let before = manifest(&t);
    d.remount();
    assert_manifest_eq(
        &manifest(&d.notes().join("tree")),
        &before,
        "modified tree after remount",
    );
}

#[test]
fn unsynced_writes_survive_umount() {
    let mut d = Drive::mount();
    let dir = d.notes();
    let data = pseudo_random(3 * 1024 * 1024 + 5, 11);
    // No fsync anywhere: umount alone must flush.
    fs::write(dir.join("unsynced.bin"), &data).expect("write");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("partial"))
        .expect("open");
    f.write_all_at(b"written at an offset", (2 * CHUNK + 3) as u64)
        .expect("pwrite");
    drop(f);
    fs::create_dir(dir.join("fresh-dir")).expect("mkdir");
    d.remount();
    let dir = d.notes();
    assert_bytes_eq(
        &read_all(&dir.join("unsynced.bin")),
        &data,
        "unsynced file after remount",
    );
    let mut want = vec![0u8; 2 * CHUNK + 3];
    want.extend_from_slice(b"written at an offset");
    assert_bytes_eq(
        &read_all(&dir.join("partial")),
        &want,
        "sparse unsynced file after remount",
    );
    assert!(lstat(&dir.join("fresh-dir")).is_dir());
}

#[test]
fn mount_options_memory_cache_and_commit_interval() {
    let mut d = Drive::mount_with(MountOptions {
        memory_cache: Some("64M".to_string()),
        commit_interval: Some(1),
        ..Default::default()
    });
    let dir = d.notes();
    let first = pseudo_random(5 * 1024 * 1024, 21);
    fs::write(dir.join("a"), &first).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = pseudo_random(CHUNK * 3 + 1, 22);
    fs::write(dir.join("b"), &second).expect("write");
    fs::write(dir.join("a"), &second).expect("overwrite after a commit");
    let before = manifest(&dir);
    d.remount();
    let dir = d.notes();
    assert_manifest_eq(&manifest(&dir), &before, "after remount with options");
    assert_bytes_eq(&read_all(&dir.join("a")), &second, "overwritten file");
}

#[test]
fn many_small_files_persist() {
    let mut d = Drive::mount();
    let root = d.health().join("many");
    for i in 0..20 {
        let sub = root.join(format!("dir-{i:02}"));
        fs::create_dir_all(&sub).expect("mkdir");
        for j in 0..25 {
            fs::write(
                sub.join(format!("f-{j:02}")),
                format!("file {i}/{j}\n").repeat(j + 1),
            )
            .expect("write");
        }
    }
    let before = manifest(&root);
    assert_eq!(before.len(), 1 + 20 + 500);
    d.remount();
    assert_manifest_eq(
        &manifest(&d.health().join("many")),
        &before,
        "500 small files after remount",
    );
}

/// A file handle (`name_to_handle_at`), as an NFS server hands them out.
struct Handle {
    buf: Vec<u8>,
}

impl Handle {
    fn of(path: &std::path::Path) -> Handle {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        const MAX: usize = 128;
        let mut buf = vec![0u8; std::mem::size_of::<libc::file_handle>() + MAX];
        let fh = buf.as_mut_ptr() as *mut libc::file_handle;
        let mut mount_id = 0;
        // SAFETY: `buf` holds a file_handle header with room for MAX bytes of handle.
        let r = unsafe {
            (*fh).handle_bytes = MAX as u32;
            libc::name_to_handle_at(libc::AT_FDCWD, c.as_ptr(), fh, &mut mount_id, 0)
        };
        assert_eq!(
            r,
            0,
            "name_to_handle_at {}: {}",
            path.display(),
            errno_name(errno())
        );
        Handle { buf }
    }

    /// `open_by_handle_at` through any descriptor on the mount: the descriptor, or the errno.
    fn open(&mut self, mount: &File, flags: i32) -> Result<File, i32> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let fh = self.buf.as_mut_ptr() as *mut libc::file_handle;
        // SAFETY: the handle was filled by name_to_handle_at; the fd is ours once returned.
        let fd = unsafe { libc::open_by_handle_at(mount.as_raw_fd(), fh, flags) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

fn drop_kernel_caches() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (root)");
}

/// Exportable file handles: a handle taken before the kernel drops its caches still
/// opens the file (its content) and the folder (reconnected under its real path, which
/// takes lookups of `..` by id), and after a remount of the drive too, as an NFS server
/// re-exporting the drive needs; a handle of a removed file is ESTALE. Without the
/// export path every one of these opens fails with ESTALE after the drop.
#[test]
fn file_handles_survive_dropped_caches_and_a_remount() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut d = Drive::mount();
    if d.is_plain() {
        return;
    }
    let dir = d.notes().join("exported/deeper");
    fs::create_dir_all(&dir).unwrap();
    let (file, gone) = (dir.join("file"), dir.join("gone"));
    fs::write(&file, b"handle me").unwrap();
    fs::write(&gone, b"x").unwrap();
    let mut handles = [Handle::of(&file), Handle::of(&dir), Handle::of(&gone)];
    let inos = [lstat(&file).ino(), lstat(&dir).ino()];
    fs::remove_file(&gone).unwrap();
    for pass in ["after dropping the caches", "after a remount"] {
        if pass == "after a remount" {
            d.remount();
        }
        let mount = File::open(&d.mnt).unwrap();
        drop_kernel_caches();
        let mut f = handles[0]
            .open(&mount, libc::O_RDONLY)
            .map_err(errno_name)
            .expect(pass);
        let mut text = Vec::new();
        f.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"handle me", "{pass}");
        assert_eq!(f.metadata().unwrap().ino(), inos[0]);
        let fd = handles[1]
            .open(&mount, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(errno_name)
            .expect(pass);
        assert_eq!(fd.metadata().unwrap().ino(), inos[1]);
        use std::os::fd::AsRawFd;
        let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(path, dir, "{pass}: the folder reconnected under its path");
        assert_eq!(
            handles[2].open(&mount, libc::O_RDONLY).map(|_| ()),
            Err(libc::ESTALE),
            "{pass}: a removed file"
        );
    }
}
