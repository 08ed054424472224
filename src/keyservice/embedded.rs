//! The embedded key service: the key service of a single machine with no `cirrus serve`,
//! whose state lives in its own directory (modelling the server's disk). It holds the
//! service key that wraps `standard` and `transit` category keys.

use crate::crypto::{self, SecretKey};
use crate::format::Context;
use crate::keys::{self, KeyError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("key service state in {0} is missing or damaged: {1}")]
    State(PathBuf, String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("key service: {0}")]
    Remote(String),
}

pub struct EmbeddedKeyService {
    service_key: SecretKey,
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("service.key")
}

impl EmbeddedKeyService {
    /// Creates the service's directory and a fresh service key.
    pub fn create(dir: &Path) -> Result<Self, ServiceError> {
        let st = |e: String| ServiceError::State(dir.to_path_buf(), e);
        std::fs::create_dir_all(dir).map_err(|e| st(e.to_string()))?;
        let key = crypto::random_key().map_err(|e| st(e.to_string()))?;
        crate::fsutil::write_atomic(&key_path(dir), key.expose()).map_err(|e| st(e.to_string()))?;
        Ok(EmbeddedKeyService { service_key: key })
    }

    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let p = key_path(dir);
        let v = zeroize::Zeroizing::new(
            std::fs::read(&p).map_err(|e| ServiceError::State(dir.to_path_buf(), e.to_string()))?,
        );
        let key = SecretKey::from_slice(&v)
            .ok_or_else(|| ServiceError::State(dir.to_path_buf(), "bad service key".into()))?;
        Ok(EmbeddedKeyService { service_key: key })
    }
}

impl super::ServiceKeys for EmbeddedKeyService {
    fn wrap(&self, ctx: Context, key: &SecretKey) -> Result<Vec<u8>, ServiceError> {
        Ok(keys::wrap(&self.service_key, ctx, key)?)
    }

    fn unwrap(&self, ctx: Context, wrapped: &[u8], what: &str) -> Result<SecretKey, ServiceError> {
        Ok(keys::unwrap(&self.service_key, ctx, wrapped, what)?)
    }
}
