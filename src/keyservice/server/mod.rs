//! `cirrus serve`: the key service for many devices and accounts (issue 3). The endpoint
//! logic (`service/`, over the `--data` directory of `state.rs`, with its sessions, TOTP
//! factor, rate limits and reset guard) is plain synchronous code; `https/` is the
//! network front that runs it (axum over tokio, TLS, connection caps, the KDF pool).
//! Built only with the cargo feature `server`.

mod guard;
mod https;
mod limit;
mod service;
mod session;
mod state;
pub mod totp;

pub use https::{
    ServeError, ServeLimits, ServeOptions, TlsError, TrustedProxies, parse_cidr, serve,
};
pub use service::{ServiceConfig, Signup};
pub use state::StateError;

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
