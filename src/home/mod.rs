//! The device's home directory: config, device secret, the wrapped account key and the
//! record of heads seen. Everything secret in it is sealed; see docs/FORMAT.md "Home".

use crate::crypto::SecretKey;
use crate::keys::KdfParams;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod seen;
mod write_behind;
pub use seen::{SeenError, SeenHeads};

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
