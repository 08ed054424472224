//! One open category, read-only: paths resolved segment by segment from its root (raw
//! name bytes, never a joined string, so no `/` or `..` can climb out), folder listings,
//! a bounded name search and bounded reads of file content.

use super::ReadError;
use crate::format::table::Class;
use crate::volume::{Category, NodeInfo, ROOT_INO};
use std::collections::VecDeque;
use std::sync::Arc;

/// The most bytes one [`OpenCategory::read`] returns: a caller streams larger ranges in
/// pieces, so a request never holds more plaintext than this.
pub const MAX_READ: usize = 4 << 20;

/// Entries one [`OpenCategory::search`] looks at before it stops, found or not, so a
/// huge tree cannot keep a request busy forever.
pub const SEARCH_VISIT_CAP: usize = 200_000;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A device node, FIFO or socket: listed, never read.
    Other,
}

impl Kind {
    fn of_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    /// The `data-kind` attribute of the entry's row (web-contract.md; `Other` has none
    /// there and shows as a file).
    pub fn data_kind(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::File | Kind::Other => "file",
        }
    }
}

/// Modification time, Unix seconds and nanoseconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mtime {
    pub secs: i64,
    pub nanos: u32,
}

/// A folder entry as the web shows it. `name` is the raw name bytes (any bytes but `/`
/// and NUL): escaping is the front's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Bytes of a file or symlink target; for a folder what the volume reports.
    pub size: u64,
    pub mtime: Mtime,
}

/// A search result: the path of name segments from the category root, and the entry.
pub type Hit = (Vec<Vec<u8>>, Entry);

/// A resolved node: its inode in the category and its entry when it was resolved (the
/// root's name is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub ino: u64,
    pub entry: Entry,
}

pub(super) fn entry(name: &[u8], n: &NodeInfo) -> Entry {
    Entry {
        name: name.to_vec(),
        kind: Kind::of_mode(n.attr.mode),
        size: n.size,
        mtime: Mtime {
            secs: n.attr.mtime.sec,
            nanos: n.attr.mtime.nsec,
        },
    }
}

/// A path segment that can name an entry: not empty, `.` or `..`, no `/` or NUL.
fn valid_segment(s: &[u8]) -> bool {
    !s.is_empty() && s != b"." && s != b".." && !s.contains(&b'/') && !s.contains(&0)
}

/// One category opened by a [`super::Drive`]; cheap to clone.
#[derive(Clone)]
pub struct OpenCategory {
    pub(super) cat: Arc<Category>,
    /// The account's store: the web's changes go to the category's inbox there.
    pub(super) store: Arc<dyn crate::store::Store>,
}

impl OpenCategory {
    pub(super) fn new(cat: Arc<Category>, store: Arc<dyn crate::store::Store>) -> OpenCategory {
        OpenCategory { cat, store }
    }

    pub fn name(&self) -> &str {
        &self.cat.name
    }

    pub fn class(&self) -> Class {
        self.cat.class
    }

    /// Plaintext bytes of the category's files, from its head.
    pub fn size(&self) -> u64 {
        self.cat.stats().0
    }

    /// The node at `path` (name segments from the category root; empty: the root).
    /// Symlinks are not followed: one in the middle of a path is [`ReadError::NotDir`].
    pub fn resolve(&self, path: &[&[u8]]) -> Result<NodeRef, ReadError> {
        if !path.iter().all(|s| valid_segment(s)) {
            return Err(ReadError::BadPath);
        }
        let mut node = self.cat.getattr(ROOT_INO)?;
        let mut name: &[u8] = b"";
        for seg in path {
            if Kind::of_mode(node.attr.mode) != Kind::Dir {
                return Err(ReadError::NotDir);
            }
            node = self.cat.lookup(node.ino, seg)?;
            name = seg;
        }
        Ok(NodeRef {
            ino: node.ino,
            entry: entry(name, &node),
        })
    }

    /// The entry of `node` as it is now.
    pub fn stat(&self, node: &NodeRef) -> Result<Entry, ReadError> {
        Ok(entry(&node.entry.name, &self.cat.getattr(node.ino)?))
    }

    /// The entries of folder `dir`, by name (byte order).
    pub fn list(&self, dir: &NodeRef) -> Result<Vec<Entry>, ReadError> {
        let (_, listed) = self.cat.readdir(dir.ino)?;
        listed
            .iter()
            .map(|(name, ino, _)| Ok(entry(name, &self.cat.getattr(*ino)?)))
            .collect()
    }

    /// Up to `min(len, MAX_READ)` bytes of file `file` from `offset`; fewer at the end of
    /// the file, none past it.
    pub fn read(&self, file: &NodeRef, offset: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        match file.entry.kind {
            Kind::File => {}
            Kind::Dir => return Err(ReadError::IsDir),
            Kind::Symlink | Kind::Other => return Err(ReadError::NotFound),
        }
        let len = len.min(MAX_READ) as u32;
        Ok(self.cat.read(file.ino, offset, len)?)
    }

    /// Entries anywhere in the category whose name contains `query`, ignoring case: at
    /// most `limit`, breadth first (shallow ones first), each with its path from the root.
    /// Stops after [`SEARCH_VISIT_CAP`] entries looked at. An empty query finds nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ReadError> {
        self.search_within(query, limit, SEARCH_VISIT_CAP)
    }

    /// [`OpenCategory::search`] looking at no more than `cap` entries.
    pub(super) fn search_within(
        &self,
        query: &str,
        limit: usize,
        cap: usize,
    ) -> Result<Vec<Hit>, ReadError> {
        let q = query.to_lowercase();
        let mut hits = Vec::new();
        if q.is_empty() || limit == 0 {
            return Ok(hits);
        }
        let mut queue = VecDeque::from([(ROOT_INO, Vec::<Vec<u8>>::new())]);
        let mut visited = 0usize;
        while let Some((dir, path)) = queue.pop_front() {
            let (_, listed) = match self.cat.readdir(dir) {
                Ok(l) => l,
                // Gone or damaged below the root: skip that folder, keep searching.
                Err(e) if dir != ROOT_INO => {
                    log::debug!("web search: skipping a folder of {}: {e}", self.cat.name);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for (name, ino, kind) in listed {
                visited += 1;
                if visited > cap {
                    return Ok(hits);
                }
                let mut at = path.clone();
                at.push(name);
                let Some(last) = at.last() else { continue };
                if String::from_utf8_lossy(last).to_lowercase().contains(&q) {
                    if let Ok(n) = self.cat.getattr(ino) {
                        hits.push((at.clone(), entry(last, &n)));
                    }
                    if hits.len() >= limit {
                        return Ok(hits);
                    }
                }
                if u32::from(kind) << 12 == libc::S_IFDIR {
                    queue.push_back((ino, at));
                }
            }
        }
        Ok(hits)
    }
}
