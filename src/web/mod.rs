//! The web front of `cirrus serve` (issue 12, iCloud.com's role): an account's drive in a
//! browser, read with the keys the key service holds for standard and transit categories
//! and dropped with each request. It sits above `account` (it verifies the signed manifest
//! chain as a device does) and `volume` (it reads categories), and reaches the key
//! service's database only through the service's web methods (`service_access.rs`).
//! Only with the cargo feature `server`.

pub mod access;
pub mod front;
pub mod reader;
mod reader_source;
mod service_access;

pub use front::WebFront;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the web front listens and what certificate it shows.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub listen: SocketAddr,
    /// `--web-cert` and `--web-key`; `None`: a self-signed pair in DATA/web-tls.
    pub cert: Option<(PathBuf, PathBuf)>,
}
