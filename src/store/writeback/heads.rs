//! Head slots of the write-back: the newest local head of each category waits in the
//! journal until an uploader publishes it with the remote's compare-and-swap against the
//! version it was based on; a lost swap is a conflict the sync layer merges (`rebase`).

use super::*;

impl WriteBack {
    /// The head `name` as the remote store has it now (not the journal's), without
    /// changing what the local head is based on. `None`: the store has none.
    pub fn fetch_remote_head(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.remote_read(|| self.remote.get(name)) {
            Ok(d) => Ok(Some(d)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The remote version of `name` the local head builds on, as last seen.
    pub fn known_etag(&self, name: &str) -> Option<Etag> {
        self.lock().known.get(name).copied().flatten()
    }

    /// The remote head object the local head builds on: the common base for a merge.
    pub fn head_base(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let base = st.bases.get(name)?;
        // It must be the version the journal's slot (or the last read) is based on.
        let expect = match st.heads.get(name) {
            Some(slot) => slot.entry.base.flatten(),
            None => st.known.get(name).copied().flatten(),
        };
        (expect == Some(etag_of(base))).then(|| base.clone())
    }

    /// After a merge (or fast-forward) onto `remote`: the local head now builds on it.
    /// The slot of the superseded local head is dropped (the merged head replaces it).
    pub fn rebase(&self, name: &str, remote: &[u8]) {
        let mut st = self.lock();
        if let Some(old) = st.heads.remove(name) {
            self.retire(&mut st, old.entry);
        }
        st.conflicts.remove(name);
        st.rebasing.remove(name);
        st.known.insert(name.to_string(), Some(etag_of(remote)));
        self.cache.insert(name, remote);
        self.set_base(&mut st, name, remote);
        drop(st);
        self.changed.notify_all();
    }

    /// Drops a head slot that a newer head or a rebase replaced: its bytes stop counting,
    /// its file goes now, or when its upload ends if it is on its way.
    pub(super) fn retire(&self, st: &mut St, old: Entry) {
        st.pending_bytes = st.pending_bytes.saturating_sub(old.len);
        if st.heads_in_flight.get(&old.name) == Some(&old.seq) {
            st.retired.insert(old.seq);
        } else {
            self.journal.remove(&old);
        }
    }

    /// A merge onto `remote` is about to commit: its head (the next `put_if` of `name`
    /// expecting `remote`) replaces the journal's slot in one durable write, and only
    /// then does `remote` become the base. Until that write, the old slot stays.
    pub fn rebase_on_next(&self, name: &str, remote: &[u8]) {
        self.lock().rebasing.insert(
            name.to_string(),
            Rebase {
                remote: remote.to_vec(),
                is_base: true,
            },
        );
    }

    /// Like [`WriteBack::rebase_on_next`] for a remote head that is replaced, not merged
    /// (published by a removed device): the next head overwrites it, and the base of
    /// later merges stays the last trusted head.
    pub fn supersede_on_next(&self, name: &str, remote: &[u8]) {
        self.lock().rebasing.insert(
            name.to_string(),
            Rebase {
                remote: remote.to_vec(),
                is_base: false,
            },
        );
    }

    pub(super) fn set_base(&self, st: &mut St, name: &str, obj: &[u8]) {
        let path = self
            .bases_dir
            .join(format!("{}.head", name.replace('/', "~")));
        if let Err(e) = crate::store::write_file_atomic(&path, obj) {
            warn!("journal: cannot keep the base of {name}: {e}");
        }
        st.bases.insert(name.to_string(), obj.to_vec());
    }

    /// Whether a head `name` waits in the journal (not in the store yet).
    pub fn head_pending(&self, name: &str) -> bool {
        self.lock().heads.contains_key(name)
    }

    /// Stops publishing heads for good (this process): the device was removed from the
    /// account, and its changes would only be refused. They stay in the journal.
    pub fn hold_heads(&self, why: &str) {
        let mut st = self.lock();
        if !st.heads_held {
            warn!("{why}: no more changes are sent; they stay in the journal");
            st.heads_held = true;
            st.last_error = Some((now_secs(), why.to_string()));
        }
    }

    /// Whether any head waits in the journal.
    pub fn any_head_pending(&self) -> bool {
        !self.lock().heads.is_empty()
    }

    /// Whether some head waits for a merge (another device published first).
    pub fn has_conflicts(&self) -> bool {
        !self.lock().conflicts.is_empty()
    }

    /// Waits until the journal holds no head `name` any more (it reached the store),
    /// starting the uploader if this process has none. `false`: it did not within
    /// `timeout`, the store has been unreachable for [`OFFLINE_GIVE_UP`], or it met a
    /// head published elsewhere and nothing here merges.
    pub fn wait_published(self: &Arc<Self>, name: &str, timeout: Duration) -> bool {
        if self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            self.start(2);
        }
        let started = Instant::now();
        let deadline = started + timeout;
        let mut st = self.lock();
        if st.offline_since.is_some() {
            // It may be back: try now rather than at the end of the backoff.
            st.retry_at = None;
            st.backoff = Duration::ZERO;
            st.last_probe = None;
            self.changed.notify_all();
        }
        loop {
            if !st.heads.contains_key(name) {
                return true;
            }
            let stuck = st.conflicts.contains_key(name) && !self.merging.load(Ordering::Relaxed);
            // Unreachable for a while during this wait: the caller learns now, not after
            // the whole timeout.
            let offline = st
                .offline_since
                .is_some_and(|t| t.max(started).elapsed() >= timeout.min(OFFLINE_GIVE_UP));
            if stuck || offline || Instant::now() >= deadline {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    pub(super) fn finish_head(&self, st: &mut St, e: Entry, out: Outcome) {
        let current = st.heads.get(&e.name).is_some_and(|s| s.entry.seq == e.seq);
        let retired = st.retired.remove(&e.seq);
        if retired {
            // Replaced while on its way: whatever happened, its file is done with.
            self.journal.remove(&e);
        }
        match out {
            Outcome::Sent(data) => {
                Self::sent(st, e.len);
                let etag = etag_of(&data);
                debug!("uploaded head {}", e.name);
                st.known.insert(e.name.clone(), Some(etag));
                if current {
                    st.heads.remove(&e.name);
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                    self.journal.remove(&e);
                    self.cache.insert(&e.name, &data);
                    self.set_base(st, &e.name, &data);
                    return;
                }
                // A newer head of the same lineage was journaled meanwhile: it now
                // builds on the one just published. (After a rebase the newer slot has
                // another base: it then meets a conflict and is merged.)
                let same_base = st.heads.get(&e.name).map(|s| s.entry.base == e.base);
                if same_base != Some(false) {
                    self.cache.insert(&e.name, &data);
                    self.set_base(st, &e.name, &data);
                }
                if same_base == Some(true)
                    && let Some(slot) = st.heads.get_mut(&e.name)
                {
                    match self.journal.read(&slot.entry).and_then(|d| {
                        self.journal
                            .write(slot.entry.seq, &e.name, Some(Some(&etag)), &d)
                    }) {
                        Ok(n) => slot.entry = n,
                        Err(err) => {
                            error!("journal: cannot rebase head {}: {err}", e.name);
                            slot.entry.base = Some(Some(etag));
                        }
                    }
                }
            }
            Outcome::Conflict(why) => {
                if current {
                    info!("upload of {}: {why}", e.name);
                    st.conflicts.insert(e.name.clone(), why);
                }
            }
            Outcome::Failed(err) => {
                if !retired {
                    self.failed(st, &e, err);
                }
            }
            Outcome::Damaged(why) => {
                error!("upload of {}: {why}", e.name);
                st.damaged.push(why.clone());
                st.last_error = Some((now_secs(), why));
                if current {
                    st.heads.remove(&e.name);
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                }
            }
        }
    }

    /// The version of a head a compare-and-swap is checked against: the journal's slot,
    /// else the remote's as last seen (asked once if never seen).
    pub(super) fn local_head_etag(&self, name: &str) -> Result<Option<Etag>, StoreError> {
        {
            let st = self.lock();
            if let Some(s) = st.heads.get(name) {
                return Ok(Some(s.etag));
            }
            if let Some(k) = st.known.get(name) {
                return Ok(*k);
            }
        }
        match self.get(name) {
            Ok(d) => Ok(Some(etag_of(&d))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn journal_head(
        &self,
        name: &str,
        data: &[u8],
        expected: Option<&Etag>,
    ) -> Result<Etag, StoreError> {
        let mut st = self.lock();
        let rebase_to = st
            .rebasing
            .get(name)
            .filter(|r| expected == Some(&etag_of(&r.remote)))
            .cloned();
        let (cur, base) = match (&rebase_to, st.heads.get(name)) {
            (Some(r), _) => (Some(etag_of(&r.remote)), Some(etag_of(&r.remote))),
            (None, Some(s)) => (Some(s.etag), s.entry.base.unwrap_or(None)),
            (None, None) => {
                let k = match st.known.get(name).copied() {
                    Some(k) => k,
                    None => {
                        drop(st);
                        let local = self.local_head_etag(name)?;
                        st = self.lock();
                        st.known.get(name).copied().unwrap_or(local)
                    }
                };
                (k, k)
            }
        };
        if cur.as_ref() != expected {
            return Err(StoreError::PreconditionFailed(name.to_string()));
        }
        st.next_seq += 1;
        let seq = st.next_seq;
        // Written under the lock: the slot and its file change together.
        self.journaled.store(true, Ordering::Relaxed);
        let e = self.journal.write(seq, name, Some(base.as_ref()), data)?;
        let etag = etag_of(data);
        st.pending_bytes += e.len;
        if let Some(old) = st.heads.insert(name.to_string(), Slot { entry: e, etag }) {
            self.retire(&mut st, old.entry);
        }
        if let Some(r) = rebase_to {
            st.rebasing.remove(name);
            st.conflicts.remove(name);
            st.known.insert(name.to_string(), Some(etag_of(&r.remote)));
            self.cache.insert(name, &r.remote);
            if r.is_base {
                self.set_base(&mut st, name, &r.remote);
            }
        }
        drop(st);
        self.changed.notify_all();
        Ok(etag)
    }
}
