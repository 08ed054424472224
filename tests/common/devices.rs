//! A second device joining an account through the real command line.

use super::*;
use std::io;
use std::process::Stdio;

/// Starts `cirrus device add` on the blank drive `new` for the account whose embedded
/// store is in `account`'s home (device name "phone", cheap KDF), plus `extra` arguments;
/// returns the running command and the approval code it printed.
pub fn start_join(new: &Drive, account: &Drive, extra: &[&str]) -> (std::process::Child, String) {
    let mut c = new.cirrus_cmd();
    c.args(["device", "add", "--timeout", "60", "--store"])
        .arg(format!("file://{}", account.home.join("store").display()))
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
