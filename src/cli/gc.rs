//! `cirrus gc`: deletes whole packs that no category's tree references. Single-device and
//! offline only (it holds the daemon lock); several devices need the grace-period protocol
//! of the sync issue.

use super::{PasscodeArgs, open_for_inspection, unlock};
use crate::cache::ChunkCache;
use crate::format::names;
use crate::home::Home;
use std::collections::HashSet;
use std::sync::Arc;

pub fn run(home: Home, pass: &PasscodeArgs, dry_run: bool) -> super::CliResult {
    let acct = unlock(home, pass)?;
    // The same lock a mount holds: no daemon can start (or be running) while we delete.
    let _lock = super::daemon::lock_home(&acct.home)
        .map_err(|e| format!("{e} (gc runs only while the drive is unmounted)"))?;
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut referenced: HashSet<[u8; 32]> = HashSet::new();
    for (entry, setup) in acct.all_category_setups() {
        let setup = setup.map_err(|e| {
            format!(
                "category {}: {e}; nothing deleted (run `cirrus fsck`)",
                entry.name
            )
        })?;
        let c = open_for_inspection(&acct, setup, &cache);
        let packs = c.referenced_packs().map_err(|e| {
            format!(
                "category {}: {e}; nothing deleted (run `cirrus fsck`)",
                entry.name
            )
        })?;
        referenced.extend(packs);
    }
    let list = acct
        .store
        .list("packs/")
        .map_err(|e| format!("cannot list the store: {e}"))?;
    let mut doomed = Vec::new();
    for name in list {
        if let Some(id) = names::parse_pack(&name)
            && !referenced.contains(&id)
        {
            let size = acct.store.size(&name).unwrap_or(0);
            doomed.push((name, size));
        }
    }
    let bytes: u64 = doomed.iter().map(|(_, s)| s).sum();
    if dry_run {
        println!(
            "{} unreferenced packs ({} bytes) would be deleted",
            doomed.len(),
            bytes
        );
        return Ok(0);
    }
    for (name, _) in &doomed {
        acct.store
            .delete(name)
            .map_err(|e| format!("cannot delete {name}: {e}"))?;
    }
    println!(
        "deleted {} unreferenced packs ({} bytes); {} packs in use",
        doomed.len(),
        bytes,
        referenced.len()
    );
    Ok(0)
}
