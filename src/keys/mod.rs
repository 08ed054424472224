//! Key material handling: passcode-based device keys (Argon2id), and wrapping keys under
//! other keys with the sealing construction. No files, no network.

pub mod device;
pub mod floor;
pub mod join;
mod password;
pub mod recovery;
pub mod web;

pub use password::{PasswordKeys, password_keys};

use crate::crypto::{self, CryptoError, SecretKey, Suite};
use crate::format::{Context, ObjKind};
use zeroize::Zeroizing;

/// A passcode typed by the user; zeroized on drop, never printed.
pub struct Passcode(Zeroizing<String>);

impl Passcode {
    /// Trailing newlines (from a passcode file or terminal) are not part of the passcode.
    pub fn new(s: String) -> Self {
        let mut s = Zeroizing::new(s);
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        Passcode(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the passcode is empty")]
    EmptyPasscode,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("wrong passcode (or the device key files are damaged)")]
    WrongPasscode,
    #[error("wrapped key for {0} failed authentication")]
    BadWrappedKey(String),
    #[error(
        "{what} asks for a key-derivation cost of {} KiB, t={}, below the {} KiB, t={} \
         this device accepts: refused, since cheap costs make a secret easy to guess \
         (if you chose lower costs yourself, give the same --kdf-memory/--kdf-time here)",
        offered.memory_kib, offered.time, floor.memory_kib, floor.time
    )]
    KdfTooWeak {
        what: String,
        offered: KdfParams,
        floor: KdfParams,
    },
    #[error(
        "{what} asks for an implausible key-derivation cost ({} KiB, t={}, {} lanes)",
        offered.memory_kib, offered.time, offered.lanes
    )]
    KdfTooCostly { what: String, offered: KdfParams },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Argon2id cost parameters; stored in the device config so tests can use cheap ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub time: u32,
    pub lanes: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        // OWASP's Argon2id recommendation is >= 19 MiB, t=2; we spend more on a device
        // unlock that happens once per mount.
        KdfParams {
            memory_kib: 256 * 1024,
            time: 3,
            lanes: 1,
        }
    }
}

/// Device key = BLAKE3-derive(Argon2id(passcode, salt), device secret): neither the
/// passcode nor the device's disk alone is enough.
pub fn device_key(
    passcode: &Passcode,
    salt: &[u8],
    params: KdfParams,
    device_secret: &SecretKey,
) -> Result<SecretKey, KeyError> {
    if passcode.expose().is_empty() {
        return Err(KeyError::EmptyPasscode);
    }
    let out = argon2id(passcode.expose().as_bytes(), salt, params)?;
    Ok(crypto::derive_key(
        crate::crypto::domains::DEVICE_KEY,
        &[&out[..], device_secret.expose()],
    ))
}

/// Argon2id of a secret the user holds (passcode, recovery key, contact code).
pub fn argon2id(
    secret: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let p = argon2::Params::new(params.memory_kib, params.time, params.lanes, Some(32))
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(secret, salt, &mut out[..])
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The key pairs of a recovery method, derived from its secret: the account key is
/// sealed to the public half, so whoever holds the secret (and only they) can open it,
/// and re-wrapping after a rotation needs only the public half.
pub fn recovery_identity(
    secret: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<device::DeviceIdentity, KeyError> {
    let seed = argon2id(secret, salt, params)?;
    let s = crypto::derive_key(crate::crypto::domains::RECOVERY_SIGN, &[&seed[..]]);
    let x = crypto::derive_key(crate::crypto::domains::RECOVERY_KX, &[&seed[..]]);
    Ok(device::DeviceIdentity::from_secrets(s.expose(), x.expose()))
}

/// Seals `key` under `kek`, bound to `ctx`.
pub fn wrap(kek: &SecretKey, ctx: Context, key: &SecretKey) -> Result<Vec<u8>, KeyError> {
    Ok(crypto::seal(
        kek,
        Suite::XtsBlake3,
        &ctx.to_bytes(),
        key.expose(),
    )?)
}

pub fn unwrap(
    kek: &SecretKey,
    ctx: Context,
    wrapped: &[u8],
    what: &str,
) -> Result<SecretKey, KeyError> {
    let bytes = Zeroizing::new(
        crypto::open(kek, Suite::XtsBlake3, &ctx.to_bytes(), wrapped)
            .map_err(|_| KeyError::BadWrappedKey(what.to_string()))?,
    );
    SecretKey::from_slice(&bytes).ok_or_else(|| KeyError::BadWrappedKey(what.to_string()))
}

/// Context for a category key of `category`, version `version`.
pub fn category_key_context(category: u32, version: u32) -> Context {
    Context::new(ObjKind::CategoryKey, category, 0, version as u64)
}

/// The key that authenticates account-level objects (category table), derived from the
/// account E2E key so only trusted devices can produce it.
pub fn table_key(account: &SecretKey) -> SecretKey {
    crypto::derive_key(crate::crypto::domains::CATEGORY_TABLE, &[account.expose()])
}

/// The key that sealed this device's local state (highest head counters seen) in homes
/// made before device identities; read once and re-sealed under [`device_state_key`].
pub fn legacy_device_state_key(account: &SecretKey) -> SecretKey {
    crypto::derive_key(crate::crypto::domains::DEVICE_STATE_V1, &[account.expose()])
}

/// The key that seals this device's local state. From the device key, not the account
/// key, because the account key rotates when a device is removed.
pub fn device_state_key(device_key: &SecretKey) -> SecretKey {
    crypto::derive_key(
        crate::crypto::domains::DEVICE_STATE_V2,
        &[device_key.expose()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passcode_gives_another_key_and_unwrap_fails() {
        let secret = SecretKey::from_bytes([7; 32]);
        let p = KdfParams {
            memory_kib: 64,
            time: 1,
            lanes: 1,
        };
        let k1 = device_key(
            &Passcode::new("right\n".into()),
            b"saltsaltsalt",
            p,
            &secret,
        )
        .unwrap();
        let k2 = device_key(&Passcode::new("right".into()), b"saltsaltsalt", p, &secret).unwrap();
        let k3 = device_key(&Passcode::new("wrong".into()), b"saltsaltsalt", p, &secret).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        assert_ne!(k1.expose(), k3.expose());
        let acct = SecretKey::from_bytes([9; 32]);
        let ctx = Context::new(ObjKind::AccountKey, 0, 0, 0);
        let w = wrap(&k1, ctx, &acct).unwrap();
        assert_eq!(unwrap(&k2, ctx, &w, "a").unwrap().expose(), acct.expose());
        assert!(unwrap(&k3, ctx, &w, "a").is_err());
        assert!(device_key(&Passcode::new("".into()), b"saltsaltsalt", p, &secret).is_err());
    }
}
