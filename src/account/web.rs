//! `cirrus web on|off|status|sessions|revoke`: web access to the account from this trusted
//! device. Turning it on registers with the key service the store it may read and the
//! manifest this device trusts now, signed by this device (FORMAT.md §9d), so the web
//! front follows the signed chain from there as a device does; the web password and the
//! sessions stay the service's business.

use super::*;
use crate::keyservice::api::{WebOnReq, WebSessionInfo, WebStatus};

impl Unlocked {
    /// Turns web access on for `store` (the account's store, as the server should open
    /// it) with `password` as the web password. Needs a recent session (`--totp CODE`).
    pub fn web_on(&mut self, store: &str, password: &str) -> Result<WebStatus, AccountError> {
        self.ensure_recent()?;
        // The newest manifest, verified: the one the server trusts from now on.
        self.refresh_manifest()?;
        let obj = self
            .store
            .get(&names::manifest_version(self.manifest.counter))?;
        let sm = SignedManifest::decode(&obj)
            .map_err(|e| AccountError::BadManifest(format!("malformed: {e}")))?;
        if sm.body != self.manifest.encode() {
            return Err(AccountError::BadManifest(format!(
                "the store's copy of manifest #{} is not the one this device trusts",
                self.manifest.counter
            )));
        }
        let session = self.session()?;
        let msg = crate::format::web::registration_message(
            session.account(),
            store,
            &crypto::hash(&sm.body),
        );
        let sig = self
            .identity
            .sign(crate::crypto::domains::SIGN_WEB_REGISTRATION, &msg);
        Ok(session.web_on(&WebOnReq {
            store: store.to_string(),
            manifest: hex::encode(&obj),
            signer: hex::encode(self.identity.public().sign),
            signature: hex::encode(sig),
            password: password.to_string(),
        })?)
    }

    pub fn web_off(&self) -> Result<WebStatus, AccountError> {
        Ok(self.session()?.web_off()?)
    }

    pub fn web_status(&self) -> Result<WebStatus, AccountError> {
        Ok(self.session()?.web_status()?)
    }

    pub fn web_sessions(&self) -> Result<Vec<WebSessionInfo>, AccountError> {
        Ok(self.session()?.web_sessions()?)
    }

    /// Ends one web session, or all with `None`; how many ended.
    pub fn web_revoke(&self, id: Option<&str>) -> Result<u64, AccountError> {
        Ok(self.session()?.web_revoke(id)?)
    }
}
