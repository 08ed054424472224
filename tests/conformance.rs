//! POSIX conformance: the pjdfstest suite (Rust port, crates.io) run on a real mount. It
//! must report zero failures; its skips must be only those a plain tmpfs also has.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn pjdfstest_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CIRRUS_PJDFSTEST").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_cirrus"));
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let p = target.join("test-tools/bin/pjdfstest");
    assert!(
        p.is_file(),
        "pjdfstest not found at {}; run `scripts/setup-test-deps` or set CIRRUS_PJDFSTEST",
        p.display()
    );
    p
}

const CONFIG: &str = r#"[features]
posix_fallocate = {}
rename_ctime = {}
utime_now = {}
utimensat = {}

[dummy_auth]
entries = [
  ["nobody", "nogroup"],
  ["tests", "tests"],
  ["pjdfstest", "pjdfstest"],
]

[settings]
naptime = 0.01
"#;

#[test]
fn pjdfstest_reports_no_failure() {
    let bin = pjdfstest_bin();
    let d = Drive::mount_with(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    let dir = d.notes().join("pjdfstest");
    fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o777);
    d.open_up_for_others(&dir);
    let conf = d.root.join("pjdfstest.toml");
    fs::write(&conf, CONFIG).expect("config");
    let log = d.root.join("pjdfstest.log");
    let mut cmd = Command::new(&bin);
    cmd.arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&dir)
        .arg("-s")
        .arg(std::env::temp_dir())
        .current_dir(&dir);
    let (status, out) = run_logged(&mut cmd, Duration::from_secs(900), &log);
    let summary = out
        .lines()
        .rev()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or("(no summary line)")
        .to_string();
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .collect();
    assert!(
        summary.starts_with("Summary: 0 failed") && status.success(),
        "pjdfstest: {summary} ({status}); failing tests:\n{}",
        failed.join("\n")
    );
    eprintln!(
        "pjdfstest on {}: {summary}",
        if d.is_plain() {
            "a plain directory"
        } else {
            "Cirrus"
        }
    );
    // A vacuous pass (nothing ran) must not count.
    let passed: usize = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" passed"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 300,
        "only {passed} pjdfstest cases passed: {summary}"
    );
}
