//! The status report, one struct for `cirrus status` and its `--json`: built from an
//! unlocked account, by the command itself, or by the mounted daemon when asked over its
//! control socket (so a mounted drive answers without its passcode). Below the daemon and
//! the CLI: it gets the daemon's live figures as arguments instead of reading them.

use crate::account::Unlocked;
use crate::cache::ChunkCache;
use crate::store::writeback::SyncStatus;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// The version of the `--json` schemas of `status` and `sync`: within a version, fields
/// are only added, never renamed, removed or given another meaning.
pub const JSON_VERSION: u32 = 1;

/// Everything `cirrus status` shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: u32,
    pub device: Device,
    pub account: Account,
    pub store: StoreReport,
    pub categories: Vec<CategoryReport>,
    /// The upload queue (None: a local store, which has none). The daemon's report while
    /// mounted (it owns the uploader), else the journal's.
    pub upload: Option<Upload>,
    /// The running daemon's report, or None when not mounted.
    pub mounted: Option<MountStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    /// The device's key code, as `cirrus device list` shows it (None: not in the manifest).
    pub id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Account {
    /// Hex of the account id (None in homes made before manifests).
    pub id: Option<String>,
    /// The remote key service (None: the embedded one in HOME/keyservice).
    pub key_service: Option<KeyService>,
    pub two_factor: bool,
    pub adp: bool,
    pub backup: bool,
    /// When a password reset through data recovery asked for may take effect (seconds
    /// since the epoch); None when none is pending or the notices could not be read.
    pub password_reset_pending_at: Option<u64>,
    /// The notices' warning, as the text output shows it.
    pub warning: Option<String>,
    pub notices_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyService {
    pub url: String,
    pub account: String,
    /// Why this run has no session with it (only tried with --password-file); the
    /// categories whose keys the device does not hold then show as locked.
    pub login_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoreReport {
    /// As configured: credentials never appear in it (they come from the environment).
    pub url: String,
    /// The directory of a local store.
    pub dir: Option<PathBuf>,
    pub objects: Option<StoreObjects>,
    /// Why the store's objects could not be listed.
    pub list_error: Option<String>,
    /// Old key versions a rotation kept for a device that had not synced yet.
    pub old_keys_kept: Vec<OldKey>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoreObjects {
    pub count: usize,
    pub bytes: u64,
    pub packs: usize,
    pub pack_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OldKey {
    pub category: String,
    pub key_version: u32,
    /// The devices it waits for (empty: the next sync destroys it).
    pub until_synced: Vec<String>,
    pub devices_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryState {
    Ok,
    /// Its key is not available on this device now (see `reason`).
    Locked,
    /// What the store serves for it failed its checks (see `reason`).
    Unavailable,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CategoryReport {
    pub name: String,
    /// `transit`, `standard` or `e2e`.
    pub protection: String,
    pub key_version: u32,
    pub state: CategoryState,
    pub reason: Option<String>,
    /// The sizes and counts below are None while locked.
    pub size_bytes: Option<u64>,
    pub stored_bytes: Option<u64>,
    pub packs: Option<usize>,
    pub files: Option<u64>,
    /// The counter of its head (bumped by every commit).
    pub head: Option<u64>,
    pub rotation: Option<RotationReport>,
}

impl CategoryReport {
    /// A category's entry before it is opened: state ok, nothing measured yet.
    pub fn unmeasured(name: &str, protection: &str, key_version: u32) -> CategoryReport {
        CategoryReport {
            name: name.to_string(),
            protection: protection.to_string(),
            key_version,
            state: CategoryState::Ok,
            reason: None,
            size_bytes: None,
            stored_bytes: None,
            packs: None,
            files: None,
            head: None,
            rotation: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RotationReport {
    pub from_key_version: u32,
    pub to_key_version: u32,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// What a running daemon says about itself in `run/status` (JSON; no names, no keys:
/// counts only). `cirrus status` shows it, and `status --json` passes it on as its
/// `mounted` field (docs/USER-GUIDE.md), so its field names are part of that schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountStatus {
    pub pid: u32,
    pub mountpoint: PathBuf,
    pub memory_cache_used_bytes: u64,
    pub memory_cache_max_bytes: u64,
    /// Categories with changes not yet committed (the next commit interval takes them).
    pub uncommitted_categories: usize,
    /// Mounted with `--read-only`: nothing is written to the store, and no key
    /// acknowledgement is published (docs/USER-GUIDE.md, "Read-only mounts").
    #[serde(default)]
    pub read_only: bool,
}

/// The upload queue and the disk cache, as `status` and `sync` show them (text and
/// JSON: docs/USER-GUIDE.md documents the fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    /// Objects and heads waiting in the journal (including those being sent).
    pub pending_objects: u64,
    pub pending_bytes: u64,
    /// Sent by this uploader since it started (the daemon's, or this command's).
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
    pub journal_max_bytes: u64,
    /// The store cannot be reached: writes are kept locally.
    pub offline: bool,
    pub last_error: Option<LastError>,
    /// Heads another device published first (`name: why`), kept in the journal.
    pub conflicts: Vec<String>,
    /// Journal files that failed their checks (moved to `journal/bad`).
    pub damaged: Vec<String>,
    pub disk_cache_bytes: u64,
    pub disk_cache_max_bytes: u64,
    pub disk_cache_objects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastError {
    /// Seconds since the epoch.
    pub at: u64,
    pub message: String,
}

impl From<&SyncStatus> for Upload {
    fn from(s: &SyncStatus) -> Self {
        Upload {
            pending_objects: s.pending_objects,
            pending_bytes: s.pending_bytes,
            uploaded_objects: s.uploaded_objects,
            uploaded_bytes: s.uploaded_bytes,
            journal_max_bytes: s.journal_max,
            offline: s.offline,
            last_error: s.last_error.as_ref().map(|(at, m)| LastError {
                at: *at,
                message: m.clone(),
            }),
            conflicts: s.conflicts.clone(),
            damaged: s.damaged.clone(),
            disk_cache_bytes: s.cache_bytes,
            disk_cache_max_bytes: s.cache_max,
            disk_cache_objects: s.cache_objects,
        }
    }
}

fn account_part(acct: &Unlocked, no_session: Option<String>) -> Account {
    let mut a = Account {
        id: acct.config.account_id.clone(),
        key_service: acct.config.server.as_ref().map(|s| KeyService {
            url: s.url.clone(),
            account: s.account.clone(),
            login_error: no_session,
        }),
        two_factor: acct
            .manifest()
            .has(crate::format::manifest::FLAG_SECOND_FACTOR),
        adp: acct.adp_on(),
        backup: acct.backup_on(),
        password_reset_pending_at: None,
        warning: None,
        notices_error: None,
    };
    if acct.config.server.is_some() {
        // Read with the remembered-device token: no password needed.
        match acct.notice_watch().and_then(|w| w.fetch()) {
            Ok(r) => {
                a.warning = crate::account::notices::pending_warning(&r);
                a.password_reset_pending_at = r.pending_reset;
            }
            Err(e) => a.notices_error = Some(e.to_string()),
        }
    }
    a
}

fn categories_part(acct: &Unlocked) -> Vec<CategoryReport> {
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut out = Vec::new();
    for (entry, setup) in acct.category_setups() {
        let mut r = CategoryReport::unmeasured(&entry.name, entry.class.name(), entry.key_version);
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                r.state = CategoryState::Locked;
                r.reason = Some(e);
                out.push(r);
                continue;
            }
        };
        let c = crate::account::open_for_inspection(acct, setup, &cache);
        let (bytes, inodes, counter, bad) = c.stats();
        let usage = c.usage();
        if let Some(why) = bad {
            r.state = CategoryState::Unavailable;
            r.reason = Some(why);
        }
        r.size_bytes = Some(bytes);
        r.stored_bytes = Some(usage.stored);
        r.packs = Some(usage.packs);
        r.files = Some(inodes.saturating_sub(1));
        r.head = Some(counter);
        r.rotation = c.rotation().map(|x| RotationReport {
            from_key_version: x.from,
            to_key_version: x.to,
            done_bytes: x.done,
            total_bytes: x.total,
        });
        out.push(r);
    }
    out
}

fn store_part(acct: &Unlocked) -> StoreReport {
    let mut s = StoreReport {
        url: acct.config.store.clone(),
        dir: acct.store_dir(),
        objects: None,
        list_error: None,
        old_keys_kept: Vec::new(),
    };
    let objs = match acct.store.list_info("") {
        Ok(o) => o,
        Err(e) => {
            s.list_error = Some(e.to_string());
            return s;
        }
    };
    let packs: Vec<_> = objs
        .iter()
        .filter(|o| o.name.starts_with("packs/"))
        .collect();
    s.objects = Some(StoreObjects {
        count: objs.len(),
        bytes: objs.iter().map(|o| o.size).sum(),
        packs: packs.len(),
        pack_bytes: packs.iter().map(|o| o.size).sum(),
    });
    // Old key versions a rotation kept for a device that had not synced yet.
    if acct.sync.is_some() {
        for e in acct.table().active() {
            for v in 1..e.key_version {
                let name = crate::format::names::category_key(e.id, v);
                if !objs.iter().any(|o| o.name == name) {
                    continue;
                }
                let who = acct.devices_needing(e.id, v);
                s.old_keys_kept.push(OldKey {
                    category: e.name.clone(),
                    key_version: v,
                    devices_error: who.as_ref().err().map(|e| e.to_string()),
                    until_synced: who.unwrap_or_default(),
                });
            }
        }
    }
    s
}

/// The mounted daemon's own figures: its report (None: not mounted) and, while it owns
/// the uploader, the upload queue's state (None: take `acct`'s write-back's).
pub type Live<'a> = &'a dyn Fn(&Unlocked) -> (Option<MountStatus>, Option<SyncStatus>);

/// The report of `cirrus status` on an unlocked account.
pub fn report(acct: &Unlocked, no_session: Option<String>, live: Live) -> StatusReport {
    // In the order the text shows them: the daemon's figures are taken last, after the
    // categories were opened, so they are as fresh as the rest.
    let account = account_part(acct, no_session);
    let categories = categories_part(acct);
    let store = store_part(acct);
    let (mounted, sync) = live(acct);
    let upload = acct
        .sync
        .as_ref()
        .map(|wb| Upload::from(&sync.unwrap_or_else(|| wb.status())));
    StatusReport {
        version: JSON_VERSION,
        device: Device {
            name: acct.config.device_name.clone(),
            id: acct
                .devices()
                .into_iter()
                .find(|d| d.this_device)
                .map(|d| d.code),
        },
        account,
        store,
        categories,
        upload,
        mounted,
    }
}
