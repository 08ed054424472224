//! Property tests of the pure merge: any two edit sequences from one base merge into a
//! consistent tree (no loop, no dangling name), lose no edit, keep names within 255
//! bytes, and the other device taking in the result converges on the same tree.

use super::tests::{check_consistent, dir, file, run};
use super::*;
use proptest::prelude::*;

/// Names a test may use: short ones that collide often, and one of the 255-byte limit
/// (its conflict names must be shortened).
fn name(i: u8) -> Vec<u8> {
    match i % 4 {
        0 => b"a".to_vec(),
        1 => b"b".to_vec(),
        2 => b"c.txt".to_vec(),
        _ => vec![b'x'; 255],
    }
}

#[derive(Debug, Clone)]
enum Op {
    Edit { node: u8, v: u8 },
    Delete { node: u8 },
    Rename { node: u8, dir: u8, name: u8 },
    Create { dir: u8, name: u8, v: u8 },
    MoveDir { which: u8, into: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), 1..=250u8).prop_map(|(node, v)| Op::Edit { node, v }),
        any::<u8>().prop_map(|node| Op::Delete { node }),
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(node, dir, name)| Op::Rename {
            node,
            dir,
            name
        }),
        (any::<u8>(), any::<u8>(), 1..=250u8).prop_map(|(dir, name, v)| Op::Create {
            dir,
            name,
            v
        }),
        (any::<u8>(), any::<u8>()).prop_map(|(which, into)| Op::MoveDir { which, into }),
    ]
}

/// Root, directories 2 and 3, files 10..=13 (two in the root, one in each directory).
fn base() -> Records {
    let mut t = Records::new();
    t.insert(ROOT_INO, dir());
    t.insert(2, dir());
    t.insert(3, dir());
    link(&mut t, ROOT_INO, b"d1", 2);
    link(&mut t, ROOT_INO, b"d2", 3);
    for (ino, p, n) in [(10, ROOT_INO, 0), (11, ROOT_INO, 3), (12, 2, 0), (13, 3, 1)] {
        t.insert(ino, file(ino as u8));
        link(&mut t, p, &name(n), ino);
    }
    t
}

fn entries(t: &mut Records, d: u64) -> Option<&mut BTreeMap<Vec<u8>, DirEntry>> {
    match &mut t.get_mut(&d)?.payload {
        Payload::Dir { entries, .. } => Some(entries),
        _ => None,
    }
}

fn link(t: &mut Records, p: u64, name: &[u8], ino: u64) {
    let kind = ((t[&ino].attr.mode & libc::S_IFMT) >> 12) as u8;
    if let Some(e) = entries(t, p) {
        e.insert(name.to_vec(), DirEntry { ino, kind });
    }
    if let Some(Record {
        payload: Payload::Dir { parent, .. },
        ..
    }) = t.get_mut(&ino)
    {
        *parent = p;
    }
}

/// Where `ino` is named (the model keeps one name per node).
fn place_of(t: &Records, ino: u64) -> Option<(u64, Vec<u8>)> {
    t.iter().find_map(|(p, r)| match &r.payload {
        Payload::Dir { entries, .. } => entries
            .iter()
            .find(|(_, e)| e.ino == ino)
            .map(|(n, _)| (*p, n.clone())),
        _ => None,
    })
}

fn unlink(t: &mut Records, ino: u64) {
    if let Some((p, n)) = place_of(t, ino)
        && let Some(e) = entries(t, p)
    {
        e.remove(&n);
    }
}

fn is_ancestor(t: &Records, a: u64, mut d: u64) -> bool {
    for _ in 0..16 {
        if d == a {
            return true;
        }
        match t.get(&d).map(|r| &r.payload) {
            Some(Payload::Dir { parent, .. }) if d != ROOT_INO => d = *parent,
            _ => return false,
        }
    }
    false
}

/// Applies `ops` as a device would, new inodes from `first_ino` (each device has its own
/// range); an op that does not apply (missing node, name taken) is skipped.
fn apply(mut t: Records, ops: &[Op], first_ino: u64) -> Records {
    let mut next = first_ino;
    let files = |t: &Records| -> Vec<u64> {
        let mut v: Vec<u64> = t
            .iter()
            .filter(|(_, r)| matches!(r.payload, Payload::File { .. }))
            .map(|(i, _)| *i)
            .collect();
        v.sort();
        v
    };
    let dirs = [ROOT_INO, 2, 3];
    for op in ops {
        match *op {
            Op::Edit { node, v } => {
                let f = files(&t);
                if let Some(i) = f.get(node as usize % f.len().max(1)) {
                    let mut r = file(v);
                    r.attr.mtime.sec = 2;
                    t.insert(*i, r);
                }
            }
            Op::Delete { node } => {
                let f = files(&t);
                if let Some(&i) = f.get(node as usize % f.len().max(1)) {
                    unlink(&mut t, i);
                    t.remove(&i);
                }
            }
            Op::Rename { node, dir, name: n } => {
                let f = files(&t);
                let p = dirs[dir as usize % 3];
                if let Some(&i) = f.get(node as usize % f.len().max(1))
                    && t.contains_key(&p)
                    && !entries(&mut t, p).is_some_and(|e| e.contains_key(&name(n)))
                {
                    unlink(&mut t, i);
                    link(&mut t, p, &name(n), i);
                }
            }
            Op::Create { dir, name: n, v } => {
                let p = dirs[dir as usize % 3];
                if t.contains_key(&p)
                    && !entries(&mut t, p).is_some_and(|e| e.contains_key(&name(n)))
                {
                    t.insert(next, file(v));
                    link(&mut t, p, &name(n), next);
                    next += 1;
                }
            }
            Op::MoveDir { which, into } => {
                let d = [2, 3][which as usize % 2];
                let p = dirs[into as usize % 3];
                let n = format!("moved{d}").into_bytes();
                if t.contains_key(&d)
                    && t.contains_key(&p)
                    && !is_ancestor(&t, d, p)
                    && !entries(&mut t, p).is_some_and(|e| e.contains_key(&n))
                {
                    unlink(&mut t, d);
                    link(&mut t, p, &n, d);
                }
            }
        }
    }
    // Directory link counts as the merge computes them, so that a tree compares equal
    // to itself after a merge.
    let subdirs: Vec<(u64, u32)> = t
        .iter()
        .map(|(i, r)| {
            let n = match &r.payload {
                Payload::Dir { entries, .. } => entries
                    .values()
                    .filter(|e| t.get(&e.ino).is_some_and(is_dir))
                    .count(),
                _ => 0,
            };
            (*i, n as u32)
        })
        .collect();
    for (i, n) in subdirs {
        if let Some(r) = t.get_mut(&i) {
            r.attr.nlink = if is_dir(r) { 2 + n } else { 1 };
        }
    }
    t
}

/// The tree as paths from the root to (is a directory, content tag).
fn snapshot(t: &Records) -> BTreeMap<Vec<Vec<u8>>, Option<[u8; 32]>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(ROOT_INO, Vec::<Vec<u8>>::new())];
    while let Some((d, path)) = todo.pop() {
        let Some(Payload::Dir { entries, .. }) = t.get(&d).map(|r| &r.payload) else {
            continue;
        };
        for (n, e) in entries {
            let mut p = path.clone();
            p.push(n.clone());
            match t.get(&e.ino).map(|r| &r.payload) {
                Some(Payload::Dir { .. }) => {
                    out.insert(p.clone(), None);
                    todo.push((e.ino, p));
                }
                Some(Payload::File { chunks, .. }) => {
                    out.insert(p, chunks.first().copied().flatten().map(|c| c.tag()));
                }
                _ => {}
            }
        }
    }
    out
}

fn content(r: &Record) -> Option<[u8; 32]> {
    match &r.payload {
        Payload::File { chunks, .. } => chunks.first().copied().flatten().map(|c| c.tag()),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn two_edit_sequences_merge_without_loss_and_converge(
        ours in proptest::collection::vec(op(), 0..8),
        theirs in proptest::collection::vec(op(), 0..8),
    ) {
        let base = base();
        let local = apply(base.clone(), &ours, 100);
        let remote = apply(base.clone(), &theirs, 200);
        check_consistent(&local);
        check_consistent(&remote);
        // `run` checks the result: every name resolves, no directory is its own
        // ancestor (all reachable from the root), parents and link counts agree.
        let m = run(&base, &local, &remote);
        let snap = snapshot(&m.records);
        for path in snap.keys() {
            for n in path {
                prop_assert!(n.len() <= 255, "a name of {} bytes", n.len());
            }
        }
        // No lost edit: every file a side created or changed is somewhere in the result.
        let kept: HashSet<[u8; 32]> = snap.values().flatten().copied().collect();
        for side in [&local, &remote] {
            for (i, r) in side.iter() {
                let Some(c) = content(r) else { continue };
                if base.get(i).and_then(content) == Some(c) {
                    continue;
                }
                prop_assert!(kept.contains(&c), "the edit of inode {} is lost: {:?}", i, snap);
            }
        }
        // The other device takes in the merged head (its base is the common one): it
        // ends with the same tree, with nothing left to copy.
        let back = run(&base, &remote, &m.records);
        prop_assert!(back.copies.is_empty(), "{:?}", back.notes);
        prop_assert_eq!(snapshot(&back.records), snap);
    }
}
