//! The web registration (`cirrus web on`, FORMAT.md §9d): what a trusted device signs so
//! the key service's web front trusts one manifest of the account, and reads one store.

use super::FormatError;
use super::manifest::{Manifest, SignedManifest};
use crate::crypto;

/// The message a device signs (domain [`crate::crypto::domains::SIGN_WEB_REGISTRATION`]):
/// `u32 LE len | account name | u32 LE len | store URL | BLAKE3(manifest body)`. The
/// account name binds it to one account of the service, the store URL to the store the
/// server may read, the hash to the manifest the server trusts from now on.
pub fn registration_message(account: &str, store: &str, manifest_hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + account.len() + store.len() + 32);
    for field in [account.as_bytes(), store.as_bytes()] {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(field);
    }
    m.extend_from_slice(manifest_hash);
    m
}

/// A stored manifest object, decoded: the envelope, the manifest and BLAKE3 of its body.
pub fn decode_manifest_object(
    obj: &[u8],
) -> Result<(SignedManifest, Manifest, [u8; 32]), FormatError> {
    let sm = SignedManifest::decode(obj)?;
    let m = Manifest::decode(&sm.body)?;
    let hash = crypto::hash(&sm.body);
    Ok((sm, m, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_message_vector() {
        // FORMAT.md §9d test vector.
        let m = registration_message("alice", "s3://b/p", &[7; 32]);
        assert_eq!(
            hex::encode(&m),
            format!(
                "05000000616c6963650800000073333a2f2f622f70{}",
                "07".repeat(32)
            )
        );
    }
}
