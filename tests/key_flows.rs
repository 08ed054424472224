//! Key-management flows walked the way a user walks them (issue 16): the command line
//! against a real `cirrus serve` on 127.0.0.1, real TOTP codes computed here, and the
//! messages a user reads checked against what they promise. No flow may leave a device
//! that can never log in again.

#![allow(unused_imports)] // each section uses some of these

mod common;

use common::accounts::*;
use common::keyserver::Server;
use common::*;
use std::fs;

// ---- Points 1-3: a device that cannot log in; recoveries that remember; the key-service flag ----

/// `--server URL --fingerprint FP --account alice` for `srv`.
fn server_args(srv: &Server) -> Vec<String> {
    [
        "--server",
        &srv.url,
        "--fingerprint",
        &srv.fingerprint.to_string(),
        "--account",
        "alice",
    ]
    .map(String::from)
    .to_vec()
}

/// `b` asks to join alice's account on `srv`, logging in with the password in `pw` and
/// the TOTP `code`; returns the running `device add` and the approval code it shows.
fn join_on_server(
    b: &Drive,
    a: &Drive,
    srv: &Server,
    pw: &std::path::Path,
    code: &str,
) -> (std::process::Child, String) {
    let mut extra = server_args(srv);
    extra.extend(["--totp".into(), code.into(), "--password-file".into()]);
    extra.push(pw.to_string_lossy().into_owned());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    start_join(b, a, &extra)
}

/// `device approve CODE` on `a`, then the output of the waiting `device add`.
fn approve_and_finish(a: &Drive, child: std::process::Child, code: &str) -> (bool, String) {
    let mut approve = a.cirrus_cmd();
    approve
        .args(["device", "approve", code, "--passcode-file"])
        .arg(&a.passcode_file);
    let (ok, t) = out(approve);
    assert!(ok, "{t}");
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// `cirrus recover HOW` on a new device ("new laptop") from alice's store. With
/// `login`: the key service, the password in `pw` and that TOTP code.
fn recover_new(
    srv: &Server,
    alice: &Drive,
    how: &[&str],
    pw: &std::path::Path,
    login: Option<&str>,
) -> (Drive, bool, String) {
    let c = Drive::blank();
    let mut cmd = c.cirrus_cmd();
    cmd.arg("recover")
        .args(how)
        .arg("--store")
        .arg(format!("file://{}", alice.home.join("store").display()))
        .args(["--device-name", "new laptop"])
        .args(["--kdf-memory", "8192", "--kdf-time", "1"])
        .arg("--passcode-file")
        .arg(&c.passcode_file);
    if let Some(code) = login {
        cmd.args(server_args(srv))
            .args(["--totp", code, "--password-file"])
            .arg(pw);
    }
    let (ok, t) = out(cmd);
    (c, ok, t)
}

/// Mounts `d` logging in with the password in `pw` only (no TOTP code), after dropping
/// the standard keys it holds, so that what it reads proves the login worked.
fn mount_with_password_only(d: &mut Drive, pw: &std::path::Path) {
    fs::remove_file(d.home.join("device/keyring")).unwrap();
    d.set_env("CIRRUS_PASSWORD_FILE", &pw.to_string_lossy());
    d.mount_again();
}

/// Issue 16.1: the new device logs in (and is remembered) before it shows its approval
/// code, so an approval that comes after its TOTP code was used up (or expired) leaves it
/// logged in. A wrong code stops `device add` before it asks to join, leaving nothing.
#[test]
fn a_late_approval_leaves_the_new_device_logged_in() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"from a").unwrap();
    a.unmount();

    let mut b = Drive::blank();
    let (child, code) = join_on_server(&b, &a, &srv, &pw, &codes.take());
    // While B waits, A logs in with a later code: B's code is used up now (the key
    // service takes no step at or before the last one it accepted), as if the approval
    // had come after it expired.
    let (ok, t) = out(with_pw_totp(&a, &pw, &codes.take(), &["account", "login"]));
    assert!(ok, "{t}");
    let (ok, t) = approve_and_finish(&a, child, &code);
    assert!(ok, "{t}");
    assert!(
        t.contains("now belongs to the account") && !t.contains("could not log in"),
        "{t}"
    );
    // Remembered: the password alone logs B in, for `account status` and for a mount
    // that fetches the standard keys from the key service.
    let (ok, t) = out(with_pw(&b, &pw, &["account", "status"]));
    assert!(ok && t.contains("two-factor (TOTP): on"), "{t}");
    mount_with_password_only(&mut b, &pw);
    assert_eq!(fs::read(b.notes().join("n.txt")).unwrap(), b"from a");

    // A wrong code: refused before any request is made, nothing left in the home.
    let d = Drive::blank();
    let mut c = d.cirrus_cmd();
    c.args(["device", "add", "--timeout", "5", "--store"])
        .arg(format!("file://{}", a.home.join("store").display()))
        .args(["--kdf-memory", "8192", "--kdf-time", "1"])
        .args(server_args(&srv))
        .args(["--totp", "000000", "--password-file"])
        .arg(&pw)
        .arg("--passcode-file")
        .arg(&d.passcode_file);
    let (ok, t) = out(c);
    assert!(!ok, "{t}");
    assert!(
        t.contains("cannot log in to the key service") && !t.contains("Approval code"),
        "{t}"
    );
    let left: Vec<_> = fs::read_dir(&d.home).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Issue 16.1: a device whose remembered token was revoked (here by a password change on
/// another device) is told to run `cirrus account login --totp CODE`, and that brings it
/// back: afterwards the password alone logs it in again.
#[test]
fn account_login_brings_back_a_device_the_key_service_forgot() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let b = Drive::blank();
    let (child, code) = join_on_server(&b, &a, &srv, &pw, &codes.take());
    let (ok, t) = approve_and_finish(&a, child, &code);
    assert!(ok, "{t}");

    let newpw = a.root.join("new-password");
    fs::write(&newpw, "a better account password\n").unwrap();
    let mut c = with_pw_totp(&a, &pw, &codes.take(), &["account", "password"]);
    c.arg("--new-password-file").arg(&newpw);
    let (ok, t) = out(c);
    assert!(ok, "{t}");

    let (ok, t) = out(with_pw(&b, &newpw, &["account", "status"]));
    assert!(!ok, "{t}");
    assert!(t.contains("cirrus account login --totp CODE"), "{t}");
    let (ok, t) = out(with_pw_totp(
        &b,
        &newpw,
        &codes.take(),
        &["account", "login"],
    ));
    assert!(ok && t.contains("remembered"), "{t}");
    let (ok, t) = out(with_pw(&b, &newpw, &["account", "status"]));
    assert!(ok && t.contains("two-factor (TOTP): on"), "{t}");
}

/// Issue 16.2: a device recovered through the passcode escrow is remembered by the key
/// service: once it has removed the lost device (the account and category keys rotate),
/// it still mounts with the password alone and reads its standard and e2e categories.
#[test]
fn a_device_recovered_through_escrow_is_remembered() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (mut a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"standard").unwrap();
    fs::write(a.health().join("h.txt"), b"e2e").unwrap();
    a.unmount();
    let (ok, t) = out(with_pw_totp(&a, &pw, &codes.take(), &["escrow", "on"]));
    assert!(ok, "{t}");

    // The drive's passcode (the escrowed one) is the new device's passcode.
    let (mut c, ok, t) = recover_new(&srv, &a, &["--escrow"], &pw, Some(&codes.take()));
    assert!(ok, "{t}");
    let mut list = c.cirrus_cmd();
    list.args(["device", "list", "--passcode-file"])
        .arg(&c.passcode_file);
    let (ok, t) = out(list);
    assert!(ok, "{t}");
    let lost = t
        .lines()
        .find(|l| l.contains("trusted") && !l.contains("(this device)"))
        .and_then(|l| l.split("  ").next())
        .unwrap_or_else(|| panic!("no other trusted device: {t}"))
        .trim()
        .to_string();
    let (ok, t) = out(with_pw(&c, &pw, &["device", "remove", &lost]));
    assert!(ok, "{t}");
    mount_with_password_only(&mut c, &pw);
    assert_eq!(fs::read(c.notes().join("n.txt")).unwrap(), b"standard");
    assert_eq!(fs::read(c.health().join("h.txt")).unwrap(), b"e2e");
}

/// Issue 16.3: the signed manifest says the account uses a key service, so `recover`
/// without `--server` is refused before anything is written (no home, no new device in
/// the store), and names the flags to add; with them, the recovery key works and the
/// device is remembered.
#[test]
fn recover_without_the_key_service_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let (ok, t) = out(with_pw_totp(
        &a,
        &pw,
        &codes.take(),
        &["recovery-key", "create"],
    ));
    assert!(ok, "{t}");
    let rk = t
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 34 && l.matches('-').count() == 6)
        .unwrap()
        .to_string();
    let rk_file = a.root.join("recovery-key");
    fs::write(&rk_file, &rk).unwrap();
    let rk_arg = rk_file.to_string_lossy().into_owned();
    let manifest = a.home.join("store/account/manifest");
    let before = fs::read(&manifest).unwrap();

    let (c, ok, t) = recover_new(&srv, &a, &["--recovery-key-file", &rk_arg], &pw, None);
    assert!(!ok, "{t}");
    assert!(
        t.contains("uses a key service") && t.contains("--server URL"),
        "{t}"
    );
    assert!(!t.contains("now belongs"), "{t}");
    let left: Vec<_> = fs::read_dir(&c.home).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(fs::read(&manifest).unwrap(), before, "the store changed");
    let mut list = a.cirrus_cmd();
    list.args(["device", "list", "--passcode-file"])
        .arg(&a.passcode_file);
    let (ok, t) = out(list);
    assert!(ok && t.matches("trusted").count() == 1, "{t}");

    let (c, ok, t) = recover_new(
        &srv,
        &a,
        &["--recovery-key-file", &rk_arg],
        &pw,
        Some(&codes.take()),
    );
    assert!(ok, "{t}");
    assert!(
        t.contains("now belongs to the account") && !t.contains("could not log in"),
        "{t}"
    );
    let (ok, t) = out(with_pw(&c, &pw, &["account", "status"]));
    assert!(ok && t.contains("two-factor (TOTP): on"), "{t}");
}

/// Issue 16.3: an account whose manifest does not say yet that it uses a key service (made
/// before the flag) gets the mark from the next device that logs in to the service; from
/// then on a device that joins without `--server` is refused before anything is written.
#[test]
fn an_account_from_before_the_flag_is_marked_at_the_next_login() {
    use cirrus::format::manifest::{FLAG_KEY_SERVICE, Manifest, SIGN_DOMAIN, SignedManifest};
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (a, pw, _totp) = alice_with_totp(&srv);
    let read = || {
        let obj = fs::read(a.home.join("store/account/manifest")).unwrap();
        Manifest::decode(&SignedManifest::decode(&obj).unwrap().body).unwrap()
    };

    // The manifest an older version would have published: the same, without the flag,
    // signed by A (whose identity key is sealed under its device key).
    let home = cirrus::home::Home::new(a.home.clone());
    let cfg = home.load_config().unwrap();
    let secret = home.read_secret_file(&home.device_secret_path()).unwrap();
    let passcode = cirrus::keys::Passcode::new(PASSCODE.to_string());
    let salt = hex::decode(&cfg.kdf_salt).unwrap();
    let dk = cirrus::keys::device_key(&passcode, &salt, cfg.kdf, &secret).unwrap();
    let id = cirrus::account::local::load_identity(&home, &dk)
        .unwrap()
        .unwrap();
    let mut old = read();
    assert!(old.has(FLAG_KEY_SERVICE), "init --server sets the flag");
    old.counter += 1;
    old.table.counter += 1;
    old.set(FLAG_KEY_SERVICE, false);
    let body = old.encode();
    let obj = SignedManifest {
        sig: id.sign(SIGN_DOMAIN, &body),
        signer: id.public().sign,
        body,
    }
    .encode();
    let store = a.home.join("store");
    fs::write(
        store.join(cirrus::format::names::manifest_version(old.counter)),
        &obj,
    )
    .unwrap();
    fs::write(store.join(cirrus::format::names::MANIFEST), &obj).unwrap();

    // A logs in (its remembered token, no code): the next manifest carries the mark.
    let (ok, t) = out(with_pw(&a, &pw, &["account", "status"]));
    assert!(ok, "{t}");
    let now = read();
    assert!(
        now.counter == old.counter + 1 && now.has(FLAG_KEY_SERVICE),
        "counter {} flags {}",
        now.counter,
        now.flags
    );

    let b = Drive::blank();
    let mut c = b.cirrus_cmd();
    c.args(["device", "add", "--store"])
        .arg(format!("file://{}", store.display()))
        .args(["--kdf-memory", "8192", "--kdf-time", "1", "--passcode-file"])
        .arg(&b.passcode_file);
    let (ok, t) = out(c);
    assert!(!ok, "{t}");
    assert!(
        t.contains("uses a key service") && !t.contains("Approval code"),
        "{t}"
    );
    let left: Vec<_> = fs::read_dir(&b.home).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
