//! Reading a store the way the server sees it: the public category table, and heads
//! opened without checking who signed them.

use std::fs;
use std::path::Path;

/// The category table as anyone with the store reads it: the signed manifest is public.
pub fn store_table(home: &Path) -> cirrus::format::table::CategoryTable {
    use cirrus::format::manifest::{Manifest, SignedManifest};
    let obj = fs::read(home.join("store").join(cirrus::format::names::MANIFEST))
        .expect("read the account manifest");
    let sm = SignedManifest::decode(&obj).expect("signed manifest");
    Manifest::decode(&sm.body).expect("manifest").table
}

/// A head checker that ignores signatures: what a server (or a test playing one) uses
/// to read a tree whose keys it has.
pub struct UncheckedHeads;
impl cirrus::volume::HeadSigner for UncheckedHeads {
    fn envelope(
        &self,
        _c: u32,
        _kv: u32,
        _s: &[u8],
    ) -> Result<Vec<u8>, cirrus::volume::HeadSignError> {
        Err(cirrus::volume::HeadSignError::ReadOnly)
    }
    fn check<'a>(
        &self,
        _c: u32,
        obj: &'a [u8],
    ) -> Result<(u32, &'a [u8]), cirrus::volume::HeadSignError> {
        let e = cirrus::format::manifest::decode_head_envelope(obj)?;
        Ok((e.key_version, e.sealed))
    }
}
