//! Changes made on the web (FORMAT.md §9f), on the volume's side: the server seals them
//! with the category key it holds, a device opens them and applies one at a time to its
//! tree with rules that never destroy anything (a delete or an overwrite moves the old
//! node to the category's Recently Deleted folder; a node changed since the web saw it
//! wins over the web's change, and the web's version becomes a conflict copy), then
//! records the change's sequence number in its next head.

use super::merge::ConflictNamer;
use super::stale::{Stale, entry};
use super::{Category, Keys, NewNode, NodeInfo, ROOT_INO, SetAttr, TimeSet, VolError, VolResult};
use crate::crypto;
use crate::format::context::{Context, ObjKind};
use crate::format::record::Time;
use crate::format::web_change::{self, PART_SIZE, Seen, WebChange, WebOp};
use std::sync::Arc;

/// The folder, at the category's root, that deletes and overwrites from the web move
/// nodes to.
pub const RECENTLY_DELETED: &[u8] = b"Recently Deleted";

/// The extended attribute that marks the Recently Deleted folder this code made: only
/// a folder so marked is ever emptied (`recently_deleted.rs`), never a user's own folder
/// of that name, nor one a change renamed to it.
pub const RECENTLY_DELETED_MARK: &[u8] = b"user.cirrus.recently-deleted";

/// Conflict copies and Recently Deleted names made for the web say "from web".
const WEB: &str = "web";

/// What applying one change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebApplied {
    /// Applied as the web meant it (an overwritten or deleted node is in Recently
    /// Deleted).
    Done,
    /// Applied under another name (`name` was taken by a node the web did not see).
    ConflictCopy(Vec<u8>),
    /// Nothing to do, and why: the node is gone or was changed here since the web saw it
    /// (the device's version wins).
    Skipped(&'static str),
}

fn integrity(what: &str, why: impl ToString) -> VolError {
    VolError::Integrity {
        what: what.to_string(),
        why: why.to_string(),
    }
}

fn matches_seen(n: &NodeInfo, seen: &Seen) -> bool {
    n.ino == seen.ino
        && n.attr.mtime.sec == seen.mtime_secs
        && n.attr.mtime.nsec == seen.mtime_nanos
        && n.size == seen.size
}

fn is_dir(n: &NodeInfo) -> bool {
    n.attr.mode & libc::S_IFMT == libc::S_IFDIR
}

impl Category {
    /// The last web change this device's tree has taken in.
    pub fn web_seq(&self) -> u64 {
        self.lock().head.web_seq
    }

    /// The `web_seq` of a head object from the store, if it verifies.
    pub fn web_seq_of(&self, remote: &[u8]) -> Option<u64> {
        self.verify_head(remote).ok().map(|v| v.head.web_seq)
    }

    /// The head a change made now is based on: its counter and object hash.
    pub fn web_base(&self) -> (u64, [u8; 32]) {
        let s = self.lock();
        (s.head.counter, s.head.hash)
    }

    /// What the web last saw of a node, for a change that replaces or deletes it.
    pub fn web_seen(&self, ino: u64) -> VolResult<Seen> {
        let n = self.getattr(ino)?;
        Ok(Seen {
            ino,
            mtime_secs: n.attr.mtime.sec,
            mtime_nanos: n.attr.mtime.nsec,
            size: n.size,
        })
    }

    fn seal_web(&self, ctx: Context, plain: &[u8]) -> VolResult<Vec<u8>> {
        let keys = self.keys();
        let sealed = crypto::seal(&keys.key, self.suite, &ctx.to_bytes(), plain)
            .map_err(|e| integrity("sealing a web change", e))?;
        let mut obj = Vec::with_capacity(4 + sealed.len());
        obj.extend_from_slice(&keys.version.to_le_bytes());
        obj.extend_from_slice(&sealed);
        Ok(obj)
    }

    fn open_web(&self, what: &str, ctx: Context, obj: &[u8]) -> VolResult<Vec<u8>> {
        let (kv, sealed) = web_change::split_object(obj).map_err(|e| integrity(what, e))?;
        let keys: Arc<Keys> = self.keys();
        let key = if kv == keys.version {
            &keys.key
        } else {
            match &keys.old {
                Some((v, k)) if *v == kv => k,
                _ => {
                    return Err(integrity(
                        what,
                        format!("sealed under key version {kv}, not held"),
                    ));
                }
            }
        };
        crypto::open(key, self.suite, &ctx.to_bytes(), sealed).map_err(|e| integrity(what, e))
    }

    /// The stored object of change `ch` (its `seq` is its name's).
    pub fn seal_web_change(&self, ch: &WebChange) -> VolResult<Vec<u8>> {
        self.seal_web(
            Context::new(ObjKind::WebChange, self.id, 0, ch.seq),
            &ch.encode(),
        )
    }

    /// The stored object of data part `n` of the upload with change id `id`.
    pub fn seal_web_part(&self, id: &[u8; 16], n: u64, plain: &[u8]) -> VolResult<Vec<u8>> {
        let ctx = Context::new(ObjKind::WebPart, self.id, web_change::part_inode(id), n);
        self.seal_web(ctx, plain)
    }

    /// Opens the change stored as `web/<cat>/<seq>`: sealed for this category at that
    /// position, and carrying that sequence number.
    pub fn open_web_change(&self, seq: u64, obj: &[u8]) -> VolResult<WebChange> {
        let what = format!("web change {seq}");
        let plain = self.open_web(
            &what,
            Context::new(ObjKind::WebChange, self.id, 0, seq),
            obj,
        )?;
        let ch = WebChange::decode(&plain).map_err(|e| integrity(&what, e))?;
        if ch.seq != seq {
            return Err(integrity(&what, "sequence number of another change"));
        }
        Ok(ch)
    }

    /// Opens data part `n` of change `ch`, which must be the exact object it names.
    pub fn open_web_part(&self, ch: &WebChange, n: u64, obj: &[u8]) -> VolResult<Vec<u8>> {
        let what = format!("part {n} of web change {}", ch.seq);
        let want = match &ch.op {
            WebOp::Upload { parts, .. } => parts.get(n as usize),
            _ => None,
        };
        if !want.is_some_and(|h| crypto::ct_eq(&crypto::hash(obj), h)) {
            return Err(integrity(&what, "not the part the change names"));
        }
        let ctx = Context::new(ObjKind::WebPart, self.id, web_change::part_inode(&ch.id), n);
        self.open_web(&what, ctx, obj)
    }

    /// Records that the tree has taken in every web change up to `seq` (applied or
    /// refused): the next head carries it.
    pub fn set_web_seq(&self, seq: u64) {
        let mut s = self.lock();
        if seq > s.head.web_seq {
            s.head.web_seq = seq;
            s.head_dirty = true;
        }
    }

    /// Applies change `ch` to the tree (not yet committed). `part(n)` fetches and opens
    /// data part `n`. `date` (UTC `YYYY-MM-DD`) goes into conflict names. On an error
    /// the tree is as before (an upload written halfway is removed again).
    pub fn apply_web_change(
        &self,
        ch: &WebChange,
        part: &mut dyn FnMut(u64) -> VolResult<Vec<u8>>,
        date: &str,
    ) -> VolResult<WebApplied> {
        let namer = ConflictNamer {
            device: WEB.into(),
            date: date.into(),
        };
        let root = self.getattr(ROOT_INO)?.attr;
        let owner = (root.uid, root.gid);
        // Recently Deleted is the devices' own: no change is about anything in it, nor
        // puts anything there but a delete (which checks what the web saw). A move there
        // would skip that check, and a node added deep in an old entry would go with it.
        let in_rd = |dir: &[Vec<u8>]| dir.first().is_some_and(|d| d == RECENTLY_DELETED);
        let to_rd = match &ch.op {
            WebOp::Rename { to_dir, .. } => in_rd(to_dir),
            _ => false,
        };
        if in_rd(&ch.dir) || to_rd {
            return Ok(WebApplied::Skipped("Recently Deleted is the devices' own"));
        }
        match &ch.op {
            WebOp::Mkdir if ch.dir.is_empty() && ch.name == RECENTLY_DELETED => Ok(
                WebApplied::Skipped("Recently Deleted is made by the devices"),
            ),
            WebOp::Mkdir => {
                let parent = self.web_dir(&ch.dir, owner, &namer)?;
                match self.lookup(parent, &ch.name) {
                    Ok(n) if is_dir(&n) => Ok(WebApplied::Skipped("the folder exists")),
                    Ok(_) => {
                        let name = self.free_name(parent, &ch.name, &namer);
                        self.create_node(parent, &name, dir_node(owner))?;
                        self.mark_stale([entry(parent, &name)]);
                        Ok(WebApplied::ConflictCopy(name))
                    }
                    Err(VolError::NotFound) => {
                        self.create_node(parent, &ch.name, dir_node(owner))?;
                        self.mark_stale([entry(parent, &ch.name)]);
                        Ok(WebApplied::Done)
                    }
                    Err(e) => Err(e),
                }
            }
            WebOp::Delete { seen } => {
                let Some(parent) = self.find_dir(&ch.dir)? else {
                    return Ok(WebApplied::Skipped("its folder is gone"));
                };
                let n = match self.lookup(parent, &ch.name) {
                    Ok(n) => n,
                    Err(VolError::NotFound) => return Ok(WebApplied::Skipped("it is gone")),
                    Err(e) => return Err(e),
                };
                if n.ino != seen.ino {
                    return Ok(WebApplied::Skipped("another node has its name now"));
                }
                // A folder's own times change with its entries: only a file's edits count.
                if !is_dir(&n) && !matches_seen(&n, seen) {
                    return Ok(WebApplied::Skipped("it was changed since the web saw it"));
                }
                let rd = self.find_dir(&[RECENTLY_DELETED.to_vec()])?;
                if rd == Some(parent) || rd == Some(n.ino) {
                    return Ok(WebApplied::Skipped("it is Recently Deleted or in it"));
                }
                self.to_recently_deleted(parent, &ch.name, owner, &namer)?;
                Ok(WebApplied::Done)
            }
            WebOp::Rename {
                seen,
                to_dir,
                to_name,
            } => self.web_rename(ch, seen, (to_dir, to_name), owner, &namer),
            WebOp::Upload {
                size,
                mtime,
                replaces,
                parts,
            } => self.web_upload(
                ch,
                (*size, *mtime, replaces, parts.len() as u64),
                part,
                owner,
                &namer,
            ),
        }
    }

    fn web_upload(
        &self,
        ch: &WebChange,
        (size, mtime, replaces, nparts): (u64, i64, &Option<Seen>, u64),
        part: &mut dyn FnMut(u64) -> VolResult<Vec<u8>>,
        owner: (u32, u32),
        namer: &ConflictNamer,
    ) -> VolResult<WebApplied> {
        let parent = self.web_dir(&ch.dir, owner, namer)?;
        let mut moved = None;
        let mut replaced = None;
        let name = match self.lookup(parent, &ch.name) {
            Err(VolError::NotFound) => ch.name.clone(),
            Ok(n) if !is_dir(&n) && replaces.as_ref().is_some_and(|s| matches_seen(&n, s)) => {
                moved = Some(self.to_recently_deleted(parent, &ch.name, owner, namer)?);
                replaced = Some(n);
                ch.name.clone()
            }
            Ok(_) => self.free_name(parent, &ch.name, namer),
            Err(e) => return Err(e),
        };
        let node = self.create_node(
            parent,
            &name,
            NewNode {
                mode: libc::S_IFREG | 0o644,
                rdev: 0,
                uid: owner.0,
                gid: owner.1,
                target: None,
                umask: 0,
                inherit_acl: true,
            },
        )?;
        if let Some(old) = &replaced {
            self.keep_permissions(old, node.ino)?;
        }
        self.mark_stale([entry(parent, &name)]);
        let written = (|| {
            for n in 0..nparts {
                let data = part(n)?;
                let want = (size - n * PART_SIZE as u64).min(PART_SIZE as u64);
                if data.len() as u64 != want {
                    return Err(integrity("a web upload", "a part of the wrong length"));
                }
                self.write(node.ino, n * PART_SIZE as u64, &data, false)?;
            }
            self.setattr(
                node.ino,
                SetAttr {
                    mtime: Some(TimeSet::At(Time {
                        sec: mtime,
                        nsec: 0,
                    })),
                    ..Default::default()
                },
            )
        })();
        // Its size and times grew while the parts came in: a lookup or an open handle
        // meanwhile may hold an early view.
        self.mark_stale([Stale::Node {
            ino: node.ino,
            data: true,
        }]);
        if let Err(e) = written {
            // Back as before: the half-written file goes, the replaced one comes back.
            let _ = self.unlink(parent, &name);
            self.mark_stale([entry(parent, &name)]);
            if let Some(old) = moved {
                let rd = self.recently_deleted(owner, namer)?;
                let _ = self.rename(rd, &old, parent, &ch.name, 0);
                self.mark_stale([entry(rd, &old), entry(parent, &ch.name)]);
            }
            return Err(e);
        }
        Ok(if name == ch.name {
            WebApplied::Done
        } else {
            WebApplied::ConflictCopy(name)
        })
    }

    /// A rename or move: of the node the web saw only (any edit since is kept, as a move
    /// loses nothing), never onto a taken name (the moved node gets a conflict name), and
    /// never of Recently Deleted itself or of a folder into itself.
    fn web_rename(
        &self,
        ch: &WebChange,
        seen: &Seen,
        (to_dir, to_name): (&[Vec<u8>], &[u8]),
        owner: (u32, u32),
        namer: &ConflictNamer,
    ) -> VolResult<WebApplied> {
        let Some(parent) = self.find_dir(&ch.dir)? else {
            return Ok(WebApplied::Skipped("its folder is gone"));
        };
        let n = match self.lookup(parent, &ch.name) {
            Ok(n) => n,
            Err(VolError::NotFound) => return Ok(WebApplied::Skipped("it is gone")),
            Err(e) => return Err(e),
        };
        if n.ino != seen.ino {
            return Ok(WebApplied::Skipped("another node has its name now"));
        }
        if self.find_dir(&[RECENTLY_DELETED.to_vec()])? == Some(n.ino) {
            return Ok(WebApplied::Skipped("Recently Deleted stays where it is"));
        }
        // Nothing becomes Recently Deleted by a rename: what it holds could be emptied.
        if to_dir.is_empty() && to_name == RECENTLY_DELETED {
            return Ok(WebApplied::Skipped(
                "Recently Deleted is made by the devices",
            ));
        }
        // The folders on the way that exist: none may be the moved node.
        let mut ino = ROOT_INO;
        for seg in to_dir {
            if ino == n.ino {
                break;
            }
            match self.lookup(ino, seg) {
                Ok(d) if is_dir(&d) => ino = d.ino,
                Ok(_) | Err(VolError::NotFound) => break,
                Err(e) => return Err(e),
            }
        }
        if ino == n.ino {
            return Ok(WebApplied::Skipped("a folder cannot move into itself"));
        }
        let to = self.web_dir(to_dir, owner, namer)?;
        if to == parent && to_name == ch.name.as_slice() {
            return Ok(WebApplied::Skipped("it is there already"));
        }
        let name = self.rename_free(parent, &ch.name, to, to_name, namer)?;
        Ok(if name == to_name {
            WebApplied::Done
        } else {
            WebApplied::ConflictCopy(name)
        })
    }

    /// The folder at `dir`, if every segment is one.
    fn find_dir(&self, dir: &[Vec<u8>]) -> VolResult<Option<u64>> {
        let mut ino = ROOT_INO;
        for seg in dir {
            match self.lookup(ino, seg) {
                Ok(n) if is_dir(&n) => ino = n.ino,
                Ok(_) | Err(VolError::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(ino))
    }

    /// The folder at `dir`, made where missing (a segment taken by a file gets a folder
    /// of a conflict name beside it): what the web adds always finds a place.
    fn web_dir(&self, dir: &[Vec<u8>], owner: (u32, u32), namer: &ConflictNamer) -> VolResult<u64> {
        let mut ino = ROOT_INO;
        for seg in dir {
            ino = match self.lookup(ino, seg) {
                Ok(n) if is_dir(&n) => n.ino,
                Ok(_) => {
                    let name = self.free_name(ino, seg, namer);
                    let made = self.create_node(ino, &name, dir_node(owner))?.ino;
                    self.mark_stale([entry(ino, &name)]);
                    made
                }
                Err(VolError::NotFound) => {
                    let made = self.create_node(ino, seg, dir_node(owner))?.ino;
                    self.mark_stale([entry(ino, seg)]);
                    made
                }
                Err(e) => return Err(e),
            };
        }
        Ok(ino)
    }

    fn free_name(&self, parent: u64, name: &[u8], namer: &ConflictNamer) -> Vec<u8> {
        let taken = |n: &[u8]| !matches!(self.lookup(parent, n), Err(VolError::NotFound));
        if taken(name) {
            namer.name(name, &taken)
        } else {
            name.to_vec()
        }
    }

    fn recently_deleted(&self, owner: (u32, u32), namer: &ConflictNamer) -> VolResult<u64> {
        let made = match self.lookup(ROOT_INO, RECENTLY_DELETED) {
            Ok(n) if is_dir(&n) => return Ok(n.ino),
            Ok(_) => false, // a file has the name: a conflict-named folder, never emptied
            Err(VolError::NotFound) => true,
            Err(e) => return Err(e),
        };
        let ino = self.web_dir(&[RECENTLY_DELETED.to_vec()], owner, namer)?;
        if made {
            self.setxattr(ino, RECENTLY_DELETED_MARK, b"kept 30 days", 0)?;
        }
        Ok(ino)
    }

    /// Moves `name` of `parent` into Recently Deleted; returns its name there.
    fn to_recently_deleted(
        &self,
        parent: u64,
        name: &[u8],
        owner: (u32, u32),
        namer: &ConflictNamer,
    ) -> VolResult<Vec<u8>> {
        let rd = self.recently_deleted(owner, namer)?;
        self.rename_free(parent, name, rd, name, namer)
    }

    /// Renames `name` of `parent` into `to` under `want`, or a conflict name if that is
    /// taken, never replacing anything (a name taken between the look and the rename, by
    /// a program on the mount, is tried again); returns the name given.
    fn rename_free(
        &self,
        parent: u64,
        name: &[u8],
        to: u64,
        want: &[u8],
        namer: &ConflictNamer,
    ) -> VolResult<Vec<u8>> {
        const RENAME_NOREPLACE: u32 = 1;
        // Its ctime changes with the move (and a folder's parent).
        let moved = self.lookup(parent, name).map(|n| n.ino).ok();
        let mut tries = 0;
        loop {
            let new = self.free_name(to, want, namer);
            match self.rename(parent, name, to, &new, RENAME_NOREPLACE) {
                Err(VolError::Exists) if tries < 8 => tries += 1,
                res => {
                    res?;
                    self.mark_stale([entry(parent, name), entry(to, &new)]);
                    self.mark_stale(moved.map(|ino| Stale::Node { ino, data: false }));
                    return Ok(new);
                }
            }
        }
    }
}

fn dir_node<'a>(owner: (u32, u32)) -> NewNode<'a> {
    NewNode {
        mode: libc::S_IFDIR | 0o755,
        rdev: 0,
        uid: owner.0,
        gid: owner.1,
        target: None,
        umask: 0,
        inherit_acl: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::web_change::{PART_SIZE, parts_for};
    use crate::store::{MemStore, Store};
    use crate::volume::{AclKind, testing};

    fn cat() -> Arc<Category> {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        testing::open(&store, 3)
    }

    fn change(seq: u64, dir: &[&str], name: &str, op: WebOp) -> WebChange {
        WebChange::sample(seq, dir, name, op)
    }

    /// An upload of `data`, its parts sealed by `c` as the server would.
    fn upload(
        c: &Category,
        seq: u64,
        dir: &[&str],
        name: &str,
        data: &[u8],
        replaces: Option<Seen>,
    ) -> (WebChange, Vec<Vec<u8>>) {
        let id = [seq as u8; 16];
        let objs: Vec<Vec<u8>> = data
            .chunks(PART_SIZE)
            .enumerate()
            .map(|(n, p)| c.seal_web_part(&id, n as u64, p).unwrap())
            .collect();
        assert_eq!(objs.len() as u64, parts_for(data.len() as u64));
        let op = WebOp::Upload {
            size: data.len() as u64,
            mtime: 1_700_000_000,
            replaces,
            parts: objs.iter().map(|o| crate::crypto::hash(o)).collect(),
        };
        (change(seq, dir, name, op), objs)
    }

    fn apply(c: &Category, ch: &WebChange, objs: &[Vec<u8>]) -> VolResult<WebApplied> {
        let stored = c.seal_web_change(ch)?;
        let opened = c.open_web_change(ch.seq, &stored)?;
        c.apply_web_change(
            &opened,
            &mut |n| c.open_web_part(&opened, n, &objs[n as usize]),
            "2026-12-06",
        )
    }

    fn read(c: &Category, path: &[&str]) -> Vec<u8> {
        let mut ino = ROOT_INO;
        for seg in path {
            ino = c.lookup(ino, seg.as_bytes()).unwrap().ino;
        }
        let size = c.getattr(ino).unwrap().size;
        c.read(ino, 0, size as u32).unwrap()
    }

    fn exists(c: &Category, path: &[&str]) -> bool {
        let mut ino = ROOT_INO;
        for seg in path {
            match c.lookup(ino, seg.as_bytes()) {
                Ok(n) => ino = n.ino,
                Err(_) => return false,
            }
        }
        true
    }

    #[test]
    fn what_the_web_changes_is_noted_for_the_kernel() {
        let c = cat();
        c.watch_for_kernel();
        let (ch, objs) = upload(&c, 1, &["Trips"], "a.txt", b"hello", None);
        assert_eq!(apply(&c, &ch, &objs).unwrap(), WebApplied::Done);
        let trips = c.lookup(ROOT_INO, b"Trips").unwrap().ino;
        let a = c.lookup(trips, b"a.txt").unwrap().ino;
        let noted = c.take_stale();
        for want in [
            entry(ROOT_INO, b"Trips"),
            entry(trips, b"a.txt"),
            Stale::Node { ino: a, data: true },
        ] {
            assert!(noted.contains(&want), "{want:?} in {noted:?}");
        }
        let seen = c.web_seen(a).unwrap();
        let mv = change(
            2,
            &["Trips"],
            "a.txt",
            WebOp::Rename {
                seen,
                to_dir: vec![],
                to_name: b"b.txt".to_vec(),
            },
        );
        assert_eq!(apply(&c, &mv, &[]).unwrap(), WebApplied::Done);
        let noted = c.take_stale();
        for want in [
            entry(trips, b"a.txt"),
            entry(ROOT_INO, b"b.txt"),
            Stale::Node {
                ino: a,
                data: false,
            },
        ] {
            assert!(noted.contains(&want), "{want:?} in {noted:?}");
        }
    }

    /// A web overwrite keeps the replaced file's permissions: its mode and access ACL,
    /// not a fresh file's 0644 nor the folder's default ACL.
    #[test]
    fn an_overwrite_keeps_the_replaced_files_mode_and_acl() {
        use crate::format::acl::{Acl, Entry, Tag};
        let c = cat();
        let e = |tag, perm, id| Entry { tag, perm, id };
        let acl = |named: u32, perm| {
            Acl::new(vec![
                e(Tag::UserObj, 6, u32::MAX),
                e(Tag::User, perm, named),
                e(Tag::GroupObj, 0, u32::MAX),
                e(Tag::Mask, perm, u32::MAX),
                e(Tag::Other, 0, u32::MAX),
            ])
            .unwrap()
            .to_bytes()
        };
        c.set_acl(ROOT_INO, AclKind::Default, &acl(2000, 7), true)
            .unwrap();
        let ino = testing::write_file(&c, "note.txt", b"old");
        c.set_acl(ino, AclKind::Access, &acl(1000, 4), true)
            .unwrap();
        assert_eq!(c.getattr(ino).unwrap().attr.mode & 0o777, 0o640);
        let seen = c.web_seen(ino).unwrap();
        let (ch, objs) = upload(&c, 1, &[], "note.txt", b"new", Some(seen));
        assert_eq!(apply(&c, &ch, &objs).unwrap(), WebApplied::Done);
        let new = c.lookup(ROOT_INO, b"note.txt").unwrap();
        assert_ne!(new.ino, ino);
        assert_eq!(new.attr.mode, libc::S_IFREG | 0o640);
        assert_eq!(
            c.getxattr(new.ino, crate::format::acl::ACCESS).unwrap(),
            acl(1000, 4)
        );
    }

    #[test]
    fn uploads_folders_and_deletes_apply_and_nothing_is_destroyed() {
        let c = cat();
        let big: Vec<u8> = (0..PART_SIZE * 2 + 5).map(|i| (i % 251) as u8).collect();
        let (ch, objs) = upload(&c, 1, &["Trips", "2026"], "scan.bin", &big, None);
        assert_eq!(apply(&c, &ch, &objs).unwrap(), WebApplied::Done);
        assert_eq!(
            read(&c, &["Trips", "2026", "scan.bin"]),
            big,
            "missing folders are made"
        );

        let mk = change(2, &["Trips"], "New", WebOp::Mkdir);
        assert_eq!(apply(&c, &mk, &[]).unwrap(), WebApplied::Done);
        assert_eq!(
            apply(&c, &mk, &[]).unwrap(),
            WebApplied::Skipped("the folder exists")
        );

        // Overwrite of the file the web saw: the old one goes to Recently Deleted.
        let ino = testing::write_file(&c, "note.txt", b"old");
        let seen = c.web_seen(ino).unwrap();
        let (ch, objs) = upload(&c, 3, &[], "note.txt", b"new", Some(seen));
        assert_eq!(apply(&c, &ch, &objs).unwrap(), WebApplied::Done);
        assert_eq!(read(&c, &["note.txt"]), b"new");
        assert_eq!(read(&c, &["Recently Deleted", "note.txt"]), b"old");

        // A delete of what the web saw: to Recently Deleted (a name there already taken
        // gives a conflict name).
        let seen = c
            .web_seen(c.lookup(ROOT_INO, b"note.txt").unwrap().ino)
            .unwrap();
        let del = change(4, &[], "note.txt", WebOp::Delete { seen });
        assert_eq!(apply(&c, &del, &[]).unwrap(), WebApplied::Done);
        assert!(!exists(&c, &["note.txt"]));
        assert_eq!(read(&c, &["Recently Deleted", "note.txt"]), b"old");
        assert_eq!(
            read(
                &c,
                &[
                    "Recently Deleted",
                    "note (conflict from web 2026-12-06).txt"
                ]
            ),
            b"new"
        );
        // Deleting Recently Deleted, or what is in it, does nothing.
        let rd = c.lookup(ROOT_INO, RECENTLY_DELETED).unwrap().ino;
        let del = change(
            5,
            &[],
            "Recently Deleted",
            WebOp::Delete {
                seen: c.web_seen(rd).unwrap(),
            },
        );
        assert!(matches!(
            apply(&c, &del, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        assert!(exists(&c, &["Recently Deleted", "note.txt"]));
    }

    #[test]
    fn the_devices_version_wins_and_the_webs_becomes_a_copy() {
        let c = cat();
        let ino = testing::write_file(&c, "plan.txt", b"v1");
        let seen = c.web_seen(ino).unwrap();
        // Edited on the device after the web saw it.
        c.write(ino, 0, b"v2 from the laptop", false).unwrap();
        let (ch, objs) = upload(&c, 1, &[], "plan.txt", b"from the web", Some(seen));
        let name = b"plan (conflict from web 2026-12-06).txt".to_vec();
        assert_eq!(
            apply(&c, &ch, &objs).unwrap(),
            WebApplied::ConflictCopy(name)
        );
        assert_eq!(read(&c, &["plan.txt"]), b"v2 from the laptop");
        assert_eq!(
            read(&c, &["plan (conflict from web 2026-12-06).txt"]),
            b"from the web"
        );
        // A delete of the file as it was: the edit stays.
        let del = change(2, &[], "plan.txt", WebOp::Delete { seen });
        assert!(matches!(
            apply(&c, &del, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        assert_eq!(read(&c, &["plan.txt"]), b"v2 from the laptop");
        // An upload without `replaces` onto a taken name, and a folder onto a file's name.
        let (ch, objs) = upload(&c, 3, &[], "plan.txt", b"another", None);
        assert!(matches!(
            apply(&c, &ch, &objs).unwrap(),
            WebApplied::ConflictCopy(_)
        ));
        let mk = change(4, &[], "plan.txt", WebOp::Mkdir);
        assert!(matches!(
            apply(&c, &mk, &[]).unwrap(),
            WebApplied::ConflictCopy(_)
        ));
        assert_eq!(read(&c, &["plan.txt"]), b"v2 from the laptop");
    }

    #[test]
    fn renames_and_moves_never_overwrite_or_loop() {
        let c = cat();
        let ino = testing::write_file(&c, "a.txt", b"A");
        let seen = c.web_seen(ino).unwrap();
        // Edited since the web saw it: a move keeps the edit.
        c.write(ino, 0, b"A2", false).unwrap();
        let mv = |seq, dir: &[&str], name: &str, seen, to_dir: &[&str], to: &str| {
            change(
                seq,
                dir,
                name,
                WebOp::Rename {
                    seen,
                    to_dir: to_dir.iter().map(|d| d.as_bytes().to_vec()).collect(),
                    to_name: to.as_bytes().to_vec(),
                },
            )
        };
        let ch = mv(1, &[], "a.txt", seen, &["Docs", "2026"], "b.txt");
        assert_eq!(apply(&c, &ch, &[]).unwrap(), WebApplied::Done);
        assert!(!exists(&c, &["a.txt"]));
        assert_eq!(read(&c, &["Docs", "2026", "b.txt"]), b"A2");
        // Replayed: the node is gone from there.
        assert!(matches!(
            apply(&c, &ch, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));

        // Onto a taken name: a conflict name, both kept.
        let other = testing::write_file(&c, "c.txt", b"C");
        let ch = mv(
            2,
            &[],
            "c.txt",
            c.web_seen(other).unwrap(),
            &["Docs", "2026"],
            "b.txt",
        );
        let name = b"b (conflict from web 2026-12-06).txt".to_vec();
        assert_eq!(apply(&c, &ch, &[]).unwrap(), WebApplied::ConflictCopy(name));
        assert_eq!(read(&c, &["Docs", "2026", "b.txt"]), b"A2");
        assert_eq!(
            read(
                &c,
                &["Docs", "2026", "b (conflict from web 2026-12-06).txt"]
            ),
            b"C"
        );

        // A folder into itself or below it, Recently Deleted, or a node that is not the
        // one the web saw: nothing.
        let docs = c.lookup(ROOT_INO, b"Docs").unwrap().ino;
        let docs_seen = c.web_seen(docs).unwrap();
        for to in [&["Docs"][..], &["Docs", "2026"], &["Docs", "new", "deeper"]] {
            let ch = mv(3, &[], "Docs", docs_seen, to, "x");
            assert!(
                matches!(apply(&c, &ch, &[]).unwrap(), WebApplied::Skipped(_)),
                "{to:?}"
            );
        }
        assert!(
            !exists(&c, &["Docs", "new"]),
            "no folder made for a refused move"
        );
        let ch = mv(
            4,
            &[],
            "Docs",
            Seen {
                ino: 999,
                ..docs_seen
            },
            &[],
            "Renamed",
        );
        assert!(matches!(
            apply(&c, &ch, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        let ghost = testing::write_file(&c, "gone.txt", b"G");
        let del = change(
            5,
            &[],
            "gone.txt",
            WebOp::Delete {
                seen: c.web_seen(ghost).unwrap(),
            },
        );
        apply(&c, &del, &[]).unwrap();
        let rd = c.lookup(ROOT_INO, RECENTLY_DELETED).unwrap().ino;
        let ch = mv(
            6,
            &[],
            "Recently Deleted",
            c.web_seen(rd).unwrap(),
            &["Docs"],
            "RD",
        );
        assert!(matches!(
            apply(&c, &ch, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        assert!(
            c.getxattr(rd, RECENTLY_DELETED_MARK).is_ok(),
            "the folder made for deletes is marked"
        );
        // No folder becomes Recently Deleted by a rename, nor by a new folder.
        c.rename(ROOT_INO, RECENTLY_DELETED, ROOT_INO, b"Old RD", 0)
            .unwrap();
        let ch = mv(9, &[], "Docs", docs_seen, &[], "Recently Deleted");
        assert!(matches!(
            apply(&c, &ch, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        let mk = change(10, &[], "Recently Deleted", WebOp::Mkdir);
        assert!(matches!(
            apply(&c, &mk, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        assert!(!exists(&c, &["Recently Deleted"]));
        c.rename(ROOT_INO, b"Old RD", ROOT_INO, RECENTLY_DELETED, 0)
            .unwrap();

        // A folder renamed where it is, with what is in it.
        let ch = mv(7, &[], "Docs", docs_seen, &[], "Papers");
        assert_eq!(apply(&c, &ch, &[]).unwrap(), WebApplied::Done);
        assert_eq!(read(&c, &["Papers", "2026", "b.txt"]), b"A2");
        // Nothing moves out of Recently Deleted, into it, or deeper in it: it is the
        // devices' own (only a delete, which checks what the web saw, puts things there).
        let seen = c.web_seen(ghost).unwrap();
        for (from, to) in [
            (&["Recently Deleted"][..], &[][..]),
            (&[], &["Recently Deleted"]),
            (&[], &["Recently Deleted", "deeper"]),
        ] {
            let name = if from.is_empty() {
                "Papers"
            } else {
                "gone.txt"
            };
            let ch = mv(8, from, name, seen, to, "x");
            assert_eq!(
                apply(&c, &ch, &[]).unwrap(),
                WebApplied::Skipped("Recently Deleted is the devices' own"),
                "{from:?} -> {to:?}"
            );
        }
        let mk = change(11, &["Recently Deleted", "gone.txt"], "sub", WebOp::Mkdir);
        assert!(matches!(
            apply(&c, &mk, &[]).unwrap(),
            WebApplied::Skipped(_)
        ));
        assert_eq!(read(&c, &["Recently Deleted", "gone.txt"]), b"G");
        assert!(exists(&c, &["Papers"]));
    }

    #[test]
    fn a_bad_part_leaves_the_tree_as_it_was() {
        let c = cat();
        let ino = testing::write_file(&c, "keep.txt", b"keep me");
        let seen = c.web_seen(ino).unwrap();
        let data = vec![7u8; PART_SIZE + 10];
        let (ch, mut objs) = upload(&c, 1, &[], "keep.txt", &data, Some(seen));
        let last = objs[1].len() - 1;
        objs[1][last] ^= 1;
        assert!(matches!(
            apply(&c, &ch, &objs),
            Err(VolError::Integrity { .. })
        ));
        assert_eq!(
            read(&c, &["keep.txt"]),
            b"keep me",
            "the replaced file came back"
        );
        let rd = c.lookup(ROOT_INO, RECENTLY_DELETED).unwrap().ino;
        assert!(
            c.readdir(rd).unwrap().1.is_empty(),
            "nothing left in Recently Deleted"
        );
        // A part of another upload (same bytes, other id) does not open either.
        let (other, other_objs) = upload(&c, 2, &[], "x", &data, None);
        assert!(c.open_web_part(&ch, 0, &other_objs[0]).is_err());
        assert!(c.open_web_part(&other, 0, &other_objs[0]).is_ok());
    }

    #[test]
    fn changes_open_only_where_they_were_sealed_and_web_seq_only_rises() {
        let c = cat();
        let mk = change(7, &[], "a", WebOp::Mkdir);
        let obj = c.seal_web_change(&mk).unwrap();
        assert_eq!(c.open_web_change(7, &obj).unwrap(), mk);
        assert!(
            c.open_web_change(8, &obj).is_err(),
            "another sequence number"
        );
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        assert!(
            testing::open(&store, 4).open_web_change(7, &obj).is_err(),
            "another category"
        );
        assert_eq!(c.web_seq(), 0);
        c.set_web_seq(7);
        c.set_web_seq(3);
        assert_eq!(c.web_seq(), 7);
        c.commit().unwrap();
        let head = c.store.get(&crate::format::names::head(3)).unwrap();
        assert_eq!(c.web_seq_of(&head), Some(7), "the head carries it");
    }
}
