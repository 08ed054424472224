//! Login sessions of the key service: random bearer tokens, stored in the database only as
//! their BLAKE3 hash (looked up by it, never compared as strings), so a session made on
//! one replica works on the others and a restart logs nobody out. Times are wall-clock
//! Unix milliseconds, which every replica shares.

use super::db::{SessionRow, Tx};
use super::state::StateError;
use crate::crypto::{self, CryptoError};
use std::time::Duration;
use zeroize::Zeroizing;

/// Whether a session may make sensitive requests now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recency {
    Recent,
    Stale,
}

pub(crate) struct Sessions {
    ttl: Duration,
    /// How long a login or `reauth` that proved every factor keeps a session recent.
    recent_window: Duration,
}

/// A fresh random 256-bit token as 64 lowercase hex digits.
pub(crate) fn new_token() -> Result<Zeroizing<String>, CryptoError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    crypto::random_bytes(&mut raw[..])?;
    Ok(Zeroizing::new(hex::encode(&raw[..])))
}

/// The hash under which a token (session or device) is stored. Tokens are hashed as the
/// text the client sends, so a malformed token simply finds nothing.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    crypto::hash(token.as_bytes())
}

/// Whether a stored session is live at `now`, and if so how recent.
pub(crate) fn recency(s: &SessionRow, now: i64) -> Option<Recency> {
    if s.expires_ms <= now {
        return None;
    }
    Some(match s.recent_until_ms {
        Some(t) if t > now => Recency::Recent,
        _ => Recency::Stale,
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    pub(crate) fn new(ttl: Duration, recent_window: Duration) -> Self {
        Sessions { ttl, recent_window }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn recent_window(&self) -> Duration {
        self.recent_window
    }

    /// Opens a session for `account`, already recent when the login proved every factor
    /// (`Recency::Recent`); returns its token. Expired sessions are forgotten here.
    pub(crate) fn open(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        recency: Recency,
        now: i64,
    ) -> Result<Zeroizing<String>, StateError> {
        let token = new_token()?;
        tx.prune_sessions(now)?;
        tx.put_session(
            &token_hash(&token),
            &SessionRow {
                account: account.to_string(),
                expires_ms: now.saturating_add(ms(self.ttl)),
                recent_until_ms: (recency == Recency::Recent)
                    .then(|| now.saturating_add(ms(self.recent_window))),
            },
        )?;
        Ok(token)
    }

    /// The account of a live session and whether it is recent, or `None` (unknown or
    /// expired token).
    pub(crate) fn lookup(
        &self,
        tx: &mut Tx<'_>,
        token: &str,
        now: i64,
    ) -> Result<Option<(String, Recency)>, StateError> {
        Ok(tx
            .session(&token_hash(token))?
            .and_then(|s| recency(&s, now).map(|r| (s.account, r))))
    }

    /// Marks a live session recent from `now` (a `reauth` proved its factors again).
    /// False when the session is gone.
    pub(crate) fn mark_recent(
        &self,
        tx: &mut Tx<'_>,
        token: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let until = now.saturating_add(ms(self.recent_window));
        Ok(tx.session_recent(&token_hash(token), until, now)?)
    }

    pub(crate) fn close(&self, tx: &mut Tx<'_>, token: &str) -> Result<(), StateError> {
        Ok(tx.delete_session(&token_hash(token))?)
    }

    /// Ends every session of `account` (after a data-recovery reset).
    pub(crate) fn close_all(&self, tx: &mut Tx<'_>, account: &str) -> Result<(), StateError> {
        Ok(tx.delete_sessions(account, None)?)
    }

    /// Ends every session of `account` but the one of `keep` (after a password change:
    /// whoever holds another session may be why the password changes).
    pub(crate) fn close_others(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        keep: &str,
    ) -> Result<(), StateError> {
        Ok(tx.delete_sessions(account, Some(&token_hash(keep)))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyservice::server::db::{self, Database, DbLocation};

    fn temp_db() -> (tempfile::TempDir, Box<dyn Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&DbLocation::Sqlite(dir.path().join("t.sqlite"))).unwrap();
        (dir, db)
    }

    fn sessions() -> Sessions {
        Sessions::new(Duration::from_secs(60), Duration::from_secs(10))
    }

    const T0: i64 = 1_700_000_000_000;

    fn at(secs: i64) -> i64 {
        T0 + secs * 1000
    }

    #[test]
    fn tokens_are_random_hex_and_stored_only_as_hashes() {
        let (_d, db) = temp_db();
        let s = sessions();
        let mut tx = db.begin(None).unwrap();
        let a = s.open(&mut tx, "alice", Recency::Stale, T0).unwrap();
        let b = s.open(&mut tx, "alice", Recency::Stale, T0).unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(*a, *b);
        // the table holds BLAKE3(token), never the token
        let stored = tx.rows("SELECT hash FROM sessions", &[]).unwrap();
        assert_eq!(stored.len(), 2);
        for row in stored {
            let h = row.into_iter().next().unwrap().blob("hash").unwrap();
            assert!(h == token_hash(&a) || h == token_hash(&b));
            assert_ne!(h, a.as_bytes());
        }
        let lookup = |tx: &mut Tx<'_>, t: &str| s.lookup(tx, t, T0).unwrap().map(|x| x.0);
        assert_eq!(lookup(&mut tx, &a).as_deref(), Some("alice"));
        assert_eq!(lookup(&mut tx, &a.to_uppercase()), None);
        assert_eq!(lookup(&mut tx, ""), None);
    }

    #[test]
    fn sessions_expire_close_and_outlive_the_process() {
        let (dir, db) = temp_db();
        let s = sessions();
        let mut tx = db.begin(None).unwrap();
        let a = s.open(&mut tx, "alice", Recency::Stale, T0).unwrap();
        let b = s.open(&mut tx, "bob", Recency::Stale, T0).unwrap();
        let c = s.open(&mut tx, "carol", Recency::Stale, T0).unwrap();
        tx.commit().unwrap();
        drop(db);
        // another process (a restart, another replica) sees them
        let db = db::open(&DbLocation::Sqlite(dir.path().join("t.sqlite"))).unwrap();
        let mut tx = db.begin(None).unwrap();
        let acct = |tx: &mut Tx<'_>, t: &str, when| s.lookup(tx, t, when).unwrap().map(|x| x.0);
        assert_eq!(acct(&mut tx, &a, at(59)).as_deref(), Some("alice"));
        assert_eq!(acct(&mut tx, &a, at(60)), None);
        s.close_all(&mut tx, "bob").unwrap();
        assert_eq!(acct(&mut tx, &b, T0), None);
        s.close(&mut tx, &c).unwrap();
        assert_eq!(acct(&mut tx, &c, T0), None);
        // opening a session later forgets the expired ones
        s.open(&mut tx, "dave", Recency::Stale, at(61)).unwrap();
        assert!(tx.session(&token_hash(&a)).unwrap().is_none());
    }

    #[test]
    fn recency_lasts_its_window_and_reauth_renews_it() {
        let (_d, db) = temp_db();
        let s = sessions();
        let mut tx = db.begin(None).unwrap();
        let fresh = s.open(&mut tx, "alice", Recency::Recent, T0).unwrap();
        let by_device = s.open(&mut tx, "alice", Recency::Stale, T0).unwrap();
        let rec = |tx: &mut Tx<'_>, t: &str, when| s.lookup(tx, t, when).unwrap().map(|x| x.1);
        assert_eq!(rec(&mut tx, &fresh, at(9)), Some(Recency::Recent));
        assert_eq!(rec(&mut tx, &fresh, at(10)), Some(Recency::Stale));
        assert_eq!(rec(&mut tx, &by_device, T0), Some(Recency::Stale));
        assert!(s.mark_recent(&mut tx, &by_device, at(30)).unwrap());
        assert_eq!(rec(&mut tx, &by_device, at(39)), Some(Recency::Recent));
        // an expired session cannot be made recent again
        assert!(!s.mark_recent(&mut tx, &fresh, at(60)).unwrap());
    }

    #[test]
    fn close_others_keeps_only_the_callers_session() {
        let (_d, db) = temp_db();
        let s = sessions();
        let mut tx = db.begin(None).unwrap();
        let mine = s.open(&mut tx, "alice", Recency::Recent, T0).unwrap();
        let other = s.open(&mut tx, "alice", Recency::Stale, T0).unwrap();
        let bob = s.open(&mut tx, "bob", Recency::Stale, T0).unwrap();
        s.close_others(&mut tx, "alice", &mine).unwrap();
        let live = |tx: &mut Tx<'_>, t: &str| s.lookup(tx, t, T0).unwrap().is_some();
        assert!(live(&mut tx, &mine));
        assert!(!live(&mut tx, &other));
        assert!(live(&mut tx, &bob));
    }
}
