//! The data-recovery proof (FORMAT.md §11.10): made by a data recovery for the manifest
//! that starts the account anew, and checked by a device that recovery dropped, so it can
//! say "removed by data recovery" where the chain otherwise reports an untrusted signer.

use super::*;
use crate::format::manifest::FLAG_NO_DATA_RECOVERY;
use crate::format::recovery_proof::{RecoveryProof, TAG_CONTEXT, tag_input};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A tag of the proof: a MAC of `input` under a standard category key.
fn tag(key: &SecretKey, input: &[u8]) -> [u8; 32] {
    *crypto::derive_key(TAG_CONTEXT, &[key.expose(), input]).expose()
}

/// The proof for manifest `next` (counters final), one tag per standard key recovered.
pub(crate) fn make_proof(next: &Manifest, keys: &[(u32, u32, SecretKey)]) -> RecoveryProof {
    let at = now_secs();
    let body_hash = crypto::hash(&next.encode());
    let tags = keys
        .iter()
        .map(|(c, v, k)| {
            let input = tag_input(&next.account_id, next.counter, at, &body_hash, *c, *v);
            (*c, *v, tag(k, &input))
        })
        .collect();
    RecoveryProof {
        counter: next.counter,
        at,
        tags,
    }
}

/// Who started the account anew without this device, as a checked proof says.
#[derive(Debug)]
pub(crate) struct DroppedBy {
    /// The name of the device the recovery made the only trusted one (printable).
    pub device: String,
    /// Unix seconds of the recovery.
    pub at: u64,
}

/// Whether `next_obj`, which does not follow `last` by the chain's rules, is verifiably
/// the manifest a data recovery publishes: signed by the one device it adds, which is its
/// only active one; every device of `last` kept but removed; recovery methods dropped; the
/// account key one version on; data recovery allowed by `last`; and `proof_obj` holding,
/// for this manifest, a right tag under a `standard` key that `last` names and commits to
/// and that `key` gives (a key this device holds). Only the account's devices and the key
/// service (which carries out data recovery) hold such a key, so the store alone cannot
/// make a forged manifest read as a data recovery. A tag that does not check, for a key
/// that does, fails the whole proof.
pub(crate) fn recognise(
    last: &Manifest,
    next_obj: &[u8],
    proof_obj: &[u8],
    key: impl Fn(u32, u32) -> Option<SecretKey>,
) -> Option<DroppedBy> {
    let signed_by_its_active_device =
        |m: &Manifest, s: &[u8; 32]| m.active_devices().any(|d| d.sign == *s);
    let (next, body_hash) =
        manifest::open_signed(next_obj, signed_by_its_active_device, None).ok()?;
    let n = last.devices.len();
    let shaped = next.account_id == last.account_id
        && Some(next.counter) == last.counter.checked_add(1)
        && !last.has(FLAG_NO_DATA_RECOVERY)
        && next.devices.len() == n + 1
        && next.devices[..n].iter().zip(&last.devices).all(|(a, b)| {
            a.state == DeviceState::Removed && a.sign == b.sign && a.kx == b.kx && a.name == b.name
        })
        && next.devices[n].state == DeviceState::Active
        && next.recovery.is_empty()
        && Some(next.account_key_version) == last.account_key_version.checked_add(1);
    if !shaped {
        return None;
    }
    let proof = RecoveryProof::decode(proof_obj).ok()?;
    // One tag per standard category at most: a longer proof (the store's padding, for
    // work) is no data recovery's.
    if proof.counter != next.counter || proof.tags.len() > last.table.entries.len() {
        return None;
    }
    let mut checked = false;
    for (c, v, t) in &proof.tags {
        let standard_now = last
            .table
            .active()
            .any(|e| e.id == *c && e.key_version == *v && e.class == Class::Standard);
        let Some(k) = key(*c, *v).filter(|_| standard_now) else {
            continue;
        };
        if last.commitment(*c, *v) != Some(key_commitment(&k)) {
            continue;
        }
        let input = tag_input(&next.account_id, next.counter, proof.at, &body_hash, *c, *v);
        if !crypto::ct_eq(&tag(&k, &input), t) {
            return None;
        }
        checked = true;
    }
    checked.then(|| DroppedBy {
        device: crate::keyservice::client::printable(&next.devices[n].name),
        at: proof.at,
    })
}

impl Unlocked {
    /// [`AccountError::RemovedByDataRecovery`] when `next` (the manifest after `last`,
    /// which does not follow it by the chain's rules) is a data recovery's, checked by
    /// [`recognise`] with the keys in this device's keyring.
    pub(crate) fn dropped_by_data_recovery(
        &self,
        last: &Manifest,
        next: &[u8],
    ) -> Option<AccountError> {
        let proof = self
            .store
            .get(&names::recovery_proof(last.counter.checked_add(1)?))
            .ok()?;
        let keyring = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        let by = recognise(last, next, &proof, |c, v| {
            keyring.get(c, v).map(|k| k.duplicate())
        })?;
        Some(AccountError::RemovedByDataRecovery {
            by: by.device,
            ago: crate::keyservice::client::human_wait(now_secs().saturating_sub(by.at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{SIGN_DOMAIN, SignedManifest};

    fn device(name: &str, id: &DeviceIdentity, state: DeviceState) -> DeviceEntry {
        let p = id.public();
        DeviceEntry {
            name: name.into(),
            sign: p.sign,
            kx: p.kx,
            state,
            features: FEATURES,
        }
    }

    fn signed(m: &Manifest, by: &DeviceIdentity) -> Vec<u8> {
        let body = m.encode();
        SignedManifest {
            sig: by.sign(SIGN_DOMAIN, &body),
            body,
            signer: by.public().sign,
        }
        .encode()
    }

    /// The account before the recovery (one device, Notes standard, Health e2e), and what
    /// a recovery by `new` publishes after it.
    fn accounts(
        old: &DeviceIdentity,
        new: &DeviceIdentity,
        notes: &SecretKey,
    ) -> (Manifest, Manifest) {
        let entry = |id, name: &str, class| CategoryEntry {
            id,
            name: name.into(),
            class,
            retired: false,
            key_version: 1,
        };
        let mut last = Manifest {
            account_id: [4; 16],
            counter: 7,
            account_key_version: 2,
            flags: FLAG_SECOND_FACTOR,
            devices: vec![device("laptop", old, DeviceState::Active)],
            recovery: vec![],
            key_commitments: vec![],
            table: CategoryTable {
                counter: 7,
                next_id: 3,
                entries: vec![
                    entry(1, "Notes", Class::Standard),
                    entry(2, "Health", Class::E2e),
                ],
            },
        };
        last.set_commitment(1, 1, key_commitment(notes));
        let mut next = last.clone();
        next.counter = 8;
        next.table.counter = 8;
        next.devices[0].state = DeviceState::Removed;
        next.devices
            .push(device("another", new, DeviceState::Active));
        next.account_key_version = 3;
        (last, next)
    }

    #[test]
    fn only_a_proven_data_recovery_reads_as_one() {
        let (old, new) = (
            DeviceIdentity::generate().unwrap(),
            DeviceIdentity::generate().unwrap(),
        );
        let notes = crypto::random_key().unwrap();
        let (last, next) = accounts(&old, &new, &notes);
        let obj = signed(&next, &new);
        let proof = make_proof(&next, &[(1, 1, notes.duplicate())]).encode();
        let held = |c, v| (c == 1 && v == 1).then(|| notes.duplicate());

        let by = recognise(&last, &obj, &proof, held).expect("a real data recovery");
        assert_eq!(by.device, "another");

        // A device that does not hold the key cannot tell: it says nothing of recovery.
        assert!(recognise(&last, &obj, &proof, |_, _| None).is_none());
        // A proof made without the account's key (the store alone) fails.
        let stranger = crypto::random_key().unwrap();
        let forged = make_proof(&next, &[(1, 1, stranger)]).encode();
        assert!(recognise(&last, &obj, &forged, held).is_none());
        // A proof of another manifest (here: one that kept the old device) fails.
        let mut other = next.clone();
        other.devices[0].state = DeviceState::Active;
        let other_proof = make_proof(&other, &[(1, 1, notes.duplicate())]).encode();
        assert!(recognise(&last, &obj, &other_proof, held).is_none());
        // A tag under an e2e key proves nothing (the recovery cannot have it).
        let health = crypto::random_key().unwrap();
        let mut with_health = last.clone();
        with_health.set_commitment(2, 1, key_commitment(&health));
        let e2e_proof = make_proof(&next, &[(2, 1, health.duplicate())]).encode();
        assert!(
            recognise(&with_health, &obj, &e2e_proof, |_, _| Some(
                health.duplicate()
            ))
            .is_none()
        );

        // The right proof, but not what a data recovery does: refused.
        let shapes: [fn(&mut Manifest); 5] = [
            // the old device stays trusted
            |m| m.devices[0].state = DeviceState::Active,
            // the old device disappears instead of being marked removed
            |m| {
                m.devices.remove(0);
            },
            // the account key does not move on
            |m| m.account_key_version = 2,
            // a recovery method comes with it
            |m| {
                m.recovery
                    .push(crate::format::manifest::RecoveryEntry::placeholder(
                        "x", 19456, 2,
                    ))
            },
            // a counter that skips
            |m| {
                m.counter = 9;
                m.table.counter = 9;
            },
        ];
        for change in shapes {
            let mut m = next.clone();
            change(&mut m);
            let p = make_proof(&m, &[(1, 1, notes.duplicate())]).encode();
            assert!(recognise(&last, &signed(&m, &new), &p, held).is_none());
        }
        // Signed by someone else than the device it adds.
        let other_signer = DeviceIdentity::generate().unwrap();
        assert!(recognise(&last, &signed(&next, &other_signer), &proof, held).is_none());
        // Review: a right proof padded with tags for categories this device has no key
        // of (work for it, or noise) is refused: one tag per category at most.
        let mut padded = make_proof(&next, &[(1, 1, notes.duplicate())]);
        padded
            .tags
            .extend((100..100 + last.table.entries.len() as u32).map(|c| (c, 1, [0; 32])));
        assert!(recognise(&last, &obj, &padded.encode(), held).is_none());
        // An account whose data recovery was off (a recovery key) cannot have had one.
        let mut off = last.clone();
        off.set(FLAG_NO_DATA_RECOVERY, true);
        assert!(recognise(&off, &obj, &proof, held).is_none());
    }
}
