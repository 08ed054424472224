//! A second device joining an account through the real command line: `device add` on the
//! new device, `device approve` on one already trusted, and the wait for the first.

use super::*;
use std::io;
use std::process::{Child, Command, Stdio};

/// Starts `cirrus device add` on the blank drive `new` for the account whose embedded
/// store is in `account`'s home (device name "phone", cheap KDF), plus `extra` arguments;
/// returns the running command and the approval code it printed.
pub fn start_join(new: &Drive, account: &Drive, extra: &[&str]) -> (Child, String) {
    let store = format!("file://{}", account.home.join("store").display());
    start_join_at(new, &store, extra)
}

/// [`start_join`] for an account on the store at `store` (a URL: `file://`, `s3://`).
pub fn start_join_at(new: &Drive, store: &str, extra: &[&str]) -> (Child, String) {
    let mut c = new.cirrus_cmd();
    c.args(["device", "add", "--timeout", "60", "--store", store])
        .args([
            "--device-name",
            "phone",
            "--kdf-memory",
            "8192",
            "--kdf-time",
            "1",
        ])
        .args(extra)
        .arg("--passcode-file")
        .arg(&new.passcode_file);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cirrus device add");
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(child.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read the approval code");
    let code = line
        .strip_prefix("Approval code: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_string();
    assert_eq!(code.len(), 19, "{code:?}");
    (child, code)
}

/// `cirrus device approve CODE --passcode-file P` on the trusted device `a`.
pub fn approve(a: &Drive, code: &str) -> Command {
    let mut c = a.cirrus_cmd();
    c.args(["device", "approve", code])
        .arg("--passcode-file")
        .arg(&a.passcode_file);
    c
}

/// Approves (on `a`, which must succeed) the device whose `device add` is `child`, showing
/// `code`; then waits for that `device add`: its success and output.
pub fn approve_and_finish(a: &Drive, child: Child, code: &str) -> (bool, String) {
    let (ok, t) = out(approve(a, code));
    assert!(ok && t.contains("Approved device phone"), "{t}");
    let o = child
        .wait_with_output()
        .expect("wait for cirrus device add");
    (o.status.success(), text(&o))
}

/// The blank drive `new` joins the account of `account` (its embedded store, device name
/// "phone"), approved by `account`: the whole `device add` / `device approve` exchange,
/// which must succeed. Returns the output of `device add`.
pub fn join(new: &Drive, account: &Drive) -> String {
    let (child, code) = start_join(new, account, &[]);
    let (ok, t) = approve_and_finish(account, child, &code);
    assert!(ok, "device add failed:\n{t}");
    t
}
