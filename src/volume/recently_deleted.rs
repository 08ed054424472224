//! The 30 days of Recently Deleted (issue 12): what the web deletes or overwrites moves to
//! that folder at a category's root, never out of the tree; a device empties it of what
//! has been there longer than the time kept, as the user would, signing it like any edit.
//! When an entry went there is its ctime: a move sets it, and the merge keeps the later
//! one. Only the folder a device made for the web bears the mark that lets it be
//! emptied: a user's own folder of that name never is.

use super::web_inbox::{RECENTLY_DELETED, RECENTLY_DELETED_MARK};
use super::{Category, ROOT_INO, VolError, VolResult};
use std::collections::HashSet;

/// How long an entry stays in Recently Deleted: 30 days.
pub const KEEP_SECS: i64 = 30 * 24 * 3600;

impl Category {
    /// Removes, with all they hold, the entries of Recently Deleted whose ctime is
    /// `keep` seconds or more before `now` (Unix seconds); returns how many. Only the
    /// folder a device made for the web's deletes (it bears the mark) is ever emptied.
    pub fn purge_recently_deleted(&self, now: i64, keep: i64) -> VolResult<usize> {
        let rd = match self.lookup(ROOT_INO, RECENTLY_DELETED) {
            Ok(n) if n.attr.mode & libc::S_IFMT == libc::S_IFDIR => n.ino,
            Ok(_) | Err(VolError::NotFound) => return Ok(0),
            Err(e) => return Err(e),
        };
        match self.getxattr(rd, RECENTLY_DELETED_MARK) {
            Ok(_) => {}
            Err(VolError::NoAttr) => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut purged = 0;
        for (name, ino, _) in self.readdir(rd)?.1 {
            // Anything in it changed (or moved in) since counts: an old folder with a new
            // node deep inside waits for the new node's 30 days.
            if self.newest_ctime(ino)?.saturating_add(keep) > now {
                continue;
            }
            self.remove_tree(rd, &name)?;
            purged += 1;
        }
        Ok(purged)
    }

    /// The latest ctime of `ino` and all below it, in seconds.
    fn newest_ctime(&self, ino: u64) -> VolResult<i64> {
        let mut newest = i64::MIN;
        let mut seen = HashSet::new();
        let mut stack = vec![ino];
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue; // a hard link met twice, or a loop no tree should have
            }
            let n = self.getattr(i)?;
            newest = newest.max(n.attr.ctime.sec);
            if n.attr.mode & libc::S_IFMT == libc::S_IFDIR {
                stack.extend(self.readdir(i)?.1.into_iter().map(|(_, c, _)| c));
            }
        }
        Ok(newest)
    }

    /// Removes `name` of `parent`, and all below it if it is a folder (depth first, with
    /// a stack of its own: a deep tree cannot overflow the thread's; a folder met twice
    /// is a loop no tree should have, and stops it).
    fn remove_tree(&self, parent: u64, name: &[u8]) -> VolResult<()> {
        let mut stack = vec![(parent, name.to_vec(), false)];
        let mut opened = HashSet::new();
        while let Some((p, n, emptied)) = stack.pop() {
            let node = self.lookup(p, &n)?;
            if node.attr.mode & libc::S_IFMT != libc::S_IFDIR {
                self.unlink(p, &n)?;
                // A hard link elsewhere keeps the node, with one link fewer.
                self.mark_stale([
                    super::stale::entry(p, &n),
                    super::Stale::Node {
                        ino: node.ino,
                        data: false,
                    },
                ]);
            } else if emptied {
                self.rmdir(p, &n)?;
                self.mark_stale([super::stale::entry(p, &n)]);
            } else {
                if !opened.insert(node.ino) {
                    return Err(VolError::Integrity {
                        what: "Recently Deleted".into(),
                        why: "a folder inside itself".into(),
                    });
                }
                let children = self.readdir(node.ino)?.1;
                stack.push((p, n, true));
                stack.extend(children.into_iter().map(|(c, _, _)| (node.ino, c, false)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::Time;
    use crate::store::{MemStore, Store};
    use crate::volume::{NewNode, SetAttr, testing};
    use std::sync::Arc;

    fn node(c: &Category, parent: u64, name: &str, kind: u32) -> u64 {
        let n = NewNode {
            mode: kind | 0o755,
            rdev: 0,
            uid: 0,
            gid: 0,
            target: None,
            umask: 0,
            inherit_acl: true,
        };
        c.create_node(parent, name.as_bytes(), n).unwrap().ino
    }

    #[test]
    fn only_what_was_deleted_long_enough_ago_goes() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = testing::open(&store, 3);
        assert_eq!(c.purge_recently_deleted(i64::MAX, KEEP_SECS).unwrap(), 0);
        let rd = node(&c, ROOT_INO, "Recently Deleted", libc::S_IFDIR);
        // A folder with a subfolder and files, and a file, moved in now.
        testing::write_file(&c, "old.txt", b"old");
        let dir = node(&c, ROOT_INO, "Trip", libc::S_IFDIR);
        let sub = node(&c, dir, "day 1", libc::S_IFDIR);
        for (d, n) in [(dir, "a.jpg"), (sub, "b.jpg"), (sub, "c.jpg")] {
            let f = node(&c, d, n, libc::S_IFREG);
            c.write(f, 0, b"photo", false).unwrap();
        }
        c.rename(ROOT_INO, b"old.txt", rd, b"old.txt", 0).unwrap();
        c.rename(ROOT_INO, b"Trip", rd, b"Trip", 0).unwrap();
        // The two moves may fall on either side of a second.
        let t_old = c
            .newest_ctime(c.lookup(rd, b"old.txt").unwrap().ino)
            .unwrap();
        let t_trip = c.newest_ctime(c.lookup(rd, b"Trip").unwrap().ino).unwrap();
        let (first, moved) = (t_old.min(t_trip), t_old.max(t_trip));
        testing::write_file(&c, "kept.txt", b"kept");

        assert_eq!(
            c.purge_recently_deleted(moved + KEEP_SECS + 5, KEEP_SECS)
                .unwrap(),
            0,
            "a user's own folder of that name, unmarked, is never emptied"
        );
        c.setxattr(rd, RECENTLY_DELETED_MARK, b"kept 30 days", 0)
            .unwrap();
        assert_eq!(
            c.purge_recently_deleted(first + KEEP_SECS - 1, KEEP_SECS)
                .unwrap(),
            0,
            "a second short of 30 days"
        );
        assert_eq!(c.readdir(rd).unwrap().1.len(), 2);
        // Something newer deep inside an old entry: the entry waits for its 30 days.
        let day1 = c
            .lookup(c.lookup(rd, b"Trip").unwrap().ino, b"day 1")
            .unwrap()
            .ino;
        let late = node(&c, day1, "late.jpg", libc::S_IFREG);
        let later = moved + 1000;
        c.setattr(
            late,
            SetAttr {
                ctime: Some(Time {
                    sec: later,
                    nsec: 0,
                }),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.purge_recently_deleted(moved + KEEP_SECS + 5, KEEP_SECS)
                .unwrap(),
            1,
            "only old.txt: Trip holds something newer"
        );
        assert_eq!(
            c.purge_recently_deleted(later + KEEP_SECS, KEEP_SECS)
                .unwrap(),
            1
        );
        assert!(c.readdir(rd).unwrap().1.is_empty());
        assert!(
            c.lookup(ROOT_INO, b"kept.txt").is_ok(),
            "outside it, nothing goes"
        );
        c.commit().unwrap();
    }
}
