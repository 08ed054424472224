//! The web front's browser tests (tests/web.rs): a real `cirrus serve` with its web
//! listener, an account with TOTP whose store is on SeaweedFS, mounted on a device that
//! ran `cirrus web on`; and the runner of the Python scenarios of `tests/web/`, which
//! drive Debian's chromium through Playwright (both installed by scripts/setup-test-deps).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Python with Playwright: `CIRRUS_WEB_PYTHON`, else the venv that
/// scripts/setup-test-deps makes at `<target>/test-tools/playwright-venv`.
pub fn web_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CIRRUS_WEB_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = target_dir().join("test-tools/playwright-venv/bin/python3");
    assert!(
        p.is_file(),
        "no Python with Playwright at {}; run `scripts/setup-test-deps` (it installs \
         Debian's chromium and Playwright from PyPI into <target>/test-tools/playwright-venv) \
         or set CIRRUS_WEB_PYTHON",
        p.display()
    );
    p
}

fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_cirrus"));
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A fresh output dir for one test's screenshots and downloads, kept after the test so a
/// person can look: `<target>/web-test-output/<test>` (emptied first).
pub fn output_dir(test: &str) -> PathBuf {
    let d = target_dir().join("web-test-output").join(test);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// How long one scenario may run before it is killed (a hung browser fails the test).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a scenario script answered.
pub struct ScriptRun {
    pub ok: bool,
    /// Its JSON answer (the last line of its stdout).
    pub json: serde_json::Value,
    pub stderr: String,
}

/// Runs `tests/web/<name>.py` with `args` and `env` (output in `out`); its answer,
/// whether it succeeded or not.
pub fn try_script(name: &str, args: &[&str], env: &[(&str, &str)], out: &Path) -> ScriptRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/web")
        .join(format!("{name}.py"));
    fs::create_dir_all(out).unwrap();
    let stdout_path = out.join(format!("{name}.stdout"));
    let stderr_path = out.join(format!("{name}.stderr"));
    let mut cmd = Command::new(web_python());
    cmd.arg(&script)
        .args(args)
        .envs(env.iter().copied())
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap());
    // Its own process group: a timeout kills the browser and Playwright's driver too.
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group of our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "{name}.py ran for more than {SCRIPT_TIMEOUT:?}; its stderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(&stdout_path).unwrap();
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let json = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{name}.py gave no JSON answer ({status});\nstdout:\n{stdout}\nstderr:\n{stderr}"
            )
        });
    ScriptRun {
        ok: status.success(),
        json,
        stderr,
    }
}

/// [`try_script`], which must succeed; its JSON answer.
#[track_caller]
pub fn run_script(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    out: &Path,
) -> serde_json::Value {
    let r = try_script(name, args, env, out);
    assert!(
        r.ok && r.json["ok"] == true,
        "{name}.py failed: {}\n{}\nstderr:\n{}",
        r.json["error"],
        r.json,
        r.stderr
    );
    r.json
}

/// Asserts that `path` is a PNG file (a screenshot a person can open).
#[track_caller]
pub fn assert_png(path: &Path) {
    let b = fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(
        b.len() > 100 && b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
}
