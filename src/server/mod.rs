//! The key service: the server side of key management. Two forms: the embedded one (one
//! machine, state in the device home) and `cirrus serve`, the same duties over HTTPS for
//! many devices and accounts (issue 3), with its blocking client.

mod accept;
pub mod api;
pub mod client;
mod conns;
mod embedded;
mod guard;
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
pub use service::{ServiceConfig, Signup};
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

/// `cirrus serve account create`: an invitation for `account` in the service's DATA
/// directory (the service may be running: it reads the file at the account's creation).
pub fn invite(
    data: &std::path::Path,
    account: &str,
    valid: std::time::Duration,
) -> Result<zeroize::Zeroizing<String>, String> {
    let svc =
        service::KeyService::open(data, ServiceConfig::default()).map_err(|e| e.to_string())?;
    svc.invite(account, valid).map_err(|e| e.to_string())
}
