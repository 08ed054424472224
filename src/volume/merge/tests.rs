//! The merge rules on small hand-made trees, each checked for a consistent result.

use super::*;
use crate::format::pack::BlobRef;
use crate::format::record::Attr;

/// Attributes of `mode` with every time at `t` (also for `stale.rs`'s tests).
pub(crate) fn attr(mode: u32, t: i64) -> Attr {
    let at = Time { sec: t, nsec: 0 };
    Attr {
        mode,
        uid: 0,
        gid: 0,
        nlink: 1,
        rdev: 0,
        atime: at,
        mtime: at,
        ctime: at,
        btime: at,
    }
}

pub(super) fn dir() -> Record {
    Record {
        attr: attr(libc::S_IFDIR | 0o755, 1),
        xattrs: Default::default(),
        payload: Payload::Dir {
            parent: ROOT_INO,
            entries: Default::default(),
        },
    }
}

/// A file whose "content" is `v` (a fake chunk reference).
pub(super) fn file(v: u8) -> Record {
    Record {
        attr: attr(libc::S_IFREG | 0o644, 1),
        xattrs: Default::default(),
        payload: Payload::File {
            size: v as u64,
            chunks: vec![Some(crate::format::record::ChunkRef::whole(BlobRef {
                pack: [v; 32],
                offset: 8,
                len: 100,
                tag: [v; 32],
            }))],
        },
    }
}

/// A tree from (ino, record) and (parent, name, child) links.
fn tree(nodes: &[(u64, Record)], links: &[(u64, &str, u64)]) -> Records {
    let mut t: Records = HashMap::new();
    t.insert(ROOT_INO, dir());
    for (i, r) in nodes {
        t.insert(*i, r.clone());
    }
    for (p, name, c) in links {
        let kind = ((t[c].attr.mode & libc::S_IFMT) >> 12) as u8;
        if let Payload::Dir { entries, .. } = &mut t.get_mut(p).unwrap().payload {
            entries.insert(name.as_bytes().to_vec(), DirEntry { ino: *c, kind });
        }
        if let Payload::Dir { parent, .. } = &mut t.get_mut(c).unwrap().payload {
            *parent = *p;
        }
    }
    t
}

fn namer() -> ConflictNamer {
    ConflictNamer {
        device: "laptop".into(),
        date: "2026-11-28".into(),
    }
}

pub(super) fn run(base: &Records, local: &Records, remote: &Records) -> Merged {
    let mut next = 1000;
    let m = merge(
        base,
        local,
        remote,
        &mut || {
            next += 1;
            next
        },
        &namer(),
    );
    check_consistent(&m.records);
    m
}

/// Every name points at a node, every node but orphans has a name and is reachable
/// from the root, directory parents and link counts agree with the entries.
pub(super) fn check_consistent(t: &Records) {
    let mut links: HashMap<u64, u32> = HashMap::new();
    for (p, r) in t {
        if let Payload::Dir { entries, .. } = &r.payload {
            for (name, e) in entries {
                let c = t.get(&e.ino).unwrap_or_else(|| panic!("{name:?} dangles"));
                *links.entry(e.ino).or_default() += 1;
                if let Payload::Dir { parent, .. } = &c.payload {
                    assert_eq!(parent, p, "parent of {}", e.ino);
                }
            }
        }
    }
    for (i, r) in t {
        if *i == ROOT_INO {
            continue;
        }
        match &r.payload {
            Payload::Dir { .. } => assert_eq!(links.get(i), Some(&1), "dir {i} links"),
            _ => assert_eq!(
                r.attr.nlink,
                links.get(i).copied().unwrap_or(0),
                "nlink {i}"
            ),
        }
    }
    // reachability
    let mut seen = HashSet::from([ROOT_INO]);
    let mut todo = vec![ROOT_INO];
    while let Some(d) = todo.pop() {
        if let Payload::Dir { entries, .. } = &t[&d].payload {
            for e in entries.values() {
                if seen.insert(e.ino) {
                    todo.push(e.ino);
                }
            }
        }
    }
    for (i, r) in t {
        assert!(
            seen.contains(i) || r.attr.nlink == 0,
            "inode {i} unreachable"
        );
    }
}

fn names(t: &Records, d: u64) -> Vec<(String, u64)> {
    match &t[&d].payload {
        Payload::Dir { entries, .. } => entries
            .iter()
            .map(|(n, e)| (String::from_utf8_lossy(n).into_owned(), e.ino))
            .collect(),
        _ => panic!("{d} is not a directory"),
    }
}

#[test]
fn edits_of_different_files_merge_cleanly() {
    let base = tree(&[(2, file(1)), (3, file(2))], &[(1, "a", 2), (1, "b", 3)]);
    let local = tree(&[(2, file(9)), (3, file(2))], &[(1, "a", 2), (1, "b", 3)]);
    let remote = tree(
        &[(2, file(1)), (3, file(8)), (50, file(5))],
        &[(1, "a", 2), (1, "b", 3), (1, "new", 50)],
    );
    let m = run(&base, &local, &remote);
    assert_eq!(m.records[&2], file(9));
    assert_eq!(m.records[&3], file(8));
    assert_eq!(
        names(&m.records, 1),
        vec![("a".into(), 2), ("b".into(), 3), ("new".into(), 50)]
    );
    assert!(m.copies.is_empty());
}

#[test]
fn one_file_edited_on_both_sides_keeps_the_remote_and_a_named_copy() {
    let base = tree(&[(2, file(1))], &[(1, "report.txt", 2)]);
    let local = tree(&[(2, file(7))], &[(1, "report.txt", 2)]);
    let remote = tree(&[(2, file(8))], &[(1, "report.txt", 2)]);
    let m = run(&base, &local, &remote);
    assert_eq!(m.records[&2], file(8));
    assert_eq!(m.copies, vec![(1001, 2)]);
    assert_eq!(m.records[&1001].payload, file(7).payload);
    assert_eq!(
        names(&m.records, 1),
        vec![
            ("report (conflict from laptop 2026-11-28).txt".into(), 1001),
            ("report.txt".into(), 2)
        ]
    );
}

#[test]
fn delete_versus_edit_keeps_the_edit_either_way() {
    let base = tree(&[(2, file(1)), (3, file(2))], &[(1, "x", 2), (1, "y", 3)]);
    // x: deleted here, edited there. y: edited here, deleted there.
    let local = tree(&[(3, file(6))], &[(1, "y", 3)]);
    let remote = tree(&[(2, file(5))], &[(1, "x", 2)]);
    let m = run(&base, &local, &remote);
    assert_eq!(m.records[&2], file(5));
    assert_eq!(m.records[&3], file(6));
    assert_eq!(names(&m.records, 1), vec![("x".into(), 2), ("y".into(), 3)]);
    // A delete against an untouched file (only read: atime moved) deletes it.
    let mut read = file(1);
    read.attr.atime = Time { sec: 99, nsec: 0 };
    let remote = tree(&[(2, read), (3, file(2))], &[(1, "x", 2), (1, "y", 3)]);
    let local = tree(&[(3, file(2))], &[(1, "y", 3)]);
    let m = run(&base, &local, &remote);
    assert!(!m.records.contains_key(&2));
    assert_eq!(names(&m.records, 1), vec![("y".into(), 3)]);
}

#[test]
fn rename_versus_rename_lets_the_remote_win_without_a_double_link() {
    let base = tree(&[(2, file(1))], &[(1, "a", 2)]);
    let local = tree(&[(2, file(1))], &[(1, "b", 2)]);
    let remote = tree(&[(2, file(1))], &[(1, "c", 2)]);
    let m = run(&base, &local, &remote);
    assert_eq!(names(&m.records, 1), vec![("c".into(), 2)]);
    assert_eq!(m.records[&2].attr.nlink, 1);
    // A rename on one side only is kept.
    let remote = tree(&[(2, file(1))], &[(1, "a", 2)]);
    let m = run(&base, &local, &remote);
    assert_eq!(names(&m.records, 1), vec![("b".into(), 2)]);
}

#[test]
fn a_move_into_a_directory_deleted_elsewhere_brings_it_back() {
    // base: /d/old.txt and /f.txt
    let base = tree(
        &[(2, dir()), (3, file(1)), (4, file(2))],
        &[(1, "d", 2), (2, "old.txt", 3), (1, "f.txt", 4)],
    );
    // local moves f.txt into d; remote deletes d (and old.txt in it).
    let local = tree(
        &[(2, dir()), (3, file(1)), (4, file(2))],
        &[(1, "d", 2), (2, "old.txt", 3), (2, "f.txt", 4)],
    );
    let remote = tree(&[(4, file(2))], &[(1, "f.txt", 4)]);
    let m = run(&base, &local, &remote);
    assert_eq!(names(&m.records, 1), vec![("d".into(), 2)]);
    assert_eq!(names(&m.records, 2), vec![("f.txt".into(), 4)]);
    assert!(
        !m.records.contains_key(&3),
        "the deleted file stays deleted"
    );
}

#[test]
fn crossed_directory_moves_never_make_a_loop() {
    let base = tree(&[(2, dir()), (3, dir())], &[(1, "a", 2), (1, "b", 3)]);
    let local = tree(&[(2, dir()), (3, dir())], &[(1, "b", 3), (3, "a", 2)]);
    let remote = tree(&[(2, dir()), (3, dir())], &[(1, "a", 2), (2, "b", 3)]);
    let m = run(&base, &local, &remote);
    // The remote's placement holds: /a/b.
    assert_eq!(names(&m.records, 1), vec![("a".into(), 2)]);
    assert_eq!(names(&m.records, 2), vec![("b".into(), 3)]);
}

#[test]
fn one_name_created_on_both_sides_keeps_both_files() {
    let base = tree(&[], &[]);
    let local = tree(
        &[(5_000_000_000, file(1))],
        &[(1, "todo.md", 5_000_000_000)],
    );
    let remote = tree(
        &[(9_000_000_000, file(2))],
        &[(1, "todo.md", 9_000_000_000)],
    );
    let m = run(&base, &local, &remote);
    assert_eq!(
        names(&m.records, 1),
        vec![
            (
                "todo (conflict from laptop 2026-11-28).md".into(),
                5_000_000_000
            ),
            ("todo.md".into(), 9_000_000_000)
        ]
    );
}

#[test]
fn conflict_names_fit_in_255_bytes_and_never_repeat() {
    let n = namer();
    let long = "é".repeat(126) + ".txt"; // 256 bytes
    let out = n.name(long.as_bytes(), &|_| false);
    assert!(out.len() <= 255, "{}", out.len());
    let s = String::from_utf8(out).expect("cut on a character boundary");
    assert!(s.ends_with(" (conflict from laptop 2026-11-28).txt"), "{s}");
    let taken = |x: &[u8]| x == b"a (conflict from laptop 2026-11-28)";
    assert_eq!(
        n.name(b"a", &taken),
        b"a (conflict from laptop 2026-11-28 2)".to_vec()
    );
    assert_eq!(
        n.name(b".bashrc", &|_| false),
        b".bashrc (conflict from laptop 2026-11-28)".to_vec()
    );
}

#[test]
fn unchanged_sides_and_directory_attributes() {
    let base = tree(&[(2, dir())], &[(1, "d", 2)]);
    let mut d2 = dir();
    d2.attr.mode = libc::S_IFDIR | 0o700;
    let local = tree(&[(2, d2.clone())], &[(1, "d", 2)]);
    let remote = tree(&[(2, dir()), (3, file(1))], &[(1, "d", 2), (2, "in", 3)]);
    let m = run(&base, &local, &remote);
    assert_eq!(m.records[&2].attr.mode, libc::S_IFDIR | 0o700);
    assert_eq!(names(&m.records, 2), vec![("in".into(), 3)]);
    assert_eq!(m.records[&2].attr.nlink, 2);
    assert_eq!(m.records[&ROOT_INO].attr.nlink, 3);
}

#[test]
fn a_device_name_cannot_break_a_file_name() {
    let n = ConflictNamer {
        device: format!("work/laptop\0{}", "x".repeat(300)),
        date: "2026-11-28".into(),
    };
    let out = n.name(b"a.txt", &|_| false);
    assert!(!out.contains(&b'/') && !out.contains(&0), "{out:?}");
    assert!(out.len() <= 255);
    // Numbered names stay distinct even with the longest device name.
    let first = out.clone();
    let second = n.name(b"a.txt", &|x| x == first.as_slice());
    assert_ne!(first, second);
}

#[test]
fn a_rename_on_one_side_is_no_edit() {
    let base = tree(&[(2, file(1))], &[(1, "g.txt", 2)]);
    let mut renamed = file(1);
    renamed.attr.ctime = Time { sec: 50, nsec: 0 };
    let local = tree(&[(2, renamed)], &[(1, "h.txt", 2)]);
    let remote = tree(&[(2, file(9))], &[(1, "g.txt", 2)]);
    let m = run(&base, &local, &remote);
    assert!(m.copies.is_empty(), "{:?}", m.notes);
    assert_eq!(m.records[&2].payload, file(9).payload);
    assert_eq!(names(&m.records, 1), vec![("h.txt".into(), 2)]);
}

#[test]
fn a_move_keeps_its_later_ctime_and_survives_a_delete() {
    // Moved here into a folder (ctime 50), untouched there: the merge keeps ctime 50
    // (Recently Deleted counts its 30 days from it), whichever side is taken.
    let base = tree(
        &[(2, file(1)), (3, dir()), (4, file(2))],
        &[(1, "g.txt", 2), (1, "bin", 3), (1, "other", 4)],
    );
    let mut moved = file(1);
    moved.attr.ctime = Time { sec: 50, nsec: 0 };
    let local = tree(
        &[(2, moved), (3, dir()), (4, file(2))],
        &[(3, "g.txt", 2), (1, "bin", 3), (1, "other", 4)],
    );
    let remote = tree(
        &[(2, file(1)), (3, dir()), (4, file(7))],
        &[(1, "g.txt", 2), (1, "bin", 3), (1, "other", 4)],
    );
    let m = run(&base, &local, &remote);
    assert_eq!(m.records[&2].attr.ctime.sec, 50);
    assert_eq!(names(&m.records, 3), vec![("g.txt".into(), 2)]);
    let m = run(&base, &remote, &local);
    assert_eq!(m.records[&2].attr.ctime.sec, 50, "the other way round");

    // Deleted there, only moved here (a restore out of a folder being emptied): the
    // moved file stays, either way round.
    let emptied = tree(
        &[(3, dir()), (4, file(2))],
        &[(1, "bin", 3), (1, "other", 4)],
    );
    for (l, r) in [(&local, &emptied), (&emptied, &local)] {
        let m = run(&base, l, r);
        assert!(m.records.contains_key(&2), "{:?}", m.notes);
        assert_eq!(names(&m.records, 3), vec![("g.txt".into(), 2)]);
    }
}
