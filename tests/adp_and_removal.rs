//! Advanced Data Protection, device removal and account-key rotation, on real mounts:
//! ADP needs a recovery method and moves the ADP categories to e2e under new keys while
//! mounted (the key service can no longer unwrap them); `adp off` hands them back; a
//! removed device can open nothing written afterwards; the recovery key survives an
//! account-key rotation.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::account::local::Keyring;
use cirrus::crypto::{self, SecretKey, Suite};
use cirrus::format::manifest::{Manifest, SignedManifest, decode_head_envelope};
use cirrus::format::table::Class;
use cirrus::format::{Context, ObjKind, names};
use cirrus::home::Home;
use cirrus::keys::{self, Passcode, category_key_context};
use cirrus::keyservice::{EmbeddedKeyService, ServiceKeys};
use common::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

// `cmd(d, ARGS)`: `cirrus ARGS --passcode-file P` on drive `d`.
use common::with_passcode as cmd;

fn manifest(d: &Drive) -> Manifest {
    let obj = fs::read(d.home.join("store").join(names::MANIFEST)).unwrap();
    Manifest::decode(&SignedManifest::decode(&obj).unwrap().body).unwrap()
}

fn recovery_key(d: &Drive) -> String {
    let (ok, t) = out(cmd(d, &["recovery-key", "create"]));
    assert!(ok, "{t}");
    t.lines()
        .map(str::trim)
        .find(|l| l.len() == 34 && l.matches('-').count() == 6)
        .unwrap()
        .to_string()
}

/// What the server side can do with the store and the embedded key service: unwrap the
/// current key of `category` (only if it is wrapped by the service).
fn server_unwraps(d: &Drive, category: &str) -> bool {
    let m = manifest(d);
    let e = m.table.find(category).unwrap();
    let obj = fs::read(
        d.home
            .join("store")
            .join(names::category_key(e.id, e.key_version)),
    )
    .unwrap();
    let svc = EmbeddedKeyService::open(&d.home.join("keyservice")).unwrap();
    svc.unwrap(
        category_key_context(e.id, e.key_version),
        &obj[1..],
        category,
    )
    .is_ok()
}

#[test]
fn adp_needs_a_recovery_method_then_moves_categories_to_e2e_online_and_back() {
    let mut d = Drive::mount();
    fs::write(d.notes().join("note.txt"), b"a note").unwrap();
    fs::write(d.mnt.join("Photos/p.jpg"), pseudo_random(600_000, 3)).unwrap();
    assert!(server_unwraps(&d, "Notes"));

    let (ok, t) = out(cmd(&d, &["adp", "on"]));
    assert!(!ok, "{t}");
    assert!(t.contains("recovery method"), "{t}");
    recovery_key(&d);

    // Notes was rotated once (v2), and the store plants a "left-over" v1 key object: a
    // run that only finishes an old rotation must still end with Notes under e2e.
    let (ok, t) = out(cmd(&d, &["rotate", "--category", "Notes"]));
    assert!(ok, "{t}");
    let notes_id = manifest(&d).table.find("Notes").unwrap().id;
    fs::write(
        d.home.join("store").join(names::category_key(notes_id, 1)),
        b"\x02planted by the server",
    )
    .unwrap();

    // While mounted: the daemon re-encrypts.
    let (ok, t) = out(cmd(&d, &["adp", "on"]));
    assert!(ok, "{t}");
    assert!(t.contains("Advanced Data Protection is on"), "{t}");
    let m = manifest(&d);
    for name in ["Notes", "Photos", "Backup", "Drive", "Passes"] {
        assert_eq!(m.table.find(name).unwrap().class, Class::E2e, "{name}");
        assert!(
            !server_unwraps(&d, name),
            "the service still unwraps {name}"
        );
    }
    for name in ["Mail", "Contacts", "Calendars"] {
        assert_ne!(
            m.table.find(name).unwrap().class,
            Class::E2e,
            "{name} must stay"
        );
    }
    // The old, service-wrapped key version is destroyed.
    let notes = m.table.find("Notes").unwrap();
    assert_eq!(notes.key_version, 3);
    assert!(
        !d.home
            .join("store")
            .join(names::category_key(notes.id, 2))
            .exists()
    );
    assert_eq!(fs::read(d.notes().join("note.txt")).unwrap(), b"a note");
    // Running it again has nothing left to do.
    let (ok, t) = out(cmd(&d, &["adp", "on"]));
    assert!(ok && t.contains("nothing to do"), "{t}");
    d.remount();
    assert_eq!(
        fs::read(d.mnt.join("Photos/p.jpg")).unwrap(),
        pseudo_random(600_000, 3)
    );

    let (ok, t) = out(cmd(&d, &["adp", "off"]));
    assert!(ok, "{t}");
    assert!(server_unwraps(&d, "Notes"), "adp off hands the key back");
    assert_eq!(
        manifest(&d).table.find("Notes").unwrap().class,
        Class::Standard
    );
    d.remount();
    assert_eq!(fs::read(d.notes().join("note.txt")).unwrap(), b"a note");
}

/// Every key this device holds: its keyring and account key, as a thief of the removed
/// device (with its passcode) would have them.
fn keys_of(d: &Drive) -> Vec<SecretKey> {
    let cfg: toml::Table = fs::read_to_string(d.home.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let salt = hex::decode(cfg["kdf_salt"].as_str().unwrap()).unwrap();
    let kdf = keys::KdfParams {
        memory_kib: 8192,
        time: 1,
        lanes: 1,
    };
    let secret = SecretKey::from_slice(&fs::read(d.home.join("device/secret")).unwrap()).unwrap();
    let dk = keys::device_key(&Passcode::new(PASSCODE.into()), &salt, kdf, &secret).unwrap();
    let home = Home::new(d.home.clone());
    let ring = Keyring::load(&home, &dk).unwrap();
    let mut out: Vec<SecretKey> = ring.iter().map(|(_, _, k)| k.duplicate()).collect();
    let (_, ak) = cirrus::account::local::load_account_key(&home, &dk).unwrap();
    out.push(ak);
    assert!(out.len() > 20, "the device held its keys");
    out
}

#[test]
fn a_removed_device_opens_nothing_written_afterwards() {
    let mut a = Drive::mount();
    fs::write(a.notes().join("before.txt"), b"old").unwrap();
    a.unmount();
    // B joins.
    let b = Drive::blank();
    join(&b, &a);
    let stolen = keys_of(&b);

    // A removes B while mounted and in use.
    a.mount_again();
    let (ok, t) = out(cmd(&a, &["device", "remove", "phone"]));
    assert!(ok, "{t}");
    assert!(t.contains("Removed device phone"), "{t}");
    fs::write(a.notes().join("after.txt"), b"written after the removal").unwrap();
    fs::write(a.health().join("after.txt"), b"e2e after the removal").unwrap();
    a.unmount();
    let m = manifest(&a);
    assert_eq!(m.account_key_version, 2);
    assert!(m.devices.iter().any(|d| d.name == "phone"
        && d.state == cirrus::format::manifest::DeviceState::Removed));

    // None of B's keys opens the head of any category now.
    let store = a.home.join("store");
    for e in m.table.active() {
        let Ok(obj) = fs::read(store.join(names::head(e.id))) else {
            continue;
        };
        let env = decode_head_envelope(&obj).unwrap();
        assert_eq!(env.key_version, e.key_version, "{} is rotated", e.name);
        assert!(e.key_version >= 2, "{}", e.name);
        let ctx = Context::new(ObjKind::Head, e.id, 0, 0).to_bytes();
        let suite = if e.class == Class::Transit {
            Suite::MacOnly
        } else {
            Suite::XtsBlake3
        };
        for k in &stolen {
            assert!(
                crypto::open(k, suite, &ctx, env.sealed).is_err(),
                "a key of the removed device opens the head of {}",
                e.name
            );
        }
    }
    // And B itself is told plainly.
    let (ok, t) = out(cmd(&b, &["status"]));
    assert!(!ok && t.contains("removed from the account"), "{t}");
    // A reads everything, old and new.
    a.mount_again();
    assert_eq!(fs::read(a.notes().join("before.txt")).unwrap(), b"old");
    assert_eq!(
        fs::read(a.health().join("after.txt")).unwrap(),
        b"e2e after the removal"
    );
}

#[test]
fn the_recovery_key_survives_an_account_key_rotation() {
    let mut a = Drive::mount();
    fs::write(a.health().join("h.txt"), b"health").unwrap();
    a.unmount();
    let rk = recovery_key(&a);
    let (ok, t) = out(cmd(&a, &["rotate", "--account"]));
    assert!(ok, "{t}");
    assert_eq!(manifest(&a).account_key_version, 2);
    assert!(
        !a.home.join("store/account/grants/00000001").exists()
            || fs::read_dir(a.home.join("store/account/grants/00000001"))
                .unwrap()
                .count()
                == 0,
        "grants of the old account key are gone"
    );
    a.mount_again();
    assert_eq!(fs::read(a.health().join("h.txt")).unwrap(), b"health");
    a.unmount();
    // Recover on a new device with the (unchanged) recovery key.
    let mut c = Drive::blank();
    let f = c.root.join("rk");
    fs::write(&f, &rk).unwrap();
    let mut r = c.cirrus_cmd();
    r.arg("recover")
        .arg("--recovery-key-file")
        .arg(&f)
        .args([
            "--store",
            &format!("file://{}", a.home.join("store").display()),
        ])
        .args([
            "--device-name",
            "new",
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
        ])
        .arg("--passcode-file")
        .arg(&c.passcode_file);
    let (ok, t) = out(r);
    assert!(ok, "{t}");
    c.mount_again();
    assert_eq!(fs::read(c.health().join("h.txt")).unwrap(), b"health");
}

#[test]
fn removing_a_device_offline_keeps_what_it_wrote_last_readable() {
    let mut a = Drive::mount();
    a.unmount();
    let mut b = Drive::blank();
    join(&b, &a);
    // B is the last to write Notes and Health: their heads carry only B's signature.
    b.mount_again();
    fs::write(b.notes().join("from-b.txt"), b"b wrote this").unwrap();
    fs::write(b.health().join("from-b.txt"), b"b wrote this too").unwrap();
    b.unmount();
    // A removes B while not mounted.
    let (ok, t) = out(cmd(&a, &["device", "remove", "phone"]));
    assert!(ok, "{t}");
    let st = status::json_ok(cmd(&a, &["status"]));
    let cats = st["categories"].as_array().unwrap();
    assert!(cats.iter().all(|c| c["state"] != "unavailable"), "{st:#}");
    a.mount_again();
    assert_eq!(
        fs::read(a.notes().join("from-b.txt")).unwrap(),
        b"b wrote this"
    );
    assert_eq!(
        fs::read(a.health().join("from-b.txt")).unwrap(),
        b"b wrote this too"
    );
}

#[test]
fn e2e_keys_left_under_the_previous_account_key_are_opened_and_rewrapped() {
    let mut a = Drive::mount();
    fs::write(a.health().join("h.txt"), b"health").unwrap();
    a.unmount();
    let m = manifest(&a);
    let health = m.table.find("Health").unwrap().clone();
    let key_obj = a
        .home
        .join("store")
        .join(names::category_key(health.id, health.key_version));
    let before = fs::read(&key_obj).unwrap();
    let (ok, t) = out(cmd(&a, &["rotate", "--account"]));
    assert!(ok, "{t}");
    let rewrapped = fs::read(&key_obj).unwrap();
    assert_ne!(before, rewrapped, "the rotation re-wrapped the Health key");
    // As if the rotation had stopped right after publishing the new account key: the
    // object is still under the old one, and the keyring does not help.
    fs::write(&key_obj, &before).unwrap();
    fs::remove_file(a.home.join("device/keyring")).unwrap();
    let st = status::json_ok(cmd(&a, &["status"]));
    assert_eq!(status::category_state(&st, "Health").0, "ok", "{st:#}");
    assert_ne!(
        fs::read(&key_obj).unwrap(),
        before,
        "healed: re-wrapped under the new key"
    );
    a.mount_again();
    assert_eq!(fs::read(a.health().join("h.txt")).unwrap(), b"health");
}

#[test]
fn adp_on_killed_half_way_resumes_and_finishes() {
    let mut d = Drive::mount();
    let data = pseudo_random(12 * CHUNK + 5, 11);
    fs::write(d.notes().join("big.bin"), &data).unwrap();
    fs::File::open(d.notes().join("big.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    recovery_key(&d);
    // One commit per chunk, so there is a durable point to stop at.
    let mut child = cmd(&d, &["adp", "on", "--batch", "256K"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let l = lines
            .next()
            .expect("adp on ended before reporting progress")
            .unwrap();
        let done: u64 = l
            .strip_prefix("progress: ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if done > 0 {
            break;
        }
    }
    // The daemon dies mid-way (kill -9).
    let pid: i32 = fs::read_dir(d.home.join("run"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .and_then(|e| fs::read_to_string(e.path()).ok())
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
        .expect("daemon pid");
    // SAFETY: SIGKILL to the daemon this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(!child.wait().unwrap().success());
    let (ok, t) = out({
        let mut c = d.cirrus_cmd();
        c.arg("umount").arg(&d.mnt);
        c
    });
    assert!(ok, "{t}");
    d.mark_unmounted();
    // Half-way: Notes is e2e in the signed table with a rotation pending.
    assert_eq!(manifest(&d).table.find("Notes").unwrap().class, Class::E2e);
    d.mount_again();
    assert_eq!(fs::read(d.notes().join("big.bin")).unwrap(), data);
    let (ok, t) = out(cmd(&d, &["adp", "on"]));
    assert!(ok, "{t}");
    let m = manifest(&d);
    for name in ["Notes", "Photos", "Backup", "Passes"] {
        assert_eq!(m.table.find(name).unwrap().class, Class::E2e, "{name}");
        assert!(!server_unwraps(&d, name), "{name}");
    }
    let notes = m.table.find("Notes").unwrap();
    assert!(
        !d.home
            .join("store")
            .join(names::category_key(notes.id, notes.key_version - 1))
            .exists(),
        "the old, service-wrapped key is destroyed"
    );
    d.remount();
    assert_eq!(fs::read(d.notes().join("big.bin")).unwrap(), data);
}

/// One raw request on the daemon's control socket, as any process of the user can send:
/// the final reply line.
fn control_request(d: &Drive, line: &str) -> String {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(d.home.join("run/control.sock")).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let last = BufReader::new(s).lines().map(Result::unwrap).last();
    last.expect("no reply from the daemon")
}

#[test]
fn the_control_socket_cannot_move_a_category_to_e2e_outside_adp() {
    let mut d = Drive::mount();
    fs::write(d.category_path("Mail").join("m.eml"), b"a mail").unwrap();
    fs::write(d.category_path("Contacts").join("c.vcf"), b"a card").unwrap();
    // Mail (transit: another suite) and Contacts (not an ADP category), with ADP off and
    // no recovery method: no passcode is asked on the socket, so nothing may move.
    for name in ["Mail", "Contacts", "Notes"] {
        let r = control_request(
            &d,
            &format!(r#"{{"op":"rotate","category":"{name}","class":"e2e"}}"#),
        );
        assert!(r.contains("\"error\""), "{name}: {r}");
        assert_ne!(
            manifest(&d).table.find(name).unwrap().class,
            Class::E2e,
            "{name}"
        );
    }
    // With ADP on, still only ADP's own categories.
    recovery_key(&d);
    let (ok, t) = out(cmd(&d, &["adp", "on"]));
    assert!(ok, "{t}");
    let r = control_request(&d, r#"{"op":"rotate","category":"Mail","class":"e2e"}"#);
    assert!(r.contains("\"error\""), "{r}");
    d.remount();
    assert_eq!(
        fs::read(d.category_path("Mail").join("m.eml")).unwrap(),
        b"a mail"
    );
    assert_eq!(
        fs::read(d.category_path("Contacts").join("c.vcf")).unwrap(),
        b"a card"
    );
    assert_eq!(
        manifest(&d).table.find("Mail").unwrap().class,
        Class::Transit
    );
    assert_eq!(
        manifest(&d).table.find("Contacts").unwrap().class,
        Class::Standard
    );
}
