//! `cirrus status`: what is stored, per category, and how it is protected.

use super::{PasscodeArgs, unlock_holding};
use crate::cache::ChunkCache;
use crate::format::table::Class;
use crate::home::Home;
use std::sync::Arc;

use super::human;

/// The running daemon's own report (mountpoint, cache use), if one is running.
pub(super) fn read_daemon_status(home: &Home) -> Option<String> {
    let text = std::fs::read_to_string(crate::daemon::mount_status_path(home)).ok()?;
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    // SAFETY: existence check only.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return None;
    }
    Some(lines.collect::<Vec<_>>().join("; "))
}

pub fn run(home: Home, pass: &PasscodeArgs) -> super::CliResult {
    let (acct, no_session) = unlock_holding(home, pass)?;
    if let Some(why) = &no_session {
        eprintln!(
            "cirrus: warning: not logged in to the key service: {why}. Categories whose keys \
             this device does not hold are shown as locked"
        );
    }
    let cache = Arc::new(ChunkCache::new(1 << 20));
    match acct.store_dir() {
        Some(d) => println!("store: {} ({})", acct.config.store, d.display()),
        None => println!("store: {}", acct.config.store),
    }
    println!(
        "backup: {}",
        if acct.backup_on() {
            "on (Messages has a copy under Backup)"
        } else {
            "off"
        }
    );
    if acct.config.server.is_some() {
        // Read with the remembered-device token: no password needed.
        match acct.notice_watch().and_then(|w| w.fetch()) {
            Ok(r) => {
                if let Some(w) = crate::account::notices::pending_warning(&r) {
                    println!("WARNING: {w}");
                }
            }
            Err(e) => println!("key service notices: cannot read them ({e})"),
        }
    }
    println!(
        "{:<22} {:<9} {:>10} {:>10} {:>6} {:>8} {:>6}  state",
        "category", "class", "size", "stored", "packs", "files", "head"
    );
    for (entry, setup) in acct.category_setups() {
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                println!(
                    "{:<22} {:<9} {:>10} {:>10} {:>6} {:>8} {:>6}  locked: {e}",
                    entry.name,
                    entry.class.name(),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-"
                );
                continue;
            }
        };
        let c = super::open_for_inspection(&acct, setup, &cache);
        let (bytes, inodes, counter, bad) = c.stats();
        let usage = c.usage();
        let mut state = match bad {
            Some(why) => format!("UNAVAILABLE: {why}"),
            None if entry.class == Class::Transit => {
                "ok (stored UNENCRYPTED at rest, by design)".into()
            }
            None => "ok".into(),
        };
        if let Some(r) = c.rotation() {
            let pct = (r.done * 100).checked_div(r.total).unwrap_or(0);
            state.push_str(&format!(
                "; rotating key v{} \u{2192} v{}, {pct}%",
                r.from, r.to
            ));
        }
        println!(
            "{:<22} {:<9} {:>10} {:>10} {:>6} {:>8} {:>6}  {state}",
            entry.name,
            entry.class.name(),
            human(bytes),
            human(usage.stored),
            usage.packs,
            inodes.saturating_sub(1),
            counter
        );
    }
    match acct.store.list_info("") {
        Ok(objs) => {
            let packs: Vec<_> = objs
                .iter()
                .filter(|o| o.name.starts_with("packs/"))
                .collect();
            let pack_bytes: u64 = packs.iter().map(|o| o.size).sum();
            let total: u64 = objs.iter().map(|o| o.size).sum();
            println!(
                "store objects: {} ({}), of which {} packs ({})",
                objs.len(),
                human(total),
                packs.len(),
                human(pack_bytes)
            );
            // Old key versions a rotation kept for a device that had not synced yet.
            if acct.sync.is_some() {
                for e in acct.table().active() {
                    for v in 1..e.key_version {
                        let name = crate::format::names::category_key(e.id, v);
                        if !objs.iter().any(|o| o.name == name) {
                            continue;
                        }
                        let who = acct
                            .devices_needing(e.id, v)
                            .map(|w| w.join(", "))
                            .unwrap_or_else(|err| format!("? ({err})"));
                        println!(
                            "old key kept: {} key version {v}, until {} has synced",
                            e.name,
                            if who.is_empty() {
                                "the next sync"
                            } else {
                                &who
                            }
                        );
                    }
                }
            }
        }
        Err(e) => println!("store objects: cannot list ({e})"),
    }
    let mounted = read_daemon_status(&acct.home);
    if let Some(wb) = &acct.sync {
        // The daemon owns the uploader while mounted; its report is the live one.
        let s = mounted
            .as_ref()
            .and_then(|_| crate::daemon::read_sync_status(&acct.home))
            .unwrap_or_else(|| wb.status());
        for l in super::sync::describe(&s) {
            println!("{l}");
        }
    }
    match mounted {
        Some(line) => println!("mounted: {line}"),
        None => {
            println!(
                "not mounted (the memory cache is bounded by `{}`)",
                crate::hint::cmd_hint("mount --memory-cache")
            )
        }
    }
    Ok(0)
}
