//! Several `cirrus serve` replicas on one PostgreSQL database (issue 11): a session made on
//! one works on the other, every rule that must hold across replicas does (a TOTP code
//! used once, at most ten escrow tries however they interleave), a replica killed in the
//! middle of a password change leaves the old password or the new one, a replica with
//! another master key refuses to start, and `cirrus serve migrate` carries an SQLite
//! service over. Real servers on 127.0.0.1, a real private PostgreSQL cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::keyservice::client::{ClientError, Password, SecondFactor, escrow_verifier};
use common::keyserver::{Server, TINY, refused_start};
use common::postgres::Postgres;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

fn pw(s: &str) -> Password {
    Password::new(s.to_string())
}

/// A database and the first replica's files the others must share.
struct Service {
    pg: Postgres,
    url: String,
    master: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Starts PostgreSQL and replica A (which makes the master key and certificate).
fn first_replica(root: &Path, extra: &[&str]) -> (Service, Server) {
    let pg = Postgres::start();
    pg.create_database("cirrus");
    let url = pg.url("cirrus");
    let mut args = vec!["--database", url.as_str()];
    args.extend_from_slice(extra);
    let a = Server::start(&root.join("a"), &args);
    let data = &a.data;
    let svc = Service {
        master: data.join("master.key"),
        cert: data.join("tls/cert.pem"),
        key: data.join("tls/key.pem"),
        url,
        pg,
    };
    (svc, a)
}

impl Service {
    /// The flags of another replica: the same database, master key and certificate.
    fn replica_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--database", self.url.as_str()];
        for (flag, path) in [
            ("--master-key-file", &self.master),
            ("--cert", &self.cert),
            ("--key", &self.key),
        ] {
            args.push(flag);
            args.push(path.to_str().unwrap());
        }
        args.extend_from_slice(extra);
        args
    }

    fn replica(&self, dir: &Path, extra: &[&str]) -> Server {
        Server::start(dir, &self.replica_args(extra))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn totp(uri: &str) -> totp_rs::Totp {
    totp_rs::Totp::from_url(uri).unwrap()
}

#[test]
fn a_session_and_a_totp_code_are_the_same_on_both_replicas() {
    let root = tempfile::tempdir().unwrap();
    let (svc, a) = first_replica(root.path(), &[]);
    let b = svc.replica(&root.path().join("b"), &[]);
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "replicas share one certificate"
    );
    let (ca, cb) = (a.client(), b.client());
    let alice = ca.create_account("alice", &pw("pw"), TINY).unwrap();
    // the session made on A works on B, and B's changes are A's
    let on_b = alice.via(&cb);
    on_b.record_put("contact", b"half of a key").unwrap();
    assert_eq!(alice.record_get("contact").unwrap(), b"half of a key");
    // TOTP enrolled on B, confirmed on A
    let t = totp(&on_b.totp_enroll().unwrap());
    // a code stays valid for the rest of its step and one more: room for both tries
    let code = t.generate(now()).to_string();
    alice.totp_confirm(&code, false).unwrap();
    let next = t.generate(now() + 30).to_string();
    let (_, _) = ca
        .login("alice", &pw("pw"), SecondFactor::Totp(next.clone()), false)
        .expect("a fresh code logs in on A");
    // the same code on B: already used, whichever replica saw it
    match cb.login("alice", &pw("pw"), SecondFactor::Totp(next), false) {
        Err(ClientError::Unauthorized(m)) => assert!(m.contains("already used"), "{m}"),
        other => panic!(
            "a used code was accepted on the other replica: {:?}",
            other.err()
        ),
    }
    // logging out on A ends the session on B too
    let on_b = alice.via(&cb);
    alice.logout().unwrap();
    assert!(matches!(on_b.status(), Err(ClientError::Unauthorized(_))));
}

#[test]
fn wrong_escrow_proofs_spread_over_both_replicas_count_exactly_to_ten() {
    let root = tempfile::tempdir().unwrap();
    // the per-account and per-source limits out of the way: only the escrow count acts
    let raised = ["--login-attempts", "1000", "--ip-attempts", "1000"];
    let (svc, a) = first_replica(root.path(), &raised);
    // A database whose default isolation is REPEATABLE READ: a transaction's snapshot
    // would then predate its wait for the account's lock, and tries would be lost. The
    // service names READ COMMITTED itself, so the count stays exact.
    svc.pg.psql(
        "postgres",
        "ALTER DATABASE cirrus SET default_transaction_isolation TO 'repeatable read'",
    );
    drop(a);
    let a = svc.replica(&root.path().join("a2"), &raised);
    let b = svc.replica(&root.path().join("b"), &raised);
    let alice = a.client().create_account("alice", &pw("pw"), TINY).unwrap();
    alice
        .escrow_put(&escrow_verifier(b"the proof"), b"escrowed")
        .unwrap();
    let clients = [a.client(), b.client()];
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let s = alice.via(&clients[i % 2]);
            std::thread::spawn(move || (0..3).map(|_| s.escrow_open(b"wrong")).collect::<Vec<_>>())
        })
        .collect();
    let mut remaining = Vec::new();
    let mut destroyed = 0;
    for t in threads {
        for r in t.join().unwrap() {
            match r {
                Err(ClientError::EscrowWrong { remaining: n }) => remaining.push(n),
                Err(ClientError::EscrowDestroyed) | Err(ClientError::NotFound(_)) => destroyed += 1,
                other => panic!("unexpected answer: {other:?}"),
            }
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..10).collect::<Vec<u32>>(),
        "each of the ten tries counted once, on either replica"
    );
    assert_eq!(destroyed, 24 - 10);
    for c in &clients {
        assert!(matches!(
            alice.via(c).escrow_open(b"the proof"),
            Err(ClientError::EscrowDestroyed)
        ));
    }
    assert!(alice.status().unwrap().escrow_destroyed);
}

#[test]
fn a_replica_killed_in_the_middle_of_a_password_change_leaves_the_old_password() {
    let root = tempfile::tempdir().unwrap();
    let (svc, a) = first_replica(root.path(), &[]);
    let b_dir = root.path().join("b");
    let b = Server::start_with_env(
        &b_dir,
        &svc.replica_args(&[]),
        &[("CIRRUS_TEST_FAILPOINT", "password-change")],
    );
    let ca = a.client();
    let alice = ca.create_account("alice", &pw("old"), TINY).unwrap();
    let mut on_b = alice.via(&b.client());
    let changing = std::thread::spawn(move || on_b.change_password(&pw("new"), TINY, false));
    let log = b_dir.join("server.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("failpoint password-change reached")
    {
        assert!(Instant::now() < deadline, "the failpoint was never reached");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the new password is written, the transaction not committed: crash now
    b.kill9();
    assert!(
        changing.join().unwrap().is_err(),
        "the change cannot have succeeded"
    );
    // the account is whole: the old password works, the new one does not
    assert!(matches!(
        ca.login("alice", &pw("new"), SecondFactor::None, false),
        Err(ClientError::Unauthorized(_))
    ));
    let (mut again, _) = ca
        .login("alice", &pw("old"), SecondFactor::None, false)
        .expect("the old password still works");
    // and the dead replica's account lock went with it: a change on A goes through
    again.change_password(&pw("new"), TINY, false).unwrap();
    ca.login("alice", &pw("new"), SecondFactor::None, false)
        .expect("the new password works after a completed change");
    // a session kept across it: the caller's own
    assert!(again.status().is_ok());
    drop(svc);
}

#[test]
fn a_replica_without_the_services_master_key_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let (svc, a) = first_replica(root.path(), &[]);
    a.client().create_account("alice", &pw("pw"), TINY).unwrap();
    // no --master-key-file: its own DATA has none, and it must not make one
    let c_dir = root.path().join("c");
    let err = refused_start(&c_dir, &["--database", &svc.url]);
    assert!(err.contains("no master key"), "{err}");
    assert!(
        !c_dir.join("data/master.key").exists(),
        "it made its own key"
    );
    // another key: refused, the database untouched
    let other = root.path().join("other.key");
    std::fs::write(&other, [7u8; 32]).unwrap();
    let err = refused_start(
        &c_dir,
        &[
            "--database",
            &svc.url,
            "--master-key-file",
            other.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not open this database"), "{err}");
    assert_eq!(
        svc.pg.psql(
            "cirrus",
            "SELECT count(*) FROM meta WHERE key = 'master-check'"
        ),
        "1"
    );
    // the service still serves
    a.client()
        .login("alice", &pw("pw"), SecondFactor::None, false)
        .unwrap();
}

#[test]
fn serve_migrate_carries_an_sqlite_service_over_to_postgres() {
    let root = tempfile::tempdir().unwrap();
    let old_dir = root.path().join("old");
    let old = Server::start(&old_dir, &[]);
    let fp = old.fingerprint;
    let alice = old
        .client()
        .create_account("alice", &pw("pw"), TINY)
        .unwrap();
    alice.record_put("contact", b"kept").unwrap();
    assert!(old.stop().success());
    let pg = Postgres::start();
    pg.create_database("cirrus");
    let url = pg.url("cirrus");
    let data = old_dir.join("data");
    let migrate = |to: &str| {
        Command::new(env!("CARGO_BIN_EXE_cirrus"))
            .args(["serve", "migrate", "--data"])
            .arg(&data)
            .args(["--to", to])
            .output()
            .unwrap()
    };
    let out = migrate(&url);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 accounts") && said.contains("1 records"),
        "{said}"
    );
    assert!(
        !said.contains(pg_password()),
        "the password was printed: {said}"
    );
    // a second copy into the same database is refused: nothing is merged
    let again = migrate(&url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{again:?}"
    );
    // a replica on PostgreSQL with the old master key and certificate serves it all,
    // the session from before included
    let svc = Service {
        pg,
        url,
        master: data.join("master.key"),
        cert: data.join("tls/cert.pem"),
        key: data.join("tls/key.pem"),
    };
    let new = svc.replica(&root.path().join("new"), &[]);
    assert_eq!(new.fingerprint, fp);
    let c = new.client();
    assert_eq!(alice.via(&c).record_get("contact").unwrap(), b"kept");
    c.login("alice", &pw("pw"), SecondFactor::None, false)
        .expect("the migrated account logs in");
}

fn pg_password() -> &'static str {
    common::postgres::PASSWORD
}

#[test]
fn a_database_with_a_newer_schema_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("s");
    let s = Server::start(&dir, &[]);
    assert!(s.stop().success());
    // as if a newer cirrus had migrated it
    let db = dir.join("data/keyservice.sqlite");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = refused_start(&dir, &[]);
    assert!(err.contains("newer than this binary"), "{err}");
}
