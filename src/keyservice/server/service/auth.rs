//! What a caller proves and how often it may try: the Argon2id verifier over the
//! client's `auth`, sessions and their recency, the per-account and per-address rate
//! limits, and TOTP codes.

use super::*;

impl KeyService {
    pub(super) fn argon2(&self) -> Result<argon2::Argon2<'static>, ApiError> {
        let p = argon2::Params::new(
            self.cfg.verifier_memory_kib,
            self.cfg.verifier_time,
            1,
            None,
        )
        .map_err(|e| ApiError::Internal(format!("verifier parameters: {e}")))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            p,
        ))
    }

    /// Argon2id PHC string over `auth` with a fresh random salt and the configured cost.
    pub(super) fn make_verifier(&self, auth: &[u8]) -> Result<String, ApiError> {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut raw = [0u8; 16];
        crypto::random_bytes(&mut raw)?;
        let salt = SaltString::encode_b64(&raw).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(self
            .argon2()?
            .hash_password(auth, &salt)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .to_string())
    }

    /// Checks `auth` against a stored verifier, with the cost recorded in it (so changing
    /// `--verifier-*` does not lock out existing accounts).
    pub(super) fn verify(&self, verifier: &str, auth: &[u8]) -> bool {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        match PasswordHash::new(verifier) {
            Ok(h) => argon2::Argon2::default().verify_password(auth, &h).is_ok(),
            Err(e) => {
                log::error!("an account verifier is not a PHC string: {e}");
                false
            }
        }
    }

    /// The caller's account, from its bearer token.
    pub(super) fn session(&self, c: &Caller) -> Result<String, ApiError> {
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        let found = self.read(|tx| Ok(self.sessions.lookup(tx, token, db::now_ms())?))?;
        found.map(|(account, _)| account).ok_or_else(|| {
            ApiError::Unauthorized("the session is unknown or expired: log in again".into())
        })
    }

    /// The caller's account, from a bearer token whose session is recently authenticated:
    /// what every request that changes credentials or destroys recovery checks first, so
    /// a stolen session token alone cannot.
    pub(super) fn recent_session(&self, c: &Caller) -> Result<String, ApiError> {
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        match self.read(|tx| Ok(self.sessions.lookup(tx, token, db::now_ms())?))? {
            Some((account, Recency::Recent)) => Ok(account),
            Some((_, Recency::Stale)) => Err(ApiError::ReauthRequired),
            None => Err(ApiError::Unauthorized(
                "the session is unknown or expired: log in again".into(),
            )),
        }
    }

    /// Opens a session; `Recency::Recent` when the caller has just proved every factor
    /// the account has (password, and a fresh TOTP code when enrolled).
    pub(super) fn open_session(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        recency: Recency,
        device_token: Option<String>,
    ) -> Result<SessionResp, ApiError> {
        let token = self.sessions.open(tx, account, recency, db::now_ms())?;
        Ok(SessionResp {
            token: token.to_string(),
            expires_in: self.sessions.ttl().as_secs(),
            device_token,
            recent_for: match recency {
                Recency::Recent => self.sessions.recent_window().as_secs(),
                Recency::Stale => 0,
            },
        })
    }

    /// The account key's count (in the database) and the source address's (in this
    /// replica), before an attempt.
    pub(super) fn limit_check(
        &self,
        tx: &mut Tx<'_>,
        key: &str,
        ip: IpAddr,
    ) -> Result<(), ApiError> {
        let a = self.acct_limit.check(tx, key, db::now_ms())?;
        let i = self.ip_limit.check(&Source::key(ip), Instant::now());
        match (a, i) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Ok(())) | (Ok(()), Err(x)) => Err(ApiError::RateLimited { retry_after: x }),
            (Err(x), Err(y)) => Err(ApiError::RateLimited {
                retry_after: x.max(y),
            }),
        }
    }

    /// The account counter alone, for attempts counted per remembered-device token.
    pub(super) fn limit_check_key(&self, tx: &mut Tx<'_>, key: &str) -> Result<(), ApiError> {
        self.acct_limit
            .check(tx, key, db::now_ms())?
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    pub(super) fn limit_fail_key(&self, tx: &mut Tx<'_>, key: &str) -> Result<(), ApiError> {
        Ok(self.acct_limit.fail(tx, key, db::now_ms())?)
    }

    pub(super) fn limit_fail(
        &self,
        tx: &mut Tx<'_>,
        key: &str,
        ip: IpAddr,
    ) -> Result<(), ApiError> {
        self.ip_limit.fail(&Source::key(ip), Instant::now());
        Ok(self.acct_limit.fail(tx, key, db::now_ms())?)
    }

    /// A success forgets the account's failures. The source address's failures are kept
    /// until they age out: otherwise a guesser could clear its address's count with
    /// logins to an account of its own between guesses at others.
    pub(super) fn limit_success(&self, tx: &mut Tx<'_>, key: &str) -> Result<(), ApiError> {
        Ok(self.acct_limit.reset(tx, key)?)
    }

    pub(super) fn totp_factor(&self, a: &Account) -> Result<Option<TotpFactor>, ApiError> {
        let Some(t) = &a.totp else { return Ok(None) };
        let secret = self.master.unseal(&a.name, "totp-secret", &t.secret)?;
        let f = TotpFactor::from_secret(
            secret.to_vec(),
            6,
            &a.name,
            t.last_step,
            self.cfg.totp_period,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Some(f))
    }

    /// Checks a TOTP code of an enrolled account and records its step (so it is never
    /// accepted again); counts a failure against `limit_key`.
    pub(super) fn check_totp(
        &self,
        tx: &mut Tx<'_>,
        a: &mut Account,
        code: &str,
        limit_key: &str,
        ip: IpAddr,
    ) -> Result<(), ApiError> {
        let mut f = self
            .totp_factor(a)?
            .ok_or_else(|| ApiError::Internal("TOTP state vanished".into()))?;
        match f.verify(code, now_secs()) {
            Ok(()) => {
                if let Some(t) = &mut a.totp {
                    t.last_step = f.last_step();
                }
                Ok(())
            }
            Err(e) => {
                self.limit_fail(tx, limit_key, ip)?;
                Err(ApiError::Unauthorized(match e {
                    TotpCheck::Invalid => "wrong or expired TOTP code".into(),
                    TotpCheck::Reused => {
                        "that TOTP code was already used; wait for the next one".into()
                    }
                }))
            }
        }
    }

    pub(super) fn totp_enrolled(a: &Account) -> bool {
        a.totp.as_ref().is_some_and(|t| t.confirmed)
    }
}
