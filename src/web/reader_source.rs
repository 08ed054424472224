//! The web front's drive, read for real: for each request, the account's store opened
//! with the server's credentials, and the reader's verified view of it
//! (`crate::web::reader`) behind the front's `DriveSource` traits.

use super::front::drive::{
    CategoryClass, CategoryRow, CategoryState, CategoryView, DriveSource, DriveView, Entry,
    EntryKind, FileView, Found, UploadSink, Viewer,
};
use super::front::error::{FrontError, from_api};
use super::reader::{self, Drive, Kind, NodeRef, OpenCategory, ReadError};
use super::service_access::ServiceAccess;
use crate::format::table::Class;
use crate::keyservice::server::KeyService;
use std::sync::Arc;

/// Opens each request's drive through the key service.
pub(crate) struct ReaderSource {
    pub(crate) svc: Arc<KeyService>,
}

fn front(e: ReadError) -> FrontError {
    match e {
        ReadError::NotFound | ReadError::BadPath | ReadError::NotDir | ReadError::IsDir => {
            FrontError::NotFound
        }
        ReadError::Locked => FrontError::Locked,
        ReadError::NotOnWeb => FrontError::NotOnWeb,
        ReadError::AdpOn => FrontError::AdpOn,
        ReadError::Unavailable(why) => FrontError::Integrity(why),
        ReadError::BadManifest(why) => FrontError::Integrity(why),
        ReadError::Store(e) => FrontError::Unavailable(e.to_string()),
        ReadError::Access(crate::web::access::AccessError::Off) => FrontError::SignedOut,
        ReadError::Access(e) => FrontError::Internal(e.to_string()),
        ReadError::ReadOnly(why) => FrontError::ReadOnly(why),
        ReadError::Quota { pending, quota } => {
            log::warn!("web: pending changes {pending} bytes, quota {quota}");
            FrontError::Quota
        }
    }
}

impl DriveSource for ReaderSource {
    fn open(&self, who: &Viewer) -> Result<Box<dyn DriveView>, FrontError> {
        let account = who.account.as_str();
        let url = self.svc.web_store(account).map_err(from_api)?;
        let store = crate::store::open_url(&url)
            .map_err(|e| FrontError::Unavailable(format!("the account's store: {e}")))?;
        let access = ServiceAccess::new(self.svc.clone(), account, &who.session, who.approved);
        let quota = self.svc.web_pending_quota();
        match Drive::open(store, access) {
            Ok(d) => Ok(Box::new(ReaderDrive(d, quota))),
            Err(ReadError::AdpOn) => {
                // Apple's rule, enforced where the server learns of it: ADP turns web
                // access off until a trusted device turns it on again.
                if let Err(e) = self
                    .svc
                    .web_disable(account, "Advanced Data Protection is on")
                {
                    log::warn!("turning web access off for {account}: {e}");
                }
                Err(FrontError::AdpOn)
            }
            Err(e) => Err(front(e)),
        }
    }
}

/// The drive, and the account's quota of bytes of changes waiting for a device.
struct ReaderDrive(Drive, u64);

fn class(c: Class) -> CategoryClass {
    match c {
        Class::Standard => CategoryClass::Standard,
        Class::Transit => CategoryClass::Transit,
        Class::E2e => CategoryClass::E2e,
    }
}

impl DriveView for ReaderDrive {
    fn categories(&self) -> Result<Vec<CategoryRow>, FrontError> {
        Ok(self
            .0
            .categories()
            .into_iter()
            .map(|c| CategoryRow {
                name: c.name,
                class: class(c.class),
                size: c.size,
                state: match c.state {
                    reader::CategoryState::Available => CategoryState::Available,
                    reader::CategoryState::Locked => CategoryState::Locked,
                    reader::CategoryState::NotOnWeb => CategoryState::Unavailable,
                },
            })
            .collect())
    }

    fn category(&self, name: &str) -> Result<Arc<dyn CategoryView>, FrontError> {
        let c = self.0.open_category(name).map_err(front)?;
        Ok(Arc::new(ReaderCategory(c, self.1)))
    }
}

/// A category, and the account's quota of pending bytes.
struct ReaderCategory(OpenCategory, u64);

/// A name as the pages show it and paths carry it (names that are not UTF-8 are shown
/// with replacement characters and cannot be opened from the web).
fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn entry(e: reader::Entry) -> Entry {
    pending_entry(e, false)
}

fn pending_entry(e: reader::Entry, pending: bool) -> Entry {
    Entry {
        pending,
        name: text(&e.name),
        kind: match e.kind {
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink => EntryKind::Symlink,
            Kind::File | Kind::Other => EntryKind::File,
        },
        size: e.size,
        modified: Some(e.mtime.secs),
        target: None,
    }
}

fn owned(path: &[String]) -> reader::Path {
    path.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn segs(path: &[String]) -> Vec<&[u8]> {
    path.iter().map(|s| s.as_bytes()).collect()
}

impl ReaderCategory {
    fn node(&self, path: &[String]) -> Result<NodeRef, FrontError> {
        self.0.resolve(&segs(path)).map_err(front)
    }

    /// The changes made on the web that no device has taken in yet (none for an e2e
    /// category: the web never writes one).
    fn pending(&self) -> Result<reader::Pending, FrontError> {
        if !self.0.writable() {
            return Ok(Vec::new());
        }
        self.0.pending().map_err(front)
    }

    /// Folder `path`'s entries with the pending changes on top; `None`: no such folder.
    fn listing(&self, path: &[String]) -> Result<Option<Vec<Entry>>, FrontError> {
        self.listing_with(path, &self.pending()?)
    }

    fn listing_with(
        &self,
        path: &[String],
        pending: &reader::Pending,
    ) -> Result<Option<Vec<Entry>>, FrontError> {
        let rows = self.0.view(&owned(path), pending).map_err(front)?;
        Ok(rows.map(|r| r.into_iter().map(|(e, p)| pending_entry(e, p)).collect()))
    }
}

impl CategoryView for ReaderCategory {
    fn stat(&self, path: &[String]) -> Result<Entry, FrontError> {
        // What the web changed and no device took in yet comes first.
        let pending = self.pending()?;
        let Some((name, dir)) = path.split_last().filter(|_| !pending.is_empty()) else {
            // Nothing waits: the tree answers alone, without listing the folder.
            let n = self.node(path)?;
            return Ok(entry(self.0.stat(&n).map_err(front)?));
        };
        self.listing_with(dir, &pending)?
            .and_then(|rows| rows.into_iter().find(|e| e.name == *name))
            .ok_or(FrontError::NotFound)
    }

    fn list(&self, path: &[String]) -> Result<Vec<Entry>, FrontError> {
        self.listing(path)?.ok_or(FrontError::NotFound)
    }

    fn search(&self, needle: &str, limit: usize) -> Result<Vec<Found>, FrontError> {
        Ok(self
            .0
            .search(needle, limit)
            .map_err(front)?
            .into_iter()
            .map(|(path, e)| {
                let mut folder: Vec<String> = path.iter().map(|s| text(s)).collect();
                folder.pop();
                Found {
                    folder,
                    entry: entry(e),
                }
            })
            .collect())
    }

    fn open_file(&self, path: &[String]) -> Result<Arc<dyn FileView>, FrontError> {
        let pending = self.pending()?;
        let n = match self.0.file_now(&owned(path), &pending).map_err(front)? {
            Ok(n) => n,
            Err(ch) => {
                return Ok(Arc::new(PendingFile {
                    cat: self.0.clone(),
                    change: ch.clone(),
                }));
            }
        };
        if !matches!(n.entry.kind, Kind::File) {
            return Err(FrontError::NotFound);
        }
        Ok(Arc::new(ReaderFile {
            cat: self.0.clone(),
            size: n.entry.size,
            node: n,
        }))
    }

    fn writable(&self) -> bool {
        self.0.writable()
    }

    fn mkdir(&self, dir: &[String], name: &str) -> Result<(), FrontError> {
        self.0
            .mkdir(&segs(dir), name.as_bytes(), self.1)
            .map(drop)
            .map_err(front)
    }

    fn delete(&self, path: &[String]) -> Result<(), FrontError> {
        let Some((name, dir)) = path.split_last() else {
            return Err(FrontError::NotFound);
        };
        self.0
            .delete(&segs(dir), name.as_bytes(), self.1)
            .map(drop)
            .map_err(front)
    }

    fn rename(&self, path: &[String], to_dir: &[String], to_name: &str) -> Result<(), FrontError> {
        let Some((name, dir)) = path.split_last() else {
            return Err(FrontError::NotFound);
        };
        self.0
            .rename(
                (&segs(dir), name.as_bytes()),
                (&segs(to_dir), to_name.as_bytes()),
                self.1,
            )
            .map(drop)
            .map_err(front)
    }

    fn begin_upload(&self, dir: &[String], name: &str) -> Result<Box<dyn UploadSink>, FrontError> {
        let up = self
            .0
            .begin_upload(&segs(dir), name.as_bytes(), self.1)
            .map_err(front)?;
        Ok(Box::new(ReaderUpload(up)))
    }
}

struct ReaderUpload(reader::Upload);

impl UploadSink for ReaderUpload {
    fn write(&mut self, data: &[u8]) -> Result<(), FrontError> {
        self.0.write(data).map_err(front)
    }

    fn finish(self: Box<Self>, mtime: i64) -> Result<(), FrontError> {
        self.0.finish(mtime).map(drop).map_err(front)
    }

    fn abort(self: Box<Self>) {
        self.0.abort();
    }
}

/// `len` bytes from `offset` (fewer only at the end), from a reader that returns at
/// most a piece at a time (`MAX_READ`, or a part of a pending upload).
fn read_full(
    offset: u64,
    len: usize,
    read: &dyn Fn(u64, usize) -> Result<Vec<u8>, ReadError>,
) -> Result<Vec<u8>, FrontError> {
    let mut out = Vec::with_capacity(len.min(reader::MAX_READ));
    while out.len() < len {
        let chunk = read(offset + out.len() as u64, len - out.len()).map_err(front)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An upload made on the web that no device took in yet, read from its parts.
struct PendingFile {
    cat: OpenCategory,
    change: crate::format::web_change::WebChange,
}

impl FileView for PendingFile {
    fn size(&self) -> u64 {
        match &self.change.op {
            crate::format::web_change::WebOp::Upload { size, .. } => *size,
            _ => 0,
        }
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FrontError> {
        read_full(offset, len, &|at, n| {
            self.cat.read_pending(&self.change, at, n)
        })
    }
}

struct ReaderFile {
    cat: OpenCategory,
    node: NodeRef,
    size: u64,
}

impl FileView for ReaderFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FrontError> {
        read_full(offset, len, &|at, n| self.cat.read(&self.node, at, n))
    }
}
