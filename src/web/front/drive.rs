//! What the pages need from an account's drive, as traits of the front's own with plain
//! structs: the handlers depend on no reader, store or key, so they can be tested with an
//! in-memory drive, and the real reader (`crate::web::reader`) plugs in with a thin
//! adapter. Every method blocks (store reads, decryption): call them on a blocking thread.

use super::error::FrontError;
use std::sync::Arc;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

impl EntryKind {
    /// `data-kind` of a listing row (web contract).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes (files); 0 for folders.
    pub size: u64,
    /// Unix seconds, when the drive knows it.
    pub modified: Option<i64>,
    /// A symlink's target, shown as text (never followed by the front).
    pub target: Option<String>,
    /// Made or changed on the web and waiting for a device to take it in.
    pub pending: bool,
}

/// A search hit: the entry and the folder it is in (names from the category's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub folder: Vec<String>,
    pub entry: Entry,
}

/// A category's key class, for its badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryClass {
    Standard,
    Transit,
    E2e,
}

impl CategoryClass {
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryClass::Standard => "standard",
            CategoryClass::Transit => "transit",
            CategoryClass::E2e => "e2e",
        }
    }
}

/// Whether the web can open a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryState {
    /// Standard or transit, readable with the service's keys.
    Available,
    /// End-to-end encrypted: the server has no key.
    Locked,
    /// On neither web list (for example Backup, Maps, user-added e2e ones).
    Unavailable,
}

impl CategoryState {
    /// `data-state` of a category row (web contract).
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryState::Available => "available",
            CategoryState::Locked => "locked",
            CategoryState::Unavailable => "unavailable",
        }
    }
}

/// One row of the category list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRow {
    pub name: String,
    pub class: CategoryClass,
    /// Bytes of file data, when the front can know it (not for locked categories).
    pub size: Option<u64>,
    pub state: CategoryState,
}

/// Opens accounts' drives. `open` is called once per request, for the signed-in account
/// only: a view never reaches another account's data.
/// Who is reading: the signed-in account and its web session (whose released keys, under
/// ADP, open its end-to-end categories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub account: String,
    pub session: String,
    /// A trusted device approved this session (web access turned on under ADP).
    pub approved: bool,
}

impl Viewer {
    /// A viewer with no released keys (tests).
    pub fn of(account: &str) -> Viewer {
        Viewer {
            account: account.to_string(),
            session: String::new(),
            approved: false,
        }
    }
}

pub trait DriveSource: Send + Sync {
    /// The account's drive as `who` may read it; `FrontError::AdpOn` when its verified
    /// manifest says Advanced Data Protection is on and web access was not turned on
    /// under it.
    fn open(&self, who: &Viewer) -> Result<Box<dyn DriveView>, FrontError>;
}

/// One account's drive, opened for one request.
pub trait DriveView: Send {
    /// Every category of the account, in the order to show them.
    fn categories(&self) -> Result<Vec<CategoryRow>, FrontError>;
    /// One category, by name. `NotFound` when there is none, `Locked` for an e2e one,
    /// `NotOnWeb` for one on neither web list.
    fn category(&self, name: &str) -> Result<Arc<dyn CategoryView>, FrontError>;
}

/// One category, opened (its head verified and its key unwrapped) for one request. Paths
/// are names from the category's root (`[]` is the root); unknown ones give `NotFound`.
pub trait CategoryView: Send + Sync {
    fn stat(&self, path: &[String]) -> Result<Entry, FrontError>;
    /// A folder's entries, in any order (the front sorts). `NotFound` if not a folder.
    fn list(&self, path: &[String]) -> Result<Vec<Entry>, FrontError>;
    /// Entries of the whole category whose name contains `needle`, case-insensitively;
    /// at most `limit` of them.
    fn search(&self, needle: &str, limit: usize) -> Result<Vec<Found>, FrontError>;
    /// A regular file, to read by ranges. `NotFound` for anything else.
    fn open_file(&self, path: &[String]) -> Result<Arc<dyn FileView>, FrontError>;
    /// Whether the web may change this category (never an end-to-end one).
    fn writable(&self) -> bool {
        false
    }
    /// A new folder `name` in folder `dir`.
    fn mkdir(&self, _dir: &[String], _name: &str) -> Result<(), FrontError> {
        Err(FrontError::ReadOnly(READ_ONLY))
    }
    /// Moves the entry at `path` to the category's Recently Deleted folder.
    fn delete(&self, _path: &[String]) -> Result<(), FrontError> {
        Err(FrontError::ReadOnly(READ_ONLY))
    }
    /// Moves the entry at `path` into folder `to_dir` under the name `to_name`.
    fn rename(
        &self,
        _path: &[String],
        _to_dir: &[String],
        _to_name: &str,
    ) -> Result<(), FrontError> {
        Err(FrontError::ReadOnly(READ_ONLY))
    }
    /// Starts an upload of file `name` into folder `dir`.
    fn begin_upload(
        &self,
        _dir: &[String],
        _name: &str,
    ) -> Result<Box<dyn UploadSink>, FrontError> {
        Err(FrontError::ReadOnly(READ_ONLY))
    }
}

/// What a category that takes no changes answers.
pub const READ_ONLY: &str = "This category is read-only on the web.";

/// An upload being written, fed from the request body a piece at a time on a blocking
/// thread.
pub trait UploadSink: Send {
    fn write(&mut self, data: &[u8]) -> Result<(), FrontError>;
    /// Everything was written: the change is stored, with `mtime` (Unix seconds).
    fn finish(self: Box<Self>, mtime: i64) -> Result<(), FrontError>;
    /// The upload failed or was cut: what was stored of it goes.
    fn abort(self: Box<Self>);
}

/// A file being downloaded: read a range at a time from a blocking thread, so memory
/// stays bounded whatever the file's size.
pub trait FileView: Send + Sync {
    fn size(&self) -> u64;
    /// `len` bytes (fewer only at the end of the file) from `offset`.
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FrontError>;
}
