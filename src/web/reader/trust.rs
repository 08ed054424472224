//! The manifest a [`super::Drive`] reads at: the one the server trusts, followed along the
//! signed chain to the newest the store serves, exactly as a device follows it
//! (`account::manifest`), so a store cannot roll the server back, fork it, or slip in a
//! device, a class change or a key it could not sign.

use super::ReadError;
use crate::account::AccountError;
use crate::account::manifest::{check_table, fetch_chain, open_signed};
use crate::format::manifest::{FLAG_ADP, Manifest};
use crate::store::Store;
use crate::web::access::AccountAccess;

fn manifest_error(e: AccountError) -> ReadError {
    match e {
        AccountError::Store(e) => ReadError::Store(e),
        AccountError::BadManifest(why) => ReadError::BadManifest(why),
        e => ReadError::BadManifest(e.to_string()),
    }
}

/// Verifies the store's manifest against the trusted one and records it when newer.
/// Nothing is served from a manifest that did not verify; under ADP nothing at all unless
/// web access was turned on under ADP and a trusted device approved the session.
pub(super) fn verified_manifest(
    store: &dyn Store,
    access: &dyn AccountAccess,
) -> Result<Manifest, ReadError> {
    let obj = access.trusted_manifest()?;
    // Stored by the key service after a device registered it; checked again so that a
    // damaged record can never become the anchor.
    let (trusted, hash) =
        open_signed(&obj, |m, signer| m.is_signer(signer), None).map_err(manifest_error)?;
    check_table(&trusted).map_err(manifest_error)?;
    let (newest, _, _, newest_obj) =
        fetch_chain(store, &trusted, &hash, |_, _| None).map_err(manifest_error)?;
    if newest.counter > trusted.counter {
        access.advance_manifest(&newest_obj, newest.counter)?;
    }
    if newest.has(FLAG_ADP) && !access.adp_approved() {
        return Err(ReadError::AdpOn);
    }
    Ok(newest)
}
