//! `cirrus status --json` and `cirrus sync --json` for the tests that check a drive's
//! state: they read the documented fields (docs/USER-GUIDE.md) instead of matching the
//! English lines, which may be reworded. Tests of a message shown to the user keep
//! matching its text.

use super::Drive;
use serde_json::Value;
use std::process::Command;

/// Runs `cmd` (a `cirrus status` or `cirrus sync` command) with `--json`: whether it
/// succeeded, the JSON object it printed (on failure too: `error` says why), and its
/// stdout and stderr for messages.
pub fn run_json(mut cmd: Command) -> (bool, Value, String) {
    let o = cmd.arg("--json").output().expect("run cirrus");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON object ({e}):\n{text}"));
    assert_eq!(v["version"], 1, "{v}");
    (o.status.success(), v, text)
}

/// Runs `cmd` with `--json`: its JSON object when it succeeds, else its output.
pub fn try_json(cmd: Command) -> Result<Value, String> {
    match run_json(cmd) {
        (true, v, _) => Ok(v),
        (false, _, text) => Err(text),
    }
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

/// `cirrus sync --wait --json` of `d`, which must succeed.
pub fn sync_json(d: &Drive) -> Value {
    let mut c = d.cirrus_cmd();
    c.args(["sync", "--wait"]);
    json_ok(c)
}

/// The outcome (`unchanged`, `fast_forward`, `merged`, `refused`, `failed`) a
/// `sync --json` object's pull gives category `name`; None when it did not pull.
pub fn pulled(sync: &Value, name: &str) -> Option<String> {
    let cs = sync["pull"]["categories"].as_array()?;
    let c = cs.iter().find(|c| c["name"] == name)?;
    c["outcome"].as_str().map(str::to_string)
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
