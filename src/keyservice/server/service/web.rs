//! Web access (issue 12), the key service's half: an account's registration for the web
//! front (`cirrus web on` from a trusted device: the store, the manifest the device
//! trusts, signed by it, and the web password's verifier), the web sessions (cookie tokens
//! kept as BLAKE3 hashes, a CSRF token each, idle and absolute limits), and what the web
//! front asks while it serves a request: the account's standard keys unwrapped, and the
//! record of the newest manifest and heads it has verified. The front itself is
//! `crate::web`, a layer above; it calls these methods from blocking threads.

use super::*;
use crate::format::manifest::FLAG_ADP;
use crate::format::table::Class;
use crate::keys::device::{self, DevicePublic};
use crate::keys::join::JoinCode;
use crate::keys::web::WebSessionKey;
use crate::keyservice::server::db::{
    SeenRow, WEB_MANIFEST, WebApprovalRow, WebReleaseRow, WebSessionRow,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The web flags of `cirrus serve` (--web-listen and the others): present only when the
/// web front runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Store locations (`ENDPOINT/BUCKET/PREFIX/` prefixes) the server may read.
    pub store_allow: Vec<String>,
    /// A web session ends this long after its last request...
    pub idle: Duration,
    /// ... and this long after its sign-in, whatever it does.
    pub max: Duration,
    /// How long the server keeps a category key a trusted device released to a web
    /// session under ADP.
    pub release_ttl: Duration,
    /// Bytes of changes made on the web that may wait in an account's store for a device
    /// to take them in (FORMAT.md §9f).
    pub pending_quota: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            store_allow: Vec::new(),
            idle: Duration::from_secs(15 * 60),
            max: Duration::from_secs(8 * 3600),
            release_ttl: Duration::from_secs(3600),
            pending_quota: 1 << 30,
        }
    }
}

/// Keys one approval may carry (eight releasable categories, two versions each).
const MAX_RELEASES: usize = 16;
/// How long an ADP sign-in waits for a device's approval before it must start over: its
/// code is a secret shown on a page, so it lives minutes, not the session's hours.
const APPROVAL_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Shortest web password accepted.
const MIN_WEB_PASSWORD: usize = 10;
/// Longest web password accepted (Argon2 over it runs on the server).
const MAX_WEB_PASSWORD: usize = 1024;
/// Longest User-Agent kept with a session.
const MAX_AGENT: usize = 200;

/// An account's web registration, as stored (`web_accounts.doc`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebRegistration {
    /// The store URL the device registered (only endpoint, region, path_style and
    /// allow_http options).
    pub store: String,
    /// Its canonical location, matched against `--web-store-allow`.
    pub location: String,
    /// Argon2id PHC string over the web password.
    pub verifier: String,
    /// The registering device: signing key (hex) and name.
    pub device: String,
    pub device_name: String,
    /// Unix seconds.
    pub registered_at: u64,
    /// Turned on while Advanced Data Protection was on: every sign-in then waits for a
    /// trusted device's approval (FORMAT.md §9e).
    #[serde(default)]
    pub adp: bool,
}

/// Whether a web session needs, waits for or has a trusted device's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approval {
    /// Web access was turned on without ADP: no approval.
    NotNeeded,
    /// Under ADP, waiting for `cirrus web approve CODE` on a trusted device.
    Waiting,
    /// Approved: the stay-standard categories are served, and released keys open.
    Approved,
    /// Under ADP, but this server does not hold the session's key (another replica made
    /// it, or this one restarted): the browser must sign in again here.
    Elsewhere,
}

/// What only this server holds of an ADP web session, in memory and nowhere else: the
/// X25519 secret released keys are sealed to, and the sign-in code the page shows.
pub(crate) struct WebSecret {
    account: String,
    key: WebSessionKey,
    code: JoinCode,
}

/// The in-memory secrets of this server's ADP web sessions, by session id.
pub(crate) type WebSecrets = Mutex<HashMap<String, Arc<WebSecret>>>;

/// A live web session.
#[derive(Debug, Clone)]
pub(crate) struct WebSession {
    /// Public id (16 hex): what `cirrus web sessions` lists and `web revoke` takes.
    pub id: String,
    pub account: String,
    /// The session's form token (64 hex); see [`WebSession::csrf_ok`].
    pub csrf: String,
    pub approval: Approval,
}

impl WebSession {
    /// Whether a form's token is this session's, compared in constant time.
    pub(crate) fn csrf_ok(&self, given: &str) -> bool {
        given.len() == self.csrf.len() && bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; n];
    crypto::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

fn wrong_sign_in() -> ApiError {
    ApiError::Unauthorized(
        "wrong account, web password or TOTP code, or web access is off for this account".into(),
    )
}

fn session_ended() -> ApiError {
    ApiError::Unauthorized("the web session ended: sign in again".into())
}

/// The canonical location of an S3 store URL a device registers, `ENDPOINT/BUCKET/PREFIX/`.
/// Only the options that say where the store is are accepted: credentials, CA files and
/// timeouts are the server's own business.
pub(crate) fn store_location(url: &str) -> Result<String, ApiError> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for (k, _) in url::form_urlencoded::parse(query.as_bytes()) {
        if !matches!(&*k, "endpoint" | "region" | "path_style" | "allow_http") {
            return Err(bad(format!(
                "the web store URL may not set {k}= (the server uses its own credentials, \
                 CA and timeouts)"
            )));
        }
    }
    let cfg = crate::store::S3Config::from_url_with_env(url, &|_| None).map_err(|e| {
        bad(format!(
            "the web store must be an s3://BUCKET/PREFIX URL: {e}"
        ))
    })?;
    let endpoint = cfg
        .endpoint
        .clone()
        .unwrap_or_else(|| "https://s3.amazonaws.com".into());
    let mut loc = format!("{endpoint}/{}/", cfg.bucket);
    if !cfg.prefix.is_empty() {
        loc.push_str(&cfg.prefix);
        loc.push('/');
    }
    Ok(loc)
}

impl KeyService {
    fn web_config(&self) -> Result<&WebConfig, ApiError> {
        self.cfg.web.as_ref().ok_or_else(|| {
            ApiError::NotFound(
                "this key service runs no web front (cirrus serve --web-listen)".into(),
            )
        })
    }

    /// Whether the admin lets the server read `location` (`--web-store-allow`).
    fn store_allowed(&self, location: &str) -> Result<(), ApiError> {
        let cfg = self.web_config()?;
        if cfg
            .store_allow
            .iter()
            .any(|p| location.starts_with(p.as_str()))
        {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "this key service may not read the store at {location}: its admin allows {} \
             (cirrus serve --web-store-allow)",
            if cfg.store_allow.is_empty() {
                "none".to_string()
            } else {
                cfg.store_allow.join(", ")
            }
        )))
    }

    fn registration(tx: &mut Tx<'_>, account: &str) -> Result<Option<WebRegistration>, ApiError> {
        let Some(doc) = tx.web_account(account)? else {
            return Ok(None);
        };
        serde_json::from_str(&doc).map(Some).map_err(|e| {
            ApiError::Internal(format!("the web registration of {account} is damaged: {e}"))
        })
    }

    /// `web/on`: checks the device's registration (the manifest is signed by one of its
    /// own active devices, the registration by an active device of it, for this account
    /// and this store), makes the web password's verifier, stores both, and ends any
    /// earlier web session. Needs a recent session: it sets a credential.
    pub(crate) fn web_on(&self, c: &Caller, req: WebOnReq) -> Result<WebStatus, ApiError> {
        let name = self.recent_session(c)?;
        let location = store_location(&req.store)?;
        self.store_allowed(&location)?;
        let password = req.password.as_bytes();
        if password.len() < MIN_WEB_PASSWORD || password.len() > MAX_WEB_PASSWORD {
            return Err(bad(format!(
                "the web password must be {MIN_WEB_PASSWORD} to {MAX_WEB_PASSWORD} bytes"
            )));
        }
        let obj = unhex("manifest", &req.manifest, api::MAX_BODY)?;
        let signer = unhex_exact::<32>("signer", &req.signer)?;
        let signature = unhex_exact::<64>("signature", &req.signature)?;
        let (sm, m, hash) = crate::format::web::decode_manifest_object(&obj)
            .map_err(|e| bad(format!("the manifest does not decode: {e}")))?;
        let verify = |key: &[u8; 32], domain: &str, msg: &[u8], sig: &[u8; 64]| {
            device::verify(
                &DevicePublic {
                    sign: *key,
                    kx: [0; 32],
                },
                domain,
                msg,
                sig,
            )
            .is_ok()
        };
        if !m.is_signer(&sm.signer)
            || !verify(
                &sm.signer,
                crate::crypto::domains::SIGN_MANIFEST,
                &sm.body,
                &sm.sig,
            )
        {
            return Err(bad("the manifest is not signed by one of its own devices"));
        }
        let Some(dev) = m.active_devices().find(|d| d.sign == *signer) else {
            return Err(bad(
                "the registration is not signed by an active device of the manifest",
            ));
        };
        let msg = crate::format::web::registration_message(&name, &req.store, &hash);
        if !verify(
            &signer,
            crate::crypto::domains::SIGN_WEB_REGISTRATION,
            &msg,
            &signature,
        ) {
            return Err(bad("the registration signature does not verify"));
        }
        let verifier = self.make_verifier(password)?;
        let reg = WebRegistration {
            store: req.store.clone(),
            location,
            verifier,
            device: hex::encode(*signer),
            device_name: dev.name.clone(),
            registered_at: now_secs(),
            // Under ADP the server holds no key of the e2e categories: every sign-in
            // then waits for a trusted device (Apple's rule), until web access is
            // turned on again without ADP.
            adp: m.has(FLAG_ADP),
        };
        let doc = serde_json::to_string(&reg).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let a = Self::load(tx, &name)?;
            if !Self::totp_enrolled(&a) {
                return Err(ApiError::Conflict(
                    "web sign-ins need a TOTP code: enrol TOTP first (cirrus account totp \
                     enroll)"
                        .into(),
                ));
            }
            tx.put_web_account(&name, &doc)?;
            tx.delete_web_sessions(&name, None)?;
            self.forget_web_secrets(Some(&name), None);
            tx.raise_web_seen(&name, WEB_MANIFEST, m.counter, &hash, Some(&obj))?;
            log::info!(
                "web access on for {name} (device {}, store {}{})",
                reg.device_name,
                reg.location,
                if reg.adp {
                    "; ADP: each sign-in needs a device's approval"
                } else {
                    ""
                }
            );
            self.web_status_in(tx, &name)
        })
    }

    fn web_status_in(&self, tx: &mut Tx<'_>, name: &str) -> Result<WebStatus, ApiError> {
        let sessions = tx.web_sessions(name)?;
        let now = db::now_ms();
        let live = sessions.iter().filter(|s| self.web_live(s, now)).count();
        Ok(match Self::registration(tx, name)? {
            None => WebStatus::default(),
            Some(r) => WebStatus {
                enabled: true,
                store: Some(r.store),
                registered_at: Some(r.registered_at),
                device: Some(r.device_name),
                sessions: u32::try_from(live).unwrap_or(u32::MAX),
                approvals: r.adp,
            },
        })
    }

    /// `web/off`: removes the registration and ends every web session.
    pub(crate) fn web_off(&self, c: &Caller) -> Result<WebStatus, ApiError> {
        let name = self.session(c)?;
        self.locked_session(c, &name, Recency::Stale, |tx| {
            if tx.delete_web_account(&name)? {
                log::info!("web access off for {name}");
            }
            tx.delete_web_sessions(&name, None)?;
            self.forget_web_secrets(Some(&name), None);
            self.web_status_in(tx, &name)
        })
    }

    /// Ends every web session of `name` (password change, reset), with the keys released
    /// to them.
    pub(super) fn end_web_sessions(&self, tx: &mut Tx<'_>, name: &str) -> Result<(), ApiError> {
        if tx.delete_web_sessions(name, None)? > 0 {
            log::info!("account {name}: every web session ended");
        }
        self.forget_web_secrets(Some(name), None);
        Ok(())
    }

    /// Drops this server's in-memory secrets of an account's sessions (`id`: one of
    /// them), or, with no account, of every session the database no longer has.
    fn forget_web_secrets(&self, account: Option<&str>, id: Option<&str>) {
        let mut map = self.web_secrets.lock().unwrap_or_else(|p| p.into_inner());
        match (account, id) {
            (_, Some(id)) => {
                map.remove(id);
            }
            (Some(a), None) => map.retain(|_, s| s.account != a),
            (None, None) => {}
        }
    }

    /// Turns web access off for `account` on the server's own finding (the manifest says
    /// ADP is on): the same as `web off`, logged with why.
    pub(crate) fn web_disable(&self, account: &str, why: &str) -> Result<(), ApiError> {
        self.locked(account, |tx| {
            if tx.delete_web_account(account)? {
                log::warn!("web access off for {account}: {why}");
            }
            tx.delete_web_sessions(account, None)?;
            self.forget_web_secrets(Some(account), None);
            Ok(())
        })
    }

    pub(crate) fn web_status(&self, c: &Caller) -> Result<WebStatus, ApiError> {
        let name = self.session(c)?;
        self.read(|tx| self.web_status_in(tx, &name))
    }

    pub(crate) fn web_sessions_list(&self, c: &Caller) -> Result<WebSessionsResp, ApiError> {
        let name = self.session(c)?;
        let now = db::now_ms();
        let (rows, approvals) =
            self.read(|tx| Ok((tx.web_sessions(&name)?, tx.web_approvals(&name)?)))?;
        Ok(WebSessionsResp {
            sessions: rows
                .into_iter()
                .filter(|s| self.web_live(s, now))
                .map(|s| {
                    let a = approvals.iter().find(|a| a.id == s.id);
                    session_info(s, a)
                })
                .collect(),
        })
    }

    /// `web/revoke`: ends one web session (by id) or all of the account's.
    pub(crate) fn web_revoke(
        &self,
        c: &Caller,
        req: WebRevokeReq,
    ) -> Result<WebRevokeResp, ApiError> {
        let name = self.session(c)?;
        if let Some(id) = &req.id
            && (id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(bad(
                "a web session id is 16 hex digits (cirrus web sessions)",
            ));
        }
        let ended = self.unlocked(|tx| Ok(tx.delete_web_sessions(&name, req.id.as_deref())?))?;
        // Only what was this account's: an id of another account's session ends nothing.
        if ended > 0 {
            self.forget_web_secrets(Some(&name), req.id.as_deref());
        }
        if req.id.is_some() && ended == 0 {
            return Err(ApiError::NotFound(
                "no such web session of this account".into(),
            ));
        }
        log::info!("{ended} web session(s) of {name} revoked");
        Ok(WebRevokeResp { ended })
    }

    fn web_live(&self, s: &WebSessionRow, now: i64) -> bool {
        let Ok(cfg) = self.web_config() else {
            return false;
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(s.last_ms) < ms(cfg.idle)
            && now.saturating_sub(s.created_ms) < ms(cfg.max)
    }

    /// A web sign-in: the web password and a TOTP code (always: no web access without a
    /// second factor). Failures count on the account's login limit and the source's, as
    /// the API's logins do, and the TOTP step is used up for both. Runs Argon2: call it
    /// holding a KDF permit. Every refusal reads the same (no account enumeration).
    pub(crate) fn web_sign_in(
        &self,
        ip: IpAddr,
        account: &str,
        password: &str,
        totp: &str,
        agent: &str,
    ) -> Result<Zeroizing<String>, ApiError> {
        if check_account_name(account).is_err() || password.len() > MAX_WEB_PASSWORD {
            return Err(wrong_sign_in());
        }
        let key = format!("login:{account}");
        self.locked(account, |tx| {
            let reg = Self::registration(tx, account)?;
            let a = tx.account(account)?;
            self.limit_check(tx, &key, ip)?;
            let (Some(mut a), Some(reg)) = (a, reg) else {
                let _ = self.verify(&self.dummy_verifier, password.as_bytes());
                self.limit_fail(tx, &key, ip)?;
                return Err(wrong_sign_in());
            };
            if !self.verify(&reg.verifier, password.as_bytes()) || !Self::totp_enrolled(&a) {
                self.limit_fail(tx, &key, ip)?;
                log::info!("failed web sign-in for {account} from {ip}");
                return Err(wrong_sign_in());
            }
            match self.check_totp(tx, &mut a, totp, &key, ip) {
                Ok(()) => {}
                Err(ApiError::SecondFactor(_)) => return Err(wrong_sign_in()),
                Err(e) => return Err(e),
            }
            self.limit_success(tx, &key)?;
            let now = db::now_ms();
            reset::push_notice(&mut a, NoticeKind::WebSignIn, now_secs(), ip, None);
            tx.put_account(&a)?;
            let token = new_token()?;
            let row = WebSessionRow {
                id: random_hex(8)?,
                account: account.to_string(),
                csrf: random_hex(32)?,
                created_ms: now,
                last_ms: now,
                source: ip.to_string(),
                agent: agent
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_AGENT)
                    .collect(),
            };
            tx.put_web_session(&token_hash(&token), &row)?;
            if reg.adp {
                let secret = WebSecret {
                    account: account.to_string(),
                    key: WebSessionKey::generate()?,
                    code: JoinCode::generate()?,
                };
                let public = secret.key.public();
                tx.put_web_approval(&WebApprovalRow {
                    id: row.id.clone(),
                    account: account.to_string(),
                    public_key: public.to_vec(),
                    mac: crate::keys::web::session_key_mac(&secret.code, account, &row.id, &public)
                        .to_vec(),
                    approved_ms: None,
                    approver: None,
                })?;
                self.web_secrets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(row.id.clone(), Arc::new(secret));
            }
            log::info!(
                "web sign-in for {account} from {ip} (session {}{})",
                row.id,
                if reg.adp {
                    ", waiting for a device's approval"
                } else {
                    ""
                }
            );
            Ok(token)
        })
    }

    /// The live web session of a cookie token, its last use moved to now. Ended (idle,
    /// too old, revoked, web access off): `Unauthorized`, and the row is removed.
    pub(crate) fn web_session(&self, token: &str) -> Result<WebSession, ApiError> {
        let hash = token_hash(token);
        let now = db::now_ms();
        self.unlocked(|tx| {
            let Some(s) = tx.web_session(&hash)? else {
                return Err(session_ended());
            };
            if !self.web_live(&s, now) || tx.web_account(&s.account)?.is_none() {
                tx.delete_web_session(&hash)?;
                return Err(session_ended());
            }
            tx.touch_web_session(&hash, now)?;
            let approval = match tx.web_approval(&s.id)? {
                None => Approval::NotNeeded,
                Some(_) if !self.holds_web_secret(&s.id) => Approval::Elsewhere,
                Some(a) if a.approved_ms.is_some() => Approval::Approved,
                Some(_) => Approval::Waiting,
            };
            Ok(WebSession {
                id: s.id,
                account: s.account,
                csrf: s.csrf,
                approval,
            })
        })
    }

    fn holds_web_secret(&self, id: &str) -> bool {
        self.web_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn web_secret(&self, id: &str) -> Option<Arc<WebSecret>> {
        self.web_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub(crate) fn web_sign_out(&self, token: &str) -> Result<(), ApiError> {
        let hash = token_hash(token);
        self.unlocked(|tx| {
            if let Some(s) = tx.web_session(&hash)? {
                self.forget_web_secrets(None, Some(&s.id));
            }
            tx.delete_web_session(&hash)?;
            Ok(())
        })
    }

    /// The sign-in code of a waiting ADP session, as its page shows it (`XXXX-XXXX-...`).
    pub(crate) fn web_sign_in_code(&self, id: &str) -> Option<Zeroizing<String>> {
        self.web_secret(id).map(|s| s.code.grouped())
    }

    /// `web/approvals`: the account's live ADP web sign-ins, waiting or approved, with the
    /// key and MAC a device checks against the code it was given.
    pub(crate) fn web_approvals_list(&self, c: &Caller) -> Result<WebApprovalsResp, ApiError> {
        let name = self.session(c)?;
        let now = db::now_ms();
        let (rows, approvals) =
            self.read(|tx| Ok((tx.web_sessions(&name)?, tx.web_approvals(&name)?)))?;
        Ok(WebApprovalsResp {
            approvals: rows
                .into_iter()
                .filter(|s| self.web_live(s, now))
                .filter_map(|s| {
                    let a = approvals.iter().find(|a| a.id == s.id)?;
                    Some(WebApproval {
                        public_key: hex::encode(&a.public_key),
                        mac: hex::encode(&a.mac),
                        approved: a.approved_ms.is_some(),
                        session: session_info(s, Some(a)),
                    })
                })
                .collect(),
        })
    }

    /// `web/approve`: a trusted device approves a waiting ADP sign-in and releases the
    /// keys of some categories to it, sealed to the session's key. Only categories on the
    /// release list, end-to-end in the manifest the server trusts, are taken; each is
    /// kept until `release_ttl` from now.
    pub(crate) fn web_approve(
        &self,
        c: &Caller,
        req: WebApproveReq,
    ) -> Result<WebApproveResp, ApiError> {
        let name = self.session(c)?;
        let ttl = self.web_config()?.release_ttl;
        if req.id.len() != 16 || !req.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a web session id is 16 hex digits"));
        }
        if req.releases.len() > MAX_RELEASES {
            return Err(bad(format!("at most {MAX_RELEASES} keys per approval")));
        }
        let proof = unhex_exact::<32>("proof", &req.proof)?;
        // The code is in this server's memory only: another replica (or this one after a
        // restart) cannot check the proof, and its browser could not open the keys.
        let Some(secret) = self.web_secret(&req.id) else {
            return Err(ApiError::Conflict(
                "this web sign-in is held by another server of the service (or it \
                 restarted): sign in again on the web"
                    .into(),
            ));
        };
        let device: String = req
            .device
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        let mut releases = Vec::with_capacity(req.releases.len());
        for r in &req.releases {
            let sealed = unhex("sealed", &r.sealed, 256)?;
            if r.version == 0 || sealed.len() < 32 {
                return Err(bad("a released key is malformed"));
            }
            releases.push((r.category, r.version, sealed));
        }
        let now = db::now_ms();
        let expires_ms = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.locked(&name, |tx| {
            let live = tx
                .web_sessions(&name)?
                .into_iter()
                .find(|s| s.id == req.id)
                .filter(|s| self.web_live(s, now));
            let s_created = live.as_ref().map_or(0, |s| s.created_ms);
            let (Some(_), Some(a)) = (live, tx.web_approval(&req.id)?) else {
                return Err(ApiError::NotFound(
                    "no web sign-in of this account waits with that id (ended, or it \
                     needs no approval)"
                        .into(),
                ));
            };
            if a.account != name || secret.account != name {
                return Err(ApiError::NotFound("no such web session".into()));
            }
            let public: [u8; 32] = a
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| ApiError::Internal("a damaged web approval".into()))?;
            let want = crate::keys::web::approval_proof(&secret.code, &name, &req.id, &public);
            if !crypto::ct_eq(&want, &*proof) {
                return Err(ApiError::Forbidden(
                    "the approval does not carry this sign-in's code".into(),
                ));
            }
            if a.approved_ms.is_none() && now.saturating_sub(s_created) > APPROVAL_WINDOW_MS {
                return Err(ApiError::Gone(
                    "this web sign-in waited too long for approval: sign in again on the web"
                        .into(),
                ));
            }
            let manifest = match tx.web_seen(&name, WEB_MANIFEST)? {
                Some((_, _, Some(obj))) => {
                    crate::format::web::decode_manifest_object(&obj)
                        .map_err(|e| ApiError::Internal(format!("the trusted manifest: {e}")))?
                        .1
                }
                _ => return Err(ApiError::NotFound("web access is off".into())),
            };
            // Every release is checked before any is stored: a refused request stores none.
            let mut accepted = Vec::with_capacity(releases.len());
            for (category, version, sealed) in &releases {
                let Some(e) = manifest.table.active().find(|e| e.id == *category) else {
                    return Err(bad(format!("no category {category} in the account")));
                };
                if !crate::format::web::RELEASABLE.contains(&e.name.as_str()) {
                    return Err(ApiError::Forbidden(format!(
                        "{} is never released to the web",
                        e.name
                    )));
                }
                if e.class != Class::E2e {
                    return Err(bad(format!(
                        "{} is not end-to-end encrypted: the web serves it without a release",
                        e.name
                    )));
                }
                // The current version or the one before (a rotation in progress); a newer
                // one than the manifest the server trusts, within reason (it may not have
                // followed the device's latest manifest yet).
                if *version + 1 < e.key_version || *version > e.key_version.saturating_add(8) {
                    return Err(bad(format!(
                        "key version {version} of {} is not one the manifest names",
                        e.name
                    )));
                }
                accepted.push((e.name.clone(), *category, *version, sealed));
            }
            for (cat_name, category, version, sealed) in accepted {
                tx.put_web_release(
                    &req.id,
                    &name,
                    &WebReleaseRow {
                        category,
                        version,
                        sealed: sealed.clone(),
                        expires_ms,
                    },
                )?;
                log::info!(
                    "{name}: {device} released {cat_name} (key version {version}) to web \
                     session {}",
                    req.id
                );
            }
            if a.approved_ms.is_none() {
                tx.approve_web_session(&req.id, now, &device)?;
                log::info!("{name}: {device} approved web session {}", req.id);
            }
            Ok(WebApproveResp {
                expires: u64::try_from(expires_ms / 1000).unwrap_or(0),
            })
        })
    }

    /// A category key a trusted device released to web session `id` of `account`, if
    /// it has not expired and this server holds the session's secret. Opened for the
    /// request that asks and dropped with it: only the sealed form is stored.
    pub(crate) fn web_released(
        &self,
        account: &str,
        id: &str,
        category: u32,
        version: u32,
    ) -> Result<Option<SecretKey>, ApiError> {
        let Some(secret) = self.web_secret(id) else {
            return Ok(None);
        };
        if secret.account != account {
            return Ok(None);
        }
        let now = db::now_ms();
        let rows = self.read(|tx| Ok(tx.web_releases(id, now)?))?;
        let Some(r) = rows
            .iter()
            .find(|r| r.category == category && r.version == version)
        else {
            return Ok(None);
        };
        match secret
            .key
            .open_release(account, id, category, version, &r.sealed)
        {
            Ok(k) => Ok(Some(k)),
            Err(e) => {
                log::warn!(
                    "web session {id} of {account}: a released key of category {category} \
                     does not open ({e})"
                );
                Ok(None)
            }
        }
    }

    /// The store URL of `account`'s registration, if the admin still allows its location.
    /// The account's quota of bytes of changes waiting for a device (`--web-pending-quota`;
    /// 0 without a web front, which takes no changes then).
    pub(crate) fn web_pending_quota(&self) -> u64 {
        self.cfg.web.as_ref().map_or(0, |w| w.pending_quota)
    }

    pub(crate) fn web_store(&self, account: &str) -> Result<String, ApiError> {
        let reg = self
            .read(|tx| Self::registration(tx, account))?
            .ok_or_else(session_ended)?;
        self.store_allowed(&reg.location)?;
        Ok(reg.store)
    }

    /// Unwraps a key the service wrapped for `account` (a category key object's bytes
    /// after its class byte): only for the web front, while it serves that account.
    pub(crate) fn web_unwrap(
        &self,
        account: &str,
        ctx: &[u8],
        wrapped: &[u8],
    ) -> Result<SecretKey, ApiError> {
        let a = self.read(|tx| Self::load(tx, account))?;
        let key = self.unwrap_bytes(&a, ctx, wrapped)?;
        Ok(SecretKey::from_bytes(*key))
    }

    /// The highest (counter, hash, object) the web front recorded for `what`.
    pub(crate) fn web_seen(&self, account: &str, what: u32) -> Result<Option<SeenRow>, ApiError> {
        self.read(|tx| Ok(tx.web_seen(account, what)?))
    }

    /// Raises the record for `what` (never lowers it).
    pub(crate) fn web_record_seen(
        &self,
        account: &str,
        what: u32,
        counter: u64,
        hash: &[u8; 32],
        obj: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        self.unlocked(|tx| Ok(tx.raise_web_seen(account, what, counter, hash, obj)?))
    }

    /// Drops ended web sessions (called now and then by the front).
    pub(crate) fn web_prune(&self) -> Result<(), ApiError> {
        let cfg = self.web_config()?.clone();
        let now = db::now_ms();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let live = self.unlocked(|tx| {
            tx.prune_web_sessions(
                now.saturating_sub(ms(cfg.idle)),
                now.saturating_sub(ms(cfg.max)),
            )?;
            tx.prune_web_releases(now)?;
            Ok(tx.web_session_ids()?)
        })?;
        self.web_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id));
        Ok(())
    }
}

/// A session as `web sessions` and `web approvals` list it.
fn session_info(s: WebSessionRow, a: Option<&WebApprovalRow>) -> WebSessionInfo {
    let secs = |ms: i64| u64::try_from(ms / 1000).unwrap_or(0);
    WebSessionInfo {
        id: s.id,
        started: secs(s.created_ms),
        last_used: secs(s.last_ms),
        from: s.source,
        agent: s.agent,
        approval: a.map(|a| {
            if a.approved_ms.is_some() {
                "approved".to_string()
            } else {
                "waiting".to_string()
            }
        }),
    }
}
