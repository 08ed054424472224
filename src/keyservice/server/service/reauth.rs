//! `reauth`: a session proves the account's factors again (the password's `auth` and, when
//! enrolled, a fresh TOTP code) and becomes recently authenticated, which the requests
//! that change credentials or destroy recovery need.

use super::*;

impl KeyService {
    pub(crate) fn reauth(&self, c: &Caller, req: ReauthReq) -> Result<ReauthResp, ApiError> {
        let name = self.session(c)?;
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        let auth = unhex_exact::<32>("auth", &req.auth)?;
        // The same counters as login: a stolen session must not give a password guesser
        // a second, unlimited door.
        let key = format!("login:{name}");
        // Checked before the Argon2 below, so a refused guess costs no KDF work; checked
        // again under the lock, where parallel guesses are counted one by one.
        self.read(|tx| self.limit_check(tx, &key, c.ip))?;
        self.locked_session(c, &name, Recency::Stale, |tx| {
            self.limit_check(tx, &key, c.ip)?;
            let mut a = Self::load(tx, &name)?;
            if !self.verify(&a.verifier, &auth[..]) {
                self.limit_fail(tx, &key, c.ip)?;
                log::info!("failed reauthentication for {name} from {}", c.ip);
                return Err(ApiError::Unauthorized("wrong password".into()));
            }
            if Self::totp_enrolled(&a) {
                let Some(code) = req.totp.as_deref() else {
                    return Err(ApiError::SecondFactor(
                        "this account has a second factor: reauthentication needs a fresh \
                         TOTP code"
                            .into(),
                    ));
                };
                // Records the code's step, so it is never accepted again.
                self.check_totp(tx, &mut a, code, &key, c.ip)?;
                tx.put_account(&a)?;
            }
            self.limit_success(tx, &key)?;
            if !self.sessions.mark_recent(tx, token, db::now_ms())? {
                return Err(ApiError::Unauthorized(
                    "the session is unknown or expired: log in again".into(),
                ));
            }
            log::info!("reauthentication for {name} from {}", c.ip);
            Ok(ReauthResp {
                recent_for: self.sessions.recent_window().as_secs(),
            })
        })
    }
}
