//! Where ciphertext lives: a `Store` holds opaque named objects and knows nothing of crypto.
//! Backends are chosen by URL; every backend passes the same conformance suite.

mod aws_profile;
mod beneath_linux;
pub mod conformance;
mod local;
mod mem;
mod read_only;
mod retry;
mod s3;
pub mod writeback;

pub use local::LocalStore;
pub use mem::MemStore;
pub use read_only::ReadOnlyStore;
pub use rusty_s3::Credentials as S3Credentials;
pub use s3::{S3Config, S3Store};

use std::path::PathBuf;
use std::sync::Arc;

/// Errors of the store layer. Not-found, precondition and integrity problems are kept apart
/// because callers react differently to each.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found in the store")]
    NotFound(String),
    /// A write under a read-only mount (`ReadOnlyStore`): never sent.
    #[error("the drive is mounted read-only: {0} is not written")]
    ReadOnly(String),
    #[error("object {0} changed concurrently (compare-and-swap lost)")]
    PreconditionFailed(String),
    #[error("invalid object name {0:?}")]
    InvalidName(String),
    #[error("the store is full (no space left) while writing {0}")]
    Full(String),
    #[error("store I/O error on {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported store URL {0:?}: {1}")]
    BadUrl(String, String),
    /// The local store's directory does not exist. Whoever shows this knows whether there
    /// is a config (and its `store` line) to check: at `init` there is none yet.
    #[error("the store {0} is missing (is its disk mounted?)")]
    Missing(String),
    /// `timed_out`: the request waited its whole timeout (set where the error is made,
    /// from the I/O error's kind): [`retry::transient`] does not make it wait again.
    #[error("cannot reach the store endpoint {endpoint}: {cause}")]
    Unreachable {
        endpoint: String,
        cause: String,
        timed_out: bool,
    },
    #[error(
        "the store refused access to bucket {bucket} ({code}): check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS profile's keys) and the clock"
    )]
    Denied { bucket: String, code: String },
    #[error("the bucket {0} does not exist")]
    NoBucket(String),
    #[error(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in ~/.aws/credentials (AWS_PROFILE or profile=NAME in the store URL picks a profile)"
    )]
    NoCredentials,
    #[error("object {0} in the store does not match its content hash (corrupted or substituted)")]
    Corrupt(String),
    /// A local store entry reached through a symbolic link (at any component below the
    /// root) or that is not a plain file: never followed, read or replaced, since anyone
    /// else who can write a shared store directory could point it anywhere. Permanent.
    #[error("object {name} in the local store is refused: {why} (links are never followed)")]
    Refused { name: String, why: &'static str },
    /// S3 credentials or region could not be taken from where they were asked for: half a
    /// key pair in the environment, a malformed or missing AWS file, a named profile that
    /// is not there. Never falls back to unsigned requests.
    #[error("S3 settings from {origin}: {why}")]
    AwsSettings { origin: String, why: String },
    #[error("the store answered HTTP {status} {code} on {name}")]
    Remote {
        name: String,
        status: u16,
        code: String,
    },
}

/// One listed object with what the store tells about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// When it was last written, where the backend knows.
    pub modified: Option<std::time::SystemTime>,
}

/// A version tag of a mutable object, for compare-and-swap (BLAKE3 of its content).
pub type Etag = [u8; 32];

/// Contract of every backend:
/// - `put` is atomic (readers see the old or the new object, never a mix) and durable when
///   it returns.
/// - `get`/`get_range` return exactly the stored bytes or an error; `get_range` past the end
///   returns the bytes that exist (possibly fewer).
/// - `put_if` replaces only when the current version matches `expected` (`None`: the object
///   must not exist) and is atomic with respect to other `put_if` calls on the same name.
/// - `list(prefix)` returns every object name starting with `prefix`, in no particular order.
/// - Names are `[a-z0-9._-]` segments separated by `/`; anything else is `InvalidName`.
pub trait Store: Send + Sync {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError>;
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError>;
    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError>;
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// Size of an object in bytes.
    fn size(&self, name: &str) -> Result<u64, StoreError>;
    /// `list` with each object's size and modification time (one listing where the
    /// backend has it, for `gc`, `status` and `statfs`).
    fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list(prefix)?
            .into_iter()
            .map(|name| {
                let size = self.size(&name)?;
                Ok(ObjectInfo {
                    name,
                    size,
                    modified: None,
                })
            })
            .collect()
    }
    /// Bytes used and available where the backend can tell (for `statfs`).
    fn usage(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Longest object name a store accepts (bytes).
/// Largest object any backend reads whole (packs and metadata are far smaller): what a
/// store serves, or a file someone left in a shared directory, cannot make a reader
/// allocate more.
pub const MAX_OBJECT: u64 = 1 << 30;

pub const MAX_NAME_LEN: usize = 512;

/// Checks an object name against the naming rule of the contract.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// Writes a small file atomically and durably (temp file, fsync, rename, fsync of the
/// directory).
pub fn write_file_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        "TMP.{}.{}",
        std::process::id(),
        path.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The version tag of some content.
pub fn etag_of(data: &[u8]) -> Etag {
    *blake3::hash(data).as_bytes()
}

/// Opens the store a URL names: `file:///abs/path`, a plain absolute path, or
/// `s3://BUCKET/PREFIX?endpoint=URL&region=R&path_style=1&allow_http=1&ca_file=PATH&profile=NAME&connect_timeout=SECS&timeout=SECS`
/// (every option optional; timeouts 1 to 3600 s, defaults 10 s to connect and 60 s per
/// request). Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`), else from the profile (`profile=`, `AWS_PROFILE`, or `default`)
/// in `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) or `AWS_CONFIG_FILE`
/// (default `~/.aws/config`); the region, when the URL has none, from `AWS_REGION`,
/// `AWS_DEFAULT_REGION` or the profile's `region` in the config file. An S3 store without
/// credentials is refused.
pub fn open_url(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let path = if let Some(p) = url.strip_prefix("file://") {
        PathBuf::from(p)
    } else if url.starts_with('/') {
        PathBuf::from(url)
    } else if url.starts_with("s3://") {
        let cfg = S3Config::from_url(url)?;
        if cfg.credentials.is_none() {
            return Err(StoreError::NoCredentials);
        }
        // A remote store fails now and then: retried with backoff (transient errors only).
        let s3: Arc<dyn Store> = Arc::new(S3Store::new(cfg)?);
        return Ok(Arc::new(retry::RetryStore::new(
            s3,
            retry::RetryPolicy::default(),
        )));
    } else {
        return Err(StoreError::BadUrl(
            url.into(),
            "expected file:///ABSOLUTE/PATH or s3://BUCKET/PREFIX".into(),
        ));
    };
    Ok(Arc::new(LocalStore::open(path)?))
}
