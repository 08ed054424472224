//! Manifests: a full, comparable description of a tree (types, modes, owners, times,
//! hard links, xattrs, content digests), and a varied sample tree to compare.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// 0 for directories (their st_size is file-system specific).
    pub size: u64,
    pub mtime: (i64, i64),
    pub nlink: u64,
    /// For non-directories with nlink > 1: the smallest path in the tree sharing the inode.
    pub hardlink_group: Option<String>,
    pub symlink_target: Option<String>,
    pub content_hash: Option<String>,
    pub rdev: u64,
    /// `user.*` xattrs, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub type Manifest = BTreeMap<String, Entry>;

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chr"
    } else if ft.is_block_device() {
        "blk"
    } else if ft.is_socket() {
        "sock"
    } else {
        "unknown"
    }
}

/// Describe every entry below `root` (root itself is `"."`), without following symlinks.
pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    let mut inodes: HashMap<u64, Vec<String>> = HashMap::new();
    walk_manifest(root, ".", &mut out, &mut inodes);
    for paths in inodes.values() {
        let first = paths.iter().min().cloned();
        for p in paths {
            out.get_mut(p).expect("entry").hardlink_group = first.clone();
        }
    }
    out
}

fn walk_manifest(
    root: &Path,
    rel: &str,
    out: &mut Manifest,
    inodes: &mut HashMap<u64, Vec<String>>,
) {
    let path = if rel == "." {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let m = lstat(&path);
    let ft = m.file_type();
    let kind = kind_of(&ft);
    let xattrs = llist_xattr(&path)
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()))
        .into_iter()
        .filter(|n| n.starts_with("user."))
        .map(|n| {
            let v = lget_xattr(&path, &n)
                .unwrap_or_else(|e| panic!("getxattr {n} {}: {e}", path.display()));
            (n, v)
        })
        .collect();
    let e = Entry {
        kind,
        mode: perm_bits(&m),
        uid: m.uid(),
        gid: m.gid(),
        size: if ft.is_dir() { 0 } else { m.size() },
        mtime: mtime(&m),
        nlink: m.nlink(),
        hardlink_group: None,
        symlink_target: ft.is_symlink().then(|| {
            fs::read_link(&path)
                .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
                .to_string_lossy()
                .into_owned()
        }),
        content_hash: ft.is_file().then(|| file_hash(&path)),
        rdev: if ft.is_char_device() || ft.is_block_device() {
            m.rdev()
        } else {
            0
        },
        xattrs,
    };
    if !ft.is_dir() && m.nlink() > 1 {
        inodes.entry(m.ino()).or_default().push(rel.to_string());
    }
    out.insert(rel.to_string(), e);
    if ft.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.expect("dir entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let child = if rel == "." {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            walk_manifest(root, &child, out, inodes);
        }
    }
}

/// Assert two manifests are equal, listing every difference.
#[track_caller]
pub fn assert_manifest_eq(actual: &Manifest, expected: &Manifest, what: &str) {
    let mut diffs = Vec::new();
    for (p, e) in expected {
        match actual.get(p) {
            None => diffs.push(format!("missing: {p}")),
            Some(a) if a != e => diffs.push(format!("differs: {p}\n   got  {a:?}\n   want {e:?}")),
            _ => {}
        }
    }
    for p in actual.keys() {
        if !expected.contains_key(p) {
            diffs.push(format!("unexpected: {p}"));
        }
    }
    if !diffs.is_empty() {
        let shown: Vec<&String> = diffs.iter().take(40).collect();
        panic!(
            "{what}: {} difference(s):\n{}",
            diffs.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Options for [`build_sample_tree`].
#[derive(Clone, Copy, Debug)]
pub struct SampleTree {
    /// Include a FIFO and a character device (`special/`).
    pub specials: bool,
    /// Include a sparse file with a multi-MiB hole.
    pub sparse: bool,
}

/// A 255-byte file name (UTF-8, multi-byte characters).
pub fn long_utf8_name() -> String {
    // 84 × 'é' (2 bytes) + 87 × 'x' = 168 + 87 = 255 bytes.
    let mut s = "é".repeat(84);
    s.push_str(&"x".repeat(87));
    assert_eq!(s.len(), 255);
    s
}

/// Populate `root` (an existing empty directory) with a varied tree: sizes around chunk
/// boundaries, random content, modes incl. setuid/setgid/sticky, foreign owners, hard
/// links, symlinks (relative, absolute dangling, to dirs), xattrs, unusual names and
/// explicit nanosecond timestamps on everything (directories last).
pub fn build_sample_tree(root: &Path, opts: SampleTree) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    };
    for d in [
        "a",
        "a/b",
        "a/b/c",
        "empty",
        "private",
        "sticky",
        "setgid",
        "ro-dir",
        "deep/er/still/deeper",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir sample dir");
    }
    w("empty.txt", b"");
    w("one.txt", b"x");
    w("hello.txt", b"hello, world\n");
    w("a/chunk-minus-1.bin", &pseudo_random(CHUNK - 1, 1));
    w("a/chunk.bin", &pseudo_random(CHUNK, 2));
    w("a/chunk-plus-1.bin", &pseudo_random(CHUNK + 1, 3));
    w("a/b/big.bin", &pseudo_random(3 * CHUNK + 12_345, 4));
    w("a/b/c/lines.txt", "line\n".repeat(5000).as_bytes());
    w("private/secret.txt", b"top secret\n");
    w("ro-dir/inside.txt", b"inside a read-only dir\n");
    w("deep/er/still/deeper/leaf.txt", b"leaf\n");
    w("exec.sh", b"#!/bin/sh\necho hi\n");
    w("readonly.txt", b"read only\n");
    w("setuid.bin", b"not really a program\n");
    w("owned.txt", b"owned by someone else\n");
    w("sticky/file", b"in sticky dir\n");
    w("setgid/file", b"in setgid dir\n");
    w("with space.txt", b"spaces\n");
    w("h\u{e9}llo w\u{f6}rld \u{2713}.txt", b"unicode\n");
    w(&long_utf8_name(), b"long name\n");
    w("a/hl-1", b"hard linked content\n");
    fs::hard_link(root.join("a/hl-1"), root.join("a/b/hl-2")).expect("link");
    fs::hard_link(root.join("a/hl-1"), root.join("hl-3")).expect("link");
    std::os::unix::fs::symlink("a/b/c", root.join("link-to-dir")).expect("symlink");
    std::os::unix::fs::symlink("../one.txt", root.join("a/link-to-file")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/dangling/target", root.join("dangling"))
        .expect("symlink");
    std::os::unix::fs::symlink("hello.txt", root.join("owned-link")).expect("symlink");
    if opts.sparse {
        let f = File::create(root.join("sparse.bin")).expect("create sparse");
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"start", 0).expect("write");
        f.write_all_at(b"end of the sparse file", 3 * 1024 * 1024 + 17)
            .expect("write");
    }
    if opts.specials {
        fs::create_dir(root.join("special")).expect("mkdir special");
        mkfifo(&root.join("special/fifo"), 0o640).expect("mkfifo");
        let dev = libc::makedev(1, 3);
        mknod(&root.join("special/chardev"), libc::S_IFCHR | 0o600, dev).expect("mknod");
    }
    // Ownership before modes (chown clears setuid/setgid).
    lchown(&root.join("owned.txt"), 1234, 5678);
    lchown(&root.join("owned-link"), 4321, 8765);
    lchown(&root.join("setgid"), 0, 4242);
    chmod(&root.join("exec.sh"), 0o755);
    chmod(&root.join("readonly.txt"), 0o444);
    chmod(&root.join("setuid.bin"), 0o4755);
    chmod(&root.join("private"), 0o700);
    chmod(&root.join("sticky"), 0o1777);
    chmod(&root.join("setgid"), 0o2775);
    chmod(&root.join("a/b/big.bin"), 0o600);
    set_xattr(&root.join("one.txt"), "user.comment", b"a comment", 0).expect("setxattr");
    set_xattr(
        &root.join("one.txt"),
        "user.binary",
        &[0, 1, 2, 255, 0, 7],
        0,
    )
    .expect("setxattr");
    set_xattr(&root.join("a"), "user.dirattr", b"on a directory", 0).expect("setxattr");
    set_xattr(&root.join("a/b/big.bin"), "user.empty", b"", 0).expect("setxattr");
    // Times: non-directories first, then directories deepest-first.
    let m = manifest(root);
    let mut paths: Vec<(&String, &Entry)> = m.iter().collect();
    paths.sort_by_key(|(p, e)| (e.kind == "dir", std::cmp::Reverse(p.matches('/').count())));
    for (i, (p, _)) in paths.iter().enumerate() {
        let path = if p.as_str() == "." {
            root.to_path_buf()
        } else {
            root.join(p)
        };
        let i = i as i64;
        let mt = Ts::At(
            1_500_000_000 + i * 3_600,
            (i * 123_456_789 + 1) % 1_000_000_000,
        );
        let at = Ts::At(
            1_400_000_000 + i * 60,
            (i * 987_654_321 + 3) % 1_000_000_000,
        );
        set_times(&path, at, mt, false)
            .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
    }
    // chmod does not touch mtime, so the read-only dir can be locked down last.
    chmod(&root.join("ro-dir"), 0o555);
}

/// Every file below `root` (symbolic links not followed; a directory that vanishes while
/// it is walked is skipped), in no particular order.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}
