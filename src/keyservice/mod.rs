//! The key service, both sides of it, in modules named by the side that runs them:
//! `api` (the wire types) and `pin` (the server's certificate fingerprint) are shared;
//! `client` (HTTPS to `cirrus serve`, with the certificate pinned) and `embedded` (the
//! single-machine service in the device home) run on the device; `server` is `cirrus
//! serve` itself and exists only with the cargo feature `server` (on by default), so a
//! device-only build carries no HTTP server, async runtime or certificate generator.

pub mod api;
pub mod client;
mod embedded;
mod pin;
#[cfg(feature = "server")]
pub mod server;

pub use embedded::{EmbeddedKeyService, ServiceError};
pub use pin::{Fingerprint, FingerprintParseError};

use crate::crypto::SecretKey;
use crate::format::Context;

/// What the account layer needs from a key service: wrapping and unwrapping the keys of
/// `standard` and `transit` categories under the service key it never hands out.
pub trait ServiceKeys: Send + Sync {
    fn wrap(&self, ctx: Context, key: &SecretKey) -> Result<Vec<u8>, ServiceError>;
    fn unwrap(&self, ctx: Context, wrapped: &[u8], what: &str) -> Result<SecretKey, ServiceError>;
}
