//! What the web reader needs from the key service for one account, as a trait: the
//! service-held unwrap of category keys, the manifest the server trusts, and its record of
//! heads seen. The key service implements it; the reader never names the key service, so
//! the layers stay apart (docs/ARCHITECTURE.md "Layers").

use crate::crypto::SecretKey;
use std::sync::Arc;

/// Why the key service could not answer for the account. The reader passes it on as
/// [`super::reader::ReadError::Access`]; the front decides what the page says.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Web access is off for the account (never turned on, or `web off`, `adp on` since).
    #[error("web access is off for this account")]
    Off,
    /// The wrapped key does not open under the account's service key (damaged, or wrapped
    /// for another account or context).
    #[error("the key service cannot unwrap this key: {0}")]
    Unwrap(String),
    /// The key service's own storage failed.
    #[error("the key service's storage: {0}")]
    Storage(String),
}

/// One account as the web reader sees the key service. All methods block (the front calls
/// them from blocking tasks).
pub trait AccountAccess: Send + Sync {
    /// Unwraps a category key the key service wrapped for this account (the bytes of a
    /// standard/transit `keys/<id>/<v>` object after its class byte).
    fn unwrap_service(&self, ctx: &[u8], wrapped: &[u8]) -> Result<SecretKey, AccessError>;
    /// The signed manifest object the server trusts for this account (registered by
    /// `web on`, advanced since), as stored.
    fn trusted_manifest(&self) -> Result<Vec<u8>, AccessError>;
    /// Records a newer manifest (verified as a successor chain) as the trusted one.
    /// Never lowers the counter: a counter at or below the recorded one (a concurrent
    /// reader advanced further) changes nothing and is not an error.
    fn advance_manifest(&self, obj: &[u8], counter: u64) -> Result<(), AccessError>;
    /// The server's record of the highest head seen per category (rollback/fork check),
    /// persistent in the key service's database.
    fn witness(&self) -> Arc<dyn crate::volume::HeadWitness>;
    /// Whether web access was turned on under Advanced Data Protection and a trusted
    /// device approved this web session: only then is an ADP drive served at all.
    fn adp_approved(&self) -> bool {
        false
    }
    /// Key `version` of end-to-end category `category`, if a trusted device released it
    /// to this web session and the release has not expired (FORMAT.md §9e).
    fn released(&self, _category: u32, _version: u32) -> Result<Option<SecretKey>, AccessError> {
        Ok(None)
    }
}
