//! Recovery methods that need the key service: passcode escrow (the account key opens
//! only with the passcode *and* a random pepper the key service releases after a correct
//! proof, counting wrong tries) and recovery contacts (a secret split between the
//! contact's device and the key service; neither half alone opens anything). Like the
//! recovery key, each is a key pair in the signed manifest with the account key granted
//! to it, so an account-key rotation re-grants to it without asking anyone.

use super::devices::{NewDevice, entry_kdf};
use super::*;
use crate::format::manifest::{RecoveryEntry, RecoveryKind};
use crate::keyservice::client::{ClientError, Session};
use zeroize::Zeroizing;

/// At most this many recovery contacts, as in the iCloud model.
pub const MAX_CONTACTS: usize = 5;

fn contact_record(label: &str) -> String {
    format!("contact-{}", hex::encode(label.as_bytes()))
}

/// The escrow's secrets, from the passcode: the proof shown to the key service, and the
/// seed that — with the pepper the service releases — makes the escrow key pairs.
struct EscrowSecrets {
    proof: SecretKey,
    seed: SecretKey,
}

fn escrow_secrets(
    passcode: &Passcode,
    salt: &[u8],
    kdf: KdfParams,
) -> Result<EscrowSecrets, KeyError> {
    let a = keys::argon2id(passcode.expose().as_bytes(), salt, kdf)?;
    Ok(EscrowSecrets {
        proof: crypto::derive_key(crate::crypto::domains::ESCROW_PROOF, &[&a[..]]),
        seed: crypto::derive_key(crate::crypto::domains::ESCROW_SEED, &[&a[..]]),
    })
}

/// The escrow's key pairs from the passcode-derived seed and the service's pepper.
fn escrow_identity(seed: &SecretKey, pepper: &[u8]) -> DeviceIdentity {
    let s = crypto::derive_key(
        crate::crypto::domains::ESCROW_SIGN,
        &[seed.expose(), pepper],
    );
    let x = crypto::derive_key(crate::crypto::domains::ESCROW_KX, &[seed.expose(), pepper]);
    DeviceIdentity::from_secrets(s.expose(), x.expose())
}

/// A recovery contact's key pairs from the two halves.
pub fn contact_identity(contact_half: &[u8], service_half: &[u8]) -> DeviceIdentity {
    let s = crypto::derive_key(
        crate::crypto::domains::CONTACT_SIGN,
        &[contact_half, service_half],
    );
    let x = crypto::derive_key(
        crate::crypto::domains::CONTACT_KX,
        &[contact_half, service_half],
    );
    DeviceIdentity::from_secrets(s.expose(), x.expose())
}

/// The code a recovery contact keeps for the owner: `CRC1-` and 64 hex digits in groups.
pub fn contact_code(half: &[u8; 32]) -> Zeroizing<String> {
    let h = Zeroizing::new(hex::encode(half));
    let mut out = Zeroizing::new(String::from("CRC1"));
    for chunk in h.as_bytes().chunks(8) {
        out.push('-');
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
    }
    out
}

pub fn parse_contact_code(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let t = text.trim();
    let body = t.strip_prefix("CRC1")?;
    let hexs: Zeroizing<String> = Zeroizing::new(body.chars().filter(|c| *c != '-').collect());
    let v = Zeroizing::new(hex::decode(hexs.as_str()).ok()?);
    let mut out = Zeroizing::new([0u8; 32]);
    if v.len() != 32 {
        return None;
    }
    out.copy_from_slice(&v);
    Some(out)
}

impl Unlocked {
    fn add_method(
        &mut self,
        entry: RecoveryEntry,
        id: &DeviceIdentity,
    ) -> Result<(), AccountError> {
        self.grant_account_key(&id.public())?;
        let mut next = self.manifest.clone();
        next.recovery
            .retain(|r| !(r.kind == entry.kind && r.label == entry.label));
        next.recovery.push(entry);
        self.publish_manifest(next)
    }

    fn remove_method(&mut self, kind: RecoveryKind, label: &str) -> Result<bool, AccountError> {
        let gone: Vec<RecoveryEntry> = self
            .manifest
            .recovery
            .iter()
            .filter(|r| r.kind == kind && r.label == label)
            .cloned()
            .collect();
        if gone.is_empty() {
            return Ok(false);
        }
        let mut next = self.manifest.clone();
        next.recovery
            .retain(|r| !(r.kind == kind && r.label == label));
        self.publish_manifest(next)?;
        for r in gone {
            let _ = self
                .store
                .delete(&names::account_key_grant(self.account_key_version, &r.sign));
        }
        Ok(true)
    }

    /// Turns passcode escrow on: the key service keeps a random pepper it releases only
    /// to a correct passcode proof (10 wrong tries destroy it); the account key is
    /// granted to key pairs derived from the passcode and the pepper.
    pub fn escrow_on(&mut self, passcode: &Passcode) -> Result<(), AccountError> {
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        // Never below the floor a recovering device insists on (older homes may have
        // been made with cheaper costs).
        let kdf = keys::floor::floor_for(self.config.kdf);
        let sec = escrow_secrets(passcode, &salt, kdf)?;
        let pepper = crypto::random_key()?;
        let id = escrow_identity(&sec.seed, pepper.expose());
        let session = self.session()?;
        session.escrow_put(
            &crate::keyservice::client::escrow_verifier(sec.proof.expose()),
            pepper.expose(),
        )?;
        let pk = id.public();
        self.add_method(
            RecoveryEntry {
                kind: RecoveryKind::Escrow,
                label: "passcode escrow".into(),
                salt,
                kdf_memory_kib: kdf.memory_kib,
                kdf_time: kdf.time,
                sign: pk.sign,
                kx: pk.kx,
            },
            &id,
        )
    }

    pub fn escrow_off(&mut self) -> Result<bool, AccountError> {
        if let Ok(s) = self.session() {
            match s.escrow_delete() {
                Ok(()) | Err(ClientError::NotFound(_)) | Err(ClientError::Gone(_)) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            return Err(AccountError::NoKeyService);
        }
        self.remove_method(RecoveryKind::Escrow, "passcode escrow")
    }

    /// Adds a recovery contact: returns the code to hand to the contact (their half).
    /// The key service keeps the other half.
    pub fn add_contact(&mut self, name: &str) -> Result<Zeroizing<String>, AccountError> {
        let existing = self
            .manifest
            .recovery
            .iter()
            .filter(|r| r.kind == RecoveryKind::Contact && r.label != name)
            .count();
        if existing >= MAX_CONTACTS {
            return Err(AccountError::BadCode(format!(
                "at most {MAX_CONTACTS} recovery contacts"
            )));
        }
        let mut contact_half = Zeroizing::new([0u8; 32]);
        crypto::random_bytes(&mut contact_half[..])?;
        let service_half = crypto::random_key()?;
        let id = contact_identity(&contact_half[..], service_half.expose());
        self.session()?
            .record_put(&contact_record(name), service_half.expose())?;
        let pk = id.public();
        self.add_method(
            RecoveryEntry {
                kind: RecoveryKind::Contact,
                label: name.to_string(),
                salt: [0; 16],
                kdf_memory_kib: 0,
                kdf_time: 0,
                sign: pk.sign,
                kx: pk.kx,
            },
            &id,
        )?;
        Ok(contact_code(&contact_half))
    }

    pub fn remove_contact(&mut self, name: &str) -> Result<bool, AccountError> {
        if let Ok(s) = self.session() {
            // The service's half may already be gone; but a session that may not delete
            // it must not leave it behind while the method disappears from the account.
            if let Err(ClientError::ReauthRequired(_)) = s.record_delete(&contact_record(name)) {
                return Err(AccountError::ReauthRequired);
            }
        }
        self.remove_method(RecoveryKind::Contact, name)
    }
}

impl NewDevice {
    /// Recovers with the escrowed passcode: the key service checks the proof (counting
    /// wrong tries) and releases the pepper.
    pub fn recover_with_escrow(
        self,
        session: &Session,
        passcode: &Passcode,
    ) -> Result<Unlocked, AccountError> {
        let own = self.config().kdf;
        self.recover_with(|m| {
            let entry = m
                .recovery
                .iter()
                .find(|r| r.kind == RecoveryKind::Escrow)
                .cloned()
                .ok_or_else(|| AccountError::BadCode("this account has no escrow".into()))?;
            let sec = escrow_secrets(passcode, &entry.salt, entry_kdf(&entry, own)?)?;
            let pepper = match session.escrow_open(sec.proof.expose()) {
                Ok(p) => Zeroizing::new(p),
                Err(ClientError::EscrowWrong { remaining }) => {
                    return Err(AccountError::BadCode(format!(
                        "wrong passcode for the escrow: {remaining} tries left before the key \
                         service destroys it"
                    )));
                }
                Err(ClientError::EscrowDestroyed) | Err(ClientError::Gone(_)) => {
                    return Err(AccountError::BadCode(
                        "the escrow was destroyed after too many wrong passcodes".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let id = escrow_identity(&sec.seed, &pepper);
            if id.public().sign != entry.sign {
                return Err(AccountError::BadCode(
                    "the key service released a pepper that does not match the escrow".into(),
                ));
            }
            Ok((entry, id))
        })
    }

    /// Recovers with a recovery contact's code and the key service's half (fetched with
    /// the account password).
    pub fn recover_with_contact(
        self,
        session: &Session,
        code: &[u8; 32],
    ) -> Result<Unlocked, AccountError> {
        self.recover_with(|m| {
            for entry in m
                .recovery
                .iter()
                .filter(|r| r.kind == RecoveryKind::Contact)
            {
                let Ok(half) = session.record_get(&contact_record(&entry.label)) else {
                    continue;
                };
                let half = Zeroizing::new(half);
                let id = contact_identity(code, &half);
                if id.public().sign == entry.sign {
                    return Ok((entry.clone(), id));
                }
            }
            Err(AccountError::BadCode(
                "this code matches none of the account's recovery contacts".into(),
            ))
        })
    }
}

/// Where a recovery contact keeps the half it holds for another account: sealed under
/// its own device key.
pub fn held_path(home: &Home, account: &str) -> PathBuf {
    home.device_dir()
        .join("contact-for")
        .join(hex::encode(account.as_bytes()))
}

fn held_key(device_key: &SecretKey) -> SecretKey {
    crypto::derive_key(crate::crypto::domains::CONTACT_HALF, &[device_key.expose()])
}

impl Unlocked {
    /// On the contact's device: keeps `code` (the half for `account`), sealed.
    pub fn keep_contact_half(&self, account: &str, half: &[u8; 32]) -> Result<(), AccountError> {
        let p = held_path(&self.home, account);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|source| HomeError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let ctx = Context::new(ObjKind::Keyring, 0, 0, 2);
        let sealed = crypto::seal(
            &held_key(&self.device_key),
            crypto::Suite::XtsBlake3,
            &ctx.to_bytes(),
            half,
        )?;
        crate::home::write_atomic(&p, &sealed)?;
        Ok(())
    }

    /// On the contact's device: the code to give back to `account`'s owner.
    pub fn contact_half_for(&self, account: &str) -> Result<Zeroizing<String>, AccountError> {
        let p = held_path(&self.home, account);
        let bytes = std::fs::read(&p).map_err(|_| {
            AccountError::BadCode(format!("this device holds no recovery code for {account}"))
        })?;
        let ctx = Context::new(ObjKind::Keyring, 0, 0, 2);
        let plain = Zeroizing::new(
            crypto::open(
                &held_key(&self.device_key),
                crypto::Suite::XtsBlake3,
                &ctx.to_bytes(),
                &bytes,
            )
            .map_err(|e| HomeError::Damaged {
                path: p.clone(),
                why: e.to_string(),
            })?,
        );
        let mut half = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(HomeError::Damaged {
                path: p,
                why: "expected 32 bytes".into(),
            }
            .into());
        }
        half.copy_from_slice(&plain);
        Ok(contact_code(&half))
    }
}
