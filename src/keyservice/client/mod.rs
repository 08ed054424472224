//! The blocking client of `cirrus serve`, for the CLI and the account code: HTTPS with the
//! server's certificate pinned by fingerprint, and the client half of the password scheme
//! (the server sees an Argon2id-derived `auth` value, never the password).

mod session;

use super::api::{self, *};
use super::pin::{Fingerprint, PinMode, PinVerifier};
use crate::crypto::{self, SecretKey};
use crate::keys::{self, KdfParams, KeyError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The account password: the same zeroizing, never-printed type as the device passcode.
pub use crate::keys::Passcode as Password;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the key service at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error(
        "the key service presented certificate {got}, but this device trusts {expected}: the \
         server's identity has changed. Do not continue unless you know why (for example a \
         planned certificate change): someone may be intercepting the connection"
    )]
    FingerprintMismatch {
        expected: Fingerprint,
        got: Fingerprint,
    },
    #[error("{0:?} is not a key service URL (expected https://HOST:PORT)")]
    BadUrl(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    SecondFactorRequired(String),
    /// A request that changes credentials or recovery, on a session that is not recently
    /// authenticated: [`Session::reauth`] first.
    #[error("{0}")]
    ReauthRequired(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error("wrong escrow proof; {remaining} more wrong tries destroy the escrow record")]
    EscrowWrong { remaining: u32 },
    #[error("the escrow record was destroyed after too many wrong proofs")]
    EscrowDestroyed,
    #[error(
        "the key service started the waiting period of the password reset: it can be \
         completed in {} (run the same command again then, with a new TOTP code); \
         the account's trusted devices have been told and can cancel it",
        crate::keyservice::client::human_wait(*ready_in)
    )]
    ResetPending { ready_in: u64 },
    #[error("{0}")]
    SignupClosed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("the key service refused the request: {0}")]
    BadRequest(String),
    #[error("the key service failed: {0}")]
    Server(String),
    #[error("unexpected answer from the key service: {0}")]
    Protocol(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What proves the second factor at login, when the account has TOTP enrolled.
pub enum SecondFactor {
    None,
    /// A 6-digit code from the authenticator app.
    Totp(String),
    /// A code, from a device that has a remembered token already: a new token replaces
    /// it on the server (with `remember_device`), so the device keeps one entry there.
    TotpReplacing {
        code: String,
        old: Zeroizing<String>,
    },
    /// The token a previous login with `remember_device` returned.
    DeviceToken(Zeroizing<String>),
}

/// The URL's origin (`https://host:port`), host and port.
fn parse_url(url: &str) -> Result<(String, String, u16), ClientError> {
    let bad = || ClientError::BadUrl(url.to_string());
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => 443,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), 443),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((format!("https://{authority}"), host, port))
}

/// Connects to `url` and returns the fingerprint of the certificate it presents, without
/// trusting it: for the first-contact prompt ("is this the server's fingerprint?"), like
/// ssh's unknown-host question.
pub fn probe(url: &str) -> Result<Fingerprint, ClientError> {
    let (origin, host, port) = parse_url(url)?;
    let connect = |cause: String| ClientError::Connect {
        url: origin.clone(),
        cause,
    };
    let verifier = PinVerifier::new(PinMode::Probe);
    let config = verifier
        .client_config()
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    // The name only goes into SNI: the verifier ignores it.
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| ClientError::BadUrl(url.to_string()))?;
    let addrs = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| connect(e.to_string()))?;
    let mut last = String::from("no address found");
    for addr in addrs {
        let mut tcp = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(t) => t,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        tcp.set_read_timeout(Some(REQUEST_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(REQUEST_TIMEOUT)))
            .map_err(|e| connect(e.to_string()))?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config.clone()), name.clone())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The verifier aborts the handshake as soon as it has seen the certificate.
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                last = e.to_string();
                break;
            }
        }
        if let Some(fp) = verifier.seen() {
            return Ok(fp);
        }
    }
    Err(connect(last))
}

/// The hash a client stores as an escrow verifier for `proof` (`escrow/put`).
pub fn escrow_verifier(proof: &[u8]) -> [u8; 32] {
    crypto::hash(proof)
}

/// A connection to one key service, trusted by its pinned certificate fingerprint.
#[derive(Clone)]
pub struct KeyClient {
    origin: String,
    agent: ureq::Agent,
    pin: Fingerprint,
    verifier: Arc<PinVerifier>,
    min_kdf: KdfParams,
}

/// A logged-in account. Dropping it does not end the session on the server (it expires);
/// [`Session::logout`] does.
pub struct Session {
    client: KeyClient,
    account: String,
    token: Zeroizing<String>,
    wrap_key: SecretKey,
    /// Until when (by this side's clock, a little early) the server counts the session
    /// as recently authenticated; `None`: it does not.
    recent_until: Mutex<Option<Instant>>,
}

/// Taken off the server's recency window, so this side never believes a session recent
/// when the server no longer does (the answer took time to arrive).
const RECENT_MARGIN: Duration = Duration::from_secs(2);

/// When a session stops being recent, from the `recent_for` seconds of an answer.
fn recent_deadline(recent_for: u64) -> Option<Instant> {
    let window = Duration::from_secs(recent_for).checked_sub(RECENT_MARGIN)?;
    (!window.is_zero()).then(|| Instant::now() + window)
}

fn key_error(status: u16, body: &str, retry_header: Option<u64>) -> ClientError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let msg = parsed
        .as_ref()
        // The one place the client takes the server's words: never raw to a terminal.
        .map(|b| printable(&b.error))
        .unwrap_or_else(|| format!("HTTP status {status}"));
    let code = parsed.as_ref().map(|b| b.code.as_str()).unwrap_or("");
    match (status, code) {
        (_, api::code::SECOND_FACTOR) => ClientError::SecondFactorRequired(msg),
        (_, api::code::REAUTH_REQUIRED) => ClientError::ReauthRequired(msg),
        (_, api::code::ESCROW_WRONG) => ClientError::EscrowWrong {
            remaining: parsed.and_then(|b| b.remaining).unwrap_or(0),
        },
        (_, api::code::ESCROW_DESTROYED) => ClientError::EscrowDestroyed,
        (_, api::code::RESET_PENDING) => ClientError::ResetPending {
            ready_in: parsed
                .and_then(|b| b.retry_after)
                .or(retry_header)
                .unwrap_or(0),
        },
        (_, api::code::SIGNUP_CLOSED) => ClientError::SignupClosed(msg),
        (429, _) => ClientError::RateLimited {
            retry_after: parsed
                .and_then(|b| b.retry_after)
                .or(retry_header)
                .unwrap_or(60),
        },
        (401, _) => ClientError::Unauthorized(msg),
        (403, _) => ClientError::Forbidden(msg),
        (404, _) => ClientError::NotFound(msg),
        (409, _) => ClientError::Conflict(msg),
        (410, _) => ClientError::Gone(msg),
        (400 | 413, _) => ClientError::BadRequest(msg),
        (500..=599, _) => ClientError::Server(msg),
        _ => ClientError::Protocol(format!("HTTP status {status}: {msg}")),
    }
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, ClientError> {
    hex::decode(s).map_err(|_| ClientError::Protocol(format!("{what} is not hex")))
}

impl KeyClient {
    /// A client for the service at `url` (`https://host:port`) whose leaf certificate has
    /// fingerprint `pin`. Nothing is sent until the first call.
    pub fn new(url: &str, pin: Fingerprint) -> Result<Self, ClientError> {
        let (origin, _, _) = parse_url(url)?;
        let verifier = PinVerifier::new(PinMode::Pin(pin));
        let tls = verifier
            .client_config()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirects(0)
            .user_agent(concat!("cirrus/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(KeyClient {
            origin,
            agent,
            pin,
            verifier,
            // A server that asks for a cheaper password KDF than the floor makes the
            // password easy to guess from `auth`, which it receives: refuse.
            min_kdf: keys::floor::protocol_floor(),
        })
    }

    /// Raises the weakest password KDF this client accepts from the server to this
    /// device's own costs (never below the protocol floor, [`keys::floor::floor_for`]).
    pub fn with_min_kdf(mut self, own: KdfParams) -> Self {
        self.min_kdf = keys::floor::floor_for(own);
        self
    }

    pub fn url(&self) -> &str {
        &self.origin
    }

    pub fn pin(&self) -> Fingerprint {
        self.pin
    }

    fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        token: Option<&str>,
        req: &Req,
    ) -> Result<Resp, ClientError> {
        let url = format!("{}{}{endpoint}", self.origin, api::PREFIX);
        let body = Zeroizing::new(
            serde_json::to_string(req).map_err(|e| ClientError::Protocol(e.to_string()))?,
        );
        let mut r = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json");
        let auth;
        if let Some(t) = token {
            auth = Zeroizing::new(format!("Bearer {t}"));
            r = r.set("Authorization", &auth);
        }
        match r.send_string(&body) {
            Ok(resp) => {
                let text = Zeroizing::new(
                    resp.into_string()
                        .map_err(|e| ClientError::Protocol(e.to_string()))?,
                );
                serde_json::from_str(&text)
                    .map_err(|e| ClientError::Protocol(format!("{endpoint}: {e}")))
            }
            Err(ureq::Error::Status(status, resp)) => {
                let retry = resp.header("Retry-After").and_then(|v| v.parse().ok());
                let text = resp.into_string().unwrap_or_default();
                Err(key_error(status, &text, retry))
            }
            Err(ureq::Error::Transport(t)) => {
                if let Some(got) = self.verifier.take_seen() {
                    return Err(ClientError::FingerprintMismatch {
                        expected: self.pin,
                        got,
                    });
                }
                Err(ClientError::Connect {
                    url: self.origin.clone(),
                    cause: t.to_string(),
                })
            }
        }
    }

    fn session(&self, account: &str, resp: SessionResp, wrap_key: SecretKey) -> Session {
        Session {
            client: self.clone(),
            account: account.to_string(),
            token: Zeroizing::new(resp.token),
            wrap_key,
            recent_until: Mutex::new(recent_deadline(resp.recent_for)),
        }
    }

    /// Creates `account` with `password`, derived on this side with `kdf` (stored on the
    /// server so every device derives the same keys), and logs it in.
    pub fn create_account(
        &self,
        account: &str,
        password: &Password,
        kdf: KdfParams,
    ) -> Result<Session, ClientError> {
        self.create_account_invited(account, password, kdf, None)
    }

    /// [`Self::create_account`] with the invitation a closed service needs.
    pub fn create_account_invited(
        &self,
        account: &str,
        password: &Password,
        kdf: KdfParams,
        invite: Option<&str>,
    ) -> Result<Session, ClientError> {
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt).map_err(KeyError::from)?;
        let k = keys::password_keys(password, &salt, kdf)?;
        let resp: SessionResp = self.post(
            "account/create",
            None,
            &CreateReq {
                account: account.to_string(),
                salt: hex::encode(salt),
                kdf,
                auth: hex::encode(k.auth.expose()),
                invite: invite.map(str::to_string),
            },
        )?;
        Ok(self.session(account, resp, k.wrap))
    }

    /// The account's notices and pending reset, with this device's remembered-device
    /// token (no password: a device learns of a reset even if nobody is there to type it).
    pub fn notices(&self, account: &str, device_token: &str) -> Result<NoticesResp, ClientError> {
        self.post(
            "notices",
            None,
            &DeviceReq {
                account: account.to_string(),
                device_token: device_token.to_string(),
            },
        )
    }

    /// Cancels a pending data-recovery reset; `false`: none was pending.
    pub fn cancel_reset(&self, account: &str, device_token: &str) -> Result<bool, ClientError> {
        let r: CancelResetResp = self.post(
            "account/cancel-reset",
            None,
            &DeviceReq {
                account: account.to_string(),
                device_token: device_token.to_string(),
            },
        )?;
        Ok(r.cancelled)
    }

    /// The account's salt and KDF cost, refused when weaker than this client's floor.
    pub(crate) fn salt(&self, account: &str) -> Result<(Vec<u8>, KdfParams), ClientError> {
        let r: SaltResp = self.post(
            "salt",
            None,
            &SaltReq {
                account: account.to_string(),
            },
        )?;
        let kdf =
            keys::floor::check_untrusted("the key service's password salt", r.kdf, self.min_kdf)?;
        Ok((unhex("salt", &r.salt)?, kdf))
    }

    /// Logs in. With TOTP enrolled, `second` must be a current code or a remembered
    /// device's token; `remember_device` (honoured with a code, or without TOTP) returns a
    /// device token for later logins.
    pub fn login(
        &self,
        account: &str,
        password: &Password,
        second: SecondFactor,
        remember_device: bool,
    ) -> Result<(Session, Option<Zeroizing<String>>), ClientError> {
        let (salt, kdf) = self.salt(account)?;
        let k = keys::password_keys(password, &salt, kdf)?;
        let (totp, device_token, replaces_token) = match second {
            SecondFactor::None => (None, None, None),
            SecondFactor::Totp(c) => (Some(c), None, None),
            SecondFactor::TotpReplacing { code, old } => (Some(code), None, Some(old.to_string())),
            SecondFactor::DeviceToken(t) => (None, Some(t.to_string()), None),
        };
        let resp: SessionResp = self.post(
            "login",
            None,
            &LoginReq {
                account: account.to_string(),
                auth: hex::encode(k.auth.expose()),
                totp,
                device_token,
                remember_device,
                replaces_token,
            },
        )?;
        let device = resp.device_token.clone().map(Zeroizing::new);
        Ok((self.session(account, resp, k.wrap), device))
    }

    /// Data recovery: sets a new password with a TOTP code alone (the account must have
    /// TOTP enrolled and data recovery on). Ends the account's other sessions and forgets
    /// its remembered devices.
    pub fn reset_password(
        &self,
        account: &str,
        totp: &str,
        new_password: &Password,
        kdf: KdfParams,
    ) -> Result<(Session, Option<Zeroizing<String>>), ClientError> {
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt).map_err(KeyError::from)?;
        let k = keys::password_keys(new_password, &salt, kdf)?;
        let resp: SessionResp = self.post(
            "account/reset",
            None,
            &ResetReq {
                account: account.to_string(),
                totp: totp.to_string(),
                new_salt: hex::encode(salt),
                new_kdf: kdf,
                new_auth: hex::encode(k.auth.expose()),
                remember_device: true,
            },
        )?;
        let token = resp.device_token.clone().map(Zeroizing::new);
        Ok((self.session(account, resp, k.wrap), token))
    }
}

/// A wait in seconds as a person reads it ("23 h 59 min", "40 s").
pub fn human_wait(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Longest text from the key service shown as is, in characters: past it, the rest is cut.
const MAX_SERVER_TEXT: usize = 500;

/// Makes text the key service sent (an error message, a notice's source) safe to print.
/// A hostile or compromised server could otherwise send terminal escape sequences that
/// rewrite earlier lines, retitle the window or fake a prompt, or flood the screen. So
/// every control character (C0 including ESC, DEL, and C1 including the 8-bit CSI) and
/// every bidirectional override (which reorders what is shown) becomes U+FFFD, and the
/// text is cut at [`MAX_SERVER_TEXT`] characters.
pub fn printable(text: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let mut out: String = text
        .chars()
        .take(MAX_SERVER_TEXT)
        .map(|c| {
            if c.is_control() || bidi(c) {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(MAX_SERVER_TEXT).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_made_printable() {
        assert_eq!(printable("wrong password"), "wrong password");
        assert_eq!(printable("é ✓ 日本"), "é ✓ 日本");
        // ESC sequences (CSI, OSC), the 8-bit CSI, newlines, DEL and a bidi override
        assert_eq!(
            printable("a\x1b[2J\x1b]0;t\x07b\u{9b}31mc\r\nd\x7fe\u{202e}f"),
            "a\u{fffd}[2J\u{fffd}]0;t\u{fffd}b\u{fffd}31mc\u{fffd}\u{fffd}d\u{fffd}e\u{fffd}f"
        );
        assert!(!printable("\x1b[31m").contains('\x1b'));
        let long = "x".repeat(10_000);
        let p = printable(&long);
        assert_eq!(p.chars().count(), MAX_SERVER_TEXT + 3);
        assert!(p.ends_with("..."));
        assert_eq!(
            printable(&"y".repeat(MAX_SERVER_TEXT)),
            "y".repeat(MAX_SERVER_TEXT)
        );
    }

    #[test]
    fn key_errors_carry_only_printable_server_text() {
        let body = r#"{"error":"bad\u001b[2J\u001b]0;pwned\u0007 news","code":""}"#;
        for status in [400, 401, 403, 404, 409, 410, 500, 418] {
            let shown = key_error(status, body, None).to_string();
            assert!(
                !shown.chars().any(|c| c.is_control()),
                "{status}: {shown:?}"
            );
            assert!(shown.contains("bad\u{fffd}[2J"), "{status}: {shown:?}");
        }
        let body = format!(
            r#"{{"error":"\u001b[1A","code":"{}"}}"#,
            api::code::SECOND_FACTOR
        );
        let shown = key_error(401, &body, None).to_string();
        assert!(matches!(
            key_error(401, &body, None),
            ClientError::SecondFactorRequired(_)
        ));
        assert!(!shown.contains('\x1b'), "{shown:?}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://127.0.0.1:8443").unwrap(),
            ("https://127.0.0.1:8443".into(), "127.0.0.1".into(), 8443)
        );
        assert_eq!(
            parse_url("https://[::1]:9/v1/x").unwrap(),
            ("https://[::1]:9".into(), "::1".into(), 9)
        );
        assert_eq!(parse_url("https://keys.example").unwrap().2, 443);
        for bad in [
            "http://x:1",
            "https://",
            "https://u@x:1",
            "https://x:port",
            "x:1",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_bodies_map_to_variants() {
        let e = |status, code: &str| {
            key_error(
                status,
                &format!(r#"{{"error":"msg","code":"{code}","retry_after":7,"remaining":3}}"#),
                None,
            )
        };
        assert!(matches!(
            e(401, "unauthorized"),
            ClientError::Unauthorized(_)
        ));
        assert!(matches!(
            e(401, "second_factor_required"),
            ClientError::SecondFactorRequired(_)
        ));
        assert!(matches!(
            e(401, "reauth_required"),
            ClientError::ReauthRequired(_)
        ));
        assert!(matches!(
            e(429, "rate_limited"),
            ClientError::RateLimited { retry_after: 7 }
        ));
        assert!(matches!(
            e(403, "escrow_wrong"),
            ClientError::EscrowWrong { remaining: 3 }
        ));
        assert!(matches!(
            e(410, "escrow_destroyed"),
            ClientError::EscrowDestroyed
        ));
        assert!(matches!(e(410, "gone"), ClientError::Gone(_)));
        assert!(matches!(e(404, "not_found"), ClientError::NotFound(_)));
        assert!(matches!(e(409, "conflict"), ClientError::Conflict(_)));
        assert!(matches!(e(403, "forbidden"), ClientError::Forbidden(_)));
        assert!(matches!(e(500, "internal"), ClientError::Server(_)));
        // a body that is not ours still maps by status
        assert!(matches!(
            key_error(429, "<html>", Some(5)),
            ClientError::RateLimited { retry_after: 5 }
        ));
        assert!(matches!(key_error(502, "", None), ClientError::Server(_)));
    }
}
