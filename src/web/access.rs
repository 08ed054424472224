//! What the drive reader needs from the key service for one account, as a trait so the
//! reader depends on no database: the service-key unwrap, the manifest the server trusts,
//! and the record of heads seen.

use crate::crypto::SecretKey;
use crate::volume::HeadWitness;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The key service refused or failed (web access off, a damaged record, the database).
    #[error("{0}")]
    Service(String),
}

pub trait AccountAccess: Send + Sync {
    /// Unwraps a category key the key service wrapped for this account (the bytes of a
    /// standard/transit `keys/<id>/<v>` object after its class byte).
    fn unwrap_service(&self, ctx: &[u8], wrapped: &[u8]) -> Result<SecretKey, AccessError>;
    /// The signed manifest object the server trusts for this account (registered by `web
    /// on`, advanced since), as stored.
    fn trusted_manifest(&self) -> Result<Vec<u8>, AccessError>;
    /// Records a newer manifest (verified as a successor chain) as the trusted one. Never
    /// lowers the counter.
    fn advance_manifest(&self, obj: &[u8], counter: u64) -> Result<(), AccessError>;
    /// The server's record of the highest head seen per category (rollback and fork
    /// check), persistent in the key service's database.
    fn witness(&self) -> Arc<dyn HeadWitness>;
}
