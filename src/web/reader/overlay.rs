//! What the pages show while changes made on the web wait for a device (read after
//! write): the category's tree with the pending changes on top, in their order. A
//! change names its paths as the web saw them after the changes before it, so a path
//! of the page is first followed back through every pending rename and delete to the
//! tree's path it comes from, then forward again change by change.

use super::ReadError;
use super::tree::{Entry, Kind, Mtime};
use crate::format::web_change::{WebChange, WebOp};

/// The change pending in a category, newest last: made on the web, not yet in the head.
pub type Pending = Vec<WebChange>;

/// A path in a category: name segments from its root.
pub type Path = Vec<Vec<u8>>;

/// Lists a folder of the tree (`None`: no such folder).
pub type ListTree<'a> = dyn FnMut(&[Vec<u8>]) -> Result<Option<Vec<Entry>>, ReadError> + 'a;

/// A node of the tree, as its row (`None`: no such node).
pub type StatTree<'a> = dyn FnMut(&[Vec<u8>]) -> Result<Option<Entry>, ReadError> + 'a;

fn joined(dir: &[Vec<u8>], name: &[u8]) -> Path {
    let mut p = dir.to_vec();
    p.push(name.to_vec());
    p
}

/// Where change `ch` puts a node: its own path, or a rename's destination.
fn target(ch: &WebChange) -> (&[Vec<u8>], &[u8]) {
    match &ch.op {
        WebOp::Rename {
            to_dir, to_name, ..
        } => (to_dir, to_name),
        _ => (&ch.dir, &ch.name),
    }
}

/// `path` as it was named before change `ch`; `None` if it was not there as such (a
/// node at or below what `ch` deleted or moved away can only be a later one).
fn before(path: &[Vec<u8>], ch: &WebChange) -> Option<Path> {
    let src = joined(&ch.dir, &ch.name);
    match &ch.op {
        WebOp::Rename {
            to_dir, to_name, ..
        } => {
            let dst = joined(to_dir, to_name);
            if path.starts_with(&dst) {
                let mut p = src;
                p.extend_from_slice(&path[dst.len()..]);
                Some(p)
            } else if path.starts_with(&src) {
                None
            } else {
                Some(path.to_vec())
            }
        }
        WebOp::Delete { .. } if path.starts_with(&src) => None,
        _ => Some(path.to_vec()),
    }
}

/// `at[i]`: how `path` was named before pending change `i` (`at[n]` is `path`).
fn lineage(path: &[Vec<u8>], pending: &[WebChange]) -> Vec<Option<Path>> {
    let mut at = vec![None; pending.len() + 1];
    at[pending.len()] = Some(path.to_vec());
    for (i, ch) in pending.iter().enumerate().rev() {
        at[i] = at[i + 1].as_deref().and_then(|p| before(p, ch));
    }
    at
}

/// The tree's path of what the page calls `path`, if it comes from the tree.
pub fn tree_path(path: &[Vec<u8>], pending: &[WebChange]) -> Option<Path> {
    lineage(path, pending).swap_remove(0)
}

/// What `path` is after every pending change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now<'a> {
    /// The tree's node at this path (if there is one).
    Tree(Path),
    /// The file of this pending upload.
    Upload(&'a WebChange),
    /// Nothing: deleted, moved away, or a folder made on the web.
    Other,
}

/// What the page's `path` is now.
pub fn now<'a>(path: &[Vec<u8>], pending: &'a [WebChange]) -> Now<'a> {
    let at = lineage(path, pending);
    let mut now = match &at[0] {
        Some(p) => Now::Tree(p.clone()),
        None => Now::Other,
    };
    for (i, ch) in pending.iter().enumerate() {
        // A move carries what is at its source along (`at[i]` is that source); a delete
        // or a move away leaves nothing (`at[i + 1]` is none).
        match &at[i + 1] {
            None => now = Now::Other,
            Some(a) if matches!(ch.op, WebOp::Upload { .. }) && *a == joined(&ch.dir, &ch.name) => {
                now = Now::Upload(ch)
            }
            Some(_) => {}
        }
    }
    now
}

/// The node a pending rename `i` moves, as its row: the tree's node, or what an earlier
/// change put at its source.
fn moved_entry(
    i: usize,
    pending: &[WebChange],
    stat_tree: &mut StatTree,
) -> Result<Option<Entry>, ReadError> {
    let ch = &pending[i];
    let WebOp::Rename { to_name, .. } = &ch.op else {
        return Ok(None);
    };
    let src = joined(&ch.dir, &ch.name);
    let found = match now(&src, &pending[..i]) {
        Now::Tree(p) => stat_tree(&p)?,
        Now::Upload(up) => Some(row(up, &ch.name)),
        Now::Other => pending[..i]
            .iter()
            .rev()
            .find(|c| matches!(c.op, WebOp::Mkdir) && joined(&c.dir, &c.name) == src)
            .map(|c| folder(&c.name, c.created)),
    };
    Ok(found.map(|e| Entry {
        name: to_name.clone(),
        ..e
    }))
}

/// The row of a pending upload.
fn row(up: &WebChange, name: &[u8]) -> Entry {
    let (size, secs) = match &up.op {
        WebOp::Upload { size, mtime, .. } => (*size, *mtime),
        _ => (0, 0),
    };
    Entry {
        name: name.to_vec(),
        kind: Kind::File,
        size,
        mtime: Mtime { secs, nanos: 0 },
    }
}

fn folder(name: &[u8], created: u64) -> Entry {
    Entry {
        name: name.to_vec(),
        kind: Kind::Dir,
        size: 0,
        mtime: Mtime {
            secs: i64::try_from(created).unwrap_or(0),
            nanos: 0,
        },
    }
}

/// The listing of folder `path` with the pending changes on top: uploads, new folders
/// and what moves in added (marked pending), deletes and what moves out taken out.
/// `list_tree` lists a folder of the tree (`None`: no such folder), `stat_tree` gives a
/// node's row. `None`: no such folder now.
pub fn overlay(
    path: &[Vec<u8>],
    pending: &[WebChange],
    list_tree: &mut ListTree,
    stat_tree: &mut StatTree,
) -> Result<Option<Vec<(Entry, bool)>>, ReadError> {
    let at = lineage(path, pending);
    let base = match &at[0] {
        Some(p) => list_tree(p)?,
        None => None,
    };
    let mut exists = base.is_some();
    let mut rows: Vec<(Entry, bool)> = base
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e, false))
        .collect();
    for (i, ch) in pending.iter().enumerate() {
        let (Some(b), Some(a)) = (&at[i], &at[i + 1]) else {
            // Not this folder yet (or no more): what comes here later starts afresh.
            exists = false;
            rows.clear();
            continue;
        };
        // Out of this folder.
        if matches!(ch.op, WebOp::Delete { .. } | WebOp::Rename { .. }) && ch.dir == *b {
            rows.retain(|(e, _)| e.name != ch.name);
        }
        let (dir, name) = target(ch);
        if matches!(ch.op, WebOp::Delete { .. }) {
            continue;
        }
        if dir == a.as_slice() {
            // Into this folder.
            let added = match &ch.op {
                WebOp::Upload { .. } => Some(row(ch, name)),
                WebOp::Mkdir => Some(folder(name, ch.created)),
                WebOp::Rename { .. } => moved_entry(i, pending, stat_tree)?,
                WebOp::Delete { .. } => None,
            };
            exists = true;
            if let Some(e) = added {
                // A new folder where one is keeps the one there (devices do the same).
                if !(matches!(ch.op, WebOp::Mkdir)
                    && rows
                        .iter()
                        .any(|(r, _)| r.name == name && r.kind == Kind::Dir))
                {
                    rows.retain(|(r, _)| r.name != name);
                    rows.push((e, true));
                }
            }
        } else if dir.len() > a.len() && dir.starts_with(a) {
            // Deeper down: the folder on the way exists (devices make it).
            let seg = &dir[a.len()];
            exists = true;
            if !rows.iter().any(|(e, _)| e.name == *seg) {
                rows.push((folder(seg, ch.created), true));
            }
        } else if matches!(ch.op, WebOp::Mkdir) && joined(dir, name) == *a {
            // This folder itself, made by the change.
            exists = true;
        }
    }
    Ok(exists.then_some(rows))
}

/// The pending upload that is the file at `path` now, if any.
pub fn pending_file<'a>(path: &[Vec<u8>], pending: &'a [WebChange]) -> Option<&'a WebChange> {
    match now(path, pending) {
        Now::Upload(ch) => Some(ch),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::web_change::Seen;

    fn p(s: &str) -> Path {
        s.split('/')
            .filter(|x| !x.is_empty())
            .map(|x| x.as_bytes().to_vec())
            .collect()
    }

    fn ch(seq: u64, at: &str, op: WebOp) -> WebChange {
        let mut path: Vec<&str> = at.split('/').filter(|x| !x.is_empty()).collect();
        let name = path.pop().unwrap();
        WebChange::sample(seq, &path, name, op)
    }

    const SEEN: Seen = Seen {
        ino: 9,
        mtime_secs: 0,
        mtime_nanos: 0,
        size: 0,
    };

    fn mv(seq: u64, from: &str, to: &str) -> WebChange {
        let mut to = p(to);
        let to_name = to.pop().unwrap();
        ch(
            seq,
            from,
            WebOp::Rename {
                seen: SEEN,
                to_dir: to,
                to_name,
            },
        )
    }

    fn upload(seq: u64, at: &str, size: u64) -> WebChange {
        ch(
            seq,
            at,
            WebOp::Upload {
                size,
                mtime: 5,
                replaces: None,
                parts: vec![[0; 32]; size.div_ceil(1 << 20) as usize],
            },
        )
    }

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: Kind::File,
            size,
            mtime: Mtime { secs: 1, nanos: 0 },
        }
    }

    /// A tree of `/a.txt` (3 bytes), `/Docs/b.txt` (4 bytes) and the folder `/Docs`.
    fn view(path: &str, pending: &[WebChange]) -> Option<Vec<(String, bool, u64)>> {
        let mut list = |d: &[Vec<u8>]| -> Result<Option<Vec<Entry>>, ReadError> {
            Ok(match d {
                [] => Some(vec![
                    file("a.txt", 3),
                    Entry {
                        kind: Kind::Dir,
                        ..file("Docs", 0)
                    },
                ]),
                [x] if x == b"Docs" => Some(vec![file("b.txt", 4)]),
                _ => None,
            })
        };
        let mut stat = |d: &[Vec<u8>]| -> Result<Option<Entry>, ReadError> {
            Ok(match d {
                [x] if x == b"a.txt" => Some(file("a.txt", 3)),
                [x] if x == b"Docs" => Some(Entry {
                    kind: Kind::Dir,
                    ..file("Docs", 0)
                }),
                [x, y] if x == b"Docs" && y == b"b.txt" => Some(file("b.txt", 4)),
                _ => None,
            })
        };
        let mut rows: Vec<(String, bool, u64)> = overlay(&p(path), pending, &mut list, &mut stat)
            .unwrap()?
            .into_iter()
            .map(|(e, pend)| (String::from_utf8(e.name).unwrap(), pend, e.size))
            .collect();
        rows.sort();
        Some(rows)
    }

    fn names(rows: Option<Vec<(String, bool, u64)>>) -> Vec<String> {
        rows.unwrap().into_iter().map(|r| r.0).collect()
    }

    #[test]
    fn moves_show_at_both_ends_and_paths_follow_them() {
        let pending = vec![
            mv(1, "/a.txt", "/Docs/moved.txt"),
            mv(2, "/Docs", "/Papers"),
            upload(3, "/Papers/new.bin", 7),
        ];
        assert_eq!(names(view("/", &pending)), ["Papers"]);
        assert_eq!(
            view("/Papers", &pending).unwrap(),
            [
                ("b.txt".into(), false, 4),
                ("moved.txt".into(), true, 3),
                ("new.bin".into(), true, 7)
            ]
        );
        assert_eq!(view("/Docs", &pending), None, "moved away");
        assert_eq!(
            tree_path(&p("/Papers/moved.txt"), &pending),
            Some(p("/a.txt"))
        );
        assert_eq!(
            tree_path(&p("/Papers/b.txt"), &pending),
            Some(p("/Docs/b.txt"))
        );
        assert_eq!(tree_path(&p("/Docs/b.txt"), &pending), None);
        assert_eq!(tree_path(&p("/a.txt"), &pending), None);
        assert!(pending_file(&p("/Papers/new.bin"), &pending).is_some());
        assert!(pending_file(&p("/Papers/b.txt"), &pending).is_none());
        assert_eq!(
            now(&p("/Papers/b.txt"), &pending),
            Now::Tree(p("/Docs/b.txt"))
        );
    }

    #[test]
    fn a_name_moved_away_can_be_taken_again_and_renames_chain() {
        let pending = vec![
            mv(1, "/a.txt", "/x.txt"),
            upload(2, "/a.txt", 9),
            mv(3, "/x.txt", "/y.txt"),
            ch(4, "/Docs", WebOp::Mkdir),
            ch(5, "/Docs/b.txt", WebOp::Delete { seen: SEEN }),
        ];
        assert_eq!(
            view("/", &pending).unwrap(),
            [
                ("Docs".into(), false, 0),
                ("a.txt".into(), true, 9),
                ("y.txt".into(), true, 3)
            ]
        );
        assert_eq!(view("/Docs", &pending).unwrap(), []);
        assert!(pending_file(&p("/a.txt"), &pending).is_some());
        assert_eq!(tree_path(&p("/y.txt"), &pending), Some(p("/a.txt")));
        assert_eq!(now(&p("/x.txt"), &pending), Now::Other);
        // A folder made deeper down shows its way; a deleted folder is gone.
        let pending = vec![
            ch(1, "/New/Deep", WebOp::Mkdir),
            ch(2, "/Docs", WebOp::Delete { seen: SEEN }),
        ];
        assert_eq!(names(view("/", &pending)), ["New", "a.txt"]);
        assert_eq!(names(view("/New", &pending)), ["Deep"]);
        assert_eq!(view("/New/Deep", &pending).unwrap(), []);
        assert_eq!(view("/Docs", &pending), None);
        assert_eq!(view("/Nowhere", &pending), None);
    }
}
