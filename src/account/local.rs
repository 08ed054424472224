//! This device's secrets at rest in its home — its key pairs, the account key with its
//! version, and the keyring of category keys — each sealed under the device key (passcode
//! + device secret), so a lost disk reveals nothing without the passcode.

use super::AccountError;
use crate::crypto::{self, SecretKey, Suite};
use crate::format::codec::{Reader, Writer};
use crate::format::{Context, ObjKind, account_key};
use crate::home::{Home, HomeError, write_atomic};
use crate::keys::{self, KeyError, device::DeviceIdentity};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

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

/// Makes this device's secret (written to the home) and the device key it gives with
/// `passcode` under a fresh salt, for a new account or a device joining one. Returns the
/// key and the salt, which the config keeps.
pub fn new_device_key(
    home: &Home,
    passcode: &keys::Passcode,
    kdf: keys::KdfParams,
) -> Result<(SecretKey, [u8; 16]), AccountError> {
    let device_secret = crypto::random_key()?;
    home.write_secret_file(&home.device_secret_path(), &device_secret)?;
    let mut salt = [0u8; 16];
    crypto::random_bytes(&mut salt)?;
    Ok((
        keys::device_key(passcode, &salt, kdf, &device_secret)?,
        salt,
    ))
}

/// Stores the account key of `version` (layout: `format::account_key`, the wrap bound to
/// the version).
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
    let sealed = keys::wrap(device_key, account_key::context(version), key)?;
    write_atomic(path, &account_key::encode(version, &sealed))?;
    Ok(())
}

/// The account key version before the current one, kept so e2e key objects that an
/// interrupted account-key rotation left under it can still be opened (and re-wrapped).
pub fn save_previous_account_key(
    home: &Home,
    device_key: &SecretKey,
    version: u32,
    key: &SecretKey,
) -> Result<(), AccountError> {
    save_account_key_to(&previous_path(home), device_key, version, key)
}

fn previous_path(home: &Home) -> PathBuf {
    home.device_dir().join("account.key.prev")
}

pub fn load_previous_account_key(home: &Home, device_key: &SecretKey) -> Option<SecretKey> {
    let bytes = std::fs::read(previous_path(home)).ok()?;
    let f = account_key::decode(&bytes);
    if !f.versioned {
        return None;
    }
    keys::unwrap(device_key, f.context(), f.sealed, "previous account key").ok()
}

/// The account key and its version. Homes made before key versions hold a bare wrap of
/// version 1. A failure here means the passcode is wrong (or the file is damaged).
pub fn load_account_key(
    home: &Home,
    device_key: &SecretKey,
) -> Result<(u32, SecretKey), AccountError> {
    let path = home.account_key_path();
    let bytes = read(&path)?.ok_or_else(|| damaged(path.clone(), "missing"))?;
    let f = account_key::decode(&bytes);
    let key = keys::unwrap(device_key, f.context(), f.sealed, "account key")
        .map_err(|_| KeyError::WrongPasscode)?;
    Ok((f.version, key))
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
        crypto::derive_key(crate::crypto::domains::KEYRING, &[device_key.expose()])
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

/// The device files sealed under the device key, which a passcode change re-seals. The
/// account key is last: [`finish_passcode_change`] decides by its staged copy whether a
/// change committed, so it must be the last one moved into place.
fn sealed_files(home: &Home) -> [PathBuf; 6] {
    [
        home.identity_path(),
        home.keyring_path(),
        home.seen_path(),
        home.server_token_path(),
        previous_path(home),
        home.account_key_path(),
    ]
}

/// Everything the device seals under its device key, for re-sealing under a new one.
pub struct Resealable<'a> {
    pub account_key: (u32, &'a SecretKey),
    pub identity: &'a DeviceIdentity,
    pub keyring: &'a Keyring,
    pub seen: &'a crate::home::SeenHeads,
    /// The key service's remembered-device token, if this device has one.
    pub server_token: Option<&'a [u8]>,
    pub previous_account_key: Option<(u32, &'a SecretKey)>,
}

/// Context of the sealed remembered-device token (`device/server-token`).
pub fn token_ctx() -> Context {
    Context::new(ObjKind::ServerToken, 0, 0, 0)
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
    let [id, ring, seen, token, prev, ak] = sealed_files(home);
    if let Some((v, k)) = r.previous_account_key {
        save_account_key_to(&staged(&prev), new_key, v, k)?;
    }
    save_identity_to(&staged(&id), new_key, r.identity)?;
    r.keyring.save_to(&staged(&ring), new_key)?;
    r.seen
        .write_copy(&staged(&seen), keys::device_state_key(new_key))
        .map_err(|why| damaged(seen.clone(), why))?;
    if let Some(t) = r.server_token {
        let sealed = crypto::seal(new_key, Suite::XtsBlake3, &token_ctx().to_bytes(), t)?;
        write_atomic(&staged(&token), &sealed)?;
    }
    save_account_key_to(&staged(&ak), new_key, r.account_key.0, r.account_key.1)?;
    config.kdf_salt = hex::encode(new_salt);
    home.save_config(config)?;
    promote(home)
}

fn promote(home: &Home) -> Result<(), AccountError> {
    for p in sealed_files(home) {
        let s = staged(&p);
        if s.exists() {
            std::fs::rename(&s, &p).map_err(|source| HomeError::Io {
                path: p.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

fn opens(path: &Path, device_key: &SecretKey) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let f = account_key::decode(&bytes);
    keys::unwrap(device_key, f.context(), f.sealed, "account key").is_ok()
}

/// After a crash during a passcode change. If the staged account key (moved last) opens
/// under the device key of the current config, the change committed and the staged files
/// take over. If the live one opens, they are left-overs of a change that never committed
/// and go. If neither opens, the passcode is wrong: nothing is touched.
pub fn finish_passcode_change(home: &Home, device_key: &SecretKey) -> Result<(), AccountError> {
    let staged_ak = staged(&home.account_key_path());
    if !staged_ak.exists() {
        return Ok(());
    }
    if opens(&staged_ak, device_key) {
        log::warn!("completing an interrupted passcode change");
        promote(home)
    } else if opens(&home.account_key_path(), device_key) {
        for p in sealed_files(home) {
            let _ = std::fs::remove_file(staged(&p));
        }
        Ok(())
    } else {
        Err(KeyError::WrongPasscode.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Home, SecretKey, SecretKey, SecretKey) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        home.create_dirs().unwrap();
        let old = SecretKey::from_bytes([1; 32]);
        let new = SecretKey::from_bytes([2; 32]);
        let ak = SecretKey::from_bytes([3; 32]);
        save_account_key(&home, &old, 1, &ak).unwrap();
        save_account_key_to(&staged(&home.account_key_path()), &new, 1, &ak).unwrap();
        (dir, home, old, new, ak)
    }

    #[test]
    fn an_interrupted_passcode_change_is_finished_undone_or_left_alone() {
        // Committed (config has the new salt): the staged files take over.
        let (_d, home, _old, new, ak) = setup();
        finish_passcode_change(&home, &new).unwrap();
        assert_eq!(
            load_account_key(&home, &new).unwrap().1.expose(),
            ak.expose()
        );
        assert!(!staged(&home.account_key_path()).exists());

        // Not committed (config still has the old salt): the staged files go.
        let (_d, home, old, _new, ak) = setup();
        finish_passcode_change(&home, &old).unwrap();
        assert_eq!(
            load_account_key(&home, &old).unwrap().1.expose(),
            ak.expose()
        );
        assert!(!staged(&home.account_key_path()).exists());

        // A wrong passcode (a typo right after the crash) must not destroy anything.
        let (_d, home, old, new, _ak) = setup();
        let wrong = SecretKey::from_bytes([9; 32]);
        assert!(finish_passcode_change(&home, &wrong).is_err());
        assert!(staged(&home.account_key_path()).exists());
        assert!(opens(&home.account_key_path(), &old));
        assert!(opens(&staged(&home.account_key_path()), &new));
    }
}
