//! What each endpoint of the key service does, as plain synchronous functions over the
//! database (`db/`); the HTTP layer (`https/`) only decodes requests and encodes answers.
//! This file has the settings, the service's state, how it opens its database and master
//! key, and the per-account transactions every endpoint runs in; the shared
//! machinery is in `error.rs` (what a client is told), `input.rs` (request checks) and
//! `auth.rs` (verifier, sessions, limits, TOTP); the endpoints are in `accounts.rs`,
//! `service_keys.rs`, `blobs.rs`, `reauth.rs` and `reset.rs`.

mod accounts;
mod auth;
mod blobs;
mod error;
mod failpoint;
mod health;
mod input;
mod reauth;
mod reset;
mod service_keys;
mod web;
#[cfg(test)]
mod web_tests;

use super::db::{self, Database, DbLocation, META_MASTER_CHECK, Tx};
use super::failures::FailureLimit;
use super::limit::{RateLimiter, Source};
use super::master::MasterKey;
use super::session::{self, Recency, Sessions, new_token, token_hash};
use super::state::{ACCOUNT_FORMAT, Account, Escrow, ServiceKeys, StateError, TotpState};
use super::totp::{TotpCheck, TotpFactor};
use crate::crypto::{self, SecretKey, Suite};
use crate::keys::KdfParams;
use crate::keyservice::api::{self, *};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

pub(crate) use error::ApiError;
use input::{bad, check_account_name, check_record_name, password_fields, unhex, unhex_exact};
pub use web::WebConfig;
pub(crate) use web::{Approval, WebSession};

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
    /// Seconds per TOTP step: [`super::totp::PERIOD`], except in the test suite. A step
    /// recorded as used is a count of periods, so a server keeps one period for life.
    pub totp_period: u64,
    /// The web front's settings; `None` when `cirrus serve` runs none (`web on` is then
    /// refused).
    pub web: Option<WebConfig>,
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
            totp_period: super::totp::PERIOD,
            web: None,
        }
    }
}

/// Most device tokens kept per account; the oldest is forgotten first.
const MAX_DEVICE_TOKENS: usize = 64;
/// Longest escrow proof accepted.
const MAX_PROOF: usize = 1024;

/// Who is calling: the peer address (for rate limits) and the bearer token, if any.
pub(crate) struct Caller {
    pub ip: IpAddr,
    pub bearer: Option<Zeroizing<String>>,
}

/// Where the service keeps its state: `cirrus serve`'s `--data`, `--database` and
/// `--master-key-file`.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// DATA: the SQLite database (unless `database`), the default master key file, the
    /// self-signed certificate, and a JSON directory from before the database.
    pub data: PathBuf,
    /// `postgres://...` for several replicas on one database.
    pub database: Option<String>,
    /// The master key; default DATA/master.key.
    pub master_key_file: Option<PathBuf>,
}

impl StoreOptions {
    pub fn in_dir(data: &Path) -> Self {
        StoreOptions {
            data: data.to_path_buf(),
            database: None,
            master_key_file: None,
        }
    }

    fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data.join("master.key"))
    }
}

pub(crate) struct KeyService {
    db: Box<dyn Database>,
    master: MasterKey,
    cfg: ServiceConfig,
    sessions: Sessions,
    /// Failures per account key, in the database (every replica sees the same count).
    acct_limit: FailureLimit,
    /// Failures per source address, in this replica's memory.
    ip_limit: RateLimiter,
    /// Account creations per source address per hour (every attempt counts).
    signup_limit: RateLimiter,
    /// One lock per account name: serialises an account's requests in this process (the
    /// database's account lock does across replicas; SQLite has no other).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// A verifier for no account, checked when the account does not exist so that a
    /// missing account costs the same time as a wrong password.
    dummy_verifier: String,
    /// The secrets of this server's ADP web sessions, in memory only (`web.rs`).
    web_secrets: web::WebSecrets,
    /// For SQLite, the lock that keeps a second `cirrus serve` off the same DATA.
    _exclusive: Option<std::fs::File>,
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

/// Creates DATA (0700) if needed.
fn ensure_data_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    let io = |source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    if let Some(parent) = dir.parent() {
        crate::fsutil::sync_dir(parent);
    }
    Ok(())
}

/// Takes DATA/serve.lock for this process, or says another server has it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StateError> {
    let path = dir.join("serve.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::InUse { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io { path, source }),
    }
}

/// The master key for `db`: the database's check value must open with it; a database
/// with none gets this key's (made now if the file does not exist), after any JSON DATA
/// directory was imported with it (the import checks that the key opens what it copies,
/// so a wrong key leaves no check value behind). Two first replicas racing: one check
/// value wins, the other replica refuses.
fn master_key_for(db: &dyn Database, store: &StoreOptions) -> Result<MasterKey, StateError> {
    let path = store.master_key_path();
    let check = db.begin(None)?.meta(META_MASTER_CHECK)?;
    let master = MasterKey::load(&path, check.is_none())?;
    let refuse = |master: &MasterKey| {
        master.forget_created();
        StateError::WrongMasterKey { path: path.clone() }
    };
    if let Some(c) = &check
        && !master.opens(c)
    {
        return Err(refuse(&master));
    }
    if let Err(e) = db::import::import_json_dir(&store.data, db, &master) {
        master.forget_created();
        return Err(e);
    }
    if check.is_none() {
        let mut tx = db.begin(None)?;
        tx.meta_insert(META_MASTER_CHECK, &master.check_value()?)?;
        tx.commit()?;
        let stored = db.begin(None)?.meta(META_MASTER_CHECK)?.unwrap_or_default();
        if !master.opens(&stored) {
            return Err(refuse(&master));
        }
    }
    Ok(master)
}

impl KeyService {
    /// Opens the service's database (creating, migrating and importing a JSON DATA
    /// directory as needed) and master key. `serving`: this is `cirrus serve` itself, which
    /// keeps DATA's SQLite database to itself; an admin command beside it does not.
    pub(crate) fn open(
        store: &StoreOptions,
        cfg: ServiceConfig,
        serving: bool,
    ) -> Result<Self, StateError> {
        ensure_data_dir(&store.data)?;
        let loc = DbLocation::from_args(&store.data, store.database.as_deref())?;
        let exclusive = match (&loc, serving) {
            (DbLocation::Sqlite(_), true) => Some(lock_data_dir(&store.data)?),
            _ => None,
        };
        let db = db::open(&loc)?;
        let master = master_key_for(&*db, store)?;
        log::info!("key service database: {}", db.describe());
        let mut svc = KeyService {
            db,
            master,
            sessions: Sessions::new(cfg.session_ttl, cfg.reauth_window),
            acct_limit: FailureLimit::new(cfg.login_attempts, cfg.login_window),
            ip_limit: RateLimiter::new(cfg.ip_attempts, cfg.login_window),
            signup_limit: RateLimiter::new(cfg.signup_per_ip, Duration::from_secs(3600)),
            cfg,
            locks: Mutex::new(HashMap::new()),
            dummy_verifier: String::new(),
            web_secrets: Mutex::new(HashMap::new()),
            _exclusive: exclusive,
        };
        svc.dummy_verifier = svc
            .make_verifier(&[0u8; 32])
            .map_err(|e| StateError::Damaged {
                what: "the verifier settings".into(),
                why: e.to_string(),
            })?;
        Ok(svc)
    }

    fn lock_account(&self, account: &str) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_string()).or_default().clone()
    }

    /// Runs `f` in one transaction holding `account`'s lock (in this process, and in the
    /// database for every replica). The request's writes are kept together whatever it
    /// answers (a counted failure answers with an error), or not at all if it dies first.
    fn locked<T>(
        &self,
        account: &str,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let lock = self.lock_account(account);
        let result = {
            // A panic in another request for this account rolled its transaction back,
            // so the poisoned lock is safe to take over.
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            self.db
                .begin(Some(account))
                .map_err(ApiError::from)
                .and_then(|mut tx| {
                    let r = f(&mut tx);
                    let kept = tx.commit();
                    // The request's own error first (a failed statement's is in it).
                    let v = r?;
                    kept?;
                    Ok(v)
                })
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

    /// [`Self::locked`] for a request made with a session: inside the lock, the session
    /// is looked up again and must still be the caller's, live (and recent, when `need`
    /// is `Recent`). A password change or reset that ended it while this request waited
    /// for the lock (on this replica or another) wins: the request is refused.
    fn locked_session<T>(
        &self,
        c: &Caller,
        account: &str,
        need: Recency,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.locked(account, |tx| {
            let gone =
                || ApiError::Unauthorized("the session is unknown or expired: log in again".into());
            let token = c.bearer.as_ref().ok_or_else(gone)?;
            match self.sessions.lookup(tx, token, db::now_ms())? {
                Some((a, _)) if a != account => Err(gone()),
                Some((_, Recency::Stale)) if need == Recency::Recent => {
                    Err(ApiError::ReauthRequired)
                }
                Some(_) => f(tx),
                None => Err(gone()),
            }
        })
    }

    /// Runs `f` on a read-only connection, each statement on its own.
    fn read<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let mut tx = self.db.begin_read()?;
        f(&mut tx)
    }

    /// The caller's account document, with its session checked (live, and recent when
    /// `need` is `Recent`) by the same one statement that reads it: the path of the
    /// requests that only read the account (key fetches), with no lock and no
    /// transaction to pay for.
    fn session_account(&self, c: &Caller, need: Recency) -> Result<Account, ApiError> {
        let gone =
            || ApiError::Unauthorized("the session is unknown or expired: log in again".into());
        let token = c.bearer.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this request needs a session: log in first".into())
        })?;
        let found = self.read(|tx| Ok(tx.session_with_account(&token_hash(token))?))?;
        let Some((s, account)) = found else {
            return Err(gone());
        };
        match (session::recency(&s, db::now_ms()), need) {
            (None, _) => Err(gone()),
            (Some(Recency::Stale), Recency::Recent) => Err(ApiError::ReauthRequired),
            (Some(_), _) => {
                account.ok_or_else(|| ApiError::NotFound(format!("no account named {}", s.account)))
            }
        }
    }

    /// Runs `f` in a transaction that takes no account lock, for writes of one statement
    /// each that need none (a logout).
    fn unlocked<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut tx = self.db.begin(None)?;
        let r = f(&mut tx);
        let kept = tx.commit();
        let v = r?;
        kept?;
        Ok(v)
    }

    fn load(tx: &mut Tx<'_>, account: &str) -> Result<Account, ApiError> {
        tx.account(account)?
            .ok_or_else(|| ApiError::NotFound(format!("no account named {account}")))
    }

    /// The service's database (for `cirrus serve migrate`).
    pub(crate) fn database(&self) -> &dyn Database {
        &*self.db
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
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), tiny(), true).unwrap();
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
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), tiny(), true).unwrap();
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
        let left = svc.read(|tx| Ok(tx.escrow("alice")?)).unwrap();
        assert!(left.is_none(), "the escrow record is gone");
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
            &StoreOptions::in_dir(dir.path()),
            ServiceConfig {
                ip_attempts: 3,
                ..tiny()
            },
            true,
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
            &StoreOptions::in_dir(dir.path()),
            ServiceConfig {
                ip_attempts: 3,
                ..tiny()
            },
            true,
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
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), cfg, true).unwrap();
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
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), cfg, true).unwrap();
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
    fn a_request_whose_session_ended_while_it_waited_for_the_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), tiny(), true).unwrap();
        let t = create(&svc, "alice", [1; 32]);
        let c = caller(Some(&t));
        // what the endpoint checked before taking the lock
        assert_eq!(svc.recent_session(&c).unwrap(), "alice");
        let ran = |need| svc.locked_session(&c, "alice", need, |_| Ok(()));
        assert!(ran(Recency::Recent).is_ok());
        // another request (a password change elsewhere) ends it meanwhile
        svc.unlocked(|tx| Ok(svc.sessions.close_all(tx, "alice")?))
            .unwrap();
        assert!(matches!(
            ran(Recency::Stale),
            Err(ApiError::Unauthorized(_))
        ));
        // and a live session of one account never runs under another's lock
        let b = create(&svc, "bob", [2; 32]);
        let as_bob = caller(Some(&b));
        assert!(matches!(
            svc.locked_session(&as_bob, "alice", Recency::Stale, |_| Ok(())),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn sessions_are_needed_and_names_checked() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), tiny(), true).unwrap();
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
