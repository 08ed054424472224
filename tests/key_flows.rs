//! Key-management flows walked the way a user walks them (issue 16): the command line
//! against a real `cirrus serve` on 127.0.0.1, real TOTP codes computed here, and the
//! messages a user reads checked against what they promise. No flow may leave a device
//! that can never log in again.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(unused_imports)] // each section uses some of these

mod common;

use common::accounts::*;
use common::keyserver::Server;
use common::*;
use std::fs;

// ---- Points 5, 8, 9, 10: true messages, visible Backup, one meaning per option ----
//
// Point 5 (every command and flag a message or the user guide names exists) is checked in
// tests/cli.rs (`every_command_and_flag_a_message_names_exists`,
// `every_command_and_flag_the_user_guide_shows_exists`): it runs `--help` on the whole
// command-line surface and needs no key service.

#[test]
fn backup_status_shows_off_on_off_and_a_second_backup_off_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, _totp) = alice_with_totp(&srv);
    let run = |args: &[&str]| {
        let (ok, t) = out(with_pw(&a, &pw, args));
        assert!(ok, "{args:?}: {t}");
        t
    };
    let backup = || status::json_ok(with_pw(&a, &pw, &["status"]))["account"]["backup"].clone();
    assert_eq!(backup(), false);
    let t = run(&["backup", "status"]);
    assert!(
        t.contains("Backup: off") && t.contains("key version 1"),
        "{t}"
    );

    let t = run(&["backup", "on"]);
    assert!(t.contains("Backup is on"), "{t}");
    assert_eq!(backup(), true);
    let t = run(&["backup", "status"]);
    assert!(
        t.contains("Backup: on") && t.contains("data recovery service can restore it"),
        "{t}"
    );
    // Again: nothing to do, and nothing written.
    let store = a.home.join("store");
    let before = snapshot(&store);
    let t = run(&["backup", "on"]);
    assert!(t.contains("Backup is already on; nothing changed."), "{t}");
    assert!(
        snapshot(&store) == before,
        "a second backup on wrote to the store"
    );

    let t = run(&["backup", "off"]);
    assert!(
        t.contains("Rotated the key of Messages") && t.contains("key version 2"),
        "{t}"
    );
    assert_eq!(backup(), false);
    let t = run(&["backup", "status"]);
    assert!(
        t.contains("Backup: off") && t.contains("key version 2"),
        "{t}"
    );

    // Off again: it says so, exits 0, and the Messages key (and everything else in the
    // store, the manifest included) stays as it was.
    let before = snapshot(&store);
    let t = run(&["backup", "off"]);
    assert!(
        t.contains("Backup is already off; nothing changed (Messages keeps key version 2)"),
        "{t}"
    );
    assert!(!t.contains("Rotated"), "{t}");
    assert!(
        snapshot(&store) == before,
        "a second backup off changed the store"
    );
    let t = run(&["backup", "status"]);
    assert!(t.contains("key version 2"), "{t}");
}

/// The option lines of a `--help` text that name `flag`, each with its description.
fn help_entries(help: &str, flag: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut found = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with(&format!("{flag} ")) || t == flag {
            let desc: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|d| !d.trim().is_empty())
                .copied()
                .collect();
            found.push(format!("{t}: {}", desc.join(" ")));
        }
    }
    found
}

#[test]
fn export_help_names_each_password_option_once_with_one_meaning() {
    let help = |cmd: &str| {
        let o = cirrus_command().args([cmd, "--help"]).output().unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let h = help("export");
    let account = help_entries(&h, "--password-file");
    assert_eq!(account.len(), 1, "{h}");
    assert!(
        account[0].contains("account password") && !account[0].contains("archive"),
        "{account:?}"
    );
    let archive = help_entries(&h, "--archive-password-file");
    assert_eq!(archive.len(), 1, "{h}");
    assert!(archive[0].contains("archive's own password"), "{archive:?}");

    // export-read has only the archive's password, under the same name.
    let h = help("export-read");
    assert_eq!(help_entries(&h, "--archive-password-file").len(), 1, "{h}");
    assert!(help_entries(&h, "--password-file").is_empty(), "{h}");
}

#[test]
fn export_never_takes_the_account_password_from_the_environment_for_the_archive() {
    let a = local_account();
    let account_pw = a.root.join("account-password");
    fs::write(&account_pw, "the account password\n").unwrap();
    let archive = a.root.join("backup.crex");
    let mut c = with_passcode(
        &a,
        &[
            "export",
            "--out",
            archive.to_str().unwrap(),
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
        ],
    );
    c.env("CIRRUS_PASSWORD_FILE", &account_pw)
        .stdin(std::process::Stdio::null());
    let (ok, t) = out(c);
    assert!(
        !ok && t.contains("no archive password: pass --archive-password-file FILE"),
        "{t}"
    );
    assert!(!archive.exists());

    // With the archive's own password given, the archive opens with it.
    let archive_pw = a.root.join("archive-password");
    fs::write(&archive_pw, "the archive password\n").unwrap();
    let mut c = with_passcode(
        &a,
        &[
            "export",
            "--out",
            archive.to_str().unwrap(),
            "--archive-password-file",
            archive_pw.to_str().unwrap(),
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
        ],
    );
    c.env("CIRRUS_PASSWORD_FILE", &account_pw);
    let (ok, t) = out(c);
    assert!(ok && !t.contains("deprecated"), "{t}");
    let read = |pw: &std::path::Path| {
        let mut c = cirrus_command();
        c.arg("export-read")
            .arg(&archive)
            .arg("--archive-password-file")
            .arg(pw)
            .arg("--list");
        out(c)
    };
    let (ok, t) = read(&archive_pw);
    assert!(ok && t.contains("Notes/"), "{t}");
    let (ok, t) = read(&account_pw);
    assert!(!ok && t.contains("wrong password"), "{t}");
}

#[test]
fn device_approve_takes_the_code_groups_as_separate_words() {
    let a = local_account();
    let b = Drive::blank();
    let (child, code) = start_join(&b, &a, &[]);
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 4, "{code}");
    let mut args = vec!["device", "approve"];
    args.extend(&groups);
    let (ok, t) = out(with_passcode(&a, &args));
    assert!(ok && t.contains("Approved device phone"), "{t}");
    let o = child.wait_with_output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && t.contains("now belongs to the account"),
        "{t}"
    );
}

#[test]
fn recovery_contact_list_names_each_method_once() {
    let a = local_account();
    let (ok, t) = out(with_passcode(&a, &["recovery-contact", "list"]));
    assert!(ok && t.trim() == "No recovery methods.", "{t}");
    let (ok, t) = out(with_passcode(&a, &["recovery-key", "create"]));
    assert!(ok, "{t}");
    let (ok, t) = out(with_passcode(&a, &["recovery-contact", "list"]));
    assert!(ok, "{t}");
    assert_eq!(t.trim(), "recovery key", "{t}");
}

#[test]
fn progress_bars_never_start_full_at_nothing_of_nothing() {
    // On a terminal (`script` gives the command one): an empty category has nothing to
    // count, and a bar must not be drawn full at 0 B / 0 B before it knows its total.
    let script = require_tool("script");
    let a = local_account();
    let tar = a.root.join("plain.tar");
    for args in [
        vec!["rotate", "--category", "Notes"],
        vec!["export", "--unencrypted", "--out", tar.to_str().unwrap()],
    ] {
        let line = format!(
            "{} --home {} {} --passcode-file {}",
            cirrus_bin().display(),
            a.home.display(),
            args.join(" "),
            a.passcode_file.display()
        );
        let mut c = std::process::Command::new(&script);
        c.args(["-qec", &line, "/dev/null"])
            .env(cirrus::keys::floor::INSECURE_TEST_ENV, "1");
        let (ok, t) = out(c);
        assert!(ok, "{line}: {t}");
        assert!(
            !t.contains("0 B/0 B") && !t.contains('\u{2588}'),
            "{line} drew a full bar at nothing of nothing: {t:?}"
        );
    }
}

#[test]
fn hints_name_the_home_they_were_given_and_work_as_printed() {
    let d = Drive::blank();
    let home = d.home.display().to_string();
    let mut c = d.cirrus_cmd();
    c.arg("init")
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .args(["--kdf-memory", "8192", "--kdf-time", "1"]);
    let (ok, t) = out(c);
    assert!(ok, "{t}");
    assert!(
        t.contains(&format!("Mount it with: cirrus --home {home} mount")),
        "{t}"
    );
    // A hint in an error, run as printed, reaches the same account.
    let (ok, t) = out(with_passcode(&d, &["rotate", "--category", "Nope"]));
    assert!(!ok, "{t}");
    let hint = t
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no hint in {t}"));
    assert_eq!(hint, format!("cirrus --home {home} category list"), "{t}");
    let mut c = cirrus_command();
    c.args(hint.split_whitespace().skip(1))
        .arg("--passcode-file")
        .arg(&d.passcode_file);
    let (ok, t) = out(c);
    assert!(ok && t.contains("Notes"), "{t}");
    // With CIRRUS_HOME the next command finds the home by itself: the hint stays short.
    let mut c = cirrus_command();
    c.env("CIRRUS_HOME", &d.home)
        .args(["rotate", "--category", "Nope", "--passcode-file"])
        .arg(&d.passcode_file);
    let (ok, t) = out(c);
    assert!(!ok && t.contains("(see `cirrus category list`)"), "{t}");
}

#[test]
fn init_with_a_missing_store_directory_says_to_create_it() {
    let d = Drive::blank();
    let missing = d.root.join("no-such-store");
    let mut c = d.cirrus_cmd();
    c.arg("init")
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .args(["--kdf-memory", "8192", "--kdf-time", "1", "--store"])
        .arg(format!("file://{}", missing.display()));
    let (ok, t) = out(c);
    assert!(!ok, "{t}");
    assert!(
        t.contains(&format!("mkdir -p {}", missing.display())) && !t.contains("config.toml"),
        "{t}"
    );
    assert!(!d.home.join("config.toml").exists());
}

#[test]
fn rotate_service_without_the_password_says_to_pass_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (d, _pw, ok, init) = init_on_server(&srv, &srv.fingerprint.to_string());
    assert!(ok, "{init}");
    let (ok, t) = out(with_passcode(&d, &["rotate", "--service"]));
    assert!(!ok, "{t}");
    assert_eq!(t.matches("--password-file").count(), 1, "{t}");
    // init's hint for what comes next carries the home too.
    assert!(
        init.contains(&format!(
            "run `cirrus --home {} account totp enroll`",
            d.home.display()
        )),
        "{init}"
    );
}

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

/// Issue 16.4: the guide says a drive whose key service cannot be reached (or refuses the
/// login) still opens every category whose key the device holds. A wrong password opens
/// nothing more than no password does; a stopped server leaves the categories whose keys
/// only the service has locked, and `status` says so.
#[test]
fn mount_with_a_password_opens_what_the_device_holds_when_the_key_service_refuses_or_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
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
    let (ok, st, t) = status::run_json(with_pw(&d, &pw, &["status"]));
    assert!(ok, "{t}");
    assert!(
        t.contains("warning: not logged in to the key service"),
        "{t}"
    );
    let (state, why) = status::category_state(&st, "Notes");
    assert_eq!(state, "locked", "{st:#}");
    assert!(
        why.contains("this key is not on this device, and the key service could not be reached"),
        "{st:#}"
    );
    assert!(
        st["account"]["key_service"]["login_error"].is_string(),
        "{st:#}"
    );
    assert_eq!(status::category_state(&st, "Health").0, "ok", "{st:#}");
    d.unmount();
}

// ---- Points 6 and 7: a data recovery, as the new device and a dropped one see it ----

/// Issue 16.7: the e2e categories a data recovery cannot bring back are named once, in
/// the summary, with no warning per category. Issue 16.6: the device it dropped is told
/// it was removed from the account by that recovery, not that an untrusted key signed the
/// manifest; without the recovery's proof, the same manifest still reads as an attack.
#[test]
fn data_recovery_names_what_is_lost_once_and_the_dropped_device_hears_it_was_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (mut a, _pw, totp) = alice_with_totp(&srv);
    a.mount_again();
    fs::write(a.notes().join("n.txt"), b"recoverable").unwrap();
    fs::write(a.health().join("h.txt"), b"not recoverable").unwrap();
    a.unmount();

    let (_c, ok, t) = recover_data_from(&srv, &a, &fresh_code(&totp), "a brand new password");
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
    let srv = fast_totp_server(tmp.path(), &[]);
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
    let srv = fast_totp_server(tmp.path(), &[]);
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
    let srv = fast_totp_server(tmp.path(), &[]);
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
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, totp) = alice_with_totp(&srv);
    let mut codes = Codes::after_confirm(totp);
    let rk = create_recovery_key(&a, &pw, &codes.take());
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
    let srv = fast_totp_server(tmp.path(), &[]);
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

// ---- Review ----

/// Review of 16.1: a `device add` whose login fails cleans up only what it made. A --home
/// that is some other directory (here one with a `run` folder of the user's) keeps its
/// files: the cleanup deleted `run/` and `device/` wholesale.
#[test]
fn review_a_failed_login_leaves_directories_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, _pw, ok, t) = init_on_server(&srv, &srv.fingerprint.to_string());
    assert!(ok, "{t}");
    let d = Drive::blank();
    fs::create_dir(d.home.join("run")).unwrap();
    fs::write(d.home.join("run/notes.txt"), b"the user's own file").unwrap();
    let wrong = d.root.join("wrong-password");
    fs::write(&wrong, "not alice's password\n").unwrap();
    let mut c = d.cirrus_cmd();
    c.args(["device", "add", "--timeout", "5", "--store"])
        .arg(format!("file://{}", a.home.join("store").display()))
        .args(["--kdf-memory", "8192", "--kdf-time", "1"])
        .args(server_args(&srv))
        .arg("--password-file")
        .arg(&wrong)
        .arg("--passcode-file")
        .arg(&d.passcode_file);
    let (ok, t) = out(c);
    assert!(!ok && t.contains("cannot log in to the key service"), "{t}");
    assert_eq!(
        fs::read(d.home.join("run/notes.txt")).ok().as_deref(),
        Some(&b"the user's own file"[..]),
        "{t}"
    );
}

/// Review of 16.9: on an account with a key service, `export --password-file FILE` as
/// `--help` describes it (the account password) must not become the archive's password
/// (the archive would be an offline guessing oracle for the account password); it is
/// refused, nothing is written and nothing goes to the key service.
#[test]
fn review_export_never_makes_the_account_password_an_archive_password() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, pw, ok, t) = init_on_server(&srv, &srv.fingerprint.to_string());
    assert!(ok, "{t}");
    let archive = a.root.join("backup.crex");
    let mut c = with_pw(
        &a,
        &pw,
        &[
            "export",
            "--out",
            archive.to_str().unwrap(),
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
        ],
    );
    c.stdin(std::process::Stdio::null());
    let (ok, t) = out(c);
    assert!(!ok, "{t}");
    assert!(t.contains("--archive-password-file"), "{t}");
    assert!(!archive.exists(), "an archive was written:\n{t}");
}

/// Review of 16.6: on an account from before flag 16 (nothing has logged in to the key
/// service since), the data recovery's proof still covers the manifest it publishes (which
/// gains the flag), so the dropped device hears it was removed by that recovery, not that
/// an untrusted key signed the manifest. The proof was made before the flag was set.
#[test]
fn review_a_data_recovery_of_an_account_from_before_the_flag_is_recognised() {
    use cirrus::format::manifest::{FLAG_KEY_SERVICE, Manifest, SIGN_DOMAIN, SignedManifest};
    let tmp = tempfile::tempdir().unwrap();
    let srv = fast_totp_server(tmp.path(), &[]);
    let (a, _pw, totp) = alice_with_totp(&srv);

    // What an older version would have published: the same manifest without the flag,
    // signed by A.
    let home = cirrus::home::Home::new(a.home.clone());
    let cfg = home.load_config().unwrap();
    let secret = home.read_secret_file(&home.device_secret_path()).unwrap();
    let passcode = cirrus::keys::Passcode::new(PASSCODE.to_string());
    let salt = hex::decode(&cfg.kdf_salt).unwrap();
    let dk = cirrus::keys::device_key(&passcode, &salt, cfg.kdf, &secret).unwrap();
    let id = cirrus::account::local::load_identity(&home, &dk)
        .unwrap()
        .unwrap();
    let store = a.home.join("store");
    let obj = fs::read(store.join(cirrus::format::names::MANIFEST)).unwrap();
    let mut old = Manifest::decode(&SignedManifest::decode(&obj).unwrap().body).unwrap();
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
    fs::write(
        store.join(cirrus::format::names::manifest_version(old.counter)),
        &obj,
    )
    .unwrap();
    fs::write(store.join(cirrus::format::names::MANIFEST), &obj).unwrap();

    let (_c, ok, t) = recover_data_from(&srv, &a, &fresh_code(&totp), "a brand new password");
    assert!(ok, "{t}");
    let mut s = a.cirrus_cmd();
    s.args(["status", "--passcode-file"]).arg(&a.passcode_file);
    let (ok, t) = out(s);
    assert!(!ok, "{t}");
    assert!(
        t.contains("this device was removed from the account: a data recovery"),
        "{t}"
    );
}
