//! Cirrus: an encrypted cloud drive mounted with FUSE. Layers point down only:
//! cli → fs → volume → (format, keys, store, cache) → crypto.

pub mod crypto;
pub mod cache;
pub mod format;
pub mod keys;
pub mod store;
pub mod volume;
pub mod account;
pub mod home;
pub mod server;
pub mod fs;
pub mod cli;
