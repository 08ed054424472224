//! The record of heads seen: the highest head counter (and hash) this device has read or
//! written per category, sealed in the home, so a store serving an older head is caught
//! across restarts. Commits record theirs behind them (`record_head_soon`), so an fsync
//! does not wait for this file's two flushes as well as the store's.

use super::{HomeError, io, write_atomic};
use crate::crypto::{self, SecretKey, Suite};
use crate::format::seen::SeenRecord as Seen;
use crate::format::{Context, ObjKind};
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::write_behind::WriteBehind;

/// How long the writer gathers commits' records into one write. A crash loses at most
/// this much (plus the write): the record then lags the store, which only means the
/// rollback check after the restart does not cover those last heads.
const GATHER: Duration = Duration::from_millis(50);

/// Why the record of heads seen cannot answer or be saved. Never read as "nothing seen":
/// the record guards the rollback checks, so it fails closed (ARCHITECTURE.md, "Poisoned
/// locks").
#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    /// A thread panicked while holding the record: what it holds may be half updated.
    #[error("the record of heads seen is unusable after an internal error")]
    Poisoned,
    /// Sealing or writing the record failed.
    #[error("{0}")]
    Save(String),
}

/// Highest heads seen, sealed under a key derived from the account key and persisted in
/// the home, so rollback is detected across restarts.
pub struct SeenHeads {
    file: Arc<SeenFile>,
    state: Arc<Mutex<Seen>>,
    /// Started by the first [`SeenHeads::record_head_soon`] once allowed; `None` if it
    /// could not be (those records are then written at once).
    behind: OnceLock<Option<WriteBehind>>,
    /// Set by [`SeenHeads::allow_write_behind`]: until then every record is saved before
    /// the call returns.
    behind_allowed: AtomicBool,
}

/// Where the record lives and the key it is sealed under.
struct SeenFile {
    path: PathBuf,
    key: SecretKey,
}

impl SeenHeads {
    /// Loads the record. `expect_existing`: the account is not new, so a missing file is
    /// worth a warning.
    /// Loads the record. `expect_existing`: the account is not new, so a missing file is
    /// worth a warning. `legacy`: the key older homes sealed it with; a record sealed
    /// under it is read and re-sealed under `key`.
    pub fn load(
        path: PathBuf,
        key: SecretKey,
        legacy: Option<SecretKey>,
        expect_existing: bool,
    ) -> Result<Self, HomeError> {
        let mut this = SeenHeads::empty(path.clone(), key);
        match fs::read(&path) {
            Ok(bytes) => {
                let seen = match this.file.open_file(&bytes) {
                    Ok(s) => s,
                    Err(why) => {
                        let Some(old) = legacy else {
                            return Err(HomeError::Damaged { path, why });
                        };
                        let probe = SeenFile {
                            path: path.clone(),
                            key: old,
                        };
                        let mut s = probe
                            .open_file(&bytes)
                            .map_err(|why| HomeError::Damaged { path, why })?;
                        // Re-seal under the new key; the merge in save() must not try
                        // (and fail) to read the old file, so remove it first.
                        let _ = fs::remove_file(&this.file.path);
                        this.file.save(&mut s).map_err(|why| HomeError::Damaged {
                            path: this.file.path.clone(),
                            why,
                        })?;
                        s
                    }
                };
                this.state = Arc::new(Mutex::new(seen));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Normal for a new account; for an old one it means rollback detection
                // restarts from whatever the store serves now.
                if expect_existing {
                    log::warn!(
                        "{} is missing: this device no longer remembers which heads it has \
                         seen, so a rollback of the store right now would go unnoticed",
                        path.display()
                    );
                }
            }
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(this)
    }

    fn empty(path: PathBuf, key: SecretKey) -> Self {
        SeenHeads {
            file: Arc::new(SeenFile { path, key }),
            state: Arc::default(),
            behind: OnceLock::new(),
            behind_allowed: AtomicBool::new(false),
        }
    }

    fn decode(b: &[u8]) -> Result<Seen, String> {
        Seen::decode(b).map_err(|e| e.to_string())
    }

    /// The plaintext of a seen-heads record decoded and encoded again. Public, hidden, for
    /// tests/fuzz_decoders.rs, which cannot name the record type.
    #[doc(hidden)]
    pub fn reencode(plain: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Self::decode(plain)?.encode())
    }

    /// Writes the current record sealed under another key to `path` (a passcode change
    /// stages it there before moving it into place).
    pub fn write_copy(&self, path: &Path, key: SecretKey) -> Result<(), String> {
        let s = self.lock().map_err(|e| e.to_string())?.clone();
        let other = SeenFile {
            path: path.to_path_buf(),
            key,
        };
        let mut s = s;
        let _ = fs::remove_file(path);
        other.save(&mut s)
    }

    /// Counter of the newest category table or manifest seen.
    pub fn table_seen(&self) -> Result<u64, SeenError> {
        Ok(self.lock()?.table)
    }

    /// The record, or [`SeenError::Poisoned`]: a panic while it was held may have left it
    /// half updated, and an answer from it could let a rollback through.
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Seen>, SeenError> {
        self.state.lock().map_err(|_| SeenError::Poisoned)
    }

    /// Takes in what another process of this device (the CLI next to a mounted daemon)
    /// recorded meanwhile: counters only go up.
    pub fn refresh(&self) {
        let Ok(bytes) = fs::read(&self.file.path) else {
            return;
        };
        let Ok(disk) = self.file.open_file(&bytes) else {
            return;
        };
        if let Ok(mut s) = self.state.lock() {
            take_higher(&mut s, disk);
        }
    }

    /// Counter and body hash of the newest manifest seen (hash zero: none yet).
    pub fn manifest_seen(&self) -> Result<(u64, [u8; 32]), SeenError> {
        let s = self.lock()?;
        Ok((s.table, s.manifest))
    }

    pub fn record_manifest(&self, counter: u64, hash: [u8; 32]) -> Result<(), String> {
        let mut s = self.lock().map_err(|e| e.to_string())?;
        if counter > s.table || (counter == s.table && s.manifest == [0; 32]) {
            s.table = counter;
            s.manifest = hash;
            let mut snapshot = s.clone();
            self.file.save(&mut snapshot)?;
            *s = snapshot;
        }
        Ok(())
    }

    pub fn record_table(&self, counter: u64) -> Result<(), String> {
        let mut s = self.lock().map_err(|e| e.to_string())?;
        if counter > s.table {
            s.table = counter;
            let mut snapshot = s.clone();
            self.file.save(&mut snapshot)?;
            *s = snapshot;
        }
        Ok(())
    }
}

impl SeenHeads {
    /// Panics while holding the record's lock, poisoning it, for tests of the layers
    /// above that must fail closed.
    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        let _held = self.state.lock();
        panic!("poisoning the record of heads seen on purpose");
    }

    /// Highest (counter, head hash) recorded under `id` (a category, or a category with
    /// the volume's remote flag, or an acknowledgement slot).
    pub fn head(&self, id: u32) -> Result<Option<(u64, [u8; 32])>, SeenError> {
        Ok(self.lock()?.heads.get(&id).copied())
    }

    /// Records `counter` under `id` if it is higher than what is there, durably.
    pub fn record_head(&self, id: u32, counter: u64, hash: [u8; 32]) -> Result<(), SeenError> {
        let mut s = self.lock()?;
        let cur = s.heads.get(&id).copied();
        if cur.is_none_or(|(n, _)| counter > n) {
            s.heads.insert(id, (counter, hash));
            let mut snapshot = s.clone();
            self.file.save(&mut snapshot).map_err(SeenError::Save)?;
            *s = snapshot;
        }
        Ok(())
    }

    /// Records `counter` under `id` if it is higher than what is there: at once in memory
    /// (every check of this process sees it), on disk about [`GATHER`] later (a thread
    /// writes it, or [`SeenHeads::flush`], or the drop) when write-behind is allowed, else
    /// before returning. For a head this device has just made
    /// durable in the store: the file must never be ahead of the store, and behind it
    /// only after a crash.
    pub fn record_head_soon(&self, id: u32, counter: u64, hash: [u8; 32]) -> Result<(), SeenError> {
        {
            let mut s = self.lock()?;
            if s.heads.get(&id).is_some_and(|(n, _)| counter <= *n) {
                return Ok(());
            }
            s.heads.insert(id, (counter, hash));
        }
        match self.writer() {
            Some(w) => {
                w.note();
                Ok(())
            }
            None => {
                let mut snapshot = self.lock()?.clone();
                self.file.save(&mut snapshot).map_err(SeenError::Save)
            }
        }
    }

    /// Lets [`SeenHeads::record_head_soon`] leave its saves to a writer thread. For the
    /// mount daemon, once it runs (after the fork: a thread started before it would not
    /// exist in the daemon, and a save it was making would leave the daemon holding the
    /// record's lock); its shutdown flushes. Other processes save at once.
    pub fn allow_write_behind(&self) {
        self.behind_allowed.store(true, Ordering::Relaxed);
    }

    /// Makes every record on its way durable before returning.
    pub fn flush(&self) -> Result<(), SeenError> {
        match self.behind.get() {
            Some(Some(w)) => w.flush().map_err(SeenError::Save),
            _ => Ok(()),
        }
    }

    /// The writer thread, started on first use once allowed.
    fn writer(&self) -> Option<&WriteBehind> {
        if !self.behind_allowed.load(Ordering::Relaxed) {
            return None;
        }
        self.behind
            .get_or_init(|| {
                let (file, state) = (self.file.clone(), self.state.clone());
                let save = move || {
                    let mut snapshot = state
                        .lock()
                        .map_err(|_| "the record is unusable after an internal error".to_string())?
                        .clone();
                    file.save(&mut snapshot)
                };
                WriteBehind::start("the record of heads seen", GATHER, save)
                    .map_err(|e| {
                        log::warn!(
                            "cannot start the writer of the record of heads seen ({e}); \
                             commits write it themselves"
                        )
                    })
                    .ok()
            })
            .as_ref()
    }
}

impl SeenFile {
    fn open_file(&self, bytes: &[u8]) -> Result<Seen, String> {
        let ctx = Context::new(ObjKind::DeviceState, 0, 0, 0);
        let plain = crypto::open(&self.key, Suite::XtsBlake3, &ctx.to_bytes(), bytes)
            .map_err(|e| e.to_string())?;
        SeenHeads::decode(&plain)
    }

    /// Writes the record, first merging what another process of this device (a mounted
    /// daemon next to `cirrus status`, say) wrote meanwhile: counters only ever go up.
    fn save(&self, s: &mut Seen) -> Result<(), String> {
        let lock_path = self.path.with_extension("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        // Released when `lock` is dropped. Without it the merge below could lose what
        // another process writes meanwhile, so a failure to lock is an error.
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let disk = match fs::read(&self.path) {
            Ok(bytes) => match self.open_file(&bytes) {
                Ok(d) => Some(d),
                // Sealed under another key (a passcode change by another process): never
                // overwrite what this process cannot read.
                Err(e) => {
                    return Err(format!(
                        "{} is sealed under another key ({e}); not overwriting it",
                        self.path.display()
                    ));
                }
            },
            Err(_) => None,
        };
        if let Some(disk) = disk {
            take_higher(s, disk);
        }
        let ctx = Context::new(ObjKind::DeviceState, 0, 0, 0);
        let sealed = crypto::seal(&self.key, Suite::XtsBlake3, &ctx.to_bytes(), &s.encode())
            .map_err(|e| e.to_string())?;
        write_atomic(&self.path, &sealed).map_err(|e| e.to_string())
    }
}

/// Merges a record another process wrote into `s`: counters only go up.
fn take_higher(s: &mut Seen, disk: Seen) {
    if disk.table > s.table {
        s.table = disk.table;
        s.manifest = disk.manifest;
    }
    for (c, (n, h)) in disk.heads {
        if s.heads.get(&c).is_none_or(|(m, _)| n > *m) {
            s.heads.insert(c, (n, h));
        }
    }
}

#[cfg(test)]
#[path = "seen_tests.rs"]
mod tests;
