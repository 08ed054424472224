//! Checks of what a request carries before anything is done with it: account and
//! record names, hex fields of bounded length, and the password fields and KDF cost a
//! client may set.

use super::ApiError;
use crate::keys::KdfParams;
use zeroize::Zeroizing;

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Account names: 1..=64 of `[A-Za-z0-9._@-]`.
pub(crate) fn check_account_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "an account name is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-'",
        ))
    }
}

/// Record names: 1..=128 of `[A-Za-z0-9._@/-]`.
pub(super) fn check_record_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "a record name is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@', '/' and '-'",
        ))
    }
}

/// Decodes a hex field of at most `max` bytes (length checked before decoding).
pub(super) fn unhex(what: &str, s: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    if s.len() > max * 2 {
        return Err(bad(format!("{what} is longer than {max} bytes")));
    }
    hex::decode(s).map_err(|_| bad(format!("{what} must be hex")))
}

pub(super) fn unhex_exact<const N: usize>(
    what: &str,
    s: &str,
) -> Result<Zeroizing<[u8; N]>, ApiError> {
    let mut out = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(s, &mut out[..])
        .map_err(|_| bad(format!("{what} must be {N} bytes in hex")))?;
    Ok(out)
}

type Salt = Zeroizing<[u8; 16]>;
type Auth = Zeroizing<[u8; 32]>;

/// The public half of a password a client sets (create, change, reset): its salt, KDF
/// cost and `auth`, checked; field names as `prefix` + "salt" / "auth".
pub(super) fn password_fields(
    prefix: &str,
    salt: &str,
    kdf: KdfParams,
    auth: &str,
) -> Result<(Salt, Auth), ApiError> {
    let salt = unhex_exact::<16>(&format!("{prefix}salt"), salt)?;
    check_kdf(kdf)?;
    let auth = unhex_exact::<32>(&format!("{prefix}auth"), auth)?;
    Ok((salt, auth))
}

/// Client KDF parameters the server agrees to store (and later hand to every device).
fn check_kdf(k: KdfParams) -> Result<(), ApiError> {
    let sane = (1..=16).contains(&k.lanes)
        && (1..=64).contains(&k.time)
        && k.memory_kib <= 4 * 1024 * 1024
        && argon2::Params::new(k.memory_kib, k.time, k.lanes, Some(32)).is_ok();
    if sane {
        Ok(())
    } else {
        Err(bad(
            "kdf parameters out of range (lanes 1-16, time 1-64, memory 8*lanes KiB to 4 GiB)",
        ))
    }
}
