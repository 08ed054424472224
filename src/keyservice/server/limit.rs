//! Failure-based rate limiting per source address for the key service's guessable
//! endpoints (login, reset, escrow, sign-up): at most N failures per sliding window per
//! source, in this replica's memory (the per-account counts are in the database,
//! `failures.rs`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, every call first drops keys with no recent failure, so a
/// flood of distinct names or addresses cannot grow the table without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Hard cap on tracked keys. Pruning alone is not enough: a flood of fresh keys with one
/// recent failure each (new names, or addresses from many /64s) keeps every key recent.
/// Past the cap, the keys whose newest failure is oldest are dropped. The trade-off:
/// memory stays bounded, but such a flood can make the limiter forget real failures, so
/// a guesser with that many sources gains attempts; the cap is far above what honest
/// traffic fills within one window, so only a flood reaches it.
const MAX_KEYS: usize = 100_000;
/// How many keys one eviction drops, so the O(n) scan runs once per this many new keys
/// rather than on every failure.
const EVICT_BATCH: usize = MAX_KEYS / 10;

/// Where a request or connection comes from, for every per-source limit (the failure
/// limiters here and the connection caps in `conns`), so they all agree on what one
/// source is. An IPv6 client usually holds a whole /64 and can pick any address in it,
/// so the /64 counts as one source; IPv4-mapped addresses count as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Source(IpAddr::V6(bits.into()))
            }
            v4 => Source(v4),
        }
    }

    /// The key a [`RateLimiter`] counts this source's failures under.
    pub(crate) fn key(ip: IpAddr) -> String {
        Source::of(ip).to_string()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

pub(crate) struct RateLimiter {
    attempts: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub(crate) fn new(attempts: u32, window: Duration) -> Self {
        RateLimiter {
            attempts: attempts.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A panic while holding the lock cannot leave the map inconsistent (each update
        // is one push or pop), so a poisoned lock is still usable.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` when `key` already has the allowed number of failures
    /// within the window ending at `now`.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut map = self.lock();
        if map.len() > PRUNE_ABOVE {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let Some(q) = map.get_mut(key) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() < self.attempts as usize {
            return Ok(());
        }
        let oldest = q.front().copied().unwrap_or(now);
        let wait = self.window.saturating_sub(now.duration_since(oldest));
        // Round up: "retry after 0 s" would invite an immediate retry that is refused.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(secs.max(1))
    }

    /// Counts one failure for `key` at `now`.
    pub(crate) fn fail(&self, key: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            self.make_room(&mut map, now);
        }
        let q = map.entry(key.to_string()).or_default();
        q.push_back(now);
        // Only the newest `attempts` failures matter for the decision.
        while q.len() > self.attempts as usize {
            q.pop_front();
        }
    }

    /// Brings the table under [`MAX_KEYS`]: drops keys with no failure in the window, then,
    /// if that is not enough, the [`EVICT_BATCH`] keys whose newest failure is oldest.
    fn make_room(&self, map: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        let window = self.window;
        map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        if map.len() < MAX_KEYS {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = map
            .iter()
            .filter_map(|(k, q)| q.back().map(|t| (*t, k.clone())))
            .collect();
        let n = EVICT_BATCH.min(by_age.len());
        if n > 0 {
            by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        }
        for (_, k) in &by_age[..n] {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_failures_per_window_then_wait() {
        let l = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check("a", t0 + Duration::from_secs(i)), Ok(()));
            l.fail("a", t0 + Duration::from_secs(i));
        }
        // the 4th try within the window is refused until the first failure ages out
        assert_eq!(l.check("a", t0 + Duration::from_secs(10)), Err(50));
        assert_eq!(l.check("b", t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(l.check("a", t0 + Duration::from_millis(59_500)), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_secs(60)), Ok(()));
        // one slot freed: one more failure fills it again
        l.fail("a", t0 + Duration::from_secs(60));
        assert_eq!(l.check("a", t0 + Duration::from_secs(60)), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_secs(62)), Ok(()));
    }

    #[test]
    fn table_is_pruned() {
        let l = RateLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..(PRUNE_ABOVE + 5) {
            l.fail(&format!("k{i}"), t0);
        }
        let _ = l.check("x", t0 + Duration::from_secs(2));
        assert_eq!(l.lock().len(), 0);
    }

    #[test]
    fn a_flood_of_recent_keys_is_capped_dropping_the_oldest_failing() {
        let l = RateLimiter::new(1, Duration::from_secs(3600));
        let t0 = Instant::now();
        // the oldest failure, then enough fresh keys (all within the window) to fill the cap
        l.fail("old", t0);
        for i in 1..MAX_KEYS {
            l.fail(&format!("k{i}"), t0 + Duration::from_secs(1));
        }
        assert_eq!(l.lock().len(), MAX_KEYS);
        let later = t0 + Duration::from_secs(2);
        l.fail("new", later);
        let len = l.lock().len();
        assert!(len <= MAX_KEYS, "{len} keys tracked, over the cap");
        // the oldest-failing key was forgotten; the newest still counts
        assert_eq!(l.check("old", later), Ok(()));
        assert!(l.check("new", later).is_err());
        // a refill stays capped too
        for i in 0..MAX_KEYS {
            l.fail(&format!("r{i}"), later + Duration::from_secs(1));
        }
        assert!(l.lock().len() <= MAX_KEYS);
    }

    #[test]
    fn an_ipv6_64_is_one_source_key_and_mapped_v4_is_v4() {
        let key = |s: &str| Source::key(s.parse().unwrap());
        assert_eq!(key("2001:db8::1"), key("2001:db8::2"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_eq!(key("10.0.0.1"), "10.0.0.1");
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("2001:db8::1"), "2001:db8::/64");
    }
}
