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

/// The message a web sign-in code's MAC covers (FORMAT.md §9e): `u32 LE len | account |
/// u32 LE len | web session id | X25519 public key (32)`. The device that checks it knows
/// the key it releases to is the one the browser's page committed to, for this account
/// and this session.
pub fn session_key_message(account: &str, session: &str, public: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + account.len() + session.len() + 32);
    for field in [account.as_bytes(), session.as_bytes()] {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(field);
    }
    m.extend_from_slice(public);
    m
}

/// Categories a trusted device may release to a web session under Advanced Data
/// Protection (issue 12, after iCloud.com). Device and server both check it.
pub const RELEASABLE: &[&str] = &[
    "Photos",
    "Drive",
    "Notes",
    "Reminders",
    "Bookmarks",
    "Shortcuts",
    "Voice Memos",
    "Passes",
];
/// The standard categories that stay standard under ADP: served with service keys once a
/// sign-in is approved.
pub const STAY_STANDARD: &[&str] = &["Calendars", "Contacts", "Mail"];

/// End-to-end categories never released to the web (with Apple's): shown locked, so the
/// user sees they exist and why they stay closed.
pub const NEVER_RELEASED: &[&str] = &[
    "Health",
    "Keychain",
    "Messages",
    "Payment Information",
    "Card Transactions",
    "Wi-Fi Passwords",
    "Bluetooth Keys",
    "Home",
    "Screen Time",
];

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

    #[test]
    fn session_key_message_vector() {
        // FORMAT.md §9e test vector.
        let m = session_key_message("alice", "0011223344556677", &[9; 32]);
        assert_eq!(
            hex::encode(&m),
            format!(
                "05000000616c69636510000000{}{}",
                hex::encode("0011223344556677"),
                "09".repeat(32)
            )
        );
    }

    #[test]
    fn no_category_is_on_two_lists() {
        for a in RELEASABLE {
            assert!(
                !STAY_STANDARD.contains(a) && !NEVER_RELEASED.contains(a),
                "{a}"
            );
        }
        for a in STAY_STANDARD {
            assert!(!NEVER_RELEASED.contains(a), "{a}");
        }
    }
}
