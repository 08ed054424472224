//! `cirrus gc`: deletes packs that no category's tree references. Runs with this device's
//! drive unmounted (it holds the daemon lock); other devices may be mounted and syncing:
//! packs younger than the grace period are kept, because a device uploads its packs
//! before the head that references them (FORMAT.md §7), so for a while they belong to
//! no published head.

use super::{PasscodeArgs, open_for_inspection, open_for_inspection_in, unlock};
use crate::cache::ChunkCache;
use crate::format::names;
use crate::home::Home;
use crate::volume::HeadWitness;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `30s`, `15m`, `12h`, `3d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with s, m, h or d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: too long"))
}

/// The remote view's heads are read only to find what they reference: their signatures
/// and MACs are checked, but this device's record of heads is neither consulted nor
/// changed (its own commits may be ahead of the store).
struct NoWitness;

impl HeadWitness for NoWitness {
    fn seen(&self, _: u32) -> Result<Option<(u64, [u8; 32])>, crate::volume::WitnessError> {
        Ok(None)
    }
    fn record(&self, _: u32, _: u64, _: [u8; 32]) -> Result<(), crate::volume::WitnessError> {
        Ok(())
    }
}

pub fn run(home: Home, pass: &PasscodeArgs, dry_run: bool, grace: Duration) -> super::CliResult {
    let acct = unlock(home, pass)?;
    // The same lock a mount holds: no daemon of this home can start while we delete.
    let _lock = crate::daemon::lock_home(&acct.home)
        .map_err(|e| format!("{e} (gc runs only while the drive is unmounted)"))?;
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut referenced: HashSet<[u8; 32]> = HashSet::new();
    // This device's view (its journal's heads first), and with a remote store also the
    // store's own heads, which other devices may have moved on.
    let mut views: Vec<(&str, Option<Arc<dyn crate::store::Store>>)> = vec![("local", None)];
    if let Some(wb) = &acct.sync {
        views.push(("store", Some(wb.remote())));
    }
    for (view, store) in views {
        for (entry, setup) in acct.all_category_setups() {
            let setup = setup.map_err(|e| {
                format!(
                    "category {}: {e}; nothing deleted (run `{}`)",
                    entry.name,
                    crate::hint::cmd_hint("fsck")
                )
            })?;
            let c = match &store {
                None => open_for_inspection(&acct, setup, &cache),
                Some(s) => {
                    open_for_inspection_in(&acct, setup, &cache, s.clone(), Arc::new(NoWitness))
                }
            };
            let packs = c.referenced_packs().map_err(|e| {
                format!(
                    "category {} ({view} view): {e}; nothing deleted (run `{}`)",
                    entry.name,
                    crate::hint::cmd_hint("fsck")
                )
            })?;
            referenced.extend(packs);
        }
    }
    let list = acct
        .store
        .list_info("packs/")
        .map_err(|e| format!("cannot list the store: {e}"))?;
    let now = SystemTime::now();
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // When each pack was first found unreferenced (an earlier gc, on any device): a pack
    // goes only once it has stayed unreferenced for the whole grace period, so an old
    // pack that an offline device's unpublished edit still names survives until that
    // device has had the grace period to publish (and reference it again).
    let marks_before = read_marks(&*acct.store);
    let mut marks = std::collections::BTreeMap::new();
    let mut doomed = Vec::new();
    let mut young = 0usize;
    // With other devices syncing, a pack also waits until each of them has had every
    // head published since it was marked (its acknowledgement, FORMAT.md §14b): an
    // edit still in a device's journal may name a pack no head in the store names.
    let mut behind: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let mut held_by: std::collections::BTreeSet<String> = Default::default();
    let mut held = 0usize;
    for o in list {
        let Some(id) = names::parse_pack(&o.name) else {
            continue;
        };
        if referenced.contains(&id) {
            continue;
        }
        let since = *marks_before.get(&id).unwrap_or(&now_secs);
        let unreferenced_long = now_secs.saturating_sub(since) >= grace.as_secs();
        let old_enough = match o.modified {
            Some(t) => now.duration_since(t).unwrap_or_default() >= grace,
            // Age unknown: only a zero grace deletes it.
            None => grace.is_zero(),
        };
        let waiting_for =
            if acct.sync.is_some() && old_enough && unreferenced_long {
                match behind.entry(since) {
                    std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
                    std::collections::btree_map::Entry::Vacant(e) => e
                        .insert(acct.devices_unpublished_since(since).map_err(|e| {
                            format!("cannot read the devices' acknowledgements: {e}")
                        })?)
                        .clone(),
                }
            } else {
                Vec::new()
            };
        if old_enough && unreferenced_long && waiting_for.is_empty() {
            doomed.push((o.name, o.size));
        } else if old_enough && unreferenced_long {
            marks.insert(id, since);
            held += 1;
            held_by.extend(waiting_for);
        } else {
            marks.insert(id, since);
            young += 1;
        }
    }
    if !dry_run {
        write_marks(&*acct.store, &marks)?;
    }
    let bytes: u64 = doomed.iter().map(|(_, s)| s).sum();
    let kept = if young > 0 {
        format!(
            "; {young} unreferenced packs kept until they have been unreferenced and old for the grace period ({}s)",
            grace.as_secs()
        )
    } else {
        String::new()
    };
    let kept = if held > 0 {
        format!(
            "{kept}; {held} unreferenced packs kept until {} has synced (an unpublished edit \
             there may still use them)",
            held_by.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else {
        kept
    };
    if dry_run {
        println!(
            "{} unreferenced packs ({} bytes) would be deleted{kept}",
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
        "deleted {} unreferenced packs ({} bytes); {} packs in use{kept}",
        doomed.len(),
        bytes,
        referenced.len()
    );
    Ok(0)
}

/// The store object where gc keeps when it first found each pack unreferenced
/// (FORMAT.md §14a): lines of `<pack id hex> <unix seconds>`.
const MARKS: &str = "account/gc-marks";

fn read_marks(store: &dyn crate::store::Store) -> std::collections::HashMap<[u8; 32], u64> {
    let Ok(bytes) = store.get(MARKS) else {
        return Default::default();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let (id, t) = l.split_once(' ')?;
            let id: [u8; 32] = hex::decode(id).ok()?.try_into().ok()?;
            Some((id, t.trim().parse().ok()?))
        })
        .collect()
}

fn write_marks(
    store: &dyn crate::store::Store,
    marks: &std::collections::BTreeMap<[u8; 32], u64>,
) -> Result<(), String> {
    let text: String = marks
        .iter()
        .map(|(id, t)| format!("{} {t}\n", hex::encode(id)))
        .collect();
    store
        .put(MARKS, text.as_bytes())
        .map_err(|e| format!("cannot record the unreferenced packs: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(259_200));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
