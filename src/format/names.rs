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

pub const CATEGORY_TABLE: &str = "account/categories";

/// Parses a pack object name back into its id.
pub fn parse_pack(name: &str) -> Option<[u8; 32]> {
    let h = name.strip_prefix("packs/")?.split('/').nth(1)?;
    let v = hex::decode(h).ok()?;
    v.try_into().ok()
}
