//! The PostgreSQL harness itself (tests/common/postgres.rs): a private cluster starts as
//! the unprivileged test user, takes a database and rows, answers on 127.0.0.1 with the
//! password of its URL (and only with it), and leaves no process or file behind when
//! dropped.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::postgres::{Postgres, pg_bin_dir};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Whether `pid` is still a live process of PostgreSQL (a reused pid is some other
/// program).
fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("postgres"))
}

/// `psql URL -c SQL` over TCP, as libpq clients such as `cirrus serve` connect.
fn psql_url(url: &str, sql: &str) -> std::process::Output {
    Command::new(pg_bin_dir().join("psql"))
        .args([url, "-X", "-q", "-A", "-t", "-c", sql])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn private_cluster_serves_and_leaves_nothing_behind() {
    let t = Instant::now();
    let pg = Postgres::start();
    let started = t.elapsed();

    pg.create_database("harness");
    pg.psql(
        "harness",
        "CREATE TABLE t (id int PRIMARY KEY, name text); \
         INSERT INTO t VALUES (1, 'one'), (2, 'two');",
    );
    assert_eq!(
        pg.psql("harness", "SELECT id, name FROM t ORDER BY id"),
        "1|one\n2|two"
    );
    // The server runs as the test user, not root.
    let owner = std::fs::read_to_string(format!("/proc/{}/status", pg.pid())).unwrap();
    let uid = common::test_user().uid.to_string();
    assert!(
        owner
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid)),
        "postmaster not running as cirrustest:\n{owner}"
    );

    // Over TCP the URL's password works, and a wrong one is refused.
    let ok = psql_url(&pg.url("harness"), "SELECT count(*) FROM t");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "2");
    let bad_url = pg
        .url("harness")
        .replace(common::postgres::PASSWORD, "wrong");
    let bad = psql_url(&bad_url, "SELECT 1");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let procs = pg.processes();
    assert!(procs.len() > 1, "postmaster and its workers: {procs:?}");
    let dir = pg.socket_dir().to_path_buf();
    let t = Instant::now();
    drop(pg);
    let stopped = t.elapsed();
    eprintln!("postgres start {started:?}, stop {stopped:?}");

    let left: Vec<u32> = procs.into_iter().filter(|&p| is_postgres(p)).collect();
    assert!(left.is_empty(), "postgres processes left: {left:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
