//! Keys of a web session under Advanced Data Protection (FORMAT.md §9e): the X25519 key
//! pair the key service makes for one browser sign-in (its secret only ever in that
//! server's memory), the sign-in code whose MAC commits to its public key, and the
//! category keys a trusted device releases to it, sealed to that key and bound to the
//! account, the session, the category and the key version.

use super::join::{self, JoinCode};
use crate::crypto::{self, CryptoError, SecretKey};
use crate::format::{Context, ObjKind};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Why a release does not seal or open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("the web session's public key is not a usable X25519 key")]
    BadPublicKey,
    #[error("the released key is malformed or was not sealed to this web session")]
    CannotOpen,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The sealing context of a release: kind, category and key version.
fn context(category: u32, version: u32) -> Context {
    Context::new(ObjKind::WebRelease, category, 0, u64::from(version))
}

fn kek(
    shared: &[u8; 32],
    eph: &[u8; 32],
    recipient: &[u8; 32],
    account: &str,
    session: &str,
) -> SecretKey {
    crypto::derive_key(
        crypto::domains::SEAL_TO_WEB_SESSION,
        &[
            shared,
            eph,
            recipient,
            account.as_bytes(),
            session.as_bytes(),
        ],
    )
}

/// A MAC under the sign-in code's key, in `domain`, over
/// [`crate::format::web::session_key_message`].
fn code_mac(
    code: &JoinCode,
    domain: &str,
    account: &str,
    session: &str,
    public: &[u8; 32],
) -> [u8; 32] {
    let key = code.key_for(crypto::domains::WEB_SIGN_IN_CODE);
    join::mac(
        &key,
        domain,
        &crate::format::web::session_key_message(account, session, public),
    )
}

/// The MAC of a web sign-in code over the session's public key, which the server
/// publishes for the approving device to find the session by.
pub fn session_key_mac(
    code: &JoinCode,
    account: &str,
    session: &str,
    public: &[u8; 32],
) -> [u8; 32] {
    code_mac(
        code,
        crypto::domains::MAC_WEB_SESSION_KEY,
        account,
        session,
        public,
    )
}

/// The approving device's proof that it holds the code (another MAC domain over the same
/// message): the server checks it against the code it made, so no API session alone,
/// without the code, approves a sign-in.
pub fn approval_proof(
    code: &JoinCode,
    account: &str,
    session: &str,
    public: &[u8; 32],
) -> [u8; 32] {
    code_mac(
        code,
        crypto::domains::MAC_WEB_APPROVAL,
        account,
        session,
        public,
    )
}

/// Whether `mac` is the code's MAC over this session's key, compared in constant time.
pub fn session_key_mac_ok(
    code: &JoinCode,
    account: &str,
    session: &str,
    public: &[u8; 32],
    mac: &[u8],
) -> bool {
    crypto::ct_eq(&session_key_mac(code, account, session, public), mac)
}

/// The key pair of one web session. No `Clone`; `Debug` is redacted; the secret is wiped
/// on drop (x25519-dalek zeroizes `StaticSecret`).
pub struct WebSessionKey(StaticSecret);

impl std::fmt::Debug for WebSessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebSessionKey(<redacted>)")
    }
}

impl WebSessionKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut s = Zeroizing::new([0u8; 32]);
        crypto::random_bytes(&mut s[..])?;
        Ok(WebSessionKey(StaticSecret::from(*s)))
    }

    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// Opens a key released with [`seal_release`] to this session, for exactly this
    /// account, session, category and key version.
    pub fn open_release(
        &self,
        account: &str,
        session: &str,
        category: u32,
        version: u32,
        sealed: &[u8],
    ) -> Result<SecretKey, ReleaseError> {
        let (eph, wrapped) = sealed
            .split_first_chunk::<32>()
            .ok_or(ReleaseError::CannotOpen)?;
        let shared = self.0.diffie_hellman(&PublicKey::from(*eph));
        if !shared.was_contributory() {
            return Err(ReleaseError::CannotOpen);
        }
        let kek = kek(shared.as_bytes(), eph, &self.public(), account, session);
        super::unwrap(
            &kek,
            context(category, version),
            wrapped,
            "key released to a web session",
        )
        .map_err(|_| ReleaseError::CannotOpen)
    }
}

/// Seals category key `version` of `category` to a web session's public key. Layout:
/// ephemeral X25519 public key (32) | the key wrapped (§1.3) under a key derived from the
/// shared secret, both public keys, the account and the session id.
pub fn seal_release(
    recipient: &[u8; 32],
    account: &str,
    session: &str,
    category: u32,
    version: u32,
    key: &SecretKey,
) -> Result<Vec<u8>, ReleaseError> {
    let mut e = Zeroizing::new([0u8; 32]);
    crypto::random_bytes(&mut e[..])?;
    seal_release_with(&e, recipient, account, session, category, version, key)
}

fn seal_release_with(
    eph_secret: &[u8; 32],
    recipient: &[u8; 32],
    account: &str,
    session: &str,
    category: u32,
    version: u32,
    key: &SecretKey,
) -> Result<Vec<u8>, ReleaseError> {
    let eph = StaticSecret::from(*eph_secret);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*recipient));
    if !shared.was_contributory() {
        return Err(ReleaseError::BadPublicKey);
    }
    let kek = kek(shared.as_bytes(), &eph_pub, recipient, account, session);
    let mut out = eph_pub.to_vec();
    out.extend_from_slice(
        &super::wrap(&kek, context(category, version), key)
            .map_err(|_| ReleaseError::CannotOpen)?,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_opens_only_for_its_session_account_category_and_version() {
        let s = WebSessionKey::generate().unwrap();
        let other = WebSessionKey::generate().unwrap();
        let key = SecretKey::from_bytes([5; 32]);
        let sealed = seal_release(&s.public(), "alice", "00aa", 3, 2, &key).unwrap();
        let open = |k: &WebSessionKey, a, id, c, v| k.open_release(a, id, c, v, &sealed);
        assert_eq!(
            open(&s, "alice", "00aa", 3, 2).unwrap().expose(),
            key.expose()
        );
        for bad in [
            open(&other, "alice", "00aa", 3, 2),
            open(&s, "bob", "00aa", 3, 2),
            open(&s, "alice", "00ab", 3, 2),
            open(&s, "alice", "00aa", 4, 2),
            open(&s, "alice", "00aa", 3, 1),
        ] {
            assert_eq!(bad.err(), Some(ReleaseError::CannotOpen));
        }
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(s.open_release("alice", "00aa", 3, 2, &flipped).is_err());
        assert!(
            s.open_release("alice", "00aa", 3, 2, &sealed[..31])
                .is_err()
        );
        // A low-order point as the session key is refused, not sealed to.
        assert_eq!(
            seal_release(&[0; 32], "alice", "00aa", 3, 2, &key).err(),
            Some(ReleaseError::BadPublicKey)
        );
    }

    #[test]
    fn the_code_mac_commits_to_the_key_account_and_session() {
        let code = JoinCode::parse("ABCD-EFGH-JKMN-PQRS").unwrap();
        let pk = [9u8; 32];
        let mac = session_key_mac(&code, "alice", "0011223344556677", &pk);
        assert!(session_key_mac_ok(
            &code,
            "alice",
            "0011223344556677",
            &pk,
            &mac
        ));
        assert!(!session_key_mac_ok(
            &code,
            "alice",
            "0011223344556677",
            &[8; 32],
            &mac
        ));
        assert!(!session_key_mac_ok(
            &code,
            "bob",
            "0011223344556677",
            &pk,
            &mac
        ));
        assert!(!session_key_mac_ok(
            &code,
            "alice",
            "0011223344556678",
            &pk,
            &mac
        ));
        let typo = JoinCode::parse("ABCD-EFGH-JKMN-PQRT").unwrap();
        assert!(!session_key_mac_ok(
            &typo,
            "alice",
            "0011223344556677",
            &pk,
            &mac
        ));
        // The proof is another MAC than the one the server publishes.
        assert_ne!(approval_proof(&code, "alice", "0011223344556677", &pk), mac);
        // Not the join code's key: a join MAC never passes as a web one.
        assert_ne!(
            code.key().expose(),
            code.key_for(crypto::domains::WEB_SIGN_IN_CODE).expose()
        );
    }

    #[test]
    fn known_answer_vectors() {
        // FORMAT.md §9e test vectors: fixed session and ephemeral secrets.
        let s = WebSessionKey(StaticSecret::from([1u8; 32]));
        let key = SecretKey::from_bytes([2; 32]);
        let sealed = seal_release_with(
            &[3u8; 32],
            &s.public(),
            "alice",
            "0011223344556677",
            7,
            1,
            &key,
        )
        .unwrap();
        let eph = StaticSecret::from([3u8; 32]);
        let eph_pub = PublicKey::from(&eph).to_bytes();
        assert_eq!(sealed[..32], eph_pub);
        let shared = eph.diffie_hellman(&PublicKey::from(s.public()));
        let k = kek(
            shared.as_bytes(),
            &eph_pub,
            &s.public(),
            "alice",
            "0011223344556677",
        );
        let h = |b: &[u8]| hex::encode(b);
        assert_eq!(
            h(&s.public()),
            "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
        );
        assert_eq!(
            h(&eph_pub),
            "5dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22"
        );
        assert_eq!(
            h(shared.as_bytes()),
            "b0190541a2abb8bc163b6eef0fae7ba0179004b444326f73809563164d47c521"
        );
        assert_eq!(
            h(k.expose()),
            "c23e75750d7845a5d1af4b162d7281aeb92e30af0971f485d24aaf88e06e4451"
        );
        assert_eq!(
            h(&context(7, 1).to_bytes()),
            "63697272757301000d07000000000000000000000001000000000000000000"
        );
        let code = JoinCode::parse("ABCD-EFGH-JKMN-PQRS").unwrap();
        assert_eq!(
            h(&session_key_mac(
                &code,
                "alice",
                "0011223344556677",
                &s.public()
            )),
            "26350c50a60b61948f7ca57798cae7b52fc6afac7d16c0e872a043a4160d416f"
        );
        assert_eq!(
            s.open_release("alice", "0011223344556677", 7, 1, &sealed)
                .unwrap()
                .expose(),
            key.expose()
        );
    }
}
