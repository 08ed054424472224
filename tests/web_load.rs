//! The web front under load (issue 12, "Load, bounded, on loopback"): one `cirrus serve
//! --web-listen` with five accounts, each signed in once, and fifty downloads at once (ten
//! per account, sharing its session) streamed through a hasher and compared with the bytes
//! written through each account's mount (every account's files differ, so a body from the
//! wrong account fails too). Three runs while the server's RSS is sampled: every download
//! of the 8 MiB files, then of the 32 MiB ones, then half and half. A server that held
//! bodies in memory would need 50 × 24 MiB = 1.2 GiB more for the second run than the
//! first; the test allows 64 MiB, so the peak is independent of file size.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::accounts::Codes;
use common::keyserver::any_cert_tls;
use common::web::{WebAccount, WebDrive};
use common::*;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 5;
/// Concurrent downloads per account, all on its one session.
const PER_ACCOUNT: usize = 10;
const SMALL: usize = 8 << 20;
const BIG: usize = 32 << 20;
/// How much more the big run's peak RSS may be than the small run's.
const MARGIN_KIB: u64 = 64 << 10;
/// Where each account's files are, in category Drive.
const FOLDER: &str = "load";

/// One file of an account as written through its mount.
struct Written {
    /// `FOLDER/NAME`, the path under the category.
    path: String,
    len: u64,
    blake3: String,
}

/// One signed-in account: its session cookie and its two files (small, big).
struct Session {
    account: String,
    cookie: String,
    files: [Written; 2],
}

/// Which of each account's files a run downloads.
#[derive(Clone, Copy, Debug)]
enum Run {
    Small,
    Big,
    /// Half of each account's downloads the small file, half the big one.
    Mixed,
}

impl Run {
    /// The index in [`Session::files`] of download `j` of an account.
    fn file(self, j: usize) -> usize {
        match self {
            Run::Small => 0,
            Run::Big => 1,
            Run::Mixed => j % 2,
        }
    }
}

/// A client that takes the web front's self-signed certificate and does not follow the
/// sign-in's redirect (its Set-Cookie is what the test wants).
fn agent() -> ureq::Agent {
    let tls = any_cert_tls(&[&rustls::version::TLS13, &rustls::version::TLS12]);
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .redirects(0)
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .max_idle_connections_per_host(ACCOUNTS * PER_ACCOUNT)
        .build()
}

/// The last lines of the server's log (`DIR/server.log`), for a failure message.
fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One account as the test uses it: the harness's first account lives in [`WebDrive`]'s
/// own fields, the others in [`WebAccount`]s.
struct Acct<'a> {
    name: &'a str,
    drive: &'a Drive,
    web_password_file: &'a Path,
    codes: &'a mut Codes,
}

/// Writes the account's two files (pseudo-random, distinct per account) through its
/// mount and syncs them to the store.
fn write_files(a: &Acct, n: usize) -> [Written; 2] {
    let dir = a.drive.category_path("Drive").join(FOLDER);
    fs::create_dir_all(&dir).unwrap();
    let files = [("small.bin", SMALL), ("big.bin", BIG)].map(|(name, len)| {
        let bytes = pseudo_random(len, 1000 + 2 * n as u64 + u64::from(len == BIG));
        fs::write(dir.join(name), &bytes).unwrap();
        Written {
            path: format!("{FOLDER}/{name}"),
            len: len as u64,
            blake3: hash(&bytes),
        }
    });
    run_ok(a.drive.cirrus_cmd().args(["sync", "--wait"]));
    files
}

/// POST /signin with the account's web password and a fresh TOTP code: the session
/// cookie's value (303 with `Set-Cookie: __Host-cirrus=...`), or a failure with the
/// server's log tail (`dir` is the server's test directory).
fn sign_in(url: &str, dir: &Path, agent: &ureq::Agent, a: &mut Acct) -> String {
    let pw = fs::read_to_string(a.web_password_file).unwrap();
    let pw = pw.lines().next().unwrap();
    let code = a.codes.take();
    let r = agent.post(&format!("{url}/signin")).send_form(&[
        ("account", a.name),
        ("password", pw),
        ("totp", &code),
    ]);
    let r = r.unwrap_or_else(|e| {
        panic!(
            "sign-in of {} failed: {}\nserver log tail:\n{}",
            a.name,
            describe(e),
            log_tail(dir)
        )
    });
    assert_eq!(
        r.status(),
        303,
        "sign-in of {} answered {}\nserver log tail:\n{}",
        a.name,
        r.status(),
        log_tail(dir)
    );
    r.all("set-cookie")
        .into_iter()
        .find_map(|c| c.strip_prefix("__Host-cirrus=")?.split(';').next())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("sign-in of {} set no __Host-cirrus cookie", a.name))
        .to_string()
}

/// A ureq error, with the status and the start of the body when there is one.
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            let mut body = String::new();
            let _ = r.into_reader().take(2000).read_to_string(&mut body);
            format!("HTTP {code}: {body}")
        }
        ureq::Error::Transport(t) => format!("transport: {t}"),
    }
}

/// GET /file/Drive/PATH?download=1 on the session, streamed through BLAKE3: the error,
/// if the answer is not the file's bytes.
fn download(url: &str, agent: &ureq::Agent, s: &Session, f: &Written) -> Result<(), String> {
    let what = format!("{} {}", s.account, f.path);
    let r = agent
        .get(&format!("{url}/file/Drive/{}?download=1", f.path))
        .set("Cookie", &format!("__Host-cirrus={}", s.cookie))
        .call()
        .map_err(|e| format!("{what}: {}", describe(e)))?;
    if r.status() != 200 {
        return Err(format!("{what}: HTTP {}", r.status()));
    }
    let mut body = r.into_reader();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| format!("{what}: after {len} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    let got = h.finalize().to_hex().to_string();
    if len != f.len || got != f.blake3 {
        return Err(format!(
            "{what}: {len} bytes with BLAKE3 {got}, want {} bytes with {}",
            f.len, f.blake3
        ));
    }
    Ok(())
}

/// Fifty downloads at once (every account's `run` file, ten times each, on its session)
/// while the server's RSS is sampled: the peak in KiB. Fails with the server's log tail
/// if any download did not give the file's bytes.
fn run(w: &WebDrive, agent: &ureq::Agent, sessions: &[Session], which: Run) -> u64 {
    let n = sessions.len() * PER_ACCOUNT;
    let start = Barrier::new(n);
    let rss = RssPeak::start(w.srv.pid() as i32);
    let t = Instant::now();
    let errors: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = sessions
            .iter()
            .flat_map(|s| (0..PER_ACCOUNT).map(move |j| (s, &s.files[which.file(j)])))
            .map(|(s, f)| {
                let (start, url) = (&start, &w.url);
                sc.spawn(move || {
                    start.wait();
                    download(url, agent, s, f)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap().err())
            .collect()
    });
    let elapsed = t.elapsed();
    let peak = rss.stop();
    assert!(
        errors.is_empty(),
        "{} of {n} downloads failed ({which:?} run):\n{}\nserver log tail:\n{}",
        errors.len(),
        errors.join("\n"),
        log_tail(&w.srv.dir)
    );
    let bytes: u64 = (0..PER_ACCOUNT)
        .map(|j| {
            sessions
                .iter()
                .map(|s| s.files[which.file(j)].len)
                .sum::<u64>()
        })
        .sum();
    let mib = bytes >> 20;
    eprintln!(
        "web load: {which:?} run: {n} downloads, {mib} MiB in {elapsed:.1?}, \
         server RSS peak {} MiB",
        peak >> 10
    );
    peak
}

#[test]
fn fifty_concurrent_downloads_every_byte_right_rss_independent_of_file_size() {
    let t0 = Instant::now();
    let mut w = WebDrive::start(&[]);
    let mut others: Vec<WebAccount> = (1..ACCOUNTS)
        .map(|i| w.add_account(&format!("user{i}")))
        .collect();
    let t_accounts = t0.elapsed();
    let mut accts = vec![Acct {
        name: common::web::ACCOUNT,
        drive: &w.drive,
        web_password_file: &w.web_password_file,
        codes: &mut w.codes,
    }];
    accts.extend(others.iter_mut().map(|a| Acct {
        name: &a.name,
        drive: &a.drive,
        web_password_file: &a.web_password_file,
        codes: &mut a.codes,
    }));

    let t = Instant::now();
    let written: Vec<[Written; 2]> = accts
        .iter()
        .enumerate()
        .map(|(n, a)| write_files(a, n))
        .collect();
    let t_write = t.elapsed();
    eprintln!(
        "web load: {ACCOUNTS} accounts in {t_accounts:.1?}, files written, synced in {t_write:.1?}"
    );

    // One sign-in per account (one TOTP code per step), its session shared by its ten
    // downloads.
    let agent = agent();
    let sessions: Vec<Session> = accts
        .iter_mut()
        .zip(written)
        .map(|(a, files)| Session {
            account: a.name.to_string(),
            cookie: sign_in(&w.url, &w.srv.dir, &agent, a),
            files,
        })
        .collect();
    let pid = w.srv.pid();
    let before = status_kib(pid, "VmRSS");

    let t = Instant::now();
    let small = run(&w, &agent, &sessions, Run::Small);
    let big = run(&w, &agent, &sessions, Run::Big);
    let mixed = run(&w, &agent, &sessions, Run::Mixed);
    let t_runs = t.elapsed();
    let hwm = status_kib(pid, "VmHWM");
    eprintln!(
        "web load: server RSS {} MiB before the runs; peak {} MiB with {} MiB files, \
         {} MiB with {} MiB files, {} MiB mixed (VmHWM {} MiB); times: {ACCOUNTS} accounts \
         {t_accounts:.1?}, writes and syncs {t_write:.1?}, runs {t_runs:.1?}, total {:.1?}",
        before >> 10,
        small >> 10,
        SMALL >> 20,
        big >> 10,
        BIG >> 20,
        mixed >> 10,
        hwm >> 10,
        t0.elapsed()
    );
    assert!(
        big < small + MARGIN_KIB,
        "the server's peak RSS grew with the file size: {} MiB with {} MiB files, {} MiB \
         with {} MiB files (allowed: {} MiB more)",
        small >> 10,
        SMALL >> 20,
        big >> 10,
        BIG >> 20,
        MARGIN_KIB >> 10
    );
}
