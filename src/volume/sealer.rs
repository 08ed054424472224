//! Sealing written chunks off the request path. A write returns once its plaintext is
//! in the dirty budget; when a batch's worth has gathered, it moves to the category's
//! `sealing` map and a thread of the mount's [`Sealer`] pool seals it into packs, writes
//! them to the store and installs the refs, while the next writes go on. The request path
//! had done all of that itself, on one core (docs/BENCH.md, profiles).
//!
//! Only reads and writes ever see a chunk on its way: everything else takes the category
//! lock through [`Category::lock`], which waits until no batch is in flight, so commits,
//! merges, rotations and tree changes see the state they always did. A write to a chunk
//! on its way takes it back as dirty (the batch's install then skips it: its generation
//! no longer matches). A batch that fails to seal or store goes back to dirty, and the
//! category seals in line (reporting errors to the writer, as before) until its next
//! successful commit.

use super::*;
use crate::crypto;
use crate::format::record::{ChunkRef, Payload};
use crate::format::{CHUNK_SIZE, Context, PACK_TARGET, names};
use log::{debug, error, warn};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// A sealing thread's pack buffer (the memory budget counts one per thread).
    static PACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The mount's sealing threads, shared by its categories.
pub struct Sealer {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    /// Set by `stop`: read on every write, so not behind the sender's lock.
    stopped: std::sync::atomic::AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The number of threads (each holds one pack being filled: the memory budget counts it).
    pub count: usize,
}

impl Sealer {
    /// Starts `threads` sealing threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Arc<Sealer>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let count = threads.max(1);
        let mut handles = Vec::with_capacity(count);
        for i in 0..count {
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("sealer-{i}"))
                    .spawn(move || {
                        loop {
                            // The receiver's lock is held only to take one job.
                            let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => break, // the sender is gone: stopped
                            }
                        }
                    })?,
            );
        }
        Ok(Arc::new(Sealer {
            tx: Mutex::new(Some(tx)),
            stopped: Default::default(),
            threads: Mutex::new(handles),
            count,
        }))
    }

    /// Queues `job`; gives it back when the pool has stopped.
    fn submit(&self, job: Job) -> Result<(), Job> {
        match self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Whether jobs are still taken.
    fn running(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }

    /// Lets the queued jobs finish and ends the threads. Categories seal in line after.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            if h.join().is_err() {
                warn!("a sealing thread panicked");
            }
        }
    }
}

/// Below this much unsealed data, a commit seals in line rather than hand it over.
const IN_LINE_COMMIT: usize = 1 << 20;

/// A chunk on its way: the plaintext (shared with the `sealing` map) and its generation.
pub(super) struct OnItsWay {
    ino: u64,
    idx: u64,
    generation: u64,
    plain: Arc<Vec<u8>>,
    /// Its patch plan when it left (`patch.rs`).
    plan: Option<super::patch::Plan>,
}

/// A chunk sealed into a pack: where, its tag, and the base if it went as a patch.
struct Placed {
    chunk: OnItsWay,
    offset: u32,
    len: u32,
    tag: [u8; 32],
    patch_of: Option<(BlobRef, u64)>,
}

impl Category {
    /// The lock for what is not a read or a write: waits until no batch is in flight.
    /// New batches are held back meanwhile, so a stream of writes cannot starve it.
    pub(super) fn settle<'a>(&self, mut g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if g.buf.batches == 0 {
            self.no_stragglers(&mut g);
            return g;
        }
        g.buf.settle_waiters += 1;
        while g.buf.batches > 0 {
            g = self.settled.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.buf.settle_waiters -= 1;
        self.no_stragglers(&mut g);
        g
    }

    /// Every batch restores what it did not install, so nothing is on its way once none
    /// is in flight; if something ever were, it goes back to dirty rather than be left
    /// out of the next commit.
    fn no_stragglers(&self, s: &mut State) {
        if s.buf.batches > 0 || s.buf.sealing.is_empty() {
            return;
        }
        error!(
            "category {}: {} chunks were left on their way by a finished batch; they are \
             sealed in line",
            self.name,
            s.buf.sealing.len()
        );
        let left: Vec<_> = s.buf.sealing.iter().map(|(k, e)| (*k, e.0)).collect();
        for ((ino, idx), generation) in left {
            self.restore_one(s, ino, idx, generation);
        }
    }

    /// Drops the unsealed versions of a chunk (dirty, or on its way) that a write replaces
    /// whole or a truncation cuts off.
    pub(super) fn drop_unsealed(&self, s: &mut State, ino: u64, idx: u64) {
        if let Some(v) = s.buf.dirty.remove(&(ino, idx)) {
            self.sub_dirty(s, v.len());
        }
        if let Some((_, a)) = s.buf.sealing.remove(&(ino, idx)) {
            s.buf.sealing_bytes -= a.len();
            self.sub_dirty(s, a.len());
        }
        s.buf.plans.remove(&(ino, idx));
    }

    /// Takes a chunk on its way back as dirty plaintext for modification: its batch will
    /// not install it. The bytes stay in the budget (now as dirty).
    pub(super) fn take_back(&self, s: &mut State, ino: u64, idx: u64) -> Option<Vec<u8>> {
        let (_, a) = s.buf.sealing.remove(&(ino, idx))?;
        s.buf.sealing_bytes -= a.len();
        self.sub_dirty(s, a.len());
        // The batch still holds its own reference: a copy (256 KiB at most).
        Some(Arc::try_unwrap(a).unwrap_or_else(|a| a.as_ref().clone()))
    }

    /// After a write added to the dirty budget: hands a batch to the sealers once one has
    /// gathered, waits when the budget is full of chunks on their way, and seals in line
    /// when there are no sealers (or they failed), as before.
    /// `last` is the chunk the write ended in: if it is not full, the next write of a
    /// stream goes on in it, so it stays dirty rather than be sealed twice.
    pub(super) fn after_write(
        &self,
        mut s: MutexGuard<'_, State>,
        last: (u64, u64),
    ) -> VolResult<()> {
        let limit = self.opts.dirty_limit;
        let over = |s: &State| {
            s.buf.dirty_bytes > limit || self.opts.dirty_total.load(Ordering::Relaxed) > limit
        };
        let Some(sealer) = self.async_sealer(&s) else {
            if over(&s) {
                self.seal_dirty(&mut s)?;
            }
            return Ok(());
        };
        // Full of chunks on their way: wait for a batch (never for ever: each wait ends
        // when one finishes, and with none in flight nothing is waited for).
        while s.buf.dirty_bytes > limit && s.buf.batches > 0 && s.buf.settle_waiters == 0 {
            s = self.settled.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let unsealed = s.buf.dirty_bytes - s.buf.sealing_bytes;
        let batch = (limit / 4).max(CHUNK_SIZE as usize);
        // Pending blobs (sealed in line, in the open pack) install when that pack is
        // flushed: a batch must not race them for the same chunk, so none is sent then.
        let may_send = s.buf.settle_waiters == 0 && s.buf.pending.is_empty() && !s.buf.async_off;
        // Over the mount-wide budget (other categories' writes), a smaller batch goes, but
        // not a pack per write.
        let sent = may_send
            && (unsealed >= batch || (over(&s) && unsealed >= batch / 8))
            && self.send_batch(&mut s, &sealer, last);
        if !sent && over(&s) {
            self.seal_dirty(&mut s)?;
        }
        Ok(())
    }

    /// The pool, if this category may hand it work now.
    fn async_sealer(&self, s: &State) -> Option<Arc<Sealer>> {
        let sealer = self.opts.sealer.as_ref()?;
        (sealer.running() && !s.buf.async_off && self.me.get().is_some()).then(|| sealer.clone())
    }

    /// Moves every dirty chunk but a partial `last` to the `sealing` map and queues a job
    /// that seals them. Whether a batch went.
    fn send_batch(&self, s: &mut State, sealer: &Sealer, last: (u64, u64)) -> bool {
        let mut dirty = std::mem::take(&mut s.buf.dirty);
        if let Some(v) = dirty.remove(&last) {
            if (v.len() as u64) < CHUNK_SIZE {
                s.buf.dirty.insert(last, v);
            } else {
                dirty.insert(last, v);
            }
        }
        let mut chunks: Vec<_> = dirty.into_iter().collect();
        // Chunks of one file next to each other in the pack, in order.
        chunks.sort_unstable_by_key(|(k, _)| *k);
        self.queue(s, sealer, chunks)
    }

    /// The lock a commit works under: every dirty chunk first goes to the sealers, split
    /// in one batch per thread so that they seal it in parallel, and the lock is taken
    /// once they are done. What is written meanwhile the commit seals in line.
    pub(super) fn lock_for_commit(&self) -> MutexGuard<'_, State> {
        let mut s = self.lock_raw();
        // A few chunks (a database's fsync) are sealed in line sooner than handed over.
        let unsealed = s.buf.dirty_bytes - s.buf.sealing_bytes;
        if let Some(sealer) = self.async_sealer(&s)
            && s.buf.settle_waiters == 0
            && s.buf.pending.is_empty()
            && unsealed >= IN_LINE_COMMIT
        {
            let mut chunks: Vec<_> = std::mem::take(&mut s.buf.dirty).into_iter().collect();
            chunks.sort_unstable_by_key(|(k, _)| *k);
            let total: usize = chunks.iter().map(|(_, v)| v.len()).sum();
            let share = total.div_ceil(sealer.count).max(1);
            let mut rest = chunks.into_iter().peekable();
            while rest.peek().is_some() {
                let mut part = Vec::new();
                let mut bytes = 0;
                while bytes < share
                    && let Some(c) = rest.next()
                {
                    bytes += c.1.len();
                    part.push(c);
                }
                if !self.queue(&mut s, sealer.as_ref(), part) {
                    // Back in dirty (the sealers stopped): the commit seals it in line.
                    for (k, v) in rest.by_ref() {
                        s.buf.dirty.insert(k, v);
                    }
                }
            }
        }
        self.settle(s)
    }

    /// Queues `chunks` (taken out of dirty) as one batch; back in dirty if no batch went.
    fn queue(&self, s: &mut State, sealer: &Sealer, chunks: Vec<((u64, u64), Vec<u8>)>) -> bool {
        let me = self.me.get().and_then(std::sync::Weak::upgrade);
        let Some(me) = me.filter(|_| !chunks.is_empty()) else {
            s.buf.dirty.extend(chunks);
            return false;
        };
        let mut batch = Vec::with_capacity(chunks.len());
        for ((ino, idx), v) in chunks {
            s.buf.next_gen += 1;
            let generation = s.buf.next_gen;
            let plain = Arc::new(v);
            s.buf.sealing_bytes += plain.len();
            s.buf
                .sealing
                .insert((ino, idx), (generation, plain.clone()));
            let plan = s.buf.plans.get(&(ino, idx)).copied();
            batch.push(OnItsWay {
                ino,
                idx,
                generation,
                plain,
                plan,
            });
        }
        let sent: Vec<(u64, u64, u64)> =
            batch.iter().map(|c| (c.ino, c.idx, c.generation)).collect();
        s.buf.batches += 1;
        let keys = self.keys();
        let job: Job = Box::new(move || me.seal_batch(&keys, batch));
        if let Err(job) = sealer.submit(job) {
            // Stopped since the check: the job never runs. Undo it (dropped first, so the
            // map holds the only reference to each plaintext).
            drop(job);
            warn!(
                "category {}: the sealers have stopped; sealing in line",
                self.name
            );
            for (ino, idx, generation) in sent {
                self.restore_one(s, ino, idx, generation);
            }
            s.buf.batches -= 1;
            s.buf.async_off = true;
            return false;
        }
        true
    }

    /// A sealing thread's work: packs of the batch, each written to the store and then
    /// installed. What could not be sealed or stored goes back to dirty.
    fn seal_batch(&self, keys: &Keys, batch: Vec<OnItsWay>) {
        let sent: Vec<(u64, u64, u64)> =
            batch.iter().map(|c| (c.ino, c.idx, c.generation)).collect();
        // A panic must not leave the batch counted in flight: every later `lock` would
        // wait for it for ever. What it had not installed goes back to dirty like a failure.
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.seal_and_install(keys, batch)
        }))
        .unwrap_or_else(|_| Some("a sealing thread panicked".into()));
        let mut s = self.lock_raw();
        if let Some(why) = &failed {
            error!(
                "category {}: {why}; the chunks stay in memory and are sealed in line from now \
                 until the next commit",
                self.name
            );
            s.buf.async_off = true;
        }
        // Whatever of the batch is still on its way in its generation was not installed:
        // back to dirty (nothing of a batch can be left behind, whatever went wrong).
        for (ino, idx, generation) in sent {
            self.restore_one(&mut s, ino, idx, generation);
        }
        s.buf.batches -= 1;
        drop(s);
        self.settled.notify_all();
    }

    /// Seals the batch into packs, each put and then installed; stops at the first
    /// failure, which it returns.
    fn seal_and_install(&self, keys: &Keys, batch: Vec<OnItsWay>) -> Option<String> {
        let mut rest = batch.into_iter();
        // The thread's own pack buffer, kept from batch to batch: a fresh 8 MiB buffer
        // is a fresh mapping, and faulting its pages in was a third of a sealer's time.
        let mut pack = PACK.with(|p| std::mem::take(&mut *p.borrow_mut()));
        let mut failed = None;
        while failed.is_none() {
            pack.clear();
            super::commit::start_pack(&mut pack);
            let mut placed = Vec::new();
            for c in rest.by_ref() {
                let patch = super::patch::patch_for(c.plan, &c.plain);
                let (ctx, plain, patch_of) = match &patch {
                    Some((p, of)) => (Context::patch(self.id, c.ino, c.idx), &p[..], Some(*of)),
                    None => (Context::chunk(self.id, c.ino, c.idx), &c.plain[..], None),
                };
                match crypto::seal_append(&keys.key, self.suite, &ctx.to_bytes(), plain, &mut pack)
                {
                    Ok(offset) => {
                        let tag = crypto::peek_tag(&pack[offset..]).unwrap_or_default();
                        let len = (pack.len() - offset) as u32;
                        placed.push(Placed {
                            chunk: c,
                            offset: offset as u32,
                            len,
                            tag,
                            patch_of,
                        });
                    }
                    Err(e) => {
                        failed = Some(format!("sealing: {e}"));
                        break;
                    }
                }
                if pack.len() >= PACK_TARGET {
                    break;
                }
            }
            if failed.is_some() || placed.is_empty() {
                break;
            }
            let id = crypto::hash(&pack);
            let name = names::pack(&id);
            match self.store.put(&name, &pack) {
                Ok(()) => {
                    debug!(
                        "category {}: wrote {name} ({} bytes)",
                        self.name,
                        pack.len()
                    );
                    self.install(id, placed);
                }
                Err(e) => failed = Some(format!("cannot write pack {name}: {e}")),
            }
        }
        pack.clear();
        PACK.with(|p| *p.borrow_mut() = pack);
        failed
    }

    /// Installs the refs of one stored pack: each chunk still on its way in this
    /// generation becomes stored (and its plaintext a clean cache entry).
    fn install(&self, pack: [u8; 32], placed: Vec<Placed>) {
        let mut s = self.lock_raw();
        for p in placed {
            let c = p.chunk;
            let key = (c.ino, c.idx);
            if s.buf.sealing.get(&key).map(|e| e.0) != Some(c.generation) {
                continue; // written again meanwhile: that version wins
            }
            s.buf.sealing.remove(&key);
            s.buf.plans.remove(&key);
            s.buf.sealing_bytes -= c.plain.len();
            self.sub_dirty(&mut s, c.plain.len());
            if let Some(Record {
                payload: Payload::File { chunks, .. },
                ..
            }) = s.tree.records.get_mut(&c.ino)
                && let Some(slot) = chunks.get_mut(c.idx as usize)
            {
                let blob = BlobRef {
                    pack,
                    offset: p.offset,
                    len: p.len,
                    tag: p.tag,
                };
                *slot = Some(ChunkRef::sealed(blob, p.patch_of));
                s.tree.dirty_leaves.insert(Self::leaf_of(c.ino));
                self.cache.insert(self.ckey(c.ino, c.idx, p.tag), c.plain);
            }
        }
        drop(s);
        self.settled.notify_all();
    }

    /// A chunk of a batch back to dirty, if it is still on its way in `generation` (not
    /// installed, and no write took it meanwhile). The bytes stay in the budget, now as
    /// dirty.
    fn restore_one(&self, s: &mut State, ino: u64, idx: u64, generation: u64) {
        let key = (ino, idx);
        if s.buf.sealing.get(&key).map(|e| e.0) != Some(generation) {
            return;
        }
        if let Some((_, a)) = s.buf.sealing.remove(&key) {
            s.buf.sealing_bytes -= a.len();
            // The batch's own reference may still be alive (a panic): copy then.
            let v = Arc::try_unwrap(a).unwrap_or_else(|a| a.as_ref().clone());
            s.buf.dirty.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::store::{MemStore, Store, StoreError};
    use crate::volume::{NoWitness, SetAttr, UnsignedHeads};
    use std::sync::atomic::AtomicBool;

    /// A store whose pack writes can be slowed (so batches stay on their way while the
    /// test writes and reads) or made to fail.
    #[derive(Default)]
    struct Gate {
        inner: MemStore,
        slow: AtomicBool,
        fail: AtomicBool,
        panic: AtomicBool,
    }

    impl Store for Gate {
        fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
            if name.starts_with("packs/") {
                if self.slow.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
                if self.fail.load(Ordering::Relaxed) {
                    return Err(StoreError::Full(name.into()));
                }
                assert!(
                    !self.panic.load(Ordering::Relaxed),
                    "the test's store panics"
                );
            }
            self.inner.put(name, data)
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
            self.inner.get(name)
        }
        fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
            self.inner.get_range(name, offset, len)
        }
        fn put_if(
            &self,
            name: &str,
            data: &[u8],
            expected: Option<&crate::store::Etag>,
        ) -> Result<crate::store::Etag, StoreError> {
            self.inner.put_if(name, data, expected)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(prefix)
        }
        fn delete(&self, name: &str) -> Result<(), StoreError> {
            self.inner.delete(name)
        }
        fn size(&self, name: &str) -> Result<u64, StoreError> {
            self.inner.size(name)
        }
    }

    /// Category 7 over `store`, with two sealing threads and a 4 MiB dirty budget (batches
    /// of 1 MiB), or sealing in line.
    fn open(store: &Arc<Gate>, sealer: Option<Arc<Sealer>>) -> Arc<Category> {
        let store: Arc<dyn Store> = store.clone();
        Category::open(
            CategorySetup::standard(7, "cat7", SecretKey::from_bytes([7; 32]), 1, None),
            store,
            Arc::new(ChunkCache::new(2 << 20)),
            Arc::new(NoWitness),
            VolumeOptions {
                dirty_limit: 4 << 20,
                sealer,
                ..VolumeOptions::offline(Arc::new(UnsignedHeads), Some(1))
            },
        )
    }

    fn file(c: &Category, name: &str) -> u64 {
        crate::volume::testing::new_file(c, name)
    }

    fn read_all(c: &Category, ino: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < len {
            let part = c.read(ino, pos as u64, 1 << 20).unwrap();
            assert!(!part.is_empty(), "short read at {pos} of {len}");
            pos += part.len();
            out.extend_from_slice(&part);
        }
        out
    }

    /// Equal bytes, or a failure naming the first difference (not megabytes of both).
    fn same(got: &[u8], want: &[u8], what: &str) {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got.len() == want.len() && at.is_none(),
            "{what}: {} bytes read, {} expected, first difference at {at:?}",
            got.len(),
            want.len()
        );
    }

    /// xorshift64*: a fixed sequence, so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random whole-chunk and partial writes, truncations, reads and commits against a
    /// model, with slow pack writes so that many writes land on chunks on their way:
    /// every read matches the model, and so does a fresh open of what was committed.
    #[test]
    fn writes_over_chunks_on_their_way_read_back_and_commit_as_written() {
        let store = Arc::new(Gate::default());
        store.slow.store(true, Ordering::Relaxed);
        let sealer = Sealer::start(2).unwrap();
        let c = open(&store, Some(sealer.clone()));
        let ino = file(&c, "f");
        let mut model: Vec<u8> = Vec::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let max = 6 * CHUNK_SIZE * 4; // 6 MiB
        let mut sent_any = false;
        for step in 0..1500u64 {
            match rng.below(20) {
                0 => {
                    let size = rng.below(max);
                    let a = SetAttr {
                        size: Some(size),
                        ..Default::default()
                    };
                    c.setattr(ino, a).unwrap();
                    model.resize(size as usize, 0);
                }
                1 if step % 7 == 0 => c.commit().unwrap(),
                2..=4 => {
                    let off = rng.below(max);
                    let len = rng.below(200_000) as u32;
                    let got = c.read(ino, off, len).unwrap();
                    let end = (off as usize + len as usize).min(model.len());
                    let want = model.get(off as usize..end).unwrap_or(&[]);
                    same(&got, want, &format!("read {len} at {off}, step {step}"));
                }
                r => {
                    // Whole chunks half the time, else anywhere.
                    let (off, len) = if r % 2 == 0 {
                        let idx = rng.below(max / CHUNK_SIZE);
                        (
                            idx * CHUNK_SIZE,
                            CHUNK_SIZE as usize * (1 + rng.below(4) as usize),
                        )
                    } else {
                        (rng.below(max), 1 + rng.below(300_000) as usize)
                    };
                    let byte = (step % 251) as u8;
                    let data = vec![byte; len];
                    c.write(ino, off, &data, false).unwrap();
                    let end = off as usize + len;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].fill(byte);
                }
            }
            sent_any |= c.lock_raw().buf.batches > 0;
        }
        assert!(
            sent_any,
            "no batch was ever on its way: the test tests nothing"
        );
        same(&read_all(&c, ino, model.len()), &model, "before the commit");
        c.commit().unwrap();
        {
            let s = c.lock();
            assert!(s.buf.sealing.is_empty() && s.buf.batches == 0);
            assert_eq!(s.buf.dirty_bytes, 0, "the budget is back to empty");
        }
        assert_eq!(c.opts.dirty_total.load(Ordering::Relaxed), 0);
        drop(c);
        let again = open(&store, None);
        let ino2 = again.lookup(ROOT_INO, b"f").unwrap().ino;
        assert_eq!(ino2, ino);
        same(&read_all(&again, ino, model.len()), &model, "reopened");
        sealer.stop();
    }

    /// Small writes over a committed file, many landing on chunks on their way: batches
    /// seal patches (`patch.rs`) as well as whole chunks, and every read, and a fresh open
    /// of what was committed, matches the model.
    #[test]
    fn small_writes_go_to_the_sealers_as_patches_and_read_back_as_written() {
        let store = Arc::new(Gate::default());
        store.slow.store(true, Ordering::Relaxed);
        let sealer = Sealer::start(2).unwrap();
        let c = open(&store, Some(sealer.clone()));
        let ino = file(&c, "f");
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        // 24 MiB: a batch (1 MiB) gathers before a chunk is written twice.
        let mut model: Vec<u8> = (0..96 * CHUNK_SIZE as usize)
            .map(|i| (i * 31) as u8)
            .collect();
        c.write(ino, 0, &model, false).unwrap();
        c.commit().unwrap();
        let (mut sent_any, mut patched) = (false, 0);
        for step in 0..3000u64 {
            let off = rng.below(model.len() as u64 - 10_000) as usize;
            let len = 1 + rng.below(6000) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            c.write(ino, off as u64, &data, false).unwrap();
            model[off..off + len].copy_from_slice(&data);
            if step % 300 == 299 {
                c.commit().unwrap();
            }
            if step % 10 == 0 {
                let off = rng.below(model.len() as u64) as usize;
                let got = c.read(ino, off as u64, 70_000).unwrap();
                let want = &model[off..(off + 70_000).min(model.len())];
                same(&got, want, &format!("read at {off}, step {step}"));
            }
            let s = c.lock_raw();
            sent_any |= s.buf.batches > 0;
            if let Some(Record {
                payload: Payload::File { chunks, .. },
                ..
            }) = s.tree.records.get(&ino)
            {
                patched += chunks
                    .iter()
                    .flatten()
                    .filter(|r| r.patch.is_some())
                    .count();
            }
        }
        assert!(
            sent_any,
            "no batch was ever on its way: the test tests nothing"
        );
        assert!(patched > 0, "no chunk was ever patched");
        c.commit().unwrap();
        same(&read_all(&c, ino, model.len()), &model, "after the commit");
        drop(c);
        let again = open(&store, None);
        same(&read_all(&again, ino, model.len()), &model, "reopened");
        sealer.stop();
    }

    /// A batch whose pack cannot be written goes back to dirty: nothing is lost, reads
    /// stay right, the commit reports the store's error, and once the store takes writes
    /// again a commit stores everything.
    #[test]
    fn a_batch_that_cannot_be_stored_stays_in_memory_and_the_error_reaches_the_commit() {
        let store = Arc::new(Gate::default());
        let sealer = Sealer::start(1).unwrap();
        let c = open(&store, Some(sealer.clone()));
        let ino = file(&c, "f");
        c.commit().unwrap();
        store.fail.store(true, Ordering::Relaxed);
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
        for (i, part) in data.chunks(128 << 10).enumerate() {
            c.write(ino, (i * (128 << 10)) as u64, part, false).unwrap();
        }
        let s = c.lock();
        assert!(
            s.buf.async_off,
            "the failed batch switched to sealing in line"
        );
        assert!(s.buf.sealing.is_empty());
        drop(s);
        same(&read_all(&c, ino, data.len()), &data, "after the failure");
        assert!(
            matches!(c.commit(), Err(VolError::NoSpace(_))),
            "the store's error"
        );
        store.fail.store(false, Ordering::Relaxed);
        c.commit().unwrap();
        assert!(
            !c.lock().buf.async_off,
            "a good commit hands batches to the sealers again"
        );
        let again = open(&store, None);
        same(&read_all(&again, ino, data.len()), &data, "reopened");
        sealer.stop();
    }

    /// A small commit (sealed in line, its chunks and leaves written in one pack)
    /// whose packs cannot be written puts its chunks back: reads stay right, the store
    /// still holds the last good tree (the old content, not a ref to a pack that is not
    /// there), and the next commit stores the new content.
    #[test]
    fn a_small_commit_that_cannot_write_its_packs_keeps_the_old_refs() {
        let store = Arc::new(Gate::default());
        let c = open(&store, None);
        let ino = file(&c, "f");
        let old = vec![1u8; 10_000];
        c.write(ino, 0, &old, false).unwrap();
        c.commit().unwrap();
        let new = vec![2u8; 10_000];
        c.write(ino, 0, &new, false).unwrap();
        store.fail.store(true, Ordering::Relaxed);
        assert!(matches!(c.commit(), Err(VolError::NoSpace(_))));
        assert!(matches!(c.commit(), Err(VolError::NoSpace(_))), "twice");
        same(&read_all(&c, ino, new.len()), &new, "after the failures");
        same(
            &read_all(&open(&store, None), ino, old.len()),
            &old,
            "the store's tree",
        );
        store.fail.store(false, Ordering::Relaxed);
        c.commit().unwrap();
        same(&read_all(&c, ino, new.len()), &new, "after the commit");
        same(
            &read_all(&open(&store, None), ino, new.len()),
            &new,
            "reopened",
        );
    }

    /// A sealing job that panics (here in the store) does not leave its batch in flight:
    /// `lock` still returns, the chunks are back in dirty, and a commit stores them.
    #[test]
    fn a_panic_in_a_sealing_job_loses_nothing_and_hangs_nothing() {
        let store = Arc::new(Gate::default());
        let sealer = Sealer::start(1).unwrap();
        let c = open(&store, Some(sealer.clone()));
        let ino = file(&c, "f");
        c.commit().unwrap();
        store.panic.store(true, Ordering::Relaxed);
        let data: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 241) as u8).collect();
        c.write(ino, 0, &data, false).unwrap();
        let s = c.lock();
        assert!(s.buf.async_off && s.buf.sealing.is_empty() && s.buf.batches == 0);
        assert_eq!(s.buf.dirty_bytes, data.len(), "all of it back in dirty");
        drop(s);
        same(&read_all(&c, ino, data.len()), &data, "after the panic");
        store.panic.store(false, Ordering::Relaxed);
        c.commit().unwrap();
        let again = open(&store, None);
        same(&read_all(&again, ino, data.len()), &data, "reopened");
        // The thread survived the panic and takes the next batch.
        c.write(ino, 0, &data, false).unwrap();
        c.commit().unwrap();
        sealer.stop();
    }

    /// With the sealers stopped, writes seal in line and lose nothing.
    #[test]
    fn after_the_sealers_stop_writes_seal_in_line() {
        let store = Arc::new(Gate::default());
        let sealer = Sealer::start(1).unwrap();
        let c = open(&store, Some(sealer.clone()));
        let ino = file(&c, "f");
        sealer.stop();
        let data = vec![5u8; 5 << 20];
        c.write(ino, 0, &data, false).unwrap();
        assert_eq!(c.lock().buf.batches, 0);
        c.commit().unwrap();
        let again = open(&store, None);
        same(&read_all(&again, ino, data.len()), &data, "reopened");
    }
}
