//! The account manifest: the one signed account object that says which devices and
//! recovery methods are trusted, which account-key version is current, whether Advanced
//! Data Protection is on, and the category table. Signed by a trusted device (or a
//! recovery method) so neither the store nor the key service can change any of it.

use super::codec::{FormatError, Reader, Writer};
use super::table::CategoryTable;

pub const MANIFEST_MAGIC: &[u8; 4] = b"CRAM";
pub const MANIFEST_LAYOUT: u16 = 1;

/// Flag bits of [`Manifest::flags`].
pub const FLAG_ADP: u8 = 1;
/// The account has a second factor (TOTP on the key service, or the single device of an
/// embedded account); e2e categories are refused without it.
pub const FLAG_SECOND_FACTOR: u8 = 2;
/// A recovery key is set: the data recovery service is off.
pub const FLAG_NO_DATA_RECOVERY: u8 = 4;
/// The account uses a remote key service (`cirrus serve`): its standard keys are wrapped
/// by it, so a device that joins or recovers without it could never fetch them.
pub const FLAG_KEY_SERVICE: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Active = 1,
    Removed = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub name: String,
    pub sign: [u8; 32],
    pub kx: [u8; 32],
    pub state: DeviceState,
    /// What the device's build supports (`FEATURE_*` bits), so the account never turns
    /// on something a trusted device could not follow.
    pub features: u32,
}

/// The device can read categories moved to e2e by Advanced Data Protection.
pub const FEATURE_ADP: u32 = 1;
/// What this build supports.
pub const FEATURES: u32 = FEATURE_ADP;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryKind {
    RecoveryKey = 1,
    Contact = 2,
    Escrow = 3,
}

/// A recovery method: its public keys are derived from a secret the user (or contact, or
/// escrow) holds, so the account key can be re-wrapped to it without asking anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryEntry {
    pub kind: RecoveryKind,
    pub label: String,
    /// Argon2id salt and costs (memory KiB, passes) for deriving the method's key pairs
    /// from its secret.
    pub salt: [u8; 16],
    pub kdf_memory_kib: u32,
    pub kdf_time: u32,
    pub sign: [u8; 32],
    pub kx: [u8; 32],
}

#[cfg(test)]
impl RecoveryEntry {
    /// A recovery-key entry with placeholder keys and salt, for tests where only its
    /// presence (and its derivation cost) matter.
    pub(crate) fn placeholder(label: &str, kdf_memory_kib: u32, kdf_time: u32) -> RecoveryEntry {
        RecoveryEntry {
            kind: RecoveryKind::RecoveryKey,
            label: label.into(),
            salt: [0; 16],
            kdf_memory_kib,
            kdf_time,
            sign: [9; 32],
            kx: [9; 32],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Random at account creation: binds heads and manifests to one account.
    pub account_id: [u8; 16],
    /// Monotonic; a device refuses a manifest older than one it has seen.
    pub counter: u64,
    pub account_key_version: u32,
    pub flags: u8,
    pub devices: Vec<DeviceEntry>,
    pub recovery: Vec<RecoveryEntry>,
    /// (category, key version) → commitment to that category key, so a key service or
    /// store that hands out another key for a category (or an old version) is caught.
    pub key_commitments: Vec<(u32, u32, [u8; 32])>,
    pub table: CategoryTable,
}

/// A manifest as stored: body, signer's Ed25519 public key and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    pub body: Vec<u8>,
    pub signer: [u8; 32],
    pub sig: [u8; 64],
}

pub const SIGN_DOMAIN: &str = crate::crypto::domains::SIGN_MANIFEST;

impl Manifest {
    /// The manifest of `account_id` before anything is in it: counter 0, no device, no
    /// recovery method and an empty category table. Built on with struct update syntax.
    pub fn empty(account_id: [u8; 16]) -> Manifest {
        Manifest {
            account_id,
            counter: 0,
            account_key_version: 0,
            flags: 0,
            devices: Vec::new(),
            recovery: Vec::new(),
            key_commitments: Vec::new(),
            table: CategoryTable {
                counter: 0,
                next_id: 1,
                entries: Vec::new(),
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(MANIFEST_MAGIC)
            .u16(MANIFEST_LAYOUT)
            .raw(&self.account_id)
            .u64(self.counter)
            .u32(self.account_key_version)
            .u8(self.flags)
            .u32(self.devices.len() as u32);
        for d in &self.devices {
            w.bytes(d.name.as_bytes())
                .raw(&d.sign)
                .raw(&d.kx)
                .u8(d.state as u8)
                .u32(d.features);
        }
        w.u32(self.recovery.len() as u32);
        for r in &self.recovery {
            w.u8(r.kind as u8)
                .bytes(r.label.as_bytes())
                .raw(&r.salt)
                .u32(r.kdf_memory_kib)
                .u32(r.kdf_time)
                .raw(&r.sign)
                .raw(&r.kx);
        }
        w.u32(self.key_commitments.len() as u32);
        for (id, v, c) in &self.key_commitments {
            w.u32(*id).u32(*v).raw(c);
        }
        w.bytes(&self.table.encode());
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MANIFEST_MAGIC {
            return Err(FormatError::Invalid("not an account manifest (bad magic)"));
        }
        let layout = r.u16()?;
        if layout != MANIFEST_LAYOUT {
            return Err(FormatError::Version(layout));
        }
        let account_id: [u8; 16] = r
            .take(16)?
            .try_into()
            .map_err(|_| FormatError::Invalid("account id"))?;
        let counter = r.u64()?;
        let account_key_version = r.u32()?;
        let flags = r.u8()?;
        let n = r.count(73)?;
        let mut devices = Vec::with_capacity(n);
        for _ in 0..n {
            let name = utf8(r.bytes()?, "device name")?;
            let sign = r.hash()?;
            let kx = r.hash()?;
            let state = match r.u8()? {
                1 => DeviceState::Active,
                2 => DeviceState::Removed,
                v => {
                    return Err(FormatError::Unknown {
                        what: "device state",
                        value: v as u64,
                    });
                }
            };
            let features = r.u32()?;
            devices.push(DeviceEntry {
                name,
                sign,
                kx,
                state,
                features,
            });
        }
        let n = r.count(93)?;
        let mut recovery = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = match r.u8()? {
                1 => RecoveryKind::RecoveryKey,
                2 => RecoveryKind::Contact,
                3 => RecoveryKind::Escrow,
                v => {
                    return Err(FormatError::Unknown {
                        what: "recovery method",
                        value: v as u64,
                    });
                }
            };
            let label = utf8(r.bytes()?, "recovery label")?;
            let salt: [u8; 16] = r
                .take(16)?
                .try_into()
                .map_err(|_| FormatError::Invalid("salt"))?;
            let kdf_memory_kib = r.u32()?;
            let kdf_time = r.u32()?;
            let sign = r.hash()?;
            let kx = r.hash()?;
            recovery.push(RecoveryEntry {
                kind,
                label,
                salt,
                kdf_memory_kib,
                kdf_time,
                sign,
                kx,
            });
        }
        let n = r.count(40)?;
        let mut key_commitments = Vec::with_capacity(n);
        for _ in 0..n {
            key_commitments.push((r.u32()?, r.u32()?, r.hash()?));
        }
        let table = CategoryTable::decode(r.bytes()?)?;
        r.end()?;
        Ok(Manifest {
            account_id,
            counter,
            account_key_version,
            flags,
            devices,
            recovery,
            key_commitments,
            table,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    pub fn commitment(&self, category: u32, version: u32) -> Option<[u8; 32]> {
        self.key_commitments
            .iter()
            .find(|(c, v, _)| *c == category && *v == version)
            .map(|(_, _, h)| *h)
    }

    pub fn set_commitment(&mut self, category: u32, version: u32, commitment: [u8; 32]) {
        self.key_commitments
            .retain(|(c, v, _)| !(*c == category && *v == version));
        self.key_commitments.push((category, version, commitment));
        self.key_commitments.sort_by_key(|(c, v, _)| (*c, *v));
    }

    pub fn active_devices(&self) -> impl Iterator<Item = &DeviceEntry> {
        self.devices
            .iter()
            .filter(|d| d.state == DeviceState::Active)
    }

    /// Whether `signer` may sign account objects and heads: an active device, or a
    /// recovery method (which signs only when it adds the device being recovered).
    pub fn is_signer(&self, signer: &[u8; 32]) -> bool {
        self.active_devices().any(|d| &d.sign == signer)
            || self.recovery.iter().any(|r| &r.sign == signer)
    }
}

impl SignedManifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&self.body).raw(&self.signer).raw(&self.sig);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        let body = r.bytes()?.to_vec();
        let signer = r.hash()?;
        let sig: [u8; 64] = r
            .take(64)?
            .try_into()
            .map_err(|_| FormatError::Invalid("signature"))?;
        r.end()?;
        Ok(SignedManifest { body, signer, sig })
    }
}

/// A device asking to join, as it puts it in the store: name and public keys, signed
/// with its own key (proof of possession). The person approving compares the short
/// code of these keys, which is what stops a substituted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub name: String,
    pub sign: [u8; 32],
    pub kx: [u8; 32],
    pub features: u32,
    /// MAC under the join code's key over the signed part: only someone who saw the code
    /// on the new device's screen can make or check it.
    pub tag: [u8; 32],
    pub sig: [u8; 64],
}

pub const JOIN_MAGIC: &[u8; 4] = b"CRJR";
pub const JOIN_SIGN_DOMAIN: &str = crate::crypto::domains::SIGN_JOIN_REQUEST;

impl JoinRequest {
    /// The bytes the requesting device signs.
    pub fn signed_part(name: &str, sign: &[u8; 32], kx: &[u8; 32], features: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(JOIN_MAGIC)
            .bytes(name.as_bytes())
            .raw(sign)
            .raw(kx)
            .u32(features);
        w.finish()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Self::signed_part(&self.name, &self.sign, &self.kx, self.features);
        v.extend_from_slice(&self.tag);
        v.extend_from_slice(&self.sig);
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != JOIN_MAGIC {
            return Err(FormatError::Invalid("not a join request"));
        }
        let name = utf8(r.bytes()?, "device name")?;
        let sign = r.hash()?;
        let kx = r.hash()?;
        let features = r.u32()?;
        let tag = r.hash()?;
        let sig: [u8; 64] = r
            .take(64)?
            .try_into()
            .map_err(|_| FormatError::Invalid("signature"))?;
        r.end()?;
        Ok(JoinRequest {
            name,
            sign,
            kx,
            features,
            tag,
            sig,
        })
    }
}

/// A trusted device's answer to a join request: which manifest (by counter) it
/// published with the new device in it, its own signing key, and a MAC under the join
/// code over both and the manifest's body hash, so the new device can tell this manifest
/// came from a device that saw its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub counter: u64,
    pub approver: [u8; 32],
    pub mac: [u8; 32],
}

pub const APPROVAL_MAGIC: &[u8; 4] = b"CRAP";

impl Approval {
    /// What the MAC covers.
    pub fn mac_input(
        holder: &[u8; 32],
        counter: u64,
        body_hash: &[u8; 32],
        approver: &[u8; 32],
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + 8 + 64);
        v.extend_from_slice(holder);
        v.extend_from_slice(&counter.to_le_bytes());
        v.extend_from_slice(body_hash);
        v.extend_from_slice(approver);
        v
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(APPROVAL_MAGIC)
            .u64(self.counter)
            .raw(&self.approver)
            .raw(&self.mac);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != APPROVAL_MAGIC {
            return Err(FormatError::Invalid("not an approval"));
        }
        let counter = r.u64()?;
        let approver = r.hash()?;
        let mac = r.hash()?;
        r.end()?;
        Ok(Approval {
            counter,
            approver,
            mac,
        })
    }
}

fn utf8(b: &[u8], what: &'static str) -> Result<String, FormatError> {
    String::from_utf8(b.to_vec()).map_err(|_| FormatError::Invalid(what))
}

/// The signed envelope of a head object (layout 2). Layout 1 heads (`kv u32 | sealed`)
/// carry no signature and are read only from accounts that have no manifest yet.
pub const HEAD_MAGIC: &[u8; 4] = b"CRH2";
pub const HEAD_SIGN_DOMAIN: &str = crate::crypto::domains::SIGN_HEAD;

/// What a head signature covers: the account, the category, the key version and the
/// hash of the sealed head, so a signature cannot be moved to another account, category
/// or head.
pub fn head_signed_message(
    account_id: &[u8; 16],
    category: u32,
    key_version: u32,
    sealed: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + 8 + 32);
    m.extend_from_slice(account_id);
    m.extend_from_slice(&category.to_le_bytes());
    m.extend_from_slice(&key_version.to_le_bytes());
    m.extend_from_slice(blake3::hash(sealed).as_bytes());
    m
}

/// A head object: `"CRH2" | kv u32 | signer 32 | sig 64 | sealed`, or layout 1.
pub struct HeadEnvelope<'a> {
    pub key_version: u32,
    /// None for a layout-1 (unsigned) head.
    pub signature: Option<([u8; 32], [u8; 64])>,
    pub sealed: &'a [u8],
}

pub fn encode_head_envelope(
    key_version: u32,
    signer: &[u8; 32],
    sig: &[u8; 64],
    sealed: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 + 96 + sealed.len());
    out.extend_from_slice(HEAD_MAGIC);
    out.extend_from_slice(&key_version.to_le_bytes());
    out.extend_from_slice(signer);
    out.extend_from_slice(sig);
    out.extend_from_slice(sealed);
    out
}

pub fn decode_head_envelope(obj: &[u8]) -> Result<HeadEnvelope<'_>, FormatError> {
    let mut r = Reader::new(obj);
    if obj.starts_with(HEAD_MAGIC) {
        r.take(4)?;
        let key_version = r.u32()?;
        let signer = r.hash()?;
        let sig: [u8; 64] = r
            .take(64)?
            .try_into()
            .map_err(|_| FormatError::Invalid("signature"))?;
        Ok(HeadEnvelope {
            key_version,
            signature: Some((signer, sig)),
            sealed: &obj[4 + 4 + 32 + 64..],
        })
    } else {
        let key_version = r.u32()?;
        Ok(HeadEnvelope {
            key_version,
            signature: None,
            sealed: &obj[4..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::table::{CategoryEntry, Class};

    fn sample() -> Manifest {
        Manifest {
            account_id: [7; 16],
            counter: 9,
            account_key_version: 2,
            flags: FLAG_ADP | FLAG_SECOND_FACTOR,
            devices: vec![
                DeviceEntry {
                    name: "laptop".into(),
                    sign: [1; 32],
                    kx: [2; 32],
                    state: DeviceState::Active,
                    features: FEATURES,
                },
                DeviceEntry {
                    name: "old phone".into(),
                    sign: [3; 32],
                    kx: [4; 32],
                    state: DeviceState::Removed,
                    features: 0,
                },
            ],
            recovery: vec![RecoveryEntry {
                kind: RecoveryKind::RecoveryKey,
                label: "recovery key".into(),
                salt: [5; 16],
                kdf_memory_kib: 64,
                kdf_time: 1,
                sign: [6; 32],
                kx: [8; 32],
            }],
            key_commitments: vec![(1, 1, [10; 32])],
            table: CategoryTable {
                counter: 9,
                next_id: 2,
                entries: vec![CategoryEntry {
                    id: 1,
                    name: "Health".into(),
                    class: Class::E2e,
                    retired: false,
                    key_version: 1,
                }],
            },
        }
    }

    #[test]
    fn manifest_round_trips_and_rejects_damage() {
        let m = sample();
        let b = m.encode();
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        assert!(m.is_signer(&[1; 32]));
        assert!(!m.is_signer(&[3; 32]), "a removed device may not sign");
        assert!(m.is_signer(&[6; 32]));
        for cut in [0, 5, 30, b.len() - 1] {
            assert!(Manifest::decode(&b[..cut]).is_err());
        }
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(Manifest::decode(&bad).is_err());
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(Manifest::decode(&trailing).is_err());
        let s = SignedManifest {
            body: b,
            signer: [1; 32],
            sig: [9; 64],
        };
        assert_eq!(SignedManifest::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn head_envelopes_of_both_layouts_decode() {
        let signed = encode_head_envelope(3, &[1; 32], &[2; 64], b"sealed");
        let e = decode_head_envelope(&signed).unwrap();
        assert_eq!(e.key_version, 3);
        assert_eq!(e.signature, Some(([1; 32], [2; 64])));
        assert_eq!(e.sealed, b"sealed");
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1.extend_from_slice(b"sealed");
        let e = decode_head_envelope(&v1).unwrap();
        assert_eq!(
            (e.key_version, e.signature, e.sealed),
            (1, None, &b"sealed"[..])
        );
        assert_ne!(
            head_signed_message(&[0; 16], 1, 1, b"x"),
            head_signed_message(&[0; 16], 2, 1, b"x")
        );
    }
}
