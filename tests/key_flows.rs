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

// ---- Point 4: mount --password-file when the key service is unreachable or refuses ----

/// `cirrus mount` with this drive's passcode and `password` as the account password.
fn mount_with_password(d: &Drive, password: &std::path::Path) -> (bool, String) {
    let mut c = d.cirrus_cmd();
    c.arg("mount")
        .arg(&d.mnt)
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .arg("--password-file")
        .arg(password);
    out(c)
}

/// The line of category `name` in `cirrus status` output.
fn status_line<'a>(t: &'a str, name: &str) -> &'a str {
    t.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{t}"))
}

/// Issue 16.4: the guide says a drive whose key service cannot be reached (or refuses the
/// login) still opens every category whose key the device holds. A wrong password opens
/// nothing more than no password does; a stopped server leaves the categories whose keys
/// only the service has locked, and `status` says so.
#[test]
fn mount_with_a_password_opens_what_the_device_holds_when_the_key_service_refuses_or_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (mut d, pw, _totp) = alice_with_totp(&srv);
    d.mount_again();
    fs::write(d.notes().join("n.txt"), b"standard").unwrap();
    fs::write(d.health().join("h.txt"), b"e2e").unwrap();
    d.unmount();

    // Refused: a wrong account password. The keys this device holds (all of them here:
    // its keyring has the standard keys it used) open; the log says why too.
    let wrong = d.root.join("wrong-password");
    fs::write(&wrong, "not alice's password\n").unwrap();
    let (ok, t) = mount_with_password(&d, &wrong);
    assert!(ok, "{t}");
    d.mark_mounted();
    assert!(
        t.contains("warning: not logged in to the key service")
            && t.contains("refused the login")
            && t.contains("wrong account name or password"),
        "{t}"
    );
    assert_eq!(fs::read(d.notes().join("n.txt")).unwrap(), b"standard");
    assert_eq!(fs::read(d.health().join("h.txt")).unwrap(), b"e2e");
    d.unmount();
    let log = fs::read_to_string(d.home.join("cirrus.log")).unwrap();
    assert!(log.contains("refused the login"), "{log}");

    // Unreachable: the key service is stopped, and this device no longer holds the
    // standard keys (its keyring is gone): Health (e2e, under the account key this
    // device holds) opens, Notes stays locked, and both commands say why.
    drop(srv);
    fs::remove_file(d.home.join("device/keyring")).unwrap();
    let (ok, t) = mount_with_password(&d, &pw);
    assert!(ok, "{t}");
    d.mark_mounted();
    assert!(
        t.contains("warning: not logged in to the key service")
            && t.contains("cannot reach the key service"),
        "{t}"
    );
    assert!(
        t.contains(
            "not shown: Notes: this key is not on this device, and the key service \
             could not be reached"
        ),
        "{t}"
    );
    assert_eq!(fs::read(d.health().join("h.txt")).unwrap(), b"e2e");
    assert!(!d.mnt.join("Notes").exists());
    let (ok, t) = out(with_pw(&d, &pw, &["status"]));
    assert!(ok, "{t}");
    assert!(
        t.contains("warning: not logged in to the key service"),
        "{t}"
    );
    let notes = status_line(&t, "Notes");
    assert!(
        notes.contains(
            "locked: this key is not on this device, and the key service could not be reached"
        ),
        "{t}"
    );
    assert!(status_line(&t, "Health").contains(" ok"), "{t}");
    d.unmount();
}

// ---- Points 6 and 7: a data recovery, as the new device and a dropped one see it ----

/// `cirrus recover --data-recovery` of `from`'s account on a new device named "another".
fn recover_by_data_recovery(srv: &Server, from: &Drive, code: &str) -> (Drive, bool, String) {
    let c = Drive::blank();
    let newpw = c.root.join("new-password");
    fs::write(&newpw, "a brand new password\n").unwrap();
    let mut cmd = c.cirrus_cmd();
    cmd.args(["recover", "--data-recovery", "--store"])
        .arg(format!("file://{}", from.home.join("store").display()))
        .args(["--device-name", "another"])
        .args(["--kdf-memory", "8192", "--kdf-time", "1"])
        .args(["--server", &srv.url])
        .args(["--fingerprint", &srv.fingerprint.to_string()])
        .args(["--account", "alice", "--totp", code])
        .arg("--new-password-file")
        .arg(&newpw)
        .arg("--passcode-file")
        .arg(&c.passcode_file);
    let (ok, t) = out(cmd);
    (c, ok, t)
}

/// Issue 16.7: the e2e categories a data recovery cannot bring back are named once, in
/// the summary, with no warning per category. Issue 16.6: the device it dropped is told
/// it was removed from the account by that recovery, not that an untrusted key signed the
/// manifest; without the recovery's proof, the same manifest still reads as an attack.
#[test]
fn data_recovery_names_what_is_lost_once_and_the_dropped_device_hears_it_was_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), &[]);
    let (mut a, _pw, totp) = alice_with_totp(&srv);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"recoverable").unwrap();
    fs::write(a.health().join("h.txt"), b"not recoverable").unwrap();
    a.unmount();

    let (_c, ok, t) = recover_by_data_recovery(&srv, &a, &fresh_code(&totp));
    assert!(ok, "{t}");
    assert!(
        !t.contains("WARN") && !t.contains("cannot re-sign"),
        "warnings for what is lost by design:\n{t}"
    );
    let lost = t
        .lines()
        .find(|l| l.starts_with("NOT recovered (end-to-end"))
        .unwrap_or_else(|| panic!("no summary of what was not recovered:\n{t}"));
    assert!(lost.contains("Health") && lost.contains("Keychain"), "{t}");
    assert_eq!(
        t.matches("Health").count(),
        1,
        "Health named more than once:\n{t}"
    );

    // The old device: removed by the recovery, and told so.
    let old_status = || {
        let mut s = a.cirrus_cmd();
        s.args(["status", "--passcode-file"]).arg(&a.passcode_file);
        out(s)
    };
    let (ok, t) = old_status();
    assert!(!ok, "{t}");
    assert!(
        t.contains("this device was removed from the account: a data recovery")
            && t.contains("on device \"another\""),
        "{t}"
    );
    assert!(!t.contains("not a trusted device"), "{t}");

    // The store alone cannot make that manifest read so: without the proof (or with a
    // damaged one) it is an unknown signer again.
    let proofs = a.home.join("store/account/recovery-proofs");
    let proof = fs::read_dir(&proofs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&proof).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&proof, &bytes).unwrap();
    let (ok, t) = old_status();
    assert!(!ok, "{t}");
    assert!(t.contains("not a trusted device of this account"), "{t}");
    assert!(!t.contains("data recovery"), "{t}");
}
