//! The uploader threads of the write-back: pick the next journal entry (objects before
//! the heads that reference them), send it with retries and backoff, and record the
//! outcome.

use super::*;

impl WriteBack {
    /// Whether nothing is left to send except heads held back by a conflict.
    /// Nothing more will go out for now: objects sent, and heads sent, in conflict, or
    /// held (a removed device).
    pub(super) fn drained(st: &St) -> bool {
        st.objects.is_empty()
            && (st.heads_held || st.heads.keys().all(|n| st.conflicts.contains_key(n)))
    }

    /// Waits until the queue is drained, `give_up` says so, or `stall` passes without a
    /// byte sent. Calls `progress` about every 200 ms. Returns the final status.
    pub fn wait_drained(
        &self,
        stall: Option<Duration>,
        give_up: &dyn Fn() -> bool,
        progress: &mut dyn FnMut(&SyncStatus),
    ) -> SyncStatus {
        let mut last_sent = self.lock().uploaded_bytes;
        let mut last_move = Instant::now();
        loop {
            let s = self.status();
            progress(&s);
            {
                let st = self.lock();
                if Self::drained(&st) {
                    break;
                }
                if st.uploaded_bytes != last_sent {
                    last_sent = st.uploaded_bytes;
                    last_move = Instant::now();
                }
                let _ = self
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .map(|(g, _)| drop(g));
            }
            if give_up() || stall.is_some_and(|d| last_move.elapsed() > d) {
                break;
            }
        }
        self.status()
    }

    pub(super) fn worker(self: Arc<Self>) {
        while let Some(job) = self.next_job() {
            let out = self.send(&job);
            self.finish(job, out);
        }
    }

    pub(super) fn next_job(&self) -> Option<Entry> {
        let mut st = self.lock();
        loop {
            if st.stop {
                return None;
            }
            let now = Instant::now();
            let wait = st.retry_at.filter(|t| *t > now).map(|t| t - now);
            if wait.is_none()
                && let Some(e) = Self::pick(&mut st)
            {
                return Some(e);
            }
            st = self
                .changed
                .wait_timeout(st, wait.unwrap_or(Duration::from_secs(1)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// The next thing to send: objects in order, any number at once; a head only when
    /// every object queued before it has been sent, one upload per head at a time.
    pub(super) fn pick(st: &mut St) -> Option<Entry> {
        // Two entries for one name (only a non-content-addressed object can have them) go
        // one after the other, or the older one could land last and win.
        let busy: HashSet<&str> = st
            .in_flight
            .iter()
            .filter_map(|s| st.objects.get(s))
            .map(|e| e.name.as_str())
            .collect();
        let obj = st
            .objects
            .iter()
            .find(|(s, e)| {
                !st.in_flight.contains(s)
                    && !st.damaged_seqs.contains(s)
                    && !busy.contains(e.name.as_str())
            })
            .map(|(_, e)| e.clone());
        if let Some(e) = obj {
            st.in_flight.insert(e.seq);
            return Some(e);
        }
        if st.heads_held {
            return None;
        }
        let first_obj = st.objects.keys().next().copied().unwrap_or(u64::MAX);
        let head = st
            .heads
            .iter()
            .filter(|(n, s)| {
                s.entry.seq < first_obj
                    && !st.heads_in_flight.contains_key(*n)
                    && !st.conflicts.contains_key(*n)
            })
            .min_by_key(|(_, s)| s.entry.seq)
            .map(|(_, s)| s.entry.clone());
        if let Some(e) = &head {
            st.heads_in_flight.insert(e.name.clone(), e.seq);
        }
        head
    }

    pub(super) fn send(&self, e: &Entry) -> Outcome {
        let data = match self.journal.read(e) {
            Ok(d) => d,
            Err(err) => return Outcome::Damaged(err.to_string()),
        };
        let res = match &e.base {
            None => self.remote.put(&e.name, &data),
            Some(base) => match self.remote.put_if(&e.name, &data, base.as_ref()) {
                Ok(_) => Ok(()),
                Err(StoreError::PreconditionFailed(_)) => {
                    // Sent before a crash, with the answer or the journal update lost?
                    match self.remote.get(&e.name) {
                        Ok(cur) if etag_of(&cur) == etag_of(&data) => Ok(()),
                        _ => {
                            return Outcome::Conflict(
                                "another device published this head first; the local changes stay in the journal".into(),
                            );
                        }
                    }
                }
                Err(err) => Err(err),
            },
        };
        match res {
            Ok(()) => Outcome::Sent(data),
            Err(err) => Outcome::Failed(err),
        }
    }

    pub(super) fn finish(&self, e: Entry, out: Outcome) {
        let mut st = self.lock();
        if e.is_head() {
            st.heads_in_flight.remove(&e.name);
            self.finish_head(&mut st, e, out);
        } else {
            st.in_flight.remove(&e.seq);
            self.finish_object(&mut st, e, out);
        }
        drop(st);
        self.changed.notify_all();
    }

    pub(super) fn sent(st: &mut St, len: u64) {
        st.offline_since = None;
        st.backoff = Duration::ZERO;
        st.retry_at = None;
        st.uploaded_objects += 1;
        st.uploaded_bytes += len;
    }

    pub(super) fn finish_object(&self, st: &mut St, e: Entry, out: Outcome) {
        match out {
            Outcome::Sent(data) => {
                Self::sent(st, e.len);
                debug!("uploaded {} ({} bytes)", e.name, e.len);
                self.cache.insert(&e.name, &data);
                if st.objects.remove(&e.seq).is_some() {
                    st.pending_bytes = st.pending_bytes.saturating_sub(e.len);
                }
                if st.by_name.get(&e.name) == Some(&e.seq) {
                    st.by_name.remove(&e.name);
                }
                self.journal.remove(&e);
            }
            // Objects have no compare-and-swap.
            Outcome::Conflict(_) => {}
            Outcome::Failed(err) => self.failed(st, &e, err),
            Outcome::Damaged(why) => {
                error!(
                    "upload of {}: {why}; heads journaled after it are held back",
                    e.name
                );
                st.damaged.push(why.clone());
                st.last_error = Some((now_secs(), why));
                st.damaged_seqs.insert(e.seq);
            }
        }
    }

    pub(super) fn failed(&self, st: &mut St, e: &Entry, err: StoreError) {
        let offline = matches!(err, StoreError::Unreachable { .. });
        if offline && st.offline_since.is_none() {
            st.offline_since = Some(Instant::now());
        }
        // One warning per failing spell; the rest at debug (status shows the last).
        let first = st.backoff.is_zero();
        st.backoff = (st.backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
        st.retry_at = Some(Instant::now() + st.backoff);
        if first {
            warn!(
                "upload of {} failed: {err}; queued writes stay in the journal and are retried with backoff",
                e.name
            );
        } else {
            debug!(
                "upload of {} failed: {err}; retrying in {} s",
                e.name,
                st.backoff.as_secs()
            );
        }
        st.last_error = Some((now_secs(), format!("{}: {err}", e.name)));
    }
}
