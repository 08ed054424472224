//! Local backup archives of the drive (`cirrus export`, `cirrus export-read`): a tar stream
//! written straight from the categories' trees, either plain or cut into sealed segments
//! under a password-derived key, and reading one back (list, extract). Kept apart from the
//! CLI so the streaming and verification can be tested without a terminal; the byte
//! layout is in `format::export`.

mod read;
mod segments;
mod write;

pub use read::{ExtractReport, Listed, Permissions, extract, list};
pub use segments::{OpeningReader, SealingWriter, SegmentFault, archive_key, fault_of};
pub use write::{Source, WriteReport, write_tar};

use crate::crypto::CryptoError;
use crate::format::FormatError;
use crate::keys::KeyError;
use crate::volume::VolError;
use std::io;
use std::path::PathBuf;

/// Errors of exporting and of reading an export back.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {path} from the drive: {source}")]
    Volume { path: String, source: VolError },
    #[error("{0}")]
    Fault(#[from] SegmentFault),
    #[error("wrong password or damaged archive (its header is invalid: {0})")]
    Header(FormatError),
    #[error("not a Cirrus export: neither an encrypted export nor a tar archive")]
    NotAnArchive,
    #[error("the archive's tar stream is invalid: {0}")]
    Tar(io::Error),
    #[error("the archive holds an unsafe path {0:?} (absolute, with `..`, or empty); refusing it")]
    UnsafePath(String),
    #[error(
        "{0}: a device node; refused from a plain tar archive (--same-permissions creates it, as root)"
    )]
    DeviceRefused(String),
    #[error("the archive holds {0:?} more than once")]
    Duplicate(String),
    #[error("{path}: {why}")]
    BadEntry { path: String, why: String },
    #[error("writing the archive: {0}")]
    Write(io::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("key derivation: {0}")]
    Kdf(#[from] KeyError),
    #[error("randomness: {0}")]
    Random(#[from] CryptoError),
}

impl ExportError {
    /// An error met while reading the archive: a segment that failed verification if
    /// there is one inside, else invalid tar data.
    pub(crate) fn reading(e: io::Error) -> Self {
        match fault_of(&e) {
            Some(f) => ExportError::Fault(f),
            None => ExportError::Tar(e),
        }
    }
}
