//! The byte layout of everything Cirrus stores: pure functions from values to bytes and
//! back, no I/O. docs/FORMAT.md is the spec; this module is its implementation.

pub mod account_key;
pub mod ack;
pub mod acl;
pub mod codec;
pub mod context;
pub mod export;
pub mod gc_marks;
pub mod head;
pub mod journal;
pub mod manifest;
pub mod names;
pub mod pack;
pub mod patch;
pub mod record;
pub mod recovery_proof;
pub mod seen;
pub mod table;
pub mod web;
pub mod web_change;

pub use codec::FormatError;
pub use context::{Context, ObjKind};

/// Version of the on-disk format written by this build. Readers accept every released
/// version listed in docs/FORMAT.md ("Changes").
pub const FORMAT_VERSION: u16 = 1;

/// Plaintext bytes per file chunk. 256 KiB: large enough that a 4 GiB file has 16 Ki
/// chunk references, small enough that a 4 KiB random write reseals 256 KiB, not megabytes.
pub const CHUNK_SIZE: u64 = 256 * 1024;

/// Inodes per metadata leaf.
pub const LEAF_SPAN: u64 = 256;

/// Pack objects are closed once they reach this size.
pub const PACK_TARGET: usize = 8 * 1024 * 1024;
