//! What each endpoint of the key service does, as plain synchronous functions over the
//! DATA directory; the HTTP layer (`https/`) only decodes requests and encodes answers.
//! This file has the shared machinery (errors, locks, verifier, sessions, limits); the
//! endpoints are in `accounts.rs`, `service_keys.rs` and `blobs.rs`.

mod accounts;
mod blobs;
mod reauth;
mod reset;
mod service_keys;

use super::limit::{RateLimiter, Source};
use super::session::{Recency, Sessions, new_token, token_hash};
use super::state::{ACCOUNT_FORMAT, Account, DataDir, Escrow, ServiceKeys, StateError, TotpState};
use super::totp::{TotpCheck, TotpFactor};
use crate::crypto::{self, SecretKey, Suite};
use crate::keys::KdfParams;
use crate::keyservice::api::{self, *};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

/// Server-side settings (`cirrus serve` flags).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Argon2id memory (KiB) of the server's verifier over the client's `auth`.
    pub verifier_memory_kib: u32,
    pub verifier_time: u32,
    pub session_ttl: Duration,
    /// Failed logins (or resets) allowed per account per window.
    pub login_attempts: u32,
    /// Failed logins, resets and escrow opens allowed per source IP per window.
    pub ip_attempts: u32,
    pub login_window: Duration,
    /// Wrong escrow proofs after which the escrow record is destroyed.
    pub escrow_attempts: u32,
    /// How long a data-recovery reset waits, after a right TOTP code, before a second
    /// request with a right code may complete it (trusted devices are told meanwhile).
    pub reset_wait: Duration,
    /// Whether anyone may create an account, or only holders of an invitation made with
    /// `cirrus serve account create`.
    pub signup: Signup,
    /// Account creations allowed per source address per hour (tried or not).
    pub signup_per_ip: u32,
    /// How long a login or `reauth` that proved every factor lets a session make the
    /// sensitive requests (password, TOTP, flags, retire, escrow, record delete, revoke).
    pub reauth_window: Duration,
}

/// Who may create accounts (`cirrus serve --signup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signup {
    /// Anyone who reaches the service (up to --signup-per-ip an hour per address).
    Open,
    /// Only with an invitation from `cirrus serve account create`.
    Closed,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        // The verifier cost is OWASP's Argon2id minimum: the client already spent its own
        // (larger) Argon2id on the password, this one only slows offline guessing of
        // `auth` values by someone who stole DATA.
        ServiceConfig {
            verifier_memory_kib: 19456,
            verifier_time: 2,
            session_ttl: Duration::from_secs(3600),
            login_attempts: 5,
            ip_attempts: 20,
            login_window: Duration::from_secs(300),
            escrow_attempts: 10,
            reset_wait: Duration::from_secs(24 * 3600),
            signup: Signup::Open,
            signup_per_ip: 10,
            reauth_window: Duration::from_secs(300),
        }
    }
}

/// Most device tokens kept per account; the oldest is forgotten first.
const MAX_DEVICE_TOKENS: usize = 64;
/// Longest escrow proof accepted.
const MAX_PROOF: usize = 1024;

/// An endpoint's failure, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    SecondFactor(String),
    /// A sensitive request on a session that is not recently authenticated.
    #[error(
        "this request needs a recently authenticated session: reauthenticate first (the \
         password and, when enrolled, a fresh TOTP code)"
    )]
    ReauthRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error(
        "wrong escrow proof; {remaining} more wrong tries destroy the escrow record{}",
        if *remaining == 0 { " (it has now been destroyed)" } else { "" }
    )]
    EscrowWrong { remaining: u32 },
    #[error("the escrow record was destroyed after too many wrong proofs")]
    EscrowDestroyed,
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error(
        "the password reset is waiting: it can be completed in {ready_in} seconds, by asking \
         again with a new TOTP code; the account's trusted devices have been told and can \
         cancel it"
    )]
    ResetPending { ready_in: u64 },
    #[error(
        "this key service creates accounts only with an invitation: ask its admin for one \
         (`cirrus serve account create`) and pass it with --invite"
    )]
    SignupClosed,
    #[error("the request body is larger than {} bytes", api::MAX_BODY)]
    TooLarge,
    /// Too many password checks at once (the HTTP layer's bounded pool is full).
    #[error("the key service is busy; try again in {retry_after} seconds")]
    Busy { retry_after: u64 },
    /// The request's body did not arrive within the request timeout.
    #[error("the request was not received in time")]
    TimedOut,
    /// The detail goes to the server log, not to the client.
    #[error("internal error in the key service (see its log)")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) | ApiError::SecondFactor(_) | ApiError::ReauthRequired => 401,
            ApiError::Forbidden(_)
            | ApiError::EscrowWrong { .. }
            | ApiError::ResetPending { .. }
            | ApiError::SignupClosed => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Gone(_) | ApiError::EscrowDestroyed => 410,
            ApiError::TimedOut => 408,
            ApiError::TooLarge => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Busy { .. } => 503,
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        let code = match self {
            ApiError::BadRequest(_) => code::BAD_REQUEST,
            ApiError::Unauthorized(_) => code::UNAUTHORIZED,
            ApiError::SecondFactor(_) => code::SECOND_FACTOR,
            ApiError::ReauthRequired => code::REAUTH_REQUIRED,
            ApiError::Forbidden(_) => code::FORBIDDEN,
            ApiError::NotFound(_) => code::NOT_FOUND,
            ApiError::Conflict(_) => code::CONFLICT,
            ApiError::Gone(_) => code::GONE,
            ApiError::EscrowWrong { .. } => code::ESCROW_WRONG,
            ApiError::EscrowDestroyed => code::ESCROW_DESTROYED,
            ApiError::TooLarge => code::TOO_LARGE,
            ApiError::RateLimited { .. } => code::RATE_LIMITED,
            ApiError::ResetPending { .. } => code::RESET_PENDING,
            ApiError::SignupClosed => code::SIGNUP_CLOSED,
            ApiError::Busy { .. } => code::BUSY,
            ApiError::TimedOut => code::TIMED_OUT,
            ApiError::Internal(_) => code::INTERNAL,
        };
        ErrorBody {
            error: self.to_string(),
            code: code.to_string(),
            retry_after: match self {
                ApiError::RateLimited { retry_after } | ApiError::Busy { retry_after } => {
                    Some(*retry_after)
                }
                ApiError::ResetPending { ready_in } => Some(*ready_in),
                _ => None,
            },
            remaining: match self {
                ApiError::EscrowWrong { remaining } => Some(*remaining),
                _ => None,
            },
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crypto::CryptoError> for ApiError {
    fn from(e: crypto::CryptoError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Who is calling: the peer address (for rate limits) and the bearer token, if any.
pub(crate) struct Caller {
    pub ip: IpAddr,
    pub bearer: Option<Zeroizing<String>>,
}

pub(crate) struct KeyService {
    data: DataDir,
    cfg: ServiceConfig,
    sessions: Sessions,
    acct_limit: RateLimiter,
    ip_limit: RateLimiter,
    /// Account creations per source address per hour (every attempt counts).
    signup_limit: RateLimiter,
    /// One lock per account name: serialises read-modify-write of its files.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// A verifier for no account, checked when the account does not exist so that a
    /// missing account costs the same time as a wrong password.
    dummy_verifier: String,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Account names: 1..=64 of `[A-Za-z0-9._@-]`.
pub(crate) fn check_account_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "an account name is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-'",
        ))
    }
}

/// Record names: 1..=128 of `[A-Za-z0-9._@/-]`.
fn check_record_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "a record name is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@', '/' and '-'",
        ))
    }
}

/// Decodes a hex field of at most `max` bytes (length checked before decoding).
fn unhex(what: &str, s: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    if s.len() > max * 2 {
        return Err(bad(format!("{what} is longer than {max} bytes")));
    }
    hex::decode(s).map_err(|_| bad(format!("{what} must be hex")))
}

fn unhex_exact<const N: usize>(what: &str, s: &str) -> Result<Zeroizing<[u8; N]>, ApiError> {
    let mut out = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(s, &mut out[..])
        .map_err(|_| bad(format!("{what} must be {N} bytes in hex")))?;
    Ok(out)
}

type Salt = Zeroizing<[u8; 16]>;
type Auth = Zeroizing<[u8; 32]>;

/// The public half of a password a client sets (create, change, reset): its salt, KDF
/// cost and `auth`, checked; field names as `prefix` + "salt" / "auth".
fn password_fields(
    prefix: &str,
    salt: &str,
    kdf: KdfParams,
    auth: &str,
) -> Result<(Salt, Auth), ApiError> {
    let salt = unhex_exact::<16>(&format!("{prefix}salt"), salt)?;
    check_kdf(kdf)?;
    let auth = unhex_exact::<32>(&format!("{prefix}auth"), auth)?;
    Ok((salt, auth))
}

/// Client KDF parameters the server agrees to store (and later hand to every device).
fn check_kdf(k: KdfParams) -> Result<(), ApiError> {
    let sane = (1..=16).contains(&k.lanes)
        && (1..=64).contains(&k.time)
        && k.memory_kib <= 4 * 1024 * 1024
        && argon2::Params::new(k.memory_kib, k.time, k.lanes, Some(32)).is_ok();
    if sane {
        Ok(())
    } else {
        Err(bad(
            "kdf parameters out of range (lanes 1-16, time 1-64, memory 8*lanes KiB to 4 GiB)",
        ))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `token` is one of the account's remembered-device tokens (compared as
/// hashes, in constant time).
fn remembers(a: &Account, token: &str) -> bool {
    let h = token_hash(token);
    a.device_tokens
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .any(|stored| crypto::ct_eq(&stored, &h))
}

fn wrong_login() -> ApiError {
    ApiError::Unauthorized("wrong account name or password".into())
}

impl KeyService {
    pub(crate) fn open(data: &Path, cfg: ServiceConfig) -> Result<Self, StateError> {
        let data = DataDir::open(data)?;
        let mut svc = KeyService {
            data,
            sessions: Sessions::new(cfg.session_ttl, cfg.reauth_window),
            acct_limit: RateLimiter::new(cfg.login_attempts, cfg.login_window),
            ip_limit: RateLimiter::new(cfg.ip_attempts, cfg.login_window),
            signup_limit: RateLimiter::new(cfg.signup_per_ip, Duration::from_secs(3600)),
            cfg,
            locks: Mutex::new(HashMap::new()),
            dummy_verifier: String::new(),
        };
        svc.dummy_verifier = svc
            .make_verifier(&[0u8; 32])
            .map_err(|e| StateError::Damaged {
                path: svc.data.root().to_path_buf(),
                why: e.to_string(),
            })?;
        Ok(svc)
    }

    fn lock_account(&self, account: &str) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_string()).or_default().clone()
    }

    /// Runs `f` holding `account`'s lock.
    fn locked<T>(
        &self,
        account: &str,
        f: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let lock = self.lock_account(account);
        let result = {
            // A panic in another request for this account left its files as they were
            // (every write is atomic), so the poisoned lock is safe to take over.
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            f()
        };
        // Drop the entry when no other request holds it, so guessed names (logins to
        // accounts that do not exist) do not grow the table. Clones are only made under
        // the map's lock, so the count cannot rise while we look at it.
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            map.remove(account);
        }
        result
    }

    fn load(&self, account: &str) -> Result<Account, ApiError> {
        self.data
            .load_account(account)?
            .ok_or_else(|| ApiError::NotFound(format!("no account named {account}")))
    }

    fn argon2(&self) -> Result<argon2::Argon2<'static>, ApiError> {
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
    fn make_verifier(&self, auth: &[u8]) -> Result<String, ApiError> {
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
    fn verify(&self, verifier: &str, auth: &[u8]) -> bool {
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
    fn session(&self, c: &Caller) -> Result<String, ApiError> {
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        self.sessions.account(token, Instant::now()).ok_or_else(|| {
            ApiError::Unauthorized("the session is unknown or expired: log in again".into())
        })
    }

    /// The caller's account, from a bearer token whose session is recently authenticated:
    /// what every request that changes credentials or destroys recovery checks first, so
    /// a stolen session token alone cannot.
    fn recent_session(&self, c: &Caller) -> Result<String, ApiError> {
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        match self.sessions.lookup(token, Instant::now()) {
            Some((account, Recency::Recent)) => Ok(account),
            Some((_, Recency::Stale)) => Err(ApiError::ReauthRequired),
            None => Err(ApiError::Unauthorized(
                "the session is unknown or expired: log in again".into(),
            )),
        }
    }

    /// Opens a session; `Recency::Recent` when the caller has just proved every factor
    /// the account has (password, and a fresh TOTP code when enrolled).
    fn open_session(
        &self,
        account: &str,
        recency: Recency,
        device_token: Option<String>,
    ) -> Result<SessionResp, ApiError> {
        let token = self.sessions.open(account, recency, Instant::now())?;
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

    fn limit_check(&self, key: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let a = self.acct_limit.check(key, now);
        let i = self.ip_limit.check(&Source::key(ip), now);
        match (a, i) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Ok(())) | (Ok(()), Err(x)) => Err(ApiError::RateLimited { retry_after: x }),
            (Err(x), Err(y)) => Err(ApiError::RateLimited {
                retry_after: x.max(y),
            }),
        }
    }

    /// The account counter alone, for attempts counted per remembered-device token.
    fn limit_check_key(&self, key: &str) -> Result<(), ApiError> {
        self.acct_limit
            .check(key, Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    fn limit_fail_key(&self, key: &str) {
        self.acct_limit.fail(key, Instant::now());
    }

    fn limit_fail(&self, key: &str, ip: IpAddr) {
        let now = Instant::now();
        self.acct_limit.fail(key, now);
        self.ip_limit.fail(&Source::key(ip), now);
    }

    /// A success forgets the account's failures. The source address's failures are kept
    /// until they age out: otherwise a guesser could clear its address's count with
    /// logins to an account of its own between guesses at others.
    fn limit_success(&self, key: &str) {
        self.acct_limit.reset(key);
    }

    fn totp_factor(&self, a: &Account) -> Result<Option<TotpFactor>, ApiError> {
        let Some(t) = &a.totp else { return Ok(None) };
        let secret = self.data.unseal(&a.name, "totp-secret", &t.secret)?;
        let f = TotpFactor::from_secret(secret.to_vec(), 6, &a.name, t.last_step)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Some(f))
    }

    /// Checks a TOTP code of an enrolled account and records its step (so it is never
    /// accepted again); counts a failure against `limit_key`.
    fn check_totp(
        &self,
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
                self.limit_fail(limit_key, ip);
                Err(ApiError::Unauthorized(match e {
                    TotpCheck::Invalid => "wrong or expired TOTP code".into(),
                    TotpCheck::Reused => {
                        "that TOTP code was already used; wait for the next one".into()
                    }
                }))
            }
        }
    }

    fn totp_enrolled(a: &Account) -> bool {
        a.totp.as_ref().is_some_and(|t| t.confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ServiceConfig {
        ServiceConfig {
            verifier_memory_kib: 8,
            verifier_time: 1,
            escrow_attempts: 3,
            login_attempts: 100,
            ip_attempts: 100,
            signup_per_ip: 100,
            ..ServiceConfig::default()
        }
    }

    fn caller(token: Option<&str>) -> Caller {
        Caller {
            ip: "127.0.0.1".parse().unwrap(),
            bearer: token.map(|t| Zeroizing::new(t.to_string())),
        }
    }

    fn create(svc: &KeyService, name: &str, auth: [u8; 32]) -> String {
        svc.create(
            &caller(None),
            CreateReq {
                account: name.into(),
                salt: hex::encode([1u8; 16]),
                kdf: KdfParams {
                    memory_kib: 8,
                    time: 1,
                    lanes: 1,
                },
                auth: hex::encode(auth),
                invite: None,
            },
        )
        .unwrap()
        .token
    }

    #[test]
    fn verifier_accepts_only_the_right_auth_and_is_a_phc_string() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(dir.path(), tiny()).unwrap();
        let v = svc.make_verifier(&[7u8; 32]).unwrap();
        assert!(v.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{v}");
        assert!(svc.verify(&v, &[7u8; 32]));
        assert!(!svc.verify(&v, &[8u8; 32]));
        assert!(!svc.verify("not a phc string", &[7u8; 32]));
        // a fresh salt each time
        assert_ne!(v, svc.make_verifier(&[7u8; 32]).unwrap());
    }

    #[test]
    fn escrow_counter_resets_on_success_and_destroys_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(dir.path(), tiny()).unwrap();
        let t = create(&svc, "alice", [1; 32]);
        let c = caller(Some(&t));
        let proof = b"the right proof";
        svc.escrow_put(
            &c,
            EscrowPutReq {
                verifier: hex::encode(crypto::hash(proof)),
                blob: hex::encode(b"blob"),
            },
        )
        .unwrap();
        let open = |p: &[u8]| {
            svc.escrow_open(
                &c,
                EscrowOpenReq {
                    proof: hex::encode(p),
                },
            )
        };
        for left in [2, 1] {
            match open(b"wrong") {
                Err(ApiError::EscrowWrong { remaining }) => assert_eq!(remaining, left),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(open(proof).unwrap().blob, hex::encode(b"blob"));
        // the count started again: two more wrong tries still leave one
        for left in [2, 1] {
            assert!(
                matches!(open(b"wrong"), Err(ApiError::EscrowWrong { remaining }) if remaining == left)
            );
        }
        assert!(matches!(
            open(b"wrong"),
            Err(ApiError::EscrowWrong { remaining: 0 })
        ));
        assert!(matches!(open(proof), Err(ApiError::EscrowDestroyed)));
        assert!(
            std::fs::read_dir(dir.path().join("escrow"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(svc.account_status(&c).unwrap().escrow_destroyed);
    }

    /// A login with a wrong password to `account` from `ip`.
    fn wrong_login_from(
        svc: &KeyService,
        account: &str,
        ip: &str,
    ) -> Result<SessionResp, ApiError> {
        svc.login(
            &Caller {
                ip: ip.parse().unwrap(),
                bearer: None,
            },
            LoginReq {
                account: account.into(),
                auth: hex::encode([0u8; 32]),
                totp: None,
                device_token: None,
                remember_device: false,
                replaces_token: None,
            },
        )
    }

    #[test]
    fn source_address_limit_spans_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(
            dir.path(),
            ServiceConfig {
                ip_attempts: 3,
                ..tiny()
            },
        )
        .unwrap();
        let login = |account: &str, ip: &str| wrong_login_from(&svc, account, ip);
        for name in ["a", "b", "c"] {
            assert!(matches!(
                login(name, "10.0.0.1"),
                Err(ApiError::Unauthorized(_))
            ));
        }
        // a fourth account from the same address: limited; from another address: not
        assert!(matches!(
            login("d", "10.0.0.1"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(matches!(
            login("d", "10.0.0.2"),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn source_address_limit_counts_an_ipv6_64_as_one_source() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(
            dir.path(),
            ServiceConfig {
                ip_attempts: 3,
                ..tiny()
            },
        )
        .unwrap();
        let login = |account: &str, ip: &str| wrong_login_from(&svc, account, ip);
        // failures from different addresses of one /64 add up
        for (name, ip) in [
            ("a", "2001:db8::1"),
            ("b", "2001:db8::2"),
            ("c", "2001:db8::3"),
        ] {
            assert!(matches!(login(name, ip), Err(ApiError::Unauthorized(_))));
        }
        assert!(matches!(
            login("d", "2001:db8::ffff:4"),
            Err(ApiError::RateLimited { .. })
        ));
        // the next /64 is another source
        assert!(matches!(
            login("d", "2001:db8:0:1::1"),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn a_rate_limited_reset_is_refused_before_any_argon2() {
        let dir = tempfile::tempdir().unwrap();
        // a verifier that takes visible time, so whether it ran shows in the timing
        let cfg = ServiceConfig {
            verifier_memory_kib: 32 * 1024,
            verifier_time: 3,
            ip_attempts: 1,
            ..tiny()
        };
        let svc = KeyService::open(dir.path(), cfg).unwrap();
        let t = Instant::now();
        svc.make_verifier(&[0u8; 32]).unwrap();
        let one_kdf = t.elapsed();
        let reset = || {
            svc.reset(
                &caller(None),
                ResetReq {
                    account: "ghost".into(),
                    totp: "000000".into(),
                    new_salt: hex::encode([1u8; 16]),
                    new_kdf: KdfParams::default(),
                    new_auth: hex::encode([2u8; 32]),
                    remember_device: false,
                },
            )
        };
        assert!(matches!(reset(), Err(ApiError::Unauthorized(_))));
        let t = Instant::now();
        assert!(matches!(reset(), Err(ApiError::RateLimited { .. })));
        let refused = t.elapsed();
        assert!(
            refused < one_kdf / 4,
            "a refused reset took {refused:?}, one verifier {one_kdf:?}"
        );
    }

    #[test]
    fn a_rate_limited_reauth_is_refused_before_any_argon2() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServiceConfig {
            verifier_memory_kib: 32 * 1024,
            verifier_time: 3,
            login_attempts: 1,
            ..tiny()
        };
        let svc = KeyService::open(dir.path(), cfg).unwrap();
        let t = Instant::now();
        let token = create(&svc, "alice", [1; 32]);
        let one_kdf = t.elapsed();
        let reauth = |auth: [u8; 32]| {
            svc.reauth(
                &caller(Some(&token)),
                ReauthReq {
                    auth: hex::encode(auth),
                    totp: None,
                },
            )
        };
        assert!(matches!(reauth([2; 32]), Err(ApiError::Unauthorized(_))));
        let t = Instant::now();
        // the right password too: the account's login count is full
        assert!(matches!(reauth([1; 32]), Err(ApiError::RateLimited { .. })));
        let refused = t.elapsed();
        assert!(
            refused < one_kdf / 4,
            "a refused reauth took {refused:?}, one verifier {one_kdf:?}"
        );
    }

    #[test]
    fn sessions_are_needed_and_names_checked() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(dir.path(), tiny()).unwrap();
        assert!(matches!(
            svc.account_status(&caller(None)),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            svc.account_status(&caller(Some("00"))),
            Err(ApiError::Unauthorized(_))
        ));
        for name in ["", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(check_account_name(name).is_err(), "{name:?}");
        }
        for name in [".", "..", "a.b@c-d_e", &"x".repeat(64)] {
            assert!(check_account_name(name).is_ok(), "{name:?}");
        }
        // an unknown account gets a stable, made-up salt
        let s1 = svc
            .salt(SaltReq {
                account: "nobody".into(),
            })
            .unwrap();
        let s2 = svc
            .salt(SaltReq {
                account: "nobody".into(),
            })
            .unwrap();
        assert_eq!(s1.salt, s2.salt);
        assert_eq!(s1.salt.len(), 32);
        // logins to names with no account are refused like wrong passwords, and leave
        // no per-name lock behind
        for i in 0..5 {
            let r = svc.login(
                &caller(None),
                LoginReq {
                    account: format!("ghost{i}"),
                    auth: hex::encode([0u8; 32]),
                    totp: None,
                    device_token: None,
                    remember_device: false,
                    replaces_token: None,
                },
            );
            assert!(matches!(r, Err(ApiError::Unauthorized(_))));
        }
        assert!(svc.locks.lock().unwrap().is_empty());
    }
}
