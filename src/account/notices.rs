//! What the key service tells this device about its account (a data-recovery reset asked
//! for, cancelled or done), fetched with the device's remembered token: no password is
//! needed, so a mounted drive and `cirrus status` learn of a reset on their own.

use super::remote::{client_for, load_token};
use super::{AccountError, Unlocked};
use crate::keyservice::api::{Notice, NoticeKind, NoticesResp};
use crate::keyservice::client::{KeyClient, human_wait, printable};
use zeroize::Zeroizing;

/// What a device needs to read the notices; holds no account lock.
pub struct NoticeWatch {
    client: KeyClient,
    account: String,
    token: Zeroizing<String>,
}

impl NoticeWatch {
    pub fn fetch(&self) -> Result<NoticesResp, AccountError> {
        Ok(self.client.notices(&self.account, &self.token)?)
    }

    /// Cancels a pending data-recovery reset; `false`: none was pending.
    pub fn cancel_reset(&self) -> Result<bool, AccountError> {
        Ok(self.client.cancel_reset(&self.account, &self.token)?)
    }
}

impl Unlocked {
    /// The notice reader of this device: needs a key service and a remembered-device
    /// token (from a login with a TOTP code, or on an account without TOTP).
    pub fn notice_watch(&self) -> Result<NoticeWatch, AccountError> {
        let server = self
            .config
            .server
            .as_ref()
            .ok_or(AccountError::NoKeyService)?;
        let token = load_token(&self.home, &self.device_key).ok_or(AccountError::NotRemembered)?;
        Ok(NoticeWatch {
            client: client_for(server, self.config.kdf)?,
            account: server.account.clone(),
            token,
        })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One line for a person about a notice.
pub fn describe(n: &Notice) -> String {
    let ago = human_wait(now_secs().saturating_sub(n.at));
    // `from` is whatever the server wrote there: an address from an honest one, but a
    // hostile one could put escape sequences in it.
    let from = printable(&n.from);
    match n.kind {
        NoticeKind::ResetRequested => format!(
            "{ago} ago, {} asked the key service to reset the account password through data \
             recovery{}",
            from,
            n.effective_at
                .map(|t| format!(" (it could take effect {})", when(t)))
                .unwrap_or_default()
        ),
        NoticeKind::ResetCancelled => {
            format!("{ago} ago, a trusted device ({from}) cancelled the password reset")
        }
        NoticeKind::ResetCompleted => {
            format!("{ago} ago, the account password was reset through data recovery from {from}")
        }
        NoticeKind::WebSignIn => format!(
            "{ago} ago, someone signed in to the web front from {from} with the web password              and a TOTP code (`cirrus web sessions` lists the sessions, `cirrus web revoke`              ends them)"
        ),
    }
}

fn when(t: u64) -> String {
    let now = now_secs();
    if t <= now {
        "now".into()
    } else {
        format!("in {}", human_wait(t - now))
    }
}

/// The warning shown while a reset waits, or None.
pub fn pending_warning(r: &NoticesResp) -> Option<String> {
    r.pending_reset.map(|t| {
        format!(
            "a password reset of this account through data recovery is pending: it can take \
             effect {}. If you did not ask for it, run `{}` now (and change the account \
             password)",
            when(t),
            crate::hint::cmd_hint("account cancel-reset")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_source_is_shown_without_control_characters() {
        let hostile = format!("203.0.113.9\x1b[2K\x1b[1A\r{}", "z".repeat(5000));
        for kind in [
            NoticeKind::ResetRequested,
            NoticeKind::ResetCancelled,
            NoticeKind::ResetCompleted,
            NoticeKind::WebSignIn,
        ] {
            let shown = describe(&Notice {
                id: 1,
                kind,
                at: now_secs(),
                from: hostile.clone(),
                effective_at: Some(now_secs() + 60),
            });
            assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
            assert!(shown.contains("203.0.113.9\u{fffd}[2K"), "{shown:?}");
            assert!(shown.len() < 1000, "{} bytes", shown.len());
        }
    }
}
