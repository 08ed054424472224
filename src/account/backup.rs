//! Backup and Messages, as in iCloud: while Backup is on and under standard protection,
//! the Messages key is also kept wrapped under the Backup key, so the data recovery
//! service (which can open Backup) can restore Messages. Turning Backup off deletes that
//! copy and gives Messages a new key that the key service never sees.

use super::*;

/// Manifest flag: Backup is on (the Messages key has a copy under the Backup key).
pub const FLAG_BACKUP: u8 = 8;

pub const MESSAGES: &str = "Messages";
pub const BACKUP: &str = "Backup";

/// Backup as `cirrus backup status` shows it.
pub struct BackupState {
    pub on: bool,
    pub messages_key_version: u32,
    /// The Backup category's class: with `e2e` (Advanced Data Protection) the copy is out
    /// of the data recovery service's reach.
    pub backup_class: Class,
    /// The copy of the current Messages key under the current Backup key is in the store.
    pub copy_current: bool,
}

/// Name of the copy of Messages key `version` wrapped under the Backup key.
pub fn backup_copy_name(messages: u32, version: u32) -> String {
    format!("keys/{messages:08x}/{version:08x}.in-backup")
}

fn copy_ctx(messages: u32, version: u32, backup: u32) -> Context {
    // The inode field binds the copy to the Backup category it is wrapped under.
    Context::new(
        ObjKind::CategoryKey,
        messages,
        backup as u64,
        version as u64,
    )
}

impl Unlocked {
    fn entry(&self, name: &str) -> Result<CategoryEntry, AccountError> {
        self.table()
            .find(name)
            .cloned()
            .ok_or_else(|| AccountError::UnknownCategory(name.to_string()))
    }

    pub fn backup_on(&self) -> bool {
        self.manifest.has(FLAG_BACKUP)
    }

    /// What `cirrus backup status` shows; needs no key.
    pub fn backup_state(&self) -> Result<BackupState, AccountError> {
        let messages = self.entry(MESSAGES)?;
        let backup = self.entry(BACKUP)?;
        Ok(BackupState {
            on: self.backup_on(),
            messages_key_version: messages.key_version,
            backup_class: backup.class,
            copy_current: self.copy_is_current(&messages, &backup)?,
        })
    }

    /// Whether the copy of the current Messages key under the current Backup key is in
    /// the store (by its name and the Backup key version it names; it is opened only when
    /// used).
    fn copy_is_current(
        &self,
        messages: &CategoryEntry,
        backup: &CategoryEntry,
    ) -> Result<bool, AccountError> {
        match self
            .store
            .get(&backup_copy_name(messages.id, messages.key_version))
        {
            Ok(obj) => Ok(obj.get(..4) == Some(&backup.key_version.to_le_bytes()[..])),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The copies of Messages keys kept under Backup, whatever their versions.
    fn backup_copies(&self, messages: &CategoryEntry) -> Result<Vec<String>, AccountError> {
        Ok(self
            .store
            .list(&format!("keys/{:08x}/", messages.id))?
            .into_iter()
            .filter(|n| n.ends_with(".in-backup"))
            .collect())
    }

    /// Whether `backup off` has anything to undo: Backup on, or a copy left behind.
    pub fn backup_to_turn_off(&self) -> Result<bool, AccountError> {
        let messages = self.entry(MESSAGES)?;
        Ok(self.backup_on() || !self.backup_copies(&messages)?.is_empty())
    }

    /// Turns Backup on: the current Messages key is wrapped under the current Backup key
    /// (`backup_version u32 | sealed`). Again after a rotation of either, to refresh it.
    /// Returns false when Backup was on with a current copy already: nothing is written.
    pub fn enable_backup(&mut self) -> Result<bool, AccountError> {
        let messages = self.entry(MESSAGES)?;
        let backup = self.entry(BACKUP)?;
        if self.backup_on() && self.copy_is_current(&messages, &backup)? {
            return Ok(false);
        }
        let mk = self.category_key(&messages)?;
        let bk = self.category_key(&backup)?;
        let mut obj = backup.key_version.to_le_bytes().to_vec();
        obj.extend_from_slice(&keys::wrap(
            &bk,
            copy_ctx(messages.id, messages.key_version, backup.id),
            &mk,
        )?);
        self.store
            .put(&backup_copy_name(messages.id, messages.key_version), &obj)?;
        if !self.manifest.has(FLAG_BACKUP) {
            let mut next = self.manifest.clone();
            next.set(FLAG_BACKUP, true);
            self.publish_manifest(next)?;
        }
        Ok(true)
    }

    /// Turns Backup off: deletes every copy of the Messages key kept under Backup. The
    /// caller then rotates Messages, so its new key is never seen by the key service.
    pub fn disable_backup(&mut self) -> Result<(), AccountError> {
        let messages = self.entry(MESSAGES)?;
        if self.manifest.has(FLAG_BACKUP) {
            let mut next = self.manifest.clone();
            next.set(FLAG_BACKUP, false);
            self.publish_manifest(next)?;
        }
        for name in self.backup_copies(&messages)? {
            self.store.delete(&name)?;
        }
        Ok(())
    }

    /// For the data recovery service: the Messages key from its copy under Backup, if
    /// Backup was on and its key can be opened here.
    pub(crate) fn messages_key_from_backup(
        &self,
        messages: &CategoryEntry,
        backup_key: &SecretKey,
        backup: &CategoryEntry,
    ) -> Option<SecretKey> {
        let obj = self
            .store
            .get(&backup_copy_name(messages.id, messages.key_version))
            .ok()?;
        let (v, wrapped) = obj.split_at_checked(4)?;
        if u32::from_le_bytes(v.try_into().ok()?) != backup.key_version {
            return None;
        }
        let k = keys::unwrap(
            backup_key,
            copy_ctx(messages.id, messages.key_version, backup.id),
            wrapped,
            "Messages key in Backup",
        )
        .ok()?;
        (self.manifest.commitment(messages.id, messages.key_version) == Some(key_commitment(&k)))
            .then_some(k)
    }
}
