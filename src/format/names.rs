//! Object names in the store. Names reveal only category numbers and content hashes.

pub fn pack(id: &[u8; 32]) -> String {
    let h = hex::encode(id);
    format!("packs/{}/{}", &h[..2], h)
}

pub fn head(category: u32) -> String {
    format!("heads/{category:08x}")
}

pub fn category_key(category: u32, version: u32) -> String {
    format!("keys/{category:08x}/{version:08x}")
}

/// The MAC'd category table of accounts made before manifests (read once, to migrate).
pub const CATEGORY_TABLE: &str = "account/categories";

/// The newest signed account manifest (replaced with compare-and-swap).
pub const MANIFEST: &str = "account/manifest";

/// Every manifest ever published, so a device can verify the chain of signers from the
/// one it trusts to the newest.
pub fn manifest_version(counter: u64) -> String {
    format!("account/manifests/{counter:016x}")
}

/// The data-recovery proof of the manifest of `counter` (`format::recovery_proof`).
pub fn recovery_proof(counter: u64) -> String {
    format!("account/recovery-proofs/{counter:016x}")
}

/// The account key of `version` sealed to one device or recovery method (by the first
/// 16 bytes of its Ed25519 public key, in hex).
pub fn account_key_grant(version: u32, holder: &[u8; 32]) -> String {
    format!(
        "account/grants/{version:08x}/{}",
        hex::encode(&holder[..16])
    )
}

/// The category keys handed to a newly approved device, sealed to it.
pub fn key_bundle(holder: &[u8; 32]) -> String {
    format!("account/bundles/{}", hex::encode(&holder[..16]))
}

/// A trusted device's approval of a join request (§11.5).
pub fn join_approval(holder: &[u8; 32]) -> String {
    format!("account/approvals/{}", hex::encode(&holder[..16]))
}

/// A device asking to join: its name and public keys, until approved.
pub fn join_request(holder: &[u8; 32]) -> String {
    format!("account/requests/{}", hex::encode(&holder[..16]))
}

/// A device's key acknowledgement (`format::ack`): which old key versions it still needs.
pub fn key_ack(holder: &[u8; 32]) -> String {
    format!("account/acks/{}", hex::encode(&holder[..16]))
}

/// Parses a pack object name back into its id.
pub fn parse_pack(name: &str) -> Option<[u8; 32]> {
    let h = name.strip_prefix("packs/")?.split('/').nth(1)?;
    let v = hex::decode(h).ok()?;
    v.try_into().ok()
}
