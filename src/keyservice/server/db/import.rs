//! The first start on a DATA directory written before the database (one JSON file per
//! account, escrow record and invitation, one file per record): everything is copied
//! into the database in one transaction, then the files move to DATA/json-backup/ and
//! stay there. Idempotent: a marker in the database says the copy is done, and a start
//! interrupted after the copy only finishes moving the files.

use super::{Database, META_JSON_IMPORTED, Tx};
use crate::keyservice::server::master::MasterKey;
use crate::keyservice::server::state::{ACCOUNT_FORMAT, Account, Escrow, Invite, StateError};
use std::fs;
use std::path::{Path, PathBuf};

/// The subdirectories of a JSON DATA directory that the import copies.
const DIRS: [&str; 4] = ["accounts", "records", "escrow", "invites"];
/// Where they go once copied.
pub(crate) const BACKUP_DIR: &str = "json-backup";

/// What an import copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Imported {
    pub accounts: usize,
    pub records: usize,
    pub escrows: usize,
    pub invites: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn damaged(path: &Path, why: impl ToString) -> StateError {
    StateError::Damaged {
        what: path.display().to_string(),
        why: why.to_string(),
    }
}

/// The name a file stands for: its stem is the hex of the name. Temporary files of an
/// interrupted write (`.name.tmp...`) are not hex and yield `None`.
fn hex_name(path: &Path, suffix: &str) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(suffix)?;
    String::from_utf8(hex::decode(stem).ok()?).ok()
}

/// The entries of `dir`, sorted (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let list = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for e in list {
        out.push(e.map_err(io(dir))?.path());
    }
    out.sort();
    Ok(out)
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StateError> {
    let bytes = fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| damaged(path, e))
}

/// Copies a JSON DATA directory at `data` into `db` if there is one and it was not
/// copied yet; `None` when there was nothing to do.
pub(crate) fn import_json_dir(
    data: &Path,
    db: &dyn Database,
    master: &MasterKey,
) -> Result<Option<Imported>, StateError> {
    if !DIRS.iter().any(|d| data.join(d).is_dir()) {
        return Ok(None);
    }
    let mut tx = db.begin(None)?;
    if tx.meta(META_JSON_IMPORTED)?.is_some() {
        drop(tx);
        log::info!("the JSON files of {} were imported already", data.display());
        move_to_backup(data)?;
        return Ok(None);
    }
    let done = copy_all(data, &mut tx, master)?;
    tx.meta_insert(
        META_JSON_IMPORTED,
        &format!(
            "{} accounts, {} records, {} escrow records, {} invitations",
            done.accounts, done.records, done.escrows, done.invites
        ),
    )?;
    tx.commit()?;
    log::warn!(
        "imported {} accounts, {} records, {} escrow records and {} invitations from the \
         JSON files of {} into the database",
        done.accounts,
        done.records,
        done.escrows,
        done.invites,
        data.display()
    );
    move_to_backup(data)?;
    Ok(Some(done))
}

fn copy_all(data: &Path, tx: &mut Tx<'_>, master: &MasterKey) -> Result<Imported, StateError> {
    let mut done = Imported::default();
    for path in entries(&data.join("accounts"))? {
        let Some(name) = hex_name(&path, ".json") else {
            continue;
        };
        let a: Account = json(&path)?;
        if a.format != ACCOUNT_FORMAT || a.name != name {
            return Err(damaged(
                &path,
                format!("format {} / name {:?} unexpected", a.format, a.name),
            ));
        }
        // Sealed under another master key, the copy would open nothing: refuse it now.
        let current = a.service.keys.get(&a.service.current);
        let field = format!("service-key/{}", a.service.current);
        if let Some(sealed) = current
            && master.unseal(&a.name, &field, sealed).is_err()
        {
            return Err(StateError::WrongMasterKey {
                path: master.path().to_path_buf(),
            });
        }
        tx.put_account(&a)?;
        done.accounts += 1;
    }
    for dir in entries(&data.join("records"))? {
        let Some(account) = hex_name(&dir, "") else {
            continue;
        };
        for path in entries(&dir)? {
            let Some(name) = hex_name(&path, "") else {
                continue;
            };
            let sealed = fs::read(&path).map_err(io(&path))?;
            tx.put_record(&account, &name, &sealed)?;
            done.records += 1;
        }
    }
    for path in entries(&data.join("escrow"))? {
        if let Some(account) = hex_name(&path, ".json") {
            tx.put_escrow(&account, &json::<Escrow>(&path)?)?;
            done.escrows += 1;
        }
    }
    for path in entries(&data.join("invites"))? {
        if let Some(account) = hex_name(&path, ".json") {
            tx.put_invite(&account, &json::<Invite>(&path)?)?;
            done.invites += 1;
        }
    }
    Ok(done)
}

/// Moves the imported directories into DATA/json-backup/ (kept, never read again).
fn move_to_backup(data: &Path) -> Result<(), StateError> {
    let backup = data.join(BACKUP_DIR);
    for d in DIRS {
        let from = data.join(d);
        if !from.is_dir() {
            continue;
        }
        fs::create_dir_all(&backup).map_err(io(&backup))?;
        let to = backup.join(d);
        if to.exists() {
            // A second JSON tree after an import: keep both, never overwrite.
            let stamp = super::now_ms();
            fs::rename(&from, backup.join(format!("{d}.{stamp}"))).map_err(io(&from))?;
        } else {
            fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    crate::fsutil::sync_dir(data);
    log::info!(
        "the JSON files are kept as a backup in {}",
        backup.display()
    );
    Ok(())
}
