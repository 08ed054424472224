//! An account on a real `cirrus serve` (TLS on 127.0.0.1), through the command line and
//! real mounts: init pins the server, standard keys are wrapped by the service, e2e
//! categories stay locked until TOTP is enrolled, a wrong fingerprint is refused, and the
//! service key rotates.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::accounts::*;
use common::keyserver::Server;
use common::*;
use std::fs;

#[test]
fn a_wrong_fingerprint_is_refused_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let other = format!("SHA256:{}", "ab".repeat(32));
    let (d, _, ok, t) = init_on_server(&srv, &other);
    assert!(!ok, "{t}");
    assert!(t.contains("identity has changed"), "{t}");
    assert!(!d.home.join("config.toml").exists());
    // The server holds no account.
    let accounts: Vec<_> = fs::read_dir(&srv.data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("acc"))
        .collect();
    let n: usize = accounts
        .iter()
        .map(|a| fs::read_dir(a.path()).map(|r| r.count()).unwrap_or(0))
        .sum();
    assert_eq!(n, 0, "an account was created despite the wrong fingerprint");
}

#[test]
fn e2e_needs_totp_standard_keys_live_on_the_server_and_the_service_key_rotates() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut d, pw, ok, t) = init_on_server(&srv, &srv.fingerprint.to_string());
    assert!(ok, "{t}");
    assert!(
        t.contains(&format!(
            "cirrus --home {} account totp enroll",
            d.home.display()
        )),
        "{t}"
    );
    assert!(
        !d.home.join("keyservice").exists(),
        "no embedded key service"
    );

    // Before TOTP: standard works; e2e categories are not mounted, and mount says why.
    let (ok, t) = out({
        let mut c = d.cirrus_cmd();
        c.arg("mount")
            .arg(&d.mnt)
            .arg("--passcode-file")
            .arg(&d.passcode_file);
        c
    });
    assert!(ok, "{t}");
    assert!(
        t.contains("not shown: Health") && t.contains("two-factor"),
        "{t}"
    );
    d.mark_mounted();
    fs::write(d.notes().join("n.txt"), b"standard").unwrap();
    assert!(!d.mnt.join("Health").exists());
    d.unmount();
    let st = status::json_ok(with_pw(&d, &pw, &["status"]));
    let (state, why) = status::category_state(&st, "Health");
    assert!(state == "locked" && why.contains("two-factor"), "{st:#}");

    // Enrol TOTP with a code computed from the URI, as an authenticator app would.
    let (ok, t) = out(with_pw(&d, &pw, &["account", "totp", "enroll"]));
    assert!(ok, "{t}");
    let uri = t
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI in:\n{t}"))
        .to_string();
    assert_eq!(
        scan_terminal_qr(&t, &d.root),
        uri,
        "the QR code does not scan as the URI"
    );
    let totp = totp_rs::Totp::from_url(&uri).unwrap();
    let code = totp.generate_current().to_string();
    let (ok, t) = out(with_pw(&d, &pw, &["account", "totp", "confirm", &code]));
    assert!(ok, "{t}");
    d.mount_again();
    fs::write(d.health().join("h.txt"), b"e2e").unwrap();
    assert_eq!(fs::read(d.notes().join("n.txt")).unwrap(), b"standard");
    d.unmount();

    // The standard keys come from the key service: without this device's keyring and
    // without a session, Notes cannot be unlocked; with the password it can.
    fs::remove_file(d.home.join("device/keyring")).unwrap();
    let mut plain = d.cirrus_cmd();
    plain
        .arg("status")
        .arg("--passcode-file")
        .arg(&d.passcode_file);
    let st = status::json_ok(plain);
    let (state, why) = status::category_state(&st, "Notes");
    assert!(
        state == "locked" && why.contains("needs the key service"),
        "{st:#}"
    );

    // Service-key rotation re-wraps every standard key on the server (and then retires
    // the old versions, which needs a fresh second factor).
    let mut codes = Codes::after_confirm(totp);
    let (ok, t) = out(with_pw_totp(
        &d,
        &pw,
        &codes.take(),
        &["rotate", "--service"],
    ));
    assert!(ok, "{t}");
    assert!(t.contains("Rotated the service key"), "{t}");
    fs::remove_file(d.home.join("device/keyring")).unwrap();
    let st = status::json_ok(with_pw(&d, &pw, &["status"]));
    assert_eq!(status::category_state(&st, "Notes").0, "ok", "{st:#}");
    assert_eq!(status::category_state(&st, "Health").0, "ok", "{st:#}");
}

fn recover_data(srv: &Server, alice: &Drive, totp: &str) -> (Drive, bool, String) {
    recover_data_from(srv, alice, totp, "a brand new password")
}

#[test]
fn data_recovery_brings_back_standard_categories_and_says_e2e_cannot_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, _pw, totp) = alice_with_totp(&srv);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"recoverable").unwrap();
    fs::write(a.health().join("h.txt"), b"not recoverable").unwrap();
    a.unmount();

    // Every device is lost; a wrong code is refused.
    let (c0, ok, t) = recover_data(&srv, &a, "000000");
    assert!(!ok, "{t}");
    drop(c0);
    // A wrong reset code holds the next try back for a second, counted from the end of
    // the second it came in (persistent backoff): up to two seconds from here.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (mut c, ok, t) = recover_data(&srv, &a, &fresh_code(&totp));
    assert!(ok, "{t}");
    let rec = t.lines().find(|l| l.starts_with("Recovered")).unwrap();
    assert!(rec.contains("Notes") && !rec.contains("Health"), "{t}");
    let lost = t.lines().find(|l| l.starts_with("NOT recovered")).unwrap();
    assert!(lost.contains("Health") && lost.contains("Keychain"), "{t}");
    c.mount_again();
    assert_eq!(fs::read(c.notes().join("n.txt")).unwrap(), b"recoverable");
    assert!(
        !c.health().join("h.txt").exists(),
        "e2e data must not come back"
    );
    fs::write(c.health().join("new.txt"), b"new e2e data").unwrap();
    c.unmount();
    // The old device is no longer trusted by the new circle.
    let (ok, t) = out({
        let mut s = a.cirrus_cmd();
        s.args(["status", "--passcode-file"]).arg(&a.passcode_file);
        s
    });
    assert!(!ok, "{t}");
}

#[test]
fn with_a_recovery_key_the_data_recovery_service_is_off() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let (ok, t) = out(with_pw_totp(
        &a,
        &pw,
        &codes.take(),
        &["recovery-key", "create"],
    ));
    assert!(ok, "{t}");
    // The key service itself was told (so it refuses a reset even if the store lied).
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(ok && t.contains("data recovery service: off"), "{t}");
    let (_c, ok, t) = recover_data(&srv, &a, &codes.take());
    assert!(!ok, "{t}");
    assert!(t.contains("data recovery service is off"), "{t}");
}

fn recover_via(
    srv: &Server,
    alice: &Drive,
    how: &[&str],
    passcode: &str,
    pw: &std::path::Path,
    code: &str,
) -> (Drive, bool, String) {
    recover_via_with(srv, alice, how, passcode, pw, code, false)
}

/// [`recover_via`]; `floor_costs`: without the suite's test opt-in to cheap KDF costs, and
/// with this device's own costs at the protocol floor (19 MiB, t = 2).
fn recover_via_with(
    srv: &Server,
    alice: &Drive,
    how: &[&str],
    passcode: &str,
    pw: &std::path::Path,
    code: &str,
    floor_costs: bool,
) -> (Drive, bool, String) {
    let [kdf_memory, kdf_time] = if floor_costs {
        ["19456", "2"]
    } else {
        ["8192", "1"]
    };
    let c = Drive::blank();
    let pc = c.root.join("recovery-passcode");
    fs::write(&pc, passcode).unwrap();
    let mut cmd = c.cirrus_cmd();
    cmd.arg("recover")
        .args(how)
        .args([
            "--store",
            &format!("file://{}", alice.home.join("store").display()),
        ])
        .args([
            "--device-name",
            "new laptop",
            "--kdf-memory",
            kdf_memory,
            "--kdf-time",
            kdf_time,
        ])
        .args([
            "--server",
            &srv.url,
            "--fingerprint",
            &srv.fingerprint.to_string(),
        ])
        .args(["--account", "alice", "--totp", code])
        .arg("--password-file")
        .arg(pw)
        .arg("--passcode-file")
        .arg(&pc);
    if floor_costs {
        cmd.env_remove(cirrus::keys::floor::INSECURE_TEST_ENV);
    }
    let (ok, t) = out(cmd);
    if ok {
        fs::copy(&pc, &c.passcode_file).unwrap();
    }
    (c, ok, t)
}

/// Issue 9.5: a device that logs in through its remembered token may not change the
/// account's recovery; the command says which flag it needs, and works with it.
#[test]
fn escrow_on_needs_a_fresh_totp_code_on_a_totp_account() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let (ok, t) = out(with_pw(&a, &pw, &["escrow", "on"]));
    assert!(!ok, "{t}");
    assert!(
        t.contains("fresh second factor") && t.contains("--totp CODE"),
        "{t}"
    );
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(ok && t.contains("passcode escrow: off"), "{t}");
    let (ok, t) = out(with_pw_totp(&a, &pw, &codes.take(), &["escrow", "on"]));
    assert!(ok, "{t}");
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(ok && t.contains("passcode escrow: on"), "{t}");
}

#[test]
fn passcode_escrow_counts_wrong_passcodes_and_recovers_e2e_data() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &["--escrow-attempts", "3"]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.health().join("h.txt"), b"escrowed e2e").unwrap();
    a.unmount();
    let (ok, t) = out(with_pw_totp(&a, &pw, &codes.take(), &["escrow", "on"]));
    assert!(ok, "{t}");
    assert!(t.contains("offline"), "the limits are said plainly: {t}");

    let (_c, ok, t) = recover_via(
        &srv,
        &a,
        &["--escrow"],
        "not the passcode",
        &pw,
        &codes.take(),
    );
    assert!(!ok, "{t}");
    assert!(t.contains("2 tries left"), "{t}");
    let (mut c, ok, t) = recover_via(&srv, &a, &["--escrow"], PASSCODE, &pw, &codes.take());
    assert!(ok, "{t}");
    c.mount_again();
    assert_eq!(fs::read(c.health().join("h.txt")).unwrap(), b"escrowed e2e");
}

/// Issue 9.1: a store that serves a self-signed manifest naming cheap Argon2 costs for the
/// escrow gets no proof to brute-force: `recover --escrow` refuses before anything derived
/// from the passcode leaves the device, and the key service (whose log records every
/// request) never sees `escrow/open`.
#[test]
fn recover_escrow_refuses_cheap_costs_from_the_store_before_sending_a_proof() {
    use cirrus::format::manifest::{
        DeviceEntry, DeviceState, FEATURES, Manifest, RecoveryKind, SIGN_DOMAIN, SignedManifest,
    };
    use cirrus::keys::device::DeviceIdentity;
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let (ok, t) = out(with_pw_totp(&a, &pw, &codes.take(), &["escrow", "on"]));
    assert!(ok, "{t}");
    let server_log = || fs::read_to_string(tmp.path().join("server.log")).unwrap();
    assert!(
        server_log().contains("escrow/put"),
        "the log records requests"
    );

    // The forged manifest: the escrow at 8 KiB, t=1, signed by a device it adds itself.
    let mpath = a.home.join("store").join(cirrus::format::names::MANIFEST);
    let honest = fs::read(&mpath).unwrap();
    let mut m = Manifest::decode(&SignedManifest::decode(&honest).unwrap().body).unwrap();
    let evil = DeviceIdentity::generate().unwrap();
    m.counter += 1;
    m.table.counter += 1;
    let escrow = m
        .recovery
        .iter_mut()
        .find(|r| r.kind == RecoveryKind::Escrow)
        .unwrap();
    assert_eq!((escrow.kdf_memory_kib, escrow.kdf_time), (8192, 1));
    escrow.kdf_memory_kib = 8;
    escrow.kdf_time = 1;
    m.devices.push(DeviceEntry {
        name: "server".into(),
        sign: evil.public().sign,
        kx: evil.public().kx,
        state: DeviceState::Active,
        features: FEATURES,
    });
    let body = m.encode();
    let forged = SignedManifest {
        sig: evil.sign(SIGN_DOMAIN, &body),
        signer: evil.public().sign,
        body,
    }
    .encode();
    fs::write(&mpath, &forged).unwrap();
    let (_c, ok, t) = recover_via(&srv, &a, &["--escrow"], PASSCODE, &pw, &codes.take());
    assert!(!ok, "{t}");
    assert!(
        t.contains("the passcode escrow asks for a key-derivation cost of 8 KiB, t=1"),
        "{t}"
    );
    assert!(!server_log().contains("escrow/open"), "no proof was sent");

    // Without the suite's test opt-in the protocol floor (19 MiB, t=2) holds even for the
    // costs this account really uses (8 MiB, t=1, chosen under the opt-in): the key
    // service's salt answer is the first untrusted cost the device meets, and is refused.
    fs::write(&mpath, &honest).unwrap();
    let (_c, ok, t) = recover_via_with(&srv, &a, &["--escrow"], PASSCODE, &pw, &codes.take(), true);
    assert!(!ok, "{t}");
    assert!(
        t.contains("password salt asks for a key-derivation cost of 8192 KiB, t=1, below the 19456 KiB, t=2"),
        "{t}"
    );
    assert!(!server_log().contains("escrow/open"), "no proof was sent");
}

#[test]
fn a_recovery_contact_and_the_key_service_each_hold_half() {
    use cirrus::account::methods::{contact_identity, parse_contact_code};
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.health().join("h.txt"), b"contact-recovered e2e").unwrap();
    a.unmount();
    let (ok, t) = out(with_pw(&a, &pw, &["recovery-contact", "add", "bob"]));
    assert!(ok, "{t}");
    let code = t
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("CRC1-"))
        .unwrap()
        .to_string();

    // Bob (a Cirrus user on his own device) keeps it, sealed, and prints it on request.
    let bob = Drive::mount();
    let f = bob.root.join("code");
    fs::write(&f, &code).unwrap();
    let (ok, t) = out({
        let mut c = bob.cirrus_cmd();
        c.args([
            "recovery-contact",
            "accept",
            "--for",
            "alice",
            "--code-file",
        ])
        .arg(&f)
        .arg("--passcode-file")
        .arg(&bob.passcode_file);
        c
    });
    assert!(ok, "{t}");
    fs::remove_file(&f).unwrap();
    let half = parse_contact_code(&code).unwrap();
    for e in files_under(&bob.home) {
        assert!(
            !contains(&fs::read(&e).unwrap(), &half[..]),
            "{} holds the contact half in clear",
            e.display()
        );
    }
    let (ok, t) = out({
        let mut c = bob.cirrus_cmd();
        c.args(["recovery-contact", "help", "alice", "--passcode-file"])
            .arg(&bob.passcode_file);
        c
    });
    assert!(ok && t.contains(&code), "{t}");

    // Neither half alone: the contact's half with anything but the service half, or the
    // service's half (which only a logged-in owner gets) with anything but the contact's,
    // derives other key pairs than the one the account key is granted to.
    let store = a.home.join("store");
    let m = {
        use cirrus::format::manifest::{Manifest, SignedManifest};
        let obj = fs::read(store.join("account/manifest")).unwrap();
        Manifest::decode(&SignedManifest::decode(&obj).unwrap().body).unwrap()
    };
    let entry = m.recovery.iter().find(|r| r.label == "bob").unwrap();
    let client = srv.client();
    let (session, _) = client
        .login(
            "alice",
            &cirrus::keys::Passcode::new("alice's account password".into()),
            cirrus::keyservice::client::SecondFactor::Totp(codes.take()),
            false,
        )
        .unwrap();
    let service_half = session
        .record_get(&format!("contact-{}", hex::encode("bob")))
        .unwrap();
    assert_eq!(
        contact_identity(&half[..], &service_half).public().sign,
        entry.sign,
        "both halves together are the method"
    );
    assert_ne!(
        contact_identity(&half[..], &[0; 32]).public().sign,
        entry.sign
    );
    assert_ne!(
        contact_identity(&[0; 32], &service_half).public().sign,
        entry.sign
    );
    // The server's disk never sees the contact's half.
    for e in files_under(&srv.data) {
        assert!(!contains(&fs::read(&e).unwrap(), &half[..]));
    }

    // The owner, on a new device, with Bob's code and the account password.
    fs::write(&f, &code).unwrap();
    let arg = f.to_string_lossy().to_string();
    let (mut c, ok, t) = recover_via(
        &srv,
        &a,
        &["--contact-code-file", &arg],
        PASSCODE,
        &pw,
        &codes.take(),
    );
    assert!(ok, "{t}");
    c.mount_again();
    assert_eq!(
        fs::read(c.health().join("h.txt")).unwrap(),
        b"contact-recovered e2e"
    );
}

#[test]
fn with_backup_on_data_recovery_restores_messages_and_backup_off_rolls_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.mnt.join("Messages/chat.txt"), b"hello from messages").unwrap();
    a.unmount();
    let (ok, t) = out(with_pw(&a, &pw, &["backup", "on"]));
    assert!(
        ok && t.contains("data recovery service can restore Messages"),
        "{t}"
    );

    // Data recovery (all devices lost) brings Messages back through Backup.
    let backup_copy = a.home.join("store/keys");
    let (mut c, ok, t) = recover_data(&srv, &a, &codes.take());
    assert!(ok, "{t}");
    let rec = t.lines().find(|l| l.starts_with("Recovered")).unwrap();
    assert!(rec.contains("Messages"), "{t}");
    c.mount_again();
    assert_eq!(
        fs::read(c.mnt.join("Messages/chat.txt")).unwrap(),
        b"hello from messages"
    );
    c.unmount();

    // On the recovered device: Backup off deletes the copy and rolls a new Messages key.
    let cpw = c.root.join("new-password");
    let (ok, t) = out(with_pw(&c, &cpw, &["backup", "off"]));
    assert!(ok, "{t}");
    let copies: Vec<_> = files_under(&backup_copy)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".in-backup"))
        .collect();
    assert!(copies.is_empty(), "copies left: {copies:?}");
    c.mount_again();
    assert_eq!(
        fs::read(c.mnt.join("Messages/chat.txt")).unwrap(),
        b"hello from messages"
    );
    fs::write(c.mnt.join("Messages/after.txt"), b"new key").unwrap();
    c.unmount();
    // A second data recovery now cannot bring Messages back.
    let (_d, ok, t) = recover_data_from(&srv, &a, &codes.take(), "yet another password");
    assert!(ok, "{t}");
    let lost = t.lines().find(|l| l.starts_with("NOT recovered")).unwrap();
    assert!(lost.contains("Messages"), "{t}");
}

#[test]
fn an_embedded_account_moves_to_the_key_service_and_changes_its_password() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let mut a = Drive::mount();
    fs::write(a.notes().join("n.txt"), b"moved").unwrap();
    fs::write(a.health().join("h.txt"), b"e2e moved").unwrap();
    a.unmount();
    let pw = a.root.join("password");
    fs::write(&pw, "alice's account password\n").unwrap();
    let mut c = with_pw(&a, &pw, &["account", "move"]);
    c.args([
        "--server",
        &srv.url,
        "--fingerprint",
        &srv.fingerprint.to_string(),
    ])
    .args(["--account", "alice"]);
    let (ok, t) = out(c);
    assert!(ok, "{t}");
    assert!(t.contains("totp enroll"), "{t}");
    assert!(
        !a.home.join("keyservice").exists(),
        "the embedded service key is gone"
    );

    // Standard keys now come from the server (no keyring: fetched with the password).
    fs::remove_file(a.home.join("device/keyring")).unwrap();
    let st = status::json_ok(with_pw(&a, &pw, &["status"]));
    assert_eq!(status::category_state(&st, "Notes").0, "ok", "{st:#}");
    let (state, why) = status::category_state(&st, "Health");
    assert!(
        state == "locked" && why.contains("two-factor"),
        "e2e waits for TOTP: {st:#}"
    );

    // A new password works; the old one no longer logs in.
    let newpw = a.root.join("new-password");
    fs::write(&newpw, "a better account password\n").unwrap();
    let mut c = with_pw(&a, &pw, &["account", "password"]);
    c.arg("--new-password-file").arg(&newpw);
    let (ok, t) = out(c);
    assert!(ok, "{t}");
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(!ok, "the old password still works: {t}");
    let (ok, t) = out(with_pw(&a, &newpw, &["account", "status"]));
    assert!(ok, "{t}");
}

#[test]
fn a_second_device_joins_through_the_key_service_and_follows_adp() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"from a").unwrap();
    fs::write(a.health().join("h.txt"), b"e2e from a").unwrap();
    a.unmount();

    let mut b = Drive::blank();
    let fp = srv.fingerprint.to_string();
    let totp_code = codes.take();
    let pw_arg = pw.to_string_lossy().to_string();
    let (child, code) = start_join(
        &b,
        &a,
        &[
            "--server",
            &srv.url,
            "--fingerprint",
            &fp,
            "--account",
            "alice",
            "--totp",
            &totp_code,
            "--password-file",
            &pw_arg,
        ],
    );
    let (ok, t) = approve_and_finish(&a, child, &code);
    assert!(ok, "{t}");
    assert!(!t.contains("could not log in"), "{t}");
    // B knows the key service and is remembered by it (no TOTP code needed any more).
    let (ok, t) = out(with_pw(&b, &pw, &["account", "status"]));
    assert!(ok && t.contains("two-factor (TOTP): on"), "{t}");
    b.mount_again();
    assert_eq!(fs::read(b.notes().join("n.txt")).unwrap(), b"from a");
    assert_eq!(fs::read(b.health().join("h.txt")).unwrap(), b"e2e from a");
    b.unmount();

    // A turns on ADP; B follows: Notes is now e2e under a key B gets with the account key.
    let (ok, t) = out(with_pw_totp(
        &a,
        &pw,
        &codes.take(),
        &["recovery-key", "create"],
    ));
    assert!(ok, "{t}");
    let (ok, t) = out(with_pw(&a, &pw, &["adp", "on"]));
    assert!(ok, "{t}");
    fs::remove_file(b.home.join("device/keyring")).unwrap();
    let mut st = b.cirrus_cmd();
    st.args(["status", "--passcode-file"]).arg(&b.passcode_file);
    let st = status::json_ok(st);
    let notes = status::category(&st, "Notes");
    assert!(
        notes["protection"] == "e2e" && notes["state"] == "ok",
        "{st:#}"
    );
    b.mount_again();
    assert_eq!(fs::read(b.notes().join("n.txt")).unwrap(), b"from a");
}

#[test]
fn the_recovery_key_with_the_password_restores_everything_on_a_new_device() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"standard").unwrap();
    fs::write(a.health().join("h.txt"), b"e2e").unwrap();
    a.unmount();
    let rk = create_recovery_key(&a, &pw, &codes.take());
    let mut c = Drive::blank();
    let f = c.root.join("rk");
    fs::write(&f, &rk).unwrap();
    let mut cmd = c.cirrus_cmd();
    cmd.arg("recover")
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
        .args([
            "--server",
            &srv.url,
            "--fingerprint",
            &srv.fingerprint.to_string(),
        ])
        .args(["--account", "alice", "--totp", &codes.take()])
        .arg("--password-file")
        .arg(&pw)
        .arg("--passcode-file")
        .arg(&c.passcode_file);
    let (ok, t) = out(cmd);
    assert!(ok, "{t}");
    assert!(
        !t.contains("Not available") && !t.contains("could not log in"),
        "{t}"
    );
    c.mount_again();
    assert_eq!(fs::read(c.notes().join("n.txt")).unwrap(), b"standard");
    assert_eq!(fs::read(c.health().join("h.txt")).unwrap(), b"e2e");
}

/// Issue 9.3: a data recovery started on a new device waits; the owner's trusted device
/// sees it in `cirrus status` and `cirrus account status` (no password needed), its
/// mounted drive logs a warning, and `cirrus account cancel-reset` ends it.
#[test]
fn a_pending_reset_is_shown_on_the_trusted_device_and_can_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &["--reset-wait", "600"]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_options().extra = vec!["--poll-interval".into(), "1".into()];
    a.mount_again();
    let (_c, ok, t) = recover_data_from(&srv, &a, &codes.take(), "the thief's password");
    assert!(!ok, "{t}");
    assert!(t.contains("waiting period"), "{t}");
    let run = |args: &[&str]| {
        let o = a
            .cirrus_cmd()
            .args(args)
            .arg("--passcode-file")
            .arg(&a.passcode_file)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, t) = run(&["status"]);
    assert!(ok, "{t}");
    assert!(
        t.contains("WARNING: a password reset of this account through data recovery is pending"),
        "{t}"
    );
    let status_json = || {
        let mut c = a.cirrus_cmd();
        c.args(["status", "--passcode-file"]).arg(&a.passcode_file);
        status::json_ok(c)
    };
    let st = status_json();
    assert!(
        st["account"]["password_reset_pending_at"].is_u64(),
        "{st:#}"
    );
    let (ok, t) = run(&["account", "status"]);
    assert!(ok, "{t}");
    assert!(
        t.contains("cancel-reset") && t.contains("asked the key service to reset"),
        "{t}"
    );
    // The mounted drive's log says so too, within a few polls.
    let log = a.home.join("cirrus.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("key service notice")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no notice in the daemon's log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, t) = run(&["account", "cancel-reset"]);
    assert!(ok && t.contains("is cancelled"), "{t}");
    let st = status_json();
    assert!(
        st["account"]["password_reset_pending_at"].is_null(),
        "{st:#}"
    );
    let (ok, t) = run(&["account", "cancel-reset"]);
    assert!(ok && t.contains("No password reset is pending"), "{t}");
    // The password did not change: the account still logs in with the old one.
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(ok && t.contains("two-factor (TOTP): on"), "{t}");
}

/// Reads the QR code drawn in `output` (block characters, two modules per cell, light
/// modules drawn) the way a phone would: as an image, through zbarimg.
fn scan_terminal_qr(output: &str, dir: &std::path::Path) -> String {
    let rows: Vec<Vec<char>> = output
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| " \u{2580}\u{2584}\u{2588}".contains(c)))
        .map(|l| l.chars().collect())
        .collect();
    assert!(rows.len() > 10, "no QR code in:\n{output}");
    let width = rows.iter().map(Vec::len).max().unwrap();
    // Each cell is two modules high; a module is 4x4 pixels; 1 is black in PBM.
    let scale = 4;
    let mut pbm = format!("P1\n{} {}\n", width * scale, rows.len() * 2 * scale);
    for row in &rows {
        for half in [0, 1] {
            let mut line = String::new();
            for x in 0..width {
                let c = row.get(x).copied().unwrap_or(' ');
                let light = match c {
                    '\u{2588}' => true,
                    '\u{2580}' => half == 0,
                    '\u{2584}' => half == 1,
                    _ => false,
                };
                for _ in 0..scale {
                    line.push_str(if light { "0 " } else { "1 " });
                }
            }
            for _ in 0..scale {
                pbm.push_str(&line);
                pbm.push('\n');
            }
        }
    }
    let img = dir.join("totp-qr.pbm");
    fs::write(&img, pbm).unwrap();
    let zbarimg = require_tool("zbarimg");
    // stdout only: zbarimg's libraries may complain on stderr (no D-Bus here).
    let o = std::process::Command::new(zbarimg)
        .args(["--raw", "-q"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success(), "zbarimg: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
