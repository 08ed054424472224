//! Changes made on the web, on the server's side (FORMAT.md §9f): each is sealed with
//! the category's key into the category's inbox in the store, never into its tree (the
//! server signs no head a device would take); a device applies it at its next sync.
//! The pending changes are also read back here, so the pages show them at once.

use super::ReadError;
use super::overlay::{self, Now, Path, Pending};
use super::tree::{Entry, Kind, NodeRef, OpenCategory};
use crate::format::names;
use crate::format::table::Class;
use crate::format::web_change::{
    self, InboxName, MAX_DEPTH, MAX_PARTS, PART_SIZE, WebChange, WebOp, valid_name,
};
use crate::store::StoreError;
use crate::volume::RECENTLY_DELETED;

/// Changes waiting in one category, at most: the pages replay them all on every view
/// (a rename's row costs a pass over those before it), so their number is bounded
/// besides their bytes.
const MAX_PENDING: usize = 1024;

/// Tries at claiming a sequence number before giving up (another server claims the same
/// one only in a race).
const CLAIM_TRIES: usize = 16;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh random change id.
fn new_id() -> Result<[u8; 16], ReadError> {
    let mut id = [0u8; 16];
    crate::crypto::random_bytes(&mut id)
        .map_err(|e| ReadError::Unavailable(format!("no randomness: {e}")))?;
    Ok(id)
}

/// `dir` and `name` as one owned path.
fn owned(dir: &[&[u8]], name: &[u8]) -> Path {
    dir.iter()
        .copied()
        .chain([name])
        .map(|s| s.to_vec())
        .collect()
}

/// A path's segments, borrowed, as the tree's calls take them.
fn refs(p: &[Vec<u8>]) -> Vec<&[u8]> {
    p.iter().map(|s| s.as_slice()).collect()
}

fn check_path(dir: &[&[u8]], name: &[u8]) -> Result<(), ReadError> {
    if dir.len() > MAX_DEPTH || !dir.iter().chain([&name]).all(|s| valid_name(s)) {
        return Err(ReadError::BadPath);
    }
    Ok(())
}

impl OpenCategory {
    /// Whether the web may change this category: never an end-to-end one (issue 12:
    /// read-only on the web, even with a released key).
    pub fn writable(&self) -> bool {
        self.cat.class != Class::E2e
    }

    fn check_writable(&self, dir: &[&[u8]], name: &[u8]) -> Result<(), ReadError> {
        if !self.writable() {
            return Err(ReadError::ReadOnly(
                "end-to-end encrypted categories are read-only on the web",
            ));
        }
        check_path(dir, name)?;
        if dir.first().is_some_and(|d| *d == RECENTLY_DELETED)
            || (dir.is_empty() && name == RECENTLY_DELETED)
        {
            return Err(ReadError::ReadOnly(
                "Recently Deleted is kept by your devices: restore or empty it there",
            ));
        }
        Ok(())
    }

    /// Bytes of every change waiting in the account's inboxes.
    fn pending_bytes(&self) -> Result<u64, ReadError> {
        Ok(self.store.list_info("web/")?.iter().map(|o| o.size).sum())
    }

    fn check_quota(&self, more: u64, quota: u64) -> Result<(), ReadError> {
        let pending = self.pending_bytes()?;
        if pending.saturating_add(more) > quota {
            return Err(ReadError::Quota { pending, quota });
        }
        Ok(())
    }

    /// The `web_seq` of the head in the store now (0: none yet, or none in it).
    fn store_web_seq(&self) -> Result<u64, ReadError> {
        match self.store.get(&names::head(self.cat.id)) {
            Ok(obj) => self.cat.web_seq_of(&obj).ok_or_else(|| {
                ReadError::Unavailable("the category's head does not verify".into())
            }),
            Err(StoreError::NotFound(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Seals the change `make(seq)` makes and writes it create-only under the next free
    /// sequence number: the inbox is listed first and the head read after, so a change a
    /// device took in and deleted meanwhile still counts through the head.
    fn claim(&self, make: &dyn Fn(u64) -> WebChange) -> Result<u64, ReadError> {
        for _ in 0..CLAIM_TRIES {
            let numbers: Vec<u64> = self
                .store
                .list(&web_change::prefix(self.cat.id))?
                .iter()
                .filter_map(|n| match web_change::parse_name(self.cat.id, n) {
                    Some(InboxName::Change(seq)) => Some(seq),
                    _ => None,
                })
                .collect();
            let done = self.store_web_seq()?;
            if numbers.iter().filter(|s| **s > done).count() >= MAX_PENDING {
                return Err(ReadError::ReadOnly(
                    "Too many changes wait for a device: let one of your devices sync, \
                     then try again.",
                ));
            }
            let listed = numbers.iter().copied().max().unwrap_or(0);
            let seq = listed
                .max(done)
                .checked_add(1)
                .ok_or_else(|| ReadError::Unavailable("the inbox's numbers ran out".into()))?;
            let ch = make(seq);
            let obj = self.cat.seal_web_change(&ch)?;
            match self
                .store
                .put_if(&web_change::change_name(self.cat.id, seq), &obj, None)
            {
                Ok(_) => {
                    log::info!(
                        "web: change {seq} of {} written ({})",
                        self.cat.name,
                        hex::encode(ch.id)
                    );
                    return Ok(seq);
                }
                Err(StoreError::PreconditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReadError::Unavailable(
            "could not claim a place in the category's inbox".into(),
        ))
    }

    fn change(
        &self,
        dir: &[&[u8]],
        name: &[u8],
        id: [u8; 16],
        op: WebOp,
    ) -> impl Fn(u64) -> WebChange {
        let (base_counter, base_hash) = self.cat.web_base();
        let dir: Vec<Vec<u8>> = dir.iter().map(|s| s.to_vec()).collect();
        let name = name.to_vec();
        let created = now_secs();
        move |seq| WebChange {
            seq,
            id,
            created,
            base_counter,
            base_hash,
            dir: dir.clone(),
            name: name.clone(),
            op: op.clone(),
        }
    }

    /// A new folder `name` in `dir`.
    pub fn mkdir(&self, dir: &[&[u8]], name: &[u8], quota: u64) -> Result<u64, ReadError> {
        self.check_writable(dir, name)?;
        self.check_quota(1024, quota)?;
        self.claim(&self.change(dir, name, new_id()?, WebOp::Mkdir))
    }

    /// Moves `name` of `dir` to Recently Deleted (on the devices, at their next sync).
    pub fn delete(&self, dir: &[&[u8]], name: &[u8], quota: u64) -> Result<u64, ReadError> {
        self.check_writable(dir, name)?;
        let node = self.tree_node(&owned(dir, name), &self.pending()?)?;
        let seen = self.cat.web_seen(node.ino)?;
        self.check_quota(1024, quota)?;
        self.claim(&self.change(dir, name, new_id()?, WebOp::Delete { seen }))
    }

    /// Moves `name` of `dir` to `to_dir` under the name `to_name` (on the devices, at
    /// their next sync). `None`: it is there already.
    pub fn rename(
        &self,
        (dir, name): (&[&[u8]], &[u8]),
        (to_dir, to_name): (&[&[u8]], &[u8]),
        quota: u64,
    ) -> Result<Option<u64>, ReadError> {
        self.check_writable(dir, name)?;
        self.check_writable(to_dir, to_name)?;
        let src = owned(dir, name);
        let to: Path = to_dir.iter().map(|s| s.to_vec()).collect();
        if to.starts_with(&src) {
            return Err(ReadError::ReadOnly("A folder cannot move into itself."));
        }
        if to_dir == dir && to_name == name {
            return Ok(None);
        }
        let pending = self.pending()?;
        let node = self.tree_node(&src, &pending)?;
        // The page's folder, and the name free in it (devices never overwrite either:
        // a name taken by then gets a conflict name).
        let rows = self.view(&to, &pending)?.ok_or(ReadError::NotFound)?;
        if rows.iter().any(|(e, _)| e.name == to_name) {
            return Err(ReadError::ReadOnly(
                "Something of that name is already in that folder.",
            ));
        }
        let seen = self.cat.web_seen(node.ino)?;
        self.check_quota(1024, quota)?;
        let op = WebOp::Rename {
            seen,
            to_dir: to,
            to_name: to_name.to_vec(),
        };
        self.claim(&self.change(dir, name, new_id()?, op)).map(Some)
    }

    /// The tree's node that the page's `path` is now: refused for what waits for a
    /// device (an upload, a new folder), which a change can name only once a device
    /// took it in (the change names the node it is about).
    fn tree_node(&self, path: &[Vec<u8>], pending: &Pending) -> Result<NodeRef, ReadError> {
        const WAITS: &str = "This waits for a device: change it once a device has synced.";
        match overlay::now(path, pending) {
            Now::Tree(p) => self.resolve(&refs(&p)),
            Now::Upload(_) => Err(ReadError::ReadOnly(WAITS)),
            Now::Other => match self.view(path, pending)? {
                Some(_) => Err(ReadError::ReadOnly(WAITS)),
                None => Err(ReadError::NotFound),
            },
        }
    }

    /// Folder `path` as the pages show it: the tree's, with the pending changes on top
    /// (each row says whether it is pending). `None`: no such folder.
    pub fn view(
        &self,
        path: &[Vec<u8>],
        pending: &Pending,
    ) -> Result<Option<Vec<(Entry, bool)>>, ReadError> {
        overlay::overlay(
            path,
            pending,
            &mut |p| match resolve_dir(self, &refs(p)) {
                Ok(Some(n)) => self.list(&n).map(Some),
                Ok(None) | Err(ReadError::NotDir) => Ok(None),
                Err(e) => Err(e),
            },
            &mut |p| match self.resolve(&refs(p)) {
                Ok(n) => self.stat(&n).map(Some),
                Err(ReadError::NotFound | ReadError::NotDir) => Ok(None),
                Err(e) => Err(e),
            },
        )
    }

    /// What the page's file `path` is now: a tree node or a pending upload.
    pub fn file_now<'a>(
        &self,
        path: &[Vec<u8>],
        pending: &'a Pending,
    ) -> Result<Result<NodeRef, &'a WebChange>, ReadError> {
        match overlay::now(path, pending) {
            Now::Tree(p) => self.resolve(&refs(&p)).map(Ok),
            Now::Upload(ch) => Ok(Err(ch)),
            Now::Other => Err(ReadError::NotFound),
        }
    }

    /// Starts an upload of file `name` into `dir`; its content follows through
    /// [`Upload::write`].
    pub fn begin_upload(
        &self,
        dir: &[&[u8]],
        name: &[u8],
        quota: u64,
    ) -> Result<Upload, ReadError> {
        self.check_writable(dir, name)?;
        self.check_quota(0, quota)?;
        // What the web overwrites goes to Recently Deleted on the devices, if it is still
        // the file seen here (a pending upload overwritten gives a conflict copy).
        let replaces = match overlay::now(&owned(dir, name), &self.pending()?) {
            Now::Tree(p) => match self.resolve(&refs(&p)) {
                Ok(n) if n.entry.kind == Kind::File => Some(self.cat.web_seen(n.ino)?),
                Ok(_) | Err(ReadError::NotFound) | Err(ReadError::NotDir) => None,
                Err(e) => return Err(e),
            },
            Now::Upload(_) | Now::Other => None,
        };
        Ok(Upload {
            cat: self.clone(),
            dir: dir.iter().map(|s| s.to_vec()).collect(),
            name: name.to_vec(),
            id: new_id()?,
            replaces,
            parts: Vec::new(),
            size: 0,
            buf: Vec::with_capacity(PART_SIZE),
            quota,
        })
    }

    /// The changes waiting in this category's inbox that its head does not hold yet, in
    /// order. One that does not open is left out (and logged): devices refuse it too.
    pub fn pending(&self) -> Result<Pending, ReadError> {
        let done = self.cat.web_seq();
        let mut seqs: Vec<u64> = self
            .store
            .list(&web_change::prefix(self.cat.id))?
            .iter()
            .filter_map(|n| match web_change::parse_name(self.cat.id, n) {
                Some(InboxName::Change(seq)) if seq > done => Some(seq),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        if seqs.len() > MAX_PENDING {
            // More than the web front ever writes: the pages show the first ones.
            log::warn!(
                "web: {} changes wait in {}, showing the first {MAX_PENDING}",
                seqs.len(),
                self.cat.name
            );
            seqs.truncate(MAX_PENDING);
        }
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let obj = match self.store.get(&web_change::change_name(self.cat.id, seq)) {
                Ok(o) => o,
                Err(StoreError::NotFound(_)) => continue, // taken in since the listing
                Err(e) => return Err(e.into()),
            };
            match self.cat.open_web_change(seq, &obj) {
                Ok(ch) => out.push(ch),
                Err(e) => log::warn!("web: change {seq} of {} does not open: {e}", self.cat.name),
            }
        }
        Ok(out)
    }

    /// Up to `len` bytes from `offset` of pending upload `ch` (a part at a time).
    pub fn read_pending(
        &self,
        ch: &WebChange,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, ReadError> {
        let WebOp::Upload { size, .. } = &ch.op else {
            return Err(ReadError::NotFound);
        };
        if offset >= *size || len == 0 {
            return Ok(Vec::new());
        }
        let n = offset / PART_SIZE as u64;
        let obj = self
            .store
            .get(&web_change::part_name(self.cat.id, &ch.id, n))?;
        let part = self.cat.open_web_part(ch, n, &obj)?;
        let at = (offset - n * PART_SIZE as u64) as usize;
        let end = (at + len).min(part.len());
        Ok(part.get(at..end).unwrap_or_default().to_vec())
    }
}

/// An upload being written: parts sealed and stored as they fill, the change last.
pub struct Upload {
    cat: OpenCategory,
    dir: Vec<Vec<u8>>,
    name: Vec<u8>,
    id: [u8; 16],
    replaces: Option<web_change::Seen>,
    parts: Vec<[u8; 32]>,
    size: u64,
    buf: Vec<u8>,
    quota: u64,
}

impl Upload {
    /// Takes more of the file's content.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), ReadError> {
        while !data.is_empty() {
            let take = (PART_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == PART_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ReadError> {
        let n = self.parts.len() as u64;
        if n >= MAX_PARTS {
            return Err(ReadError::ReadOnly(
                "files uploaded on the web are at most 4 GiB",
            ));
        }
        let obj = self.cat.cat.seal_web_part(&self.id, n, &self.buf)?;
        self.cat.check_quota(obj.len() as u64, self.quota)?;
        self.cat
            .store
            .put(&web_change::part_name(self.cat.cat.id, &self.id, n), &obj)?;
        self.parts.push(crate::crypto::hash(&obj));
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Stores the last part and the change; returns its sequence number.
    pub fn finish(mut self, mtime: i64) -> Result<u64, ReadError> {
        if !self.buf.is_empty() {
            self.flush()?;
        }
        let dir: Vec<&[u8]> = self.dir.iter().map(|s| s.as_slice()).collect();
        let op = WebOp::Upload {
            size: self.size,
            mtime,
            replaces: self.replaces,
            parts: std::mem::take(&mut self.parts),
        };
        let nparts = match &op {
            WebOp::Upload { parts, .. } => parts.len() as u64,
            _ => 0,
        };
        let res = self
            .cat
            .claim(&self.cat.change(&dir, &self.name, self.id, op));
        if res.is_err() {
            self.remove_parts(nparts);
        }
        res
    }

    /// Gives the upload up: the parts stored so far are deleted.
    pub fn abort(self) {
        self.remove_parts(self.parts.len() as u64);
    }

    fn remove_parts(&self, n: u64) {
        for i in 0..n {
            let name = web_change::part_name(self.cat.cat.id, &self.id, i);
            if let Err(e) = self.cat.store.delete(&name) {
                log::warn!("web: cannot delete {name} of an upload given up: {e}");
            }
        }
    }
}

/// The node a folder path names, for the pages: resolved in the tree.
pub fn resolve_dir(cat: &OpenCategory, path: &[&[u8]]) -> Result<Option<NodeRef>, ReadError> {
    match cat.resolve(path) {
        Ok(n) if n.entry.kind == Kind::Dir => Ok(Some(n)),
        Ok(_) => Err(ReadError::NotDir),
        Err(ReadError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}
