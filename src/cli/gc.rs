//! `cirrus gc`: deletes packs that no category's tree references, with this device's
//! drive unmounted. The mark-and-grace algorithm is `maintenance::gc`; this parses the
//! grace period and prints the report.

use super::{PasscodeArgs, unlock};
use crate::home::Home;
use crate::maintenance::gc::{self, GcOptions};
use std::time::Duration;

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

pub fn run(home: Home, pass: &PasscodeArgs, dry_run: bool, grace: Duration) -> super::CliResult {
    let acct = unlock(home, pass)?;
    let r = gc::collect(&acct, GcOptions { dry_run, grace }).map_err(|e| e.to_string())?;
    let kept = if r.young > 0 {
        format!(
            "; {} unreferenced packs kept until they have been unreferenced and old for the grace period ({}s)",
            r.young,
            grace.as_secs()
        )
    } else {
        String::new()
    };
    let kept = if r.held > 0 {
        format!(
            "{kept}; {} unreferenced packs kept until {} has synced (an unpublished edit \
             there may still use them){}",
            r.held,
            r.held_by.join(", "),
            super::status::READ_ONLY_NOTE
        )
    } else {
        kept
    };
    if dry_run {
        println!(
            "{} unreferenced packs ({} bytes) would be deleted{kept}",
            r.deleted, r.deleted_bytes
        );
    } else {
        println!(
            "deleted {} unreferenced packs ({} bytes); {} packs in use{kept}",
            r.deleted, r.deleted_bytes, r.in_use
        );
    }
    Ok(0)
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
