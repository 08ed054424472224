//! Special files: FIFOs, device nodes, unix sockets.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};

#[test]
fn fifo_passes_data() {
    let d = Drive::mount();
    let p = d.notes().join("fifo");
    mkfifo(&p, 0o640).expect("mkfifo");
    let m = lstat(&p);
    assert_eq!(fmt_bits(&m), libc::S_IFIFO);
    assert_eq!(
        perm_bits(&m) & !0o640,
        0,
        "mkfifo mode may only lose bits to the umask"
    );
    assert!(m.file_type().is_fifo());
    chmod(&p, 0o640);
    assert_eq!(perm_bits(&lstat(&p)), 0o640);
    assert!(list_names(&d.notes()).contains(&"fifo".to_string()));
    let mut r = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p)
        .expect("open read end");
    let mut w = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p)
        .expect("open write end");
    w.write_all(b"through the pipe").expect("write fifo");
    let mut buf = [0u8; 64];
    let n = r.read(&mut buf).expect("read fifo");
    assert_eq!(&buf[..n], b"through the pipe");
    // Nothing left: a non-blocking read reports EAGAIN while a writer exists.
    assert_errno(r.read(&mut buf), libc::EAGAIN, "empty fifo");
    drop(w);
    assert_eq!(
        r.read(&mut buf).expect("read after writer closed"),
        0,
        "EOF once writers are gone"
    );
    // Writing with no reader: ENXIO for a non-blocking open.
    drop(r);
    assert_errno(
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p),
        libc::ENXIO,
        "non-blocking open for write without readers",
    );
    assert_errno(mkfifo(&p, 0o600), libc::EEXIST, "mkfifo on existing name");
    fs::remove_file(&p).expect("unlink fifo");
}

#[test]
fn mknod_devices_keep_rdev() {
    let d = Drive::mount();
    let dir = d.notes();
    let chr = dir.join("null-like");
    let dev = libc::makedev(1, 3);
    mknod(&chr, libc::S_IFCHR | 0o600, dev).expect("mknod char device (root)");
    let m = lstat(&chr);
    assert_eq!(fmt_bits(&m), libc::S_IFCHR);
    assert_eq!(perm_bits(&m), 0o600);
    assert_eq!(m.rdev(), dev, "st_rdev of char device");
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    let blk = dir.join("loop-like");
    let bdev = libc::makedev(7, 300);
    mknod(&blk, libc::S_IFBLK | 0o640, bdev).expect("mknod block device (root)");
    let m = lstat(&blk);
    assert_eq!(fmt_bits(&m), libc::S_IFBLK);
    assert_eq!(m.rdev(), bdev, "st_rdev of block device (minor > 255)");
    // mknod of a regular file and of a FIFO.
    mknod(&dir.join("regular"), libc::S_IFREG | 0o644, 0).expect("mknod S_IFREG");
    assert!(lstat(&dir.join("regular")).is_file());
    assert_eq!(lstat(&dir.join("regular")).len(), 0);
    mknod(&dir.join("fifo"), libc::S_IFIFO | 0o644, 0).expect("mknod S_IFIFO");
    assert_eq!(fmt_bits(&lstat(&dir.join("fifo"))), libc::S_IFIFO);
    // Device nodes can be renamed, hard linked and removed like anything else.
    fs::rename(&chr, dir.join("renamed-dev")).expect("rename device");
    fs::hard_link(dir.join("renamed-dev"), dir.join("linked-dev")).expect("link device");
    assert_eq!(lstat(&dir.join("linked-dev")).rdev(), dev);
    assert_eq!(lstat(&dir.join("linked-dev")).nlink(), 2);
    fs::remove_file(dir.join("renamed-dev")).expect("unlink device");
    assert_errno(
        mknod(&dir.join("regular"), libc::S_IFCHR | 0o600, dev),
        libc::EEXIST,
        "mknod on existing name",
    );
}

#[test]
fn unix_socket_bind_and_connect() {
    let d = Drive::mount();
    let dir = d.notes();
    let p = dir.join("sock");
    let listener = UnixListener::bind(&p).expect("bind unix socket");
    let m = lstat(&p);
    assert_eq!(
        fmt_bits(&m),
        libc::S_IFSOCK,
        "bind must create an S_IFSOCK node"
    );
    assert!(list_names(&dir).contains(&"sock".to_string()));
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("server read");
        s.write_all(
            &buf.iter()
                .map(|b| b.to_ascii_uppercase())
                .collect::<Vec<_>>(),
        )
        .expect("server write");
    });
    let mut c = UnixStream::connect(&p).expect("connect to socket in the mount");
    c.write_all(b"hello").expect("client write");
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).expect("client read");
    assert_eq!(&buf, b"HELLO");
    server.join().expect("server thread");
    assert_errno(
        UnixListener::bind(&p).map(drop),
        libc::EADDRINUSE,
        "bind on existing socket path",
    );
    fs::remove_file(&p).expect("unlink socket");
    assert_errno(
        UnixStream::connect(&p).map(drop),
        libc::ENOENT,
        "connect after unlink",
    );
}

/// nosuid and nodev by default; `-o suid,dev` on root's own mount (no allow_other) makes
/// a set-user-ID program run as its owner and a device node open, and shows in the mount
/// flags; with allow_other they are refused and nothing is mounted.
#[test]
fn suid_and_dev_only_on_roots_own_mount() {
    let mut d = Drive::mount();
    if d.is_plain() {
        return;
    }
    let user = test_user();
    let id = d.notes().join("id");
    fs::copy("/usr/bin/id", &id).unwrap();
    std::os::unix::fs::chown(&id, Some(user.uid), Some(user.gid)).unwrap();
    fs::set_permissions(&id, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let null = d.notes().join("null");
    mknod(&null, libc::S_IFCHR | 0o666, libc::makedev(1, 3)).unwrap();
    let euid = || {
        let (ok, t) = out(std::process::Command::new(&id).arg("-u"));
        assert!(ok, "{t}");
        t.trim().parse::<u32>().unwrap()
    };
    let flags = |d: &Drive| mount_info(&d.mnt).unwrap().flags;
    assert_eq!(euid(), 0, "nosuid: the bit is ignored");
    assert_errno(
        OpenOptions::new().write(true).open(&null),
        libc::EACCES,
        "nodev",
    );
    let f = flags(&d);
    assert!(f.contains("nosuid") && f.contains("nodev"), "{f}");

    d.mount_options().extra = vec!["-o".into(), "suid,dev".into()];
    d.remount();
    assert_eq!(euid(), user.uid, "suid: runs as the file's owner");
    OpenOptions::new()
        .write(true)
        .open(&null)
        .and_then(|mut f| f.write_all(b"into /dev/null"))
        .expect("dev: the node opens");
    let f = flags(&d);
    assert!(!f.contains("nosuid") && !f.contains("nodev"), "{f}");

    d.unmount();
    let (ok, t) = out(with_passcode(
        &d,
        &[
            "mount",
            d.mnt.to_str().unwrap(),
            "-o",
            "suid",
            "--allow-other",
        ],
    ));
    assert!(
        !ok && t.contains("-o suid with allow_other is refused"),
        "{t}"
    );
    assert!(mount_info(&d.mnt).is_none(), "nothing mounted");
}
