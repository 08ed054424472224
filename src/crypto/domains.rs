//! Every domain-separation string of the format in one place: the BLAKE3 `derive_key`
//! contexts, the Ed25519 signature domains, the join-code MAC domains and the prefixes of
//! the two families of sealing contexts. A new key or signature needs a new string here,
//! and the test below refuses one that repeats another. These strings are part of the
//! stored format (FORMAT.md): changing one makes every byte derived from it unreadable.
//!
//! In `crypto`, the lowest layer, because the seal's own subkey derivation is one of them
//! and every other layer may name this module.

// BLAKE3 `derive_key` contexts (`crypto::derive_key`: each input preceded by its length
// as u64 LE, except where the caller says otherwise).

/// Seal subkeys (k1, k2, MAC key) from key, suite and nonce; inputs raw (FORMAT.md §1.1).
pub const SEAL_SUBKEYS: &str = "cirrus 2026-11-28 seal v1 subkeys";
/// Key of the in-memory sector digests of a blob whose MAC was checked, from its MAC key
/// (never stored; `crypto::SectorIndex`).
pub const SECTOR_DIGEST_KEY: &str = "cirrus 2026-11-28 sector digest v1";
/// Device key from the passcode's Argon2id output and the device secret (§6).
pub const DEVICE_KEY: &str = "cirrus 2026-11-28 device key v1";
/// MAC key of the legacy category table, from the account key (§5.5).
pub const CATEGORY_TABLE: &str = "cirrus 2026-11-28 category table v1";
/// Seal key of `device/seen` in homes made before manifests, from the account key (§6).
pub const DEVICE_STATE_V1: &str = "cirrus 2026-11-28 device state v1";
/// Seal key of `device/seen`, from the device key (§11.6).
pub const DEVICE_STATE_V2: &str = "cirrus 2026-11-28 device state v2";
/// Seal key of `device/keyring`, from the device key (§11.6).
pub const KEYRING: &str = "cirrus 2026-11-28 keyring v1";
/// Wrapping key of a key sealed to a device's X25519 key (§9b).
pub const SEAL_TO_DEVICE: &str = "cirrus 2026-11-28 seal-to-device v1";
/// Commitment to a category key version (or the account key, category 0) (§11.1).
pub const KEY_COMMITMENT: &str = "cirrus 2026-11-28 key commitment v1";
/// Join key from the 16 symbols of a join code (§11.5).
pub const JOIN_CODE: &str = "cirrus 2026-11-28 join code v1";
/// Check symbols of a recovery key; input raw, no length prefix (§9a).
pub const RECOVERY_KEY_CHECK: &str = "cirrus 2026-11-28 recovery key check v1";
/// Recovery-key method key pairs from the Argon2id seed (§11.6a).
pub const RECOVERY_SIGN: &str = "cirrus 2026-11-28 recovery sign v1";
pub const RECOVERY_KX: &str = "cirrus 2026-11-28 recovery kx v1";
/// Contact method key pairs from the contact half and the service half (§11.6a).
pub const CONTACT_SIGN: &str = "cirrus 2026-11-28 contact sign v1";
pub const CONTACT_KX: &str = "cirrus 2026-11-28 contact kx v1";
/// Seal key of a contact half kept for someone else, from the device key (§11.6a).
pub const CONTACT_HALF: &str = "cirrus 2026-11-28 contact half v1";
/// Escrow method: the proof shown to the key service and the seed, from Argon2id of the
/// passcode; then the key pairs from the seed and the service's pepper (§11.6a).
pub const ESCROW_PROOF: &str = "cirrus 2026-11-28 escrow proof v1";
pub const ESCROW_SEED: &str = "cirrus 2026-11-28 escrow seed v1";
pub const ESCROW_SIGN: &str = "cirrus 2026-11-28 escrow sign v1";
pub const ESCROW_KX: &str = "cirrus 2026-11-28 escrow kx v1";
/// Tags of a data-recovery proof, from a category key (§11.10).
pub const DATA_RECOVERY_PROOF: &str = "cirrus 2026-11-28 data recovery proof v1";
/// Export archive key from the password's Argon2id output and the header (§12.2).
pub const EXPORT_ARCHIVE: &str = "cirrus 2026-11-28 export archive v1";
/// Key-service password keys: `auth` is sent, `wrap` never is (§9c).
pub const PASSWORD_AUTH: &str = "cirrus 2026-11-28 password auth v1";
pub const PASSWORD_WRAP: &str = "cirrus 2026-11-28 password wrap v1";
/// Key service: per-account key-encryption key from a service key version (§9c).
pub const SERVICE_KEK: &str = "cirrus 2026-11-28 service kek v1";
/// Key service: key of the made-up salts of unknown names, from the master key (§9c).
pub const FAKE_SALT: &str = "cirrus 2026-11-28 key service fake salt v1";

/// Wrapping key of a category key released to a web session's X25519 key (§9e).
pub const SEAL_TO_WEB_SESSION: &str = "cirrus 2026-11-28 seal-to-web-session v1";
/// MAC key of a web sign-in code, from its 16 symbols (§9e).
pub const WEB_SIGN_IN_CODE: &str = "cirrus 2026-11-28 web sign-in code v1";

/// Every `derive_key` context, for the uniqueness test and the spec.
pub const DERIVE_KEY_CONTEXTS: &[&str] = &[
    SEAL_SUBKEYS,
    SECTOR_DIGEST_KEY,
    DEVICE_KEY,
    CATEGORY_TABLE,
    DEVICE_STATE_V1,
    DEVICE_STATE_V2,
    KEYRING,
    SEAL_TO_DEVICE,
    KEY_COMMITMENT,
    JOIN_CODE,
    RECOVERY_KEY_CHECK,
    RECOVERY_SIGN,
    RECOVERY_KX,
    CONTACT_SIGN,
    CONTACT_KX,
    CONTACT_HALF,
    ESCROW_PROOF,
    ESCROW_SEED,
    ESCROW_SIGN,
    ESCROW_KX,
    DATA_RECOVERY_PROOF,
    EXPORT_ARCHIVE,
    PASSWORD_AUTH,
    PASSWORD_WRAP,
    SERVICE_KEK,
    FAKE_SALT,
    SEAL_TO_WEB_SESSION,
    WEB_SIGN_IN_CODE,
];

// Ed25519 signatures: the signed bytes are
// `SIGNATURE_PREFIX | u32 LE len(domain) | domain | message` (FORMAT.md §9b).

/// Prefix of every signed message.
pub const SIGNATURE_PREFIX: &[u8] = b"cirrus-sig-v1\0";
pub const SIGN_MANIFEST: &str = "account manifest";
pub const SIGN_HEAD: &str = "category head";
pub const SIGN_JOIN_REQUEST: &str = "join request";
pub const SIGN_ACK: &str = "key acknowledgement";
pub const SIGN_WEB_REGISTRATION: &str = "web registration";
/// Every signature domain.
pub const SIGNATURE_DOMAINS: &[&str] = &[
    SIGN_MANIFEST,
    SIGN_HEAD,
    SIGN_JOIN_REQUEST,
    SIGN_ACK,
    SIGN_WEB_REGISTRATION,
];

// Join-code MACs: BLAKE3 keyed with the join key over `u64 LE len(domain) | domain | m`
// (FORMAT.md §11.5). Another key than any signature's, so sharing a word with a
// signature domain is harmless.

pub const MAC_JOIN_REQUEST: &str = "join request";
pub const MAC_APPROVAL: &str = "approval";
/// The web sign-in code's MAC over the web session's public key (§9e), under the key
/// [`WEB_SIGN_IN_CODE`] derives.
pub const MAC_WEB_SESSION_KEY: &str = "web session key";
/// The approving device's proof that it was given the web sign-in code (§9e), over the
/// same message, checked by the server against the code it holds in memory.
pub const MAC_WEB_APPROVAL: &str = "web approval";
/// Every join-code MAC domain.
pub const MAC_DOMAINS: &[&str] = &[
    MAC_JOIN_REQUEST,
    MAC_APPROVAL,
    MAC_WEB_SESSION_KEY,
    MAC_WEB_APPROVAL,
];

// Sealing contexts (the MAC input of §1.3 starts with one).

/// The first 6 bytes of every 31-byte store and home context (§2); byte 6 is the format
/// version's low byte (1), never a space or a NUL.
pub const STORE_CONTEXT_MAGIC: &[u8; 6] = b"cirrus";
/// The start of every key-service sealing context (§9c), followed by
/// `u32 LE len(account) | account | field`.
pub const KEY_SERVICE_CONTEXT_PREFIX: &[u8] = b"cirrus key service v1\0";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn distinct(what: &str, list: &[&str]) {
        let mut seen = HashSet::new();
        for s in list {
            assert!(seen.insert(*s), "{what}: {s:?} appears twice");
        }
    }

    #[test]
    fn every_domain_is_distinct_within_its_family() {
        distinct("derive_key contexts", DERIVE_KEY_CONTEXTS);
        distinct("signature domains", SIGNATURE_DOMAINS);
        distinct("MAC domains", MAC_DOMAINS);
        // derive_key contexts are one family of dated, versioned names; a context that
        // was another's prefix would still differ (BLAKE3 hashes the whole string), but
        // it would read as a variant of it, so none is.
        for a in DERIVE_KEY_CONTEXTS {
            assert!(a.starts_with("cirrus 2026-11-28 "), "{a}");
            assert!(a.contains(" v1") || a.contains(" v2"), "{a}");
            for b in DERIVE_KEY_CONTEXTS {
                assert!(a == b || !b.starts_with(a), "{a:?} is a prefix of {b:?}");
            }
        }
    }

    #[test]
    fn the_two_context_families_cannot_meet() {
        // A 31-byte store context has the version's low byte (1) at offset 6; the key
        // service's prefix has a space there. So no key-service context equals or starts
        // like a store context, and one master key never opens the other's blobs.
        let store = crate::crypto::domains::STORE_CONTEXT_MAGIC;
        assert!(KEY_SERVICE_CONTEXT_PREFIX.starts_with(store));
        assert_eq!(KEY_SERVICE_CONTEXT_PREFIX[6], b' ');
        assert_ne!(KEY_SERVICE_CONTEXT_PREFIX[6], 1);
        // Signed messages start with their own prefix, ended by a NUL no domain has.
        assert!(SIGNATURE_PREFIX.ends_with(b"\0"));
        for d in SIGNATURE_DOMAINS.iter().chain(MAC_DOMAINS) {
            assert!(!d.as_bytes().contains(&0), "{d}");
        }
    }
}
