//! This device's secrets at rest in its home — its key pairs, the account key with its
//! version, and the keyring of category keys — each sealed under the device key (passcode
//! + device secret), so a lost disk reveals nothing without the passcode.

use super::AccountError;
use crate::crypto::{self, SecretKey, Suite};
use crate::format::codec::{Reader, Writer};
use crate::format::{Context, ObjKind};
use crate::home::{Home, HomeError, write_atomic};
use crate::keys::{self, KeyError, device::DeviceIdentity};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const AK_MAGIC: &[u8; 4] = b"CRAK";

fn damaged(path: std::path::PathBuf, why: impl Into<String>) -> AccountError {
    HomeError::Damaged {
        path,
        why: why.into(),
    }
    .into()
}

fn read(path: &std::path::Path) -> Result<Option<Vec<u8>>, AccountError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HomeError::Io {
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// Stores the account key of `version`. Layout: "CRAK" | version u32 | wrapped, the wrap
/// bound to the version.
pub fn save_account_key(
    home: &Home,
    device_key: &SecretKey,
    version: u32,
    key: &SecretKey,
) -> Result<(), AccountError> {
    save_account_key_to(&home.account_key_path(), device_key, version, key)
}

fn save_account_key_to(
    path: &Path,
    device_key: &SecretKey,
    version: u32,
    key: &SecretKey,
) -> Result<(), AccountError> {
    let ctx = Context::new(ObjKind::AccountKey, 0, 0, version as u64);
    let mut out = AK_MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&keys::wrap(device_key, ctx, key)?);
    write_atomic(path, &out)?;
    Ok(())
}

/// The account key and its version. Homes made before key versions hold a bare wrap of
/// version 1. A failure here means the passcode is wrong (or the file is damaged).
pub fn load_account_key(
    home: &Home,
    device_key: &SecretKey,
) -> Result<(u32, SecretKey), AccountError> {
    let path = home.account_key_path();
    let bytes = read(&path)?.ok_or_else(|| damaged(path.clone(), "missing"))?;
    let (version, ctx_index, wrapped) = if bytes.starts_with(AK_MAGIC) && bytes.len() > 8 {
        let v = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        (v, v as u64, &bytes[8..])
    } else {
        (1, 0, &bytes[..])
    };
    let ctx = Context::new(ObjKind::AccountKey, 0, 0, ctx_index);
    let key = keys::unwrap(device_key, ctx, wrapped, "account key")
        .map_err(|_| KeyError::WrongPasscode)?;
    Ok((version, key))
}

pub fn save_identity(
    home: &Home,
    device_key: &SecretKey,
    id: &DeviceIdentity,
) -> Result<(), AccountError> {
    save_identity_to(&home.identity_path(), device_key, id)
}

fn save_identity_to(
    path: &Path,
    device_key: &SecretKey,
    id: &DeviceIdentity,
) -> Result<(), AccountError> {
    let (s, x) = id.secrets();
    let mut plain = Zeroizing::new(Vec::with_capacity(64));
    plain.extend_from_slice(&s[..]);
    plain.extend_from_slice(&x[..]);
    let ctx = Context::new(ObjKind::DeviceIdentity, 0, 0, 0);
    let sealed = crypto::seal(device_key, Suite::XtsBlake3, &ctx.to_bytes(), &plain)?;
    write_atomic(path, &sealed)?;
    Ok(())
}

/// `Ok(None)`: a home made before device identities (migrated at unlock).
pub fn load_identity(
    home: &Home,
    device_key: &SecretKey,
) -> Result<Option<DeviceIdentity>, AccountError> {
    let path = home.identity_path();
    let Some(bytes) = read(&path)? else {
        return Ok(None);
    };
    let ctx = Context::new(ObjKind::DeviceIdentity, 0, 0, 0);
    let plain = Zeroizing::new(
        crypto::open(device_key, Suite::XtsBlake3, &ctx.to_bytes(), &bytes)
            .map_err(|e| damaged(path.clone(), e.to_string()))?,
    );
    if plain.len() != 64 {
        return Err(damaged(path, "expected 64 bytes"));
    }
    let mut s = Zeroizing::new([0u8; 32]);
    let mut x = Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&plain[..32]);
    x.copy_from_slice(&plain[32..]);
    Ok(Some(DeviceIdentity::from_secrets(&s, &x)))
}

/// Category keys this device may use, by (category, version).
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<(u32, u32), SecretKey>,
}

impl Keyring {
    pub fn get(&self, category: u32, version: u32) -> Option<&SecretKey> {
        self.keys.get(&(category, version))
    }

    pub fn insert(&mut self, category: u32, version: u32, key: SecretKey) {
        self.keys.insert((category, version), key);
    }

    pub fn remove(&mut self, category: u32, version: u32) {
        self.keys.remove(&(category, version));
    }

    /// Plaintext layout: count u32, then (category u32, version u32, key 32) each.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u32(self.keys.len() as u32);
        for ((c, v), k) in &self.keys {
            w.u32(*c).u32(*v).raw(k.expose());
        }
        Zeroizing::new(w.finish())
    }

    pub fn decode(plain: &[u8]) -> Result<Self, crate::format::FormatError> {
        let mut r = Reader::new(plain);
        let n = r.count(40)?;
        let mut keys = BTreeMap::new();
        for _ in 0..n {
            let c = r.u32()?;
            let v = r.u32()?;
            keys.insert((c, v), SecretKey::from_bytes(r.hash()?));
        }
        r.end()?;
        Ok(Keyring { keys })
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, &SecretKey)> {
        self.keys.iter().map(|((c, v), k)| (*c, *v, k))
    }

    fn key(device_key: &SecretKey) -> SecretKey {
        crypto::derive_key("cirrus 2026-11-28 keyring v1", &[device_key.expose()])
    }

    pub fn load(home: &Home, device_key: &SecretKey) -> Result<Self, AccountError> {
        let path = home.keyring_path();
        let Some(bytes) = read(&path)? else {
            return Ok(Keyring::default());
        };
        let ctx = Context::new(ObjKind::Keyring, 0, 0, 0);
        let plain = Zeroizing::new(
            crypto::open(
                &Self::key(device_key),
                Suite::XtsBlake3,
                &ctx.to_bytes(),
                &bytes,
            )
            .map_err(|e| damaged(path.clone(), e.to_string()))?,
        );
        Self::decode(&plain).map_err(|e| damaged(path.clone(), e.to_string()))
    }

    pub fn save(&self, home: &Home, device_key: &SecretKey) -> Result<(), AccountError> {
        self.save_to(&home.keyring_path(), device_key)
    }

    fn save_to(&self, path: &Path, device_key: &SecretKey) -> Result<(), AccountError> {
        let plain = self.encode();
        let ctx = Context::new(ObjKind::Keyring, 0, 0, 0);
        let sealed = crypto::seal(
            &Self::key(device_key),
            Suite::XtsBlake3,
            &ctx.to_bytes(),
            &plain,
        )?;
        write_atomic(path, &sealed)?;
        Ok(())
    }
}

fn staged(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// The device files sealed under the device key, which a passcode change re-seals.
fn sealed_files(home: &Home) -> [PathBuf; 4] {
    [
        home.account_key_path(),
        home.identity_path(),
        home.keyring_path(),
        home.seen_path(),
    ]
}

/// Everything the device seals under its device key, for re-sealing under a new one.
pub struct Resealable<'a> {
    pub account_key: (u32, &'a SecretKey),
    pub identity: &'a DeviceIdentity,
    pub keyring: &'a Keyring,
    pub seen: &'a crate::home::SeenHeads,
}

/// Changes the passcode: every device file is re-sealed under the new device key as
/// `NAME.new`, then the config with the new salt is written (the commit point), then the
/// staged files replace the old ones. [`finish_passcode_change`] completes or undoes an
/// interrupted change at the next unlock.
pub fn change_passcode(
    home: &Home,
    config: &mut crate::home::Config,
    new_salt: [u8; 16],
    new_key: &SecretKey,
    r: Resealable<'_>,
) -> Result<(), AccountError> {
    let [ak, id, ring, seen] = sealed_files(home);
    save_account_key_to(&staged(&ak), new_key, r.account_key.0, r.account_key.1)?;
    save_identity_to(&staged(&id), new_key, r.identity)?;
    r.keyring.save_to(&staged(&ring), new_key)?;
    r.seen
        .write_copy(&staged(&seen), keys::device_state_key(new_key))
        .map_err(|why| damaged(seen.clone(), why))?;
    config.kdf_salt = hex::encode(new_salt);
    home.save_config(config)?;
    promote(home);
    Ok(())
}

fn promote(home: &Home) {
    for p in sealed_files(home) {
        let s = staged(&p);
        if s.exists()
            && let Err(e) = std::fs::rename(&s, &p)
        {
            log::error!("cannot move {} into place: {e}", s.display());
        }
    }
}

/// After a crash during a passcode change: if the staged account key opens under the
/// device key of the current config, the change was committed and the staged files take
/// over; otherwise they are left-overs of a change that never committed and go.
pub fn finish_passcode_change(home: &Home, device_key: &SecretKey) {
    let staged_ak = staged(&home.account_key_path());
    let Ok(bytes) = std::fs::read(&staged_ak) else {
        return;
    };
    let committed = bytes.len() > 8 && {
        let v = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let ctx = Context::new(ObjKind::AccountKey, 0, 0, v as u64);
        keys::unwrap(device_key, ctx, &bytes[8..], "account key").is_ok()
    };
    if committed {
        log::warn!("completing an interrupted passcode change");
        promote(home);
    } else {
        for p in sealed_files(home) {
            let _ = std::fs::remove_file(staged(&p));
        }
    }
}
