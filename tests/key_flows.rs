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
