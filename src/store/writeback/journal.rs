//! The upload journal: objects written locally but not yet in the remote store, one
//! fsync'd file each, so a write returns at local speed and survives a crash until the
//! uploader has sent it. Byte layout: docs/FORMAT.md §13.
//!
//! Pending objects are queued by sequence number (`objects/<seq>`). A category head is a
//! slot (`heads/<name>.<seq>`): a newer head replaces the older one, keeping the remote
//! version it was based on, which is what the deferred compare-and-swap is checked
//! against. Each write is a new file, so a reader never sees one change under it.

use crate::format::journal;
use crate::store::{Etag, MAX_NAME_LEN, StoreError, check_name};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One journaled object (its bytes stay on disk).
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub name: String,
    /// Heads only: the remote version this head replaces (`None`: there must be none).
    pub base: Option<Option<Etag>>,
    /// Length of the object's bytes.
    pub len: u64,
    /// Where the object's bytes start in the file.
    pub data_offset: u64,
    pub file: PathBuf,
}

impl Entry {
    pub fn is_head(&self) -> bool {
        self.base.is_some()
    }
}

pub struct Journal {
    objects: PathBuf,
    heads: PathBuf,
    bad: PathBuf,
}

fn io_err(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io {
        name: format!("journal {what}"),
        source: e,
    }
}

/// A full local disk is the store being full for the writer: ENOSPC, not EIO.
fn write_err(name: &str, e: std::io::Error) -> StoreError {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        StoreError::Full(format!("journal, writing {name}"))
    } else {
        io_err(name, e)
    }
}

fn slot_file(name: &str) -> String {
    name.replace('/', "~")
}

impl Journal {
    /// Opens (creating) the journal under `dir` and returns what is queued in it, in
    /// sequence order. A file whose header does not parse or whose length is wrong is
    /// moved to `bad/` and reported, never silently dropped.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Entry>, Vec<String>), StoreError> {
        let j = Journal {
            objects: dir.join("objects"),
            heads: dir.join("heads"),
            bad: dir.join("bad"),
        };
        for d in [&j.objects, &j.heads] {
            std::fs::create_dir_all(d).map_err(|e| io_err("directory", e))?;
        }
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for d in [&j.objects, &j.heads] {
            for ent in std::fs::read_dir(d).map_err(|e| io_err("directory", e))? {
                let ent = ent.map_err(|e| io_err("directory", e))?;
                let path = ent.path();
                let fname = ent.file_name().to_string_lossy().into_owned();
                if fname.starts_with("TMP.") {
                    // A write that never completed (its put never returned), unless it is
                    // recent: then another process (the daemon) may be writing it now.
                    if stale(&ent) {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                }
                match read_header(&path) {
                    Ok(e) => entries.push(e),
                    Err(why) => {
                        problems.push(format!("{}: {why}", path.display()));
                        j.quarantine(&path);
                    }
                }
            }
        }
        entries.sort_by_key(|e| e.seq);
        Ok((j, entries, problems))
    }

    fn quarantine(&self, path: &Path) {
        let _ = std::fs::create_dir_all(&self.bad);
        if let Some(f) = path.file_name() {
            let _ = std::fs::rename(path, self.bad.join(f));
        }
    }

    /// Durably queues an object (or replaces the head slot of `name`).
    pub fn write(
        &self,
        seq: u64,
        name: &str,
        base: Option<Option<&Etag>>,
        data: &[u8],
    ) -> Result<Entry, StoreError> {
        let (dir, file) = match base {
            None => (&self.objects, format!("{seq:016x}")),
            Some(_) => (&self.heads, format!("{}.{seq:016x}", slot_file(name))),
        };
        let head = journal::encode_header(seq, name, base, data.len() as u64);
        let tmp = dir.join(format!("TMP.{}.{seq}", std::process::id()));
        let dest = dir.join(&file);
        let res = (|| {
            let mut f = File::create(&tmp)?;
            let mut h = blake3::Hasher::new();
            h.update(&head);
            h.update(data);
            f.write_all(&head)?;
            f.write_all(data)?;
            f.write_all(h.finalize().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            File::open(dir)?.sync_all()
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(write_err(name, e));
        }
        Ok(Entry {
            seq,
            name: name.to_string(),
            base: base.map(|b| b.copied()),
            len: data.len() as u64,
            data_offset: head.len() as u64,
            file: dest,
        })
    }

    /// The object's bytes, checked against the entry's checksum (a torn or rotted journal
    /// file must never be uploaded as if it were the object).
    pub fn read(&self, e: &Entry) -> Result<Vec<u8>, StoreError> {
        let all = std::fs::read(&e.file).map_err(|x| io_err(&e.name, x))?;
        let body_end = e.data_offset as usize + e.len as usize;
        if all.len() != body_end + 32
            || blake3::hash(&all[..body_end]).as_bytes() != &all[body_end..]
        {
            self.quarantine(&e.file);
            return Err(StoreError::Io {
                name: format!("journal {}", e.name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "journal file {} fails its checksum (moved to journal/bad)",
                        e.file.display()
                    ),
                ),
            });
        }
        Ok(all[e.data_offset as usize..body_end].to_vec())
    }

    /// Bytes of the object, for a read served from the journal (the volume checks them).
    pub fn read_range(&self, e: &Entry, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let len = len.min(e.len.saturating_sub(offset));
        let mut f = File::open(&e.file).map_err(|x| io_err(&e.name, x))?;
        f.seek(SeekFrom::Start(e.data_offset + offset))
            .map_err(|x| io_err(&e.name, x))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).map_err(|x| io_err(&e.name, x))?;
        Ok(buf)
    }

    pub fn remove(&self, e: &Entry) {
        let _ = std::fs::remove_file(&e.file);
    }
}

/// A temp file old enough that no live writer can still own it.
pub(super) fn stale(ent: &std::fs::DirEntry) -> bool {
    ent.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(600))
}

fn read_header(path: &Path) -> Result<Entry, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let file_len = f.metadata().map_err(|e| e.to_string())?.len();
    decode_header(&mut f, file_len, path)
}

/// Encodes a journal file's header (what comes before the object's bytes;
/// `format::journal`). Public, hidden, for tests/fuzz_decoders.rs.
#[doc(hidden)]
pub fn encode_header(head: bool, seq: u64, name: &str, base: Option<&Etag>, len: u64) -> Vec<u8> {
    journal::encode_header(seq, name, head.then_some(base), len)
}

/// Decodes a journal file's header from `f`, positioned at its start, for a file of
/// `file_len` bytes at `path`. Reads at most the header (the name is at most
/// `MAX_NAME_LEN` bytes), then checks the name is a store name.
#[doc(hidden)]
pub fn decode_header(f: &mut impl Read, file_len: u64, path: &Path) -> Result<Entry, String> {
    let mut buf = Vec::new();
    f.take(journal::max_header_len(MAX_NAME_LEN) as u64)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let h = journal::decode_header(&buf, file_len, MAX_NAME_LEN).map_err(|e| e.to_string())?;
    check_name(&h.name).map_err(|e| e.to_string())?;
    Ok(Entry {
        seq: h.seq,
        name: h.name,
        base: h.base,
        len: h.len,
        data_offset: h.data_offset,
        file: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_in_order_and_heads_replace_their_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (j, e, p) = Journal::open(dir.path()).unwrap();
        assert!(e.is_empty() && p.is_empty());
        j.write(5, "packs/ab/x", None, b"pack five").unwrap();
        j.write(3, "packs/ab/y", None, b"pack three").unwrap();
        j.write(4, "heads/00000002", Some(None), b"head v1")
            .unwrap();
        let h = j
            .write(6, "heads/00000002", Some(Some(&[7; 32])), b"head v2")
            .unwrap();
        drop(j);
        let (j, e, p) = Journal::open(dir.path()).unwrap();
        assert!(p.is_empty(), "{p:?}");
        let seqs: Vec<u64> = e.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5, 6]);
        assert_eq!(e[1].base, Some(None));
        assert_eq!(e[3].base, Some(Some([7; 32])));
        assert_eq!(e[1].data_offset, e[3].data_offset);
        assert_eq!(j.read(&e[3]).unwrap(), b"head v2");
        assert_eq!(j.read(&e[0]).unwrap(), b"pack three");
        assert_eq!(j.read_range(&e[2], 5, 100).unwrap(), b"five");
        assert_eq!(h.file, e[3].file);
    }

    #[test]
    fn a_damaged_file_is_quarantined_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _, _) = Journal::open(dir.path()).unwrap();
        let a = j.write(1, "packs/ab/x", None, b"0123456789").unwrap();
        let b = j.write(2, "packs/ab/y", None, b"abcdefghij").unwrap();
        // Bit rot inside the data: the header still parses, the checksum does not.
        let mut bytes = std::fs::read(&a.file).unwrap();
        let at = a.data_offset as usize + 3;
        bytes[at] ^= 1;
        std::fs::write(&a.file, &bytes).unwrap();
        assert!(j.read(&a).is_err());
        assert!(
            dir.path()
                .join("bad")
                .join(a.file.file_name().unwrap())
                .exists()
        );
        // A truncated file does not even open.
        let bytes = std::fs::read(&b.file).unwrap();
        std::fs::write(&b.file, &bytes[..bytes.len() - 5]).unwrap();
        let (_, e, p) = Journal::open(dir.path()).unwrap();
        assert!(e.is_empty());
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
