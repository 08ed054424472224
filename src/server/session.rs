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
}

pub(crate) struct Sessions {
    ttl: Duration,
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
    pub(crate) fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for `account`; returns its token.
    pub(crate) fn open(
        &self,
        account: &str,
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
            },
        );
        Ok(token)
    }

    /// The account of a live session, or `None` (unknown or expired token).
    pub(crate) fn account(&self, token: &str, now: Instant) -> Option<String> {
        let h = token_hash(token);
        let mut map = self.lock();
        match map.get(&h) {
            Some(e) if e.expires > now => Some(e.account.clone()),
            Some(_) => {
                map.remove(&h);
                None
            }
            None => None,
        }
    }

    pub(crate) fn close(&self, token: &str) {
        self.lock().remove(&token_hash(token));
    }

    /// Ends every session of `account` (after a data-recovery reset).
    pub(crate) fn close_all(&self, account: &str) {
        self.lock().retain(|_, e| e.account != account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_stored_only_as_hashes() {
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.open("alice", t0).unwrap();
        let b = s.open("alice", t0).unwrap();
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
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.open("alice", t0).unwrap();
        let b = s.open("bob", t0).unwrap();
        assert_eq!(
            s.account(&a, t0 + Duration::from_secs(59)).as_deref(),
            Some("alice")
        );
        assert_eq!(s.account(&a, t0 + Duration::from_secs(60)), None);
        assert_eq!(s.account(&b, t0).as_deref(), Some("bob"));
        s.close_all("bob");
        assert_eq!(s.account(&b, t0), None);
        let c = s.open("carol", t0).unwrap();
        s.close(&c);
        assert_eq!(s.account(&c, t0), None);
    }
}
