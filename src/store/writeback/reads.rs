//! Reads through the write-back: journal, then disk cache, then the remote (with the
//! offline and retry rules); and the journal writes of objects.

use super::*;

impl WriteBack {
    /// Runs a read that needs the remote, failing fast while it is known to be offline.
    pub(super) fn remote_read<T>(
        &self,
        op: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        {
            let mut st = self.lock();
            if let Some(since) = st.offline_since {
                let recent = st
                    .last_probe
                    .is_some_and(|p| p.elapsed() < self.opts.offline_retry);
                if recent {
                    return Err(StoreError::Unreachable {
                        endpoint: "the store".into(),
                        cause: format!(
                            "offline for {} s (retried every {} s)",
                            since.elapsed().as_secs(),
                            self.opts.offline_retry.as_secs()
                        ),
                        timed_out: false,
                    });
                }
                st.last_probe = Some(Instant::now());
            }
        }
        let r = op();
        let mut st = self.lock();
        match &r {
            Err(StoreError::Unreachable { .. }) => {
                if st.offline_since.is_none() {
                    warn!("store unreachable; serving from the local cache");
                    st.offline_since = Some(Instant::now());
                }
                st.last_probe = Some(Instant::now());
            }
            Ok(_) | Err(StoreError::NotFound(_)) => {
                if st.offline_since.take().is_some() {
                    info!("store reachable again");
                    st.retry_at = None;
                    self.changed.notify_all();
                }
            }
            Err(_) => {}
        }
        r
    }

    /// A whole immutable object through the disk cache, fetched once however many readers
    /// want it, and checked against the hash its name carries.
    pub(super) fn fetch_immutable(
        &self,
        name: &str,
        hash: Option<[u8; 32]>,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(d) = self.cache.get(name) {
            return Ok(d);
        }
        let gate = {
            let mut f = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            f.entry(name.to_string()).or_default().clone()
        };
        let res = {
            let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
            match self.cache.get(name) {
                Some(d) => Ok(d),
                None => self.remote_read(|| self.remote.get(name)).and_then(|d| {
                    if let Some(h) = hash
                        && blake3::hash(&d).as_bytes() != &h
                    {
                        error!("store: {name} does not match its content hash");
                        return Err(StoreError::Corrupt(name.to_string()));
                    }
                    self.cache.insert(name, &d);
                    Ok(d)
                }),
            }
        };
        let mut f = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            f.remove(name);
        }
        res
    }

    pub(super) fn journal_object(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let seq = {
            let mut st = self.lock();
            if st.pending_bytes + data.len() as u64 > st.journal_max {
                let msg = format!(
                    "journal full ({} of {} bytes waiting for upload)",
                    st.pending_bytes, st.journal_max
                );
                warn!("{msg}: refusing {name}");
                st.last_error = Some((now_secs(), msg.clone()));
                return Err(StoreError::Full(msg));
            }
            st.next_seq += 1;
            // Reserve the space now so concurrent writers cannot overshoot together.
            st.pending_bytes += data.len() as u64;
            st.next_seq
        };
        self.journaled.store(true, Ordering::Relaxed);
        match self.journal.write(seq, name, None, data) {
            Ok(e) => {
                let mut st = self.lock();
                st.by_name.insert(name.to_string(), seq);
                st.objects.insert(seq, e);
                drop(st);
                self.changed.notify_all();
                Ok(())
            }
            Err(err) => {
                let mut st = self.lock();
                st.pending_bytes = st.pending_bytes.saturating_sub(data.len() as u64);
                Err(err)
            }
        }
    }

    pub(super) fn journal_entry(&self, name: &str) -> Option<Entry> {
        let st = self.lock();
        if let Some(s) = st.heads.get(name) {
            return Some(s.entry.clone());
        }
        st.by_name
            .get(name)
            .and_then(|seq| st.objects.get(seq))
            .cloned()
    }
}
