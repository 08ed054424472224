//! Three-way merge of a category's tree: what this device committed since the head it
//! started from (base) is combined with what another device published meanwhile
//! (remote). Pure: records in, records out; `Category::sync_remote` does the I/O.
//!
//! The rules (docs/FORMAT.md §14, user's view in USER-GUIDE.md):
//! - A node changed on one side only takes that side's version; unchanged on both stays.
//! - A file, symlink or device node changed on both sides keeps the remote version in
//!   place, and the local version becomes a conflict copy next to it, named
//!   `NAME (conflict from DEVICE DATE).EXT`. Directories changed on both sides merge.
//! - Delete vs edit: the edit survives (with the directories it needs).
//! - Where a node lives (its names) merges the same way; moved on both sides to
//!   different places, the remote move wins. Two nodes claiming one name: the remote one
//!   keeps it, the local one gets a conflict name.
//! - A move into a directory deleted on the other side brings the directory back.
//! - A merge that would make a directory its own ancestor keeps the remote placement.
//! - Access times never make a conflict.
//!
//! Inode numbers of two devices never collide (each allocates from its own range), so
//! the same number on both sides is the same node.

use crate::format::record::{DirEntry, Payload, Record, Time};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::ROOT_INO;

pub(crate) type Records = HashMap<u64, Record>;
type Loc = BTreeSet<(u64, Vec<u8>)>;

/// The merged tree and what was decided.
pub(crate) struct Merged {
    pub records: Records,
    /// (conflict copy's new inode, inode whose local version it takes).
    pub copies: Vec<(u64, u64)>,
    /// One line per decision that was not a plain one-sided change (for the log).
    pub notes: Vec<String>,
}

/// Names of conflict copies: `NAME (conflict from DEVICE DATE).EXT`, shortened to fit.
pub(crate) struct ConflictNamer {
    pub device: String,
    pub date: String,
}

const NAME_MAX: usize = 255;

impl ConflictNamer {
    /// A name for the local version of `name` that `taken` does not know.
    pub fn name(&self, name: &[u8], taken: &dyn Fn(&[u8]) -> bool) -> Vec<u8> {
        // A device name is the user's: no `/` or NUL may reach a file name, and it is
        // cut so the whole tag (with a number) always fits.
        let mut device: String = self
            .device
            .chars()
            .map(|c| if c == '/' || c == '\0' { '-' } else { c })
            .collect();
        while device.len() > 64 {
            device.pop();
        }
        // The extension is what follows the last dot, unless the dot starts the name or
        // the "extension" is too long to be one.
        let split = name
            .iter()
            .rposition(|b| *b == b'.')
            .filter(|i| *i > 0 && name.len() - i <= 32);
        let (stem, ext) = match split {
            Some(i) => (&name[..i], &name[i..]),
            None => (name, &b""[..]),
        };
        for n in 1u32.. {
            let tag = if n == 1 {
                format!(" (conflict from {device} {})", self.date)
            } else {
                format!(" (conflict from {device} {} {n})", self.date)
            };
            let room = NAME_MAX.saturating_sub(tag.len() + ext.len());
            let mut cut = stem.len().min(room);
            // Never cut inside a UTF-8 sequence.
            while cut > 0 && cut < stem.len() && (stem[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            let mut out = stem[..cut].to_vec();
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(ext);
            out.truncate(NAME_MAX);
            if !taken(&out) {
                return out;
            }
        }
        unreachable!("u32 ran out of conflict numbers")
    }
}

fn locations(t: &Records) -> HashMap<u64, Loc> {
    let mut out: HashMap<u64, Loc> = HashMap::new();
    for (ino, r) in t {
        if let Payload::Dir { entries, .. } = &r.payload {
            for (name, e) in entries {
                out.entry(e.ino).or_default().insert((*ino, name.clone()));
            }
        }
    }
    out
}

/// Equal as far as a merge cares: everything but the derived fields (links, a
/// directory's entries and parent), the access time and the change time.
fn same_content(a: &Record, b: &Record) -> bool {
    let strip = |r: &Record| {
        let mut attr = r.attr.clone();
        attr.nlink = 0;
        attr.atime = Time::default();
        // A rename, link or unlink touches only ctime: not an edit of the node.
        attr.ctime = Time::default();
        let payload = match &r.payload {
            Payload::Dir { .. } => None,
            p => Some(p.clone()),
        };
        (attr, r.xattrs.clone(), payload)
    };
    strip(a) == strip(b)
}

fn is_dir(r: &Record) -> bool {
    matches!(r.payload, Payload::Dir { .. })
}

fn later(a: Time, b: Time) -> Time {
    if (a.sec, a.nsec) >= (b.sec, b.nsec) {
        a
    } else {
        b
    }
}

/// A directory changed on both sides: the side that changed its mode/owner/xattrs wins
/// those, times are the later of the two.
fn merge_dir(base: Option<&Record>, l: &Record, r: &Record) -> Record {
    let attrs_of = |x: &Record| {
        (
            x.attr.mode,
            x.attr.uid,
            x.attr.gid,
            x.attr.rdev,
            x.xattrs.clone(),
        )
    };
    let local_changed = base.is_none_or(|b| attrs_of(b) != attrs_of(l));
    let mut out = if local_changed { l.clone() } else { r.clone() };
    out.attr.atime = later(l.attr.atime, r.attr.atime);
    out.attr.mtime = later(l.attr.mtime, r.attr.mtime);
    out.attr.ctime = later(l.attr.ctime, r.attr.ctime);
    out
}

/// Merges `local` and `remote`, both descended from `base`. `alloc` hands out inode
/// numbers for conflict copies (from this device's range).
pub(crate) fn merge(
    base: &Records,
    local: &Records,
    remote: &Records,
    alloc: &mut dyn FnMut() -> u64,
    namer: &ConflictNamer,
) -> Merged {
    let mut m = Merge {
        trees: [base, local, remote],
        lb: locations(base),
        ll: locations(local),
        lr: locations(remote),
        out: HashMap::new(),
        place: HashMap::new(),
        from_local: HashSet::new(),
        copies: Vec::new(),
        notes: Vec::new(),
    };
    let mut inos: BTreeSet<u64> = BTreeSet::new();
    inos.extend(base.keys());
    inos.extend(local.keys());
    inos.extend(remote.keys());
    for ino in inos {
        m.node(ino, alloc);
    }
    m.name_copies(namer);
    m.restore_parents();
    m.break_cycles();
    m.one_per_name(namer);
    m.rebuild_links();
    Merged {
        records: m.out,
        copies: m.copies,
        notes: m.notes,
    }
}

/// One merge in progress: the three trees and where their nodes are, and what the
/// merged tree holds so far.
struct Merge<'a> {
    /// Base, local, remote.
    trees: [&'a Records; 3],
    lb: HashMap<u64, Loc>,
    ll: HashMap<u64, Loc>,
    lr: HashMap<u64, Loc>,
    out: Records,
    place: HashMap<u64, Loc>,
    /// Placements taken from the local side (they lose ties).
    from_local: HashSet<u64>,
    copies: Vec<(u64, u64)>,
    notes: Vec<String>,
}

fn loc(m: &HashMap<u64, Loc>, i: u64) -> Loc {
    m.get(&i).cloned().unwrap_or_default()
}

impl Merge<'_> {
    /// Decides one inode: which version of its record, and where it is.
    fn node(&mut self, ino: u64, alloc: &mut dyn FnMut() -> u64) {
        let [base, local, remote] = self.trees;
        let b = base.get(&ino);
        if ino == ROOT_INO {
            let (Some(l), Some(r)) = (local.get(&ino), remote.get(&ino)) else {
                if let Some(x) = local.get(&ino).or(remote.get(&ino)) {
                    self.out.insert(ino, x.clone());
                }
                return;
            };
            self.out.insert(ino, merge_dir(b, l, r));
            return;
        }
        // A node without a name on one side is deleted there (or only held open).
        let l = local
            .get(&ino)
            .filter(|_| self.ll.get(&ino).is_some_and(|s| !s.is_empty()));
        let r = remote
            .get(&ino)
            .filter(|_| self.lr.get(&ino).is_some_and(|s| !s.is_empty()));
        let orphan = local.get(&ino).filter(|_| l.is_none());
        match (l, r) {
            (None, None) => {
                if let Some(o) = orphan {
                    // Unlinked here but still open: stays until closed.
                    self.out.insert(ino, o.clone());
                }
            }
            (None, Some(r)) => {
                // A move is an edit too: a node moved on one side (a file restored out
                // of Recently Deleted while another device empties it) survives a delete.
                let moved = b.is_some() && loc(&self.lb, ino) != loc(&self.lr, ino);
                let edited = moved || b.is_none_or(|b| !same_content(r, b));
                if b.is_none() || edited {
                    if b.is_some() {
                        self.notes.push(format!(
                            "inode {ino}: deleted here, edited on the other device: the edit stays"
                        ));
                    }
                    self.out.insert(ino, r.clone());
                    self.place.insert(ino, loc(&self.lr, ino));
                } else if let Some(o) = orphan {
                    self.out.insert(ino, o.clone());
                }
            }
            (Some(l), None) => {
                let moved = b.is_some() && loc(&self.lb, ino) != loc(&self.ll, ino);
                let edited = moved || b.is_none_or(|b| !same_content(l, b));
                if b.is_none() || edited {
                    if b.is_some() {
                        self.notes.push(format!(
                            "inode {ino}: deleted on the other device, edited here: the edit stays"
                        ));
                    }
                    self.out.insert(ino, l.clone());
                    self.place.insert(ino, loc(&self.ll, ino));
                    self.from_local.insert(ino);
                }
            }
            (Some(l), Some(r)) => {
                let rec = self.both_sides(ino, b, l, r, alloc);
                self.out.insert(ino, rec);
                self.place_both_sides(ino);
            }
        }
    }

    /// The record of a node present on both sides: an unchanged side takes the
    /// other's; directories merge; two edits keep the remote's and make ours a copy.
    fn both_sides(
        &mut self,
        ino: u64,
        b: Option<&Record>,
        l: &Record,
        r: &Record,
        alloc: &mut dyn FnMut() -> u64,
    ) -> Record {
        let l_same = b.is_some_and(|b| same_content(l, b));
        let r_same = b.is_some_and(|b| same_content(r, b));
        // Times that no edit decides are the later of the two: a move only sets ctime,
        // and Recently Deleted counts its 30 days from it.
        if l_same {
            let mut x = r.clone();
            x.attr.atime = later(l.attr.atime, r.attr.atime);
            x.attr.ctime = later(l.attr.ctime, r.attr.ctime);
            x
        } else if r_same || same_content(l, r) {
            let mut x = l.clone();
            x.attr.atime = later(l.attr.atime, r.attr.atime);
            x.attr.ctime = later(l.attr.ctime, r.attr.ctime);
            x
        } else if is_dir(l) && is_dir(r) {
            merge_dir(b, l, r)
        } else {
            // Both edited: the remote version stays, ours becomes a copy.
            let new = alloc();
            self.out.insert(new, l.clone());
            self.copies.push((new, ino));
            self.notes.push(format!(
                "inode {ino}: edited on both devices: kept the other device's version, \
                 this device's is the conflict copy (inode {new})"
            ));
            r.clone()
        }
    }

    /// Where a node present on both sides goes: the side that moved it, or the remote's
    /// move when both did.
    fn place_both_sides(&mut self, ino: u64) {
        let empty = Loc::new();
        let (pb, pl, pr) = (
            self.lb.get(&ino).unwrap_or(&empty),
            self.ll.get(&ino).unwrap_or(&empty),
            self.lr.get(&ino).unwrap_or(&empty),
        );
        if pl == pb || pl == pr {
            self.place.insert(ino, pr.clone());
        } else if pr == pb {
            self.place.insert(ino, pl.clone());
            self.from_local.insert(ino);
        } else {
            self.notes.push(format!(
                "inode {ino}: moved or renamed on both devices: the other device's move wins"
            ));
            self.place.insert(ino, pr.clone());
        }
    }

    /// Conflict copies sit next to the original, under conflict names.
    fn name_copies(&mut self, namer: &ConflictNamer) {
        for (new, ino) in self.copies.clone() {
            let mut names = Loc::new();
            for (p, name) in loc(&self.ll, ino) {
                let taken = |n: &[u8]| {
                    self.place
                        .values()
                        .chain(std::iter::once(&names))
                        .any(|s| s.contains(&(p, n.to_vec())))
                };
                let cn = namer.name(&name, &taken);
                names.insert((p, cn));
            }
            self.place.insert(new, names);
            self.from_local.insert(new);
        }
    }

    /// Parents deleted on one side while the other put something in them come back.
    fn restore_parents(&mut self) {
        let [base, local, remote] = self.trees;
        loop {
            let missing: BTreeSet<u64> = self
                .place
                .values()
                .flatten()
                .map(|(p, _)| *p)
                .filter(|p| !self.out.contains_key(p))
                .collect();
            if missing.is_empty() {
                break;
            }
            for p in missing {
                let rec = local
                    .get(&p)
                    .or(remote.get(&p))
                    .or(base.get(&p))
                    .filter(|r| is_dir(r))
                    .cloned();
                match rec {
                    Some(rec) => {
                        self.notes.push(format!(
                            "directory inode {p}: deleted on one device, used on the other: kept"
                        ));
                        self.out.insert(p, rec);
                        let at = [&self.lr, &self.ll, &self.lb]
                            .into_iter()
                            .map(|m| loc(m, p))
                            .find(|s| !s.is_empty())
                            .unwrap_or_default();
                        self.place.insert(p, at);
                    }
                    None => {
                        // No directory by that number anywhere: hang the children at the
                        // root.
                        for s in self.place.values_mut() {
                            let moved: Vec<_> =
                                s.iter().filter(|(q, _)| *q == p).cloned().collect();
                            for m in moved {
                                s.remove(&m);
                                s.insert((ROOT_INO, m.1));
                            }
                        }
                    }
                }
            }
        }
    }

    /// No directory may end up inside itself: local moves that close a loop are undone.
    fn break_cycles(&mut self) {
        for _ in 0..64 {
            let Some(cycle) = find_cycle(&self.out, &self.place) else {
                break;
            };
            let undo = cycle.iter().copied().find(|d| self.from_local.contains(d));
            match undo {
                Some(d) => {
                    self.notes.push(format!(
                        "directory inode {d}: its move would put it inside itself: undone"
                    ));
                    let back = [&self.lr, &self.lb]
                        .into_iter()
                        .map(|m| loc(m, d))
                        .find(|s| !s.is_empty() && s.iter().all(|(p, _)| self.out.contains_key(p)))
                        .unwrap_or_else(|| {
                            let name = format!("recovered directory {d}").into_bytes();
                            BTreeSet::from([(ROOT_INO, name)])
                        });
                    self.place.insert(d, back);
                    self.from_local.remove(&d);
                }
                None => {
                    // Cannot happen with a consistent remote tree; break the loop at the
                    // root.
                    let d = cycle[0];
                    let name = format!("recovered directory {d}").into_bytes();
                    self.place.insert(d, BTreeSet::from([(ROOT_INO, name)]));
                }
            }
        }
    }

    /// One node per name: the remote (or older) claimant keeps it.
    fn one_per_name(&mut self, namer: &ConflictNamer) {
        let mut claims: BTreeMap<(u64, Vec<u8>), Vec<u64>> = BTreeMap::new();
        for (ino, s) in &self.place {
            for k in s {
                claims.entry(k.clone()).or_default().push(*ino);
            }
        }
        for ((p, name), mut who) in claims {
            if who.len() < 2 {
                continue;
            }
            who.sort_by_key(|i| (self.from_local.contains(i), *i));
            for loser in &who[1..] {
                let taken = |n: &[u8]| self.place.values().any(|s| s.contains(&(p, n.to_vec())));
                let cn = namer.name(&name, &taken);
                self.notes.push(format!(
                    "name {:?} in directory inode {p}: taken on both devices: this device's is now {:?}",
                    String::from_utf8_lossy(&name),
                    String::from_utf8_lossy(&cn)
                ));
                if let Some(s) = self.place.get_mut(loser) {
                    s.remove(&(p, name.clone()));
                    s.insert((p, cn));
                }
            }
        }
    }

    /// Rebuilds the derived fields from the placements: entries, parents, link counts.
    fn rebuild_links(&mut self) {
        let out = &mut self.out;
        for r in out.values_mut() {
            if let Payload::Dir { entries, .. } = &mut r.payload {
                entries.clear();
            }
        }
        let mut subdirs: HashMap<u64, u32> = HashMap::new();
        let mut links: Vec<(u64, u64, Vec<u8>, u8, bool)> = Vec::new();
        for (ino, s) in &self.place {
            let Some(r) = out.get(ino) else { continue };
            let kind = ((r.attr.mode & libc::S_IFMT) >> 12) as u8;
            for (p, name) in s {
                links.push((*p, *ino, name.clone(), kind, is_dir(r)));
            }
        }
        for (p, ino, name, kind, dir) in links {
            if let Some(Record {
                payload: Payload::Dir { entries, .. },
                ..
            }) = out.get_mut(&p)
            {
                entries.insert(name, DirEntry { ino, kind });
                if dir {
                    *subdirs.entry(p).or_default() += 1;
                }
            }
            if dir
                && let Some(Record {
                    payload: Payload::Dir { parent, .. },
                    ..
                }) = out.get_mut(&ino)
            {
                *parent = p;
            }
        }
        for (ino, r) in out.iter_mut() {
            r.attr.nlink = if is_dir(r) {
                // A directory with no place (removed here, kept while open) has no link,
                // so closing it frees it.
                if *ino == ROOT_INO || self.place.contains_key(ino) {
                    2 + subdirs.get(ino).copied().unwrap_or(0)
                } else {
                    0
                }
            } else {
                self.place.get(ino).map(|s| s.len() as u32).unwrap_or(0)
            };
        }
    }
}

/// A directory that is its own ancestor, as the list of directories on the loop.
fn find_cycle(out: &Records, place: &HashMap<u64, Loc>) -> Option<Vec<u64>> {
    for (&d, r) in out {
        if !is_dir(r) || d == ROOT_INO {
            continue;
        }
        let mut seen = vec![d];
        let mut cur = d;
        while let Some(p) = place
            .get(&cur)
            .and_then(|s| s.iter().next())
            .map(|(p, _)| *p)
        {
            if p == ROOT_INO {
                break;
            }
            if let Some(at) = seen.iter().position(|x| *x == p) {
                return Some(seen[at..].to_vec());
            }
            seen.push(p);
            cur = p;
            if seen.len() > out.len() {
                break;
            }
        }
    }
    None
}

#[cfg(test)]
mod props;
#[cfg(test)]
pub(super) mod tests;
