//! What the key service keeps per account, as stored in the database (docs/FORMAT.md "Key
//! service database"): the account document with its sealed fields, escrow records and
//! invitations, and the sealing context that binds each sealed value to its account and
//! field. The storage itself is in `db/`, the master key in `master.rs`.

use super::db::DbError;
use super::guard::FailureGuard;
use crate::crypto::{self, CryptoError};
use crate::keys::KdfParams;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Version of the account document layout.
pub(crate) const ACCOUNT_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is damaged: {why}")]
    Damaged { what: String, why: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error(
        "the master key {path} does not open this database's check value: the database was set up with another master key (every replica must use the same --master-key-file)"
    )]
    WrongMasterKey { path: PathBuf },
    #[error(
        "no master key at {path}: give this service its master key with --master-key-file (a database already set up is never given a new one)"
    )]
    MasterKeyMissing { path: PathBuf },
    #[error(
        "another cirrus serve already uses {path}: an SQLite database serves one process (several replicas need --database postgres://...)"
    )]
    InUse { path: PathBuf },
}

/// An account document (also the file `accounts/<hex(name)>.json` of a JSON DATA
/// directory from before the database).
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

/// The sealing context of one field of one account: it names both, so a sealed value
/// cannot be moved to another account or field.
pub(crate) fn context(account: &str, field: &str) -> Vec<u8> {
    let mut c = crypto::domains::KEY_SERVICE_CONTEXT_PREFIX.to_vec();
    c.extend_from_slice(&(account.len() as u32).to_le_bytes());
    c.extend_from_slice(account.as_bytes());
    c.extend_from_slice(field.as_bytes());
    c
}
