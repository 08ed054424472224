//! `cirrus web on|off|status|sessions|revoke|approve|release`: web access to the account
//! from this trusted device. Turning it on registers with the key service the store it
//! may read and the manifest this device trusts now, signed by this device (FORMAT.md
//! §9d), so the web front follows the signed chain from there as a device does; the web
//! password and the sessions stay the service's business. Under ADP, this device approves
//! web sign-ins and releases category keys to them, sealed to the key the sign-in page's
//! code commits to (§9e).

use super::*;
use crate::format::table::Class;
use crate::keys::join::JoinCode;
use crate::keyservice::api::{WebApproveReq, WebOnReq, WebReleaseItem, WebSessionInfo, WebStatus};

/// A web sign-in this device found by its code: the session and its key.
#[derive(Debug, Clone)]
pub struct WebSignIn {
    pub session: WebSessionInfo,
    pub public_key: [u8; 32],
    pub approved: bool,
    /// The proof of the code the server checks (`keys::web::approval_proof`).
    pub proof: [u8; 32],
}

/// What one category of a release request comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The key (version) was sealed to the session.
    Key { name: String, version: u32 },
    /// Standard or transit: the server serves it once the sign-in is approved.
    NoKeyNeeded { name: String },
}

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

    /// The live ADP web sign-in whose page shows `code`: the one whose MAC the code's key
    /// verifies over (account, session id, public key). Constant-time comparisons; a
    /// server cannot find the code from the MACs.
    pub fn web_find_sign_in(&self, code: &JoinCode) -> Result<WebSignIn, AccountError> {
        let session = self.session()?;
        let account = session.account().to_string();
        for a in session.web_approvals()? {
            let Ok(pk) = <[u8; 32]>::try_from(hex::decode(&a.public_key).unwrap_or_default())
            else {
                continue;
            };
            let mac = hex::decode(&a.mac).unwrap_or_default();
            if crate::keys::web::session_key_mac_ok(code, &account, &a.session.id, &pk, &mac) {
                return Ok(WebSignIn {
                    proof: crate::keys::web::approval_proof(code, &account, &a.session.id, &pk),
                    session: a.session,
                    public_key: pk,
                    approved: a.approved,
                });
            }
        }
        Err(AccountError::WebRefused(
            "no web sign-in waits with this code: check it on the sign-in page (it changes \
             with every sign-in), or sign in again"
                .into(),
        ))
    }

    /// Checks that every category named may be released to the web: it exists and is on
    /// the release list. Nothing is sent when one may not.
    pub fn web_release_check(&self, categories: &[String]) -> Result<(), AccountError> {
        for name in categories {
            if self.table().find(name).is_none() {
                return Err(AccountError::UnknownCategory(name.clone()));
            }
            if !crate::format::web::RELEASABLE.contains(&name.as_str())
                && !crate::format::web::STAY_STANDARD.contains(&name.as_str())
            {
                return Err(AccountError::WebRefused(format!(
                    "{name} is never released to the web (only {} can be)",
                    crate::format::web::RELEASABLE.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Approves web sign-in `to` (if not yet) and releases the current key of each
    /// end-to-end category named, sealed to its key. Returns what each category came to
    /// and when the server drops the keys (Unix seconds).
    pub fn web_release(
        &self,
        to: &WebSignIn,
        categories: &[String],
    ) -> Result<(Vec<Released>, u64), AccountError> {
        self.web_release_check(categories)?;
        let session = self.session()?;
        let account = session.account().to_string();
        let mut items = Vec::new();
        let mut out = Vec::new();
        for name in categories {
            let e = self
                .table()
                .find(name)
                .cloned()
                .ok_or_else(|| AccountError::UnknownCategory(name.clone()))?;
            if e.class != Class::E2e {
                out.push(Released::NoKeyNeeded { name: name.clone() });
                continue;
            }
            let key = self.category_key_at(&e, e.key_version)?;
            let sealed = crate::keys::web::seal_release(
                &to.public_key,
                &account,
                &to.session.id,
                e.id,
                e.key_version,
                &key,
            )
            .map_err(|err| AccountError::WebRefused(format!("sealing the key of {name}: {err}")))?;
            items.push(WebReleaseItem {
                category: e.id,
                version: e.key_version,
                sealed: hex::encode(sealed),
            });
            out.push(Released::Key {
                name: name.clone(),
                version: e.key_version,
            });
        }
        let resp = session.web_approve(&WebApproveReq {
            id: to.session.id.clone(),
            device: self.config.device_name.clone(),
            proof: hex::encode(to.proof),
            releases: items,
        })?;
        for r in &out {
            if let Released::Key { name, version } = r {
                log::info!(
                    "released {name} (key version {version}) to web session {} until {}",
                    to.session.id,
                    resp.expires
                );
            }
        }
        Ok((out, resp.expires))
    }
}
