//! Counts the key service's open connections, per source and in all, and refuses one
//! that would go over either cap.
//!
//! The source here is always the TCP peer, also with `--trusted-proxy`: a proxy holds
//! many connections for many callers, and `X-Forwarded-For` is only read once a request
//! arrives, long after the connection was admitted. Behind a proxy, raise
//! `--max-connections-per-ip` to what the proxy may open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::keyservice::server::limit::Source;

/// Descriptors kept free below `RLIMIT_NOFILE` when the total cap is derived from it:
/// the listener, the runtime's epoll and wakers, std streams, the log, and the account
/// files that request threads open for a moment.
pub(crate) const FD_MARGIN: u64 = 64;
/// Total cap when the descriptor limit is unlimited or unreadable.
const TOTAL_FALLBACK: usize = 4096;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{0} connections are open, the most allowed in all")]
    Total(usize),
    #[error("{0} connections are open from this source, the most allowed from one")]
    PerSource(usize),
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Source, usize>,
}

/// The shared counter; cloning shares it.
#[derive(Clone)]
pub(crate) struct ConnCounter {
    max_total: usize,
    max_per_source: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; dropping it (when the connection's task ends) frees its slot.
pub(crate) struct ConnSlot {
    source: Source,
    counts: Arc<Mutex<Counts>>,
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Each update is a pair of integer steps done together under the lock, so a poisoned
    // lock still holds consistent counts.
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnCounter {
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Self {
        ConnCounter {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            counts: Arc::default(),
        }
    }

    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    /// Takes a slot for a connection from `ip`, or says which cap is full.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<ConnSlot, Refused> {
        let source = Source::of(ip);
        let mut c = lock(&self.counts);
        if c.total >= self.max_total {
            return Err(Refused::Total(c.total));
        }
        let n = c.per_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refused::PerSource(*n));
        }
        *n += 1;
        c.total += 1;
        Ok(ConnSlot {
            source,
            counts: self.counts.clone(),
        })
    }

    /// Connections open now, in all (the `cirrus_open_connections` gauge).
    pub(crate) fn open_total(&self) -> usize {
        lock(&self.counts).total
    }

    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let c = lock(&self.counts);
        (c.total, c.per_source.len())
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // No entry outlives its last connection: the table stays as small as the
                // set of sources connected right now.
                c.per_source.remove(&self.source);
            }
        }
    }
}

/// The default total cap: the process's soft `RLIMIT_NOFILE` less [`FD_MARGIN`], and a
/// `wanted` cap above that is lowered to it (past it, `accept` fails with EMFILE and
/// every client is refused, which is what the cap is there to prevent).
pub(crate) fn total_cap(wanted: Option<usize>) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let room = if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        TOTAL_FALLBACK
    } else {
        usize::try_from(lim.rlim_cur.saturating_sub(FD_MARGIN)).unwrap_or(TOTAL_FALLBACK)
    };
    match wanted {
        Some(w) if w > room => {
            log::warn!(
                "--max-connections {w} lowered to {room}: the descriptor limit (ulimit -n) \
                 less {FD_MARGIN} kept free"
            );
            room
        }
        Some(w) => w,
        None => room,
    }
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_total_caps_and_slots_free_on_drop() {
        let c = ConnCounter::new(3, 2);
        let a1 = c.admit(ip("10.0.0.1")).unwrap();
        let a2 = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1")).err(), Some(Refused::PerSource(2)));
        let b1 = c.admit(ip("10.0.0.2")).unwrap();
        // total full: even a new source is refused
        assert_eq!(c.admit(ip("10.0.0.3")).err(), Some(Refused::Total(3)));
        drop(a1);
        let a3 = c.admit(ip("10.0.0.1")).unwrap();
        drop((a2, a3, b1));
        assert_eq!(c.open(), (0, 0));
        assert!(c.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_v4_is_v4() {
        let c = ConnCounter::new(100, 1);
        let _a = c.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(c.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(c.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = c.admit(ip("192.0.2.7")).unwrap();
        assert!(c.admit(ip("::ffff:192.0.2.7")).is_err());
    }

    #[test]
    fn total_cap_stays_under_the_descriptor_limit() {
        let room = total_cap(None);
        assert!(room >= 1);
        assert_eq!(total_cap(Some(usize::MAX)), room);
        assert_eq!(total_cap(Some(1)), 1);
    }
}
