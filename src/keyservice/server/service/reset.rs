//! The data-recovery reset (a new password with a TOTP code alone) and the notice channel
//! that tells trusted devices of it: a right code starts a waiting period, a second right
//! code after it completes the reset, and a trusted device (by its remembered-device
//! token, no password needed) can read the notices and cancel the reset meanwhile.

use super::*;
use crate::keyservice::server::state::{MAX_NOTICES, PendingReset};

/// How long after its waiting period a pending reset may still be completed; later, a
/// new request starts a new waiting period.
const COMPLETE_WITHIN: u64 = 7 * 24 * 3600;

/// Appends a notice for the account's trusted devices.
pub(super) fn push_notice(
    a: &mut Account,
    kind: NoticeKind,
    now: u64,
    from: IpAddr,
    effective_at: Option<u64>,
) {
    let id = a.notices.last().map_or(1, |n| n.id.saturating_add(1));
    a.notices.push(Notice {
        id,
        kind,
        at: now,
        from: from.to_string(),
        effective_at,
    });
    if a.notices.len() > MAX_NOTICES {
        let excess = a.notices.len() - MAX_NOTICES;
        a.notices.drain(..excess);
    }
}

fn pending(a: &Account, now: u64) -> Option<&PendingReset> {
    a.pending_reset.as_ref().filter(|p| now < p.expires_at)
}

impl KeyService {
    /// Data recovery: a new password with a TOTP code and no session. The first right
    /// code only starts the waiting period (and tells the trusted devices); a right code
    /// after it completes the reset, which ends every session and forgets every
    /// remembered device, since whoever had them may be the reason for the reset. Wrong
    /// codes back off persistently ([`FailureGuard`]), on their own limiter key: a
    /// stranger's guesses here cost the owner's logins nothing.
    pub(crate) fn reset(&self, c: &Caller, req: ResetReq) -> Result<SessionResp, ApiError> {
        check_account_name(&req.account)?;
        let (salt, auth) = password_fields("new_", &req.new_salt, req.new_kdf, &req.new_auth)?;
        let key = format!("reset:{}", req.account);
        // Checked before the Argon2 below, so a refused guess costs no KDF work; checked
        // again under the lock, where parallel guesses are counted one by one.
        self.read(|tx| self.limit_check(tx, &key, c.ip))?;
        let verifier = self.make_verifier(&auth[..])?;
        self.locked(&req.account, |tx| {
            self.limit_check(tx, &key, c.ip)?;
            let now = now_secs();
            let Some(mut a) = tx.account(&req.account)? else {
                self.limit_fail(tx, &key, c.ip)?;
                return Err(ApiError::Unauthorized(
                    "wrong account name or TOTP code".into(),
                ));
            };
            if !a.drs {
                return Err(ApiError::Forbidden(
                    "data recovery is turned off for this account, so the key service cannot \
                     reset its password"
                        .into(),
                ));
            }
            if !Self::totp_enrolled(&a) {
                return Err(ApiError::Forbidden(
                    "this account has no TOTP factor, so the key service cannot check who asks \
                     for a password reset"
                        .into(),
                ));
            }
            if let Err(retry_after) = a.reset_guard.check(now) {
                return Err(ApiError::RateLimited { retry_after });
            }
            if let Err(e) = self.check_totp(tx, &mut a, &req.totp, &key, c.ip) {
                a.reset_guard.fail(now);
                tx.put_account(&a)?;
                log::warn!(
                    "account {}: wrong TOTP code for a data-recovery reset from {} ({} in a row)",
                    a.name,
                    c.ip,
                    a.reset_guard.consecutive
                );
                return Err(e);
            }
            a.reset_guard.succeed();
            if let Some(ready_in) = self.reset_waits(&mut a, now, c.ip) {
                tx.put_account(&a)?;
                return Err(ApiError::ResetPending { ready_in });
            }
            a.salt = hex::encode(&salt[..]);
            a.kdf = req.new_kdf;
            a.verifier = verifier;
            a.device_tokens.clear();
            let mut device_token = None;
            if req.remember_device {
                let t = new_token()?;
                a.device_tokens.push(hex::encode(token_hash(&t)));
                device_token = Some(t.to_string());
            }
            push_notice(&mut a, NoticeKind::ResetCompleted, now, c.ip, None);
            tx.put_account(&a)?;
            self.sessions.close_all(tx, &a.name)?;
            self.end_web_sessions(tx, &a.name)?;
            self.limit_success(tx, &key)?;
            log::warn!(
                "account {}: password reset through data recovery from {}",
                a.name,
                c.ip
            );
            // It has just set the password and proved the TOTP factor.
            self.open_session(tx, &a.name, Recency::Recent, device_token)
        })
    }

    /// Where the reset stands after a right code: `Some(seconds)` while it must wait
    /// (starting the waiting period, and telling the devices, if none is running), `None`
    /// when it may take effect now.
    fn reset_waits(&self, a: &mut Account, now: u64, from: IpAddr) -> Option<u64> {
        if let Some(p) = pending(a, now) {
            if now >= p.ready_at {
                a.pending_reset = None;
                return None;
            }
            return Some(p.ready_at - now);
        }
        let wait = self.cfg.reset_wait.as_secs();
        if wait == 0 {
            return None;
        }
        let ready_at = now.saturating_add(wait);
        a.pending_reset = Some(PendingReset {
            requested_at: now,
            ready_at,
            expires_at: ready_at.saturating_add(COMPLETE_WITHIN),
            from: from.to_string(),
        });
        push_notice(a, NoticeKind::ResetRequested, now, from, Some(ready_at));
        log::warn!(
            "account {}: data-recovery reset requested from {from}; it may complete in {wait} s",
            a.name
        );
        Some(wait)
    }

    /// The account a remembered-device token belongs to. Wrong tokens count against the
    /// source address only (a token is 256 random bits: guessing is hopeless, counting
    /// keeps it so).
    fn device_account(
        &self,
        tx: &mut Tx<'_>,
        c: &Caller,
        req: &DeviceReq,
    ) -> Result<Account, ApiError> {
        check_account_name(&req.account)?;
        let now = Instant::now();
        let ip = Source::key(c.ip);
        if let Err(retry_after) = self.ip_limit.check(&ip, now) {
            return Err(ApiError::RateLimited { retry_after });
        }
        let found = tx
            .account(&req.account)?
            .filter(|a| remembers(a, &req.device_token));
        found.ok_or_else(|| {
            self.ip_limit.fail(&ip, now);
            ApiError::Unauthorized(
                "this device is not remembered by the key service (its token was revoked, for \
                 example by a password change or reset): log in again with \
                 `cirrus account login --totp CODE`"
                    .into(),
            )
        })
    }

    /// `notices`: what the account's trusted devices should know, and any pending reset.
    pub(crate) fn notices(&self, c: &Caller, req: DeviceReq) -> Result<NoticesResp, ApiError> {
        let account = req.account.clone();
        self.locked(&account, |tx| {
            let a = self.device_account(tx, c, &req)?;
            let now = now_secs();
            Ok(NoticesResp {
                notices: a.notices.clone(),
                pending_reset: pending(&a, now).map(|p| p.ready_at),
            })
        })
    }

    /// `account/cancel-reset`: a trusted device ends a pending reset.
    pub(crate) fn cancel_reset(
        &self,
        c: &Caller,
        req: DeviceReq,
    ) -> Result<CancelResetResp, ApiError> {
        let account = req.account.clone();
        self.locked(&account, |tx| {
            let mut a = self.device_account(tx, c, &req)?;
            let now = now_secs();
            if pending(&a, now).is_none() {
                return Ok(CancelResetResp { cancelled: false });
            }
            a.pending_reset = None;
            push_notice(&mut a, NoticeKind::ResetCancelled, now, c.ip, None);
            tx.put_account(&a)?;
            log::warn!(
                "account {}: pending data-recovery reset cancelled by a trusted device from {}",
                a.name,
                c.ip
            );
            Ok(CancelResetResp { cancelled: true })
        })
    }
}
