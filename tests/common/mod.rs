//! Harness for the POSIX integration suite (`tests/posix_*.rs`).
//!
//! Target selection (environment):
//! - `CIRRUS_TEST_TARGET=plain`: every test runs in a fresh plain directory (a stand-in for
//!   a category folder). This validates the tests themselves: they must all pass there.
//!   The directory is created under `CIRRUS_TEST_PLAIN_DIR`, else `/dev/shm` (tmpfs: it
//!   takes 64 KiB xattr values, which ext4 without `ea_inode` does not), else `$TMPDIR`.
//! - unset (or `cirrus`): every test gets its own real Cirrus drive: a fresh home, `cirrus
//!   init` with a cheap KDF, `cirrus mount`, and `cirrus umount` when the [`Drive`] drops.
//!
//! Other knobs: `CIRRUS_BIN` (binary to test; default: the one cargo built),
//! `CIRRUS_TEST_TIMEOUT` (seconds a mount may live before the watchdog aborts the FUSE
//! connection so a hung test fails instead of hanging CI; default 300), `CIRRUS_FSX`
//! (path of the `fsx` binary; default `<target>/test-tools/bin/fsx`, where
//! `scripts/setup-test-deps` installs it).
#![allow(dead_code)]

pub mod accounts;
pub mod keyserver;
pub mod seaweed;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::env;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Passcode used for every test drive.
pub const PASSCODE: &str = "correct horse battery staple";
/// Cirrus' content chunk size; I/O tests straddle multiples of it.
pub const CHUNK: usize = 256 * 1024;
/// Name of the unprivileged account the permission tests run as.
pub const TEST_USER: &str = "cirrustest";

// ---------------------------------------------------------------------------------------
// Target selection
// ---------------------------------------------------------------------------------------

/// True when the suite runs against a plain directory instead of a Cirrus mount.
pub fn is_plain() -> bool {
    match env::var("CIRRUS_TEST_TARGET") {
        Err(_) => false,
        Ok(v) if v.is_empty() || v == "cirrus" => false,
        Ok(v) if v == "plain" => true,
        Ok(v) => panic!("unknown CIRRUS_TEST_TARGET={v:?}: expected `plain` or unset"),
    }
}

/// The `cirrus` binary under test.
/// A `cirrus` command for tests: it opts in to the cheap test KDF costs the suite uses
/// (`--kdf-memory 8192 --kdf-time 1`), which the binary refuses otherwise. Tests of the
/// floor itself remove the variable again.
pub fn cirrus_command() -> Command {
    let mut c = Command::new(cirrus_bin());
    c.env(cirrus::keys::floor::INSECURE_TEST_ENV, "1");
    c
}

pub fn cirrus_bin() -> PathBuf {
    match env::var_os("CIRRUS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_cirrus")),
    }
}

fn plain_base() -> PathBuf {
    if let Some(p) = env::var_os("CIRRUS_TEST_PLAIN_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    env::temp_dir()
}

fn watchdog_timeout() -> Duration {
    let secs = env::var("CIRRUS_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

// ---------------------------------------------------------------------------------------
// Drive
// ---------------------------------------------------------------------------------------

/// Extra `cirrus mount` options.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// `--allow-other`: needed whenever a non-root user touches the mount.
    pub allow_other: bool,
    /// `--memory-cache SIZE`, e.g. `"64M"`.
    pub memory_cache: Option<String>,
    /// `--commit-interval SECS`.
    pub commit_interval: Option<u64>,
    /// Any other `cirrus mount` arguments.
    pub extra: Vec<String>,
}

/// One test drive: its own home, passcode file and mount point.
pub struct Drive {
    pub home: PathBuf,
    pub mnt: PathBuf,
    pub passcode_file: PathBuf,
    /// Root of everything this drive owns (home, mnt, passcode, command logs).
    pub root: PathBuf,
    opts: MountOptions,
    plain: bool,
    mounted: bool,
    mounts: u32,
    watchdog: Option<Watchdog>,
    tmp: Option<tempfile::TempDir>,
    /// Extra environment of every `cirrus` command of this drive (e.g. S3 credentials).
    env: Vec<(String, String)>,
}

impl Drive {
    /// A fresh drive with default options, mounted (or a fresh plain directory).
    pub fn mount() -> Drive {
        Drive::mount_with(MountOptions::default())
    }

    /// A fresh drive mounted with `opts`.
    pub fn mount_with(opts: MountOptions) -> Drive {
        let mut d = Drive::blank_with(opts);
        if !d.plain {
            d.init();
            d.mount_now();
        }
        d
    }

    /// Fresh directories (home, mount point, passcode file) and no account: for a device
    /// that joins or recovers an account. Mount it with [`Drive::mount_again`].
    pub fn blank() -> Drive {
        Drive::blank_with(MountOptions::default())
    }

    fn blank_with(opts: MountOptions) -> Drive {
        let plain = is_plain();
        let base = if plain { plain_base() } else { env::temp_dir() };
        let tmp = tempfile::Builder::new()
            .prefix("cirrus-test-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("cannot create a temp dir in {}: {e}", base.display()));
        let root = fs::canonicalize(tmp.path()).expect("canonicalize temp dir");
        // Other users must be able to traverse to the mount (permission tests).
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod root");
        let home = root.join("home");
        let mnt = root.join("mnt");
        let passcode_file = root.join("passcode");
        fs::create_dir(&home).expect("mkdir home");
        fs::create_dir(&mnt).expect("mkdir mnt");
        fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).expect("chmod mnt");
        write_passcode_file(&passcode_file);
        Drive {
            home,
            mnt,
            passcode_file,
            root,
            opts,
            plain,
            mounted: false,
            mounts: 0,
            watchdog: None,
            tmp: Some(tmp),
            env: Vec::new(),
        }
    }

    /// True in plain mode (no Cirrus involved).
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Path of a category folder (`Notes`, `Health`, ...). Plain mode creates it.
    pub fn category_path(&self, name: &str) -> PathBuf {
        let p = self.mnt.join(name);
        if self.plain {
            fs::create_dir_all(&p).expect("mkdir plain category");
            return p;
        }
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => p,
            other => {
                let listing: Vec<String> = fs::read_dir(&self.mnt)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                panic!(
                    "category folder {} is not a directory ({other:?}); mount root lists {listing:?}",
                    p.display()
                )
            }
        }
    }

    /// `MNT/Notes` (standard class): where most tests work.
    pub fn notes(&self) -> PathBuf {
        self.category_path("Notes")
    }

    /// `MNT/Health` (end-to-end class).
    pub fn health(&self) -> PathBuf {
        self.category_path("Health")
    }

    /// Unmount, then mount again (plain mode: no-op). Panics if either step fails.
    pub fn remount(&mut self) {
        if self.plain {
            return;
        }
        self.unmount();
        self.mount_now();
    }

    /// Cleanly unmount (must succeed); the drive stays unmounted until [`Drive::remount`].
    pub fn unmount(&mut self) {
        if self.plain || !self.mounted {
            return;
        }
        self.stop_watchdog();
        let (status, out) = self.cirrus_timed(
            &["umount".as_ref(), self.mnt.as_os_str()],
            Duration::from_secs(180),
            "umount",
        );
        self.mounted = is_fuse_mount(&self.mnt);
        if !status.success() || self.mounted {
            self.dump_log();
            panic!(
                "`cirrus umount {}` failed ({status}; still mounted: {})\n{out}",
                self.mnt.display(),
                self.mounted
            );
        }
    }

    /// Ensure `path` and every ancestor below the drive root can be traversed and listed
    /// by other users (chmod o+rx where missing). Needed by tests that act as another user.
    pub fn open_up_for_others(&self, path: &Path) {
        let mut chain = Vec::new();
        let mut cur = Some(path);
        while let Some(p) = cur {
            if !p.starts_with(&self.root) {
                break;
            }
            chain.push(p.to_path_buf());
            cur = p.parent();
        }
        for p in chain.iter().rev() {
            let mode = fs::metadata(p)
                .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
                .mode();
            if mode & 0o005 != 0o005 {
                fs::set_permissions(p, fs::Permissions::from_mode((mode | 0o005) & 0o7777))
                    .unwrap_or_else(|e| panic!("chmod o+rx {}: {e}", p.display()));
            }
        }
    }

    /// Mount again after [`Drive::unmount`] (or a crash), e.g. once the store was damaged.
    pub fn mount_again(&mut self) {
        if self.plain {
            return;
        }
        self.mount_now();
    }

    /// The drive was mounted by the test itself (a `cirrus mount` it ran): the harness
    /// unmounts it at the end.
    pub fn mark_mounted(&mut self) {
        self.mounted = is_fuse_mount(&self.mnt);
        assert!(self.mounted, "{} is not mounted", self.mnt.display());
    }

    /// The drive was unmounted behind the harness' back (kill -9 + stale cleanup).
    pub fn mark_unmounted(&mut self) {
        self.stop_watchdog();
        self.mounted = is_fuse_mount(&self.mnt);
    }

    /// The options of later mounts.
    pub fn mount_options(&mut self) -> &mut MountOptions {
        &mut self.opts
    }

    /// Sets `key=value` in the environment of this drive's later `cirrus` commands.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// A `cirrus --home HOME` command for this drive.
    pub fn cirrus_cmd(&self) -> Command {
        self.cirrus()
    }

    fn cirrus(&self) -> Command {
        let mut c = cirrus_command();
        c.arg("--home").arg(&self.home);
        c.env("RUST_BACKTRACE", "1");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn try_cirrus_timed(
        &self,
        args: &[&OsStr],
        timeout: Duration,
        what: &str,
    ) -> Result<(ExitStatus, String), String> {
        let mut cmd = self.cirrus();
        cmd.args(args);
        let log = self.root.join(format!("cmd-{what}-{}.out", self.mounts));
        try_run_logged(&mut cmd, timeout, &log)
    }

    fn cirrus_timed(&self, args: &[&OsStr], timeout: Duration, what: &str) -> (ExitStatus, String) {
        self.try_cirrus_timed(args, timeout, what)
            .unwrap_or_else(|e| {
                self.dump_log();
                panic!("{e}")
            })
    }

    fn init(&self) {
        let (status, out) = self.cirrus_timed(
            &[
                "init".as_ref(),
                "--passcode-file".as_ref(),
                self.passcode_file.as_os_str(),
                "--kdf-memory".as_ref(),
                "8192".as_ref(),
                "--kdf-time".as_ref(),
                "1".as_ref(),
            ],
            Duration::from_secs(180),
            "init",
        );
        assert!(status.success(), "`cirrus init` failed ({status}):\n{out}");
    }

    fn mount_now(&mut self) {
        let mut args: Vec<OsString> = vec![
            "mount".into(),
            self.mnt.clone().into(),
            "--passcode-file".into(),
            self.passcode_file.clone().into(),
        ];
        if self.opts.allow_other {
            args.push("--allow-other".into());
        }
        if let Some(size) = &self.opts.memory_cache {
            args.push("--memory-cache".into());
            args.push(size.into());
        }
        if let Some(secs) = self.opts.commit_interval {
            args.push("--commit-interval".into());
            args.push(secs.to_string().into());
        }
        args.extend(self.opts.extra.iter().map(OsString::from));
        self.mounts += 1;
        let argv: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (status, out) = self.cirrus_timed(&argv, Duration::from_secs(180), "mount");
        if !status.success() {
            self.dump_log();
            panic!("`cirrus mount` failed ({status}):\n{out}");
        }
        let Some(info) = mount_info(&self.mnt) else {
            self.dump_log();
            panic!(
                "`cirrus mount` exited 0 but {} is not a mount point:\n{out}",
                self.mnt.display()
            );
        };
        assert!(
            info.fstype.starts_with("fuse"),
            "{} is mounted with fstype {:?}, expected fuse*",
            self.mnt.display(),
            info.fstype
        );
        self.mounted = true;
        self.watchdog = Some(Watchdog::start(
            self.mnt.clone(),
            info.dev,
            watchdog_timeout(),
        ));
    }

    fn stop_watchdog(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
    }

    /// Print the tail of the daemon log to stderr (shown with a failing test's output).
    pub fn dump_log(&self) {
        let log = self.home.join("cirrus.log");
        match fs::read(&log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(150);
                eprintln!("---- tail of {} ----", log.display());
                for l in &lines[from..] {
                    eprintln!("{l}");
                }
                eprintln!("---- end of log ----");
            }
            Err(e) => eprintln!("(no daemon log at {}: {e})", log.display()),
        }
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        self.stop_watchdog();
        if self.plain {
            return;
        }
        if thread::panicking() {
            self.dump_log();
        }
        let mut still_mounted = is_fuse_mount(&self.mnt);
        if still_mounted {
            // No panics in drop: it may run while unwinding.
            let res = self.try_cirrus_timed(
                &["umount".as_ref(), self.mnt.as_os_str()],
                Duration::from_secs(120),
                "umount-drop",
            );
            still_mounted = is_fuse_mount(&self.mnt);
            match res {
                Ok((status, _)) if status.success() && !still_mounted => {}
                Ok((status, out)) => {
                    eprintln!("warning: `cirrus umount` in drop failed ({status}): {out}")
                }
                Err(e) => eprintln!("warning: `cirrus umount` in drop: {e}"),
            }
        }
        if still_mounted {
            force_unmount(&self.mnt);
            still_mounted = mount_info(&self.mnt).is_some();
        }
        if still_mounted {
            // Never recurse into a live mount: leak the directory instead.
            if let Some(t) = self.tmp.take() {
                let kept = t.keep();
                eprintln!(
                    "warning: {} still mounted; leaving {}",
                    self.mnt.display(),
                    kept.display()
                );
            }
        }
    }
}

fn write_passcode_file(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create passcode file");
    f.write_all(PASSCODE.as_bytes()).expect("write passcode");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod passcode");
}

/// Abort a FUSE mount's connection and detach it (last resort; root only).
pub fn force_unmount(mnt: &Path) {
    if let Some(info) = mount_info(mnt) {
        abort_fuse_connection(info.dev);
    }
    let c = cpath(mnt);
    // SAFETY: plain syscalls on a valid C string.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_FORCE);
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
    if mount_info(mnt).is_some() {
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(mnt)
            .stdin(Stdio::null())
            .output();
    }
}

fn abort_fuse_connection(dev: (u32, u32)) {
    let id = (u64::from(dev.0) << 20) | u64::from(dev.1);
    let abort = PathBuf::from(format!("/sys/fs/fuse/connections/{id}/abort"));
    if abort.exists() {
        let _ = fs::write(&abort, "1");
    }
}

/// Kills a hung mount after a deadline so the stuck test fails with ENOTCONN.
struct Watchdog {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(mnt: PathBuf, dev: (u32, u32), timeout: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                eprintln!(
                    "watchdog: {} mounted for more than {timeout:?}; aborting the FUSE connection",
                    mnt.display()
                );
                abort_fuse_connection(dev);
                let c = cpath(&mnt);
                // SAFETY: plain syscall on a valid C string. MNT_FORCE aborts a FUSE
                // connection even where fusectl is not mounted.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_FORCE);
                }
            }
        });
        Watchdog { stop: tx, handle }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub dev: (u32, u32),
    pub fstype: String,
    pub options: String,
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    // Spaces, tabs, newlines and backslashes appear as \ooo octal escapes.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The (topmost) mount at exactly `path`, if any. Never touches the mounted file system.
pub fn mount_info(path: &Path) -> Option<MountInfo> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    let mut found = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 || unescape_mountinfo(fields[4]) != want {
            continue;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        let (maj, min) = fields[2].split_once(':')?;
        found = Some(MountInfo {
            dev: (maj.parse().ok()?, min.parse().ok()?),
            fstype: fields.get(sep + 1)?.to_string(),
            options: fields.get(sep + 3).unwrap_or(&"").to_string(),
        });
    }
    found
}

/// True when a FUSE file system is mounted at exactly `path`.
pub fn is_fuse_mount(path: &Path) -> bool {
    mount_info(path).is_some_and(|m| m.fstype.starts_with("fuse"))
}

// ---------------------------------------------------------------------------------------
// Processes and tools
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// The unprivileged test user
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new(require_tool("id"))
        .arg(flag)
        .arg(TEST_USER)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The `cirrustest` account, created (idempotently, under a lock) if missing.
pub fn test_user() -> TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the permission tests must run as root"
        );
        let lock_path = env::temp_dir().join(".cirrus-test-user.lock");
        let lock = File::create(&lock_path).expect("create user lock file");
        // SAFETY: valid fd; the lock is released when `lock` is closed.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        if id_of("-u").is_none() {
            let useradd = require_tool("useradd");
            run_ok(Command::new(useradd).args([
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/sh",
                TEST_USER,
            ]));
        }
        let uid = id_of("-u").expect("uid of test user");
        let gid = id_of("-g").expect("gid of test user");
        assert_ne!(uid, 0, "{TEST_USER} must not be root");
        drop(lock);
        TestUser {
            name: TEST_USER,
            uid,
            gid,
        }
    })
    .clone()
}

/// `runuser -u cirrustest -- PROGRAM`.
pub fn runuser(user: &TestUser, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(require_tool("runuser"));
    c.args(["-u", user.name, "--"]).arg(program);
    c
}

const CHILD_SETUP_FAILED: i32 = 250;
const CHILD_PANICKED: i32 = 251;

/// Run `f` in a forked child (optionally after switching to `creds` = (uid, gid), with no
/// supplementary groups) and return its result: by convention an errno, 0 for success.
///
/// `f` runs after fork() in a multithreaded process: it must only make raw libc calls on
/// data prepared beforehand (C strings, buffers), not allocate or lock.
pub fn in_child<F: FnOnce() -> i32>(creds: Option<(u32, u32)>, f: F) -> i32 {
    // SAFETY: fork; the child only runs `f` (see above) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: raw syscalls in the single-threaded child.
        unsafe {
            if let Some((uid, gid)) = creds {
                let none: *const libc::gid_t = std::ptr::null();
                if libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, none) != 0
                    || libc::syscall(
                        libc::SYS_setresgid,
                        gid as libc::c_long,
                        gid as libc::c_long,
                        gid as libc::c_long,
                    ) != 0
                    || libc::syscall(
                        libc::SYS_setresuid,
                        uid as libc::c_long,
                        uid as libc::c_long,
                        uid as libc::c_long,
                    ) != 0
                {
                    libc::_exit(CHILD_SETUP_FAILED);
                }
            }
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(CHILD_PANICKED);
            libc::_exit(code);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
    }
    assert!(
        libc::WIFEXITED(status),
        "child died abnormally (wait status {status:#x})"
    );
    let code = libc::WEXITSTATUS(status);
    assert_ne!(
        code, CHILD_SETUP_FAILED,
        "child could not switch credentials to {creds:?}"
    );
    assert_ne!(code, CHILD_PANICKED, "child panicked");
    code
}

/// [`in_child`] as the test user.
pub fn as_user<F: FnOnce() -> i32>(user: &TestUser, f: F) -> i32 {
    in_child(Some((user.uid, user.gid)), f)
}

/// Current errno.
pub fn errno() -> i32 {
    // SAFETY: errno location is always valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// Map a libc return value to 0 (success) or errno (failure). Async-signal-safe.
pub fn rc(ret: libc::c_int) -> i32 {
    if ret < 0 { errno() } else { 0 }
}

/// open(path, flags, mode) then close; 0 or errno. Async-signal-safe.
pub fn open_close(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> i32 {
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return errno();
    }
    // SAFETY: fd was just opened.
    unsafe { libc::close(fd) };
    0
}

/// Human-readable errno name for messages.
pub fn errno_name(e: i32) -> String {
    format!("{} ({})", e, io::Error::from_raw_os_error(e))
}

// ---------------------------------------------------------------------------------------
// Syscall helpers
// ---------------------------------------------------------------------------------------

/// Path to a C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path contains NUL")
}

/// Convert a libc return value into io::Result.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Convert a libc ssize_t return value into io::Result.
pub fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Assert that `r` failed with exactly `expected`.
#[track_caller]
pub fn assert_errno<T: Debug>(r: io::Result<T>, expected: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected {}, but it succeeded ({v:?})",
            errno_name(expected)
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(expected),
            "{what}: expected {}, got {e:?}",
            errno_name(expected)
        ),
    }
}

/// Assert a child-process result code (see [`in_child`]).
#[track_caller]
pub fn assert_code(code: i32, expected: i32, what: &str) {
    assert_eq!(
        code,
        expected,
        "{what}: expected {}, got {}",
        if expected == 0 {
            "success".to_string()
        } else {
            errno_name(expected)
        },
        if code == 0 {
            "success".to_string()
        } else {
            errno_name(code)
        }
    );
}

/// A timestamp argument for [`set_times`].
#[derive(Clone, Copy, Debug)]
pub enum Ts {
    At(i64, i64),
    Now,
    Omit,
}

impl Ts {
    fn timespec(self) -> libc::timespec {
        match self {
            Ts::At(s, ns) => libc::timespec {
                tv_sec: s as libc::time_t,
                tv_nsec: ns as libc::c_long,
            },
            Ts::Now => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            Ts::Omit => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        }
    }
}

/// utimensat(AT_FDCWD, path, [atime, mtime], follow ? 0 : AT_SYMLINK_NOFOLLOW).
pub fn set_times(path: &Path, atime: Ts, mtime: Ts, follow: bool) -> io::Result<()> {
    let c = cpath(path);
    let ts = [atime.timespec(), mtime.timespec()];
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: valid C string and 2-element array.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) }).map(drop)
}

/// (sec, nsec) pairs from metadata.
pub fn mtime(m: &fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}
pub fn ctime(m: &fs::Metadata) -> (i64, i64) {
    (m.ctime(), m.ctime_nsec())
}
pub fn atime(m: &fs::Metadata) -> (i64, i64) {
    (m.atime(), m.atime_nsec())
}

/// Wall clock now as (sec, nsec).
pub fn now() -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Wall clock minus `slack` (kernel timestamps come from a coarse clock).
pub fn now_minus(slack: Duration) -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock") - slack;
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Sleep long enough that a fresh timestamp is strictly newer than one taken before.
pub fn tick() {
    thread::sleep(Duration::from_millis(30));
}

pub fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

pub fn stat(p: &Path) -> fs::Metadata {
    fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

/// File type bits of st_mode.
pub fn fmt_bits(m: &fs::Metadata) -> u32 {
    m.mode() & libc::S_IFMT
}

/// Permission bits (incl. setuid/setgid/sticky).
pub fn perm_bits(m: &fs::Metadata) -> u32 {
    m.mode() & 0o7777
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn mknod(p: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

/// renameat2(AT_FDCWD, from, AT_FDCWD, to, flags).
pub fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let a = cpath(from);
    let b = cpath(to);
    // SAFETY: valid C strings.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Raw directory listing via readdir(3), including `.` and `..`: (name, d_ino, d_type).
pub fn raw_readdir(dir: &Path) -> io::Result<Vec<(Vec<u8>, u64, u8)>> {
    let c = cpath(dir);
    // SAFETY: valid C string; the stream is closed below.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: errno reset so end-of-stream and error can be told apart.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is an open stream.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = errno();
            // SAFETY: closing our stream.
            unsafe { libc::closedir(d) };
            if e != 0 {
                return Err(io::Error::from_raw_os_error(e));
            }
            return Ok(out);
        }
        // SAFETY: readdir returned a valid entry.
        let (name, ino, ty) = unsafe {
            let e = &*ent;
            (
                CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
                e.d_ino,
                e.d_type,
            )
        };
        out.push((name, ino, ty));
    }
}

/// Names in a directory (without `.`/`..`), sorted.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// xattr helpers (no-follow variants where it matters)
// ---------------------------------------------------------------------------------------

pub fn set_xattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid pointers and lengths.
    cvt(unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn lset_xattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid pointers and lengths.
    cvt(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// getxattr with a caller-sized buffer (to observe ERANGE); `cap == 0` asks for the size.
pub fn get_xattr_sized(p: &Path, name: &str, cap: usize) -> io::Result<(usize, Vec<u8>)> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    let mut buf = vec![0u8; cap];
    let ptr = if cap == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: buffer of `cap` bytes (or NULL with size 0).
    let r = cvt_size(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), ptr, cap) })?;
    buf.truncate(r.min(cap));
    Ok((r, buf))
}

fn get_xattr_impl(p: &Path, name: &str, follow: bool) -> io::Result<Vec<u8>> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    let call = |buf: *mut libc::c_void, len: usize| -> io::Result<usize> {
        // SAFETY: valid pointers; `buf` has `len` bytes.
        cvt_size(unsafe {
            if follow {
                libc::getxattr(c.as_ptr(), n.as_ptr(), buf, len)
            } else {
                libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf, len)
            }
        })
    };
    loop {
        let size = call(std::ptr::null_mut(), 0)?;
        let mut buf = vec![0u8; size.max(1)];
        match call(buf.as_mut_ptr().cast(), buf.len()) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn get_xattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    get_xattr_impl(p, name, true)
}

pub fn lget_xattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    get_xattr_impl(p, name, false)
}

fn list_xattr_impl(p: &Path, follow: bool) -> io::Result<Vec<String>> {
    let c = cpath(p);
    let call = |buf: *mut libc::c_char, len: usize| -> io::Result<usize> {
        // SAFETY: valid pointers; `buf` has `len` bytes.
        cvt_size(unsafe {
            if follow {
                libc::listxattr(c.as_ptr(), buf, len)
            } else {
                libc::llistxattr(c.as_ptr(), buf, len)
            }
        })
    };
    loop {
        let size = call(std::ptr::null_mut(), 0)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match call(buf.as_mut_ptr().cast(), buf.len()) {
            Ok(n) => {
                buf.truncate(n);
                let mut names: Vec<String> = buf
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                names.sort();
                return Ok(names);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sorted xattr names (all namespaces).
pub fn list_xattr(p: &Path) -> io::Result<Vec<String>> {
    list_xattr_impl(p, true)
}

pub fn llist_xattr(p: &Path) -> io::Result<Vec<String>> {
    list_xattr_impl(p, false)
}

/// Sorted `user.*` xattr names.
pub fn user_xattrs(p: &Path) -> Vec<String> {
    list_xattr(p)
        .unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display()))
        .into_iter()
        .filter(|n| n.starts_with("user."))
        .collect()
}

pub fn remove_xattr(p: &Path, name: &str) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid C strings.
    cvt(unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) }).map(drop)
}

// ---------------------------------------------------------------------------------------
// Data helpers
// ---------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (splitmix64).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// blake3 hex digest.
pub fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// blake3 of a file's content, streamed with reads of an odd size.
pub fn file_hash(p: &Path) -> String {
    let mut f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 100_003];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_hex().to_string()
}

/// Read a whole file.
pub fn read_all(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Compare two byte slices, reporting the first differing offset rather than dumping both.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual.iter().zip(expected).position(|(a, b)| a != b);
    match first {
        Some(i) => panic!(
            "{what}: content differs first at offset {i} (got {:#04x}, want {:#04x}); lengths {} vs {}",
            actual[i],
            expected[i],
            actual.len(),
            expected.len()
        ),
        None => panic!(
            "{what}: length {} but expected {}",
            actual.len(),
            expected.len()
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Manifests: a full, comparable description of a tree
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// 0 for directories (their st_size is file-system specific).
    pub size: u64,
    pub mtime: (i64, i64),
    pub nlink: u64,
    /// For non-directories with nlink > 1: the smallest path in the tree sharing the inode.
    pub hardlink_group: Option<String>,
    pub symlink_target: Option<String>,
    pub content_hash: Option<String>,
    pub rdev: u64,
    /// `user.*` xattrs, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub type Manifest = BTreeMap<String, Entry>;

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chr"
    } else if ft.is_block_device() {
        "blk"
    } else if ft.is_socket() {
        "sock"
    } else {
        "unknown"
    }
}

/// Describe every entry below `root` (root itself is `"."`), without following symlinks.
pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    let mut inodes: HashMap<u64, Vec<String>> = HashMap::new();
    walk_manifest(root, ".", &mut out, &mut inodes);
    for paths in inodes.values() {
        let first = paths.iter().min().cloned();
        for p in paths {
            out.get_mut(p).expect("entry").hardlink_group = first.clone();
        }
    }
    out
}

fn walk_manifest(
    root: &Path,
    rel: &str,
    out: &mut Manifest,
    inodes: &mut HashMap<u64, Vec<String>>,
) {
    let path = if rel == "." {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let m = lstat(&path);
    let ft = m.file_type();
    let kind = kind_of(&ft);
    let xattrs = llist_xattr(&path)
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()))
        .into_iter()
        .filter(|n| n.starts_with("user."))
        .map(|n| {
            let v = lget_xattr(&path, &n)
                .unwrap_or_else(|e| panic!("getxattr {n} {}: {e}", path.display()));
            (n, v)
        })
        .collect();
    let e = Entry {
        kind,
        mode: perm_bits(&m),
        uid: m.uid(),
        gid: m.gid(),
        size: if ft.is_dir() { 0 } else { m.size() },
        mtime: mtime(&m),
        nlink: m.nlink(),
        hardlink_group: None,
        symlink_target: ft.is_symlink().then(|| {
            fs::read_link(&path)
                .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
                .to_string_lossy()
                .into_owned()
        }),
        content_hash: ft.is_file().then(|| file_hash(&path)),
        rdev: if ft.is_char_device() || ft.is_block_device() {
            m.rdev()
        } else {
            0
        },
        xattrs,
    };
    if !ft.is_dir() && m.nlink() > 1 {
        inodes.entry(m.ino()).or_default().push(rel.to_string());
    }
    out.insert(rel.to_string(), e);
    if ft.is_dir() {
        let mut names: Vec<OsString> = fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.expect("dir entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let child = if rel == "." {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            walk_manifest(root, &child, out, inodes);
        }
    }
}

/// Assert two manifests are equal, listing every difference.
#[track_caller]
pub fn assert_manifest_eq(actual: &Manifest, expected: &Manifest, what: &str) {
    let mut diffs = Vec::new();
    for (p, e) in expected {
        match actual.get(p) {
            None => diffs.push(format!("missing: {p}")),
            Some(a) if a != e => diffs.push(format!("differs: {p}\n   got  {a:?}\n   want {e:?}")),
            _ => {}
        }
    }
    for p in actual.keys() {
        if !expected.contains_key(p) {
            diffs.push(format!("unexpected: {p}"));
        }
    }
    if !diffs.is_empty() {
        let shown: Vec<&String> = diffs.iter().take(40).collect();
        panic!(
            "{what}: {} difference(s):\n{}",
            diffs.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Options for [`build_sample_tree`].
#[derive(Clone, Copy, Debug)]
pub struct SampleTree {
    /// Include a FIFO and a character device (`special/`).
    pub specials: bool,
    /// Include a sparse file with a multi-MiB hole.
    pub sparse: bool,
}

/// A 255-byte file name (UTF-8, multi-byte characters).
pub fn long_utf8_name() -> String {
    // 84 × 'é' (2 bytes) + 87 × 'x' = 168 + 87 = 255 bytes.
    let mut s = "é".repeat(84);
    s.push_str(&"x".repeat(87));
    assert_eq!(s.len(), 255);
    s
}

/// Populate `root` (an existing empty directory) with a varied tree: sizes around chunk
/// boundaries, random content, modes incl. setuid/setgid/sticky, foreign owners, hard
/// links, symlinks (relative, absolute dangling, to dirs), xattrs, unusual names and
/// explicit nanosecond timestamps on everything (directories last).
pub fn build_sample_tree(root: &Path, opts: SampleTree) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    };
    for d in [
        "a",
        "a/b",
        "a/b/c",
        "empty",
        "private",
        "sticky",
        "setgid",
        "ro-dir",
        "deep/er/still/deeper",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir sample dir");
    }
    w("empty.txt", b"");
    w("one.txt", b"x");
    w("hello.txt", b"hello, world\n");
    w("a/chunk-minus-1.bin", &pseudo_random(CHUNK - 1, 1));
    w("a/chunk.bin", &pseudo_random(CHUNK, 2));
    w("a/chunk-plus-1.bin", &pseudo_random(CHUNK + 1, 3));
    w("a/b/big.bin", &pseudo_random(3 * CHUNK + 12_345, 4));
    w("a/b/c/lines.txt", "line\n".repeat(5000).as_bytes());
    w("private/secret.txt", b"top secret\n");
    w("ro-dir/inside.txt", b"inside a read-only dir\n");
    w("deep/er/still/deeper/leaf.txt", b"leaf\n");
    w("exec.sh", b"#!/bin/sh\necho hi\n");
    w("readonly.txt", b"read only\n");
    w("setuid.bin", b"not really a program\n");
    w("owned.txt", b"owned by someone else\n");
    w("sticky/file", b"in sticky dir\n");
    w("setgid/file", b"in setgid dir\n");
    w("with space.txt", b"spaces\n");
    w("h\u{e9}llo w\u{f6}rld \u{2713}.txt", b"unicode\n");
    w(&long_utf8_name(), b"long name\n");
    w("a/hl-1", b"hard linked content\n");
    fs::hard_link(root.join("a/hl-1"), root.join("a/b/hl-2")).expect("link");
    fs::hard_link(root.join("a/hl-1"), root.join("hl-3")).expect("link");
    std::os::unix::fs::symlink("a/b/c", root.join("link-to-dir")).expect("symlink");
    std::os::unix::fs::symlink("../one.txt", root.join("a/link-to-file")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/dangling/target", root.join("dangling"))
        .expect("symlink");
    std::os::unix::fs::symlink("hello.txt", root.join("owned-link")).expect("symlink");
    if opts.sparse {
        let f = File::create(root.join("sparse.bin")).expect("create sparse");
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"start", 0).expect("write");
        f.write_all_at(b"end of the sparse file", 3 * 1024 * 1024 + 17)
            .expect("write");
    }
    if opts.specials {
        fs::create_dir(root.join("special")).expect("mkdir special");
        mkfifo(&root.join("special/fifo"), 0o640).expect("mkfifo");
        let dev = libc::makedev(1, 3);
        mknod(&root.join("special/chardev"), libc::S_IFCHR | 0o600, dev).expect("mknod");
    }
    // Ownership before modes (chown clears setuid/setgid).
    lchown(&root.join("owned.txt"), 1234, 5678);
    lchown(&root.join("owned-link"), 4321, 8765);
    lchown(&root.join("setgid"), 0, 4242);
    chmod(&root.join("exec.sh"), 0o755);
    chmod(&root.join("readonly.txt"), 0o444);
    chmod(&root.join("setuid.bin"), 0o4755);
    chmod(&root.join("private"), 0o700);
    chmod(&root.join("sticky"), 0o1777);
    chmod(&root.join("setgid"), 0o2775);
    chmod(&root.join("a/b/big.bin"), 0o600);
    set_xattr(&root.join("one.txt"), "user.comment", b"a comment", 0).expect("setxattr");
    set_xattr(
        &root.join("one.txt"),
        "user.binary",
        &[0, 1, 2, 255, 0, 7],
        0,
    )
    .expect("setxattr");
    set_xattr(&root.join("a"), "user.dirattr", b"on a directory", 0).expect("setxattr");
    set_xattr(&root.join("a/b/big.bin"), "user.empty", b"", 0).expect("setxattr");
    // Times: non-directories first, then directories deepest-first.
    let m = manifest(root);
    let mut paths: Vec<(&String, &Entry)> = m.iter().collect();
    paths.sort_by_key(|(p, e)| (e.kind == "dir", std::cmp::Reverse(p.matches('/').count())));
    for (i, (p, _)) in paths.iter().enumerate() {
        let path = if p.as_str() == "." {
            root.to_path_buf()
        } else {
            root.join(p)
        };
        let i = i as i64;
        let mt = Ts::At(
            1_500_000_000 + i * 3_600,
            (i * 123_456_789 + 1) % 1_000_000_000,
        );
        let at = Ts::At(
            1_400_000_000 + i * 60,
            (i * 987_654_321 + 3) % 1_000_000_000,
        );
        set_times(&path, at, mt, false)
            .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
    }
    // chmod does not touch mtime, so the read-only dir can be locked down last.
    chmod(&root.join("ro-dir"), 0o555);
}

// ---------------------------------------------------------------------------------------
// Reading a store the way the server sees it
// ---------------------------------------------------------------------------------------

/// The category table as anyone with the store reads it: the signed manifest is public.
pub fn store_table(home: &Path) -> cirrus::format::table::CategoryTable {
    use cirrus::format::manifest::{Manifest, SignedManifest};
    let obj = fs::read(home.join("store").join(cirrus::format::names::MANIFEST))
        .expect("read the account manifest");
    let sm = SignedManifest::decode(&obj).expect("signed manifest");
    Manifest::decode(&sm.body).expect("manifest").table
}

/// A head checker that ignores signatures: what a server (or a test playing one) uses
/// to read a tree whose keys it has.
pub struct UncheckedHeads;
impl cirrus::volume::HeadSigner for UncheckedHeads {
    fn envelope(
        &self,
        _c: u32,
        _kv: u32,
        _s: &[u8],
    ) -> Result<Vec<u8>, cirrus::volume::HeadSignError> {
        Err(cirrus::volume::HeadSignError::ReadOnly)
    }
    fn check<'a>(
        &self,
        _c: u32,
        obj: &'a [u8],
    ) -> Result<(u32, &'a [u8]), cirrus::volume::HeadSignError> {
        let e = cirrus::format::manifest::decode_head_envelope(obj)?;
        Ok((e.key_version, e.sealed))
    }
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

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

/// The pid of `d`'s running daemon, from its pidfile.
pub fn daemon_pid(d: &Drive) -> i32 {
    let run = d.home.join("run");
    for e in fs::read_dir(&run).expect("run dir") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pid") {
            let text = fs::read_to_string(&p).unwrap();
            return text.lines().next().unwrap().trim().parse().unwrap();
        }
    }
    panic!("no daemon pidfile in {}", run.display());
}

/// Samples the resident set size of a process every 20 ms and keeps the peak.
pub struct RssPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    pub fn start(pid: i32) -> RssPeak {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, st) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssPeak {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The peak so far, in KiB.
    pub fn kib(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops sampling; returns the peak in KiB, asserting it was sampled at all.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let kib = self.kib();
        assert!(kib > 0, "RSS was never sampled");
        kib
    }
}

/// Resident set size of `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every `.rs` file under `dir` (for the tests that read the sources).
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
