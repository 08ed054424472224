//! The key of a category the web serves: its `keys/<id>/<version>` object unwrapped by the
//! key service ([`AccountAccess::unwrap_service`]), or for an end-to-end category the key a
//! trusted device released to this web session ([`AccountAccess::released`]); either way
//! accepted only if it is the key the verified manifest commits to, as a device's
//! `account/categories.rs` does.

use super::ReadError;
use crate::account::manifest::key_commitment;
use crate::crypto::SecretKey;
use crate::format::manifest::Manifest;
use crate::format::names;
use crate::format::table::{CategoryEntry, Class};
use crate::store::{Store, StoreError};
use crate::volume::CategorySetup;
use crate::web::access::AccountAccess;

/// The setup a category opens with: its current key and, while a rotation may be in
/// progress, the version before (blobs not yet re-encrypted open with it).
pub(super) fn setup(
    store: &dyn Store,
    access: &dyn AccountAccess,
    m: &Manifest,
    e: &CategoryEntry,
) -> Result<CategorySetup, ReadError> {
    let key = match key_version(store, access, m, e, e.key_version) {
        Err(ReadError::Store(StoreError::NotFound(_))) => {
            return Err(ReadError::Unavailable(format!(
                "the key object of version {} is missing from the store",
                e.key_version
            )));
        }
        r => r?,
    };
    Ok(CategorySetup {
        entry: e.clone(),
        key,
        key_version: e.key_version,
        old_key: old_key(store, access, m, e),
    })
}

/// The version before the table's, if its key object is still in the store and opens
/// here. A previous e2e key (a category ADP moved back to standard) does not: blobs still
/// under it then fail to open, as unavailable, until the rotation ends.
fn old_key(
    store: &dyn Store,
    access: &dyn AccountAccess,
    m: &Manifest,
    e: &CategoryEntry,
) -> Option<(u32, SecretKey)> {
    let v = e.key_version.checked_sub(1).filter(|v| *v >= 1)?;
    match key_version(store, access, m, e, v) {
        Ok(k) => Some((v, k)),
        Err(ReadError::Store(StoreError::NotFound(_))) => None,
        Err(err) => {
            log::warn!(
                "web: category {}: key version {v} cannot be unlocked ({err}); blobs still \
                 under it will not open",
                e.name
            );
            None
        }
    }
}

/// Unwraps `keys/<id>/<version>`. The current version must be wrapped as the signed table
/// says; an older one as its object says. Either way the commitment decides.
fn key_version(
    store: &dyn Store,
    access: &dyn AccountAccess,
    m: &Manifest,
    e: &CategoryEntry,
    version: u32,
) -> Result<SecretKey, ReadError> {
    let bad = |why: &str| ReadError::Unavailable(format!("key version {version}: {why}"));
    let obj = store.get(&names::category_key(e.id, version))?;
    let (class, wrapped) = obj.split_first().ok_or_else(|| bad("empty key object"))?;
    if version == e.key_version && *class != e.class as u8 {
        return Err(bad("the key object claims another protection class"));
    }
    let key = match Class::from_u8(*class) {
        Ok(Class::Standard | Class::Transit) => {
            let ctx = crate::keys::category_key_context(e.id, version).to_bytes();
            access.unwrap_service(&ctx, wrapped)?
        }
        // The server holds no e2e key: only one a device released to this session.
        Ok(Class::E2e) => access.released(e.id, version)?.ok_or(ReadError::Locked)?,
        Err(_) => return Err(bad("unknown protection class")),
    };
    if m.commitment(e.id, version) != Some(key_commitment(&key)) {
        return Err(bad(
            "it is not the key the signed manifest commits to (substituted?)",
        ));
    }
    Ok(key)
}
