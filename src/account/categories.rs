//! The category keys of an unlocked account: adding and retiring categories, creating,
//! storing and unwrapping their keys (checked against the signed manifest's
//! commitments), and the setups a mount or gc opens categories with.

use super::*;

fn validate_category_name(name: &str) -> Result<(), AccountError> {
    let bad = |why| Err(AccountError::BadCategoryName(name.to_string(), why));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return bad("must not be . or .. or contain / or NUL");
    }
    // Names a person cannot tell apart from another one on screen.
    if name.chars().any(manifest::invisible) || name.trim() != name {
        return bad(
            "must not contain control or invisible characters, or start or end with a space",
        );
    }
    Ok(())
}

impl Unlocked {
    /// Creates a category's key (version 1) and its key object, and adds it to `next`.
    pub(super) fn add_entry(
        &mut self,
        next: &mut Manifest,
        name: &str,
        class: Class,
    ) -> Result<(), AccountError> {
        validate_category_name(name)?;
        if next.table.find(name).is_some() {
            return Err(AccountError::CategoryExists(name.to_string()));
        }
        let id = next.table.next_id;
        let key = crypto::random_key()?;
        self.store_category_key(id, 1, class, &key)?;
        next.set_commitment(id, 1, key_commitment(&key));
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, 1, key);
        next.table.next_id += 1;
        next.table.entries.push(CategoryEntry {
            id,
            name: name.to_string(),
            class,
            retired: false,
            key_version: 1,
        });
        Ok(())
    }

    /// Writes `keys/<id>/<version>`: class byte, then the key wrapped under the account
    /// key (e2e) or by the key service (standard, transit).
    pub(crate) fn store_category_key(
        &self,
        id: u32,
        version: u32,
        class: Class,
        key: &SecretKey,
    ) -> Result<(), AccountError> {
        let ctx = keys::category_key_context(id, version);
        let wrapped = match class {
            Class::E2e => keys::wrap(&self.account_key, ctx, key)?,
            Class::Standard | Class::Transit => self.service()?.wrap(ctx, key)?,
        };
        let mut obj = vec![class as u8];
        obj.extend_from_slice(&wrapped);
        self.store.put(&names::category_key(id, version), &obj)?;
        Ok(())
    }

    pub fn add_category(&mut self, name: &str, class: Class) -> Result<(), AccountError> {
        let mut next = self.manifest.clone();
        self.add_entry(&mut next, name, class)?;
        self.publish_manifest(next)?;
        self.save_keyring()
    }

    /// Retires a category: it disappears from the drive; its objects stay in the store.
    pub fn remove_category(&mut self, name: &str) -> Result<(), AccountError> {
        let id = self
            .table()
            .find(name)
            .ok_or_else(|| AccountError::UnknownCategory(name.to_string()))?
            .id;
        let mut next = self.manifest.clone();
        for e in &mut next.table.entries {
            if e.id == id {
                e.retired = true;
            }
        }
        self.publish_manifest(next)
    }

    /// The key of `category` at `version`, which another device made after this one
    /// unlocked: the manifest is followed to the newest first (its commitments vouch for
    /// the key), then the key is taken from the keyring or the store.
    pub fn newer_category_key(
        &mut self,
        category: u32,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        self.refresh_manifest()?;
        let e = self
            .manifest
            .table
            .active()
            .find(|e| e.id == category)
            .cloned()
            .ok_or_else(|| {
                AccountError::BadManifest(format!("category {category} is not in the table"))
            })?;
        if e.key_version < version {
            return Err(AccountError::BadManifest(format!(
                "a head of category {} claims key version {version}, the signed table names {}",
                e.name, e.key_version
            )));
        }
        self.category_key_version(&e, version)
    }

    /// The key of one category: from this device's keyring, else unwrapped (e2e keys
    /// with the account key, others through the key service) and checked against the
    /// commitment in the signed manifest.
    pub fn category_key(&self, e: &CategoryEntry) -> Result<SecretKey, AccountError> {
        self.category_key_version(e, e.key_version)
    }

    pub fn category_key_version(
        &self,
        e: &CategoryEntry,
        version: u32,
    ) -> Result<SecretKey, AccountError> {
        let what = format!("category {} key v{version}", e.name);
        let commitment = self.manifest.commitment(e.id, version);
        if let Some(k) = self
            .keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(e.id, version)
            && commitment == Some(key_commitment(k))
        {
            return Ok(k.duplicate());
        }
        let obj = self.store.get(&names::category_key(e.id, version))?;
        let (class, wrapped) = obj
            .split_first()
            .ok_or_else(|| KeyError::BadWrappedKey(what.clone()))?;
        // The current version must be wrapped as the signed table says. An older one (kept
        // until a rotation ends, e.g. the standard key of a category ADP moved to e2e) is
        // unwrapped as its object says: the commitment check below decides either way.
        let class = if version == e.key_version {
            if *class != e.class as u8 {
                return Err(KeyError::BadWrappedKey(format!(
                    "{what}: key object claims another protection class"
                ))
                .into());
            }
            e.class
        } else {
            Class::from_u8(*class).map_err(|_| KeyError::BadWrappedKey(what.clone()))?
        };
        let ctx = keys::category_key_context(e.id, version);
        let key = match class {
            Class::E2e => match keys::unwrap(&self.account_key, ctx, wrapped, &what) {
                Ok(k) => k,
                Err(err) => {
                    // Left under the previous account key by an interrupted rotation of
                    // it: open with that one and re-wrap under the current key.
                    let Some(prev) = &self.prev_account_key else {
                        return Err(err.into());
                    };
                    let k = keys::unwrap(prev, ctx, wrapped, &what)?;
                    if commitment == Some(key_commitment(&k)) {
                        log::info!("{what}: re-wrapping under the current account key");
                        if let Err(e) = self.store_category_key(e.id, version, Class::E2e, &k) {
                            log::warn!("{what}: cannot re-wrap: {e}");
                        }
                    }
                    k
                }
            },
            Class::Standard | Class::Transit => self.service()?.unwrap(ctx, wrapped, &what)?,
        };
        if commitment != Some(key_commitment(&key)) {
            return Err(KeyError::BadWrappedKey(format!(
                "{what}: it is not the key the signed manifest commits to (substituted?)"
            ))
            .into());
        }
        self.keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.id, version, key.duplicate());
        if let Err(err) = self.save_keyring() {
            log::warn!("cannot save the keyring: {err}");
        }
        Ok(key)
    }

    /// Every category, retired ones too, with its unlocked key (garbage collection must
    /// keep what retired categories still reference).
    pub fn all_category_setups(&self) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        self.setups(self.manifest.table.entries.iter())
    }

    /// Every active category with its unlocked key, or why it could not be unlocked.
    pub fn category_setups(&self) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        self.setups(self.manifest.table.active())
    }

    fn setups<'a>(
        &self,
        entries: impl Iterator<Item = &'a CategoryEntry>,
    ) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        entries
            .map(|e| {
                if e.class == Class::E2e && !self.manifest.has(FLAG_SECOND_FACTOR) {
                    return (
                        e.clone(),
                        Err(format!(
                            "end-to-end categories need two-factor authentication on the \
                             account: run `{}` (the rest of the drive works without it)",
                            crate::hint::cmd_hint("account totp enroll")
                        )),
                    );
                }
                let r = self
                    .category_key(e)
                    .map(|key| CategorySetup {
                        entry: e.clone(),
                        key,
                        key_version: e.key_version,
                        old_key: self.old_category_key(e),
                    })
                    .map_err(|err| err.to_string());
                (e.clone(), r)
            })
            .collect()
    }
}
