//! Accounts on a real `cirrus serve` driven through the command line: shared by the
//! key-service test files (an account with a password, TOTP codes the server has not
//! seen yet, commands with the password and a code).

use super::keyserver::Server;
use super::*;
use std::fs;
use std::process::Command;

/// A blank drive with an account on `srv` (alice, password in `pw`).
pub fn init_on_server(
    srv: &Server,
    fingerprint: &str,
) -> (Drive, std::path::PathBuf, bool, String) {
    let d = Drive::blank();
    let pw = d.root.join("password");
    fs::write(&pw, "alice's account password\n").unwrap();
    let mut c = d.cirrus_cmd();
    c.arg("init")
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .args(["--kdf-memory", "8192", "--kdf-time", "1"])
        .args(["--server", &srv.url, "--fingerprint", fingerprint])
        .args(["--account", "alice", "--password-file"])
        .arg(&pw);
    let (ok, t) = out(c);
    (d, pw, ok, t)
}

pub fn with_pw(d: &Drive, pw: &std::path::Path, args: &[&str]) -> Command {
    let mut c = d.cirrus_cmd();
    c.args(args)
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .arg("--password-file")
        .arg(pw);
    c
}

/// As [`with_pw`], logging in with a TOTP code: what a change of credentials or recovery
/// needs on an account with TOTP (a remembered device alone may not make it).
pub fn with_pw_totp(d: &Drive, pw: &std::path::Path, code: &str, args: &[&str]) -> Command {
    let mut c = with_pw(d, pw, args);
    c.args(["--totp", code]);
    c
}

/// alice on `srv` with TOTP enrolled; returns the drive, password file and TOTP.
pub fn alice_with_totp(srv: &Server) -> (Drive, std::path::PathBuf, totp_rs::Totp) {
    let (d, pw, ok, t) = init_on_server(srv, &srv.fingerprint.to_string());
    assert!(ok, "{t}");
    let totp = enroll_totp(&d, &pw);
    (d, pw, totp)
}

/// `account totp enroll` and `confirm` (with the current step's code) on `d`, logged in
/// with the password in `pw`; the TOTP as enrolled.
pub fn enroll_totp(d: &Drive, pw: &std::path::Path) -> totp_rs::Totp {
    let (ok, t) = out(with_pw(d, pw, &["account", "totp", "enroll"]));
    assert!(ok, "{t}");
    let uri = t
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .unwrap()
        .to_string();
    let totp = totp_rs::Totp::from_url(&uri).unwrap();
    let code = totp.generate_current().to_string();
    let (ok, t) = out(with_pw(d, pw, &["account", "totp", "confirm", &code]));
    assert!(ok, "{t}");
    totp
}

/// Server flags for the tests that take many TOTP codes: 10-second steps (the server
/// takes one code per step, so a test that needs three codes waits 20 s, not a minute).
/// Every code still travels through the real check; the tests read the step from the
/// `otpauth://` URI the server gives.
pub const FAST_TOTP: [&str; 2] = ["--insecure-test-totp-period", "10"];

/// A key server with [`FAST_TOTP`] and the flags in `extra`.
pub fn fast_totp_server(dir: &std::path::Path, extra: &[&str]) -> super::keyserver::Server {
    let mut args = FAST_TOTP.to_vec();
    args.extend_from_slice(extra);
    super::keyserver::Server::start(dir, &args)
}

/// A TOTP code for a step not used yet (the server refuses a reused one).
pub fn fresh_code(totp: &totp_rs::Totp) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The next step is accepted too (±1 step), and was never used.
    totp.generate(now + totp.step()).to_string()
}

/// TOTP codes that were never used: each call takes the next step, waiting until the
/// server accepts it (it takes the previous, current and next step, and never a step at or
/// before the last one used).
pub struct Codes {
    totp: totp_rs::Totp,
    next: u64,
}

impl Codes {
    pub fn after_confirm(totp: totp_rs::Totp) -> Codes {
        let now = now_step(totp.step());
        // `alice_with_totp` confirmed with the current step.
        Codes {
            totp,
            next: now + 1,
        }
    }
    pub fn take(&mut self) -> String {
        // A step long past (the test ran for a while since the last code) is no longer
        // accepted: the next step from now is, for the two steps after it too.
        self.next = self.next.max(now_step(self.totp.step()) + 1);
        while now_step(self.totp.step()) + 1 < self.next {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let c = self.totp.generate(self.next * self.totp.step()).to_string();
        self.next += 1;
        c
    }
}

/// The current step of `period`-second steps.
pub fn now_step(period: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / period
}

/// A blank drive with an account of its own (no key service), not mounted.
pub fn local_account() -> Drive {
    let d = Drive::blank();
    let mut c = d.cirrus_cmd();
    c.arg("init")
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .args(["--kdf-memory", "8192", "--kdf-time", "1"]);
    let (ok, t) = out(c);
    assert!(ok, "{t}");
    d
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
pub fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `cirrus recover --data-recovery` of `from`'s account on a new device named "another",
/// with `newpw_text` as the new account password.
pub fn recover_data_from(
    srv: &Server,
    from: &Drive,
    totp: &str,
    newpw_text: &str,
) -> (Drive, bool, String) {
    let c = Drive::blank();
    let newpw = c.root.join("new-password");
    fs::write(&newpw, format!("{newpw_text}\n")).unwrap();
    let mut cmd = c.cirrus_cmd();
    cmd.args(["recover", "--data-recovery"])
        .args([
            "--store",
            &format!("file://{}", from.home.join("store").display()),
        ])
        .args([
            "--device-name",
            "another",
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
        .args(["--account", "alice", "--totp", totp])
        .arg("--new-password-file")
        .arg(&newpw)
        .arg("--passcode-file")
        .arg(&c.passcode_file);
    let (ok, t) = out(cmd);
    (c, ok, t)
}

/// `cirrus recovery-key create` on `a` (logged in with the password and `code`); returns
/// the recovery key as printed (`XXXXX-...`, 34 characters).
pub fn create_recovery_key(a: &Drive, pw: &std::path::Path, code: &str) -> String {
    let (ok, t) = out(with_pw_totp(a, pw, code, &["recovery-key", "create"]));
    assert!(ok, "{t}");
    t.lines()
        .map(str::trim)
        .find(|l| l.len() == 34 && l.matches('-').count() == 6)
        .unwrap_or_else(|| panic!("no recovery key in:\n{t}"))
        .to_string()
}
