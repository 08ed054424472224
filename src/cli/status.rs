//! `cirrus status`: what is stored, per category, and how it is protected. One report
//! ([`StatusReport`]) is built, then printed as text or, with `--json`, as the JSON
//! object docs/USER-GUIDE.md documents: both come from the same fields, so they cannot
//! disagree.

use super::sync::Upload;
use super::{PasscodeArgs, human, unlock_holding};
use crate::account::Unlocked;
use crate::cache::ChunkCache;
use crate::daemon::MountStatus;
use crate::format::table::Class;
use crate::home::Home;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// The version of the `--json` schemas of `status` and `sync`: within a version, fields
/// are only added, never renamed, removed or given another meaning.
pub const JSON_VERSION: u32 = 1;

/// Said wherever another device's missing acknowledgement holds something back.
pub(super) const READ_ONLY_NOTE: &str = " (a device that only mounts read-only never \
    acknowledges: mount it writable once, or run `cirrus sync` there)";

/// Everything `cirrus status` shows.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct Device {
    pub name: String,
    /// The device's key code, as `cirrus device list` shows it (None: not in the manifest).
    pub id: Option<String>,
}

#[derive(Debug, Serialize)]
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
    #[serde(skip)]
    pub warning: Option<String>,
    pub notices_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyService {
    pub url: String,
    pub account: String,
    /// Why this run has no session with it (only tried with --password-file); the
    /// categories whose keys the device does not hold then show as locked.
    pub login_error: Option<String>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct StoreObjects {
    pub count: usize,
    pub bytes: u64,
    pub packs: usize,
    pub pack_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct OldKey {
    pub category: String,
    pub key_version: u32,
    /// The devices it waits for (empty: the next sync destroys it).
    pub until_synced: Vec<String>,
    pub devices_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryState {
    Ok,
    /// Its key is not available on this device now (see `reason`).
    Locked,
    /// What the store serves for it failed its checks (see `reason`).
    Unavailable,
}

#[derive(Debug, Serialize)]
pub struct CategoryReport {
    pub name: String,
    /// `transit`, `standard` or `e2e`.
    pub protection: &'static str,
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

#[derive(Debug, Serialize)]
pub struct RotationReport {
    pub from_key_version: u32,
    pub to_key_version: u32,
    pub done_bytes: u64,
    pub total_bytes: u64,
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
        let mut r = CategoryReport {
            name: entry.name.clone(),
            protection: entry.class.name(),
            key_version: entry.key_version,
            state: CategoryState::Ok,
            reason: None,
            size_bytes: None,
            stored_bytes: None,
            packs: None,
            files: None,
            head: None,
            rotation: None,
        };
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                r.state = CategoryState::Locked;
                r.reason = Some(e);
                out.push(r);
                continue;
            }
        };
        let c = super::open_for_inspection(acct, setup, &cache);
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

/// The report of `cirrus status` on an unlocked account.
pub fn report(acct: &Unlocked, no_session: Option<String>) -> StatusReport {
    // In the order the text shows them: the daemon's reports are read last, after the
    // categories were opened, so they are as fresh as the rest.
    let account = account_part(acct, no_session);
    let categories = categories_part(acct);
    let store = store_part(acct);
    let mounted = crate::daemon::read_mount_status(&acct.home);
    // The daemon owns the uploader while mounted; its report is the live one.
    let upload = acct.sync.as_ref().map(|wb| {
        let s = mounted
            .as_ref()
            .and_then(|_| crate::daemon::read_sync_status(&acct.home))
            .unwrap_or_else(|| wb.status());
        Upload::from(&s)
    });
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

fn category_line(c: &CategoryReport) -> String {
    let num = |v: Option<u64>, f: &dyn Fn(u64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    let mut state = match (c.state, &c.reason) {
        (CategoryState::Locked, why) => format!("locked: {}", why.as_deref().unwrap_or("")),
        (CategoryState::Unavailable, why) => {
            format!("UNAVAILABLE: {}", why.as_deref().unwrap_or(""))
        }
        (CategoryState::Ok, _) if c.protection == Class::Transit.name() => {
            "ok (stored UNENCRYPTED at rest, by design)".into()
        }
        (CategoryState::Ok, _) => "ok".into(),
    };
    if let Some(r) = &c.rotation {
        let pct = (r.done_bytes * 100).checked_div(r.total_bytes).unwrap_or(0);
        state.push_str(&format!(
            "; rotating key v{} \u{2192} v{}, {pct}%",
            r.from_key_version, r.to_key_version
        ));
    }
    format!(
        "{:<22} {:<9} {:>10} {:>10} {:>6} {:>8} {:>6}  {state}",
        c.name,
        c.protection,
        num(c.size_bytes, &human),
        num(c.stored_bytes, &human),
        num(c.packs.map(|p| p as u64), &|n| n.to_string()),
        num(c.files, &|n| n.to_string()),
        num(c.head, &|n| n.to_string()),
    )
}

/// The text output: the lines `cirrus status` has always printed.
fn print_text(r: &StatusReport) {
    match &r.store.dir {
        Some(d) => println!("store: {} ({})", r.store.url, d.display()),
        None => println!("store: {}", r.store.url),
    }
    println!(
        "backup: {}",
        if r.account.backup {
            "on (Messages has a copy under Backup)"
        } else {
            "off"
        }
    );
    if let Some(w) = &r.account.warning {
        println!("WARNING: {w}");
    }
    if let Some(e) = &r.account.notices_error {
        println!("key service notices: cannot read them ({e})");
    }
    println!(
        "{:<22} {:<9} {:>10} {:>10} {:>6} {:>8} {:>6}  state",
        "category", "class", "size", "stored", "packs", "files", "head"
    );
    for c in &r.categories {
        println!("{}", category_line(c));
    }
    match (&r.store.objects, &r.store.list_error) {
        (Some(o), _) => println!(
            "store objects: {} ({}), of which {} packs ({})",
            o.count,
            human(o.bytes),
            o.packs,
            human(o.pack_bytes)
        ),
        (None, e) => println!(
            "store objects: cannot list ({})",
            e.as_deref().unwrap_or("")
        ),
    }
    for k in &r.store.old_keys_kept {
        let who = match &k.devices_error {
            Some(err) => format!("? ({err})"),
            None if k.until_synced.is_empty() => "the next sync".into(),
            None => k.until_synced.join(", "),
        };
        println!(
            "old key kept: {} key version {}, until {who} has synced{}",
            k.category,
            k.key_version,
            if k.until_synced.is_empty() {
                ""
            } else {
                READ_ONLY_NOTE
            }
        );
    }
    if let Some(u) = &r.upload {
        for l in super::sync::describe(u) {
            println!("{l}");
        }
    }
    match &r.mounted {
        Some(m) => println!(
            "mounted: at {}{}; memory cache {} of {} MiB; {} categories with uncommitted changes",
            m.mountpoint.display(),
            if m.read_only {
                " (read-only: nothing is written to the store, no key acknowledgement)"
            } else {
                ""
            },
            m.memory_cache_used_bytes >> 20,
            m.memory_cache_max_bytes >> 20,
            m.uncommitted_categories
        ),
        None => println!(
            "not mounted (the memory cache is bounded by `{}`)",
            crate::hint::cmd_hint("mount --memory-cache")
        ),
    }
}

/// Prints `value` as the one JSON object of a `--json` run.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| format!("encoding JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

/// Under `--json`, a failure still prints one JSON object, `{"version":1,"error":".."}`,
/// besides the message on stderr and the non-zero exit.
pub(super) fn json_error(json: bool, e: String) -> String {
    if json {
        let _ = print_json(&serde_json::json!({ "version": JSON_VERSION, "error": e }));
    }
    e
}

pub fn run(home: Home, pass: &PasscodeArgs, json: bool) -> super::CliResult {
    let (acct, no_session) = unlock_holding(home, pass).map_err(|e| json_error(json, e))?;
    if let Some(why) = &no_session {
        eprintln!(
            "cirrus: warning: not logged in to the key service: {why}. Categories whose keys \
             this device does not hold are shown as locked"
        );
    }
    let r = report(&acct, no_session.map(|w| w.to_string()));
    if json {
        print_json(&r)?;
    } else {
        print_text(&r);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: CategoryState, reason: Option<&str>) -> CategoryReport {
        CategoryReport {
            name: "Photos".into(),
            protection: "standard",
            key_version: 2,
            state,
            reason: reason.map(str::to_string),
            size_bytes: None,
            stored_bytes: None,
            packs: None,
            files: None,
            head: None,
            rotation: None,
        }
    }

    /// The text line and the JSON entry come from the same fields.
    #[test]
    fn a_category_prints_the_same_state_as_text_and_as_json() {
        let locked = entry(CategoryState::Locked, Some("needs the key service"));
        let line = category_line(&locked);
        assert!(line.starts_with("Photos "), "{line}");
        assert!(line.ends_with("  locked: needs the key service"), "{line}");
        let j = serde_json::to_value(&locked).unwrap();
        assert_eq!(j["state"], "locked");
        assert_eq!(j["reason"], "needs the key service");
        assert_eq!(j["size_bytes"], serde_json::Value::Null);

        let mut rotating = entry(CategoryState::Ok, None);
        rotating.size_bytes = Some(4096);
        rotating.rotation = Some(RotationReport {
            from_key_version: 1,
            to_key_version: 2,
            done_bytes: 37,
            total_bytes: 100,
        });
        let line = category_line(&rotating);
        assert!(
            line.ends_with("  ok; rotating key v1 \u{2192} v2, 37%"),
            "{line}"
        );
        assert!(line.contains("4.0 KiB"), "{line}");
        let j = serde_json::to_value(&rotating).unwrap();
        assert_eq!(j["state"], "ok");
        assert_eq!(j["rotation"]["to_key_version"], 2);
    }
}
