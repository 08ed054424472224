//! The web front of `cirrus serve` (issue 12): an account's drive read in a browser with
//! server-held keys, above `volume` and `account` and reached by the key service only
//! through [`access::AccountAccess`].

pub mod access;
pub mod reader;
