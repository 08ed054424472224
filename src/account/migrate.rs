//! Bringing an account made before manifests (format v1 homes and stores, such as the
//! frozen fixture) up to signed manifests and signed heads, once, at its first unlock by
//! this build. Each step can be redone, so a crash half-way is resumed by the next unlock.

use super::*;
use crate::crypto::Suite;
use crate::format::manifest::FEATURES;

/// The MAC'd category table of a v1 account, checked against the counter seen.
fn load_legacy_table(acct: &Unlocked) -> Result<CategoryTable, AccountError> {
    let obj = acct.store.get(names::CATEGORY_TABLE)?;
    let plain = crypto::open(
        &keys::table_key(&acct.account_key),
        Suite::MacOnly,
        &Context::new(ObjKind::CategoryTable, 0, 0, 0).to_bytes(),
        &obj,
    )
    .map_err(|e| AccountError::BadTable(format!("authentication failed: {e}")))?;
    let t = CategoryTable::decode(&plain).map_err(|e| AccountError::BadTable(e.to_string()))?;
    let seen = acct.seen.table_seen()?;
    if t.counter < seen {
        return Err(AccountError::BadTable(format!(
            "rollback: the store serves table #{} but this device has seen #{seen}",
            t.counter
        )));
    }
    Ok(t)
}

/// `reanchor`: the user ran `cirrus device reanchor`, so a missing anchor may be rebuilt
/// from what this very upgrade published (a manifest signed by this device alone).
pub(super) fn run(acct: &mut Unlocked, reanchor: bool) -> Result<(), AccountError> {
    let me = acct.identity.public();
    let (_, seen_hash) = acct.seen.manifest_seen()?;
    // The config is not authenticated: a thief can drop its `account_id` to send a home
    // down this path. So the path trusts nothing the sealed anchor does not vouch for:
    // without one, an interrupted upgrade is resumed only on the user's word (reanchor).
    let anchored = seen_hash != [0; 32] || reanchor;
    match acct.store.get(names::MANIFEST) {
        // Published by an earlier, interrupted migration from this device.
        Ok(obj) => {
            let (m, h) = manifest::verify_anchor(&obj, &me.sign)?;
            // Only what this very upgrade would have published: signed by this device,
            // with this device alone in it.
            let signer = crate::format::manifest::SignedManifest::decode(&obj)
                .map(|sm| sm.signer)
                .unwrap_or([0; 32]);
            if signer != me.sign || m.devices.len() != 1 {
                return Err(AccountError::BadManifest(
                    "the store's manifest is not the one this device's upgrade published".into(),
                ));
            }
            if !anchored {
                return Err(AccountError::AnchorMissing(acct.home.seen_path()));
            }
            if seen_hash != [0; 32] && seen_hash != h {
                return Err(AccountError::BadManifest(
                    "the store's manifest is not the one this device published".into(),
                ));
            }
            acct.accept_manifest(m, h, &obj, Some(crate::store::etag_of(&obj)))?;
        }
        Err(StoreError::NotFound(_)) => {
            if seen_hash != [0; 32] {
                return Err(AccountError::BadManifest(
                    "the store has no manifest, but this device has seen one (downgrade?)".into(),
                ));
            }
            // A version-1 home has its sealed record of the table counter; without it, an
            // old table kept by whoever deleted the record would be taken as current.
            if !acct.home.seen_path().exists() && !reanchor {
                return Err(AccountError::AnchorMissing(acct.home.seen_path()));
            }
            let table = load_legacy_table(acct)?;
            log::info!("upgrading the account to signed manifests and heads");
            let mut account_id = [0u8; 16];
            crypto::random_bytes(&mut account_id)?;
            acct.manifest = Manifest {
                counter: table.counter,
                account_key_version: 1,
                flags: FLAG_SECOND_FACTOR,
                devices: vec![DeviceEntry {
                    name: acct.config.device_name.clone(),
                    sign: me.sign,
                    kx: me.kx,
                    state: DeviceState::Active,
                    features: FEATURES,
                }],
                table: table.clone(),
                ..Manifest::empty(account_id)
            };
            let mut next = acct.manifest.clone();
            next.set_commitment(0, 1, key_commitment(&acct.account_key));
            // Commit to the keys as they are now: from here on a substituted key is caught.
            for e in &table.entries {
                let what = format!("category {}", e.name);
                let obj = acct.store.get(&names::category_key(e.id, e.key_version))?;
                let wrapped = obj
                    .get(1..)
                    .ok_or_else(|| KeyError::BadWrappedKey(what.clone()))?;
                let ctx = keys::category_key_context(e.id, e.key_version);
                let key = match e.class {
                    Class::E2e => keys::unwrap(&acct.account_key, ctx, wrapped, &what)?,
                    _ => acct.service()?.unwrap(ctx, wrapped, &what)?,
                };
                next.set_commitment(e.id, e.key_version, key_commitment(&key));
            }
            acct.publish_manifest(next)?;
        }
        Err(e) => return Err(e.into()),
    }
    acct.grant_account_key(&me)?;
    acct.republish_heads(&[], true, &[])?;
    match acct.store.delete(names::CATEGORY_TABLE) {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    acct.config.account_id = Some(hex::encode(acct.manifest.account_id));
    acct.home.save_config(&acct.config)?;
    Ok(())
}
