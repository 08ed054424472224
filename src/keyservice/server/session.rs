//! Login sessions of the key service: random bearer tokens, kept in memory only (a restart
//! logs everyone out) and looked up by their BLAKE3 hash, never compared as strings.

use crate::crypto::{self, CryptoError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

struct Entry {
    account: String,
    expires: Instant,
    /// Until when the session counts as recently authenticated (it presented the password
    /// and, when enrolled, a fresh TOTP code): the sensitive requests need that.
    recent_until: Option<Instant>,
}

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
    /// BLAKE3(token bytes) → session. A hash-map lookup on the hash does not leak, through
    /// timing, how much of a guessed token matched a real one; and a memory dump of the
    /// server does not hold usable tokens.
    by_hash: Mutex<HashMap<[u8; 32], Entry>>,
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

impl Sessions {
    pub(crate) fn new(ttl: Duration, recent_window: Duration) -> Self {
        Sessions {
            ttl,
            recent_window,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn recent_window(&self) -> Duration {
        self.recent_window
    }

    /// Opens a session for `account`, already recent when the login proved every factor
    /// (`Recency::Recent`); returns its token.
    pub(crate) fn open(
        &self,
        account: &str,
        recency: Recency,
        now: Instant,
    ) -> Result<Zeroizing<String>, CryptoError> {
        let token = new_token()?;
        let mut map = self.lock();
        map.retain(|_, e| e.expires > now);
        map.insert(
            token_hash(&token),
            Entry {
                account: account.to_string(),
                expires: now + self.ttl,
                recent_until: (recency == Recency::Recent).then(|| now + self.recent_window),
            },
        );
        Ok(token)
    }

    /// The account of a live session and whether it is recent, or `None` (unknown or
    /// expired token).
    pub(crate) fn lookup(&self, token: &str, now: Instant) -> Option<(String, Recency)> {
        let h = token_hash(token);
        let mut map = self.lock();
        match map.get(&h) {
            Some(e) if e.expires > now => {
                let recency = match e.recent_until {
                    Some(t) if t > now => Recency::Recent,
                    _ => Recency::Stale,
                };
                Some((e.account.clone(), recency))
            }
            Some(_) => {
                map.remove(&h);
                None
            }
            None => None,
        }
    }

    /// The account of a live session, or `None` (unknown or expired token).
    pub(crate) fn account(&self, token: &str, now: Instant) -> Option<String> {
        self.lookup(token, now).map(|(account, _)| account)
    }

    /// Marks a live session recent from `now` (a `reauth` proved its factors again).
    /// False when the session is gone.
    pub(crate) fn mark_recent(&self, token: &str, now: Instant) -> bool {
        match self.lock().get_mut(&token_hash(token)) {
            Some(e) if e.expires > now => {
                e.recent_until = Some(now + self.recent_window);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn close(&self, token: &str) {
        self.lock().remove(&token_hash(token));
    }

    /// Ends every session of `account` (after a data-recovery reset).
    pub(crate) fn close_all(&self, account: &str) {
        self.lock().retain(|_, e| e.account != account);
    }

    /// Ends every session of `account` but the one of `keep` (after a password change:
    /// whoever holds another session may be why the password changes).
    pub(crate) fn close_others(&self, account: &str, keep: &str) {
        let keep = token_hash(keep);
        self.lock()
            .retain(|h, e| e.account != account || *h == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_stored_only_as_hashes() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let a = s.open("alice", Recency::Stale, t0).unwrap();
        let b = s.open("alice", Recency::Stale, t0).unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(*a, *b);
        // the table is keyed by BLAKE3(token); the token itself is not stored
        let map = s.lock();
        assert!(map.contains_key(&token_hash(&a)));
        assert!(!map.keys().any(|k| k.as_slice() == a.as_bytes()));
        drop(map);
        assert_eq!(s.account(&a, t0).as_deref(), Some("alice"));
        assert_eq!(s.account(&a.to_uppercase(), t0), None);
        assert_eq!(s.account("", t0), None);
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let a = s.open("alice", Recency::Stale, t0).unwrap();
        let b = s.open("bob", Recency::Stale, t0).unwrap();
        assert_eq!(
            s.account(&a, t0 + Duration::from_secs(59)).as_deref(),
            Some("alice")
        );
        assert_eq!(s.account(&a, t0 + Duration::from_secs(60)), None);
        assert_eq!(s.account(&b, t0).as_deref(), Some("bob"));
        s.close_all("bob");
        assert_eq!(s.account(&b, t0), None);
        let c = s.open("carol", Recency::Stale, t0).unwrap();
        s.close(&c);
        assert_eq!(s.account(&c, t0), None);
    }

    #[test]
    fn recency_lasts_its_window_and_reauth_renews_it() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let fresh = s.open("alice", Recency::Recent, t0).unwrap();
        let by_device = s.open("alice", Recency::Stale, t0).unwrap();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.lookup(&fresh, at(9)).map(|x| x.1), Some(Recency::Recent));
        assert_eq!(s.lookup(&fresh, at(10)).map(|x| x.1), Some(Recency::Stale));
        assert_eq!(s.lookup(&by_device, t0).map(|x| x.1), Some(Recency::Stale));
        assert!(s.mark_recent(&by_device, at(30)));
        assert_eq!(
            s.lookup(&by_device, at(39)).map(|x| x.1),
            Some(Recency::Recent)
        );
        // an expired session cannot be made recent again
        assert!(!s.mark_recent(&fresh, at(60)));
    }

    #[test]
    fn close_others_keeps_only_the_callers_session() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let mine = s.open("alice", Recency::Recent, t0).unwrap();
        let other = s.open("alice", Recency::Stale, t0).unwrap();
        let bob = s.open("bob", Recency::Stale, t0).unwrap();
        s.close_others("alice", &mine);
        assert!(s.account(&mine, t0).is_some());
        assert!(s.account(&other, t0).is_none());
        assert!(s.account(&bob, t0).is_some());
    }
}
