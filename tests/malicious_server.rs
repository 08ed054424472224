//! A malicious store / key service, in the spirit of the published attacks on cloud
//! encryption (MEGA 2023, Nextcloud 2024, the five providers at CCS 2024): it edits the
//! signed manifest (device list, ADP flag, category table), signs with its own key, rolls
//! back or forks it, substitutes or swaps wrapped keys, signs heads itself, and serves
//! another account's objects. Every case must be refused with a clear error.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::crypto::SecretKey;
use cirrus::format::manifest::{
    DeviceEntry, DeviceState, FLAG_ADP, HEAD_SIGN_DOMAIN, Manifest, SIGN_DOMAIN, SignedManifest,
    decode_head_envelope, encode_head_envelope, head_signed_message,
};
use cirrus::format::names;
use cirrus::format::table::Class;
use cirrus::keys::category_key_context;
use cirrus::keys::device::DeviceIdentity;
use cirrus::keyservice::{EmbeddedKeyService, ServiceKeys};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn obj(d: &Drive, name: &str) -> PathBuf {
    d.home.join("store").join(name)
}

fn read_manifest(d: &Drive) -> (SignedManifest, Manifest) {
    let sm = SignedManifest::decode(&fs::read(obj(d, names::MANIFEST)).unwrap()).unwrap();
    let m = Manifest::decode(&sm.body).unwrap();
    (sm, m)
}

/// `cirrus ARGS --passcode-file ...`: success and output.
fn run(d: &Drive, args: &[&str]) -> (bool, String) {
    out(with_passcode(d, args))
}

/// `cirrus status` output and exit code.
fn status(d: &Drive) -> (i32, String) {
    let o = d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), t)
}

fn assert_refused(d: &Drive, needle: &str, what: &str) {
    let (code, t) = status(d);
    assert_eq!(code, 1, "{what}: must be refused:\n{t}");
    assert!(t.contains(needle), "{what}: expected {needle:?} in:\n{t}");
}

fn fresh() -> Drive {
    let mut d = Drive::mount();
    fs::write(d.notes().join("n.txt"), b"note").unwrap();
    fs::write(d.health().join("h.txt"), b"health").unwrap();
    d.unmount();
    let (code, t) = status(&d);
    assert_eq!(code, 0, "{t}");
    d
}

/// Runs `attack` on the store, checks the refusal, and restores the store.
fn attack_manifest(d: &Drive, what: &str, needle: &str, attack: impl FnOnce(&Path)) {
    let p = obj(d, names::MANIFEST);
    let saved = fs::read(&p).unwrap();
    attack(&p);
    assert_refused(d, needle, what);
    fs::write(&p, saved).unwrap();
    let (code, t) = status(d);
    assert_eq!(code, 0, "after restoring ({what}):\n{t}");
}

fn resign(m: &Manifest, with: &DeviceIdentity) -> Vec<u8> {
    let body = m.encode();
    SignedManifest {
        sig: with.sign(SIGN_DOMAIN, &body),
        signer: with.public().sign,
        body,
    }
    .encode()
}

/// The next version of `m` as a server would present it: counter + 1, edited by `edit`.
fn next(m: &Manifest, edit: impl FnOnce(&mut Manifest)) -> Manifest {
    let mut m2 = m.clone();
    m2.counter += 1;
    m2.table.counter += 1;
    edit(&mut m2);
    m2
}

#[test]
fn tampered_forged_rolled_back_or_foreign_manifests_are_refused() {
    let d = fresh();
    let (sm, m) = read_manifest(&d);
    let evil = DeviceIdentity::generate().unwrap();

    // Edits under the device's old signature.
    let with_old_sig = |m2: Manifest| {
        let mut s2 = sm.clone();
        s2.body = m2.encode();
        s2.encode()
    };
    attack_manifest(&d, "ADP flag flipped", "signature does not verify", |p| {
        fs::write(p, with_old_sig(next(&m, |m2| m2.flags ^= FLAG_ADP))).unwrap();
    });
    attack_manifest(
        &d,
        "Health moved to transit",
        "signature does not verify",
        |p| {
            let m2 = next(&m, |m2| {
                for e in &mut m2.table.entries {
                    if e.name == "Health" {
                        e.class = Class::Transit;
                    }
                }
            });
            fs::write(p, with_old_sig(m2)).unwrap();
        },
    );
    attack_manifest(
        &d,
        "device list edited (server's key swapped in for the device's)",
        "signature does not verify",
        |p| {
            let m2 = next(&m, |m2| m2.devices[0].kx = evil.public().kx);
            fs::write(p, with_old_sig(m2)).unwrap();
        },
    );
    attack_manifest(
        &d,
        "device inserted, signed by the server",
        "not a trusted device",
        |p| {
            let m2 = next(&m, |m2| {
                m2.devices.push(DeviceEntry {
                    name: "server".into(),
                    sign: evil.public().sign,
                    kx: evil.public().kx,
                    state: DeviceState::Active,
                    features: cirrus::format::manifest::FEATURES,
                })
            });
            fs::write(p, resign(&m2, &evil)).unwrap();
        },
    );
    attack_manifest(
        &d,
        "a different manifest at the same counter",
        "fork detected",
        |p| {
            let mut m2 = m.clone();
            m2.devices[0].name = "renamed".into();
            fs::write(p, resign(&m2, &evil)).unwrap();
        },
    );
    attack_manifest(&d, "unsupported manifest layout", "malformed", |p| {
        let mut s2 = sm.clone();
        s2.body[4] = 9;
        fs::write(p, s2.encode()).unwrap();
    });

    // Rollback: keep the current manifest, change the account, serve the old one again.
    let old = fs::read(obj(&d, names::MANIFEST)).unwrap();
    let (ok, t) = run(&d, &["category", "add", "Projects"]);
    assert!(ok, "{t}");
    fs::write(obj(&d, names::MANIFEST), &old).unwrap();
    assert_refused(&d, "rollback detected", "manifest rollback");
    // Deleting it outright is no better.
    fs::remove_file(obj(&d, names::MANIFEST)).unwrap();
    assert_refused(&d, "has no account manifest", "manifest deleted");
}

#[test]
fn another_accounts_objects_are_refused() {
    let d = fresh();
    let other = fresh();
    // Its manifest (validly signed by its own device), at the same counter...
    fs::copy(obj(&other, names::MANIFEST), obj(&d, names::MANIFEST)).unwrap();
    let (code, t) = status(&d);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("fork detected"), "{t}");
    // ... and after it moved on (a higher counter): its signer is not ours.
    let o = other
        .cirrus_cmd()
        .args(["category", "add", "Projects", "--passcode-file"])
        .arg(&other.passcode_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    fs::copy(obj(&other, names::MANIFEST), obj(&d, names::MANIFEST)).unwrap();
    let (code, t) = status(&d);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("another account's manifest"), "{t}");
}

#[test]
fn substituted_or_swapped_keys_and_server_signed_heads_are_refused() {
    let d = fresh();
    let (_, m) = read_manifest(&d);
    let notes = m.table.find("Notes").unwrap().clone();
    let photos = m.table.find("Photos").unwrap().clone();
    // The keyring would hide a substituted key object: a device that has to fetch keys
    // (a new or reset device) is what the server would target.
    fs::remove_file(d.home.join("device/keyring")).unwrap();

    // 1. The key service wraps a key of its own choosing for Notes (it can: standard).
    let service = EmbeddedKeyService::open(&d.home.join("keyservice")).unwrap();
    let key_path = obj(&d, &names::category_key(notes.id, notes.key_version));
    let saved = fs::read(&key_path).unwrap();
    let mut forged = vec![Class::Standard as u8];
    forged.extend(
        service
            .wrap(
                category_key_context(notes.id, notes.key_version),
                &SecretKey::from_bytes([0x42; 32]),
            )
            .unwrap(),
    );
    fs::write(&key_path, &forged).unwrap();
    let st = common::status::status_json(&d);
    let (state, why) = common::status::category_state(&st, "Notes");
    assert!(
        state != "ok" && why.contains("not the key the signed manifest commits to"),
        "{st:#}"
    );
    // 2. Photos' wrapped key served as Notes' (a swap): bound to its category, it fails.
    fs::copy(
        obj(&d, &names::category_key(photos.id, photos.key_version)),
        &key_path,
    )
    .unwrap();
    let st = common::status::status_json(&d);
    let (state, why) = common::status::category_state(&st, "Notes");
    assert!(
        state != "ok" && why.contains("failed authentication"),
        "{st:#}"
    );
    fs::write(&key_path, &saved).unwrap();

    // 3. A head re-signed by the server (it holds the standard key, so its MAC is fine).
    let head_path = obj(&d, &names::head(notes.id));
    let head = fs::read(&head_path).unwrap();
    let env = decode_head_envelope(&head).unwrap();
    let evil = DeviceIdentity::generate().unwrap();
    let msg = head_signed_message(&m.account_id, notes.id, env.key_version, env.sealed);
    let forged = encode_head_envelope(
        env.key_version,
        &evil.public().sign,
        &evil.sign(HEAD_SIGN_DOMAIN, &msg),
        env.sealed,
    );
    fs::write(&head_path, &forged).unwrap();
    let st = common::status::status_json(&d);
    let (state, why) = common::status::category_state(&st, "Notes");
    assert!(
        state != "ok" && why.contains("not a trusted device of this account"),
        "{st:#}"
    );
    // 4. The same head moved to another category (signature bound to the category).
    let photos_head = obj(&d, &names::head(photos.id));
    fs::copy(&head_path, &photos_head).ok();
    fs::write(&head_path, &head).unwrap();
    fs::copy(&head_path, &photos_head).unwrap();
    let st = common::status::status_json(&d);
    assert_eq!(
        common::status::category_state(&st, "Photos").0,
        "unavailable",
        "a head moved to another category must be refused:\n{st:#}"
    );
}

#[test]
fn a_recovery_method_can_only_add_a_device_not_rewrite_the_account() {
    use cirrus::keys::{KdfParams, recovery::RecoveryKey, recovery_identity};
    let d = fresh();
    let o = d
        .cirrus_cmd()
        .args(["recovery-key", "create", "--passcode-file"])
        .arg(&d.passcode_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let code = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 34 && l.matches('-').count() == 6)
        .unwrap();
    let (_, m) = read_manifest(&d);
    let entry = m.recovery[0].clone();
    // Whoever holds the recovery key (a thief of the paper, or a server that learned it)
    // signs a successor that turns ADP off instead of adding a device.
    let rid = recovery_identity(
        RecoveryKey::parse(code).unwrap().secret(),
        &entry.salt,
        KdfParams {
            memory_kib: entry.kdf_memory_kib,
            time: entry.kdf_time,
            lanes: 1,
        },
    )
    .unwrap();
    assert_eq!(rid.public().sign, entry.sign);
    let m2 = next(&m, |m2| m2.flags ^= FLAG_ADP);
    fs::write(obj(&d, names::MANIFEST), resign(&m2, &rid)).unwrap();
    assert_refused(
        &d,
        "does more than add the recovering device",
        "recovery-signed edit",
    );
}

fn store_listing(d: &Drive) -> Vec<(String, u64)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, u64)>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let len = e.metadata().unwrap().len();
                out.push((p.strip_prefix(base).unwrap().display().to_string(), len));
            }
        }
    }
    let base = d.home.join("store");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// Issue 9.2: a thief with the powered-off disk (no passcode) deletes the sealed anchor
/// (`device/seen`) and plants an unsigned manifest moving Health to `standard`, in the
/// device's copy and the store's. Unlock must fail (status and mount), nothing may be
/// written, and `device reanchor` only accepts a manifest this device signed itself.
#[test]
fn a_deleted_anchor_and_a_planted_manifest_are_refused() {
    let d = fresh();
    let (sm, m) = read_manifest(&d);
    let mut planted = m.clone();
    for e in &mut planted.table.entries {
        if e.name == "Health" {
            e.class = Class::Standard;
        }
    }
    let planted = SignedManifest {
        body: planted.encode(),
        signer: sm.signer,
        sig: [0; 64],
    }
    .encode();
    let store_copy = obj(&d, names::MANIFEST);
    let device_copy = d.home.join("device").join("manifest");
    let honest = fs::read(&store_copy).unwrap();
    fs::write(&store_copy, &planted).unwrap();
    fs::write(&device_copy, &planted).unwrap();
    fs::remove_file(d.home.join("device").join("seen")).unwrap();
    let before = store_listing(&d);

    assert_refused(&d, "trust anchor", "anchor deleted");
    let o = d
        .cirrus_cmd()
        .arg("mount")
        .arg(&d.mnt)
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "mount must be refused:\n{t}");
    // The hint names this drive's home (it was given with --home).
    assert!(
        t.contains(&format!(
            "cirrus --home {} device reanchor",
            d.home.display()
        )),
        "{t}"
    );
    assert!(!is_fuse_mount(&d.mnt));
    assert_eq!(
        store_listing(&d),
        before,
        "nothing was written to the store"
    );

    // Re-anchoring takes only what this device signed: the planted manifest claims this
    // device as signer, but its signature does not verify.
    let reanchor = || run(&d, &["device", "reanchor"]);
    let (ok, t) = reanchor();
    assert!(!ok, "{t}");
    assert!(t.contains("signature does not verify"), "{t}");
    assert_refused(&d, "trust anchor", "still no anchor");

    // The store was not touched (the thief had only the laptop): the way back works, and
    // Health is end-to-end as it was.
    fs::write(&store_copy, &honest).unwrap();
    let (ok, t) = reanchor();
    assert!(ok, "{t}");
    assert!(t.contains("Trust anchor rebuilt from manifest"), "{t}");
    let st = common::status::status_json(&d);
    let health = common::status::category(&st, "Health");
    assert!(
        health["protection"] == "e2e" && health["state"] == "ok",
        "{st:#}"
    );
    let (ok, t) = reanchor();
    assert!(ok && t.contains("intact"), "{t}");
}

/// Issue 9.2: the device itself refuses to sign a manifest that gives a default-e2e
/// category another class, even by retiring it and adding it again.
#[test]
fn a_default_e2e_category_cannot_come_back_with_another_class() {
    let d = fresh();
    let run = |args: &[&str]| run(&d, args);
    let (ok, t) = run(&["category", "remove", "Health"]);
    assert!(ok, "{t}");
    let (ok, t) = run(&["category", "add", "Health", "--class", "standard"]);
    assert!(!ok, "{t}");
    assert!(t.contains("always end-to-end encrypted"), "{t}");
    let (ok, t) = run(&["category", "add", "Health", "--class", "e2e"]);
    assert!(ok, "{t}");
}

/// Review of issue 9: the config is not authenticated, so a thief who also drops its
/// `account_id` (sending the home down the version-1 upgrade path) and serves an older
/// manifest this device signed alone must be refused as well, not re-anchored silently.
#[test]
fn dropping_the_account_id_does_not_skip_the_anchor() {
    let d = fresh();
    // An older manifest signed by this device alone: the one before the last change.
    let old = fs::read(obj(&d, names::MANIFEST)).unwrap();
    let (ok, t) = run(&d, &["category", "add", "Projects"]);
    assert!(ok, "{t}");
    let config = d.home.join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("account_id"), "{text}");
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("account_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&config, stripped).unwrap();
    fs::remove_file(d.home.join("device").join("seen")).unwrap();
    fs::remove_file(d.home.join("device").join("manifest")).unwrap();
    fs::write(obj(&d, names::MANIFEST), &old).unwrap();
    let before = store_listing(&d);
    assert_refused(&d, "trust anchor", "account id dropped");
    assert_eq!(
        store_listing(&d),
        before,
        "nothing was written to the store"
    );
    assert!(
        !fs::read_to_string(&config).unwrap().contains("account_id"),
        "the config was not completed"
    );
}
