//! The per-account failure limit, in the database: at most N failures per sliding window
//! per key (an account's logins, resets and escrow proofs, or one remembered-device
//! token). It is checked and counted inside the account's transaction, which holds the
//! account's lock on every replica, so the bound holds however many replicas there are
//! and however the guesses interleave. (The per-source limits stay in each replica's
//! memory, `limit.rs`; docs/ARCHITECTURE.md says why that is enough.)

use super::db::{DbError, Tx};
use std::time::Duration;

pub(crate) struct FailureLimit {
    attempts: u32,
    window_ms: i64,
}

impl FailureLimit {
    pub(crate) fn new(attempts: u32, window: Duration) -> Self {
        FailureLimit {
            attempts: attempts.max(1),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// `Ok(Err(seconds to wait))` when `key` already has the allowed number of failures
    /// within the window ending at `now` (Unix ms).
    pub(crate) fn check(
        &self,
        tx: &mut Tx<'_>,
        key: &str,
        now: i64,
    ) -> Result<Result<(), u64>, DbError> {
        let since = now.saturating_sub(self.window_ms);
        let recent = tx.failures(key, since, self.attempts)?;
        if recent.len() < self.attempts as usize {
            return Ok(Ok(()));
        }
        // The oldest of the newest `attempts` failures leaves the window first.
        let oldest = recent.last().copied().unwrap_or(now);
        let wait_ms = oldest.saturating_add(self.window_ms).saturating_sub(now);
        // Round up: "retry after 0 s" would invite an immediate retry that is refused.
        let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000);
        Ok(Err(secs.max(1)))
    }

    /// Counts one failure of `key` at `now`, and forgets failures older than the window.
    pub(crate) fn fail(&self, tx: &mut Tx<'_>, key: &str, now: i64) -> Result<(), DbError> {
        tx.prune_failures(now.saturating_sub(self.window_ms))?;
        tx.add_failure(key, now)
    }

    /// A success forgets `key`'s failures.
    pub(crate) fn reset(&self, tx: &mut Tx<'_>, key: &str) -> Result<(), DbError> {
        tx.clear_failures(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyservice::server::db::{self, DbLocation};

    #[test]
    fn n_failures_per_window_per_key_then_a_wait_that_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&DbLocation::Sqlite(dir.path().join("t.sqlite"))).unwrap();
        let limit = FailureLimit::new(3, Duration::from_secs(60));
        let mut tx = db.begin(None).unwrap();
        let t0 = 1_700_000_000_000;
        for i in 0..3 {
            assert_eq!(limit.check(&mut tx, "login:a", t0 + i).unwrap(), Ok(()));
            limit.fail(&mut tx, "login:a", t0 + i).unwrap();
        }
        assert_eq!(limit.check(&mut tx, "login:a", t0 + 3).unwrap(), Err(60));
        assert_eq!(limit.check(&mut tx, "login:b", t0 + 3).unwrap(), Ok(()));
        assert_eq!(
            limit.check(&mut tx, "login:a", t0 + 59_500).unwrap(),
            Err(1)
        );
        // the first failure left the window
        assert_eq!(
            limit.check(&mut tx, "login:a", t0 + 60_000).unwrap(),
            Ok(())
        );
        limit.reset(&mut tx, "login:a").unwrap();
        assert_eq!(limit.check(&mut tx, "login:a", t0 + 3).unwrap(), Ok(()));
        // old rows are pruned by later failures
        limit.fail(&mut tx, "login:c", t0 + 200_000).unwrap();
        let left = tx.rows("SELECT key FROM failures", &[]).unwrap();
        assert_eq!(left.len(), 1);
    }
}
