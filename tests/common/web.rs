//! The web front's browser tests (tests/web.rs): a real `cirrus serve` with its web
//! listener, an account with TOTP whose store is on SeaweedFS, mounted on a device that
//! ran `cirrus web on`; and the runner of the Python scenarios of `tests/web/`, which
//! drive Debian's chromium through Playwright (both installed by scripts/setup-test-deps).

use super::accounts::{Codes, FAST_TOTP, enroll_totp, with_pw};
use super::keyserver::Server;
use super::seaweed::{ACCESS_KEY, SECRET_KEY, Seaweed};
use super::*;
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

/// The account of the web tests.
pub const ACCOUNT: &str = "alice";

/// Mount flags of the device: writes are committed within a second, so the
/// `cirrus sync --wait` of [`WebDrive::sync`] publishes them. No poll of its own while a
/// scenario runs: the device takes changes made on the web in only at the tests'
/// `cirrus sync`, so a page can be checked to show them as still waiting.
const MOUNT_ARGS: &[&str] = &["--commit-interval", "1", "--poll-interval", "3600"];

/// A real `cirrus serve` with its web front, SeaweedFS holding the account's store, and
/// the account's device, mounted, that turned web access on. Dropped in field order: the
/// device unmounts before the servers stop.
pub struct WebDrive {
    /// The device (laptop), mounted: what the tests write through and compare with.
    pub drive: Drive,
    pub srv: Server,
    pub sw: Seaweed,
    /// The web front, `https://127.0.0.1:PORT`.
    pub url: String,
    /// The web front's certificate fingerprint as printed (`SHA256:<hex>`).
    pub web_fingerprint: String,
    /// The account password (first line), which the web never sees.
    pub password_file: PathBuf,
    /// The web password `cirrus web on` set (first line).
    pub web_password_file: PathBuf,
    /// The store URL given to `cirrus web on`.
    pub store_url: String,
    /// TOTP codes the server has not seen yet (10-second steps, [`FAST_TOTP`]).
    pub codes: Codes,
    pub totp: totp_rs::Totp,
    _dir: tempfile::TempDir,
}

/// One account of [`WebDrive`]'s server: its device (mounted, web on) and credentials.
pub struct WebAccount {
    pub name: String,
    pub drive: Drive,
    /// The account password (first line), which the web never sees.
    pub password_file: PathBuf,
    /// The web password `cirrus web on` set (first line).
    pub web_password_file: PathBuf,
    /// The store URL given to `cirrus web on`: `s3://BUCKET/web-<name>`.
    pub store_url: String,
    pub codes: Codes,
    pub totp: totp_rs::Totp,
}

impl WebAccount {
    /// `cirrus sync --wait` on the device: what it wrote is in the store.
    pub fn sync(&self) {
        run_ok(self.drive.cirrus_cmd().args(["sync", "--wait"]));
    }
}

/// Account `name` on `srv` with its store on `sw` (prefix `web-<name>`), TOTP enrolled,
/// mounted, and `cirrus web on --store URL --web-password-file F` run; its files in
/// `dir`.
fn web_account(sw: &Seaweed, srv: &Server, dir: &Path, name: &str) -> WebAccount {
    let password_file = dir.join(format!("{name}-password"));
    fs::write(&password_file, format!("{name}'s account password\n")).unwrap();
    let web_password_file = dir.join(format!("{name}-web-password"));
    fs::write(
        &web_password_file,
        format!("{name}'s web password, not the account's\n"),
    )
    .unwrap();
    let fp = srv.fingerprint.to_string();
    let pw = password_file.to_str().unwrap();
    let init = [
        "--device-name",
        "laptop",
        "--server",
        &srv.url,
        "--fingerprint",
        &fp,
        "--account",
        name,
        "--password-file",
        pw,
    ];
    let prefix = format!("web-{name}");
    let mut drive = sw.drive(&prefix, MOUNT_ARGS, &init);
    let totp = enroll_totp(&drive, &password_file);
    drive.mount_again();
    let store_url = sw.url(&prefix);
    let wpw = web_password_file.to_str().unwrap();
    // Setting a web password needs a fresh second factor.
    let mut codes = Codes::after_confirm(totp.clone());
    let code = codes.take();
    let (ok, t) = out(with_pw(
        &drive,
        &password_file,
        &[
            "web",
            "on",
            "--store",
            &store_url,
            "--web-password-file",
            wpw,
            "--totp",
            &code,
        ],
    ));
    assert!(ok, "cirrus web on failed for {name}:\n{t}");
    WebAccount {
        name: name.to_string(),
        drive,
        password_file,
        web_password_file,
        store_url,
        codes,
        totp,
    }
}

/// The `--web-store-allow` prefix that lets the server reach `sw`'s gateway, and no other.
pub fn web_store_allow(sw: &Seaweed) -> String {
    // The canonical location of a store is ENDPOINT/BUCKET/PREFIX/ (FORMAT.md §9d).
    format!("{}/", sw.endpoint.trim_end_matches('/'))
}

/// The web front's start line, `cirrus web listening on https://IP:PORT fingerprint
/// SHA256:<hex>`: the URL and the fingerprint.
pub fn parse_web_line(line: &str) -> (String, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 7, "unexpected web start line: {line:?}");
    assert_eq!(
        &words[..4],
        ["cirrus", "web", "listening", "on"],
        "{line:?}"
    );
    assert_eq!(words[5], "fingerprint", "{line:?}");
    let url = words[4];
    assert!(
        url.starts_with("https://127.0.0.1:") && !url.ends_with(":0"),
        "{line:?}"
    );
    assert!(
        words[6].starts_with("SHA256:") && words[6].len() == 71,
        "{line:?}"
    );
    (url.to_string(), words[6].to_string())
}

impl WebDrive {
    /// Starts SeaweedFS and `cirrus serve --web-listen 127.0.0.1:0` (plus `server_args`),
    /// makes the account (TOTP enrolled, store on SeaweedFS), mounts it and runs
    /// `cirrus web on --store URL --web-password-file F`.
    pub fn start(server_args: &[&str]) -> WebDrive {
        let sw = Seaweed::start();
        let dir = tempfile::Builder::new()
            .prefix("cirrus-web-")
            .tempdir()
            .unwrap();
        let allow = web_store_allow(&sw);
        let mut args = FAST_TOTP.to_vec();
        args.extend(["--web-listen", "127.0.0.1:0", "--web-store-allow", &allow]);
        args.extend_from_slice(server_args);
        // The server reads the store with S3 credentials of its own environment.
        let srv = Server::start_with_env(
            dir.path(),
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ],
        );
        let line = srv
            .stdout_line(Duration::from_secs(60))
            .expect("the server printed no web listening line within 60 s");
        let (url, web_fingerprint) = parse_web_line(&line);
        let a = web_account(&sw, &srv, dir.path(), ACCOUNT);
        WebDrive {
            drive: a.drive,
            srv,
            sw,
            url,
            web_fingerprint,
            password_file: a.password_file,
            web_password_file: a.web_password_file,
            store_url: a.store_url,
            codes: a.codes,
            totp: a.totp,
            _dir: dir,
        }
    }

    /// Another account `name` on the same servers, set up as the first (its store under
    /// its own prefix of the bucket, TOTP, mounted, web on): for isolation tests.
    pub fn add_account(&self, name: &str) -> WebAccount {
        web_account(&self.sw, &self.srv, self._dir.path(), name)
    }

    /// `cirrus sync --wait` on the device: what it wrote is in the store.
    pub fn sync(&self) {
        run_ok(self.drive.cirrus_cmd().args(["sync", "--wait"]));
    }

    /// A 6-digit code that is no TOTP code of the steps around now (a wrong one).
    pub fn wrong_code(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let step = self.totp.step();
        let near: Vec<String> = (0..=8)
            .map(|i| self.totp.generate(now + i * step - 4 * step).to_string())
            .collect();
        (0u32..)
            .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }

    /// The inputs every scenario script takes (tests/web/scenario.py): web URL, account,
    /// web password file and output dir.
    pub fn script_args(&self, out: &Path) -> Vec<String> {
        vec![
            "--url".into(),
            self.url.clone(),
            "--account".into(),
            ACCOUNT.into(),
            "--password-file".into(),
            self.web_password_file.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    }

    /// Runs scenario `tests/web/<name>.py` as account `acct` (its name and web password
    /// instead of the first account's) with `extra`; its JSON answer (it must succeed).
    #[track_caller]
    pub fn scenario_as(
        &self,
        acct: &WebAccount,
        name: &str,
        out: &Path,
        extra: &[&str],
    ) -> serde_json::Value {
        let mut args = self.script_args(out);
        args[3] = acct.name.clone();
        args[5] = acct.web_password_file.display().to_string();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script(name, &args, &[], out)
    }

    /// Runs scenario `tests/web/<name>.py` with [`WebDrive::script_args`] and `extra`;
    /// its JSON answer (it must succeed).
    #[track_caller]
    pub fn scenario(&self, name: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
        let mut args = self.script_args(out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script(name, &args, &[], out)
    }
}
