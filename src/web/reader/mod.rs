//! A read-only view of one account's drive over its store, as the web front serves it:
//! the manifest followed and verified as a device would (`trust.rs`), the category keys
//! unwrapped by the key service and checked against the manifest's commitments
//! (`keys.rs`), and the tree of one category browsed, searched and read (`tree.rs`).
//! Nothing decrypted is written anywhere: keys and plaintext live in memory for as long as
//! the [`Drive`] (one per request), and every read is bounded by its caller's length.

mod keys;
mod overlay;
mod tree;
mod trust;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fixture;

pub use overlay::{Now, Path, Pending, now, overlay, pending_file, tree_path};
pub use tree::{Entry, Hit, Kind, MAX_READ, Mtime, NodeRef, OpenCategory, SEARCH_VISIT_CAP};
pub use write::{Upload, resolve_dir};

use super::access::{AccessError, AccountAccess};
use crate::cache::ChunkCache;
use crate::format::manifest::Manifest;
use crate::format::table::{CategoryEntry, Class};
use crate::store::{Store, StoreError};
use crate::volume::{Category, HeadSigner, VolError, VolumeOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Plaintext chunks a [`Drive`] keeps in memory (its own cache, dropped with it). Small:
/// a Drive lives for one request, which reads a file front to back once, and the server
/// runs many at a time (the load test: 50 downloads at once).
const CACHE_BYTES: usize = 2 << 20;

/// Why the drive, a category or a path cannot be read. The front maps the variant (never
/// the message) to a page and a status.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such category (or a retired one), folder or file.
    #[error("no such category, folder or file")]
    NotFound,
    /// A path segment that names no entry by construction: empty, `.` or `..`.
    #[error("invalid path segment")]
    BadPath,
    /// A folder was asked for and this is not one.
    #[error("not a folder")]
    NotDir,
    /// File content was asked for and this is a folder.
    #[error("a folder, not a file")]
    IsDir,
    /// An end-to-end encrypted category: the server does not hold its key.
    #[error("this category is end-to-end encrypted: its key is not on the server")]
    Locked,
    /// A category the web does not serve.
    #[error("this category is not available on the web")]
    NotOnWeb,
    /// The account has Advanced Data Protection on and web access was turned on without
    /// it (or this session is not approved): nothing is served.
    #[error("Advanced Data Protection is on: web access needs a trusted device's approval")]
    AdpOn,
    /// The category cannot be served: a head that fails verification, a rollback or fork,
    /// a key that is not the one the manifest commits to, a damaged blob.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store's manifest is not a verified successor of the trusted one (rolled back,
    /// forked, badly signed, malformed): nothing of the drive is served.
    #[error("account manifest: {0}")]
    BadManifest(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A change the web does not make: to an end-to-end category, to Recently Deleted
    /// itself, or to the category's root. Says which.
    #[error("{0}")]
    ReadOnly(&'static str),
    /// The account's changes waiting for a device already take the quota's bytes.
    #[error("changes made on the web waiting for a device take {pending} bytes (quota {quota})")]
    Quota { pending: u64, quota: u64 },
}

impl From<VolError> for ReadError {
    fn from(e: VolError) -> Self {
        match e {
            VolError::NotFound => ReadError::NotFound,
            VolError::NotDir => ReadError::NotDir,
            VolError::IsDir => ReadError::IsDir,
            VolError::Store(e) => ReadError::Store(e),
            e => ReadError::Unavailable(e.to_string()),
        }
    }
}

/// Whether the web serves a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryState {
    /// Standard or transit: the server unwraps its key and serves it. Or end-to-end and
    /// released to this web session by a trusted device (ADP).
    Available,
    /// End-to-end encrypted: listed, never opened.
    Locked,
    /// On no list of the web.
    NotOnWeb,
}

impl CategoryState {
    /// The `data-state` attribute of the category's row (web-contract.md).
    pub fn data_state(self) -> &'static str {
        match self {
            CategoryState::Available => "available",
            CategoryState::Locked => "locked",
            CategoryState::NotOnWeb => "unavailable",
        }
    }
}

pub use crate::format::web::{NEVER_RELEASED, RELEASABLE, STAY_STANDARD};

/// The web's policy, in one place: a category on the release or stay-standard list is
/// served while the key service holds its key (standard or transit) and shown locked
/// while it is end-to-end; the never-released ones are locked; every other category
/// (Backup, Maps, ones the user added, of any class) is "not available on the web".
fn web_state(e: &CategoryEntry) -> CategoryState {
    let name = e.name.as_str();
    let listed = RELEASABLE.contains(&name) || STAY_STANDARD.contains(&name);
    match (e.class, listed) {
        (Class::Standard | Class::Transit, true) => CategoryState::Available,
        (Class::E2e, true) => CategoryState::Locked,
        (Class::E2e, false) if NEVER_RELEASED.contains(&name) => CategoryState::Locked,
        _ => CategoryState::NotOnWeb,
    }
}

/// One row of the category list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryView {
    pub id: u32,
    pub name: String,
    pub class: Class,
    pub state: CategoryState,
    /// Plaintext bytes of the category's files, from its head: only for an available
    /// category that opened.
    pub size: Option<u64>,
}

/// One account's drive, read-only, at the manifest verified when it was opened. Open one
/// per request: it holds unwrapped keys and a plaintext cache in memory, and does not
/// follow heads published after it opened a category.
pub struct Drive {
    store: Arc<dyn Store>,
    access: Arc<dyn AccountAccess>,
    manifest: Manifest,
    heads: Arc<dyn HeadSigner>,
    cache: Arc<ChunkCache>,
    open: Mutex<HashMap<u32, OpenCategory>>,
}

impl Drive {
    /// Reads the store's manifest and verifies it as a successor chain of the one the
    /// server trusts (recording a newer one with [`AccountAccess::advance_manifest`]).
    /// Refuses a rolled-back, forked or badly signed manifest, and an account with
    /// Advanced Data Protection on.
    pub fn open(store: Arc<dyn Store>, access: Arc<dyn AccountAccess>) -> Result<Drive, ReadError> {
        let manifest = trust::verified_manifest(&*store, &*access)?;
        Ok(Drive {
            heads: crate::account::manifest::head_verifier(&manifest),
            store,
            access,
            manifest,
            cache: Arc::new(ChunkCache::new(CACHE_BYTES)),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The verified manifest the drive reads at.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every category that is not retired, in the table's order, with whether the web
    /// serves it and, for those it does, their size (each is opened for it).
    pub fn categories(&self) -> Vec<CategoryView> {
        self.manifest
            .table
            .active()
            .map(|e| {
                let state = self.state(e);
                let size = match state {
                    CategoryState::Available => self.open_entry(e).ok().map(|c| c.size()),
                    _ => None,
                };
                CategoryView {
                    id: e.id,
                    name: e.name.clone(),
                    class: e.class,
                    state,
                    size,
                }
            })
            .collect()
    }

    /// Opens the category named `name` (exactly, not retired) for reading. A locked or
    /// unlisted one is [`ReadError::Locked`] or [`ReadError::NotOnWeb`]; one whose head,
    /// key or history does not verify is [`ReadError::Unavailable`], never served.
    pub fn open_category(&self, name: &str) -> Result<OpenCategory, ReadError> {
        let e = self.manifest.table.find(name).ok_or(ReadError::NotFound)?;
        match self.state(e) {
            CategoryState::Available => self.open_entry(e),
            CategoryState::Locked => Err(ReadError::Locked),
            CategoryState::NotOnWeb => Err(ReadError::NotOnWeb),
        }
    }

    /// The policy's state, with an e2e category on the release list available when a
    /// trusted device released its current key to this session.
    fn state(&self, e: &CategoryEntry) -> CategoryState {
        let state = web_state(e);
        if state == CategoryState::Locked && RELEASABLE.contains(&e.name.as_str()) {
            match self.access.released(e.id, e.key_version) {
                // Only a key the signed manifest commits to counts (one sealed by anyone
                // but a device would not open the category).
                Ok(Some(k))
                    if self.manifest.commitment(e.id, e.key_version)
                        == Some(crate::account::manifest::key_commitment(&k)) =>
                {
                    return CategoryState::Available;
                }
                Ok(Some(_)) => log::warn!(
                    "web: a key released for {} is not the one the manifest commits to",
                    e.name
                ),
                Ok(None) => {}
                Err(err) => log::warn!("web: released keys of {}: {err}", e.name),
            }
        }
        state
    }

    fn open_entry(&self, e: &CategoryEntry) -> Result<OpenCategory, ReadError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = open.get(&e.id) {
            return Ok(c.clone());
        }
        let setup = keys::setup(&*self.store, &*self.access, &self.manifest, e)?;
        let cat = Category::open(
            setup,
            self.store.clone(),
            self.cache.clone(),
            self.access.witness(),
            VolumeOptions::offline(self.heads.clone(), None),
        );
        if let Some(why) = cat.stats().3 {
            return Err(ReadError::Unavailable(why));
        }
        let c = OpenCategory::new(cat, self.store.clone());
        open.insert(e.id, c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn entry(name: &str, class: Class) -> CategoryEntry {
        CategoryEntry {
            id: 1,
            name: name.into(),
            class,
            retired: false,
            key_version: 1,
        }
    }

    #[test]
    fn only_the_listed_categories_are_served_and_e2e_is_always_locked() {
        use CategoryState::*;
        for (name, class, want) in [
            ("Photos", Class::Standard, Available),
            ("Mail", Class::Transit, Available),
            ("Calendars", Class::Standard, Available),
            ("Photos", Class::E2e, Locked),
            ("Health", Class::E2e, Locked),
            ("Keychain", Class::E2e, Locked),
            ("Backup", Class::Standard, NotOnWeb),
            ("Maps", Class::Standard, NotOnWeb),
            ("Projects", Class::Standard, NotOnWeb),
            ("Projects", Class::E2e, NotOnWeb),
            ("Maps", Class::E2e, NotOnWeb),
            ("photos", Class::Standard, NotOnWeb),
        ] {
            assert_eq!(web_state(&entry(name, class)), want, "{name} {class:?}");
        }
    }
}
