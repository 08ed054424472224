//! Walks categories through the volume API and writes them as one tar stream: directories,
//! regular files (content streamed 1 MiB at a time), symlinks, hard links, FIFOs and device
//! nodes, with mode, owner, mtime (nanoseconds in PAX `mtime`) and `user.*` xattrs (PAX
//! `SCHILY.xattr.*`). Paths are `<Category>/<path>`.

use super::ExportError;
use crate::format::export::pax_time;
use crate::format::record::Attr;
use crate::volume::{Category, NodeInfo, ROOT_INO, VolError};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::{Builder, EntryType, Header};

/// Bytes of file content read from a category per call: large enough to decrypt several
/// chunks per call, small enough to bound memory whatever the file size.
const READ_SIZE: u32 = 1 << 20;
/// Longest symlink target the tar header holds as is; longer ones go in PAX `linkpath`.
const TAR_LINK_FIELD: usize = 100;

/// One category to export.
pub struct Source<'a> {
    pub name: &'a str,
    pub category: &'a Category,
}

/// What went into the archive, and what could not.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub specials: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Entries or attributes a tar archive cannot hold, each with the reason.
    pub skipped: Vec<String>,
}

/// A read failure inside a file's content, carried through the tar builder's `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
struct ContentFailure {
    path: String,
    source: VolError,
}

/// Writes every source as a tar stream into `out` and returns `out` once the end-of-archive
/// blocks are written. `progress` gets the bytes of file content as they are read.
pub fn write_tar<W: Write>(
    out: W,
    sources: &[Source],
    progress: &dyn Fn(u64),
) -> Result<(W, WriteReport), ExportError> {
    let mut b = Builder::new(out);
    let mut report = WriteReport::default();
    for s in sources {
        Walk {
            b: &mut b,
            cat: s.category,
            report: &mut report,
            progress,
        }
        .category(s.name)?;
    }
    let out = b.into_inner().map_err(ExportError::Write)?;
    Ok((out, report))
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

struct Walk<'a, W: Write> {
    b: &'a mut Builder<W>,
    cat: &'a Category,
    report: &'a mut WriteReport,
    progress: &'a dyn Fn(u64),
}

impl<W: Write> Walk<'_, W> {
    fn vol<T>(&self, path: &[u8], r: Result<T, VolError>) -> Result<T, ExportError> {
        r.map_err(|source| ExportError::Volume {
            path: show(path),
            source,
        })
    }

    /// Depth-first walk in tar order: a directory's entry is followed at once by its
    /// whole content (GNU tar sets a directory's times once the next entry is outside it,
    /// so any other order loses them). An explicit stack of listings, not recursion:
    /// trees can be deep.
    fn category(&mut self, name: &str) -> Result<(), ExportError> {
        let root_path = name.as_bytes().to_vec();
        let root = self.vol(&root_path, self.cat.getattr(ROOT_INO))?;
        self.directory(&root_path, &root)?;
        // First archive path of each multiply-linked inode, for hard link entries.
        let mut linked: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut dirs_seen: HashSet<u64> = HashSet::from([ROOT_INO]);
        let (_, listing) = self.vol(&root_path, self.cat.readdir(ROOT_INO))?;
        let mut stack = vec![(root_path, listing.into_iter())];
        while let Some((dir_path, entries)) = stack.last_mut() {
            let Some((name, ino, _)) = entries.next() else {
                stack.pop();
                continue;
            };
            let mut path = dir_path.clone();
            path.push(b'/');
            path.extend_from_slice(&name);
            let info = self.vol(&path, self.cat.getattr(ino))?;
            let fmt = info.attr.mode & libc::S_IFMT;
            if fmt == libc::S_IFDIR {
                // Directories cannot be hard-linked, so a second sighting is a cycle in a
                // damaged tree; following it would never end.
                if !dirs_seen.insert(ino) {
                    return Err(ExportError::Volume {
                        path: show(&path),
                        source: VolError::Integrity {
                            what: format!("directory inode {ino}"),
                            why: "it appears twice in the tree".into(),
                        },
                    });
                }
                self.directory(&path, &info)?;
                let (_, listing) = self.vol(&path, self.cat.readdir(ino))?;
                stack.push((path, listing.into_iter()));
                continue;
            }
            if info.attr.nlink > 1
                && let Some(first) = linked.get(&ino)
            {
                self.hard_link(&path, first, &info.attr)?;
                continue;
            }
            let written = match fmt {
                libc::S_IFREG => self.file(&path, &info)?,
                libc::S_IFLNK => self.symlink(&path, &info)?,
                libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK => self.special(&path, &info)?,
                libc::S_IFSOCK => {
                    self.report.skipped.push(format!(
                        "{}: a socket (tar cannot hold sockets)",
                        show(&path)
                    ));
                    false
                }
                _ => {
                    self.report
                        .skipped
                        .push(format!("{}: unknown file type {fmt:#o}", show(&path)));
                    false
                }
            };
            if written && info.attr.nlink > 1 {
                linked.insert(ino, path);
            }
        }
        Ok(())
    }

    /// A header with the attributes every entry carries (owner, permission bits, whole
    /// seconds of mtime; times before 1970 are 0 here and exact in PAX).
    fn header(attr: &Attr, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(attr.mode & 0o7777);
        h.set_uid(attr.uid as u64);
        h.set_gid(attr.gid as u64);
        h.set_mtime(attr.mtime.sec.max(0) as u64);
        h.set_size(0);
        h
    }

    /// Writes the PAX record that precedes an entry: exact mtime, xattrs, and a long
    /// symlink target. Nothing when the plain header says it all.
    fn pax(
        &mut self,
        path: &[u8],
        ino: u64,
        attr: &Attr,
        linkpath: Option<&[u8]>,
    ) -> Result<(), ExportError> {
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        if attr.mtime.nsec != 0 || attr.mtime.sec < 0 {
            records.push((
                "mtime".into(),
                pax_time(attr.mtime.sec, attr.mtime.nsec).into_bytes(),
            ));
        }
        if let Some(l) = linkpath {
            records.push(("linkpath".into(), l.to_vec()));
        }
        for name in self.vol(path, self.cat.listxattr(ino))? {
            let value = self.vol(path, self.cat.getxattr(ino, &name))?;
            // A PAX key is text up to '='; a name that is not cannot be written.
            match std::str::from_utf8(&name) {
                Ok(n) if !n.contains('=') && !n.contains('\0') && !n.contains('\n') => {
                    records.push((format!("SCHILY.xattr.{n}"), value));
                }
                _ => self.report.skipped.push(format!(
                    "{}: extended attribute {:?} (its name cannot be written in a tar header)",
                    show(path),
                    show(&name)
                )),
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(ExportError::Write)
    }

    fn directory(&mut self, path: &[u8], info: &NodeInfo) -> Result<(), ExportError> {
        self.pax(path, info.ino, &info.attr, None)?;
        let mut h = Self::header(&info.attr, EntryType::Directory);
        let mut p = path.to_vec();
        p.push(b'/');
        self.b
            .append_data(&mut h, as_path(&p), io::empty())
            .map_err(ExportError::Write)?;
        self.report.directories += 1;
        Ok(())
    }

    fn file(&mut self, path: &[u8], info: &NodeInfo) -> Result<bool, ExportError> {
        self.pax(path, info.ino, &info.attr, None)?;
        let mut h = Self::header(&info.attr, EntryType::Regular);
        h.set_size(info.size);
        let reader = Content {
            cat: self.cat,
            ino: info.ino,
            path,
            pos: 0,
            size: info.size,
            buf: Vec::new(),
            at: 0,
            progress: self.progress,
        };
        if let Err(e) = self.b.append_data(&mut h, as_path(path), reader) {
            if e.get_ref()
                .is_some_and(|i| i.downcast_ref::<ContentFailure>().is_some())
            {
                if let Some(inner) = e.into_inner()
                    && let Ok(f) = inner.downcast::<ContentFailure>()
                {
                    return Err(ExportError::Volume {
                        path: f.path,
                        source: f.source,
                    });
                }
                return Err(ExportError::Write(io::Error::other("reading file content")));
            }
            return Err(ExportError::Write(e));
        }
        self.report.files += 1;
        self.report.bytes += info.size;
        Ok(true)
    }

    fn symlink(&mut self, path: &[u8], info: &NodeInfo) -> Result<bool, ExportError> {
        let target = self.vol(path, self.cat.readlink(info.ino))?;
        if target.is_empty() {
            self.report
                .skipped
                .push(format!("{}: a symlink with an empty target", show(path)));
            return Ok(false);
        }
        // The header field holds the target byte for byte; the builder's own link setter
        // would normalise it (drop "./", merge "//").
        let fits = target.len() <= TAR_LINK_FIELD && !target.contains(&0);
        self.pax(path, info.ino, &info.attr, (!fits).then_some(&target[..]))?;
        let mut h = Self::header(&info.attr, EntryType::Symlink);
        if fits {
            h.set_link_name_literal(&target)
                .map_err(ExportError::Write)?;
        }
        self.b
            .append_data(&mut h, as_path(path), io::empty())
            .map_err(ExportError::Write)?;
        self.report.symlinks += 1;
        Ok(true)
    }

    fn special(&mut self, path: &[u8], info: &NodeInfo) -> Result<bool, ExportError> {
        self.pax(path, info.ino, &info.attr, None)?;
        let kind = match info.attr.mode & libc::S_IFMT {
            libc::S_IFIFO => EntryType::Fifo,
            libc::S_IFCHR => EntryType::Char,
            _ => EntryType::Block,
        };
        let mut h = Self::header(&info.attr, kind);
        if kind != EntryType::Fifo {
            let dev = info.attr.rdev as libc::dev_t;
            h.set_device_major(libc::major(dev))
                .map_err(ExportError::Write)?;
            h.set_device_minor(libc::minor(dev))
                .map_err(ExportError::Write)?;
        }
        self.b
            .append_data(&mut h, as_path(path), io::empty())
            .map_err(ExportError::Write)?;
        self.report.specials += 1;
        Ok(true)
    }

    /// A later name of an inode already in the archive: a tar hard link to the first name.
    fn hard_link(&mut self, path: &[u8], first: &[u8], attr: &Attr) -> Result<(), ExportError> {
        let mut h = Self::header(attr, EntryType::Link);
        self.b
            .append_link(&mut h, as_path(path), as_path(first))
            .map_err(ExportError::Write)?;
        self.report.hard_links += 1;
        Ok(())
    }
}

/// A file's content as a `Read`, fetched from the category `READ_SIZE` bytes at a time.
struct Content<'a> {
    cat: &'a Category,
    ino: u64,
    path: &'a [u8],
    pos: u64,
    size: u64,
    buf: Vec<u8>,
    at: usize,
    progress: &'a dyn Fn(u64),
}

impl Read for Content<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size || out.is_empty() {
                return Ok(0);
            }
            let want = (self.size - self.pos).min(READ_SIZE as u64) as u32;
            self.cat
                .read_into(self.ino, self.pos, want, &mut self.buf)
                .map_err(|source| {
                    io::Error::other(ContentFailure {
                        path: show(self.path),
                        source,
                    })
                })?;
            if self.buf.is_empty() {
                // The header already promised `size` bytes; a short file would shift every
                // entry after it.
                return Err(io::Error::other(ContentFailure {
                    path: show(self.path),
                    source: VolError::Integrity {
                        what: format!("inode {}", self.ino),
                        why: "the file is shorter than its recorded size".into(),
                    },
                }));
            }
            self.pos += self.buf.len() as u64;
            self.at = 0;
            (self.progress)(self.buf.len() as u64);
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
