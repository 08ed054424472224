//! Cirrus: an encrypted cloud drive mounted with FUSE. Layers point down only; the
//! order is the "Layers" table of docs/ARCHITECTURE.md, which `tests/layers.rs` enforces.

pub mod account;
pub mod cache;
pub mod cli;
pub mod crypto;
pub mod daemon;
pub mod export;
pub mod format;
pub mod fs;
pub mod fsutil;
pub mod hint;
pub mod home;
pub mod keys;
pub mod keyservice;
pub mod maintenance;
pub mod report;
pub mod store;
pub mod sync;
pub mod volume;
#[cfg(feature = "server")]
pub mod web;
