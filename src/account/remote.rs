//! The account's link to a remote key service (`cirrus serve`): logging in with the
//! account password plus this device's remembered-device token (or a TOTP code), and the
//! service-key operations over that session. The pinned certificate fingerprint is in the
//! config, so a server with another certificate is refused before anything is sent.

use super::*;
use crate::home::ServerConfig;
use crate::server::Fingerprint;
use crate::server::client::{ClientError, KeyClient, SecondFactor, Session};
use zeroize::Zeroizing;

impl From<ClientError> for AccountError {
    fn from(e: ClientError) -> Self {
        AccountError::Service(ServiceError::Remote(e.to_string()))
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

fn token_ctx() -> Context {
    Context::new(ObjKind::ServerToken, 0, 0, 0)
}

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

fn load_token(home: &Home, device_key: &SecretKey) -> Option<Zeroizing<String>> {
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

impl Unlocked {
    /// Logs in to the account's key service: with this device's remembered token if it
    /// has one, else with `totp` (when the account has TOTP). Remembers the device.
    pub fn connect(&mut self, password: &Passcode, totp: Option<&str>) -> Result<(), AccountError> {
        let Some(server) = self.config.server.clone() else {
            return Ok(());
        };
        let client = client_for(&server, self.config.kdf)?;
        let token = load_token(&self.home, &self.device_key);
        let second = match (totp, token) {
            (Some(code), _) => SecondFactor::Totp(code.to_string()),
            (None, Some(t)) => SecondFactor::DeviceToken(t),
            (None, None) => SecondFactor::None,
        };
        let (session, new_token) = client.login(&server.account, password, second, true)?;
        if let Some(t) = new_token {
            save_token(&self.home, &self.device_key, &t)?;
        }
        let session = Arc::new(session);
        self.service = Some(Box::new(RemoteService(session.clone())));
        self.session = Some(session);
        Ok(())
    }

    /// Records the key service this account uses (a device that joined or recovered).
    pub fn set_server(&mut self, server: ServerConfig) -> Result<(), AccountError> {
        self.config.server = Some(server);
        self.home.save_config(&self.config)?;
        Ok(())
    }

    /// Uses a session obtained elsewhere (a recovery that logged in before the device had
    /// an account).
    pub fn use_session(&mut self, session: Session) {
        let session = Arc::new(session);
        self.service = Some(Box::new(RemoteService(session.clone())));
        self.session = Some(session);
    }

    /// The key service session, for commands that need more than wrapping.
    pub fn session(&self) -> Result<&Session, AccountError> {
        self.session.as_deref().ok_or(AccountError::NoKeyService)
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
}
