//! Account password → the two keys a key-service client needs: `auth`, which the server
//! checks (through its own Argon2id verifier) and so may see, and `wrap`, which it never
//! sees. Both come from one client-side Argon2id, so the server never learns the password.

use super::{KdfParams, KeyError, Passcode};
use crate::crypto::{self, SecretKey};

/// The keys derived from an account password.
pub struct PasswordKeys {
    /// Sent to the key service at login; the server stores only an Argon2id verifier of it.
    pub auth: SecretKey,
    /// For the caller's own wrapping (e.g. escrow); never leaves the client.
    pub wrap: SecretKey,
}

/// `pw_root = Argon2id(password, salt, params)`, then two BLAKE3 derivations from it
/// (docs/FORMAT.md "Key service API", password keys).
pub fn password_keys(
    password: &Passcode,
    salt: &[u8],
    params: KdfParams,
) -> Result<PasswordKeys, KeyError> {
    if password.expose().is_empty() {
        return Err(KeyError::EmptyPasscode);
    }
    let root = super::argon2id(password.expose().as_bytes(), salt, params)?;
    Ok(PasswordKeys {
        auth: crypto::derive_key(crate::crypto::domains::PASSWORD_AUTH, &[&root[..]]),
        wrap: crypto::derive_key(crate::crypto::domains::PASSWORD_WRAP, &[&root[..]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: KdfParams = KdfParams {
        memory_kib: 64,
        time: 1,
        lanes: 1,
    };

    #[test]
    fn auth_and_wrap_differ_and_depend_on_password_and_salt() {
        let pw = Passcode::new("correct horse".into());
        let k = password_keys(&pw, b"0123456789abcdef", TINY).unwrap();
        let again = password_keys(&pw, b"0123456789abcdef", TINY).unwrap();
        assert_eq!(k.auth.expose(), again.auth.expose());
        assert_eq!(k.wrap.expose(), again.wrap.expose());
        assert_ne!(k.auth.expose(), k.wrap.expose());
        let other_salt = password_keys(&pw, b"0123456789abcdeX", TINY).unwrap();
        assert_ne!(k.auth.expose(), other_salt.auth.expose());
        let other_pw =
            password_keys(&Passcode::new("x".into()), b"0123456789abcdef", TINY).unwrap();
        assert_ne!(k.auth.expose(), other_pw.auth.expose());
        assert!(password_keys(&Passcode::new(String::new()), b"0123456789abcdef", TINY).is_err());
    }
}
