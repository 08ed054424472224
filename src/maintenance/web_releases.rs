//! This device's record of the category keys it released to web sessions (`cirrus web
//! approve|release`, FORMAT.md §9e), in `DEVICE/web-releases.json`: which session, the
//! session's key (so `web release` can add a category later without the code), which
//! categories, until when. A release is good until the category's next rotation, whatever
//! the server says about the hour, so once the session has ended (or the hour is up) the
//! device owes a rotation of each category it released; the record is what makes it
//! remember across commands and crashes.

use crate::home::Home;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The longest a release is counted as live, whatever the server answered: the hour of
/// the design (a server that claims more is not believed).
pub const MAX_RELEASE_SECS: u64 = 3600;

/// One web session this device released keys to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRelease {
    /// The web session's id.
    pub session: String,
    /// Its X25519 public key (hex), as the sign-in code vouched for it.
    pub public_key: String,
    /// The proof of the code the server asks with every release to this session (hex).
    #[serde(default)]
    pub proof: String,
    /// Categories released to it (end-to-end ones, whose keys left this device).
    pub categories: Vec<String>,
    /// Unix seconds after which the release counts as over.
    pub expires: u64,
    /// Whether this device rotates the categories once it is over (`--no-rotate-after`
    /// turns it off).
    pub rotate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is damaged ({why}); it lists the web sessions this device released keys to", path.display())]
    Malformed { path: PathBuf, why: String },
    #[error(transparent)]
    Write(crate::home::HomeError),
}

pub fn path(home: &Home) -> PathBuf {
    home.device_dir().join("web-releases.json")
}

/// The record's lock, held while the rotations it owes run, so the mount's watcher and a
/// command never both rotate the same release. `None`: someone else holds it now.
pub fn try_lock(home: &Home) -> Result<Option<std::fs::File>, RecordError> {
    let path = home.device_dir().join("web-releases.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| RecordError::Read {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(RecordError::Read { path, source }),
    }
}

pub fn load(home: &Home) -> Result<Vec<WebRelease>, RecordError> {
    let path = path(home);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RecordError::Read { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|e| RecordError::Malformed {
        path,
        why: e.to_string(),
    })
}

pub fn save(home: &Home, list: &[WebRelease]) -> Result<(), RecordError> {
    let text = serde_json::to_vec_pretty(list).map_err(|e| RecordError::Malformed {
        path: path(home),
        why: e.to_string(),
    })?;
    crate::home::write_atomic(&path(home), &text).map_err(RecordError::Write)
}

/// Adds `categories` to the record of `session` (made if new), expiring at `expires`
/// but never later than [`MAX_RELEASE_SECS`] from `now`. A rotation, once owed, stays
/// owed: `rotate` only ever turns on.
#[allow(clippy::too_many_arguments)]
pub fn add(
    home: &Home,
    session: &str,
    public_key: &str,
    proof: &str,
    categories: &[String],
    now: u64,
    expires: u64,
    rotate: bool,
) -> Result<(), RecordError> {
    let mut list = load(home)?;
    let expires = expires.min(now.saturating_add(MAX_RELEASE_SECS));
    match list.iter_mut().find(|r| r.session == session) {
        Some(r) => {
            for c in categories {
                if !r.categories.contains(c) {
                    r.categories.push(c.clone());
                }
            }
            r.expires = r.expires.max(expires);
            r.rotate |= rotate;
        }
        None => list.push(WebRelease {
            session: session.to_string(),
            public_key: public_key.to_string(),
            proof: proof.to_string(),
            categories: categories.to_vec(),
            expires,
            rotate,
        }),
    }
    save(home, &list)
}

/// Sets the expiry of `session`'s record (after the server answered a release: the
/// provisional hour written before it becomes the server's time, or the later expiry of
/// an earlier release of the same session).
pub fn set_expires(home: &Home, session: &str, expires: u64) -> Result<(), RecordError> {
    let mut list = load(home)?;
    if let Some(r) = list.iter_mut().find(|r| r.session == session) {
        r.expires = expires;
    }
    save(home, &list)
}

/// The expiry recorded for `session` (0: none).
pub fn expires_of(home: &Home, session: &str) -> Result<u64, RecordError> {
    Ok(load(home)?
        .iter()
        .find(|r| r.session == session)
        .map_or(0, |r| r.expires))
}

/// The releases that are over at `now`: expired, or their session is not among `live`
/// (when the server's list of live sessions is known).
pub fn over(list: &[WebRelease], now: u64, live: Option<&[String]>) -> Vec<WebRelease> {
    list.iter()
        .filter(|r| now >= r.expires || live.is_some_and(|l| !l.contains(&r.session)))
        .cloned()
        .collect()
}

/// The categories to rotate for the releases `over` (those that asked for it), in order,
/// without repeats.
pub fn owed(over: &[WebRelease]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in over.iter().filter(|r| r.rotate) {
        for c in &r.categories {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

/// Drops the releases of `sessions` from the record (their rotations are done).
pub fn forget(home: &Home, sessions: &[String]) -> Result<(), RecordError> {
    let list: Vec<WebRelease> = load(home)?
        .into_iter()
        .filter(|r| !sessions.contains(&r.session))
        .collect();
    if list.is_empty() {
        let path = path(home);
        return match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(RecordError::Read { path, source })
            }
            _ => Ok(()),
        };
    }
    save(home, &list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_owed_once_over_and_capped_at_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        std::fs::create_dir_all(home.device_dir()).unwrap();
        let cats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The server claims a day: the device counts an hour.
        add(
            &home,
            "s1",
            "aa",
            "pp",
            &cats(&["Photos"]),
            1000,
            1000 + 86400,
            true,
        )
        .unwrap();
        add(
            &home,
            "s1",
            "aa",
            "pp",
            &cats(&["Notes", "Photos"]),
            1010,
            1500,
            true,
        )
        .unwrap();
        add(
            &home,
            "s2",
            "bb",
            "pp",
            &cats(&["Drive"]),
            1000,
            1200,
            false,
        )
        .unwrap();
        let list = load(&home).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].categories, cats(&["Photos", "Notes"]));
        assert_eq!(list[0].expires, 1000 + MAX_RELEASE_SECS);
        assert!(over(&list, 1100, None).is_empty());
        // s2 is over at its expiry, but asked for no rotation.
        let o = over(&list, 1200, None);
        assert_eq!(o.len(), 1);
        assert!(owed(&o).is_empty());
        // s1 ends early when the server no longer lists it.
        let o = over(&list, 1100, Some(&["s2".to_string()]));
        assert_eq!(owed(&o), cats(&["Photos", "Notes"]));
        assert_eq!(owed(&over(&list, 5000, None)), cats(&["Photos", "Notes"]));
        set_expires(&home, "s1", 1300).unwrap();
        assert_eq!(expires_of(&home, "s1").unwrap(), 1300);
        assert_eq!(expires_of(&home, "s9").unwrap(), 0);
        assert_eq!(
            owed(&over(&load(&home).unwrap(), 1300, None)),
            cats(&["Photos", "Notes"])
        );
        forget(&home, &["s1".to_string()]).unwrap();
        assert_eq!(load(&home).unwrap().len(), 1);
        forget(&home, &["s2".to_string()]).unwrap();
        assert!(!path(&home).exists());
        std::fs::write(path(&home), b"{not json").unwrap();
        assert!(matches!(load(&home), Err(RecordError::Malformed { .. })));
    }
}
