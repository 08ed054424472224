//! The full check: authenticate every head, leaf and chunk of every category, and every
//! pack's content against its name. Damage is reported, never repaired.

use super::open_for_inspection;
use crate::account::Unlocked;
use crate::cache::ChunkCache;
use crate::format::names;
use crate::store::Store;
use crate::volume::Category;
use std::collections::HashSet;
use std::sync::Arc;

/// Where the check is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckStep<'a> {
    /// A category's chunks are being checked: `chunks` in all.
    Category { name: &'a str, chunks: u64 },
    /// `n` more chunks of the current category checked.
    Chunks(u64),
    /// The current category is done.
    CategoryDone,
    /// The store's packs are being checked: `total` in all.
    Packs { total: u64 },
    /// One more pack checked.
    Pack,
    /// The packs are done.
    PacksDone,
}

/// One piece of damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{category}: key cannot be unlocked: {reason}")]
    Locked { category: String, reason: String },
    /// A head, leaf or chunk of the category failed (what the volume's check says).
    #[error("{category}: {problem}")]
    Category { category: String, problem: String },
    #[error("unexpected object {0} in packs/")]
    UnexpectedObject(String),
    #[error("pack {0}: content does not match its name (corrupted or replaced)")]
    PackMismatch(String),
    #[error("pack {name}: {reason}")]
    Pack { name: String, reason: String },
    #[error("cannot list the store: {0}")]
    List(String),
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub inodes: u64,
    pub chunks: u64,
    /// Packs no head references (garbage: harmless, for gc).
    pub unreferenced: u64,
    /// Changes made on the web that wait for a device (FORMAT.md §9f): above their
    /// category's `web_seq`, not yet in any tree. Not damage.
    pub web_pending: u64,
    pub problems: Vec<Problem>,
}

/// Checks every active category of the account and every pack of its store.
pub fn check_account(acct: &Unlocked, progress: &dyn Fn(FsckStep)) -> FsckReport {
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let cats: Vec<(String, Result<Arc<Category>, String>)> = acct
        .category_setups()
        .into_iter()
        .map(|(entry, setup)| {
            let c = setup.map(|s| open_for_inspection(acct, s, &cache));
            (entry.name, c)
        })
        .collect();
    check(&cats, &*acct.store, progress)
}

/// Checks `cats` (name, and the category or why its key cannot be unlocked) and every
/// pack of `store`, referenced or not: a pack's name is the hash of its content.
pub fn check(
    cats: &[(String, Result<Arc<Category>, String>)],
    store: &dyn Store,
    progress: &dyn Fn(FsckStep),
) -> FsckReport {
    let mut rep = FsckReport::default();
    let mut referenced: HashSet<[u8; 32]> = HashSet::new();
    for (name, c) in cats {
        let c = match c {
            Ok(c) => c,
            Err(reason) => {
                rep.problems.push(Problem::Locked {
                    category: name.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
        };
        progress(FsckStep::Category {
            name,
            chunks: c.chunk_count(),
        });
        let v = c.verify(&|n| progress(FsckStep::Chunks(n)));
        progress(FsckStep::CategoryDone);
        rep.inodes += v.inodes;
        rep.chunks += v.chunks;
        referenced.extend(v.packs.iter().copied());
        rep.web_pending += web_pending(store, c);
        rep.problems
            .extend(v.problems.into_iter().map(|problem| Problem::Category {
                category: name.clone(),
                problem,
            }));
    }
    match store.list("packs/") {
        Ok(list) => {
            progress(FsckStep::Packs {
                total: list.len() as u64,
            });
            for name in list {
                progress(FsckStep::Pack);
                check_pack(store, name, &referenced, &mut rep);
            }
            progress(FsckStep::PacksDone);
        }
        Err(e) => rep.problems.push(Problem::List(e.to_string())),
    }
    rep
}

/// Changes in `c`'s inbox that its tree has not taken in (0 if the inbox cannot be
/// listed: the pack listing below reports an unreachable store).
fn web_pending(store: &dyn Store, c: &Category) -> u64 {
    use crate::format::web_change::{self, InboxName};
    let done = c.web_seq();
    store
        .list(&web_change::prefix(c.id))
        .map(|l| {
            l.iter()
                .filter(|n| {
                    matches!(web_change::parse_name(c.id, n), Some(InboxName::Change(s)) if s > done)
                })
                .count() as u64
        })
        .unwrap_or(0)
}

fn check_pack(
    store: &dyn Store,
    name: String,
    referenced: &HashSet<[u8; 32]>,
    rep: &mut FsckReport,
) {
    let Some(id) = names::parse_pack(&name) else {
        rep.problems.push(Problem::UnexpectedObject(name));
        return;
    };
    if !referenced.contains(&id) {
        rep.unreferenced += 1;
    }
    match store.get(&name) {
        Ok(bytes) => {
            if crate::crypto::hash(&bytes) != id {
                rep.problems.push(Problem::PackMismatch(name));
            } else if let Err(e) = crate::format::pack::check_header(&bytes) {
                rep.problems.push(Problem::Pack {
                    name,
                    reason: e.to_string(),
                });
            }
        }
        Err(e) => rep.problems.push(Problem::Pack {
            name,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{open, write_file};
    use super::*;
    use crate::store::MemStore;

    fn fsck(store: &Arc<dyn Store>) -> FsckReport {
        let cats = vec![("cat3".to_string(), Ok(open(store, 3)))];
        check(&cats, &**store, &|_| {})
    }

    /// A category with one 300 KB file (two chunks), and the packs its commit wrote (the
    /// root directory's came before): the chunks' (large) and the leaves' (small; more
    /// than one chunk never shares a pack with the leaves, FORMAT.md §4).
    fn one_file() -> (Arc<dyn Store>, String, String) {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = open(&store, 3);
        let before = store.list("packs/").unwrap();
        write_file(&c, "a", &[7u8; 300_000]);
        drop(c);
        let mut new: Vec<(u64, String)> = store
            .list("packs/")
            .unwrap()
            .into_iter()
            .filter(|p| !before.contains(p))
            .map(|p| (store.size(&p).unwrap(), p))
            .collect();
        new.sort();
        assert_eq!(new.len(), 2, "{new:?}");
        assert!(new[0].0 < 100_000 && new[1].0 > 300_000, "{new:?}");
        (store, new[1].1.clone(), new[0].1.clone())
    }

    /// Flips the byte at `at` (from the end when negative) of object `name`.
    fn flip(store: &Arc<dyn Store>, name: &str, at: isize) {
        let mut b = store.get(name).unwrap();
        let i = if at < 0 {
            b.len() - at.unsigned_abs()
        } else {
            at as usize
        };
        b[i] ^= 1;
        store.put(name, &b).unwrap();
    }

    fn category_problems(r: &FsckReport) -> Vec<String> {
        r.problems
            .iter()
            .filter_map(|p| match p {
                Problem::Category { problem, .. } => Some(problem.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_intact_store_has_no_problem() {
        let (store, _, _) = one_file();
        let r = fsck(&store);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.inodes, r.chunks, r.unreferenced), (2, 2, 0));
    }

    #[test]
    fn a_corrupted_chunk_is_reported() {
        let (store, pack, _) = one_file();
        flip(&store, &pack, 100);
        let r = fsck(&store);
        let cat = category_problems(&r);
        assert!(
            cat.iter().any(|p| p.contains("chunk 0")),
            "{:?}",
            r.problems
        );
        assert!(r.problems.contains(&Problem::PackMismatch(pack)));
    }

    #[test]
    fn a_corrupted_leaf_is_reported() {
        let (store, _, pack) = one_file();
        flip(&store, &pack, -1);
        let r = fsck(&store);
        let cat = category_problems(&r);
        assert!(!cat.is_empty(), "{:?}", r.problems);
        assert!(cat.iter().all(|p| !p.contains("chunk")), "{cat:?}");
        assert!(r.problems.contains(&Problem::PackMismatch(pack)));
    }

    #[test]
    fn a_corrupted_head_is_reported() {
        let (store, _, _) = one_file();
        flip(&store, &names::head(3), -1);
        let r = fsck(&store);
        assert!(!category_problems(&r).is_empty(), "{:?}", r.problems);
        // The pack itself is intact (and no longer referenced by a readable head).
        assert!(
            !r.problems
                .iter()
                .any(|p| matches!(p, Problem::PackMismatch(_)))
        );
    }

    #[test]
    fn a_locked_category_and_a_stray_object_are_problems_too() {
        let (store, _, _) = one_file();
        store.put("packs/not-a-pack", b"x").unwrap();
        let cats = vec![("Health".to_string(), Err("no key".to_string()))];
        let r = check(&cats, &*store, &|_| {});
        assert_eq!(
            r.problems,
            vec![
                Problem::Locked {
                    category: "Health".into(),
                    reason: "no key".into()
                },
                Problem::UnexpectedObject("packs/not-a-pack".into()),
            ]
        );
        // No category was checked: every real pack counts as unreferenced.
        let real = store.list("packs/").unwrap().len() - 1;
        assert_eq!(r.unreferenced, real as u64);
    }
}
