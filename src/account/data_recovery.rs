//! The data recovery service: after a password reset with the second factor, a new
//! device gets back the `standard` categories, whose keys the key service holds. The
//! `e2e` ones cannot come back — nobody but the lost devices, the recovery key or a
//! recovery contact could open them — so they start empty under new keys, and the
//! account starts a new circle of trust with this device as its only member. A device
//! the recovery dropped recognises what happened from a proof the recovery leaves.

use super::devices::NewDevice;
use super::*;
use crate::format::manifest::FLAG_NO_DATA_RECOVERY;
use crate::format::recovery_proof::{RecoveryProof, TAG_CONTEXT, tag_input};
use crate::home::ServerConfig;
use crate::server::client::Session;

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
            return Err(AccountError::BadCode(
                "this account has a recovery key, so the data recovery service is off: use \
                 `cirrus recover --recovery-key` (or a trusted device)"
                    .into(),
            ));
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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A tag of the proof: a MAC of `input` under a standard category key.
fn tag(key: &SecretKey, input: &[u8]) -> [u8; 32] {
    *crypto::derive_key(TAG_CONTEXT, &[key.expose(), input]).expose()
}

/// The proof for manifest `next` (counters final), one tag per standard key recovered.
fn make_proof(next: &Manifest, keys: &[(u32, u32, SecretKey)]) -> RecoveryProof {
    let at = now_secs();
    let body_hash = crypto::hash(&next.encode());
    let tags = keys
        .iter()
        .map(|(c, v, k)| {
            let input = tag_input(&next.account_id, next.counter, at, &body_hash, *c, *v);
            (*c, *v, tag(k, &input))
        })
        .collect();
    RecoveryProof {
        counter: next.counter,
        at,
        tags,
    }
}

/// Who started the account anew without this device, as a checked proof says.
#[derive(Debug)]
pub(crate) struct DroppedBy {
    /// The name of the device the recovery made the only trusted one (printable).
    pub device: String,
    /// Unix seconds of the recovery.
    pub at: u64,
}

/// Whether `next_obj`, which does not follow `last` by the chain's rules, is verifiably
/// the manifest a data recovery publishes: signed by the one device it adds, which is its
/// only active one; every device of `last` kept but removed; recovery methods dropped; the
/// account key one version on; data recovery allowed by `last`; and `proof_obj` holding,
/// for this manifest, a right tag under a `standard` key that `last` names and commits to
/// and that `key` gives (a key this device holds). Only the account's devices and the key
/// service (which carries out data recovery) hold such a key, so the store alone cannot
/// make a forged manifest read as a data recovery. A tag that does not check, for a key
/// that does, fails the whole proof.
pub(crate) fn recognise(
    last: &Manifest,
    next_obj: &[u8],
    proof_obj: &[u8],
    key: impl Fn(u32, u32) -> Option<SecretKey>,
) -> Option<DroppedBy> {
    let signed_by_its_active_device =
        |m: &Manifest, s: &[u8; 32]| m.active_devices().any(|d| d.sign == *s);
    let (next, body_hash) =
        manifest::open_signed(next_obj, signed_by_its_active_device, None).ok()?;
    let n = last.devices.len();
    let shaped = next.account_id == last.account_id
        && Some(next.counter) == last.counter.checked_add(1)
        && !last.has(FLAG_NO_DATA_RECOVERY)
        && next.devices.len() == n + 1
        && next.devices[..n].iter().zip(&last.devices).all(|(a, b)| {
            a.state == DeviceState::Removed && a.sign == b.sign && a.kx == b.kx && a.name == b.name
        })
        && next.devices[n].state == DeviceState::Active
        && next.recovery.is_empty()
        && Some(next.account_key_version) == last.account_key_version.checked_add(1);
    if !shaped {
        return None;
    }
    let proof = RecoveryProof::decode(proof_obj).ok()?;
    if proof.counter != next.counter {
        return None;
    }
    let mut checked = false;
    for (c, v, t) in &proof.tags {
        let standard_now = last
            .table
            .active()
            .any(|e| e.id == *c && e.key_version == *v && e.class == Class::Standard);
        let Some(k) = key(*c, *v).filter(|_| standard_now) else {
            continue;
        };
        if last.commitment(*c, *v) != Some(key_commitment(&k)) {
            continue;
        }
        let input = tag_input(&next.account_id, next.counter, proof.at, &body_hash, *c, *v);
        if !crypto::ct_eq(&tag(&k, &input), t) {
            return None;
        }
        checked = true;
    }
    checked.then(|| DroppedBy {
        device: crate::server::client::printable(&next.devices[n].name),
        at: proof.at,
    })
}

impl Unlocked {
    /// [`AccountError::RemovedByDataRecovery`] when `next` (the manifest after `last`,
    /// which does not follow it by the chain's rules) is a data recovery's, checked by
    /// [`recognise`] with the keys in this device's keyring.
    pub(crate) fn dropped_by_data_recovery(
        &self,
        last: &Manifest,
        next: &[u8],
    ) -> Option<AccountError> {
        let proof = self
            .store
            .get(&names::recovery_proof(last.counter.checked_add(1)?))
            .ok()?;
        let keyring = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        let by = recognise(last, next, &proof, |c, v| {
            keyring.get(c, v).map(|k| k.duplicate())
        })?;
        Some(AccountError::RemovedByDataRecovery {
            by: by.device,
            ago: crate::server::client::human_wait(now_secs().saturating_sub(by.at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{SIGN_DOMAIN, SignedManifest};

    fn device(name: &str, id: &DeviceIdentity, state: DeviceState) -> DeviceEntry {
        let p = id.public();
        DeviceEntry {
            name: name.into(),
            sign: p.sign,
            kx: p.kx,
            state,
            features: FEATURES,
        }
    }

    fn signed(m: &Manifest, by: &DeviceIdentity) -> Vec<u8> {
        let body = m.encode();
        SignedManifest {
            sig: by.sign(SIGN_DOMAIN, &body),
            body,
            signer: by.public().sign,
        }
        .encode()
    }

    /// The account before the recovery (one device, Notes standard, Health e2e), and what
    /// a recovery by `new` publishes after it.
    fn accounts(
        old: &DeviceIdentity,
        new: &DeviceIdentity,
        notes: &SecretKey,
    ) -> (Manifest, Manifest) {
        let entry = |id, name: &str, class| CategoryEntry {
            id,
            name: name.into(),
            class,
            retired: false,
            key_version: 1,
        };
        let mut last = Manifest {
            account_id: [4; 16],
            counter: 7,
            account_key_version: 2,
            flags: FLAG_SECOND_FACTOR,
            devices: vec![device("laptop", old, DeviceState::Active)],
            recovery: vec![],
            key_commitments: vec![],
            table: CategoryTable {
                counter: 7,
                next_id: 3,
                entries: vec![
                    entry(1, "Notes", Class::Standard),
                    entry(2, "Health", Class::E2e),
                ],
            },
        };
        last.set_commitment(1, 1, key_commitment(notes));
        let mut next = last.clone();
        next.counter = 8;
        next.table.counter = 8;
        next.devices[0].state = DeviceState::Removed;
        next.devices
            .push(device("another", new, DeviceState::Active));
        next.account_key_version = 3;
        (last, next)
    }

    #[test]
    fn only_a_proven_data_recovery_reads_as_one() {
        let (old, new) = (
            DeviceIdentity::generate().unwrap(),
            DeviceIdentity::generate().unwrap(),
        );
        let notes = crypto::random_key().unwrap();
        let (last, next) = accounts(&old, &new, &notes);
        let obj = signed(&next, &new);
        let proof = make_proof(&next, &[(1, 1, notes.duplicate())]).encode();
        let held = |c, v| (c == 1 && v == 1).then(|| notes.duplicate());

        let by = recognise(&last, &obj, &proof, held).expect("a real data recovery");
        assert_eq!(by.device, "another");

        // A device that does not hold the key cannot tell: it says nothing of recovery.
        assert!(recognise(&last, &obj, &proof, |_, _| None).is_none());
        // A proof made without the account's key (the store alone) fails.
        let stranger = crypto::random_key().unwrap();
        let forged = make_proof(&next, &[(1, 1, stranger)]).encode();
        assert!(recognise(&last, &obj, &forged, held).is_none());
        // A proof of another manifest (here: one that kept the old device) fails.
        let mut other = next.clone();
        other.devices[0].state = DeviceState::Active;
        let other_proof = make_proof(&other, &[(1, 1, notes.duplicate())]).encode();
        assert!(recognise(&last, &obj, &other_proof, held).is_none());
        // A tag under an e2e key proves nothing (the recovery cannot have it).
        let health = crypto::random_key().unwrap();
        let mut with_health = last.clone();
        with_health.set_commitment(2, 1, key_commitment(&health));
        let e2e_proof = make_proof(&next, &[(2, 1, health.duplicate())]).encode();
        assert!(
            recognise(&with_health, &obj, &e2e_proof, |_, _| Some(
                health.duplicate()
            ))
            .is_none()
        );

        // The right proof, but not what a data recovery does: refused.
        let shapes: Vec<Box<dyn Fn(&mut Manifest)>> = vec![
            // the old device stays trusted
            Box::new(|m| m.devices[0].state = DeviceState::Active),
            // the old device disappears instead of being marked removed
            Box::new(|m| {
                m.devices.remove(0);
            }),
            // the account key does not move on
            Box::new(|m| m.account_key_version = 2),
            // a recovery method comes with it
            Box::new(|m| {
                m.recovery.push(crate::format::manifest::RecoveryEntry {
                    kind: crate::format::manifest::RecoveryKind::RecoveryKey,
                    label: "x".into(),
                    salt: [0; 16],
                    kdf_memory_kib: 19456,
                    kdf_time: 2,
                    sign: [9; 32],
                    kx: [9; 32],
                })
            }),
            // a counter that skips
            Box::new(|m| {
                m.counter = 9;
                m.table.counter = 9;
            }),
        ];
        for change in shapes {
            let mut m = next.clone();
            change(&mut m);
            let p = make_proof(&m, &[(1, 1, notes.duplicate())]).encode();
            assert!(recognise(&last, &signed(&m, &new), &p, held).is_none());
        }
        // Signed by someone else than the device it adds.
        let other_signer = DeviceIdentity::generate().unwrap();
        assert!(recognise(&last, &signed(&next, &other_signer), &proof, held).is_none());
        // An account whose data recovery was off (a recovery key) cannot have had one.
        let mut off = last.clone();
        off.set(FLAG_NO_DATA_RECOVERY, true);
        assert!(recognise(&off, &obj, &proof, held).is_none());
    }
}
