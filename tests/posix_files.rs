//! Regular files: data round trips, offsets, append, truncation, sparse files, syncing,
//! open-unlinked / open-renamed files, mmap, locks.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

fn open_rw(p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

/// Write `data` with write(2) calls whose sizes cycle through `pieces`.
fn write_in_pieces(f: &mut File, data: &[u8], pieces: &[usize]) {
    let mut off = 0;
    let mut i = 0;
    while off < data.len() {
        let n = pieces[i % pieces.len()].min(data.len() - off);
        f.write_all(&data[off..off + n]).expect("write piece");
        off += n;
        i += 1;
    }
}

/// Read a whole file with read(2) calls whose sizes cycle through `pieces`.
fn read_in_pieces(p: &Path, pieces: &[usize]) -> Vec<u8> {
    let mut f = File::open(p).expect("open for read");
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut buf = vec![0u8; pieces[i % pieces.len()]];
        let n = f.read(&mut buf).expect("read piece");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        i += 1;
    }
}

fn small_roundtrip(dir: &Path) {
    let p = dir.join("hello.txt");
    fs::write(&p, b"hello\n").expect("write");
    assert_eq!(read_all(&p), b"hello\n");
    let m = lstat(&p);
    assert!(m.is_file());
    assert_eq!(m.len(), 6);
    // Rewrite longer, then shorter (O_TRUNC each time).
    fs::write(&p, b"a longer line of text\n").expect("rewrite");
    assert_eq!(read_all(&p), b"a longer line of text\n");
    fs::write(&p, b"short").expect("rewrite");
    assert_eq!(read_all(&p), b"short");
    assert_eq!(lstat(&p).len(), 5);
    // Empty file.
    let e = dir.join("empty");
    File::create(&e).expect("create empty");
    assert_eq!(lstat(&e).len(), 0);
    assert_eq!(read_all(&e), b"");
}

#[test]
fn small_file_roundtrip_standard() {
    let d = Drive::mount();
    small_roundtrip(&d.notes());
}

#[test]
fn small_file_roundtrip_e2e() {
    let d = Drive::mount();
    small_roundtrip(&d.health());
}

#[test]
fn sizes_around_chunk_boundaries() {
    let d = Drive::mount();
    let dir = d.notes();
    for (i, size) in [
        1,
        4095,
        4096,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK - 1,
        2 * CHUNK + 7,
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.join(format!("size-{size}"));
        let data = pseudo_random(size, i as u64 + 10);
        fs::write(&p, &data).expect("write");
        assert_eq!(lstat(&p).len(), size as u64, "st_size of {size}-byte file");
        assert_bytes_eq(&read_all(&p), &data, &format!("{size}-byte file"));
        assert_bytes_eq(
            &read_in_pieces(&p, &[4097, 65_537, 1]),
            &data,
            &format!("{size}-byte file, odd reads"),
        );
    }
    // A write straddling the first and second chunk of an existing file.
    let p = dir.join("straddle");
    let mut expect = pseudo_random(3 * CHUNK, 99);
    fs::write(&p, &expect).expect("write");
    let patch = pseudo_random(20, 100);
    let f = open_rw(&p);
    f.write_all_at(&patch, (CHUNK - 10) as u64)
        .expect("pwrite straddle");
    expect[CHUNK - 10..CHUNK + 10].copy_from_slice(&patch);
    // A write covering a whole chunk plus both neighbours' edges.
    let patch2 = pseudo_random(CHUNK + 2, 101);
    f.write_all_at(&patch2, (2 * CHUNK - 1) as u64)
        .expect("pwrite chunk+2");
    expect.resize(3 * CHUNK + 1, 0);
    expect[2 * CHUNK - 1..3 * CHUNK + 1].copy_from_slice(&patch2);
    drop(f);
    assert_eq!(lstat(&p).len(), (3 * CHUNK + 1) as u64);
    assert_bytes_eq(&read_all(&p), &expect, "straddling writes");
    // Reads that straddle boundaries.
    let f = File::open(&p).expect("open");
    for (off, len) in [
        (CHUNK - 1, 2),
        (CHUNK - 100, 200),
        (2 * CHUNK - 5, CHUNK + 6),
        (0, 3 * CHUNK + 1),
    ] {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off as u64).expect("pread");
        assert_bytes_eq(&buf, &expect[off..off + len], &format!("pread {len}@{off}"));
    }
}

fn large_random(d: &mut Drive, category: &str) {
    let dir = d.category_path(category);
    let p = dir.join("big.bin");
    let data = pseudo_random(10 * 1024 * 1024 + 777, 0xB16);
    let want = hash(&data);
    let mut f = File::create(&p).expect("create");
    write_in_pieces(&mut f, &data, &[1, 4096, 100_000, 1024 * 1024 + 3, CHUNK]);
    f.sync_all().expect("fsync");
    drop(f);
    assert_eq!(lstat(&p).len(), data.len() as u64);
    assert_eq!(file_hash(&p), want, "hash after write");
    let back = read_in_pieces(&p, &[CHUNK + 1, 7, 1_000_000]);
    assert_bytes_eq(&back, &data, "10 MiB read back in odd pieces");
    d.remount();
    let p = d.category_path(category).join("big.bin");
    assert_eq!(lstat(&p).len(), data.len() as u64);
    assert_eq!(file_hash(&p), want, "hash after remount");
}

#[test]
fn large_random_file_hash_standard() {
    let mut d = Drive::mount();
    large_random(&mut d, "Notes");
}

#[test]
fn large_random_file_hash_e2e() {
    let mut d = Drive::mount();
    large_random(&mut d, "Health");
}

#[test]
fn overwrite_in_the_middle() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    let mut expect = pseudo_random(600_000, 5);
    fs::write(&p, &expect).expect("write");
    let mut f = OpenOptions::new().write(true).open(&p).expect("open");
    for (off, len, seed) in [
        (50_000usize, 10usize, 6u64),
        (CHUNK - 3, 6, 7),
        (0, 1, 8),
        (599_999, 1, 9),
    ] {
        let patch = pseudo_random(len, seed);
        f.seek(SeekFrom::Start(off as u64)).expect("seek");
        f.write_all(&patch).expect("write");
        expect[off..off + len].copy_from_slice(&patch);
    }
    drop(f);
    assert_eq!(
        lstat(&p).len(),
        600_000,
        "overwrites must not change the size"
    );
    assert_bytes_eq(&read_all(&p), &expect, "after overwrites");
}

#[test]
fn pwrite_pread_at_offsets() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    let f = open_rw(&p);
    f.write_all_at(b"0123456789", 0).expect("pwrite");
    f.write_all_at(b"abc", 3).expect("pwrite");
    f.write_all_at(b"END", 100).expect("pwrite past EOF");
    f.write_all_at(b"XY", (3 * CHUNK) as u64)
        .expect("pwrite far");
    let size = 3 * CHUNK + 2;
    assert_eq!(f.metadata().expect("fstat").len(), size as u64);
    let mut expect = vec![0u8; size];
    expect[..10].copy_from_slice(b"012abc6789");
    expect[100..103].copy_from_slice(b"END");
    expect[3 * CHUNK..].copy_from_slice(b"XY");
    let mut buf = vec![0u8; size];
    f.read_exact_at(&mut buf, 0).expect("pread all");
    assert_bytes_eq(&buf, &expect, "pread of whole file");
    let mut small = [0u8; 5];
    assert_eq!(f.read_at(&mut small, 98).expect("pread"), 5);
    assert_eq!(&small, b"\0\0END");
    // pread straddling EOF is short.
    let mut tail = [0u8; 10];
    assert_eq!(
        f.read_at(&mut tail, (size - 1) as u64)
            .expect("pread at EOF-1"),
        1
    );
    assert_eq!(tail[0], b'Y');
    // pread/pwrite do not move the file offset.
    let mut f2 = &f;
    assert_eq!(f2.stream_position().expect("tell"), 0);
    let mut first = [0u8; 4];
    f2.read_exact(&mut first).expect("read");
    assert_eq!(&first, b"012a");
}

#[test]
fn o_append_two_fds_interleaved() {
    let d = Drive::mount();
    let p = d.notes().join("log");
    fs::write(&p, b"start|").expect("write");
    let mut a = OpenOptions::new().append(true).open(&p).expect("open a");
    let mut b = OpenOptions::new().append(true).open(&p).expect("open b");
    let mut expect = b"start|".to_vec();
    for i in 0..50usize {
        let ra = vec![b'A' + (i % 26) as u8; 1 + (i * 37) % 5000];
        let rb = vec![b'a' + (i % 26) as u8; 1 + (i * 91) % 7000];
        a.write_all(&ra).expect("append a");
        expect.extend_from_slice(&ra);
        b.write_all(&rb).expect("append b");
        expect.extend_from_slice(&rb);
    }
    // A seek on an O_APPEND fd does not stop the next write from going to the end.
    a.seek(SeekFrom::Start(0)).expect("seek");
    a.write_all(b"|tail").expect("append after seek");
    expect.extend_from_slice(b"|tail");
    drop((a, b));
    assert_eq!(lstat(&p).len(), expect.len() as u64);
    assert_bytes_eq(&read_all(&p), &expect, "interleaved appends");
}

#[test]
fn o_trunc_truncates_existing_file() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    fs::write(&p, pseudo_random(3 * CHUNK, 1)).expect("write");
    set_times(&p, Ts::At(1_000_000_000, 0), Ts::At(1_000_000_000, 0), true).expect("utimens");
    let before = now_minus(std::time::Duration::from_secs(1));
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("open O_TRUNC");
    let m = f.metadata().expect("fstat");
    assert_eq!(m.len(), 0, "O_TRUNC must empty the file");
    assert!(
        mtime(&m) >= before,
        "O_TRUNC must update mtime: {:?}",
        mtime(&m)
    );
    assert!(
        ctime(&m) >= before,
        "O_TRUNC must update ctime: {:?}",
        ctime(&m)
    );
    f.write_all(b"new").expect("write");
    drop(f);
    assert_eq!(read_all(&p), b"new", "no stale data after O_TRUNC");
    // O_TRUNC together with O_RDONLY is not used; O_RDWR|O_TRUNC works too.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("O_RDWR|O_TRUNC");
    assert_eq!(f.metadata().expect("fstat").len(), 0);
}

#[test]
fn o_excl_on_existing_name_is_eexist() {
    let d = Drive::mount();
    let dir = d.notes();
    let p = dir.join("f");
    fs::write(&p, b"keep me").expect("write");
    assert_errno(
        OpenOptions::new().write(true).create_new(true).open(&p),
        libc::EEXIST,
        "O_CREAT|O_EXCL on file",
    );
    assert_eq!(read_all(&p), b"keep me", "failed O_EXCL must not truncate");
    fs::create_dir(dir.join("d")).expect("mkdir");
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join("d")),
        libc::EEXIST,
        "O_EXCL on dir",
    );
    std::os::unix::fs::symlink("does-not-exist", dir.join("dangling")).expect("symlink");
    assert_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join("dangling")),
        libc::EEXIST,
        "O_EXCL on dangling symlink",
    );
    assert!(
        !dir.join("does-not-exist").exists(),
        "O_EXCL must not follow the symlink"
    );
    // O_CREAT|O_EXCL on a fresh name succeeds.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("fresh"))
        .expect("O_EXCL fresh");
}

#[test]
fn o_creat_mode_honours_umask() {
    let d = Drive::mount();
    let dir = d.notes();
    let names = [
        "u027-file",
        "u027-dir",
        "u000-file",
        "u000-dir",
        "u077-file",
    ];
    let c: Vec<_> = names.iter().map(|n| cpath(&dir.join(n))).collect();
    // umask is per process: change it only in a child.
    let code = in_child(None, || {
        let creat = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
        // SAFETY: raw syscalls on prepared C strings.
        unsafe {
            libc::umask(0o027);
            let r = open_close(&c[0], creat, 0o666);
            if r != 0 {
                return r;
            }
            if libc::mkdir(c[1].as_ptr(), 0o777) != 0 {
                return errno();
            }
            libc::umask(0);
            let r = open_close(&c[2], creat, 0o666);
            if r != 0 {
                return r;
            }
            if libc::mkdir(c[3].as_ptr(), 0o777) != 0 {
                return errno();
            }
            libc::umask(0o077);
            open_close(&c[4], creat, 0o644)
        }
    });
    assert_code(code, 0, "creating files under various umasks");
    let expect = [0o640, 0o750, 0o666, 0o777, 0o600];
    for (n, m) in names.iter().zip(expect) {
        assert_eq!(
            perm_bits(&lstat(&dir.join(n))),
            m,
            "mode of {n}: got {:o}",
            perm_bits(&lstat(&dir.join(n)))
        );
    }
    // O_CREAT on an existing file keeps its mode.
    let p = dir.join("u027-file");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o777)
        .open(&p)
        .expect("reopen");
    assert_eq!(perm_bits(&lstat(&p)), 0o640);
}

#[test]
fn read_past_eof_returns_nothing() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    fs::write(&p, b"0123456789").expect("write");
    let mut f = File::open(&p).expect("open");
    let mut buf = [0u8; 100];
    assert_eq!(f.read_at(&mut buf, 10).expect("pread at EOF"), 0);
    assert_eq!(
        f.read_at(&mut buf, 1_000_000).expect("pread far past EOF"),
        0
    );
    assert_eq!(f.read_at(&mut buf, 5).expect("pread across EOF"), 5);
    assert_eq!(&buf[..5], b"56789");
    f.seek(SeekFrom::Start(500)).expect("seek past EOF");
    assert_eq!(f.read(&mut buf).expect("read past EOF"), 0);
    assert_eq!(lstat(&p).len(), 10, "reading must not change the size");
}

#[test]
fn sparse_file_holes_read_as_zeros() {
    let d = Drive::mount();
    let p = d.notes().join("sparse");
    let off: u64 = 32 * 1024 * 1024 + 123;
    let mut f = open_rw(&p);
    f.write_all(b"head").expect("write head");
    f.seek(SeekFrom::Start(off)).expect("seek far");
    f.write_all(b"tail").expect("write tail");
    assert_eq!(f.metadata().expect("fstat").len(), off + 4);
    let mut expect = vec![0u8; (off + 4) as usize];
    expect[..4].copy_from_slice(b"head");
    expect[off as usize..].copy_from_slice(b"tail");
    for (o, len) in [
        (0u64, 4096usize),
        (4, CHUNK),
        (CHUNK as u64 - 7, 20),
        (off / 2, 1_000_000),
        (off - 10, 14),
    ] {
        let mut buf = vec![0xAAu8; len];
        f.read_exact_at(&mut buf, o).expect("pread in hole");
        assert_bytes_eq(
            &buf,
            &expect[o as usize..o as usize + len],
            &format!("hole read {len}@{o}"),
        );
    }
    drop(f);
    assert_eq!(file_hash(&p), hash(&expect), "whole sparse file");
    // Extend with truncate, then write beyond: the gap reads as zeros too.
    let f = open_rw(&p);
    f.set_len(off + 4 + 5 * CHUNK as u64).expect("truncate up");
    assert_eq!(
        f.metadata().expect("fstat").len(),
        off + 4 + 5 * CHUNK as u64
    );
    let far = off + 4 + 7 * CHUNK as u64 + 1;
    f.write_all_at(b"after", far)
        .expect("write after extension");
    expect.resize(far as usize, 0);
    expect.extend_from_slice(b"after");
    drop(f);
    assert_eq!(lstat(&p).len(), far + 5);
    assert_eq!(
        file_hash(&p),
        hash(&expect),
        "after truncate-up and write beyond"
    );
}

fn check_truncate_cycle(p: &Path, cut: usize, full: usize, use_path_truncate: bool) {
    fs::write(p, vec![0xABu8; full]).expect("write");
    let f = open_rw(p);
    if use_path_truncate {
        let c = cpath(p);
        // SAFETY: valid C string.
        cvt(unsafe { libc::truncate(c.as_ptr(), cut as libc::off_t) }).expect("truncate(2) down");
    } else {
        f.set_len(cut as u64).expect("ftruncate down");
    }
    assert_eq!(lstat(p).len(), cut as u64, "size after cut to {cut}");
    let mut expect = vec![0xABu8; cut];
    assert_bytes_eq(
        &read_all(p),
        &expect,
        &format!("content after cut to {cut}"),
    );
    f.set_len(full as u64).expect("ftruncate up");
    expect.resize(full, 0);
    assert_eq!(lstat(p).len(), full as u64);
    assert_bytes_eq(
        &read_all(p),
        &expect,
        &format!("after cut to {cut} and extend to {full}: old data must not reappear"),
    );
}

#[test]
fn truncate_down_then_up_reads_zeros() {
    let d = Drive::mount();
    let dir = d.notes();
    let full = 4 * CHUNK + 99;
    for (i, cut) in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 4321]
        .into_iter()
        .enumerate()
    {
        check_truncate_cycle(&dir.join(format!("ft-{i}")), cut, full, false);
        check_truncate_cycle(&dir.join(format!("t-{i}")), cut, full, true);
    }
}

#[test]
fn truncate_down_then_write_beyond_reads_zeros() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    fs::write(&p, vec![0xCDu8; 2 * CHUNK]).expect("write");
    let f = open_rw(&p);
    f.set_len(1000).expect("cut inside first chunk");
    f.write_all_at(b"Z", (CHUNK + 500) as u64)
        .expect("write beyond EOF");
    drop(f);
    let mut expect = vec![0xCDu8; 1000];
    expect.resize(CHUNK + 500, 0);
    expect.push(b'Z');
    assert_bytes_eq(
        &read_all(&p),
        &expect,
        "stale bytes after truncate + write beyond",
    );
}

#[test]
fn truncate_updates_mtime_and_ctime() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    fs::write(&p, b"some data").expect("write");
    set_times(&p, Ts::At(1_000_000_000, 5), Ts::At(1_000_000_000, 5), true).expect("utimens");
    let c0 = ctime(&lstat(&p));
    tick();
    let before = now_minus(std::time::Duration::from_millis(20));
    File::options()
        .write(true)
        .open(&p)
        .expect("open")
        .set_len(3)
        .expect("ftruncate");
    let m = lstat(&p);
    assert!(
        mtime(&m) >= before,
        "ftruncate must set mtime: {:?} < {before:?}",
        mtime(&m)
    );
    assert!(ctime(&m) > c0, "ftruncate must advance ctime");
}

#[test]
fn fsync_and_fdatasync_succeed() {
    let d = Drive::mount();
    let dir = d.notes();
    let p = dir.join("f");
    let mut f = File::create(&p).expect("create");
    f.write_all(&pseudo_random(CHUNK + 3, 1)).expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"more").expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    assert_eq!(lstat(&p).len(), (CHUNK + 7) as u64);
    // fsync on a directory fd (what editors and databases do after a rename).
    let dfd = File::open(&dir).expect("open dir");
    dfd.sync_all().expect("fsync dir");
    // A read-only fd can be fsynced too.
    File::open(&p)
        .expect("open ro")
        .sync_all()
        .expect("fsync read-only fd");
}

#[test]
fn unlink_while_open_keeps_fd_working() {
    let d = Drive::mount();
    let dir = d.notes();
    let p = dir.join("victim");
    let f = open_rw(&p);
    f.write_all_at(b"before", 0).expect("write");
    let ino = f.metadata().expect("fstat").ino();
    fs::remove_file(&p).expect("unlink");
    assert_errno(
        fs::symlink_metadata(&p),
        libc::ENOENT,
        "stat of unlinked name",
    );
    assert!(
        !list_names(&dir).contains(&"victim".to_string()),
        "name still listed"
    );
    let m = f.metadata().expect("fstat after unlink");
    assert_eq!(m.nlink(), 0, "nlink of an open, unlinked file");
    assert_eq!(m.ino(), ino);
    f.write_all_at(b" after", 6).expect("write after unlink");
    f.write_all_at(&pseudo_random(CHUNK, 3), 12)
        .expect("big write after unlink");
    let mut buf = vec![0u8; 12];
    f.read_exact_at(&mut buf, 0).expect("read after unlink");
    assert_eq!(&buf, b"before after");
    assert_eq!(f.metadata().expect("fstat").len(), (12 + CHUNK) as u64);
    // The name can be reused without disturbing the open file.
    fs::write(&p, b"new file").expect("create same name");
    assert_eq!(read_all(&p), b"new file");
    f.read_exact_at(&mut buf, 0).expect("read old fd");
    assert_eq!(
        &buf, b"before after",
        "old fd must still see the unlinked file"
    );
    assert_ne!(lstat(&p).ino(), ino, "new file must be a new inode");
    drop(f);
    assert_eq!(read_all(&p), b"new file");
}

#[test]
fn rename_while_open_keeps_fd_working() {
    let d = Drive::mount();
    let dir = d.notes();
    fs::create_dir(dir.join("sub")).expect("mkdir");
    let p = dir.join("orig");
    let q = dir.join("sub/renamed");
    let f = open_rw(&p);
    f.write_all_at(b"hello", 0).expect("write");
    let ino = f.metadata().expect("fstat").ino();
    fs::rename(&p, &q).expect("rename");
    f.write_all_at(b" world", 5).expect("write after rename");
    f.sync_all().expect("fsync after rename");
    assert_errno(fs::symlink_metadata(&p), libc::ENOENT, "old name");
    assert_eq!(read_all(&q), b"hello world");
    assert_eq!(lstat(&q).ino(), ino);
    assert_eq!(f.metadata().expect("fstat").nlink(), 1);
}

#[test]
fn mmap_shared_write_is_visible_to_read() {
    let d = Drive::mount();
    let p = d.notes().join("mapped");
    let len = 3 * CHUNK + 100;
    let f = open_rw(&p);
    f.set_len(len as u64).expect("size file");
    // SAFETY: mapping a regular file we own; unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    let mut expect = vec![0u8; len];
    // SAFETY: `addr` maps `len` bytes.
    let map = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), len) };
    for (off, seed) in [
        (0usize, 1u64),
        (CHUNK - 50, 2),
        (2 * CHUNK + 17, 3),
        (len - 64, 4),
    ] {
        let patch = pseudo_random(64, seed);
        map[off..off + 64].copy_from_slice(&patch);
        expect[off..off + 64].copy_from_slice(&patch);
    }
    // SAFETY: same mapping.
    assert_eq!(unsafe { libc::msync(addr, len, libc::MS_SYNC) }, 0, "msync");
    // SAFETY: same mapping, no longer used.
    assert_eq!(unsafe { libc::munmap(addr, len) }, 0);
    drop(f);
    assert_bytes_eq(
        &read_all(&p),
        &expect,
        "data written through a shared mapping",
    );
    // And the other way: write(2) data is visible through a read-only mapping.
    let data = pseudo_random(len, 9);
    fs::write(&p, &data).expect("rewrite");
    let f = File::open(&p).expect("open ro");
    // SAFETY: read-only shared mapping of `len` bytes.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "mmap ro: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `addr` maps `len` readable bytes.
    let seen = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len) }.to_vec();
    // SAFETY: unmapping our mapping.
    unsafe { libc::munmap(addr, len) };
    assert_bytes_eq(&seen, &data, "write(2) data seen through mmap");
}

#[test]
fn concurrent_writers_in_threads() {
    let d = Drive::mount();
    let dir = d.notes();
    let shared = dir.join("shared");
    File::create(&shared).expect("create shared");
    let region = CHUNK + 333;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let dir = &dir;
            let shared = &shared;
            s.spawn(move || {
                let own = dir.join(format!("own-{t}"));
                let data = pseudo_random(2 * 1024 * 1024 + t as usize, 1000 + t);
                let mut f = File::create(&own).expect("create own");
                write_in_pieces(&mut f, &data, &[65_536, 12_345]);
                drop(f);
                let part = pseudo_random(region, 2000 + t);
                let sf = OpenOptions::new()
                    .write(true)
                    .open(shared)
                    .expect("open shared");
                for (i, piece) in part.chunks(10_000).enumerate() {
                    sf.write_all_at(piece, t * region as u64 + (i * 10_000) as u64)
                        .expect("pwrite shared");
                }
            });
        }
    });
    for t in 0..4u64 {
        let data = pseudo_random(2 * 1024 * 1024 + t as usize, 1000 + t);
        assert_bytes_eq(
            &read_all(&dir.join(format!("own-{t}"))),
            &data,
            &format!("own-{t}"),
        );
    }
    let all = read_all(&shared);
    assert_eq!(all.len(), 4 * region);
    for t in 0..4u64 {
        let part = pseudo_random(region, 2000 + t);
        let start = t as usize * region;
        assert_bytes_eq(
            &all[start..start + region],
            &part,
            &format!("shared region {t}"),
        );
    }
}

#[test]
fn posix_and_flock_locks_conflict_between_processes() {
    let d = Drive::mount();
    let p = d.notes().join("lockfile");
    fs::write(&p, b"locked").expect("write");
    let f = open_rw(&p);
    let wrlck = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: valid fd and flock struct.
    cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &wrlck) }).expect("F_SETLK write lock");
    let c = cpath(&p);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let code = in_child(None, || {
        // SAFETY: raw syscalls on prepared data.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                return errno();
            }
            let mut probe = wrlck;
            if libc::fcntl(fd, libc::F_GETLK, &mut probe) != 0 {
                return 100;
            }
            if probe.l_type != libc::F_WRLCK as libc::c_short || probe.l_pid != parent {
                return 101;
            }
            if libc::fcntl(fd, libc::F_SETLK, &wrlck) == 0 {
                return 0;
            }
            errno()
        }
    });
    assert!(
        code != 100 && code != 101,
        "F_GETLK did not report the parent's lock (code {code})"
    );
    assert!(
        code == libc::EAGAIN || code == libc::EACCES,
        "conflicting F_SETLK: expected EAGAIN/EACCES, got {}",
        errno_name(code)
    );
    let unlck = libc::flock {
        l_type: libc::F_UNLCK as libc::c_short,
        ..wrlck
    };
    // SAFETY: valid fd and flock struct.
    cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &unlck) }).expect("unlock");
    let code = in_child(None, || {
        // SAFETY: raw syscalls on prepared data.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                return errno();
            }
            rc(libc::fcntl(fd, libc::F_SETLK, &wrlck))
        }
    });
    assert_code(code, 0, "F_SETLK after unlock");
    // flock(2) locks.
    // SAFETY: valid fd.
    cvt(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }).expect("flock");
    let try_flock = || {
        in_child(None, || {
            // SAFETY: raw syscalls on prepared data.
            unsafe {
                let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    return errno();
                }
                rc(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB))
            }
        })
    };
    assert_code(try_flock(), libc::EWOULDBLOCK, "second flock while held");
    // SAFETY: valid fd.
    cvt(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) }).expect("unflock");
    assert_code(try_flock(), 0, "flock after release");
}

#[test]
fn fd_access_mode_errors() {
    let d = Drive::mount();
    let p = d.notes().join("f");
    fs::write(&p, b"data").expect("write");
    let mut ro = File::open(&p).expect("open ro");
    assert_errno(ro.write(b"x"), libc::EBADF, "write on O_RDONLY fd");
    assert_errno(ro.set_len(0), libc::EINVAL, "ftruncate on O_RDONLY fd");
    let mut wo = OpenOptions::new().write(true).open(&p).expect("open wo");
    let mut buf = [0u8; 4];
    assert_errno(wo.read(&mut buf), libc::EBADF, "read on O_WRONLY fd");
    assert_eq!(read_all(&p), b"data");
    assert_errno(
        File::open(p.join("x")),
        libc::ENOTDIR,
        "file used as a directory",
    );
}

/// fallocate(2) and posix_fallocate(3): reserving grows the size (or keeps it), punching
/// a hole and zeroing a range read back as zeros around untouched bytes and survive a
/// remount, what cannot be done is EOPNOTSUPP, and a reservation beyond the store's room
/// is ENOSPC.
#[test]
fn fallocate_reserves_punches_and_zeroes() {
    const CHUNK: u64 = 256 << 10;
    let mut d = Drive::mount();
    let path = d.notes().join("allocated");
    let pattern: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8 + 1).collect();
    fs::write(&path, &pattern).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let fd = f.as_raw_fd();
    let falloc = |mode: i32, off: u64, len: u64| {
        // SAFETY: fallocate on an fd we own.
        let r = unsafe { libc::fallocate(fd, mode, off as i64, len as i64) };
        if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        }
    };
    let size = |f: &fs::File| f.metadata().unwrap().len();
    // posix_fallocate: mode 0, the size grows, the new bytes read as zeros.
    // SAFETY: posix_fallocate on an fd we own.
    assert_eq!(
        unsafe { libc::posix_fallocate(fd, 0, (4 * CHUNK) as i64) },
        0
    );
    assert_eq!(size(&f), 4 * CHUNK);
    // KEEP_SIZE: nothing visible changes.
    assert_eq!(falloc(libc::FALLOC_FL_KEEP_SIZE, 4 * CHUNK, CHUNK), 0);
    assert_eq!(size(&f), 4 * CHUNK);
    // A hole from inside chunk 0 to inside chunk 2 (chunk 1 whole).
    let (hole_at, hole_len) = (100, 2 * CHUNK);
    assert_eq!(
        falloc(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            hole_at,
            hole_len
        ),
        0
    );
    // Zeros from inside chunk 3 to past the end: the size grows.
    let (zero_at, zero_len) = (3 * CHUNK + 50, 2 * CHUNK);
    assert_eq!(falloc(libc::FALLOC_FL_ZERO_RANGE, zero_at, zero_len), 0);
    assert_eq!(size(&f), zero_at + zero_len);
    let mut expected = pattern.clone();
    expected.resize((zero_at + zero_len) as usize, 0);
    expected[hole_at as usize..(hole_at + hole_len) as usize].fill(0);
    expected[zero_at as usize..].fill(0);
    let read_all = |f: &fs::File| {
        let mut buf = vec![0xEEu8; size(f) as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    };
    assert!(read_all(&f) == expected, "content after punch and zero");
    // Modes FUSE cannot pass, and a hole without KEEP_SIZE: EOPNOTSUPP.
    assert_eq!(
        falloc(libc::FALLOC_FL_COLLAPSE_RANGE, 0, CHUNK),
        libc::EOPNOTSUPP
    );
    assert_eq!(falloc(libc::FALLOC_FL_PUNCH_HOLE, 0, 10), libc::EOPNOTSUPP);
    // More than the store has room for: ENOSPC, and nothing changes.
    // SAFETY: zeroed POD out-struct; statvfs on a valid path.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(d.mnt.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut vfs) }, 0);
    let room = vfs.f_bavail * vfs.f_frsize;
    if !d.is_plain() {
        assert_eq!(falloc(0, 0, room + (1 << 30)), libc::ENOSPC);
        assert_eq!(size(&f), zero_at + zero_len);
    }
    drop(f);
    // A hole past what a short chunk holds: the chunk's bytes stay (the chunk is taken out
    // of the write buffer to be zeroed, and must always go back).
    let short = d.notes().join("short");
    let g = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&short)
        .unwrap();
    g.write_all_at(&[9u8; 100], 0).unwrap();
    g.set_len(1 << 20).unwrap();
    // SAFETY: fallocate on an fd we own.
    let r = unsafe {
        libc::fallocate(
            g.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            4096,
        )
    };
    assert_eq!(r, 0);
    drop(g);
    d.remount();
    let f = fs::File::open(&path).unwrap();
    assert!(read_all(&f) == expected, "content after a remount");
    let back = fs::read(&short).unwrap();
    assert_eq!(back.len(), 1 << 20);
    assert!(
        back[..100].iter().all(|&b| b == 9),
        "the bytes before the hole were lost"
    );
    assert!(back[100..].iter().all(|&b| b == 0));
}
