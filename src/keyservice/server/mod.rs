//! `cirrus serve`: the key service for many devices and accounts (issue 3). The endpoint
//! logic (`service/`, over the database of `db/` with the documents of `state.rs` sealed
//! under `master.rs`'s key, with its sessions, TOTP factor, rate limits and reset guard)
//! is plain synchronous code; `https/` is the network front that runs it (axum over
//! tokio, TLS, connection caps, the KDF pool). Built only with the cargo feature `server`.

mod db;
mod failures;
mod guard;
mod https;
mod limit;
mod master;
mod service;
mod session;
mod state;
pub mod totp;

pub use db::{DbError, DbLocation};
pub use https::{
    Front, FrontContext, Listening, ServeError, ServeLimits, ServeOptions, Serving, Started,
    TlsError, TrustedProxies, parse_cidr, serve,
};
pub(crate) use service::{ApiError, Approval, KeyService, WebSession};
pub use service::{ServiceConfig, Signup, StoreOptions, WebConfig};
pub use state::StateError;

/// `cirrus serve account create`: an invitation for `account` in the service's database
/// (the service may be running: it reads the invitation at the account's creation).
pub fn invite(
    store: &StoreOptions,
    account: &str,
    valid: std::time::Duration,
) -> Result<zeroize::Zeroizing<String>, String> {
    let svc = service::KeyService::open(store, ServiceConfig::default(), false)
        .map_err(|e| e.to_string())?;
    svc.invite(account, valid).map_err(|e| e.to_string())
}

/// A database connection string without its password, for messages.
pub fn redact_url(url: &str) -> String {
    db::redact(url)
}

/// `cirrus serve migrate`: copies the SQLite database of `from` (checked against its
/// master key, a JSON directory imported first) into the empty PostgreSQL database at
/// `to`; says what it copied. Takes DATA's lock, so the service must be stopped.
pub fn migrate(from: &StoreOptions, to: &str) -> Result<String, String> {
    if from.database.is_some() {
        return Err("migrate copies the SQLite database of --data".into());
    }
    let dst_loc = DbLocation::from_args(&from.data, Some(to)).map_err(|e| e.to_string())?;
    let svc = service::KeyService::open(from, ServiceConfig::default(), true)
        .map_err(|e| e.to_string())?;
    let dst = db::open(&dst_loc).map_err(|e| e.to_string())?;
    let counts = db::copy::copy_all(svc.database(), &*dst).map_err(|e| e.to_string())?;
    Ok(counts
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", "))
}
