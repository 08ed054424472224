//! `cirrus status --json` and `cirrus sync --json` for the tests that check a drive's
//! state: they read the documented fields (docs/USER-GUIDE.md) instead of matching the
//! English lines, which may be reworded. Tests of a message shown to the user keep
//! matching its text.

use super::Drive;
use serde_json::Value;
use std::process::Command;

/// Runs `cmd` (a `cirrus status` or `cirrus sync` command) with `--json`: its JSON object
/// when it succeeds, else its stdout and stderr.
pub fn try_json(mut cmd: Command) -> Result<Value, String> {
    let o = cmd.arg("--json").output().expect("run cirrus");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let text = || format!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
    if !o.status.success() {
        return Err(text());
    }
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON object ({e}):\n{}", text()));
    assert_eq!(v["version"], 1, "{v}");
    Ok(v)
}

/// [`try_json`] that must succeed.
pub fn json_ok(cmd: Command) -> Value {
    try_json(cmd).unwrap_or_else(|t| panic!("--json command failed:\n{t}"))
}

/// `cirrus status --json` of `d`, unlocked with its passcode file.
pub fn status_json(d: &Drive) -> Value {
    let mut c = d.cirrus_cmd();
    c.args(["status", "--passcode-file"]).arg(&d.passcode_file);
    json_ok(c)
}

/// The entry of category `name` in a `status --json` object.
pub fn category<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no category {name} in:\n{status:#}"))
}

/// A category's `state` (`ok`, `locked`, `unavailable`) and its `reason` ("" if none).
pub fn category_state(status: &Value, name: &str) -> (String, String) {
    let c = category(status, name);
    (
        c["state"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}
