//! The account's link to a remote key service (`cirrus serve`): logging in with the
//! account password plus this device's remembered-device token (or a TOTP code), and the
//! service-key operations over that session. The pinned certificate fingerprint is in the
//! config, so a server with another certificate is refused before anything is sent.

use super::*;
use crate::home::ServerConfig;
use crate::keyservice::Fingerprint;
use crate::keyservice::client::{ClientError, KeyClient, SecondFactor, Session};
use zeroize::Zeroizing;

impl From<ClientError> for AccountError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::ReauthRequired(_) => AccountError::ReauthRequired,
            ClientError::SecondFactorRequired(msg) => AccountError::SecondFactorRequired(msg),
            e => AccountError::Service(ServiceError::Remote(e.to_string())),
        }
    }
}

/// Standard and transit keys wrapped by the remote key service.
pub struct RemoteService(pub Arc<Session>);

impl ServiceKeys for RemoteService {
    fn wrap(&self, ctx: Context, key: &SecretKey) -> Result<Vec<u8>, ServiceError> {
        self.0
            .service_wrap(&ctx.to_bytes(), key)
            .map_err(|e| ServiceError::Remote(e.to_string()))
    }

    fn unwrap(&self, ctx: Context, wrapped: &[u8], what: &str) -> Result<SecretKey, ServiceError> {
        self.0
            .service_unwrap(&ctx.to_bytes(), wrapped)
            .map_err(|e| ServiceError::Remote(format!("{what}: {e}")))
    }
}

/// A client for the configured key service. The password KDF floor is this account's
/// own setting, so a server cannot talk the client into cheaper parameters.
pub fn client_for(server: &ServerConfig, kdf: KdfParams) -> Result<KeyClient, AccountError> {
    let pin: Fingerprint = server
        .fingerprint
        .parse()
        .map_err(|_| HomeError::BadConfig {
            path: PathBuf::from("config.toml"),
            why: format!("bad server fingerprint {:?}", server.fingerprint),
        })?;
    Ok(KeyClient::new(&server.url, pin)?.with_min_kdf(kdf))
}

use super::local::token_ctx;

pub(crate) fn save_token(
    home: &Home,
    device_key: &SecretKey,
    token: &str,
) -> Result<(), AccountError> {
    let sealed = crypto::seal(
        device_key,
        crypto::Suite::XtsBlake3,
        &token_ctx().to_bytes(),
        token.as_bytes(),
    )?;
    crate::home::write_atomic(&home.server_token_path(), &sealed)?;
    Ok(())
}

pub(crate) fn load_token(home: &Home, device_key: &SecretKey) -> Option<Zeroizing<String>> {
    let bytes = std::fs::read(home.server_token_path()).ok()?;
    let plain = crypto::open(
        device_key,
        crypto::Suite::XtsBlake3,
        &token_ctx().to_bytes(),
        &bytes,
    )
    .ok()?;
    String::from_utf8(plain).ok().map(Zeroizing::new)
}

/// Why a login to the key service gave this device no session, in the cases where what
/// the device holds stays as good as before: its own keys (e2e, and the standard keys in
/// its keyring) were opened by its passcode, not by the service, so a drive or `status`
/// may go on with them and show the rest as locked. Anything else that stops a login (a
/// server presenting another certificate, an answer that makes no sense, a damaged home)
/// is no such case and stays an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoSession {
    /// Nothing answered (stopped, network down, timed out), or it failed on its side.
    #[error("{0} (check that the key service runs and that this computer can reach it)")]
    Unreachable(String),
    /// It answered and refused: wrong password (or TOTP code), too many tries.
    #[error(
        "the key service refused the login: {0} (check the account password in the \
         --password-file, and the --totp code if you gave one)"
    )]
    Refused(String),
    /// It wants a TOTP code from this device: its remembered token was revoked (a password
    /// change or reset forgets every device) or it never had one.
    #[error("{0}; this device must log in again: run `cirrus account login --totp CODE` once")]
    MustLogInAgain(String),
}

impl NoSession {
    /// What a category whose key needs the service says (the whole reason is told once,
    /// elsewhere).
    pub fn short(&self) -> &'static str {
        match self {
            NoSession::Unreachable(_) => {
                "this key is not on this device, and the key service could not be reached"
            }
            NoSession::Refused(_) => {
                "this key is not on this device, and the key service refused the login"
            }
            NoSession::MustLogInAgain(_) => {
                "this key is not on this device, and the key service wants this device to \
                 log in again (`cirrus account login --totp CODE`)"
            }
        }
    }

    /// The login failures a device may go on after with the keys it holds; None for the
    /// others.
    fn of(e: &ClientError) -> Option<NoSession> {
        match e {
            ClientError::Connect { .. } | ClientError::Server(_) => {
                Some(NoSession::Unreachable(e.to_string()))
            }
            ClientError::Unauthorized(_) | ClientError::RateLimited { .. } => {
                Some(NoSession::Refused(e.to_string()))
            }
            ClientError::SecondFactorRequired(_) | ClientError::ReauthRequired(_) => {
                Some(NoSession::MustLogInAgain(e.to_string()))
            }
            _ => None,
        }
    }
}

/// Logs the device whose home and device key are given in to `server` and remembers it:
/// with `totp` when given, else with the device's remembered token (if it has one). The
/// new token is sealed under the device key at once, so later logins need no code.
pub(crate) fn log_in(
    home: &Home,
    device_key: &SecretKey,
    server: &ServerConfig,
    kdf: KdfParams,
    password: &Passcode,
    totp: Option<&str>,
) -> Result<Session, AccountError> {
    Ok(try_log_in(home, device_key, server, kdf, password, totp)??)
}

/// [`log_in`], its two kinds of failure apart: the outer error is this device's (its
/// config, saving the token), the inner one what the key service (or the way to it) said.
fn try_log_in(
    home: &Home,
    device_key: &SecretKey,
    server: &ServerConfig,
    kdf: KdfParams,
    password: &Passcode,
    totp: Option<&str>,
) -> Result<Result<Session, ClientError>, AccountError> {
    let client = client_for(server, kdf)?;
    let second = match (totp, load_token(home, device_key)) {
        (Some(code), Some(old)) => SecondFactor::TotpReplacing {
            code: code.to_string(),
            old,
        },
        (Some(code), None) => SecondFactor::Totp(code.to_string()),
        (None, Some(t)) => SecondFactor::DeviceToken(t),
        (None, None) => SecondFactor::None,
    };
    let (session, new_token) = match client.login(&server.account, password, second, true) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(t) = new_token {
        save_token(home, device_key, &t)?;
    }
    Ok(Ok(session))
}

impl Unlocked {
    /// Logs in to the account's key service: with `totp` when given, else with this
    /// device's remembered token (when the account has TOTP). Remembers the device.
    pub fn connect(&mut self, password: &Passcode, totp: Option<&str>) -> Result<(), AccountError> {
        Ok(self.log_in(password, totp)??)
    }

    /// [`Unlocked::connect`] for what can go on with the keys this device holds (a mount,
    /// `status`): when the key service cannot be reached or refuses the login, returns
    /// why, and every category whose key needs the service stays locked saying so. A
    /// wrong password opens nothing it would not open without one: this device's keys
    /// are opened by its passcode, and nothing comes from the service without a session.
    pub fn connect_or_hold(
        &mut self,
        password: &Passcode,
        totp: Option<&str>,
    ) -> Result<Option<NoSession>, AccountError> {
        match self.log_in(password, totp)? {
            Ok(()) => Ok(None),
            Err(e) => {
                let why = NoSession::of(&e).ok_or(e)?;
                self.no_session = Some(why.clone());
                Ok(Some(why))
            }
        }
    }

    /// Why the login of [`Unlocked::connect_or_hold`] gave no session, if it did not.
    pub fn no_session(&self) -> Option<&NoSession> {
        self.no_session.as_ref()
    }

    /// The login: the outer error is this device's (its config, saving the token), the
    /// inner one what the key service (or the way to it) said.
    fn log_in(
        &mut self,
        password: &Passcode,
        totp: Option<&str>,
    ) -> Result<Result<(), ClientError>, AccountError> {
        let Some(server) = self.config.server.clone() else {
            return Ok(Ok(()));
        };
        match try_log_in(
            &self.home,
            &self.device_key,
            &server,
            self.config.kdf,
            password,
            totp,
        )? {
            Ok(session) => {
                self.use_session(session);
                self.no_session = None;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Records the key service this account uses (a device that joined or recovered).
    pub fn set_server(&mut self, server: ServerConfig) -> Result<(), AccountError> {
        self.config.server = Some(server);
        self.home.save_config(&self.config)?;
        Ok(())
    }

    /// Uses a session with the account's key service (from [`Unlocked::connect`], or a
    /// recovery that logged in before the device had an account).
    pub fn use_session(&mut self, session: Session) {
        let session = Arc::new(session);
        self.service = Some(Box::new(RemoteService(session.clone())));
        self.session = Some(session);
        self.mark_key_service();
    }

    /// An account made before its manifest said whether it uses a key service gets the
    /// mark from the first device that logs in to one (every later manifest keeps it):
    /// from then on a recovery without the key service is refused before it starts.
    fn mark_key_service(&mut self) {
        if self.manifest.has(FLAG_KEY_SERVICE) || self.config.server.is_none() {
            return;
        }
        // `publish_manifest` sets the flag on a device with a key service.
        let next = self.manifest.clone();
        if let Err(e) = self.publish_manifest(next) {
            // The login itself worked; the mark waits for the next manifest.
            log::warn!("cannot record in the account manifest that it uses a key service: {e}");
        }
    }

    /// The key service session, for commands that need more than wrapping.
    pub fn session(&self) -> Result<&Session, AccountError> {
        self.session.as_deref().ok_or(AccountError::NoKeyService)
    }

    /// Fails unless the session may make the requests that change credentials or
    /// recovery: checked before a change with several steps (a recovery key, a service
    /// key rotation), so that none is left half done. A login with the password and
    /// `--totp CODE` (or on an account without TOTP) is recent; one through this device's
    /// remembered token is not, and the code given at login cannot be used twice.
    pub fn ensure_recent(&self) -> Result<(), AccountError> {
        if self.session()?.is_recent() {
            Ok(())
        } else {
            Err(AccountError::ReauthRequired)
        }
    }

    /// Starts TOTP enrolment; returns the `otpauth://` URI to show (or scan).
    pub fn totp_enroll(&self) -> Result<Zeroizing<String>, AccountError> {
        Ok(self.session()?.totp_enroll()?)
    }

    /// Confirms TOTP with a code from the app. From then on the account has a second
    /// factor, so its e2e categories are unlocked (recorded in the signed manifest).
    pub fn totp_confirm(&mut self, code: &str) -> Result<(), AccountError> {
        let token = self.session()?.totp_confirm(code, true)?;
        if let Some(t) = token {
            save_token(&self.home, &self.device_key, &t)?;
        }
        if !self.manifest.has(FLAG_SECOND_FACTOR) {
            let mut next = self.manifest.clone();
            next.set(FLAG_SECOND_FACTOR, true);
            self.publish_manifest(next)?;
        }
        Ok(())
    }

    /// `cirrus rotate --service`: a new service-key version on the server; every
    /// standard and transit key object is re-wrapped under it, then the old versions are
    /// destroyed on the server.
    pub fn rotate_service_key(&self) -> Result<(u32, usize), AccountError> {
        let session = self.session()?;
        // Retiring the old versions at the end needs a recent session: found out now,
        // before a new version is made and keys are rewrapped.
        self.ensure_recent()?;
        let st = session.service_rotate()?;
        let mut n = 0;
        for e in &self.manifest.table.entries {
            for v in [e.key_version.saturating_sub(1), e.key_version] {
                let name = names::category_key(e.id, v);
                let Ok(obj) = self.store.get(&name) else {
                    continue;
                };
                let Some((class, wrapped)) = obj.split_first() else {
                    continue;
                };
                if *class == Class::E2e as u8 {
                    continue;
                }
                let ctx = keys::category_key_context(e.id, v);
                let re = session.service_rewrap(&ctx.to_bytes(), wrapped)?;
                let mut out = vec![*class];
                out.extend_from_slice(&re);
                self.store.put(&name, &out)?;
                n += 1;
            }
        }
        session.service_retire(st.current)?;
        Ok((st.current, n))
    }
}

/// How `init` reaches a key service.
pub struct ServerInit {
    pub url: String,
    pub fingerprint: Fingerprint,
    pub account: String,
    pub password: Passcode,
    /// For a service with closed sign-up.
    pub invite: Option<Zeroizing<String>>,
}

impl Unlocked {
    /// Moves an account from the embedded key service to a remote one (a second device is
    /// coming): creates the account there, re-wraps every standard and transit key under
    /// the remote service key, then deletes the embedded service's key. The account then
    /// needs TOTP before its e2e categories unlock again, as every remote account does.
    pub fn move_to_server(&mut self, srv: ServerInit) -> Result<usize, AccountError> {
        if self.config.server.is_some() {
            return Err(AccountError::BadCode(
                "this account already uses a key service".into(),
            ));
        }
        let cfg = ServerConfig {
            url: srv.url.clone(),
            fingerprint: srv.fingerprint.to_string(),
            account: srv.account.clone(),
        };
        let client = client_for(&cfg, self.config.kdf)?;
        // Resumable: an account created by an interrupted move is logged in to instead.
        // The password's KDF reaches the server through `auth`: never below the floor,
        // even in a home made with cheaper costs before there was one.
        match client.create_account_invited(
            &srv.account,
            &srv.password,
            crate::keys::floor::floor_for(self.config.kdf),
            srv.invite.as_deref().map(|s| s.as_str()),
        ) {
            Ok(_) | Err(ClientError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (session, token) =
            client.login(&srv.account, &srv.password, SecondFactor::None, true)?;
        if let Some(t) = token {
            save_token(&self.home, &self.device_key, &t)?;
        }
        let session = Arc::new(session);
        let remote = RemoteService(session.clone());
        let mut n = 0;
        for e in self.manifest.table.entries.clone() {
            if e.class == Class::E2e {
                continue;
            }
            for v in [e.key_version.saturating_sub(1), e.key_version] {
                if v == 0 || self.store.size(&names::category_key(e.id, v)).is_err() {
                    continue;
                }
                let key = self.category_key_version(&e, v)?;
                let ctx = keys::category_key_context(e.id, v);
                let mut obj = vec![e.class as u8];
                obj.extend_from_slice(&remote.wrap(ctx, &key)?);
                self.store.put(&names::category_key(e.id, v), &obj)?;
                n += 1;
            }
        }
        self.config.server = Some(cfg);
        self.home.save_config(&self.config)?;
        let mut next = self.manifest.clone();
        next.set(FLAG_SECOND_FACTOR, false);
        self.publish_manifest(next)?;
        self.service = Some(Box::new(remote));
        self.session = Some(session);
        // The embedded service's key would still open the old wraps held in backups of
        // the store: it goes.
        let _ = std::fs::remove_dir_all(self.home.keyservice_dir());
        Ok(n)
    }

    /// Changes the account password on the key service (the server sees only the new
    /// verifier, never the password). The server then ends every other session and
    /// forgets every remembered device; this one is remembered again with the token the
    /// change returns.
    pub fn change_password(&mut self, new: &Passcode) -> Result<(), AccountError> {
        // Never below the floor (see move_to_server).
        let kdf = crate::keys::floor::floor_for(self.config.kdf);
        self.service = None;
        let session = self.session.take().ok_or(AccountError::NoKeyService)?;
        let mut s = Arc::try_unwrap(session).map_err(|_| AccountError::NoKeyService)?;
        let res = s.change_password(new, kdf, true);
        let s = Arc::new(s);
        self.service = Some(Box::new(RemoteService(s.clone())));
        self.session = Some(s);
        if let Some(t) = res? {
            save_token(&self.home, &self.device_key, &t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_or_refusing_key_service_lets_a_mount_go_on_without_it() {
        let connect = ClientError::Connect {
            url: "https://127.0.0.1:1".into(),
            cause: "connection refused".into(),
        };
        assert!(matches!(
            NoSession::of(&connect),
            Some(NoSession::Unreachable(_))
        ));
        assert!(matches!(
            NoSession::of(&ClientError::Unauthorized("wrong".into())),
            Some(NoSession::Refused(_))
        ));
        assert!(matches!(
            NoSession::of(&ClientError::RateLimited { retry_after: 5 }),
            Some(NoSession::Refused(_))
        ));
        let again = NoSession::of(&ClientError::SecondFactorRequired("x".into()));
        assert!(matches!(again, Some(NoSession::MustLogInAgain(_))));
        assert!(again.unwrap().to_string().contains("cirrus account login"));
        // A server that is not the one this device trusts, or that answers nonsense, is
        // no reason to go on: the mount stops.
        let fp = Fingerprint::from_bytes([1; 32]);
        for e in [
            ClientError::FingerprintMismatch {
                expected: fp,
                got: Fingerprint::from_bytes([2; 32]),
            },
            ClientError::Protocol("garbage".into()),
            ClientError::BadRequest("no".into()),
        ] {
            assert!(NoSession::of(&e).is_none(), "{e}");
        }
    }

    #[test]
    fn the_second_factor_errors_name_the_flag_that_gives_it() {
        // decided on the client's variant, never on the server's text
        let e = AccountError::from(ClientError::SecondFactorRequired("anything".into()));
        assert!(matches!(e, AccountError::SecondFactorRequired(_)));
        assert!(e.to_string().contains("--totp CODE"), "{e}");
        // the way back for a device the key service forgot (issue 16)
        assert!(
            e.to_string().contains("`cirrus account login --totp CODE`"),
            "{e}"
        );
        let e = AccountError::from(ClientError::ReauthRequired("anything".into()));
        assert!(matches!(e, AccountError::ReauthRequired));
        assert!(e.to_string().contains("--totp CODE"), "{e}");
    }
}
