//! The persistent brake on second-factor-only paths (the data-recovery reset): consecutive
//! failures back off exponentially and lock the path for 24 hours after ten, kept in the
//! account's record so a restart forgets nothing, and cleared only by a right code on the
//! same path (a login does not clear it).

use serde::{Deserialize, Serialize};

/// Consecutive failures after which every further failure locks the path for a day.
pub(crate) const HARD_LOCK_AFTER: u32 = 10;
/// How long the hard lock lasts.
pub(crate) const HARD_LOCK_SECS: u64 = 24 * 3600;

/// Failure state of one guarded path of one account (times in Unix seconds).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailureGuard {
    pub consecutive: u32,
    /// No attempt is looked at before this time.
    pub locked_until: u64,
}

impl FailureGuard {
    /// `Err(seconds to wait)` while the path is locked.
    pub(crate) fn check(&self, now: u64) -> Result<(), u64> {
        if now < self.locked_until {
            Err(self.locked_until - now)
        } else {
            Ok(())
        }
    }

    /// Counts a failure in the whole second `now`: the next attempt waits at least 2^(n-1)
    /// seconds after the n-th consecutive failure (1 s, 2 s, ... 256 s), and a day from the
    /// tenth on.
    pub(crate) fn fail(&mut self, now: u64) {
        self.consecutive = self.consecutive.saturating_add(1);
        let wait = if self.consecutive >= HARD_LOCK_AFTER {
            HARD_LOCK_SECS
        } else {
            1u64 << (self.consecutive - 1)
        };
        // `now` is the clock floored to the second, so the failure happened somewhere in
        // [now, now + 1). Counting the wait from the end of that second makes it at least
        // `wait` long; from its start, a 1 s backoff could last a millisecond.
        self.locked_until = now.saturating_add(1).saturating_add(wait);
    }

    /// A right code on this path.
    pub(crate) fn succeed(&mut self) {
        *self = FailureGuard::default();
    }

    pub(crate) fn is_clear(&self) -> bool {
        *self == FailureGuard::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_locks_for_a_day_and_only_success_clears_it() {
        let mut g = FailureGuard::default();
        assert!(g.check(100).is_ok());
        let mut now = 1000;
        for n in 1..HARD_LOCK_AFTER {
            g.fail(now);
            let wait = 1u64 << (n - 1);
            // Counted from the end of the failure's second: a request at the last instant
            // of that second still waits the whole `wait`.
            assert_eq!(g.check(now), Err(wait + 1), "after {n} failures");
            assert_eq!(g.check(now + wait), Err(1), "after {n} failures");
            assert!(g.check(now + 1 + wait).is_ok());
            now += 1 + wait;
        }
        g.fail(now);
        assert_eq!(g.check(now), Err(HARD_LOCK_SECS + 1));
        assert_eq!(g.check(now + HARD_LOCK_SECS), Err(1));
        now += 1 + HARD_LOCK_SECS;
        assert!(g.check(now).is_ok());
        // Past ten, every failure locks for a day again.
        g.fail(now);
        assert_eq!(g.check(now), Err(HARD_LOCK_SECS + 1));
        g.succeed();
        assert!(g.is_clear() && g.check(now).is_ok());
        // Survives a round trip through the account file.
        g.fail(5);
        let back: FailureGuard = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }
}
