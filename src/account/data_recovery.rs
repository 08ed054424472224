//! The data recovery service: after a password reset with the second factor, a new
//! device gets back the `standard` categories, whose keys the key service holds. The
//! `e2e` ones cannot come back — nobody but the lost devices, the recovery key or a
//! recovery contact could open them — so they start empty under new keys, and the
//! account starts a new circle of trust with this device as its only member.

use super::devices::NewDevice;
use super::recovery_proof::make_proof;
use super::*;
use crate::format::manifest::FLAG_NO_DATA_RECOVERY;
use crate::home::ServerConfig;
use crate::keyservice::client::Session;

/// What a data recovery brought back and what it could not.
pub struct DataRecovery {
    pub account: Unlocked,
    pub recovered: Vec<String>,
    /// End-to-end categories, lost by design: only the lost devices, a recovery key or a
    /// recovery contact could open them. They start empty.
    pub lost: Vec<String>,
    /// Standard categories whose key the key service did not give back (each one was
    /// warned about, with why).
    pub failed: Vec<String>,
}

impl NewDevice {
    /// Resets the account password with the second factor (`totp`) and recovers the
    /// standard categories on this device.
    pub fn recover_data(
        self,
        server: ServerConfig,
        totp: &str,
        new_password: &Passcode,
    ) -> Result<DataRecovery, AccountError> {
        let kdf = self.config().kdf;
        let client = remote::client_for(&server, kdf)?;
        let obj = self.store().get(names::MANIFEST)?;
        let (m, _) = manifest::open_signed(&obj, |t, s| t.is_signer(s), None)?;
        if m.has(FLAG_NO_DATA_RECOVERY) {
            return Err(AccountError::BadCode(format!(
                "this account has a recovery key, so the data recovery service is off: use \
                 `{}` with the same --store and --server options (or a trusted device)",
                crate::hint::cmd_hint("recover --recovery-key-file FILE")
            )));
        }
        let (session, token) = client.reset_password(&server.account, totp, new_password, kdf)?;
        let token = token.ok_or_else(|| {
            AccountError::Service(ServiceError::Remote(
                "the key service did not remember this device".into(),
            ))
        })?;
        let r = self.rebuild(server, m, obj, Arc::new(session))?;
        remote::save_token(&r.account.home, &r.account.device_key, &token)?;
        Ok(r)
    }

    fn rebuild(
        self,
        server: ServerConfig,
        old: Manifest,
        old_obj: Vec<u8>,
        session: Arc<Session>,
    ) -> Result<DataRecovery, AccountError> {
        let old_signers: Vec<[u8; 32]> = old.active_devices().map(|d| d.sign).collect();
        let ak = crypto::random_key()?;
        let akv = old
            .account_key_version
            .checked_add(1)
            .ok_or_else(|| AccountError::BadManifest("account key version exhausted".into()))?;
        let me = self.identity_public();
        let mut acct = self.into_account(server, &old, akv, &ak, session.clone())?;
        // The new circle of trust: this device only; the lost devices are removed and the
        // recovery methods (which hold the old account key) are dropped.
        let mut next = old.clone();
        for d in &mut next.devices {
            d.state = DeviceState::Removed;
        }
        next.devices.push(DeviceEntry {
            name: acct.config.device_name.clone(),
            sign: me.sign,
            kx: me.kx,
            state: DeviceState::Active,
            features: FEATURES,
        });
        next.recovery.clear();
        next.account_key_version = akv;
        next.set_commitment(0, akv, key_commitment(&ak));
        next.set(crate::format::manifest::FLAG_ADP, false);
        next.set(FLAG_SECOND_FACTOR, true);
        let (mut recovered, mut lost, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        // The standard keys that came back, for the proof a dropped device checks.
        let mut proof_keys = Vec::new();
        let entries: Vec<CategoryEntry> = old.table.active().cloned().collect();
        // With Backup on, Messages comes back through its key's copy under Backup.
        let messages_key = if old.has(super::backup::FLAG_BACKUP) {
            let m = old.table.find(super::backup::MESSAGES).cloned();
            let b = old.table.find(super::backup::BACKUP).cloned();
            match (m, b) {
                (Some(m), Some(b)) if b.class != Class::E2e => acct
                    .category_key(&b)
                    .ok()
                    .and_then(|bk| acct.messages_key_from_backup(&m, &bk, &b))
                    .map(|k| (m.id, m.key_version, k)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((id, v, k)) = &messages_key {
            // Messages stays e2e: its key is now wrapped under the new account key.
            acct.store_category_key(*id, *v, Class::E2e, k)?;
            acct.keyring
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*id, *v, k.duplicate());
        }
        // The manifest read here is not verified against anything (no trusted device is
        // left): a category that is e2e by default is treated as e2e whatever it says, so
        // a server cannot get Health written where it can read it.
        let default_e2e = manifest::default_e2e;
        for e in entries {
            if messages_key.as_ref().is_some_and(|(id, _, _)| *id == e.id) {
                recovered.push(e.name.clone());
                continue;
            }
            if e.class == Class::E2e || default_e2e(&e.name) {
                // Retire it and start an empty category of the same name under a new key.
                for x in &mut next.table.entries {
                    if x.id == e.id {
                        x.retired = true;
                    }
                }
                acct.add_entry(&mut next, &e.name, Class::E2e)?;
                lost.push(e.name.clone());
                continue;
            }
            // Checked against the commitment of the manifest read (`acct.manifest`).
            match acct.category_key(&e) {
                Ok(k) => {
                    if e.class == Class::Standard {
                        proof_keys.push((e.id, e.key_version, k));
                    }
                    recovered.push(e.name.clone());
                }
                Err(err) => {
                    log::warn!("category {}: {err}", e.name);
                    failed.push(e.name.clone());
                }
            }
        }
        // Every e2e key object of the old table (retired ones too) is wrapped under the
        // old account key, which nobody here has: their heads cannot be re-signed, by
        // design, and are not reported again (Messages aside if it came back).
        let unreadable: Vec<u32> = old
            .table
            .entries
            .iter()
            .filter(|e| e.class == Class::E2e || default_e2e(&e.name))
            .filter(|e| messages_key.as_ref().is_none_or(|(id, _, _)| *id != e.id))
            .map(|e| e.id)
            .collect();
        // The proof goes first, so no device sees the manifest without it. The counters
        // are the ones `publish_manifest` gives (the successor of `old`).
        next.counter = old
            .counter
            .checked_add(1)
            .ok_or_else(|| AccountError::BadManifest("manifest counter exhausted".into()))?;
        next.table.counter = next.counter;
        // The flag `publish_manifest` sets (this device has a key service): the proof
        // covers the very bytes published, also for an account from before the flag.
        next.set(FLAG_KEY_SERVICE, true);
        let proof = make_proof(&next, &proof_keys);
        acct.store
            .put(&names::recovery_proof(next.counter), &proof.encode())?;
        // Not a successor signed by a trusted device (none is left): a new chain start,
        // compare-and-swapped against the manifest read.
        acct.manifest_etag = Some(crate::store::etag_of(&old_obj));
        acct.publish_manifest(next)?;
        acct.grant_account_key(&me)?;
        acct.save_keyring()?;
        acct.republish_heads(&old_signers, false, &unreadable)?;
        acct.home.save_config(&acct.config)?;
        let _ = std::fs::remove_file(acct.home.join_path());
        let _ = session.set_drs(true);
        Ok(DataRecovery {
            account: acct,
            recovered,
            lost,
            failed,
        })
    }
}
