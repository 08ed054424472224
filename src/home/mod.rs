//! The device's home directory: config, device secret, the wrapped account key and the
//! record of heads seen. Everything secret in it is sealed; see docs/FORMAT.md "Home".

use crate::crypto::{self, SecretKey, Suite};
use crate::format::seen::SeenRecord as Seen;
use crate::format::{Context, ObjKind};
use crate::keys::KdfParams;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error(
        "no Cirrus account in {0} (run `{hint}` first, or pass --home)",
        hint = crate::hint::cmd_hint("init")
    )]
    NoAccount(PathBuf),
    #[error("an account already exists in {0} (use another --home, or remove it)")]
    Exists(PathBuf),
    #[error("config file {path} is malformed: {why} (fix or restore it)")]
    BadConfig { path: PathBuf, why: String },
    #[error("device file {path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    /// URL of the store holding the account's objects.
    pub store: String,
    pub device_name: String,
    /// Hex salt of the passcode KDF.
    pub kdf_salt: String,
    pub kdf: KdfParams,
    /// Hex of the account id in the manifest (absent in homes made before manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The key service this account uses; absent: the embedded one in HOME/keyservice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfig>,
}

/// Where the account's key service is and the certificate fingerprint pinned at `init`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub url: String,
    /// `SHA256:<hex>` of the server's certificate, like an SSH host key.
    pub fingerprint: String,
    pub account: String,
}

pub struct Home {
    pub root: PathBuf,
}

/// Writes a file atomically, mode 0600 ([`crate::fsutil::write_atomic`]), with the
/// home's error type.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), HomeError> {
    crate::fsutil::write_atomic(path, data).map_err(io(path))
}

impl Home {
    pub fn new(root: PathBuf) -> Self {
        Home { root }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn device_dir(&self) -> PathBuf {
        self.root.join("device")
    }
    pub fn keyservice_dir(&self) -> PathBuf {
        self.root.join("keyservice")
    }
    pub fn default_store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("cirrus.log")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// Objects written but not yet uploaded to a remote store (sealed; see FORMAT.md §13).
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }
    /// Clean copies of remote objects (sealed), bounded by `--disk-cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn exists(&self) -> bool {
        self.config_path().exists()
    }

    pub fn load_config(&self) -> Result<Config, HomeError> {
        let p = self.config_path();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HomeError::NoAccount(self.root.clone()));
            }
            Err(e) => return Err(io(&p)(e)),
        };
        let c: Config = toml::from_str(&text).map_err(|e| HomeError::BadConfig {
            path: p.clone(),
            why: e.to_string().lines().next().unwrap_or("").to_string(),
        })?;
        if c.version != 1 {
            return Err(HomeError::BadConfig {
                path: p,
                why: format!("unsupported config version {}", c.version),
            });
        }
        Ok(c)
    }

    pub fn save_config(&self, c: &Config) -> Result<(), HomeError> {
        self.save_config_to(&self.config_path(), c)
    }

    pub fn save_config_to(&self, path: &Path, c: &Config) -> Result<(), HomeError> {
        let text = toml::to_string_pretty(c).map_err(|e| HomeError::BadConfig {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        write_atomic(path, text.as_bytes())
    }

    /// The settings of an unfinished join or recovery, if any.
    pub fn load_join(&self) -> Result<Option<Config>, HomeError> {
        let p = self.join_path();
        match fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| HomeError::BadConfig {
                    path: p,
                    why: e.to_string().lines().next().unwrap_or("").to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    pub fn create_dirs(&self) -> Result<(), HomeError> {
        for d in [self.root.clone(), self.device_dir(), self.run_dir()] {
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        // run/ holds the daemon's control socket: nobody else may reach it.
        for d in [self.root.clone(), self.device_dir(), self.run_dir()] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(io(&d))?;
        }
        Ok(())
    }

    pub fn read_secret_file(&self, path: &Path) -> Result<SecretKey, HomeError> {
        let v = zeroize::Zeroizing::new(fs::read(path).map_err(io(path))?);
        SecretKey::from_slice(&v).ok_or_else(|| HomeError::Damaged {
            path: path.to_path_buf(),
            why: "expected 32 bytes".into(),
        })
    }

    pub fn write_secret_file(&self, path: &Path, key: &SecretKey) -> Result<(), HomeError> {
        write_atomic(path, key.expose())
    }

    pub fn device_secret_path(&self) -> PathBuf {
        self.device_dir().join("secret")
    }
    pub fn account_key_path(&self) -> PathBuf {
        self.device_dir().join("account.key")
    }
    /// This device's key pairs, sealed under the device key.
    pub fn identity_path(&self) -> PathBuf {
        self.device_dir().join("identity")
    }
    /// Category keys this device may use, sealed under the device key (mounts need no
    /// key-service round trip and work offline).
    pub fn keyring_path(&self) -> PathBuf {
        self.device_dir().join("keyring")
    }
    /// Settings of a device that is joining or recovering an account, until it has one.
    pub fn join_path(&self) -> PathBuf {
        self.root.join("join.toml")
    }
    /// The key service's remembered-device token, sealed under the device key.
    pub fn server_token_path(&self) -> PathBuf {
        self.device_dir().join("server-token")
    }
    /// The last account manifest this device accepted (its hash is in `seen`).
    pub fn manifest_path(&self) -> PathBuf {
        self.device_dir().join("manifest")
    }
    pub fn seen_path(&self) -> PathBuf {
        self.device_dir().join("seen")
    }
}

/// Why the record of heads seen cannot answer or be saved. Never read as "nothing seen":
/// the record guards the rollback checks, so it fails closed (ARCHITECTURE.md, "Poisoned
/// locks").
#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    /// A thread panicked while holding the record: what it holds may be half updated.
    #[error("the record of heads seen is unusable after an internal error")]
    Poisoned,
    /// Sealing or writing the record failed.
    #[error("{0}")]
    Save(String),
}

/// Highest heads seen, sealed under a key derived from the account key and persisted in
/// the home, so rollback is detected across restarts.
pub struct SeenHeads {
    path: PathBuf,
    key: SecretKey,
    state: Mutex<Seen>,
}

impl SeenHeads {
    /// Loads the record. `expect_existing`: the account is not new, so a missing file is
    /// worth a warning.
    /// Loads the record. `expect_existing`: the account is not new, so a missing file is
    /// worth a warning. `legacy`: the key older homes sealed it with; a record sealed
    /// under it is read and re-sealed under `key`.
    pub fn load(
        path: PathBuf,
        key: SecretKey,
        legacy: Option<SecretKey>,
        expect_existing: bool,
    ) -> Result<Self, HomeError> {
        let mut this = SeenHeads {
            path: path.clone(),
            key,
            state: Mutex::new(Seen::default()),
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let seen = match this.open_file(&bytes) {
                    Ok(s) => s,
                    Err(why) => {
                        let Some(old) = legacy else {
                            return Err(HomeError::Damaged { path, why });
                        };
                        let probe = SeenHeads {
                            path: path.clone(),
                            key: old,
                            state: Mutex::new(Seen::default()),
                        };
                        let mut s = probe
                            .open_file(&bytes)
                            .map_err(|why| HomeError::Damaged { path, why })?;
                        // Re-seal under the new key; the merge in save() must not try
                        // (and fail) to read the old file, so remove it first.
                        let _ = fs::remove_file(&this.path);
                        this.save(&mut s).map_err(|why| HomeError::Damaged {
                            path: this.path.clone(),
                            why,
                        })?;
                        s
                    }
                };
                this.state = Mutex::new(seen);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Normal for a new account; for an old one it means rollback detection
                // restarts from whatever the store serves now.
                if expect_existing {
                    log::warn!(
                        "{} is missing: this device no longer remembers which heads it has \
                         seen, so a rollback of the store right now would go unnoticed",
                        path.display()
                    );
                }
            }
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(this)
    }

    fn decode(b: &[u8]) -> Result<Seen, String> {
        Seen::decode(b).map_err(|e| e.to_string())
    }

    /// The plaintext of a seen-heads record decoded and encoded again. Public, hidden, for
    /// tests/fuzz_decoders.rs, which cannot name the record type.
    #[doc(hidden)]
    pub fn reencode(plain: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Self::decode(plain)?.encode())
    }

    fn open_file(&self, bytes: &[u8]) -> Result<Seen, String> {
        let ctx = Context::new(ObjKind::DeviceState, 0, 0, 0);
        let plain = crypto::open(&self.key, Suite::XtsBlake3, &ctx.to_bytes(), bytes)
            .map_err(|e| e.to_string())?;
        Self::decode(&plain)
    }

    /// Writes the record, first merging what another process of this device (a mounted
    /// daemon next to `cirrus status`, say) wrote meanwhile: counters only ever go up.
    fn save(&self, s: &mut Seen) -> Result<(), String> {
        let lock_path = self.path.with_extension("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        // Released when `lock` is dropped. Without it the merge below could lose what
        // another process writes meanwhile, so a failure to lock is an error.
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let disk = match fs::read(&self.path) {
            Ok(bytes) => match self.open_file(&bytes) {
                Ok(d) => Some(d),
                // Sealed under another key (a passcode change by another process): never
                // overwrite what this process cannot read.
                Err(e) => {
                    return Err(format!(
                        "{} is sealed under another key ({e}); not overwriting it",
                        self.path.display()
                    ));
                }
            },
            Err(_) => None,
        };
        if let Some(disk) = disk {
            if disk.table > s.table {
                s.table = disk.table;
                s.manifest = disk.manifest;
            }
            for (c, (n, h)) in disk.heads {
                if s.heads.get(&c).is_none_or(|(m, _)| n > *m) {
                    s.heads.insert(c, (n, h));
                }
            }
        }
        let ctx = Context::new(ObjKind::DeviceState, 0, 0, 0);
        let sealed = crypto::seal(&self.key, Suite::XtsBlake3, &ctx.to_bytes(), &s.encode())
            .map_err(|e| e.to_string())?;
        write_atomic(&self.path, &sealed).map_err(|e| e.to_string())
    }

    /// Writes the current record sealed under another key to `path` (a passcode change
    /// stages it there before moving it into place).
    pub fn write_copy(&self, path: &Path, key: SecretKey) -> Result<(), String> {
        let s = self.lock().map_err(|e| e.to_string())?.clone();
        let other = SeenHeads {
            path: path.to_path_buf(),
            key,
            state: Mutex::new(Seen::default()),
        };
        let mut s = s;
        let _ = fs::remove_file(path);
        other.save(&mut s)
    }

    /// Counter of the newest category table or manifest seen.
    pub fn table_seen(&self) -> Result<u64, SeenError> {
        Ok(self.lock()?.table)
    }

    /// The record, or [`SeenError::Poisoned`]: a panic while it was held may have left it
    /// half updated, and an answer from it could let a rollback through.
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Seen>, SeenError> {
        self.state.lock().map_err(|_| SeenError::Poisoned)
    }

    /// Takes in what another process of this device (the CLI next to a mounted daemon)
    /// recorded meanwhile: counters only go up.
    pub fn refresh(&self) {
        let Ok(bytes) = fs::read(&self.path) else {
            return;
        };
        let Ok(disk) = self.open_file(&bytes) else {
            return;
        };
        if let Ok(mut s) = self.state.lock() {
            if disk.table > s.table {
                s.table = disk.table;
                s.manifest = disk.manifest;
            }
            for (c, (n, h)) in disk.heads {
                if s.heads.get(&c).is_none_or(|(m, _)| n > *m) {
                    s.heads.insert(c, (n, h));
                }
            }
        }
    }

    /// Counter and body hash of the newest manifest seen (hash zero: none yet).
    pub fn manifest_seen(&self) -> Result<(u64, [u8; 32]), SeenError> {
        let s = self.lock()?;
        Ok((s.table, s.manifest))
    }

    pub fn record_manifest(&self, counter: u64, hash: [u8; 32]) -> Result<(), String> {
        let mut s = self.lock().map_err(|e| e.to_string())?;
        if counter > s.table || (counter == s.table && s.manifest == [0; 32]) {
            s.table = counter;
            s.manifest = hash;
            let mut snapshot = s.clone();
            self.save(&mut snapshot)?;
            *s = snapshot;
        }
        Ok(())
    }

    pub fn record_table(&self, counter: u64) -> Result<(), String> {
        let mut s = self.lock().map_err(|e| e.to_string())?;
        if counter > s.table {
            s.table = counter;
            let mut snapshot = s.clone();
            self.save(&mut snapshot)?;
            *s = snapshot;
        }
        Ok(())
    }
}

impl SeenHeads {
    /// Panics while holding the record's lock, poisoning it, for tests of the layers
    /// above that must fail closed.
    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        let _held = self.state.lock();
        panic!("poisoning the record of heads seen on purpose");
    }

    /// Highest (counter, head hash) recorded under `id` (a category, or a category with
    /// the volume's remote flag, or an acknowledgement slot).
    pub fn head(&self, id: u32) -> Result<Option<(u64, [u8; 32])>, SeenError> {
        Ok(self.lock()?.heads.get(&id).copied())
    }

    /// Records `counter` under `id` if it is higher than what is there, durably.
    pub fn record_head(&self, id: u32, counter: u64, hash: [u8; 32]) -> Result<(), SeenError> {
        let mut s = self.lock()?;
        let cur = s.heads.get(&id).copied();
        if cur.is_none_or(|(n, _)| counter > n) {
            s.heads.insert(id, (counter, hash));
            let mut snapshot = s.clone();
            self.save(&mut snapshot).map_err(SeenError::Save)?;
            *s = snapshot;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
