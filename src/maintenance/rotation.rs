//! Key rotations of categories, as the commands run them: through the daemon when the
//! drive is mounted (it is the only writer of heads), else here under the daemon lock;
//! and the record of the rotations a command still owes (`DEVICE/pending-rotations`), so
//! running the command again after a crash finishes them instead of forgetting them.

use crate::account::{RotateError, RotateOptions, Unlocked};
use crate::cache::ChunkCache;
use crate::daemon::{DaemonError, control};
use crate::format::table::Class;
use crate::home::Home;
use crate::volume::{Category, HeadWitness, VolumeOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// One category to rotate, optionally into another protection class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub category: String,
    pub class: Option<Class>,
}

impl Job {
    /// A rotation that keeps the category's class (the only kind the record holds).
    pub fn keep_class(category: &str) -> Job {
        Job {
            category: category.to_string(),
            class: None,
        }
    }
}

/// What goes wrong with the record of owed rotations.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is damaged (line {line}: {why}); fix or remove it (it lists the categories whose \
         rotation is still owed, one name per line)",
        path.display()
    )]
    Malformed {
        path: PathBuf,
        line: usize,
        why: &'static str,
    },
    #[error(transparent)]
    Write(crate::home::HomeError),
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Rotations a command still owes (one category name per line).
pub fn pending_path(home: &Home) -> PathBuf {
    home.device_dir().join("pending-rotations")
}

pub fn save_pending(home: &Home, jobs: &[Job]) -> Result<(), JobsError> {
    let text: String = jobs.iter().map(|j| format!("{}\n", j.category)).collect();
    crate::home::write_atomic(&pending_path(home), text.as_bytes()).map_err(JobsError::Write)
}

/// The rotations owed; none when there is no record.
pub fn load_pending(home: &Home) -> Result<Vec<Job>, JobsError> {
    let path = pending_path(home);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JobsError::Read { path, source }),
    };
    let malformed = |line, why| JobsError::Malformed {
        path: path.clone(),
        line,
        why,
    };
    let text = String::from_utf8(bytes).map_err(|_| malformed(0, "not UTF-8 text"))?;
    let mut jobs = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.is_empty() {
            continue;
        }
        if l.trim() != l || l.chars().any(char::is_control) {
            return Err(malformed(i + 1, "not a category name"));
        }
        jobs.push(Job::keep_class(l));
    }
    Ok(jobs)
}

/// Whether `category` is among the rotations owed.
pub fn is_pending(home: &Home, category: &str) -> Result<bool, JobsError> {
    Ok(load_pending(home)?.iter().any(|j| j.category == category))
}

/// Adds `category` to the rotations owed, keeping the others.
pub fn add_pending(home: &Home, category: &str) -> Result<(), JobsError> {
    let mut jobs = load_pending(home)?;
    if !jobs.iter().any(|j| j.category == category) {
        jobs.push(Job::keep_class(category));
    }
    save_pending(home, &jobs)
}

/// Takes `category` off the rotations owed (the record goes when none is left).
pub fn remove_pending(home: &Home, category: &str) -> Result<(), JobsError> {
    let jobs: Vec<Job> = load_pending(home)?
        .into_iter()
        .filter(|j| j.category != category)
        .collect();
    if jobs.is_empty() {
        return forget_pending(home);
    }
    save_pending(home, &jobs)
}

fn forget_pending(home: &Home) -> Result<(), JobsError> {
    let path = pending_path(home);
    match std::fs::remove_file(&path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(JobsError::Remove { path, source })
        }
        _ => Ok(()),
    }
}

/// What goes wrong running rotations.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("no Cirrus account in {} (run `{}`, or pass --home)", home.display(), crate::hint::cmd_hint("init"))]
    NoAccount { home: PathBuf },
    #[error(transparent)]
    Daemon(DaemonError),
    /// Unlocking the account here (the caller's message).
    #[error("{0}")]
    Unlock(String),
    /// The mounted daemon's answer.
    #[error("{0}")]
    Online(String),
    #[error(
        "unknown category {category:?} (see `{}`)",
        crate::hint::cmd_hint("category list")
    )]
    UnknownCategory { category: String },
    #[error("category {category}: {reason}")]
    Locked { category: String, reason: String },
    #[error("{0}")]
    Rotate(RotateError),
    #[error(transparent)]
    Record(JobsError),
    /// Some categories could not be rotated here; `done` holds the lines of the others.
    #[error(
        "{} categories could not be re-encrypted here (run the command again on a device \
         that can read them): {}",
        failed.len(),
        failed.join("; ")
    )]
    SomeFailed {
        done: Vec<String>,
        failed: Vec<String>,
    },
}

/// How a rotation's progress is shown: `start` before each category, `update` with the
/// bytes done of the total, `finish` after it.
pub trait RotationDisplay {
    fn start(&mut self, category: &str);
    fn update(&mut self, done: u64, total: u64);
    fn finish(&mut self);
}

/// An account already unlocked by the caller, with the daemon lock it holds.
pub type Held = (Unlocked, std::fs::File);

/// [`rotate_many`] that records what is left in [`pending_path`] as it goes.
pub fn rotate_owed(
    home: &Home,
    unlock: &dyn Fn() -> Result<Unlocked, String>,
    jobs: Vec<Job>,
    mut acct: Option<Held>,
    display: &mut dyn RotationDisplay,
) -> Result<Vec<String>, RotationError> {
    save_pending(home, &jobs).map_err(RotationError::Record)?;
    let mut out = Vec::new();
    let mut failed: Vec<Job> = Vec::new();
    let mut why = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let one = [job.clone()];
        // One category that cannot be rotated here (locked on this device, say) must not
        // leave the others unrotated: note it, go on, and keep it owed.
        let res = match acct.take() {
            Some((mut a, lock)) => {
                let r = offline(&mut a, &one, crate::account::DEFAULT_BATCH, display);
                acct = Some((a, lock));
                r
            }
            None => rotate_many(
                home,
                unlock,
                &one,
                crate::account::DEFAULT_BATCH,
                None,
                display,
            ),
        };
        match res {
            Ok(lines) => out.extend(lines),
            Err(e) => {
                why.push(format!("{}: {e}", job.category));
                failed.push(job.clone());
            }
        }
        let left: Vec<Job> = failed.iter().chain(&jobs[i + 1..]).cloned().collect();
        save_pending(home, &left).map_err(RotationError::Record)?;
    }
    if !why.is_empty() {
        return Err(RotationError::SomeFailed {
            done: out,
            failed: why,
        });
    }
    let _ = std::fs::remove_file(pending_path(home));
    Ok(out)
}

/// Rotates each category in turn: through the daemon when the drive is mounted (it is
/// the only writer of heads), else here. `acct`: an account already unlocked by the
/// caller (offline only; it must hold the daemon lock); otherwise `unlock` opens it when
/// needed. Returns one line per category.
pub fn rotate_many(
    home: &Home,
    unlock: &dyn Fn() -> Result<Unlocked, String>,
    jobs: &[Job],
    batch: u64,
    acct: Option<Held>,
    display: &mut dyn RotationDisplay,
) -> Result<Vec<String>, RotationError> {
    if !home.exists() {
        return Err(RotationError::NoAccount {
            home: home.root.clone(),
        });
    }
    if let Some((mut acct, _lock)) = acct {
        return offline(&mut acct, jobs, batch, display);
    }
    match crate::daemon::lock_home(home) {
        // Not mounted: nobody else can write heads while we hold the lock.
        Ok(_lock) => {
            let mut acct = unlock().map_err(RotationError::Unlock)?;
            offline(&mut acct, jobs, batch, display)
        }
        Err(_) if control::socket_exists(home) => jobs
            .iter()
            .map(|j| online(home, j, batch, display))
            .collect(),
        Err(e) => Err(RotationError::Daemon(e)),
    }
}

fn online(
    home: &Home,
    job: &Job,
    batch: u64,
    display: &mut dyn RotationDisplay,
) -> Result<String, RotationError> {
    let req = control::Request {
        op: "rotate".into(),
        category: Some(job.category.clone()),
        batch_bytes: Some(batch),
        class: job.class.map(|c| c.name().to_string()),
        ..Default::default()
    };
    display.start(&job.category);
    let res = control::request(home, &req, &mut |d, t| display.update(d, t));
    display.finish();
    res.map_err(RotationError::Online)
}

/// Category `name`, opened here over the store (the daemon lock held).
fn open_here(acct: &Unlocked, name: &str) -> Result<Arc<Category>, RotationError> {
    let setup = acct
        .category_setups()
        .into_iter()
        .find(|(e, _)| e.name == name)
        .ok_or_else(|| RotationError::UnknownCategory {
            category: name.to_string(),
        })?
        .1
        .map_err(|reason| RotationError::Locked {
            category: name.to_string(),
            reason,
        })?;
    // SAFETY: getuid/getgid have no preconditions.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let witness: Arc<dyn HeadWitness> = acct.seen.clone();
    Ok(Category::open(
        setup,
        acct.store.clone(),
        Arc::new(ChunkCache::new(8 << 20)),
        witness,
        VolumeOptions {
            dirty_limit: 32 << 20,
            owner,
            ..VolumeOptions::offline(acct.head_signer(), acct.device_slot())
        },
    ))
}

/// Takes in the changes made on the web of every category this device can open that
/// takes them (standard and transit), here, under the daemon lock: before `adp on`
/// turns them end-to-end, whose inboxes no device reads. One that cannot be taken in is
/// logged, and `adp on` goes on (as on a mounted drive).
pub fn take_in_web_changes_here(acct: &Unlocked) -> Result<usize, RotationError> {
    let mut taken = 0;
    for (entry, setup) in acct.category_setups() {
        if entry.class == crate::format::table::Class::E2e || setup.is_err() {
            continue;
        }
        let cat = open_here(acct, &entry.name)?;
        match crate::sync::take_in_web_changes_now(&cat, &*acct.store) {
            Ok(n) => taken += n,
            Err(why) => log::warn!("adp on: {why}"),
        }
    }
    Ok(taken)
}

fn offline(
    acct: &mut Unlocked,
    jobs: &[Job],
    batch: u64,
    display: &mut dyn RotationDisplay,
) -> Result<Vec<String>, RotationError> {
    let mut out = Vec::new();
    for job in jobs {
        let cat = open_here(acct, &job.category)?;
        // What the web changed waits sealed under the key this rotation replaces. One
        // that cannot be taken in (a part missing from the store) must not hold a
        // rotation back, which may be the re-key after a device's removal: it is said,
        // as on a mounted drive, and the rotation goes on.
        if let Err(why) = crate::sync::take_in_web_changes_now(&cat, &*acct.store) {
            log::warn!("rotation of {}: {why}", job.category);
        }
        let opts = RotateOptions {
            batch_bytes: batch,
            stop: None,
            class: job.class,
        };
        display.start(&job.category);
        let res = acct.rotate_category(&job.category, &cat, &opts, &mut |r| {
            display.update(r.done, r.total)
        });
        display.finish();
        let report = res.map_err(RotationError::Rotate)?;
        out.push(crate::daemon::describe_rotation(&job.category, &report));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let d = tempfile::tempdir().unwrap();
        let home = Home::new(d.path().to_path_buf());
        std::fs::create_dir_all(home.device_dir()).unwrap();
        (d, home)
    }

    #[test]
    fn the_owed_rotations_round_trip() {
        let (_d, home) = home();
        assert_eq!(
            load_pending(&home).unwrap(),
            vec![],
            "no record: nothing owed"
        );
        let jobs = vec![Job::keep_class("Photos"), Job::keep_class("Messages")];
        save_pending(&home, &jobs).unwrap();
        assert_eq!(load_pending(&home).unwrap(), jobs);
        assert!(is_pending(&home, "Photos").unwrap());
        add_pending(&home, "Photos").unwrap();
        add_pending(&home, "Notes").unwrap();
        let names: Vec<String> = load_pending(&home)
            .unwrap()
            .into_iter()
            .map(|j| j.category)
            .collect();
        assert_eq!(names, ["Photos", "Messages", "Notes"]);
        for n in names {
            remove_pending(&home, &n).unwrap();
        }
        assert!(
            !pending_path(&home).exists(),
            "the record goes with the last one"
        );
        assert!(!is_pending(&home, "Photos").unwrap());
        // Removing from no record is not an error.
        remove_pending(&home, "Photos").unwrap();
    }

    #[test]
    fn a_malformed_record_is_a_clear_error() {
        let (_d, home) = home();
        std::fs::write(pending_path(&home), b"Photos\n\xff\xfe\n").unwrap();
        let e = load_pending(&home).unwrap_err();
        assert!(matches!(e, JobsError::Malformed { .. }), "{e}");
        assert!(
            e.to_string().contains("pending-rotations is damaged"),
            "{e}"
        );
        std::fs::write(pending_path(&home), "Photos\n Messages\n").unwrap();
        let e = load_pending(&home).unwrap_err();
        assert!(matches!(e, JobsError::Malformed { line: 2, .. }), "{e}");
        // Nothing is added to a damaged record: the error comes back instead.
        assert!(add_pending(&home, "Notes").is_err());
        assert!(is_pending(&home, "Photos").is_err());
    }
}
