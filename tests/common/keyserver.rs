//! A real `cirrus serve` on 127.0.0.1 for tests, with tiny Argon2 costs, on SQLite in its
//! DATA or, with `CIRRUS_TEST_KEYSERVICE_DB=postgres` (how `scripts/test` runs the key
//! service's suite a second time), on a private PostgreSQL cluster per test directory.

use super::postgres::Postgres;
use cirrus::keys::KdfParams;
use cirrus::keyservice::Fingerprint;
use cirrus::keyservice::client::KeyClient;
use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TINY: KdfParams = KdfParams {
    memory_kib: 8,
    time: 1,
    lanes: 1,
};

/// A running `cirrus serve`; SIGTERM on drop.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub addr: String,
    pub fingerprint: Fingerprint,
    pub data: PathBuf,
    /// The test directory (DATA is `dir/data`).
    pub dir: PathBuf,
    /// The lines the server printed on stdout after the first, as they come (in a
    /// Mutex so that tests may share the server between threads).
    stdout: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

thread_local! {
    /// The PostgreSQL cluster of each test directory, in postgres mode. Kept for the test's
    /// thread (a cluster stops when the thread that started it ends), so a server
    /// restarted on the same directory finds its database again.
    static CLUSTERS: RefCell<Vec<(PathBuf, Postgres)>> = const { RefCell::new(Vec::new()) };
}

/// Whether this run's servers use PostgreSQL (`CIRRUS_TEST_KEYSERVICE_DB=postgres`).
pub fn postgres_mode() -> bool {
    std::env::var("CIRRUS_TEST_KEYSERVICE_DB").is_ok_and(|v| v == "postgres")
}

/// The database flags for a server on test directory `dir`: none for SQLite, or
/// `--database URL` of the directory's own cluster in postgres mode.
pub fn database_args(dir: &Path) -> Vec<String> {
    if !postgres_mode() {
        return Vec::new();
    }
    CLUSTERS.with(|c| {
        let mut c = c.borrow_mut();
        if !c.iter().any(|(d, _)| d == dir) {
            let pg = Postgres::start();
            pg.create_database("cirrus");
            c.push((dir.to_path_buf(), pg));
        }
        let url = c.iter().find(|(d, _)| d == dir).unwrap().1.url("cirrus");
        vec!["--database".to_string(), url]
    })
}

/// Runs `cirrus serve` on DATA `dir/data` with `args` (and the run's database, unless
/// they name one), which must fail to start; its stderr.
pub fn refused_start(dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cirrus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .args(["--verifier-memory-kib", "8", "--verifier-time", "1"])
        .args(args)
        .args(if args.contains(&"--database") {
            Vec::new()
        } else {
            database_args(dir)
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(!status.success(), "the server started");
            assert!(out.stdout.is_empty(), "it printed a listening line");
            return String::from_utf8_lossy(&out.stderr).to_string();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server neither started nor stopped within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// In postgres mode, the answer of `sql` on the maintenance database `postgres` of the
/// cluster of test directory `dir` (to act on the service's database from outside it).
pub fn cluster_query(dir: &Path, sql: &str) -> String {
    assert!(postgres_mode(), "a cluster exists in postgres mode only");
    database_args(dir);
    CLUSTERS.with(|c| {
        let c = c.borrow();
        c.iter()
            .find(|(d, _)| d == dir)
            .unwrap()
            .1
            .psql("postgres", sql)
    })
}

/// The answer of `sql` on the key service database of test directory `dir`: Debian's
/// sqlite3 on DATA's file, or psql on the directory's cluster. Rows one per line.
pub fn query(dir: &Path, sql: &str) -> String {
    if postgres_mode() {
        database_args(dir);
        return CLUSTERS.with(|c| {
            let c = c.borrow();
            c.iter()
                .find(|(d, _)| d == dir)
                .unwrap()
                .1
                .psql("cirrus", sql)
        });
    }
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(dir.join("data").join("keyservice.sqlite"))
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Server {
    /// Starts the server on DATA = `dir/data`, its log in `dir/server.log` (outside DATA, so
    /// the plaintext scan of DATA does not read it).
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_nofile(dir, extra, None)
    }

    /// As [`Server::start`], with the server's descriptor limit (`ulimit -n`, soft and
    /// hard) set to `nofile` when given.
    pub fn start_with_nofile(dir: &Path, extra: &[&str], nofile: Option<u64>) -> Server {
        Self::launch(dir, extra, nofile, &[])
    }

    /// As [`Server::start`], with extra environment variables (a test failpoint).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(dir, extra, None, env)
    }

    fn launch(dir: &Path, extra: &[&str], nofile: Option<u64>, env: &[(&str, &str)]) -> Server {
        // The in-process clients of these tests use TINY costs (an explicit test opt-in).
        cirrus::keys::floor::allow_insecure_test_kdf();
        let data = dir.join("data");
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cirrus"));
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec, on
            // the child's own limit.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(["--verifier-memory-kib", "8", "--verifier-time", "1"])
            // A test of the per-source limit passes its own --ip-attempts.
            .args(if extra.contains(&"--ip-attempts") {
                &[][..]
            } else {
                &["--ip-attempts", "1000"][..]
            })
            // Tests of other things complete a data-recovery reset at once; the tests of
            // the waiting period pass their own --reset-wait.
            .args(if extra.contains(&"--reset-wait") {
                &[][..]
            } else {
                &["--reset-wait", "0"][..]
            })
            .args(extra)
            // A test that names its database (replicas) keeps it; others get the run's.
            .args(if extra.contains(&"--database") {
                Vec::new()
            } else {
                database_args(dir)
            })
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            // Lets a test pass --insecure-test-totp-period (see accounts::FAST_TOTP).
            .env("CIRRUS_INSECURE_TEST_KDF", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line until the server exits: a pipe closed after the first line
        // would fail the server's later prints (the web front's listening line).
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                if !matches!(r.read_line(&mut line), Ok(n) if n > 0) || tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "the server printed no start line ({e}); its log:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )
            });
        // cirrus key service listening on https://IP:PORT fingerprint SHA256:<hex>
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 8, "unexpected start line: {line:?}");
        assert_eq!(
            &words[..5],
            ["cirrus", "key", "service", "listening", "on"],
            "{line:?}"
        );
        assert_eq!(words[6], "fingerprint", "{line:?}");
        let url = words[5].to_string();
        let fp_text = words[7];
        assert!(
            fp_text.starts_with("SHA256:")
                && fp_text.len() == 71
                && fp_text[7..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{fp_text}"
        );
        let addr = url.strip_prefix("https://").unwrap().to_string();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        Server {
            child: Some(child),
            url,
            addr,
            fingerprint: fp_text.parse().unwrap(),
            data,
            dir: dir.to_path_buf(),
            stdout: std::sync::Mutex::new(rx),
        }
    }

    /// The next line the server prints on stdout (after the first), waiting up to
    /// `timeout`; None if it printed none by then or exited.
    pub fn stdout_line(&self, timeout: Duration) -> Option<String> {
        let rx = self
            .stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rx.recv_timeout(timeout).ok()
    }

    /// The server process's id (to look at its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn client(&self) -> KeyClient {
        KeyClient::new(&self.url, self.fingerprint)
            .unwrap()
            .with_min_kdf(TINY)
    }

    /// SIGKILL (a crash), then waits for the process to be gone.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then the exit status (the server must stop by itself, and cleanly).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("the server did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(200));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Accepts any certificate but checks handshake signatures: for tests that look at the
/// server's answers or its TLS versions, not at pinning (tests/keyservice.rs tests that).
#[derive(Debug)]
pub struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config with [`AnyCert`] and the given TLS versions.
pub fn any_cert_tls(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let p = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(p)))
        .with_no_client_auth()
}
