//! A key service DATA directory kept as today's `cirrus serve` wrote it (JSON files:
//! tests/fixtures/keyservice-json-v1) must keep working: a copy of it, served by the
//! current server, still lets every account in with its old credentials and gives back
//! every record, wrapped key, escrow blob, notice and invitation. The check talks to the
//! server only through the API, never to its files, so the same test proves that a
//! migration of that directory (into a database) keeps everything.
//!
//! `make_keyservice_json_fixture` (ignored) is how `scripts/make-keyservice-fixture` made
//! the fixture, with the pre-database server; it is kept to document the fixture, not to
//! be run again (fixtures are frozen).
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::crypto::SecretKey;
use cirrus::keys::KdfParams;
use cirrus::keyservice::api::Notice;
use cirrus::keyservice::client::{ClientError, KeyClient, Password, SecondFactor, escrow_verifier};
use common::keyserver::{Server, TINY, query, refused_start};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The fixture directory, relative to the crate root.
const FIXTURE: &str = "tests/fixtures/keyservice-json-v1";

/// Every known value of the fixture (`expected.json`); byte strings are hex.
#[derive(Debug, Serialize, Deserialize)]
struct Expected {
    /// What made the fixture (commit, date), for people.
    made_by: String,
    /// The Argon2id cost every account's password was derived with (the client's).
    kdf: KdfParams,
    /// TOTP step length of the server that made the fixture (the default).
    totp_period: u64,
    /// `--escrow-attempts` of that server (the default).
    escrow_attempts: u32,
    accounts: Vec<AccountExp>,
    invites: Vec<InviteExp>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountExp {
    name: String,
    password: String,
    /// The account's salt, as stored (public).
    salt: String,
    /// What the client sends at login: Argon2id(password, salt, kdf)'s `auth` half.
    auth: String,
    drs: bool,
    totp: Option<TotpExp>,
    /// Remembered-device tokens (the server keeps only their hash).
    device_tokens: Vec<String>,
    /// Record name -> exact value.
    records: BTreeMap<String, String>,
    service: ServiceExp,
    escrow: Option<EscrowExp>,
    /// What `notices` answers with one of `device_tokens`.
    notices: Vec<Notice>,
    /// When the pending data-recovery reset may complete (Unix seconds).
    pending_reset: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TotpExp {
    /// The `otpauth://` URI of the enrolment (it holds the secret).
    uri: String,
    /// The secret, base32 as in the URI.
    secret_base32: String,
    /// The last step the server accepted (a code of it or earlier is refused).
    last_step: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceExp {
    current: u32,
    live: Vec<u32>,
    wraps: Vec<WrapExp>,
}

/// A key wrapped by `service/wrap` under service key `version`, bound to `ctx`.
#[derive(Debug, Serialize, Deserialize)]
struct WrapExp {
    version: u32,
    ctx: String,
    key: String,
    wrapped: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EscrowExp {
    proof: String,
    blob: String,
    /// Wrong proofs since the last right one.
    failures: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct InviteExp {
    account: String,
    code: String,
    expires_at: u64,
}

fn pw(s: &str) -> Password {
    Password::new(s.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Copies a directory tree (files and directories only: the fixture has nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn load_expected() -> Expected {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The code of the current step, after waiting (if needed) until the step is past
/// `last_step` and has `need` seconds left, so the server's clock agrees on it.
fn fresh_code(t: &TotpExp, period: u64, need: u64) -> (u64, String) {
    let totp = totp_rs::Totp::from_url(&t.uri).unwrap();
    loop {
        let n = now();
        if n / period > t.last_step && period - n % period >= need {
            return (n / period, totp.generate(n).to_string());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The fixture, copied and served by today's server: everything in it still works.
#[test]
fn json_fixture_served_keeps_every_account_record_and_invitation() {
    let exp = load_expected();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir().join("data"), &dir.path().join("data"));
    let s = Server::start(dir.path(), &["--signup", "closed"]);
    let c = s.client();
    for a in &exp.accounts {
        check_account(&c, &exp, a);
    }
    for inv in &exp.invites {
        check_invite(&c, &exp, inv);
    }
    assert!(s.stop().success());
    check_import_kept_a_backup_and_is_done_once(dir.path(), &exp);
}

/// A first start given another master key than the one the JSON files were sealed with
/// refuses, and leaves nothing that would stop the start with the right key: no check
/// value in the database, no key file it made.
#[test]
fn a_json_import_with_another_master_key_is_refused_and_leaves_nothing() {
    let exp = load_expected();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir().join("data"), &dir.path().join("data"));
    let other = dir.path().join("other.key");
    let err = refused_start(dir.path(), &["--master-key-file", other.to_str().unwrap()]);
    assert!(err.contains("does not open this database"), "{err}");
    assert!(!other.exists(), "the key file it made was left behind");
    assert!(
        dir.path().join("data/accounts").is_dir(),
        "the JSON files moved"
    );
    assert_eq!(query(dir.path(), "SELECT count(*) FROM meta"), "0");
    assert_eq!(query(dir.path(), "SELECT count(*) FROM accounts"), "0");
    // the right key then imports everything
    let s = Server::start(dir.path(), &[]);
    assert_eq!(
        query(dir.path(), "SELECT count(*) FROM accounts"),
        exp.accounts.len().to_string()
    );
    assert!(s.stop().success());
}

/// The first start imported the JSON files into the database and moved them to
/// DATA/json-backup, unchanged; a second start imports nothing and still serves them.
fn check_import_kept_a_backup_and_is_done_once(dir: &Path, exp: &Expected) {
    let data = dir.join("data");
    let backup = data.join("json-backup");
    for sub in ["accounts", "records", "escrow", "invites"] {
        assert!(!data.join(sub).exists(), "{sub}/ is still in DATA");
        assert!(backup.join(sub).is_dir(), "{sub}/ is not in json-backup");
    }
    let original = fixture_dir().join("data").join("accounts");
    for entry in std::fs::read_dir(&original).unwrap() {
        let entry = entry.unwrap();
        let kept = std::fs::read(backup.join("accounts").join(entry.file_name())).unwrap();
        assert_eq!(kept, std::fs::read(entry.path()).unwrap(), "backup changed");
    }
    let accounts = || query(dir, "SELECT count(*) FROM accounts");
    // carol's account was created from her invitation
    let before = accounts();
    assert_eq!(before, (exp.accounts.len() + exp.invites.len()).to_string());
    let marker = || query(dir, "SELECT value FROM meta WHERE key = 'json-imported'");
    let mark = marker();
    assert!(
        mark.starts_with(&format!("{} accounts", exp.accounts.len())),
        "{mark}"
    );
    let s = Server::start(dir, &["--signup", "closed"]);
    let c = s.client();
    let alice = exp
        .accounts
        .iter()
        .find(|a| !a.device_tokens.is_empty())
        .unwrap();
    let (session, _) = c
        .login(
            &alice.name,
            &pw(&alice.password),
            SecondFactor::DeviceToken(Zeroizing::new(alice.device_tokens[0].clone())),
            false,
        )
        .expect("the imported account logs in after a restart");
    let mut names = session.record_list().unwrap();
    names.sort();
    let want: Vec<_> = alice.records.keys().cloned().collect();
    assert_eq!(names, want);
    assert_eq!(accounts(), before, "a second start imported again");
    assert_eq!(marker(), mark);
    assert!(s.stop().success());
}

/// One account: password (and second factor), records, service keys, notices, escrow.
fn check_account(c: &KeyClient, exp: &Expected, a: &AccountExp) {
    let name = a.name.as_str();
    // the listed `auth` is what the client sends for this password and salt (a test of a
    // migration may compare it with the raw API)
    let k = cirrus::keys::password_keys(&pw(&a.password), &unhex(&a.salt), exp.kdf).unwrap();
    assert_eq!(
        hex::encode(k.auth.expose()),
        a.auth,
        "{name}: auth in expected.json"
    );
    // a wrong password is refused, whatever the second factor
    let second = match a.device_tokens.first() {
        Some(t) => SecondFactor::DeviceToken(Zeroizing::new(t.clone())),
        None => SecondFactor::None,
    };
    assert!(
        matches!(
            c.login(name, &pw("not the password"), second, false),
            Err(ClientError::Unauthorized(_))
        ),
        "{name}: a wrong password was not refused"
    );
    let session = match &a.totp {
        None => c.login(name, &pw(&a.password), SecondFactor::None, false),
        Some(t) => {
            // enrolled: the password alone is not enough...
            assert!(
                matches!(
                    c.login(name, &pw(&a.password), SecondFactor::None, false),
                    Err(ClientError::SecondFactorRequired(_))
                ),
                "{name}: logged in without the second factor"
            );
            // ...every remembered device still is...
            for tok in &a.device_tokens {
                let d = SecondFactor::DeviceToken(Zeroizing::new(tok.clone()));
                let (s, _) = c.login(name, &pw(&a.password), d, false).unwrap();
                s.logout().unwrap();
            }
            // ...and so is a code from the enrolled secret
            let (_, code) = fresh_code(t, exp.totp_period, 5);
            c.login(name, &pw(&a.password), SecondFactor::Totp(code), false)
        }
    };
    let (s, _) = session.unwrap_or_else(|e| panic!("{name}: login: {e}"));

    let st = s.status().unwrap();
    assert_eq!(st.totp_enrolled, a.totp.is_some(), "{name}");
    assert_eq!(st.drs, a.drs, "{name}");
    assert_eq!(st.escrow, a.escrow.is_some(), "{name}");
    assert!(!st.escrow_destroyed, "{name}");
    assert_eq!(st.service_version, a.service.current, "{name}");

    let mut names = s.record_list().unwrap();
    names.sort();
    assert_eq!(
        names,
        a.records.keys().cloned().collect::<Vec<_>>(),
        "{name}"
    );
    for (rec, value) in &a.records {
        assert_eq!(
            hex::encode(s.record_get(rec).unwrap()),
            *value,
            "{name} {rec}"
        );
    }

    let svc = s.service_status().unwrap();
    assert_eq!(
        (svc.current, &svc.live),
        (a.service.current, &a.service.live)
    );
    for w in &a.service.wraps {
        let key = s
            .service_unwrap(&unhex(&w.ctx), &unhex(&w.wrapped))
            .unwrap();
        assert_eq!(
            hex::encode(key.expose()),
            w.key,
            "{name}: key of v{}",
            w.version
        );
    }

    if let Some(tok) = a.device_tokens.first() {
        let n = c.notices(name, tok).unwrap();
        assert_eq!(n.notices, a.notices, "{name}");
        assert_eq!(n.pending_reset, a.pending_reset, "{name}");
    }

    if let Some(e) = &a.escrow {
        // one more wrong proof: the count goes on from the stored failures
        match s.escrow_open(b"not the proof") {
            Err(ClientError::EscrowWrong { remaining }) => {
                assert_eq!(remaining, exp.escrow_attempts - e.failures - 1, "{name}")
            }
            other => panic!("{name}: wrong escrow proof: {:?}", other.map(hex::encode)),
        }
        assert_eq!(
            hex::encode(s.escrow_open(&unhex(&e.proof)).unwrap()),
            e.blob
        );
    }
    s.logout().unwrap();
}

/// An invitation still lets its account (and only it) be created on a closed service.
fn check_invite(c: &KeyClient, exp: &Expected, inv: &InviteExp) {
    assert!(
        now() < inv.expires_at,
        "the fixture's invitation has expired"
    );
    let name = inv.account.as_str();
    let password = pw("invited fixture password");
    assert!(matches!(
        c.create_account(name, &password, exp.kdf),
        Err(ClientError::SignupClosed(_))
    ));
    assert!(matches!(
        c.create_account_invited("not-invited", &password, exp.kdf, Some(&inv.code)),
        Err(ClientError::SignupClosed(_))
    ));
    let s = c
        .create_account_invited(name, &password, exp.kdf, Some(&inv.code))
        .unwrap_or_else(|e| panic!("{name}: invited creation: {e}"));
    s.logout().unwrap();
    let (s, _) = c.login(name, &password, SecondFactor::None, false).unwrap();
    s.logout().unwrap();
}

// ---- How the fixture was made (scripts/make-keyservice-fixture; never run again) ----

/// `--reset-wait` of the server that made the fixture: alice's data-recovery reset stays
/// pending for a century, so its notice and pending state are part of the fixture.
const RESET_WAIT: u64 = 100 * 365 * 86400;

/// The expiry written into the fixture's invitation (2100-01-01 UTC). `cirrus serve
/// account create` allows at most 365 days; the generator moves it later (the file's
/// format unchanged) so the fixture's invitation keeps working.
const INVITE_EXPIRES_AT: u64 = 4_102_444_800;

#[test]
#[ignore = "makes the fixture (scripts/make-keyservice-fixture); fixtures are frozen"]
fn make_keyservice_json_fixture() {
    let out = PathBuf::from(std::env::var("CIRRUS_FIXTURE_OUT").expect("CIRRUS_FIXTURE_OUT"));
    assert!(!out.exists(), "refusing to overwrite {}", out.display());
    let made_by = std::env::var("CIRRUS_FIXTURE_MADE_BY").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let wait = RESET_WAIT.to_string();
    let s = Server::start(dir.path(), &["--reset-wait", &wait]);
    let c = s.client();
    let mut accounts = vec![make_alice(&c), make_bob(&c)];
    let data = s.data.clone();
    let invites = vec![make_invite(&data, "carol")];
    assert!(s.stop().success());
    for a in &mut accounts {
        (a.salt, a.auth) = salt_and_auth(&data, &a.name, &a.password);
    }
    let exp = Expected {
        made_by,
        kdf: TINY,
        totp_period: 30,
        escrow_attempts: 10,
        accounts,
        invites,
    };
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        eprintln!("DATA entry: {name}");
        // The self-signed TLS certificate and key are the server's identity, not state
        // a migration moves.
        if name == "tls" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &out.join("data").join(&name));
        } else {
            std::fs::create_dir_all(out.join("data")).unwrap();
            std::fs::copy(e.path(), out.join("data").join(&name)).unwrap();
        }
    }
    let mut json = serde_json::to_string_pretty(&exp).unwrap();
    json.push('\n');
    std::fs::write(out.join("expected.json"), json).unwrap();
}

/// The account's stored salt and the `auth` its password gives (as the client derives
/// it): read from the JSON file, which only this generator may do.
fn salt_and_auth(data: &Path, name: &str, password: &str) -> (String, String) {
    let path = data
        .join("accounts")
        .join(format!("{}.json", hex::encode(name)));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let salt = v["salt"].as_str().unwrap().to_string();
    let k = cirrus::keys::password_keys(&pw(password), &unhex(&salt), TINY).unwrap();
    (salt, hex::encode(k.auth.expose()))
}

/// alice: two records, two service key versions, an escrow record with two wrong proofs,
/// TOTP with a remembered device, and a data-recovery reset pending.
fn make_alice(c: &KeyClient) -> AccountExp {
    let name = "alice";
    let password = "alice fixture password";
    let s = c.create_account(name, &pw(password), TINY).unwrap();
    let mut records = BTreeMap::new();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    for (rec, value) in [
        ("fixture/hello", b"Hello, key service v1!\n".to_vec()),
        ("keys/all-bytes", all_bytes),
    ] {
        s.record_put(rec, &value).unwrap();
        records.insert(rec.to_string(), hex::encode(&value));
    }
    let ctx = b"cirrus keyservice fixture v1";
    let mut wraps = Vec::new();
    for (version, byte) in [(1u32, 0x11u8), (2, 0x22)] {
        if version > 1 {
            assert_eq!(s.service_rotate().unwrap().current, version);
        }
        let key = SecretKey::from_bytes([byte; 32]);
        let wrapped = s.service_wrap(ctx, &key).unwrap();
        wraps.push(WrapExp {
            version,
            ctx: hex::encode(ctx),
            key: hex::encode(key.expose()),
            wrapped: hex::encode(wrapped),
        });
    }
    let svc = s.service_status().unwrap();
    assert_eq!((svc.current, &svc.live[..]), (2, &[1, 2][..]));

    let proof = b"alice escrow proof v1";
    let blob = b"alice escrow blob v1 \x00\x01\xfe\xff";
    s.escrow_put(&escrow_verifier(proof), blob).unwrap();
    for want in [9, 8] {
        match s.escrow_open(b"a wrong proof") {
            Err(ClientError::EscrowWrong { remaining }) => assert_eq!(remaining, want),
            other => panic!("wrong escrow proof: {:?}", other.map(hex::encode)),
        }
    }

    let uri = s.totp_enroll().unwrap().to_string();
    let secret_base32 = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap()
        .to_string();
    let mut totp = TotpExp {
        uri,
        secret_base32,
        last_step: 0,
    };
    let (step, code) = fresh_code(&totp, 30, 5);
    let token = s.totp_confirm(&code, true).unwrap().unwrap().to_string();
    totp.last_step = step;
    // a later step's code starts the reset (the confirming code is spent)
    let (step, code) = fresh_code(&totp, 30, 5);
    match c.reset_password(name, &code, &pw("alice reset password, never used"), TINY) {
        Err(ClientError::ResetPending { ready_in }) => assert_eq!(ready_in, RESET_WAIT),
        Err(e) => panic!("reset: {e}"),
        Ok(_) => panic!("the reset completed at once"),
    }
    totp.last_step = step;
    let n = c.notices(name, &token).unwrap();
    assert_eq!(n.notices.len(), 1);
    assert!(n.pending_reset.is_some());
    AccountExp {
        name: name.into(),
        password: password.into(),
        salt: String::new(),
        auth: String::new(),
        drs: true,
        totp: Some(totp),
        device_tokens: vec![token],
        records,
        service: ServiceExp {
            current: svc.current,
            live: svc.live,
            wraps,
        },
        escrow: Some(EscrowExp {
            proof: hex::encode(proof),
            blob: hex::encode(blob),
            failures: 2,
        }),
        notices: n.notices,
        pending_reset: n.pending_reset,
    }
}

/// bob: a password, one record, data recovery off; nothing else.
fn make_bob(c: &KeyClient) -> AccountExp {
    let name = "bob";
    let password = "bob fixture password";
    let s = c.create_account(name, &pw(password), TINY).unwrap();
    assert!(!s.set_drs(false).unwrap().drs);
    let value = b"bob's only record".to_vec();
    s.record_put("fixture/bob", &value).unwrap();
    let key = SecretKey::from_bytes([0x33; 32]);
    let ctx = b"cirrus keyservice fixture v1 bob";
    let wrapped = s.service_wrap(ctx, &key).unwrap();
    AccountExp {
        name: name.into(),
        password: password.into(),
        salt: String::new(),
        auth: String::new(),
        drs: false,
        totp: None,
        device_tokens: Vec::new(),
        records: BTreeMap::from([("fixture/bob".to_string(), hex::encode(&value))]),
        service: ServiceExp {
            current: 1,
            live: vec![1],
            wraps: vec![WrapExp {
                version: 1,
                ctx: hex::encode(ctx),
                key: hex::encode(key.expose()),
                wrapped: hex::encode(wrapped),
            }],
        },
        escrow: None,
        notices: Vec::new(),
        pending_reset: None,
    }
}

/// An unused invitation for `name`, made by the admin command, its expiry moved to
/// [`INVITE_EXPIRES_AT`].
fn make_invite(data: &Path, name: &str) -> InviteExp {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cirrus"))
        .args([
            "serve",
            "account",
            "create",
            name,
            "--valid-days",
            "365",
            "--data",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let code = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no invitation code in {text}"))
        .to_string();
    let path = data
        .join("invites")
        .join(format!("{}.json", hex::encode(name)));
    let stored = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let old = v["expires_at"].as_u64().unwrap();
    let from = format!("\"expires_at\":{old}");
    assert_eq!(stored.matches(&from).count(), 1, "{stored}");
    let to = format!("\"expires_at\":{INVITE_EXPIRES_AT}");
    std::fs::write(&path, stored.replace(&from, &to)).unwrap();
    InviteExp {
        account: name.into(),
        code,
        expires_at: INVITE_EXPIRES_AT,
    }
}
