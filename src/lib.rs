//! Cirrus: an encrypted cloud drive mounted with FUSE. Layers point down only:
//! cli → fs → volume → (format, keys, store, cache) → crypto.

pub mod crypto;
