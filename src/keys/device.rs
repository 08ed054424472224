//! A trusted device's own key pairs: Ed25519 to sign what the server must not forge
//! (heads, the manifest with the device list, the category table and the ADP state) and
//! X25519 to receive keys sealed to it.

use crate::crypto::{self, CryptoError, SecretKey};
use crate::format::Context;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The public half of a device identity, as published in the (signed) device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePublic {
    pub sign: [u8; 32],
    pub kx: [u8; 32],
}

/// A device's secret keys. No `Clone`; `Debug` is redacted.
pub struct DeviceIdentity {
    sign: SigningKey,
    kx: StaticSecret,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceIdentity(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceKeyError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("malformed public key")]
    BadPublicKey,
    #[error("sealed key is malformed or was not sealed to this device")]
    CannotOpen,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

const SEALED_PREFIX: usize = 32;

impl DeviceIdentity {
    /// Fresh key pairs from the OS CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut s = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        crypto::random_bytes(&mut s[..])?;
        crypto::random_bytes(&mut x[..])?;
        Ok(Self::from_secrets(&s, &x))
    }

    /// Rebuilds an identity from its two 32-byte secrets (as stored, sealed, on the device).
    pub fn from_secrets(sign: &[u8; 32], kx: &[u8; 32]) -> Self {
        DeviceIdentity {
            sign: SigningKey::from_bytes(sign),
            kx: StaticSecret::from(*kx),
        }
    }

    /// The two secrets, for sealing at rest under the device key.
    pub fn secrets(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        (
            Zeroizing::new(self.sign.to_bytes()),
            Zeroizing::new(self.kx.to_bytes()),
        )
    }

    pub fn public(&self) -> DevicePublic {
        DevicePublic {
            sign: self.sign.verifying_key().to_bytes(),
            kx: PublicKey::from(&self.kx).to_bytes(),
        }
    }

    /// Signs `msg` within a domain (the kind of object), so a signature over one kind can
    /// never be replayed as another.
    pub fn sign(&self, domain: &str, msg: &[u8]) -> [u8; 64] {
        self.sign.sign(&signed_message(domain, msg)).to_bytes()
    }

    /// Opens a key sealed to this device with [`seal_to`].
    pub fn open_sealed(&self, ctx: Context, sealed: &[u8]) -> Result<SecretKey, DeviceKeyError> {
        if sealed.len() < SEALED_PREFIX {
            return Err(DeviceKeyError::CannotOpen);
        }
        let mut eph = [0u8; 32];
        eph.copy_from_slice(&sealed[..SEALED_PREFIX]);
        let shared = self.kx.diffie_hellman(&PublicKey::from(eph));
        if !shared.was_contributory() {
            return Err(DeviceKeyError::CannotOpen);
        }
        let kek = seal_kek(shared.as_bytes(), &eph, &self.public().kx);
        super::unwrap(
            &kek,
            ctx,
            &sealed[SEALED_PREFIX..],
            "key sealed to this device",
        )
        .map_err(|_| DeviceKeyError::CannotOpen)
    }
}

fn signed_message(domain: &str, msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + domain.len() + msg.len());
    m.extend_from_slice(crypto::domains::SIGNATURE_PREFIX);
    m.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    m.extend_from_slice(domain.as_bytes());
    m.extend_from_slice(msg);
    m
}

/// Verifies a signature made by [`DeviceIdentity::sign`] (strict Ed25519 verification:
/// no malleable or small-order encodings).
pub fn verify(
    signer: &DevicePublic,
    domain: &str,
    msg: &[u8],
    sig: &[u8; 64],
) -> Result<(), DeviceKeyError> {
    let vk = VerifyingKey::from_bytes(&signer.sign).map_err(|_| DeviceKeyError::BadPublicKey)?;
    vk.verify_strict(&signed_message(domain, msg), &Signature::from_bytes(sig))
        .map_err(|_| DeviceKeyError::BadSignature)
}

fn seal_kek(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32]) -> SecretKey {
    crypto::derive_key(
        crate::crypto::domains::SEAL_TO_DEVICE,
        &[shared, eph, recipient],
    )
}

/// Seals `key` to a device's X25519 public key: an ephemeral key pair, the shared secret
/// and both public keys derive the wrapping key. Layout: ephemeral public (32) | wrapped.
pub fn seal_to(
    recipient: &DevicePublic,
    ctx: Context,
    key: &SecretKey,
) -> Result<Vec<u8>, DeviceKeyError> {
    let mut e = Zeroizing::new([0u8; 32]);
    crypto::random_bytes(&mut e[..])?;
    let eph = StaticSecret::from(*e);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(recipient.kx));
    if !shared.was_contributory() {
        return Err(DeviceKeyError::BadPublicKey);
    }
    let kek = seal_kek(shared.as_bytes(), &eph_pub, &recipient.kx);
    let mut out = eph_pub.to_vec();
    out.extend_from_slice(&super::wrap(&kek, ctx, key).map_err(|_| DeviceKeyError::CannotOpen)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ObjKind;

    fn ctx() -> Context {
        Context::new(ObjKind::AccountKey, 0, 0, 0)
    }

    #[test]
    fn signatures_verify_only_for_their_domain_message_and_signer() {
        let a = DeviceIdentity::generate().unwrap();
        let b = DeviceIdentity::generate().unwrap();
        let sig = a.sign("head", b"counter 7");
        assert_eq!(verify(&a.public(), "head", b"counter 7", &sig), Ok(()));
        assert_eq!(
            verify(&a.public(), "head", b"counter 6", &sig),
            Err(DeviceKeyError::BadSignature)
        );
        assert_eq!(
            verify(&a.public(), "device-list", b"counter 7", &sig),
            Err(DeviceKeyError::BadSignature)
        );
        assert_eq!(
            verify(&b.public(), "head", b"counter 7", &sig),
            Err(DeviceKeyError::BadSignature)
        );
    }

    #[test]
    fn keys_sealed_to_a_device_open_only_there_and_only_in_context() {
        let a = DeviceIdentity::generate().unwrap();
        let b = DeviceIdentity::generate().unwrap();
        let key = SecretKey::from_bytes([42; 32]);
        let sealed = seal_to(&a.public(), ctx(), &key).unwrap();
        assert_eq!(
            a.open_sealed(ctx(), &sealed).unwrap().expose(),
            key.expose()
        );
        assert_eq!(
            b.open_sealed(ctx(), &sealed).unwrap_err(),
            DeviceKeyError::CannotOpen
        );
        let other = Context::new(ObjKind::CategoryKey, 1, 0, 1);
        assert_eq!(
            a.open_sealed(other, &sealed).unwrap_err(),
            DeviceKeyError::CannotOpen
        );
        let mut bad = sealed.clone();
        bad[5] ^= 1; // the ephemeral public key
        assert!(a.open_sealed(ctx(), &bad).is_err());
        // two seals of one key differ (fresh ephemeral keys)
        assert_ne!(sealed, seal_to(&a.public(), ctx(), &key).unwrap());
    }

    #[test]
    fn identity_survives_its_secrets_round_trip() {
        let a = DeviceIdentity::generate().unwrap();
        let (s, x) = a.secrets();
        let b = DeviceIdentity::from_secrets(&s, &x);
        assert_eq!(a.public(), b.public());
        assert_eq!(format!("{b:?}"), "DeviceIdentity(<redacted>)");
    }
}
