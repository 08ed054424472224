//! Running commands: the `cirrus` binary under test, system tools, and their output
//! captured or logged (with a timeout, so a hung child fails the test instead of CI).

use std::borrow::BorrowMut;
use std::env;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A `cirrus` command for tests: it opts in to the cheap test KDF costs the suite uses
/// (`--kdf-memory 8192 --kdf-time 1`), which the binary refuses otherwise. Tests of the
/// floor itself remove the variable again.
pub fn cirrus_command() -> Command {
    let mut c = Command::new(cirrus_bin());
    c.env(cirrus::keys::floor::INSECURE_TEST_ENV, "1");
    c
}

/// The `cirrus` binary under test.
pub fn cirrus_bin() -> PathBuf {
    match env::var_os("CIRRUS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_cirrus")),
    }
}

/// Run `cmd` with stdin closed and stdout+stderr going to `log` (so a daemonizing child
/// holding them open cannot block us); kill it after `timeout`. Returns status and output.
/// Never panics (usable from `Drop`).
pub fn try_run_logged(
    cmd: &mut Command,
    timeout: Duration,
    log: &Path,
) -> Result<(ExitStatus, String), String> {
    let f = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
    cmd.stdin(Stdio::null()).stdout(f).stderr(f2);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {cmd:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let out = fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "{cmd:?} did not finish within {timeout:?}; output so far:\n{out}"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    let out = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
    Ok((status, out))
}

/// [`try_run_logged`], panicking on spawn failure or timeout.
pub fn run_logged(cmd: &mut Command, timeout: Duration, log: &Path) -> (ExitStatus, String) {
    try_run_logged(cmd, timeout, log).unwrap_or_else(|e| panic!("{e}"))
}

/// Locate an executable on PATH (plus the sbin directories, where root tools live).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Like [`find_tool`], but a missing tool fails the test loudly.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "required tool `{name}` not found on PATH; install the test dependencies with \
             `scripts/setup-test-deps` (as root)"
        )
    })
}

/// Run a command to completion, capturing output; panics if it cannot be spawned.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run a command and require exit status 0; returns stdout as text.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -c SCRIPT` in `dir`, which must succeed; returns stdout.
#[track_caller]
pub fn sh_ok(dir: &Path, script: &str) -> String {
    run_ok(
        Command::new(require_tool("sh"))
            .arg("-c")
            .arg(script)
            .current_dir(dir),
    )
}

/// The installed `fsx` binary (see `scripts/setup-test-deps`).
pub fn fsx_bin() -> PathBuf {
    if let Some(p) = env::var_os("CIRRUS_FSX").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CIRRUS_FSX={} does not exist", p.display());
        return p;
    }
    // CARGO_BIN_EXE_cirrus is <target>/<profile>/cirrus; the tools live in <target>/test-tools.
    let exe = Path::new(env!("CARGO_BIN_EXE_cirrus"));
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let p = target.join("test-tools/bin/fsx");
    assert!(
        p.is_file(),
        "fsx not found at {}; run `scripts/setup-test-deps` (it runs `cargo install fsx --root \
         <target>/test-tools`) or set CIRRUS_FSX",
        p.display()
    );
    p
}

/// Runs a command to its end (stdin closed): whether it exited 0, and its stdout then
/// stderr as one text. Takes the command by value or as `&mut`.
pub fn out(mut c: impl BorrowMut<Command>) -> (bool, String) {
    let o = c.borrow_mut().output().expect("run the command");
    (o.status.success(), text(&o))
}

/// The stdout then the stderr of a finished command, as one text.
pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}
