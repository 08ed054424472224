//! One test drive ([`Drive`]): its own home, passcode file and mount point, mounted by
//! the real `cirrus mount` (or a plain directory, see the knobs in `mod.rs`), unmounted
//! when dropped; plus the daemon's pid.

use super::*;
use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

/// Passcode used for every test drive.
pub const PASSCODE: &str = "correct horse battery staple";

/// True when the suite runs against a plain directory instead of a Cirrus mount.
pub fn is_plain() -> bool {
    match env::var("CIRRUS_TEST_TARGET") {
        Err(_) => false,
        Ok(v) if v.is_empty() || v == "cirrus" => false,
        Ok(v) if v == "plain" => true,
        Ok(v) => panic!("unknown CIRRUS_TEST_TARGET={v:?}: expected `plain` or unset"),
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

    /// `cirrus init` of this drive's home (fast key-derivation costs), not mounted.
    pub fn init(&self) {
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

/// The pid of `d`'s running daemon, from its pidfile (`run/mount-<hash>.pid`).
pub fn daemon_pid(d: &Drive) -> i32 {
    let run = d.home.join("run");
    for e in fs::read_dir(&run).expect("run dir") {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("mount-") && name.ends_with(".pid") {
            let text = fs::read_to_string(&p).unwrap();
            return text.lines().next().unwrap().trim().parse().unwrap();
        }
    }
    panic!("no daemon pidfile in {}", run.display());
}

/// `cirrus --home HOME ARGS --passcode-file P` on `d`.
pub fn with_passcode(d: &Drive, args: &[&str]) -> Command {
    let mut c = d.cirrus_cmd();
    c.args(args).arg("--passcode-file").arg(&d.passcode_file);
    c
}
