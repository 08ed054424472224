//! `cirrus status`: what is stored, per category, and how it is protected. One report
//! ([`StatusReport`], built in `crate::report`) is printed as text or, with `--json`, as
//! the JSON object docs/USER-GUIDE.md documents: both come from the same fields, so they
//! cannot disagree. A mounted drive's daemon builds it when asked over its control
//! socket, so no passcode is needed then.

use super::{PasscodeArgs, human, unlock_holding};
use crate::daemon::control::{self, Request};
use crate::format::table::Class;
use crate::home::Home;
pub use crate::report::JSON_VERSION;
use crate::report::{CategoryReport, CategoryState, StatusReport};
use serde::Serialize;

/// Said wherever another device's missing acknowledgement holds something back.
pub(super) const READ_ONLY_NOTE: &str = " (a device that only mounts read-only never \
    acknowledges: mount it writable once, or run `cirrus sync` there)";

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

/// The report of the daemon serving this home, if one is mounted and answers (the socket
/// is the daemon user's alone: that is the access check). Otherwise the command unlocks
/// the account itself, as it does for a daemon too old to know the request.
fn from_daemon(home: &Home) -> Option<StatusReport> {
    crate::daemon::read_mount_status(home)?;
    let req = Request {
        op: "status".into(),
        ..Request::default()
    };
    match control::exchange(home, &req, &mut |_| {}) {
        Ok(reply) => match (reply.status, reply.error) {
            (Some(v), None) => match serde_json::from_value(v) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!(
                        "the daemon's status report does not parse ({e}); asking for the passcode"
                    );
                    None
                }
            },
            (_, e) => {
                log::warn!(
                    "the daemon gave no status report ({}); asking for the passcode",
                    e.unwrap_or_default()
                );
                None
            }
        },
        Err(e) => {
            log::warn!("{e}; asking for the passcode");
            None
        }
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
    // With an account password to log in with, the command reports what that session
    // unlocks, which may be more than the daemon's (a mount that could not log in).
    let daemon = if super::passcode::password_given(pass) {
        None
    } else {
        from_daemon(&home)
    };
    let r = match daemon {
        Some(r) => r,
        None => {
            let (acct, no_session) = unlock_holding(home, pass).map_err(|e| json_error(json, e))?;
            if let Some(why) = &no_session {
                eprintln!(
                    "cirrus: warning: not logged in to the key service: {why}. Categories \
                     whose keys this device does not hold are shown as locked"
                );
            }
            crate::report::report(&acct, no_session.map(|w| w.to_string()), &|acct| {
                let mounted = crate::daemon::read_mount_status(&acct.home);
                // The daemon owns the uploader while mounted; its figures are the live ones.
                let sync = mounted
                    .as_ref()
                    .and_then(|_| crate::daemon::read_sync_status(&acct.home));
                (mounted, sync)
            })
        }
    };
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
    use crate::report::RotationReport;

    fn entry(state: CategoryState, reason: Option<&str>) -> CategoryReport {
        CategoryReport {
            state,
            reason: reason.map(str::to_string),
            ..CategoryReport::unmeasured("Photos", "standard", 2)
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
