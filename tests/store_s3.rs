//! The S3 store against a real SeaweedFS on 127.0.0.1 (tests/common/seaweed.rs): the
//! store conformance suite, compare-and-swap races, the errors a user sees for a bad
//! secret, a missing bucket or a dead server, and a whole drive living on S3 (keys from
//! the environment, or from an AWS shared credentials file).
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::store::{S3Config, S3Credentials, S3Store, Store, StoreError, conformance, etag_of};
use common::seaweed::{self, Seaweed};
use common::*;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[test]
fn s3_store_conforms() {
    let sw = Seaweed::start();
    conformance::suite(&sw.store("conf"));
    // the bucket root works as a store too, and prefixes do not leak into each other
    let root = sw.store("");
    conformance::suite(&sw.store("other/deeper"));
    let mut l = root.list("conf/a/").unwrap();
    l.sort();
    assert_eq!(l, ["conf/a/b/one"]);
    assert!(sw.store("conf").list("other").unwrap().is_empty());
}

/// An endpoint given as an IP address implies path-style addressing: the store works
/// without `path_style=1` (virtual-host style would ask for BUCKET.127.0.0.1).
#[test]
fn s3_ip_endpoint_implies_path_style() {
    let sw = Seaweed::start();
    let url = sw.url("by-ip").replace("&path_style=1", "");
    assert!(
        url.contains("//127.0.0.1:") && !url.contains("path_style"),
        "{url}"
    );
    let mut c = S3Config::from_url(&url).unwrap();
    assert!(!c.path_style);
    c.credentials = sw.config("by-ip").credentials;
    let s = S3Store::new(c).unwrap();
    s.put("packs/one", b"by ip").unwrap();
    assert_eq!(s.get("packs/one").unwrap(), b"by ip");
    assert_eq!(s.list("packs/").unwrap(), ["packs/one"]);
    // the same objects as through a path-style store of the same prefix
    assert_eq!(sw.store("by-ip").get("packs/one").unwrap(), b"by ip");
}

#[test]
fn s3_list_follows_continuation_tokens() {
    let sw = Seaweed::start();
    let s = sw.store("paged").with_list_page_size(2);
    let mut want: Vec<String> = (0..7).map(|i| format!("packs/p{i}")).collect();
    for n in &want {
        s.put(n, n.as_bytes()).unwrap();
    }
    s.put("heads/h", b"x").unwrap();
    let mut got = s.list("packs/").unwrap();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(s.list("").unwrap().len(), 8);
    // empty objects and ranges on them
    s.put("empty", b"").unwrap();
    assert_eq!(s.get("empty").unwrap(), b"");
    assert_eq!(s.size("empty").unwrap(), 0);
    assert_eq!(s.get_range("empty", 0, 10).unwrap(), b"");
    assert!(matches!(
        s.get_range("nope", 0, 0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn s3_concurrent_cas_has_one_winner() {
    let sw = Seaweed::start();
    let s = Arc::new(sw.store("race"));
    let race = |expected: Option<[u8; 32]>, round: u32| -> Vec<usize> {
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let s = s.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    match s.put_if(
                        "heads/x",
                        format!("r{round}w{i}").as_bytes(),
                        expected.as_ref(),
                    ) {
                        Ok(e) => {
                            assert_eq!(e, etag_of(format!("r{round}w{i}").as_bytes()));
                            Some(i)
                        }
                        Err(StoreError::PreconditionFailed(_)) => None,
                        Err(e) => panic!("unexpected error in the race: {e}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    };
    // creation race: exactly one `None` wins
    let winners = race(None, 0);
    assert_eq!(winners.len(), 1, "{winners:?}");
    let base = s.get("heads/x").unwrap();
    assert_eq!(base, format!("r0w{}", winners[0]).as_bytes());
    // update races from the same version, a few rounds
    let mut current = etag_of(&base);
    for round in 1..=3 {
        let winners = race(Some(current), round);
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let now = s.get("heads/x").unwrap();
        assert_eq!(now, format!("r{round}w{}", winners[0]).as_bytes());
        current = etag_of(&now);
    }
}

#[test]
fn s3_errors_are_clear() {
    let mut sw = Seaweed::start();
    // wrong secret
    let mut cfg = sw.config("p");
    cfg.credentials = Some(S3Credentials::new(seaweed::ACCESS_KEY, "not-the-secret"));
    let s = S3Store::new(cfg).unwrap();
    let e = s.put("x", b"1").unwrap_err();
    assert!(seaweed::is_denied(&e), "{e:?}");
    let msg = e.to_string();
    eprintln!("wrong secret: {msg}");
    assert!(msg.contains("AWS_SECRET_ACCESS_KEY"), "{msg}");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    assert!(seaweed::is_denied(&s.get("x").unwrap_err()));
    // missing bucket
    let mut cfg = sw.config("p");
    cfg.bucket = "no-such-bucket".into();
    let s = S3Store::new(cfg).unwrap();
    let e = s.get("x").unwrap_err();
    eprintln!("missing bucket: {e}");
    assert!(
        matches!(e, StoreError::NoBucket(ref b) if b == "no-such-bucket"),
        "{e:?}"
    );
    // a server that stops: a clear error, refused rather than timed out (so not a hang
    // until the request timeout)
    let s = sw.store("p");
    s.put("x", b"1").unwrap();
    sw.kill();
    let e = s.get("x").unwrap_err();
    match &e {
        // refused, not timed out: a retry layer tries it again
        StoreError::Unreachable {
            endpoint,
            timed_out,
            ..
        } => assert!(*endpoint == sw.endpoint && !timed_out, "{e:?}"),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    eprintln!("stopped server: {msg}");
    assert!(
        msg.contains("cannot reach") && !msg.contains("X-Amz-Signature"),
        "{msg}"
    );
}

#[test]
fn s3_frozen_server_times_out() {
    let sw = Seaweed::start();
    // The timeout as a URL option (5 s instead of the 60 s default, so the test is quick),
    // with the keys given as an explicit environment, not the process-wide one.
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some(seaweed::ACCESS_KEY.to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some(seaweed::SECRET_KEY.to_string()),
        _ => None,
    };
    let url = format!("{}&timeout=5&connect_timeout=2", sw.url("frozen"));
    let cfg = S3Config::from_url_with_env(&url, &env).unwrap();
    assert_eq!(cfg.timeout, Duration::from_secs(5));
    let s = S3Store::new(cfg).unwrap();
    s.put("x", b"1").unwrap();
    sw.freeze();
    let t = Instant::now();
    let e = s.get("x").unwrap_err();
    let took = t.elapsed();
    sw.signal(libc::SIGCONT);
    eprintln!("frozen server, after {took:?}: {e}");
    // the whole-request timeout, not a hang
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // classified as a timeout where it is made (so a retry layer does not wait again)
    assert!(
        matches!(
            e,
            StoreError::Unreachable {
                timed_out: true,
                ..
            }
        ),
        "{e:?}"
    );
    // and the store works again once the server does
    assert_eq!(s.get("x").unwrap(), b"1");
}

#[test]
fn s3_open_url_needs_credentials_and_https() {
    // These need no server: they fail before any request.
    let e = cirrus::store::open_url("s3://bkt/p?endpoint=http://127.0.0.1:1&path_style=1")
        .err()
        .unwrap();
    // Without credentials in the environment of the test run, or with them: a clear error
    // either way (no credentials, or plain http refused).
    assert!(
        matches!(e, StoreError::NoCredentials | StoreError::BadUrl(..)),
        "{e:?}"
    );
    assert!(matches!(
        cirrus::store::open_url("s3://bkt/p?bogus=1"),
        Err(StoreError::BadUrl(..))
    ));
}

#[test]
fn drive_on_s3_survives_a_remount() {
    let sw = Seaweed::start();
    let mut d = Drive::blank();
    d.set_env("AWS_ACCESS_KEY_ID", seaweed::ACCESS_KEY);
    d.set_env("AWS_SECRET_ACCESS_KEY", seaweed::SECRET_KEY);
    // The options as `init` flags (they end up in the store URL's query string).
    let out = run_ok(
        d.cirrus_cmd()
            .args([
                "init",
                "--store",
                &format!("s3://{}/drive", seaweed::BUCKET),
            ])
            .args(["--endpoint", &sw.endpoint, "--path-style", "--allow-http"])
            .arg("--passcode-file")
            .arg(&d.passcode_file)
            .args(["--kdf-memory", "8192", "--kdf-time", "1"]),
    );
    assert!(out.contains("Created a Cirrus account"), "{out}");
    // the secret is not written into the home
    let config = fs::read_to_string(d.home.join("config.toml")).unwrap();
    assert!(!config.contains(seaweed::SECRET_KEY), "{config}");
    d.mount_again();
    let data = pseudo_random(3 * CHUNK + 123, 7);
    fs::write(d.notes().join("big.bin"), &data).unwrap();
    fs::write(d.notes().join("small.txt"), b"hello from s3").unwrap();
    d.remount();
    assert_eq!(fs::read(d.notes().join("big.bin")).unwrap(), data);
    assert_eq!(
        fs::read(d.notes().join("small.txt")).unwrap(),
        b"hello from s3"
    );
    d.unmount();
    // the ciphertext really is in the bucket, under the prefix
    let objects = sw.store("drive").list("").unwrap();
    assert!(objects.len() >= 3, "{objects:?}");
    assert!(sw.store("").list("drive/").unwrap().len() == objects.len());
}

#[test]
fn drive_on_s3_with_keys_from_a_profile_file() {
    let sw = Seaweed::start();
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("credentials");
    let config = tmp.path().join("config");
    // Two profiles: `default` has a wrong secret, so only the chosen one can work.
    fs::write(
        &creds,
        format!(
            "# test keys\n[default]\naws_access_key_id = {key}\n\
             aws_secret_access_key = not-the-secret\n\n[cirrus-test]\n\
             aws_access_key_id = {key}\naws_secret_access_key = {secret}\n",
            key = seaweed::ACCESS_KEY,
            secret = seaweed::SECRET_KEY
        ),
    )
    .unwrap();
    fs::write(&config, "[profile cirrus-test]\nregion = us-east-1\n").unwrap();
    let mut d = Drive::blank();
    // Only the files: blank variables mask any that the test run inherited (blank counts
    // as unset). Set on the `cirrus` commands only, never in this process: tests run in
    // parallel threads and the environment is process-wide.
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        d.set_env(k, "");
    }
    d.set_env("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap());
    d.set_env("AWS_CONFIG_FILE", config.to_str().unwrap());
    d.set_env("AWS_PROFILE", "cirrus-test");
    let out = run_ok(
        d.cirrus_cmd()
            .args([
                "init",
                "--store",
                &format!("s3://{}/profile-drive", seaweed::BUCKET),
            ])
            .args(["--endpoint", &sw.endpoint, "--path-style", "--allow-http"])
            .arg("--passcode-file")
            .arg(&d.passcode_file)
            .args(["--kdf-memory", "8192", "--kdf-time", "1"]),
    );
    assert!(out.contains("Created a Cirrus account"), "{out}");
    d.mount_again();
    let data = pseudo_random(2 * CHUNK + 5, 11);
    fs::write(d.notes().join("keys-from-a-file.bin"), &data).unwrap();
    d.remount();
    assert_eq!(
        fs::read(d.notes().join("keys-from-a-file.bin")).unwrap(),
        data
    );
    d.unmount();
    assert!(!sw.store("profile-drive").list("").unwrap().is_empty());

    let status = |profile: &str| {
        let mut c = d.cirrus_cmd();
        c.env("AWS_PROFILE", profile)
            .args(["status", "--passcode-file"])
            .arg(&d.passcode_file);
        let o = run(&mut c);
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    let (ok, t) = status("cirrus-test");
    assert!(ok, "{t}");
    // A profile that is not in the file: a clear error naming both, not unsigned requests.
    let (ok, t) = status("no-such-profile");
    eprintln!("missing profile: {t}");
    assert!(!ok, "{t}");
    assert!(
        t.contains("\"no-such-profile\"") && t.contains(creds.to_str().unwrap()),
        "{t}"
    );
    // The other profile's wrong secret: refused by the server, and the secret not shown.
    let (ok, t) = status("default");
    eprintln!("wrong profile: {t}");
    assert!(!ok && t.contains("refused access"), "{t}");
    assert!(
        !t.contains("not-the-secret") && !t.contains(seaweed::SECRET_KEY),
        "{t}"
    );
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn private_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cirrus test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    fs::write(&paths.0, ca.pem()).unwrap();
    fs::write(&paths.1, leaf.pem()).unwrap();
    fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

#[test]
fn s3_over_https_with_a_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(tmp.path());
    let sw = Seaweed::start_tls(&cert, &key);
    let https = sw.https_endpoint.clone().unwrap();
    let mut cfg = sw.config("tls");
    cfg.endpoint = Some(https.clone());
    cfg.allow_http = false;
    // Without the CA: the web PKI roots do not know it, and the error says so.
    let e = S3Store::new(cfg.clone()).unwrap().get("x").unwrap_err();
    assert!(
        matches!(&e, StoreError::Unreachable { endpoint, .. } if *endpoint == https),
        "{e:?}"
    );
    eprintln!("unknown CA: {e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(e.to_string().contains("add ca_file=PATH"), "{e}");
    // With it, the store works over TLS.
    cfg.ca_file = Some(ca.clone());
    let s = S3Store::new(cfg.clone()).unwrap();
    s.put("x", b"sealed bytes").unwrap();
    assert_eq!(s.get("x").unwrap(), b"sealed bytes");
    conformance::suite(
        &S3Store::new({
            let mut c = cfg.clone();
            c.prefix = "tls-conf".into();
            c
        })
        .unwrap(),
    );
    // A file with no certificate in it is refused up front.
    let empty = tmp.path().join("empty.pem");
    fs::write(&empty, "").unwrap();
    cfg.ca_file = Some(empty);
    assert!(matches!(S3Store::new(cfg), Err(StoreError::BadUrl(..))));
}
