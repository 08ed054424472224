//! Trusting the account manifest: verifying the chain of signed manifests from the one
//! this device last accepted to the newest the store serves, publishing a new one, and
//! signing and checking category heads with device keys. This is what stops a store or
//! key service from inserting a device, flipping ADP, moving Health to `transit`,
//! substituting a key or rolling anything back.

use super::adp::ADP_CATEGORIES;
use super::{AccountError, Unlocked};
use crate::crypto::{self, SecretKey};
use crate::format::manifest::{FLAG_ADP, FLAG_KEY_SERVICE};
use crate::format::manifest::{
    HEAD_SIGN_DOMAIN, Manifest, SIGN_DOMAIN, SignedManifest, decode_head_envelope,
    encode_head_envelope, head_signed_message,
};
use crate::format::names;
use crate::format::table::{Class, DEFAULT_CATEGORIES};
use crate::keys::device::{self, DeviceIdentity, DevicePublic};
use crate::store::{Store, StoreError};
use crate::volume::freshness::{Fresh, Stale, check_freshness};
use crate::volume::{HeadSignError, HeadSigner};
use std::sync::{Arc, RwLock};

/// Commitment to a category key, recorded in the signed manifest.
pub fn key_commitment(key: &SecretKey) -> [u8; 32] {
    *crypto::derive_key(crate::crypto::domains::KEY_COMMITMENT, &[key.expose()]).expose()
}

fn bad(why: impl Into<String>) -> AccountError {
    AccountError::BadManifest(why.into())
}

/// Decodes a stored manifest and checks its signature against `signer_ok`.
pub(crate) fn open_signed(
    obj: &[u8],
    signer_ok: impl Fn(&Manifest, &[u8; 32]) -> bool,
    prev: Option<&Manifest>,
) -> Result<(Manifest, [u8; 32]), AccountError> {
    let sm = SignedManifest::decode(obj).map_err(|e| bad(format!("malformed: {e}")))?;
    let m = Manifest::decode(&sm.body).map_err(|e| bad(format!("malformed: {e}")))?;
    if prev.is_some_and(|p| p.account_id != m.account_id) {
        return Err(bad("the store serves another account's manifest"));
    }
    let trust_in = prev.unwrap_or(&m);
    if !signer_ok(trust_in, &sm.signer) {
        return Err(bad(format!(
            "manifest #{} is signed by a key that is not a trusted device of this account",
            m.counter
        )));
    }
    let pk = DevicePublic {
        sign: sm.signer,
        kx: [0; 32],
    };
    device::verify(&pk, SIGN_DOMAIN, &sm.body, &sm.sig).map_err(|_| {
        bad(format!(
            "manifest #{}: the signature does not verify",
            m.counter
        ))
    })?;
    check_classes(&m)?;
    Ok((m, crypto::hash(&sm.body)))
}

/// Checks that `obj` is the direct successor of `prev`: same account, counter + 1,
/// signed by a device (or recovery method) that `prev` trusts.
pub fn verify_successor(prev: &Manifest, obj: &[u8]) -> Result<(Manifest, [u8; 32]), AccountError> {
    let sm = SignedManifest::decode(obj).map_err(|e| bad(format!("malformed: {e}")))?;
    let (m, h) = open_signed(obj, |t, s| t.is_signer(s), Some(prev))?;
    if Some(m.counter) != prev.counter.checked_add(1) {
        return Err(bad(format!(
            "manifest #{} does not follow #{}",
            m.counter, prev.counter
        )));
    }
    if !prev.active_devices().any(|d| d.sign == sm.signer) && !adds_one_device(prev, &m) {
        return Err(bad(format!(
            "manifest #{} is signed by a recovery method but does more than add the \
             recovering device",
            m.counter
        )));
    }
    check_table(&m)?;
    check_class_changes(prev, &m)?;
    Ok((m, h))
}

/// What a recovery method may sign: `prev` plus one new active device, nothing else.
fn adds_one_device(prev: &Manifest, next: &Manifest) -> bool {
    let mut expect = prev.clone();
    expect.counter = next.counter;
    expect.table.counter = next.table.counter;
    let Some(added) = next.devices.last() else {
        return false;
    };
    expect.devices.push(added.clone());
    added.state == crate::format::manifest::DeviceState::Active
        && !prev.devices.iter().any(|d| d.sign == added.sign)
        && expect == *next
}

/// A manifest taken as the first trust anchor of a joining or recovering device: it must
/// be signed by one of its own signers and list `own` as an active device. (A server that
/// fakes a whole account to a new device gains nothing from the real one: see
/// THREAT-MODEL.md.)
pub fn verify_anchor(obj: &[u8], own: &[u8; 32]) -> Result<(Manifest, [u8; 32]), AccountError> {
    let (m, h) = open_signed(obj, |t, s| t.is_signer(s), None)?;
    if !m.active_devices().any(|d| &d.sign == own) {
        return Err(bad("the manifest does not list this device"));
    }
    check_table(&m)?;
    Ok((m, h))
}

pub(crate) fn check_table(m: &Manifest) -> Result<(), AccountError> {
    if m.table.counter != m.counter {
        return Err(bad(
            "the category table counter does not match the manifest",
        ));
    }
    check_classes(m)
}

/// The categories that are end-to-end by default (Health, Keychain, ...): no manifest may
/// give any entry of these names another class, active or retired, so neither a forged
/// anchor nor a signed mistake can move Health to `standard` or bring a retired Health
/// back as `transit`.
pub fn default_e2e(name: &str) -> bool {
    let n = comparable(name);
    DEFAULT_CATEGORIES
        .iter()
        .any(|(d, c)| *c == Class::E2e && d.to_lowercase() == n)
}

/// A category name as the class rules compare it: without invisible characters, trimmed
/// and lower-cased, so "health", " Health" or "Health" with a zero-width space is Health
/// (a forged manifest cannot slip a look-alike past the rules). Look-alike letters of
/// other scripts are not folded (THREAT-MODEL.md).
pub fn comparable(name: &str) -> String {
    name.chars()
        .filter(|c| !invisible(*c))
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// Control characters and the Unicode "default ignorable" characters that render as
/// nothing (zero-width spaces and joiners, bidirectional marks, variation selectors).
pub fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}')
}

/// Refuses a manifest that gives a default-e2e category another class.
pub(crate) fn check_classes(m: &Manifest) -> Result<(), AccountError> {
    if let Some(e) = m
        .table
        .entries
        .iter()
        .find(|e| default_e2e(&e.name) && e.class != Class::E2e)
    {
        return Err(bad(format!(
            "manifest #{} makes {:?} {}, but it is always end-to-end encrypted",
            m.counter,
            e.name,
            e.class.name()
        )));
    }
    Ok(())
}

/// Refuses a successor in which a category Advanced Data Protection covers leaves `e2e`
/// without that same version turning ADP off (which only a trusted device can sign).
pub(crate) fn check_class_changes(prev: &Manifest, next: &Manifest) -> Result<(), AccountError> {
    let latest = |m: &Manifest, name: &str| {
        m.table
            .entries
            .iter()
            .filter(|e| comparable(&e.name) == comparable(name))
            .max_by_key(|e| e.id)
            .map(|e| (e.class, e.retired))
    };
    let adp_off_now = prev.has(FLAG_ADP) && !next.has(FLAG_ADP);
    for name in ADP_CATEGORIES {
        let was_e2e = latest(prev, name).is_some_and(|(c, _)| c == Class::E2e);
        let now = latest(next, name);
        if was_e2e && now.is_some_and(|(c, retired)| !retired && c != Class::E2e) && !adp_off_now {
            return Err(bad(format!(
                "manifest #{} takes {name:?} out of end-to-end encryption without turning \
                 Advanced Data Protection off",
                next.counter
            )));
        }
    }
    Ok(())
}

/// Reads the newest manifest and walks the chain from `trusted` to it. Returns the
/// newest (or `trusted` itself when nothing changed) and the etag for the next CAS.
/// Where a manifest does not follow the one before (`last`), `on_break(last, object)`
/// may tell what happened instead (a data recovery that dropped this device, proven);
/// otherwise the verification's own error stands. Nothing past the break is accepted.
pub fn fetch_chain(
    store: &dyn Store,
    trusted: &Manifest,
    trusted_hash: &[u8; 32],
    on_break: impl Fn(&Manifest, &[u8]) -> Option<AccountError>,
) -> Result<(Manifest, [u8; 32], crate::store::Etag, Vec<u8>), AccountError> {
    let successor = |prev: &Manifest, obj: &[u8]| {
        verify_successor(prev, obj).map_err(|e| on_break(prev, obj).unwrap_or(e))
    };
    let latest = match store.get(names::MANIFEST) {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => {
            return Err(bad(format!(
                "the store has no account manifest, but this device has seen manifest #{} \
                 (rolled back or replaced store?)",
                trusted.counter
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let etag = crate::store::etag_of(&latest);
    let sm = SignedManifest::decode(&latest).map_err(|e| bad(format!("malformed: {e}")))?;
    let head = Manifest::decode(&sm.body).map_err(|e| bad(format!("malformed: {e}")))?;
    match check_freshness(
        (head.counter, &crypto::hash(&sm.body)),
        (trusted.counter, trusted_hash),
    ) {
        Ok(Fresh::Newer) => {}
        Ok(Fresh::Same) => return Ok((trusted.clone(), *trusted_hash, etag, latest)),
        Err(Stale::Rollback { served, seen }) => {
            return Err(bad(format!(
                "rollback detected: the store serves manifest #{served} but this device has \
                 seen #{seen}"
            )));
        }
        Err(Stale::Fork { counter }) => {
            return Err(bad(format!(
                "fork detected: the store serves a different manifest #{counter} than this \
                 device saw"
            )));
        }
    }
    let mut cur = trusted.clone();
    let mut cur_hash = *trusted_hash;
    for c in trusted.counter + 1..head.counter {
        let obj = store
            .get(&names::manifest_version(c))
            .map_err(|e| bad(format!("manifest #{c} of the chain is unreadable: {e}")))?;
        (cur, cur_hash) = successor(&cur, &obj)?;
    }
    let _ = cur_hash;
    let (m, h) = successor(&cur, &latest)?;
    Ok((m, h, etag, latest))
}

impl Unlocked {
    /// Publishes `next` as the successor of the current manifest: signed by this device,
    /// kept in the history, then swapped in with compare-and-swap.
    pub(crate) fn publish_manifest(&mut self, mut next: Manifest) -> Result<(), AccountError> {
        // A device on a key service says so in every manifest it signs, so that a device
        // recovering the account later is told to log in to it before joining. Never
        // cleared here: a device joined without the service's address must not erase it.
        if self.config.server.is_some() {
            next.set(FLAG_KEY_SERVICE, true);
        }
        let id = self.identity.clone();
        self.publish_manifest_as(next, &id)
    }

    /// Like [`publish_manifest`], signed by `signer` (a recovery method adding the device
    /// being recovered, which the current manifest does not list yet).
    pub(crate) fn publish_manifest_as(
        &mut self,
        mut next: Manifest,
        signer: &DeviceIdentity,
    ) -> Result<(), AccountError> {
        next.counter = self
            .manifest
            .counter
            .checked_add(1)
            .ok_or_else(|| bad("manifest counter exhausted"))?;
        next.table.counter = next.counter;
        // Never sign what every other device would refuse.
        check_classes(&next)?;
        check_class_changes(&self.manifest, &next)?;
        let body = next.encode();
        let sig = signer.sign(SIGN_DOMAIN, &body);
        let obj = SignedManifest {
            body: body.clone(),
            signer: signer.public().sign,
            sig,
        }
        .encode();
        // Create-only: a device that loses a publish race must not overwrite the winner's
        // history entry (other devices verify the chain through it).
        let hist = names::manifest_version(next.counter);
        match self.store.put_if(&hist, &obj, None) {
            Ok(_) => {}
            Err(StoreError::PreconditionFailed(_)) => {
                // Left by a publish that never reached the compare-and-swap (a crash)?
                // Then the newest manifest is still older, and it may be replaced.
                let newest = self
                    .store
                    .get(names::MANIFEST)
                    .ok()
                    .and_then(|o| SignedManifest::decode(&o).ok())
                    .and_then(|sm| Manifest::decode(&sm.body).ok())
                    .map(|m| m.counter);
                if newest.is_some_and(|c| c >= next.counter) {
                    return Err(bad(
                        "another device changed the account meanwhile; run the command again",
                    ));
                }
                self.store.put(&hist, &obj)?;
            }
            Err(e) => return Err(e.into()),
        }
        let etag = self
            .store
            .put_if(names::MANIFEST, &obj, self.manifest_etag.as_ref())
            .map_err(|e| match e {
                StoreError::PreconditionFailed(_) => {
                    bad("another device changed the account meanwhile; run the command again")
                }
                e => e.into(),
            })?;
        self.accept_manifest(next, crypto::hash(&body), &obj, Some(etag))
    }

    /// Makes `m` the manifest this device trusts from now on.
    pub(crate) fn accept_manifest(
        &mut self,
        m: Manifest,
        hash: [u8; 32],
        obj: &[u8],
        etag: Option<crate::store::Etag>,
    ) -> Result<(), AccountError> {
        crate::home::write_atomic(&self.home.manifest_path(), obj)?;
        self.seen
            .record_manifest(m.counter, hash)
            .map_err(AccountError::BadManifest)?;
        if let Ok(mut s) = self.signers.write() {
            *s = signers_of(&m);
        }
        self.manifest = m;
        self.manifest_etag = etag;
        Ok(())
    }

    /// The head signer for volumes of this account.
    /// This device's index in the manifest's device list (append-only, so stable): it
    /// picks the device's own inode range in every category.
    pub fn device_slot(&self) -> Option<u32> {
        let me = self.identity.public().sign;
        self.manifest
            .devices
            .iter()
            .position(|d| d.sign == me)
            .map(|i| i as u32)
            .filter(|i| *i < crate::format::head::MAX_DEVICE_SLOTS)
    }

    pub fn head_signer(&self) -> Arc<dyn HeadSigner> {
        Arc::new(SignedHeads {
            account_id: self.manifest.account_id,
            identity: Some(self.identity.clone()),
            signers: self.signers.clone(),
            accept_unsigned: false,
        })
    }

    /// Re-publishes the head of every category this device can read (retired ones too:
    /// gc and fsck read them), signed by this device. While reading, the signatures of
    /// `extra` (the devices of a manifest being replaced) also count, and with
    /// `accept_unsigned` layout-1 heads too (the one-time upgrade of an old account).
    /// `unreadable` are categories whose keys the caller knows nobody here can open (the
    /// e2e ones a data recovery leaves behind): skipped without a warning, which is kept
    /// for real failures. Only without a running daemon: it writes heads.
    pub(crate) fn republish_heads(
        &self,
        extra: &[[u8; 32]],
        accept_unsigned: bool,
        unreadable: &[u32],
    ) -> Result<(), AccountError> {
        if let Ok(mut s) = self.signers.write() {
            s.active.extend_from_slice(extra);
        }
        let signer: Arc<dyn HeadSigner> = Arc::new(SignedHeads {
            account_id: self.manifest.account_id,
            identity: Some(self.identity.clone()),
            signers: self.signers.clone(),
            accept_unsigned,
        });
        let cache = Arc::new(crate::cache::ChunkCache::new(1 << 20));
        for (e, setup) in self.all_category_setups() {
            if unreadable.contains(&e.id) {
                continue;
            }
            let setup = match setup {
                Ok(s) => s,
                Err(why) => {
                    log::warn!("category {}: cannot re-sign its head: {why}", e.name);
                    continue;
                }
            };
            if self.store.size(&names::head(e.id)).is_err() {
                continue;
            }
            let cat = crate::volume::Category::open(
                setup,
                self.store.clone(),
                cache.clone(),
                self.seen.clone(),
                crate::volume::VolumeOptions::offline(signer.clone(), self.device_slot()),
            );
            if let Err(err) = cat.republish_head() {
                log::warn!("category {}: cannot re-sign its head: {err}", e.name);
            }
        }
        if let Ok(mut s) = self.signers.write() {
            *s = signers_of(&self.manifest);
        }
        Ok(())
    }

    /// [`republish_heads`] before a device is removed while the drive is not mounted, so
    /// no head is left that only the removed device vouches for.
    pub fn resign_heads(&self) -> Result<(), AccountError> {
        self.republish_heads(&[], false, &[])
    }
}

/// Who may sign heads, and who no longer may (so a head published by a removed device
/// is recognised as such, and replaced rather than merged).
#[derive(Default)]
pub(crate) struct Signers {
    pub active: Vec<[u8; 32]>,
    pub removed: Vec<([u8; 32], String)>,
}

pub(crate) fn signers_of(m: &Manifest) -> Signers {
    Signers {
        active: m.active_devices().map(|d| d.sign).collect(),
        removed: m
            .devices
            .iter()
            .filter(|d| d.state == crate::format::manifest::DeviceState::Removed)
            .map(|d| (d.sign, d.name.clone()))
            .collect(),
    }
}

/// A head checker with no device of its own, for a reader outside any device (the web
/// front of `cirrus serve`): it accepts exactly the heads a device of `m` would (signed
/// by one of `m`'s active devices) and signs none ([`HeadSignError::ReadOnly`]).
pub fn head_verifier(m: &Manifest) -> Arc<dyn HeadSigner> {
    Arc::new(SignedHeads {
        account_id: m.account_id,
        identity: None,
        signers: Arc::new(RwLock::new(signers_of(m))),
        accept_unsigned: false,
    })
}

/// Heads signed by this device, checked against the trusted devices of the manifest.
struct SignedHeads {
    account_id: [u8; 16],
    /// None: a checker that only reads ([`head_verifier`]).
    identity: Option<Arc<DeviceIdentity>>,
    signers: Arc<RwLock<Signers>>,
    accept_unsigned: bool,
}

impl HeadSigner for SignedHeads {
    fn envelope(
        &self,
        category: u32,
        key_version: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, HeadSignError> {
        let Some(identity) = &self.identity else {
            return Err(HeadSignError::ReadOnly);
        };
        let msg = head_signed_message(&self.account_id, category, key_version, sealed);
        let sig = identity.sign(HEAD_SIGN_DOMAIN, &msg);
        Ok(encode_head_envelope(
            key_version,
            &identity.public().sign,
            &sig,
            sealed,
        ))
    }

    fn check<'a>(&self, category: u32, obj: &'a [u8]) -> Result<(u32, &'a [u8]), HeadSignError> {
        let e = decode_head_envelope(obj)?;
        let Some((signer, sig)) = e.signature else {
            if self.accept_unsigned {
                return Ok((e.key_version, e.sealed));
            }
            return Err(HeadSignError::Unsigned);
        };
        let trusted = self
            .signers
            .read()
            .map(|s| s.active.contains(&signer))
            .unwrap_or(false);
        if !trusted {
            return Err(HeadSignError::UntrustedSigner);
        }
        let msg = head_signed_message(&self.account_id, category, e.key_version, e.sealed);
        let pk = DevicePublic {
            sign: signer,
            kx: [0; 32],
        };
        device::verify(&pk, HEAD_SIGN_DOMAIN, &msg, &sig)
            .map_err(|_| HeadSignError::BadSignature)?;
        Ok((e.key_version, e.sealed))
    }

    fn revoked_signer(&self, category: u32, obj: &[u8]) -> Option<String> {
        let e = decode_head_envelope(obj).ok()?;
        let (signer, sig) = e.signature?;
        let name = self
            .signers
            .read()
            .ok()?
            .removed
            .iter()
            .find(|(k, _)| *k == signer)
            .map(|(_, n)| n.clone())?;
        let msg = head_signed_message(&self.account_id, category, e.key_version, e.sealed);
        let pk = DevicePublic {
            sign: signer,
            kx: [0; 32],
        };
        device::verify(&pk, HEAD_SIGN_DOMAIN, &msg, &sig).ok()?;
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::table::{CategoryEntry, CategoryTable};

    fn signed_heads(identity: DeviceIdentity, trusted: [u8; 32]) -> SignedHeads {
        SignedHeads {
            account_id: [1; 16],
            identity: Some(Arc::new(identity)),
            signers: Arc::new(RwLock::new(Signers {
                active: vec![trusted],
                removed: vec![],
            })),
            accept_unsigned: false,
        }
    }

    #[test]
    fn a_refused_head_says_why_as_a_variant() {
        let me = DeviceIdentity::generate().unwrap();
        let trusted = me.public().sign;
        let heads = signed_heads(me, trusted);
        let obj = heads.envelope(3, 1, b"sealed").unwrap();
        assert!(matches!(heads.check(3, &obj), Ok((1, s)) if s == b"sealed"));
        // The signature covers the category.
        assert!(matches!(
            heads.check(4, &obj),
            Err(HeadSignError::BadSignature)
        ));
        let stranger = signed_heads(DeviceIdentity::generate().unwrap(), trusted);
        let theirs = stranger.envelope(3, 1, b"sealed").unwrap();
        assert!(matches!(
            heads.check(3, &theirs),
            Err(HeadSignError::UntrustedSigner)
        ));
        let layout1 = crate::volume::UnsignedHeads
            .envelope(3, 1, b"sealed")
            .unwrap();
        assert!(matches!(
            heads.check(3, &layout1),
            Err(HeadSignError::Unsigned)
        ));
        assert!(matches!(
            crate::volume::UnsignedHeads.check(3, &obj),
            Err(HeadSignError::SignedWithoutManifest)
        ));
        assert!(matches!(
            heads.check(3, &[1, 2]),
            Err(HeadSignError::Malformed(_))
        ));
    }

    #[test]
    fn the_read_only_verifier_takes_the_heads_of_active_devices_and_signs_none() {
        use crate::format::manifest::{DeviceEntry, DeviceState};
        let device = |id: &DeviceIdentity, state| DeviceEntry {
            name: "d".into(),
            sign: id.public().sign,
            kx: id.public().kx,
            state,
            features: 0,
        };
        let me = DeviceIdentity::generate().unwrap();
        let gone = DeviceIdentity::generate().unwrap();
        let mut m = manifest(&[], false);
        m.devices = vec![
            device(&me, DeviceState::Active),
            device(&gone, DeviceState::Removed),
        ];
        let verifier = head_verifier(&m);
        let mine = signed_heads(me, [0; 32]).envelope(3, 1, b"sealed").unwrap();
        assert!(matches!(verifier.check(3, &mine), Ok((1, s)) if s == b"sealed"));
        assert!(matches!(
            verifier.check(4, &mine),
            Err(HeadSignError::BadSignature)
        ));
        // A removed device, a key the manifest never named, a layout-1 head: refused.
        for id in [gone, DeviceIdentity::generate().unwrap()] {
            let theirs = signed_heads(id, [0; 32]).envelope(3, 1, b"sealed").unwrap();
            assert!(matches!(
                verifier.check(3, &theirs),
                Err(HeadSignError::UntrustedSigner)
            ));
        }
        let layout1 = crate::volume::UnsignedHeads
            .envelope(3, 1, b"sealed")
            .unwrap();
        assert!(matches!(
            verifier.check(3, &layout1),
            Err(HeadSignError::Unsigned)
        ));
        // Another account's head, signed by the same device, does not verify here.
        m.account_id = [2; 16];
        assert!(matches!(
            head_verifier(&m).check(3, &mine),
            Err(HeadSignError::BadSignature)
        ));
        assert!(matches!(
            verifier.envelope(3, 1, b"sealed"),
            Err(HeadSignError::ReadOnly)
        ));
    }

    fn manifest(entries: &[(&str, Class, bool)], adp: bool) -> Manifest {
        let mut m = Manifest {
            account_id: [1; 16],
            counter: 5,
            account_key_version: 1,
            flags: 0,
            devices: vec![],
            recovery: vec![],
            key_commitments: vec![],
            table: CategoryTable {
                counter: 5,
                next_id: entries.len() as u32 + 1,
                entries: entries
                    .iter()
                    .enumerate()
                    .map(|(i, (name, class, retired))| CategoryEntry {
                        id: i as u32 + 1,
                        name: name.to_string(),
                        class: *class,
                        retired: *retired,
                        key_version: 1,
                    })
                    .collect(),
            },
        };
        m.set(FLAG_ADP, adp);
        m
    }

    #[test]
    fn default_e2e_categories_never_take_another_class_active_or_retired() {
        use Class::*;
        assert!(
            check_classes(&manifest(
                &[("Health", E2e, false), ("Notes", Standard, false)],
                false
            ))
            .is_ok()
        );
        for bad in [
            manifest(&[("Health", Standard, false)], false),
            manifest(&[("Keychain", Transit, false)], false),
            // A retired Health cannot come back as standard, either entry.
            manifest(&[("Health", E2e, true), ("Health", Standard, false)], false),
            manifest(&[("Bluetooth Keys", Standard, true)], false),
        ] {
            let e = check_classes(&bad).unwrap_err().to_string();
            assert!(e.contains("always end-to-end encrypted"), "{e}");
        }
        // Look-alikes count as the real name.
        for name in [
            "health",
            " Health",
            "Health\u{200B}",
            "He\u{00AD}alth",
            "KEYCHAIN",
        ] {
            let m = manifest(&[(name, Standard, false)], false);
            assert!(check_classes(&m).is_err(), "{name:?}");
        }
        // Every default-e2e name of the default table is covered.
        let n = DEFAULT_CATEGORIES.iter().filter(|(_, c)| *c == E2e).count();
        assert_eq!(n, 14);
    }

    #[test]
    fn adp_categories_leave_e2e_only_with_adp_turned_off_in_the_same_version() {
        use Class::*;
        let on = manifest(&[("Photos", E2e, false), ("Mail", Transit, false)], true);
        let moved = |adp| {
            manifest(
                &[("Photos", Standard, false), ("Mail", Transit, false)],
                adp,
            )
        };
        // adp off: the flag goes with the class change.
        assert!(check_class_changes(&on, &moved(false)).is_ok());
        // The class changes, ADP stays on: refused.
        let e = check_class_changes(&on, &moved(true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("without turning Advanced Data Protection off"),
            "{e}"
        );
        // ADP was never on, Photos e2e: it cannot become standard either.
        let off = manifest(&[("Photos", E2e, false)], false);
        assert!(
            check_class_changes(&off, &manifest(&[("Photos", Standard, false)], false)).is_err()
        );
        // Nor by retiring it and adding it again as standard.
        let readded = manifest(&[("Photos", E2e, true), ("Photos", Standard, false)], true);
        assert!(check_class_changes(&on, &readded).is_err());
        // Retiring alone, and moving into e2e (adp on), are fine.
        assert!(check_class_changes(&on, &manifest(&[("Photos", E2e, true)], true)).is_ok());
        let std = manifest(&[("Photos", Standard, false)], false);
        assert!(check_class_changes(&std, &manifest(&[("Photos", E2e, false)], true)).is_ok());
        // Other categories are not covered.
        let mail = manifest(&[("Mail", E2e, false)], false);
        assert!(check_class_changes(&mail, &manifest(&[("Mail", Transit, false)], false)).is_ok());
    }
}
