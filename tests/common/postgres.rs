//! A private PostgreSQL cluster for one test, so the key service's PostgreSQL storage is
//! tested on a real server that nobody has to start by hand: Debian's server binaries
//! (`scripts/setup-test-deps` installs the `postgresql` package; the package's own `main`
//! cluster is never used), a fresh cluster (a copy of what `initdb` made, see
//! [`template`]) in a temp dir of its own (in `/dev/shm` when there is one, else
//! `$TMPDIR`), the server on a free port of 127.0.0.1 and on a unix socket in that dir,
//! stopped and removed on drop.
//!
//! It runs as the unprivileged `cirrustest` account because `initdb` and `postgres` refuse
//! to run as root, and the tests run as root (FUSE, the permission tests). Clients
//! connect as the database superuser [`USER`]: with [`PASSWORD`] over TCP (what `cirrus
//! serve --database` gets, see [`Postgres::url`]), without one on the unix socket (the
//! harness's own `psql`). Durability is off (no fsync at `initdb` or at run time): a
//! test's cluster dies with the test.
//!
//! `CIRRUS_PG_BIN` names another directory holding `initdb`, `postgres` and `psql`.

use super::seaweed::{free_ports, release_ports};
use super::user::{TestUser, runuser, test_user};
use super::{require_tool, run_ok};
use std::ffi::OsString;
use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The database superuser every test connects as.
pub const USER: &str = "cirrus";
/// Its password over TCP (a test cluster on loopback: not a secret).
pub const PASSWORD: &str = "cirrus-test-pg";
/// How long the server may take to accept connections before the start fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an immediate shutdown may take before the processes are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The directory of the server binaries: `CIRRUS_PG_BIN`, else the highest major version
/// under `/usr/lib/postgresql/*/bin` (Debian keeps them off PATH).
pub fn pg_bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CIRRUS_PG_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for e in fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(major) = name.split('.').next().unwrap_or("").parse::<u32>() else {
            continue;
        };
        let bin = e.path().join("bin");
        let usable = ["initdb", "postgres", "psql"]
            .iter()
            .all(|t| bin.join(t).is_file());
        if usable && best.as_ref().is_none_or(|(m, _)| major > *m) {
            best = Some((major, bin));
        }
    }
    best.map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; run \
             `scripts/setup-test-deps` (it installs Debian's postgresql) or set CIRRUS_PG_BIN"
        )
    })
}

/// A running private cluster; dropping it stops the server (no process is left) and
/// removes its files. The server also stops when the thread that started it ends (see
/// `spawn_ready`): start it in the test that uses it, not in a helper thread or a static.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// `initdb` and start; returns once the server accepts connections on 127.0.0.1.
    /// Panics with the server's log when it does not within 30 s. Tries new ports (up to
    /// three) when the one picked was taken meanwhile.
    pub fn start() -> Postgres {
        let bin = pg_bin_dir();
        let user = test_user();
        // On tmpfs when there is one: copying the template there takes 50 ms, on this
        // machine's ext4 800 ms.
        let mut b = tempfile::Builder::new();
        b.prefix("cirrus-pg-");
        let dir = b.tempdir_in("/dev/shm").or_else(|_| b.tempdir()).unwrap();
        give_to(dir.path(), &user);
        copy_dir(&template(&bin, &user), &dir.path().join("data"));
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_ports(1)[0];
            let log = dir.path().join(format!("postgres-{attempt}.log"));
            match spawn_ready(&bin, &user, dir.path(), port, &log) {
                Ok(child) => {
                    return Postgres {
                        child: Some(child),
                        port,
                        bin,
                        dir,
                    };
                }
                Err(e) => {
                    release_ports(&[port]);
                    if !e.port_taken {
                        panic!("PostgreSQL did not start: {}", e.message);
                    }
                    last = e.message;
                }
            }
        }
        panic!("PostgreSQL did not start (its ports were taken three times): {last}");
    }

    /// `postgres://cirrus:PASSWORD@127.0.0.1:PORT/DB`, password authentication over TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the unix socket (and of the cluster's files).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates database `name` (owned by [`USER`]).
    pub fn create_database(&self, name: &str) {
        assert!(!name.contains('"'), "database name {name:?}");
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Runs `sql` in database `db` through `psql` on the unix socket and returns what it
    /// printed: rows one a line, columns separated by `|`, no headers, trimmed. Panics
    /// when a statement fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql on {db} failed: {e}\nSQL: {sql}"))
    }

    /// [`Postgres::psql`], with `psql`'s error output when a statement fails.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut c = Command::new(self.bin.join("psql"));
        // libpq reads PGHOST, PGSERVICE, PGOPTIONS and the like: none may redirect it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                c.env_remove(k);
            }
        }
        let out = c
            .arg("-h")
            .arg(self.dir.path())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", USER, "-d", db])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The postmaster's pid (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The postmaster and the processes it has started now (checkpointer, backends...).
    pub fn processes(&self) -> Vec<u32> {
        match &self.child {
            Some(c) => std::iter::once(c.id()).chain(children_of(c.id())).collect(),
            None => Vec::new(),
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_logs(self.dir.path())
    }
}

impl Drop for Postgres {
    /// An immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends): the
    /// postmaster stops its children and waits for them before it exits, and the test,
    /// its parent, reaps it. Anything still there after 10 s is killed.
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = c.id() as i32;
        // SAFETY: signalling our own child by pid (SIGCONT in case a test stopped it).
        unsafe {
            libc::kill(pid, libc::SIGCONT);
            libc::kill(pid, libc::SIGQUIT);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if matches!(c.try_wait(), Ok(None)) {
            for k in children_of(c.id()) {
                // SAFETY: killing the children of our own child, by pid.
                unsafe { libc::kill(k as i32, libc::SIGKILL) };
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        release_ports(&[self.port]);
    }
}

/// Hands the test's temp dir to `user` (initdb and the server write in it) and checks
/// that `user` can reach it: every parent must be traversable by others.
fn give_to(dir: &Path, user: &TestUser) {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
    let reachable = runuser(user, require_tool("test"))
        .arg("-w")
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        reachable,
        "{} cannot write {} (a parent dir is not traversable by others?); set TMPDIR to a \
         dir it can reach",
        user.name,
        dir.display()
    );
}

/// The arguments of `initdb` after `-D DIR`; part of the template's name.
const INITDB_ARGS: &[&str] = &[
    "-U",
    USER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
    // 1 MiB WAL segments instead of 16: less to copy from the template.
    "--wal-segsize=1",
];

/// A data dir fresh from `initdb`, which each cluster starts from a copy of: `initdb`
/// takes about a second, a copy a third of that. Made once per server version, settings
/// and test user, kept in cargo's temp dir for tests (`CARGO_TARGET_TMPDIR`, which
/// `cargo clean` empties) and never changed afterwards, so test processes running at once
/// can share it.
fn template(bin: &Path, user: &TestUser) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let version = run_ok(Command::new(bin.join("postgres")).arg("--version"));
            let key = format!("{version}\n{INITDB_ARGS:?}\n{PASSWORD}\n{}", user.uid);
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let path = cache.join(format!("postgres-template-{:016x}", fnv1a(key.as_bytes())));
            if path.join("PG_VERSION").is_file() {
                return path;
            }
            let work = tempfile::Builder::new()
                .prefix("cirrus-pg-initdb-")
                .tempdir()
                .unwrap();
            give_to(work.path(), user);
            initdb(bin, user, work.path());
            // Copied under a name of its own, then renamed into place: a template that is
            // there is complete. Another process may have put one there meanwhile.
            let part = cache.join(format!("{}.part-{}", path.display(), std::process::id()));
            let _ = fs::remove_dir_all(&part);
            fs::create_dir_all(cache).unwrap();
            copy_dir(&work.path().join("data"), &part);
            if fs::rename(&part, &path).is_err() {
                let _ = fs::remove_dir_all(&part);
                assert!(
                    path.join("PG_VERSION").is_file(),
                    "template {}",
                    path.display()
                );
            }
            path
        })
        .clone()
}

/// `cp -a` (owners and modes kept: the data dir belongs to the test user, mode 0700).
fn copy_dir(from: &Path, to: &Path) {
    run_ok(
        Command::new(require_tool("cp"))
            .args(["-a", "--reflink=auto"])
            .arg(from)
            .arg(to),
    );
}

/// FNV-1a: a hash that stays the same across Rust versions, for the template's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `initdb` as `user` into `<dir>/data`: superuser [`USER`] with [`PASSWORD`], trust on
/// the unix socket, SCRAM over TCP, no fsync, C locale (the same on every machine).
fn initdb(bin: &Path, user: &TestUser, dir: &Path) {
    let pwfile = dir.join("pwfile");
    fs::write(&pwfile, PASSWORD).unwrap();
    std::os::unix::fs::chown(&pwfile, Some(user.uid), Some(user.gid)).unwrap();
    run_ok(
        runuser(user, bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("--pwfile")
            .arg(&pwfile)
            .args(INITDB_ARGS)
            // initdb looks up its own path from the working directory, which must be one
            // the user can enter.
            .current_dir(dir)
            .stdin(Stdio::null()),
    );
}

struct StartError {
    message: String,
    port_taken: bool,
}

/// Starts `postgres` as `user` on `port` and waits until it accepts connections.
///
/// The postmaster is the test's own child (not daemonized by `pg_ctl`), so the drop can
/// wait for it; and it gets SIGQUIT when the thread that started it ends
/// (PR_SET_PDEATHSIG), so a test killed mid-way leaves no server behind: keep a
/// [`Postgres`] in the test that starts it.
fn spawn_ready(
    bin: &Path,
    user: &TestUser,
    dir: &Path,
    port: u16,
    log_path: &Path,
) -> Result<Child, StartError> {
    let fail = |message: String| StartError {
        message,
        port_taken: false,
    };
    let log = fs::File::create(log_path).map_err(|e| fail(e.to_string()))?;
    let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut sockets = OsString::from("unix_socket_directories=");
    sockets.push(dir);
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1", "-c"])
        .arg(sockets)
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "logging_collector=off"])
        .uid(user.uid)
        .gid(user.gid)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("spawn {}: {e}", bin.join("postgres").display())))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let exited = child.try_wait().ok().flatten();
        if exited.is_none() && is_ready(dir, port) {
            return Ok(child);
        }
        if exited.is_some() || Instant::now() >= deadline {
            if exited.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(StartError {
                port_taken: log.contains("could not bind"),
                message: match exited {
                    Some(st) => format!("postgres exited ({st}); its log:\n{log}"),
                    None => format!(
                        "postgres did not accept connections on 127.0.0.1:{port} within \
                         {START_TIMEOUT:?}; its log:\n{log}"
                    ),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server says it is ready (the status line of `postmaster.pid`) and its TCP
/// port takes a connection.
fn is_ready(dir: &Path, port: u16) -> bool {
    let status = fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
    status.lines().nth(7).is_some_and(|l| l.trim() == "ready")
        && TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Every `postgres-N.log` in `dir`, in order.
fn read_logs(dir: &Path) -> String {
    (0..3)
        .filter_map(|n| fs::read_to_string(dir.join(format!("postgres-{n}.log"))).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pids whose parent is `pid` (from `/proc/*/stat`: the field after the parenthesised
/// command name is the state, then the parent's pid).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(p)
        })
        .collect()
}
