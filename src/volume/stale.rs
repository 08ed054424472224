//! What the kernel may have cached that a change it did not ask for made stale: a merge
//! of another device's head, a change from the web, the purge of Recently Deleted. The
//! kernel keeps names and attributes for the mount's (long) timeouts and file pages
//! until told, so every such change is noted here and the daemon passes the notes on
//! (`fs::Invalidator`) once the change is done, never under the category's lock (the
//! kernel may hold a directory's lock while it waits on a request that waits on ours).
//!
//! Changes made through the kernel's own requests are never noted: it knows of them.

use super::merge::Records;
use super::{Category, State};
use crate::format::record::{DirEntry, Payload, Record};
use std::collections::BTreeMap;

/// One thing the kernel must forget. Inode numbers are the category's own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    /// Name `name` of directory `parent` was added, removed or now names another node
    /// (the directory's own attributes changed with it).
    Entry { parent: u64, name: Vec<u8> },
    /// The attributes of `ino` changed; with `data`, its contents too.
    Node { ino: u64, data: bool },
}

/// Records of a directory's names, for comparing two trees.
fn entries(r: &Record) -> Option<&BTreeMap<Vec<u8>, DirEntry>> {
    match &r.payload {
        Payload::Dir { entries, .. } => Some(entries),
        _ => None,
    }
}

/// Whether the contents of a file (or a symlink's target) differ between two records.
fn data_differs(a: &Record, b: &Record) -> bool {
    match (&a.payload, &b.payload) {
        (Payload::Dir { .. }, Payload::Dir { .. }) => false,
        (pa, pb) => pa != pb,
    }
}

/// What the kernel may know that differs between `old` (the tree it was told about: only
/// loaded records, since the kernel learns of a node only through a lookup that loads
/// it) and `new`, appended to `out`.
pub(crate) fn diff(old: &Records, new: &Records, out: &mut Vec<Stale>) {
    for (ino, o) in old {
        let Some(n) = new.get(ino) else {
            // Gone: open handles see it unlinked; its names are handled by its parents'.
            out.push(Stale::Node {
                ino: *ino,
                data: true,
            });
            continue;
        };
        if o != n {
            out.push(Stale::Node {
                ino: *ino,
                data: data_differs(o, n),
            });
        }
        let Some(oe) = entries(o) else { continue };
        let empty = Default::default();
        let ne = entries(n).unwrap_or(&empty);
        for (name, e) in oe {
            if ne.get(name).map(|x| x.ino) != Some(e.ino) {
                out.push(Stale::Entry {
                    parent: *ino,
                    name: name.clone(),
                });
            }
        }
        // Names new here: the kernel may hold none of them (it caches no "not found"),
        // but a name it resolved to another node just before is covered above, and a
        // directory's listing and times come with its own attributes.
        for name in ne.keys().filter(|n| !oe.contains_key(*n)) {
            out.push(Stale::Entry {
                parent: *ino,
                name: name.clone(),
            });
        }
    }
}

impl Category {
    /// From now on, changes the kernel did not ask for are noted for [`Self::take_stale`]
    /// (called once the category is mounted; unmounted, nothing is kept).
    pub fn watch_for_kernel(&self) {
        let mut s = self.lock();
        s.stale.get_or_insert_with(Vec::new);
    }

    /// The notes since the last call, sorted and without repeats.
    pub fn take_stale(&self) -> Vec<Stale> {
        let mut s = self.lock();
        let mut v = s.stale.as_mut().map(std::mem::take).unwrap_or_default();
        drop(s);
        v.sort();
        v.dedup();
        v
    }

    /// Notes a change made outside the kernel's requests (web changes, purge).
    pub(super) fn mark_stale(&self, what: impl IntoIterator<Item = Stale>) {
        let mut s = self.lock();
        if let Some(v) = s.stale.as_mut() {
            v.extend(what);
        }
    }

    /// Notes what replacing the tree with `new` (a merge) makes stale.
    pub(super) fn mark_replaced(s: &mut State, new: &Records) {
        let State { stale, tree, .. } = s;
        if let Some(v) = stale.as_mut() {
            diff(&tree.records, new, v);
        }
    }
}

/// A name of a directory, for [`Category::mark_stale`].
pub(super) fn entry(parent: u64, name: &[u8]) -> Stale {
    Stale::Entry {
        parent,
        name: name.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::{Attr, DirEntry};
    use crate::store::{MemStore, Store};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn attr(mode: u32) -> Attr {
        super::super::merge::tests::attr(mode, 0)
    }

    fn file(size: u64, mode: u32) -> Record {
        Record {
            attr: attr(libc::S_IFREG | mode),
            xattrs: Default::default(),
            payload: Payload::File {
                size,
                chunks: Vec::new(),
            },
        }
    }

    fn dir(names: &[(&str, u64)]) -> Record {
        let entries: BTreeMap<Vec<u8>, DirEntry> = names
            .iter()
            .map(|(n, i)| {
                (
                    n.as_bytes().to_vec(),
                    DirEntry {
                        ino: *i,
                        kind: (libc::S_IFREG >> 12) as u8,
                    },
                )
            })
            .collect();
        Record {
            attr: attr(libc::S_IFDIR | 0o755),
            xattrs: Default::default(),
            payload: Payload::Dir { parent: 1, entries },
        }
    }

    #[test]
    fn renames_deletes_size_and_mode_changes_are_all_noted() {
        let old: Records = [
            (1, dir(&[("a", 10), ("b", 11), ("c", 12)])),
            (10, file(5, 0o644)),
            (11, file(5, 0o644)),
            (12, file(5, 0o644)),
        ]
        .into_iter()
        .collect();
        // a renamed to z, b deleted, c grew and was chmodded, d is new.
        let new: Records = [
            (1, dir(&[("z", 10), ("c", 12), ("d", 13)])),
            (10, file(5, 0o644)),
            (12, file(9, 0o600)),
            (13, file(1, 0o644)),
        ]
        .into_iter()
        .collect();
        let mut out = Vec::new();
        diff(&old, &new, &mut out);
        out.sort();
        let e = |n: &str| entry(1, n.as_bytes());
        assert_eq!(
            out,
            vec![
                e("a"),
                e("b"),
                e("d"),
                e("z"),
                Stale::Node {
                    ino: 1,
                    data: false
                },
                Stale::Node {
                    ino: 11,
                    data: true
                },
                Stale::Node {
                    ino: 12,
                    data: true
                },
            ]
        );
    }

    #[test]
    fn a_mode_change_alone_keeps_the_pages_and_an_unchanged_tree_notes_nothing() {
        let old: Records = [(10, file(5, 0o644))].into_iter().collect();
        let new: Records = [(10, file(5, 0o600))].into_iter().collect();
        let mut out = Vec::new();
        diff(&old, &old.clone(), &mut out);
        assert!(out.is_empty());
        diff(&old, &new, &mut out);
        assert_eq!(
            out,
            vec![Stale::Node {
                ino: 10,
                data: false
            }]
        );
    }

    #[test]
    fn nothing_is_kept_until_the_kernel_watches() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = super::super::testing::open(&store, 1);
        c.mark_stale([entry(1, b"x")]);
        assert!(c.take_stale().is_empty());
        c.watch_for_kernel();
        c.mark_stale([entry(1, b"x"), entry(1, b"x"), entry(1, b"a")]);
        assert_eq!(c.take_stale(), vec![entry(1, b"a"), entry(1, b"x")]);
        assert!(c.take_stale().is_empty());
    }
}
