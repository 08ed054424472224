//! `cirrus serve`'s network front end to end: `--trusted-proxy` (the per-source limits
//! keyed by the X-Forwarded-For address), `GET /healthz`, and the `--admin-listen`
//! Prometheus endpoint, on the real binary over real TLS.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::keyservice::client::Password;
use common::keyserver::{Server, TINY, any_cert_tls, cluster_query, postgres_mode};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn agent() -> ureq::Agent {
    let tls = any_cert_tls(rustls::DEFAULT_VERSIONS);
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout(Duration::from_secs(30))
        .build()
}

/// The status and body of `req`, whatever the status.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error {e}"),
    };
    (resp.status(), resp.into_string().unwrap())
}

/// A login to `account` (which does not exist) with a wrong `auth`, sent with
/// `X-Forwarded-For: xff` when given: its status.
fn wrong_login(s: &Server, account: &str, xff: Option<&str>) -> u16 {
    let mut req = agent().post(&format!("{}/v1/login", s.url));
    if let Some(v) = xff {
        req = req.set("X-Forwarded-For", v);
    }
    let body = format!(r#"{{"account":"{account}","auth":"{}"}}"#, "ab".repeat(32));
    answer(req.send_string(&body)).0
}

#[test]
fn a_trusted_proxy_s_forwarded_address_is_the_source_of_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--ip-attempts", "2", "--trusted-proxy", "127.0.0.1/32"],
    );
    // Each try names another account, so only the per-source counter can refuse.
    assert_eq!(wrong_login(&s, "n1", Some("203.0.113.5")), 401);
    // the caller prepended a spoofed address: the proxy's appended one counts
    assert_eq!(
        wrong_login(&s, "n2", Some("198.51.100.1, 203.0.113.5")),
        401
    );
    assert_eq!(wrong_login(&s, "n3", Some("203.0.113.5")), 429);
    // another caller behind the same proxy is not affected
    assert_eq!(wrong_login(&s, "n4", Some("203.0.113.6")), 401);
    // nor is the proxy itself (no header: the peer is the caller)
    assert_eq!(wrong_login(&s, "n5", None), 401);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    // the log names the forwarded caller
    assert!(log.contains("203.0.113.5 login -> 429"), "{log}");
}

#[test]
fn without_trusted_proxy_the_header_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--ip-attempts", "2"]);
    assert_eq!(wrong_login(&s, "n1", Some("203.0.113.5")), 401);
    assert_eq!(wrong_login(&s, "n2", Some("203.0.113.6")), 401);
    // every try came from 127.0.0.1, whatever the header said
    assert_eq!(wrong_login(&s, "n3", Some("203.0.113.7")), 429);
}

#[test]
fn healthz_answers_while_the_database_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let url = format!("{}/healthz", s.url);
    assert_eq!(answer(agent().get(&url).call()), (200, "ok\n".to_string()));
    // probes at the same time wait for each other's check, none is refused
    std::thread::scope(|sc| {
        let probes: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| answer(agent().get(&url).call()).0))
            .collect();
        for p in probes {
            assert_eq!(p.join().unwrap(), 200);
        }
    });
    // the database gone: 503; back: 200
    if postgres_mode() {
        // no new connections, and the pooled ones ended
        cluster_query(dir.path(), "ALTER DATABASE cirrus ALLOW_CONNECTIONS false");
        cluster_query(
            dir.path(),
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = 'cirrus'",
        );
        assert_eq!(answer(agent().get(&url).call()).0, 503);
        cluster_query(dir.path(), "ALTER DATABASE cirrus ALLOW_CONNECTIONS true");
    } else {
        let moved = dir.path().join("moved");
        std::fs::rename(&s.data, &moved).unwrap();
        assert_eq!(answer(agent().get(&url).call()).0, 503);
        std::fs::rename(&moved, &s.data).unwrap();
    }
    assert_eq!(answer(agent().get(&url).call()).0, 200);
}

/// The admin address the server logged (`admin listener on http://ADDR ...`).
fn admin_addr(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let (_, rest) = log
        .split_once("admin listener on http://")
        .unwrap_or_else(|| panic!("no admin address in the log:\n{log}"));
    rest.split_whitespace().next().unwrap().to_string()
}

/// Parses a Prometheus text exposition: every line is a comment or `name{labels} value`.
/// Gives each sample's value by its `name{labels}`.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let is_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix('#') {
            assert!(c.starts_with(" HELP ") || c.starts_with(" TYPE "), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(is_name(k), "label name in {line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
                name
            }
        };
        assert!(is_name(name), "metric name in {line}");
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{line}"
        );
    }
    samples
}

#[test]
fn metrics_on_the_admin_listener_count_requests_failures_and_lockouts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--ip-attempts", "2", "--admin-listen", "127.0.0.1:0"],
    );
    let admin = admin_addr(dir.path());
    assert!(
        admin.starts_with("127.0.0.1:") && !admin.ends_with(":0"),
        "{admin}"
    );
    assert_eq!(wrong_login(&s, "n1", None), 401);
    assert_eq!(wrong_login(&s, "n2", None), 401);
    assert_eq!(wrong_login(&s, "n3", None), 429);
    s.client()
        .create_account("alice", &Password::new("pw".into()), TINY)
        .unwrap();
    // a made-up path is counted, but never becomes a label
    let (status, _) = answer(agent().post(&format!("{}/v1/made-up-path", s.url)).call());
    assert_eq!(status, 404);

    let resp = ureq::get(&format!("http://{admin}/metrics"))
        .call()
        .unwrap();
    assert!(
        resp.content_type().starts_with("text/plain"),
        "{}",
        resp.content_type()
    );
    let text = resp.into_string().unwrap();
    let m = parse_exposition(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in:\n{text}"));
    assert_eq!(get(r#"cirrus_requests_total{endpoint="login"}"#), 3.0);
    assert_eq!(
        get(r#"cirrus_requests_total{endpoint="account/create"}"#),
        1.0
    );
    assert_eq!(get(r#"cirrus_requests_total{endpoint="unmatched"}"#), 1.0);
    assert_eq!(
        get(r#"cirrus_request_failures_total{kind="unauthorized"}"#),
        2.0
    );
    assert_eq!(
        get(r#"cirrus_request_failures_total{kind="rate_limited"}"#),
        1.0
    );
    assert_eq!(
        get(r#"cirrus_request_failures_total{kind="not_found"}"#),
        1.0
    );
    assert_eq!(get("cirrus_lockouts_total"), 1.0);
    assert_eq!(
        get(r#"cirrus_request_duration_seconds_count{endpoint="login"}"#),
        3.0
    );
    assert_eq!(
        get(r#"cirrus_request_duration_seconds_bucket{endpoint="login",le="+Inf"}"#),
        3.0
    );
    assert!(get("cirrus_open_connections") >= 0.0);
    assert!(!text.contains("made-up-path"), "{text}");
    // the admin listener serves nothing else
    assert!(matches!(
        ureq::get(&format!("http://{admin}/v1/login")).call(),
        Err(ureq::Error::Status(404, _))
    ));
}

#[test]
fn a_non_loopback_admin_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cirrus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--admin-listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    // refused before anything was made
    assert!(!dir.path().join("data").exists());

    let out = Command::new(env!("CARGO_BIN_EXE_cirrus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--trusted-proxy", "10.0.0.0/40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trusted-proxy") && err.contains("CIDR"),
        "{err}"
    );
}
