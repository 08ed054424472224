//! Failure-based rate limiting for the key service's guessable endpoints (login, reset,
//! escrow): at most N failures per sliding window per key (an account or a source IP).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, every call first drops keys with no recent failure, so a
/// flood of distinct names or addresses cannot grow the table without bound.
const PRUNE_ABOVE: usize = 10_000;

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
        let q = map.entry(key.to_string()).or_default();
        q.push_back(now);
        // Only the newest `attempts` failures matter for the decision.
        while q.len() > self.attempts as usize {
            q.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub(crate) fn reset(&self, key: &str) {
        self.lock().remove(key);
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
    fn success_resets() {
        let l = RateLimiter::new(2, Duration::from_secs(300));
        let t0 = Instant::now();
        l.fail("a", t0);
        l.fail("a", t0);
        assert!(l.check("a", t0).is_err());
        l.reset("a");
        assert_eq!(l.check("a", t0), Ok(()));
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
}
