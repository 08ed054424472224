//! The key service's disk (`cirrus serve --data DIR`): the master key, one JSON file per
//! account, and the records and escrow files beside them. Every secret of an account is
//! sealed under the master key; every write is atomic (temp + fsync + rename).
//!
//! Plain files rather than an embedded database: the state is small, written rarely (a
//! login, a rotation), and an admin can inspect or back it up with ordinary tools; the
//! per-account lock in `service/` is the only concurrency control it needs.

use super::guard::FailureGuard;
use crate::crypto::{self, CryptoError, SecretKey, Suite};
use crate::keys::KdfParams;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Version of the account file layout.
pub(crate) const ACCOUNT_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An account as stored in `accounts/<hex(name)>.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Account {
    pub format: u32,
    pub name: String,
    /// Public: the client's Argon2id salt, hex.
    pub salt: String,
    /// Public: the client's Argon2id cost, so every device derives the same keys.
    pub kdf: KdfParams,
    /// Argon2id PHC string over the client's `auth` value (never the password).
    pub verifier: String,
    /// Data recovery service: may the password be reset with TOTP alone?
    pub drs: bool,
    #[serde(default)]
    pub totp: Option<TotpState>,
    /// Hex BLAKE3 of each remembered-device token.
    #[serde(default)]
    pub device_tokens: Vec<String>,
    pub service: ServiceKeys,
    #[serde(default)]
    pub escrow_destroyed: bool,
    /// Consecutive wrong TOTP codes on the data-recovery reset (persistent backoff).
    #[serde(default, skip_serializing_if = "FailureGuard::is_clear")]
    pub reset_guard: FailureGuard,
    /// A data-recovery reset waiting for its waiting period to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reset: Option<PendingReset>,
    /// What the account's trusted devices are told (newest last, at most
    /// [`MAX_NOTICES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
}

/// A reset that a right TOTP code started: it takes effect only when a second request
/// with a right code comes after `ready_at` (and before `expires_at`), unless a trusted
/// device cancels it first. Times in Unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingReset {
    pub requested_at: u64,
    pub ready_at: u64,
    pub expires_at: u64,
    /// The source address that asked, for the notice.
    pub from: String,
}

/// Most notices kept per account; the oldest goes first.
pub(crate) const MAX_NOTICES: usize = 32;

pub(crate) use crate::keyservice::api::Notice;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpState {
    /// Sealed TOTP secret, hex (field `totp-secret`).
    pub secret: String,
    /// False between `totp/enroll` and a correct `totp/confirm`.
    pub confirmed: bool,
    /// The last step accepted: a code is never accepted twice, even across restarts.
    pub last_step: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceKeys {
    pub current: u32,
    /// Version → sealed service key, hex (field `service-key/<version>`).
    pub keys: BTreeMap<u32, String>,
}

/// An escrow record as stored in `escrow/<hex(name)>.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Escrow {
    /// Sealed BLAKE3(proof), hex (field `escrow-verifier`).
    pub verifier: String,
    /// Sealed client blob, hex (field `escrow-blob`).
    pub blob: String,
    /// Wrong proofs since the last right one.
    pub failures: u32,
}

/// An invitation to create one account on a closed service (`invites/<hex(name)>.json`),
/// made by the admin with `cirrus serve account create`; used once.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invite {
    /// Hex BLAKE3 of the invitation code (the code itself is only printed).
    pub hash: String,
    /// Unix seconds after which it no longer counts.
    pub expires_at: u64,
}

pub(crate) struct DataDir {
    root: PathBuf,
    master: SecretKey,
}

fn write(path: &Path, data: &[u8]) -> Result<(), StateError> {
    crate::fsutil::write_atomic(path, data).map_err(|e| StateError::Damaged {
        path: path.to_path_buf(),
        why: format!("write failed: {e}"),
    })
}

/// Creates `dir` (0700) if needed and makes the new entry durable in its parent.
fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Best effort: a directory that cannot be opened for fsync (odd file systems) still
    // has its entries, just without the durability guarantee.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn remove(path: &Path) -> Result<bool, StateError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                sync_dir(parent);
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// A JSON file, or None when it does not exist.
fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let Some(bytes) = read_opt(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Damaged {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
}

/// Writes `v` as JSON, atomically.
fn save_json<T: Serialize>(path: &Path, v: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(v).map_err(|err| StateError::Damaged {
        path: path.to_path_buf(),
        why: err.to_string(),
    })?;
    write(path, &bytes)
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The sealing context of one field of one account: it names both, so a sealed value
/// cannot be moved to another account or field.
pub(crate) fn context(account: &str, field: &str) -> Vec<u8> {
    let mut c = crypto::domains::KEY_SERVICE_CONTEXT_PREFIX.to_vec();
    c.extend_from_slice(&(account.len() as u32).to_le_bytes());
    c.extend_from_slice(account.as_bytes());
    c.extend_from_slice(field.as_bytes());
    c
}

impl DataDir {
    /// Opens DATA, creating it (0700) and the master key (32 random bytes, 0600) on first
    /// start.
    pub(crate) fn open(root: &Path) -> Result<Self, StateError> {
        ensure_dir(root)?;
        for sub in ["accounts", "records", "escrow", "invites"] {
            ensure_dir(&root.join(sub))?;
        }
        let key_path = root.join("master.key");
        let master = match read_opt(&key_path)? {
            Some(bytes) => {
                let bytes = Zeroizing::new(bytes);
                SecretKey::from_slice(&bytes).ok_or_else(|| StateError::Damaged {
                    path: key_path.clone(),
                    why: format!("expected 32 bytes, found {}", bytes.len()),
                })?
            }
            None => {
                let k = crypto::random_key()?;
                write(&key_path, k.expose())?;
                log::info!("created a new master key in {}", key_path.display());
                k
            }
        };
        Ok(DataDir {
            root: root.to_path_buf(),
            master,
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The key of the made-up salts shown for names with no account (derived, so the
    /// master key itself only ever seals).
    pub(crate) fn fake_salt_key(&self) -> SecretKey {
        crypto::derive_key(crate::crypto::domains::FAKE_SALT, &[self.master.expose()])
    }

    /// Seals `plain` as field `field` of `account`.
    pub(crate) fn seal_raw(
        &self,
        account: &str,
        field: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, StateError> {
        Ok(crypto::seal(
            &self.master,
            Suite::XtsBlake3,
            &context(account, field),
            plain,
        )?)
    }

    /// Opens what [`Self::seal_raw`] produced for the same account and field.
    pub(crate) fn unseal_raw(
        &self,
        account: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        crypto::open(
            &self.master,
            Suite::XtsBlake3,
            &context(account, field),
            sealed,
        )
        .map(Zeroizing::new)
    }

    /// [`Self::seal_raw`], as hex for a JSON field.
    pub(crate) fn seal(
        &self,
        account: &str,
        field: &str,
        plain: &[u8],
    ) -> Result<String, StateError> {
        Ok(hex::encode(self.seal_raw(account, field, plain)?))
    }

    /// Opens a hex field written by [`Self::seal`].
    pub(crate) fn unseal(
        &self,
        account: &str,
        field: &str,
        sealed_hex: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StateError> {
        let damaged = |why: String| StateError::Damaged {
            path: self.account_path(account),
            why: format!("{field}: {why}"),
        };
        let sealed = hex::decode(sealed_hex).map_err(|e| damaged(e.to_string()))?;
        self.unseal_raw(account, field, &sealed)
            .map_err(|e| damaged(e.to_string()))
    }

    fn account_path(&self, account: &str) -> PathBuf {
        // Names are hex-encoded on disk: no name (".", "..", case tricks) can escape or
        // collide in the directory.
        self.root
            .join("accounts")
            .join(format!("{}.json", hex::encode(account)))
    }

    pub(crate) fn load_account(&self, account: &str) -> Result<Option<Account>, StateError> {
        let path = self.account_path(account);
        let Some(bytes) = read_opt(&path)? else {
            return Ok(None);
        };
        let a: Account = serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if a.format != ACCOUNT_FORMAT || a.name != account {
            return Err(StateError::Damaged {
                path,
                why: format!("format {} / name {:?} unexpected", a.format, a.name),
            });
        }
        Ok(Some(a))
    }

    pub(crate) fn save_account(&self, a: &Account) -> Result<(), StateError> {
        let path = self.account_path(&a.name);
        let bytes = serde_json::to_vec_pretty(a).map_err(|e| StateError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        write(&path, &bytes)
    }

    fn record_dir(&self, account: &str) -> PathBuf {
        self.root.join("records").join(hex::encode(account))
    }

    fn record_path(&self, account: &str, name: &str) -> PathBuf {
        self.record_dir(account).join(hex::encode(name))
    }

    /// Stores a record's sealed bytes (raw, not hex).
    pub(crate) fn put_record(
        &self,
        account: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<(), StateError> {
        ensure_dir(&self.record_dir(account))?;
        write(&self.record_path(account, name), sealed)
    }

    pub(crate) fn get_record(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        read_opt(&self.record_path(account, name))
    }

    pub(crate) fn delete_record(&self, account: &str, name: &str) -> Result<bool, StateError> {
        remove(&self.record_path(account, name))
    }

    /// Record names of `account`, sorted.
    pub(crate) fn list_records(&self, account: &str) -> Result<Vec<String>, StateError> {
        let dir = self.record_dir(account);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(io(&dir))?;
            // Temp files of an interrupted write start with '.', and are not hex: skipped.
            let decoded = e
                .file_name()
                .to_str()
                .and_then(|n| hex::decode(n).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some(n) = decoded {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    fn escrow_path(&self, account: &str) -> PathBuf {
        self.root
            .join("escrow")
            .join(format!("{}.json", hex::encode(account)))
    }

    pub(crate) fn load_escrow(&self, account: &str) -> Result<Option<Escrow>, StateError> {
        load_json(&self.escrow_path(account))
    }

    pub(crate) fn save_escrow(&self, account: &str, e: &Escrow) -> Result<(), StateError> {
        save_json(&self.escrow_path(account), e)
    }

    fn invite_path(&self, account: &str) -> PathBuf {
        self.root
            .join("invites")
            .join(format!("{}.json", hex::encode(account)))
    }

    pub(crate) fn load_invite(&self, account: &str) -> Result<Option<Invite>, StateError> {
        load_json(&self.invite_path(account))
    }

    pub(crate) fn save_invite(&self, account: &str, i: &Invite) -> Result<(), StateError> {
        save_json(&self.invite_path(account), i)
    }

    pub(crate) fn delete_invite(&self, account: &str) -> Result<bool, StateError> {
        remove(&self.invite_path(account))
    }

    /// Deletes the escrow file; `false` when there was none.
    pub(crate) fn delete_escrow(&self, account: &str) -> Result<bool, StateError> {
        remove(&self.escrow_path(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_fields_are_bound_to_account_and_field_and_master_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        let s = d.seal("alice", "totp-secret", b"very secret").unwrap();
        assert!(!s.contains(&hex::encode(b"very secret")));
        assert_eq!(
            &d.unseal("alice", "totp-secret", &s).unwrap()[..],
            b"very secret"
        );
        assert!(d.unseal("bob", "totp-secret", &s).is_err());
        assert!(d.unseal("alice", "escrow-blob", &s).is_err());
        let mode = fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // reopening uses the same master key
        let d2 = DataDir::open(dir.path()).unwrap();
        assert_eq!(
            &d2.unseal("alice", "totp-secret", &s).unwrap()[..],
            b"very secret"
        );
    }

    #[test]
    fn odd_names_stay_inside_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        d.put_record("..", "../../x", b"v").unwrap();
        assert_eq!(d.list_records("..").unwrap(), vec!["../../x".to_string()]);
        assert_eq!(
            d.get_record("..", "../../x").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert!(!dir.path().join("x").exists());
        assert!(d.delete_record("..", "../../x").unwrap());
        assert!(!d.delete_record("..", "../../x").unwrap());
    }
}
