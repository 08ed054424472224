//! The key service's master key: 32 bytes in a file of their own (`--master-key-file`,
//! default DATA/master.key), never in the database. Every secret the database holds is
//! sealed under it, bound to its account and field; the database holds a check value
//! sealed under it too, so a replica given another key refuses to start instead of
//! sealing new values no other replica can open.

use super::state::{StateError, context};
use crate::crypto::{self, CryptoError, SecretKey, Suite};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The plaintext of the check value (its context binds it to the field "master-check" of
/// the empty account name, which no account can have).
const CHECK_PLAIN: &[u8] = b"cirrus key service master key check v1";
const CHECK_FIELD: &str = "master-check";

pub(crate) struct MasterKey {
    key: SecretKey,
    path: PathBuf,
    /// Whether this start made the file (removed again if the database refuses it).
    created: bool,
}

impl MasterKey {
    /// Reads the key at `path`; when it does not exist and `create` is set, makes one
    /// (32 random bytes, mode 0600).
    pub(crate) fn load(path: &Path, create: bool) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let key = SecretKey::from_slice(&bytes).ok_or_else(|| StateError::Damaged {
                    what: path.display().to_string(),
                    why: format!("a master key is 32 bytes, this file has {}", bytes.len()),
                })?;
                Ok(MasterKey {
                    key,
                    path: path.to_path_buf(),
                    created: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = crypto::random_key()?;
                match create_new(path, key.expose()) {
                    Ok(()) => {}
                    // Another replica starting at the same moment made one first: use it
                    // (never replace a key file: what it sealed would be lost).
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Self::load(path, false);
                    }
                    Err(e) => return Err(io(e)),
                }
                log::info!("created a new master key in {}", path.display());
                Ok(MasterKey {
                    key,
                    path: path.to_path_buf(),
                    created: true,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StateError::MasterKeyMissing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => Err(io(e)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file this start made (a replica that lost the race to set up the
    /// database must not leave a key that opens nothing beside it).
    pub(crate) fn forget_created(&self) {
        // Only the bytes this start wrote: never a key that another process put there.
        let ours = std::fs::read(&self.path)
            .is_ok_and(|b| crypto::ct_eq(&Zeroizing::new(b), self.key.expose()));
        if self.created && ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The check value to store in a new database, hex.
    pub(crate) fn check_value(&self) -> Result<String, StateError> {
        self.seal("", CHECK_FIELD, CHECK_PLAIN)
    }

    /// Whether `check_hex` (from the database) was made with this key.
    pub(crate) fn opens(&self, check_hex: &str) -> bool {
        hex::decode(check_hex)
            .ok()
            .and_then(|sealed| self.unseal_raw("", CHECK_FIELD, &sealed).ok())
            .is_some_and(|plain| crypto::ct_eq(&plain, CHECK_PLAIN))
    }

    /// The key of the made-up salts shown for names with no account (derived, so the
    /// master key itself only ever seals).
    pub(crate) fn fake_salt_key(&self) -> SecretKey {
        crypto::derive_key(crate::crypto::domains::FAKE_SALT, &[self.key.expose()])
    }

    /// Seals `plain` as field `field` of `account`.
    pub(crate) fn seal_raw(
        &self,
        account: &str,
        field: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, StateError> {
        Ok(crypto::seal(
            &self.key,
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
            &self.key,
            Suite::XtsBlake3,
            &context(account, field),
            sealed,
        )
        .map(Zeroizing::new)
    }

    /// [`Self::seal_raw`], as hex for a document field.
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
            what: format!("account {account}, field {field}"),
            why,
        };
        let sealed = hex::decode(sealed_hex).map_err(|e| damaged(e.to_string()))?;
        self.unseal_raw(account, field, &sealed)
            .map_err(|e| damaged(e.to_string()))
    }
}

/// Writes `bytes` at `path` (0600, durable) only if nothing is there: written to a temp
/// file of its own, then hard-linked into place, which fails if `path` exists.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    crypto::random_bytes(&mut nonce).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".master-key.{}.tmp", hex::encode(nonce)));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    crate::fsutil::sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_fields_are_bound_to_account_and_field_and_the_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(matches!(
            MasterKey::load(&path, false),
            Err(StateError::MasterKeyMissing { .. })
        ));
        let m = MasterKey::load(&path, true).unwrap();
        let s = m.seal("alice", "totp-secret", b"very secret").unwrap();
        assert!(!s.contains(&hex::encode(b"very secret")));
        assert_eq!(
            &m.unseal("alice", "totp-secret", &s).unwrap()[..],
            b"very secret"
        );
        assert!(m.unseal("bob", "totp-secret", &s).is_err());
        assert!(m.unseal("alice", "escrow-blob", &s).is_err());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let m2 = MasterKey::load(&path, false).unwrap();
        assert_eq!(
            &m2.unseal("alice", "totp-secret", &s).unwrap()[..],
            b"very secret"
        );
        // the check value opens with this key only
        let check = m.check_value().unwrap();
        assert!(m2.opens(&check));
        let other = MasterKey::load(&dir.path().join("other.key"), true).unwrap();
        assert!(!other.opens(&check));
        assert!(!m.opens("00"));
        assert!(!m.opens("not hex"));
    }

    #[test]
    fn a_key_file_is_never_replaced_and_only_its_maker_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load(&path, true).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // a start that loses the race finds the file and uses it
        assert!(create_new(&path, &[9u8; 32]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let second = MasterKey::load(&path, true).unwrap();
        assert!(!second.created);
        second.forget_created();
        assert!(path.exists(), "a loaded key was removed");
        // the maker's cleanup spares a file that is no longer its key
        std::fs::write(&path, [5u8; 32]).unwrap();
        first.forget_created();
        assert!(path.exists(), "another key was removed");
        std::fs::write(&path, &bytes).unwrap();
        first.forget_created();
        assert!(!path.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "temp files left");
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, [1u8; 31]).unwrap();
        assert!(matches!(
            MasterKey::load(&path, true),
            Err(StateError::Damaged { .. })
        ));
    }

    /// The check-value vector of docs/FORMAT.md §9c "Master check value": sealing draws a
    /// random nonce, so the vector fixes it; each database's value differs but opens alike.
    #[test]
    fn master_check_vector() {
        let key: Vec<u8> = (0u8..32).collect();
        let nonce: [u8; 16] = std::array::from_fn(|i| 0xf0 + i as u8);
        let ctx = context("", CHECK_FIELD);
        assert_eq!(
            hex::encode(&ctx),
            "636972727573206b6579207365727669636520763100000000006d61737465722d636865636b"
        );
        let m = MasterKey {
            key: SecretKey::from_slice(&key).unwrap(),
            path: PathBuf::new(),
            created: false,
        };
        let sealed = crypto::seal_with_nonce(&m.key, Suite::XtsBlake3, &ctx, CHECK_PLAIN, &nonce);
        assert_eq!(
            hex::encode(&sealed),
            concat!(
                "01f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                "26000000",
                "22a0fab23be61fffb8acf2c97fe294cedaf4f242c999efbd1060e43881dcf651671085501d7c",
                "9368c08115a418e78a77e6a8fa44a5ed7f2a2947557d6ddabcfe9dbbbfee9e4e"
            )
        );
        assert!(m.opens(&hex::encode(&sealed)));
    }
}
