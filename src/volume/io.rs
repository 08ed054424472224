//! File content: reads and writes in chunk units, truncation with holes. Invariant: a
//! chunk's plaintext never extends past the file size, so bytes beyond it read as zeros.

use super::*;
use crate::format::CHUNK_SIZE;
use crate::format::record::{ChunkRef, Payload, Time};
use patch::Plan;

/// Largest file size accepted (EFBIG beyond): 16 TiB.
pub const MAX_FILE_SIZE: u64 = 1 << 44;

/// Copies the part of a chunk starting at `in_chunk` into `dst`; bytes past the chunk's
/// end stay zero (holes and the sparse tail).
pub(super) fn copy_part(src: &[u8], in_chunk: usize, dst: &mut [u8]) {
    let n = src.len().saturating_sub(in_chunk).min(dst.len());
    if n > 0 {
        dst[..n].copy_from_slice(&src[in_chunk..in_chunk + n]);
    }
    // Past the chunk's end (written shorter) a file reads as zeros. `read_into`'s buffer
    // is not zeroed beforehand (it still holds the last read's bytes), so this must be.
    dst[n..].fill(0);
}

/// A mode with set-user-ID removed, and set-group-ID removed when group-executable (a
/// non-executable setgid file marks mandatory locking and is kept), as Linux does.
pub(super) fn killed_mode(mode: u32) -> u32 {
    // (See also `drop_file_capability`: a write, truncate or chown drops it too.)
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_IXGRP != 0 {
        m &= !libc::S_ISGID;
    }
    m
}

/// The file capability attribute (`setcap`), which Linux drops on every write, truncate
/// and chown of the file, whoever makes it (security_inode_killpriv); with KILLPRIV_V2 the
/// kernel leaves that to the filesystem.
pub const FILE_CAPABILITY: &[u8] = b"security.capability";

pub(super) fn drop_file_capability(xattrs: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>) {
    if !xattrs.is_empty() {
        xattrs.remove(FILE_CAPABILITY);
    }
}

pub(super) enum Source {
    Dirty,
    /// On its way to a pack (`sealer.rs`).
    Sealing(Arc<Vec<u8>>),
    Pending(Pending),
    Stored(ChunkRef),
    Hole,
}

impl Category {
    pub(super) fn chunk_source(s: &State, ino: u64, idx: u64) -> Source {
        if s.buf.dirty.contains_key(&(ino, idx)) {
            return Source::Dirty;
        }
        if let Some((_, a)) = s.buf.sealing.get(&(ino, idx)) {
            return Source::Sealing(a.clone());
        }
        if let Some(p) = s.buf.pending.get(&(ino, idx)) {
            return Source::Pending(*p);
        }
        if let Some(Record {
            payload: Payload::File { chunks, .. },
            ..
        }) = s.tree.records.get(&ino)
            && let Some(Some(r)) = chunks.get(idx as usize)
        {
            return Source::Stored(*r);
        }
        Source::Hole
    }

    /// Current plaintext of a chunk, as an owned buffer for modification. A sealed
    /// version's cache entry is taken over rather than copied (it is about to be stale):
    /// copying 256 KiB into a fresh buffer per small write was a fifth of the daemon's
    /// time under SQLite (docs/BENCH.md, profiles).
    /// Also the chunk's patch plan (`patch.rs`), taken out: only a write puts it back.
    fn chunk_owned(&self, s: &mut State, ino: u64, idx: u64) -> VolResult<(Vec<u8>, Option<Plan>)> {
        let unshared = |a: Arc<Vec<u8>>| Arc::try_unwrap(a).unwrap_or_else(|a| a.as_ref().clone());
        let plan = s.buf.plans.remove(&(ino, idx));
        let plain = match Self::chunk_source(s, ino, idx) {
            Source::Dirty => {
                let v = s.buf.dirty.remove(&(ino, idx)).unwrap_or_default();
                self.sub_dirty(s, v.len());
                return Ok((v, plan));
            }
            Source::Sealing(a) => {
                drop(a);
                return Ok((self.take_back(s, ino, idx).unwrap_or_default(), plan));
            }
            Source::Pending(p) => {
                let key = self.ckey(ino, idx, p.tag);
                match self.cache.take(&key) {
                    Some(a) => unshared(a),
                    None => {
                        let a = self.load_pending(s, ino, idx, p)?;
                        drop(self.cache.take(&key));
                        unshared(a)
                    }
                }
            }
            Source::Stored(r) => {
                let key = self.ckey(ino, idx, r.tag());
                let plain = match self.cache.take(&key) {
                    Some(a) => unshared(a),
                    None => {
                        let a = self.load_chunk_ref(&self.keys(), ino, idx, &r)?;
                        drop(self.cache.take(&key));
                        unshared(a)
                    }
                };
                return Ok((plain, Some(patch::plan_of_stored(&r))));
            }
            Source::Hole => Vec::new(),
        };
        Ok((plain, None))
    }

    fn file_size(s: &State, ino: u64) -> VolResult<u64> {
        match s.tree.records.get(&ino) {
            Some(Record {
                payload: Payload::File { size, .. },
                ..
            }) => Ok(*size),
            Some(Record {
                payload: Payload::Dir { .. },
                ..
            }) => Err(VolError::IsDir),
            Some(_) => Err(VolError::Invalid("not a regular file")),
            None => Err(VolError::NotFound),
        }
    }

    /// Reads file content. Chunks that must come from the store are fetched and opened
    /// after the category lock is released, so concurrent reads decrypt in parallel.
    pub fn read(&self, ino: u64, offset: u64, len: u32) -> VolResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(ino, offset, len, &mut out)?;
        Ok(out)
    }

    /// [`Category::read`] into a reusable buffer (the FUSE layer keeps one per thread, so
    /// a stream of reads allocates nothing). On an error `out` is left empty: parts not
    /// yet written would still hold the last read's bytes, maybe of another file.
    pub fn read_into(&self, ino: u64, offset: u64, len: u32, out: &mut Vec<u8>) -> VolResult<()> {
        let r = self.read_into_unchecked(ino, offset, len, out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    fn read_into_unchecked(
        &self,
        ino: u64,
        offset: u64,
        len: u32,
        out: &mut Vec<u8>,
    ) -> VolResult<()> {
        enum Fill {
            Stored(ChunkRef),
            Sealed(Vec<u8>, [u8; 32], Option<(BlobRef, u64)>),
        }
        let mut later: Vec<(u64, usize, usize, u64, Fill)> = Vec::new();
        let keys;
        let size;
        {
            let mut s = self.lock_raw();
            // With the refs: the keys they were sealed under (a rotation may move on).
            keys = self.keys();
            self.ensure_leaf(&mut s, ino)?;
            size = Self::file_size(&s, ino)?;
            if offset >= size {
                out.clear();
                return Ok(());
            }
            let end = size.min(offset + len as u64);
            // Not zeroed first: every part below is written whole (`copy_part` zeros what
            // a chunk does not hold; holes are zeroed), which spares a memset of each
            // read (1 MiB per request when streaming).
            let n = (end - offset) as usize;
            if out.len() > n {
                out.truncate(n);
            } else {
                out.resize(n, 0);
            }
            self.note_access(&mut s, ino);
            let mut pos = offset;
            while pos < end {
                let idx = pos / CHUNK_SIZE;
                let in_chunk = (pos % CHUNK_SIZE) as usize;
                let take = ((CHUNK_SIZE - pos % CHUNK_SIZE).min(end - pos)) as usize;
                let at = (pos - offset) as usize;
                match Self::chunk_source(&s, ino, idx) {
                    Source::Dirty => match s.buf.dirty.get(&(ino, idx)) {
                        Some(src) => copy_part(src, in_chunk, &mut out[at..at + take]),
                        None => out[at..at + take].fill(0),
                    },
                    Source::Sealing(src) => copy_part(&src, in_chunk, &mut out[at..at + take]),
                    Source::Pending(p) => {
                        if let Some(c) = self.cache.get(&self.ckey(ino, idx, p.tag)) {
                            copy_part(&c, in_chunk, &mut out[at..at + take]);
                        } else {
                            let sealed = Self::pending_sealed(&s, ino, idx, &p)?.to_vec();
                            later.push((
                                idx,
                                in_chunk,
                                at,
                                take as u64,
                                Fill::Sealed(sealed, p.tag, p.patch_of),
                            ));
                        }
                    }
                    Source::Stored(r) => {
                        later.push((idx, in_chunk, at, take as u64, Fill::Stored(r)))
                    }
                    Source::Hole => out[at..at + take].fill(0),
                }
                pos += take as u64;
            }
        }
        for (idx, in_chunk, at, take, fill) in later {
            let plain = match fill {
                // A patched chunk is read whole (base and patch), and cached as one:
                // reading the parts the patch does not touch from the base alone was
                // tried, and cached the base beside the patched chunk, so fewer chunks
                // fit (fewer random reads a second, docs/BENCH.md).
                Fill::Stored(r) if r.patch.is_some() => self.load_chunk_ref(&keys, ino, idx, &r)?,
                // The read spans the whole chunk (a stream): straight into `out`.
                Fill::Stored(r) if in_chunk == 0 && take == chunk_span(size, idx) => {
                    let dst = &mut out[at..at + take as usize];
                    self.read_chunk_into(&keys, ino, idx, &r.base, dst)?;
                    continue;
                }
                Fill::Stored(r) => {
                    let dst = &mut out[at..at + take as usize];
                    self.read_part(&keys, ino, idx, &r.base, in_chunk, dst)?;
                    continue;
                }
                Fill::Sealed(sealed, tag, Some((base, sectors))) => {
                    let (p, _) =
                        self.open_patched(&keys, ino, idx, &base, sectors, &sealed, true)?;
                    let p = Arc::new(p);
                    self.cache.insert(self.ckey(ino, idx, tag), p.clone());
                    p
                }
                Fill::Sealed(sealed, tag, None) => {
                    let what = || format!("chunk {idx} of inode {ino} (unsynced)");
                    let p = Arc::new(self.open_blob(
                        &keys,
                        crate::format::Context::chunk(self.id, ino, idx),
                        &sealed,
                        &what,
                    )?);
                    self.cache.insert(self.ckey(ino, idx, tag), p.clone());
                    p
                }
            };
            copy_part(&plain, in_chunk, &mut out[at..at + take as usize]);
        }
        Ok(())
    }

    /// A read of `ino` happened: its access time follows the mount's rule (`Atime`).
    /// relatime, as Linux mounts by default, updates it when it is not newer than the last
    /// change or modification, or is a day old: `ls -lu` and mail readers work without a
    /// metadata write on every read. A read-only mount never updates it.
    fn note_access(&self, s: &mut State, ino: u64) {
        if self.opts.read_only {
            return;
        }
        let Some(r) = s.tree.records.get_mut(&ino) else {
            return;
        };
        let now = Time::now();
        let a = (r.attr.atime.sec, r.attr.atime.nsec);
        let stale = match self.opts.atime {
            Atime::Never => false,
            Atime::Always => true,
            Atime::Relative => {
                a <= (r.attr.mtime.sec, r.attr.mtime.nsec)
                    || a <= (r.attr.ctime.sec, r.attr.ctime.nsec)
                    || now.sec - r.attr.atime.sec >= 24 * 3600
            }
        };
        if stale {
            r.attr.atime = now;
            s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        }
    }

    /// Writes file content; with `kill_suidgid` (the kernel says the writer lacks
    /// CAP_FSETID) the set-user-ID bit and an executable set-group-ID bit are cleared, as
    /// a local filesystem does on write.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8], kill_suidgid: bool) -> VolResult<u32> {
        self.write_reporting(ino, offset, data, kill_suidgid)
            .map(|(n, _)| n)
    }

    /// [`Category::write`], also saying whether it cleared set-user-ID or set-group-ID
    /// (the kernel's cached mode is then stale).
    pub fn write_reporting(
        &self,
        ino: u64,
        offset: u64,
        data: &[u8],
        kill_suidgid: bool,
    ) -> VolResult<(u32, bool)> {
        let mut s = self.lock_raw();
        self.ensure_leaf(&mut s, ino)?;
        let old_size = Self::file_size(&s, ino)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(VolError::TooBig)?;
        if data.is_empty() {
            return Ok((0, false));
        }
        let mut killed = false;
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK_SIZE;
            let in_chunk = (pos % CHUNK_SIZE) as usize;
            let take = ((CHUNK_SIZE - pos % CHUNK_SIZE).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + take];
            let (mut chunk, plan) = if in_chunk == 0 && take as u64 == CHUNK_SIZE {
                // full overwrite: no need to read the old content
                self.drop_unsealed(&mut s, ino, idx);
                (Vec::with_capacity(CHUNK_SIZE as usize), None)
            } else {
                self.chunk_owned(&mut s, ino, idx)?
            };
            self.note_write(&mut s, (ino, idx), plan, in_chunk..in_chunk + take);
            if chunk.len() == in_chunk {
                // appending (the streaming case): no zero-fill before the copy
                chunk.extend_from_slice(src);
            } else {
                if chunk.len() < in_chunk + take {
                    chunk.resize(in_chunk + take, 0);
                }
                chunk[in_chunk..in_chunk + take].copy_from_slice(src);
            }
            self.add_dirty(&mut s, chunk.len());
            s.buf.dirty.insert((ino, idx), chunk);
            pos += take as u64;
        }
        let new_size = old_size.max(end);
        let now = Time::now();
        if let Some(rec) = s.tree.records.get_mut(&ino) {
            if let Payload::File { size, chunks } = &mut rec.payload {
                *size = new_size;
                let n = new_size.div_ceil(CHUNK_SIZE) as usize;
                if chunks.len() < n {
                    chunks.resize(n, None);
                }
            }
            rec.attr.mtime = now;
            rec.attr.ctime = now;
            if kill_suidgid {
                let mode = killed_mode(rec.attr.mode);
                killed = mode != rec.attr.mode;
                rec.attr.mode = mode;
            }
            drop_file_capability(&mut rec.xattrs);
        }
        s.tree.bytes = (s.tree.bytes + new_size).saturating_sub(old_size);
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        self.after_write(s, (ino, (end - 1) / CHUNK_SIZE))?;
        Ok((data.len() as u32, killed))
    }

    /// A listing of directory `ino` began: its access time follows the mount's rule, as
    /// a `getdents` on Linux does, unless the mount says `nodiratime`.
    pub fn note_listing(&self, ino: u64) {
        if !self.opts.dir_atime || self.opts.atime == Atime::Never || self.opts.read_only {
            return;
        }
        let mut s = self.lock();
        if self.ensure_leaf(&mut s, ino).is_ok() {
            self.note_access(&mut s, ino);
        }
    }

    /// A file was opened for reading under `strictatime`: an access, even when the reads
    /// that follow come from the kernel's page cache and never reach the daemon. Whether
    /// the access time changed (the kernel's copy must then be dropped).
    pub fn note_open_for_reading(&self, ino: u64) -> bool {
        if self.opts.atime != Atime::Always || self.opts.read_only {
            return false;
        }
        let mut s = self.lock();
        if self.ensure_leaf(&mut s, ino).is_err() {
            return false;
        }
        self.note_access(&mut s, ino);
        true
    }

    /// `fallocate(2)` on a file: `Reserve` (mode 0 and KEEP_SIZE: there is nothing to
    /// preallocate in sealed chunks, so only the size grows, unless kept), `PunchHole`
    /// (whole chunks in the range become holes, partly covered ones get zeros; the size
    /// is kept) and `ZeroRange` (the same, and the size grows unless kept). Space is the
    /// caller's to check: it knows the store's and the journal's room.
    pub fn fallocate(&self, ino: u64, offset: u64, len: u64, how: Allocate) -> VolResult<()> {
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(VolError::TooBig)?;
        if len == 0 {
            return Err(VolError::Invalid("fallocate of length 0"));
        }
        let mut s = self.lock_raw();
        self.ensure_leaf(&mut s, ino)?;
        let size = Self::file_size(&s, ino)?;
        let (zero, keep_size) = match how {
            Allocate::Reserve { keep_size } => (false, keep_size),
            Allocate::PunchHole => (true, true),
            Allocate::ZeroRange { keep_size } => (true, keep_size),
        };
        let mut last = None;
        if zero {
            let stop = end.min(size);
            let mut pos = offset;
            while pos < stop {
                let idx = pos / CHUNK_SIZE;
                let in_chunk = (pos % CHUNK_SIZE) as usize;
                let take = ((CHUNK_SIZE - pos % CHUNK_SIZE).min(stop - pos)) as usize;
                if in_chunk == 0 && take as u64 == chunk_span(size, idx) {
                    // All of the chunk's bytes: it becomes a hole (reads give zeros). A
                    // seal on its way is not installed (as for a truncate).
                    self.drop_unsealed(&mut s, ino, idx);
                    s.buf.pending.remove(&(ino, idx));
                    if let Some(Record {
                        payload: Payload::File { chunks, .. },
                        ..
                    }) = s.tree.records.get_mut(&ino)
                        && let Some(c) = chunks.get_mut(idx as usize)
                    {
                        *c = None;
                    }
                } else {
                    // Taken out of the write buffer (or a seal on its way): it always goes
                    // back, zeroed where the range covers bytes it holds. A hole stays a
                    // hole; past a short chunk's end there is nothing to zero.
                    // Sealed whole: its plan is dropped (zeros may shorten nothing, but
                    // only writes keep a plan).
                    let (mut chunk, _) = self.chunk_owned(&mut s, ino, idx)?;
                    if !chunk.is_empty() {
                        let upto = (in_chunk + take).min(chunk.len());
                        if in_chunk < upto {
                            chunk[in_chunk..upto].fill(0);
                        }
                        self.add_dirty(&mut s, chunk.len());
                        s.buf.dirty.insert((ino, idx), chunk);
                        last = Some((ino, idx));
                    }
                }
                pos += take as u64;
            }
        }
        if !keep_size && end > size {
            self.truncate_locked(&mut s, ino, end)?;
        }
        let now = Time::now();
        if let Some(rec) = s.tree.records.get_mut(&ino) {
            // As ext4: a change of content or size is a modification, and drops a file
            // capability.
            if zero || (!keep_size && end > size) {
                rec.attr.mtime = now;
                drop_file_capability(&mut rec.xattrs);
            }
            rec.attr.ctime = now;
        }
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        match last {
            Some(key) => self.after_write(s, key),
            None => Ok(()),
        }
    }

    /// Sets the size of a file; the caller holds the lock and has loaded the leaf.
    pub(super) fn truncate_locked(&self, s: &mut State, ino: u64, new_size: u64) -> VolResult<()> {
        let old_size = Self::file_size(s, ino)?;
        if new_size > MAX_FILE_SIZE {
            return Err(VolError::TooBig);
        }
        if new_size < old_size {
            let keep = new_size.div_ceil(CHUNK_SIZE);
            let old_n = old_size.div_ceil(CHUNK_SIZE);
            for idx in keep..old_n {
                self.drop_unsealed(s, ino, idx);
                s.buf.pending.remove(&(ino, idx));
            }
            let tail = (new_size % CHUNK_SIZE) as usize;
            if tail != 0 {
                let idx = new_size / CHUNK_SIZE;
                // Cut short, it is sealed whole: a patch would bring the cut bytes back
                // from its base.
                let (mut chunk, _) = self.chunk_owned(s, ino, idx)?;
                let was_hole = chunk.is_empty();
                if chunk.len() > tail {
                    chunk.truncate(tail);
                }
                if !was_hole {
                    self.add_dirty(s, chunk.len());
                    s.buf.dirty.insert((ino, idx), chunk);
                }
            }
        }
        if let Some(Record {
            payload: Payload::File { size, chunks },
            ..
        }) = s.tree.records.get_mut(&ino)
        {
            *size = new_size;
            chunks.resize(new_size.div_ceil(CHUNK_SIZE) as usize, None);
        }
        s.tree.bytes = (s.tree.bytes + new_size).saturating_sub(old_size);
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Ok(())
    }

    /// Bytes of storage a file occupies (for st_blocks).
    pub(super) fn allocated(s: &State, ino: u64) -> u64 {
        let Some(Record {
            payload: Payload::File { chunks, .. },
            ..
        }) = s.tree.records.get(&ino)
        else {
            return 0;
        };
        let overhead = crate::crypto::SEAL_OVERHEAD as u64;
        let mut total = 0u64;
        for (i, c) in chunks.iter().enumerate() {
            let k = (ino, i as u64);
            total += if let Some(d) = s.buf.dirty.get(&k) {
                d.len() as u64
            } else if let Some((_, d)) = s.buf.sealing.get(&k) {
                d.len() as u64
            } else if let Some(p) = s.buf.pending.get(&k) {
                match p.patch_of {
                    Some((base, sectors)) => patched_len(&base, sectors, overhead),
                    None => (p.len as u64).saturating_sub(overhead),
                }
            } else if let Some(r) = c {
                match r.patch {
                    Some(p) => patched_len(&r.base, p.sectors, overhead),
                    None => (r.base.len as u64).saturating_sub(overhead),
                }
            } else {
                0
            };
        }
        total
    }
}

/// What a `fallocate(2)` asks of [`Category::fallocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocate {
    /// Mode 0 (and `posix_fallocate`), or `FALLOC_FL_KEEP_SIZE`.
    Reserve { keep_size: bool },
    /// `FALLOC_FL_PUNCH_HOLE` (always with `KEEP_SIZE`).
    PunchHole,
    /// `FALLOC_FL_ZERO_RANGE`, with or without `KEEP_SIZE`.
    ZeroRange { keep_size: bool },
}

/// About how many bytes a patched chunk holds: its base's, or up to its last patched
/// sector if that is further (st_blocks needs no more than an estimate).
fn patched_len(base: &BlobRef, sectors: u64, overhead: u64) -> u64 {
    let patched = u64::from(64 - sectors.leading_zeros()) * crate::format::patch::SECTOR as u64;
    (base.len as u64)
        .saturating_sub(overhead)
        .max(patched)
        .min(CHUNK_SIZE)
}

/// How many bytes of a file of `size` bytes chunk `idx` spans.
fn chunk_span(size: u64, idx: u64) -> u64 {
    size.saturating_sub(idx * CHUNK_SIZE).min(CHUNK_SIZE)
}
