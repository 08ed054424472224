//! The web front's drive, read for real: for each request, the account's store opened
//! with the server's credentials, and the reader's verified view of it
//! (`crate::web::reader`) behind the front's `DriveSource` traits.

use super::front::drive::{
    CategoryClass, CategoryRow, CategoryState, CategoryView, DriveSource, DriveView, Entry,
    EntryKind, FileView, Found, Viewer,
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
    }
}

impl DriveSource for ReaderSource {
    fn open(&self, who: &Viewer) -> Result<Box<dyn DriveView>, FrontError> {
        let account = who.account.as_str();
        let url = self.svc.web_store(account).map_err(from_api)?;
        let store = crate::store::open_url(&url)
            .map_err(|e| FrontError::Unavailable(format!("the account's store: {e}")))?;
        let access = ServiceAccess::new(self.svc.clone(), account, &who.session, who.approved);
        match Drive::open(store, access) {
            Ok(d) => Ok(Box::new(ReaderDrive(d))),
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

struct ReaderDrive(Drive);

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
        Ok(Arc::new(ReaderCategory(c)))
    }
}

struct ReaderCategory(OpenCategory);

/// A name as the pages show it and paths carry it (names that are not UTF-8 are shown
/// with replacement characters and cannot be opened from the web).
fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn entry(e: reader::Entry) -> Entry {
    Entry {
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

impl ReaderCategory {
    fn node(&self, path: &[String]) -> Result<NodeRef, FrontError> {
        let segs: Vec<&[u8]> = path.iter().map(|s| s.as_bytes()).collect();
        self.0.resolve(&segs).map_err(front)
    }
}

impl CategoryView for ReaderCategory {
    fn stat(&self, path: &[String]) -> Result<Entry, FrontError> {
        let n = self.node(path)?;
        Ok(entry(self.0.stat(&n).map_err(front)?))
    }

    fn list(&self, path: &[String]) -> Result<Vec<Entry>, FrontError> {
        let n = self.node(path)?;
        Ok(self
            .0
            .list(&n)
            .map_err(front)?
            .into_iter()
            .map(entry)
            .collect())
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
        let n = self.node(path)?;
        if !matches!(n.entry.kind, Kind::File) {
            return Err(FrontError::NotFound);
        }
        Ok(Arc::new(ReaderFile {
            cat: self.0.clone(),
            size: n.entry.size,
            node: n,
        }))
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
        // The reader returns at most MAX_READ at a time: loop until `len` or the end.
        let mut out = Vec::with_capacity(len.min(reader::MAX_READ));
        while out.len() < len {
            let chunk = self
                .cat
                .read(&self.node, offset + out.len() as u64, len - out.len())
                .map_err(front)?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}
