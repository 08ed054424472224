//! The key service: the server side of key management. Two forms: the embedded one (one
//! machine, state in the device home) and `cirrus serve`, the same duties over HTTPS for
//! many devices and accounts (issue 3), with its blocking client.

mod accept;
pub mod api;
pub mod client;
mod conns;
mod embedded;
mod http;
mod kdf_pool;
mod limit;
mod pin;
mod service;
mod session;
mod state;
mod tls;
pub mod totp;

pub use embedded::{EmbeddedKeyService, ServiceError};
pub use http::{ServeError, ServeLimits, ServeOptions, serve};
pub use pin::{Fingerprint, FingerprintParseError};
pub use service::ServiceConfig;
pub use state::StateError;
pub use tls::TlsError;

use crate::crypto::SecretKey;
use crate::format::Context;

/// What the account layer needs from a key service: wrapping and unwrapping the keys of
/// `standard` and `transit` categories under the service key it never hands out.
pub trait ServiceKeys: Send + Sync {
    fn wrap(&self, ctx: Context, key: &SecretKey) -> Result<Vec<u8>, ServiceError>;
    fn unwrap(&self, ctx: Context, wrapped: &[u8], what: &str) -> Result<SecretKey, ServiceError>;
}
