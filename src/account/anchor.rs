//! Rebuilding this device's trust anchor (the sealed `seen` record) after it was lost or
//! damaged: only from a manifest in the store that this device signed itself, which no
//! store, server or thief without the passcode can forge; every later link is then
//! verified as usual. Anything else means `cirrus recover`.

use super::manifest;
use super::{AccountError, Unlocked};
use crate::crypto::SecretKey;
use crate::format::manifest::SignedManifest;
use crate::format::names;
use crate::home::{Home, HomeError, SeenHeads};
use crate::keys;
use crate::store::StoreError;

/// Moves a `seen` record that no key of this device opens out of the way (kept beside it
/// as `seen.damaged`, for a look later), so a new one can be written.
pub(super) fn set_aside_unreadable(
    home: &Home,
    device_key: &SecretKey,
    account_key: &SecretKey,
    legacy: bool,
) -> Result<(), AccountError> {
    let path = home.seen_path();
    if !path.exists() {
        return Ok(());
    }
    match SeenHeads::load(
        path.clone(),
        keys::device_state_key(device_key),
        legacy.then(|| keys::legacy_device_state_key(account_key)),
        true,
    ) {
        Ok(_) => Ok(()),
        Err(HomeError::Damaged { why, .. }) => {
            let aside = path.with_extension("damaged");
            log::warn!(
                "{} does not open ({why}); moved to {}",
                path.display(),
                aside.display()
            );
            std::fs::rename(&path, &aside).map_err(|source| HomeError::Io {
                path: aside,
                source,
            })?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// How many manifest versions below the newest a re-anchoring looks through: the
/// newest counter is the store's claim, so the walk needs a bound of its own.
const LOOKBACK: u64 = 100_000;

impl Unlocked {
    /// When the anchor names no manifest, finds the newest manifest in the store signed
    /// by this device's own identity key, for this account and listing this device, and
    /// records it as the anchor; the caller then walks the chain from it to the newest.
    /// Returns its counter (None: the anchor was intact).
    pub(super) fn reanchor(&mut self) -> Result<Option<u64>, AccountError> {
        if self.seen.manifest_seen()?.1 != [0; 32] {
            return Ok(None);
        }
        let me = self.identity.public().sign;
        let latest = match self.store.get(names::MANIFEST) {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => {
                return Err(AccountError::BadManifest(
                    "the store holds no account manifest to re-anchor on".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let newest = SignedManifest::decode(&latest)
            .ok()
            .and_then(|sm| crate::format::manifest::Manifest::decode(&sm.body).ok())
            .map(|m| m.counter)
            .ok_or_else(|| AccountError::BadManifest("the newest manifest is malformed".into()))?;
        for c in (newest.saturating_sub(LOOKBACK).max(1)..=newest).rev() {
            let obj = if c == newest {
                latest.clone()
            } else {
                match self.store.get(&names::manifest_version(c)) {
                    Ok(o) => o,
                    Err(StoreError::NotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if SignedManifest::decode(&obj).map(|sm| sm.signer) != Ok(me) {
                continue;
            }
            // Signed by this device's key (the signature must verify), so authentic: the
            // only question left is whether it is this account's and lists this device.
            let (m, hash) = manifest::open_signed(&obj, |_, s| *s == me, None)?;
            if m.counter != c
                || self.config.account_id.as_deref() != Some(&hex::encode(m.account_id))
                || !m.active_devices().any(|d| d.sign == me)
            {
                continue;
            }
            self.seen
                .record_manifest(m.counter, hash)
                .map_err(AccountError::BadManifest)?;
            if self.seen.manifest_seen()? != (m.counter, hash) {
                return Err(AccountError::BadManifest(format!(
                    "could not record manifest #{} as the anchor in {}",
                    m.counter,
                    self.home.seen_path().display()
                )));
            }
            crate::home::write_atomic(&self.home.manifest_path(), &obj)?;
            log::warn!("trust anchor rebuilt from manifest #{c}, signed by this device");
            return Ok(Some(c));
        }
        Err(AccountError::BadManifest(
            "no manifest in the store is signed by this device, so its trust anchor cannot \
             be rebuilt: set this device up again with `cirrus recover` (or remove it and \
             add it again with `cirrus device add`)"
                .into(),
        ))
    }
}
