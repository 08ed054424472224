//! Unit tests of the key service's web half: the registration's checks, the store
//! allow-list, sign-in (limits shared with logins, TOTP always), sessions and their ends.

use super::web::store_location;
use super::*;
use crate::format::manifest::{DeviceEntry, DeviceState, FEATURES, Manifest, SignedManifest};
use crate::keys::device::DeviceIdentity;

const STORE: &str = "s3://cirrus/alice?endpoint=http://127.0.0.1:8333&path_style=1&allow_http=1";
const PASSWORD: &str = "correct horse web";

fn config(idle: Duration, login_attempts: u32) -> ServiceConfig {
    ServiceConfig {
        verifier_memory_kib: 8,
        verifier_time: 1,
        login_attempts,
        ip_attempts: 100,
        web: Some(WebConfig {
            store_allow: vec!["http://127.0.0.1:8333/cirrus/".into()],
            idle,
            max: Duration::from_secs(3600),
            release_ttl: Duration::from_secs(3600),
            pending_quota: 1 << 20,
        }),
        ..ServiceConfig::default()
    }
}

fn caller(token: Option<&str>) -> Caller {
    Caller {
        ip: "127.0.0.1".parse().unwrap(),
        bearer: token.map(|t| Zeroizing::new(t.to_string())),
    }
}

/// alice with TOTP enrolled; her session token and a code maker (`step` offsets from now).
fn alice(svc: &KeyService) -> (String, impl Fn(i64) -> String) {
    let token = svc
        .create(
            &caller(None),
            CreateReq {
                account: "alice".into(),
                salt: hex::encode([1u8; 16]),
                kdf: KdfParams {
                    memory_kib: 8,
                    time: 1,
                    lanes: 1,
                },
                auth: hex::encode([9u8; 32]),
                invite: None,
            },
        )
        .unwrap()
        .token;
    let uri = svc.totp_enroll(&caller(Some(&token))).unwrap().uri;
    let t = totp_rs::Totp::from_url(&uri).unwrap();
    let code = move |step: i64| {
        let now = now_secs() as i64 + step * super::super::totp::PERIOD as i64;
        t.generate(now as u64).to_string()
    };
    svc.totp_confirm(
        &caller(Some(&token)),
        TotpConfirmReq {
            code: code(-1),
            remember_device: false,
        },
    )
    .unwrap();
    (token, code)
}

fn manifest_of(devices: &[&DeviceIdentity], signer: &DeviceIdentity) -> Vec<u8> {
    manifest_with(devices, signer, |_| {})
}

fn manifest_with(
    devices: &[&DeviceIdentity],
    signer: &DeviceIdentity,
    edit: impl FnOnce(&mut Manifest),
) -> Vec<u8> {
    let mut m = Manifest::empty([5; 16]);
    m.counter = 3;
    edit(&mut m);
    for (i, d) in devices.iter().enumerate() {
        m.devices.push(DeviceEntry {
            name: format!("laptop{i}"),
            sign: d.public().sign,
            kx: d.public().kx,
            state: DeviceState::Active,
            features: FEATURES,
        });
    }
    let body = m.encode();
    let sig = signer.sign(crate::crypto::domains::SIGN_MANIFEST, &body);
    SignedManifest {
        body,
        signer: signer.public().sign,
        sig,
    }
    .encode()
}

fn registration(account: &str, store: &str, obj: &[u8], by: &DeviceIdentity) -> WebOnReq {
    let (_, _, hash) = crate::format::web::decode_manifest_object(obj).unwrap();
    let msg = crate::format::web::registration_message(account, store, &hash);
    WebOnReq {
        store: store.into(),
        manifest: hex::encode(obj),
        signer: hex::encode(by.public().sign),
        signature: hex::encode(by.sign(crate::crypto::domains::SIGN_WEB_REGISTRATION, &msg)),
        password: PASSWORD.into(),
    }
}

#[test]
fn store_locations_are_canonical_and_carry_no_server_settings() {
    assert_eq!(
        store_location(STORE).unwrap(),
        "http://127.0.0.1:8333/cirrus/alice/"
    );
    assert_eq!(
        store_location("s3://cirrus").unwrap(),
        "https://s3.amazonaws.com/cirrus/"
    );
    for bad in [
        "s3://cirrus/a?profile=admin",
        "s3://cirrus/a?ca_file=/etc/shadow",
        "s3://cirrus/a?timeout=5",
        "file:///srv/store",
        "s3://x",
    ] {
        assert!(store_location(bad).is_err(), "{bad}");
    }
}

#[test]
fn web_on_checks_every_signature_the_account_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let svc = KeyService::open(
        &StoreOptions::in_dir(dir.path()),
        config(Duration::from_secs(60), 10),
        true,
    )
    .unwrap();
    let (token, _code) = alice(&svc);
    let c = caller(Some(&token));
    let me = DeviceIdentity::generate().unwrap();
    let stranger = DeviceIdentity::generate().unwrap();
    let obj = manifest_of(&[&me], &me);
    let refused = |req: WebOnReq| svc.web_on(&c, req).unwrap_err();
    // Signed by a device the manifest does not list.
    assert!(matches!(
        refused(registration("alice", STORE, &obj, &stranger)),
        ApiError::BadRequest(_)
    ));
    // A manifest signed by a key that is not one of its devices.
    let forged = manifest_of(&[&me], &stranger);
    assert!(matches!(
        refused(registration("alice", STORE, &forged, &me)),
        ApiError::BadRequest(_)
    ));
    // Made for another account (the signature covers the name).
    assert!(matches!(
        refused(registration("bob", STORE, &obj, &me)),
        ApiError::BadRequest(_)
    ));
    // A store the admin does not allow, and one under a look-alike prefix.
    let elsewhere = "s3://cirrus-other/alice?endpoint=http://127.0.0.1:8333";
    assert!(matches!(
        refused(registration("alice", elsewhere, &obj, &me)),
        ApiError::Forbidden(_)
    ));
    let internal = "s3://cirrus/alice?endpoint=http://169.254.169.254";
    assert!(matches!(
        refused(registration("alice", internal, &obj, &me)),
        ApiError::Forbidden(_)
    ));
    // A signature over another store than the one sent.
    let mut swapped = registration("alice", STORE, &obj, &me);
    swapped.store = STORE.replace("alice", "alice2");
    assert!(matches!(refused(swapped), ApiError::BadRequest(_)));
    // A short web password.
    let mut short = registration("alice", STORE, &obj, &me);
    short.password = "short".into();
    assert!(matches!(refused(short), ApiError::BadRequest(_)));
    let st = svc
        .web_on(&c, registration("alice", STORE, &obj, &me))
        .unwrap();
    assert!(st.enabled);
    assert_eq!(st.store.as_deref(), Some(STORE));
    assert_eq!(st.device.as_deref(), Some("laptop0"));
    let anchor = svc.web_seen("alice", u32::MAX).unwrap().unwrap();
    assert_eq!(anchor.0, 3);
    assert_eq!(anchor.2.as_deref(), Some(&obj[..]));
    assert_eq!(svc.web_store("alice").unwrap(), STORE);
}

#[test]
fn sign_in_needs_the_web_password_and_a_fresh_code_and_counts_failures_with_logins() {
    let dir = tempfile::tempdir().unwrap();
    let svc = KeyService::open(
        &StoreOptions::in_dir(dir.path()),
        config(Duration::from_secs(60), 10),
        true,
    )
    .unwrap();
    let (token, code) = alice(&svc);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    // Web access is off: refused like a wrong password.
    assert!(matches!(
        svc.web_sign_in(ip, "alice", PASSWORD, &code(0), "t"),
        Err(ApiError::Unauthorized(_))
    ));
    let me = DeviceIdentity::generate().unwrap();
    let obj = manifest_of(&[&me], &me);
    svc.web_on(
        &caller(Some(&token)),
        registration("alice", STORE, &obj, &me),
    )
    .unwrap();
    // The account password's auth value is not the web password.
    assert!(matches!(
        svc.web_sign_in(ip, "alice", "wrong web password", &code(0), "t"),
        Err(ApiError::Unauthorized(_))
    ));
    assert!(matches!(
        svc.web_sign_in(ip, "alice", PASSWORD, "000000", "t"),
        Err(ApiError::Unauthorized(_))
    ));
    let ok = svc
        .web_sign_in(ip, "alice", PASSWORD, &code(0), "Browser\u{1b}[2J")
        .unwrap();
    // The same code never twice.
    assert!(
        svc.web_sign_in(ip, "alice", PASSWORD, &code(0), "t")
            .is_err()
    );
    let s = svc.web_session(&ok).unwrap();
    assert_eq!(s.account, "alice");
    assert_eq!(s.csrf.len(), 64);
    assert!(s.csrf_ok(&s.csrf.clone()));
    assert!(!s.csrf_ok(&"0".repeat(64)));
    assert!(!s.csrf_ok(""));
    let listed = svc.web_sessions_list(&caller(Some(&token))).unwrap();
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].id, s.id);
    assert_eq!(listed.sessions[0].from, "192.0.2.7");
    assert!(!listed.sessions[0].agent.contains('\u{1b}'));
    // The sign-in is a notice on the devices.
    let a = svc.read(|tx| KeyService::load(tx, "alice")).unwrap();
    assert!(a.notices.iter().any(|n| n.kind == NoticeKind::WebSignIn));
    // Revoked: the cookie no longer works.
    let ended = svc
        .web_revoke(
            &caller(Some(&token)),
            WebRevokeReq {
                id: Some(s.id.clone()),
            },
        )
        .unwrap();
    assert_eq!(ended.ended, 1);
    assert!(matches!(
        svc.web_session(&ok),
        Err(ApiError::Unauthorized(_))
    ));
}

#[test]
fn failed_sign_ins_lock_the_accounts_logins_too() {
    let dir = tempfile::tempdir().unwrap();
    let svc = KeyService::open(
        &StoreOptions::in_dir(dir.path()),
        config(Duration::from_secs(60), 3),
        true,
    )
    .unwrap();
    let (token, code) = alice(&svc);
    let me = DeviceIdentity::generate().unwrap();
    let obj = manifest_of(&[&me], &me);
    svc.web_on(
        &caller(Some(&token)),
        registration("alice", STORE, &obj, &me),
    )
    .unwrap();
    let ip: IpAddr = "192.0.2.8".parse().unwrap();
    for _ in 0..3 {
        let _ = svc.web_sign_in(ip, "alice", "wrong web password", &code(0), "t");
    }
    // --login-attempts 3: the right password and code are refused now, on the web ...
    assert!(matches!(
        svc.web_sign_in(ip, "alice", PASSWORD, &code(0), "t"),
        Err(ApiError::RateLimited { .. })
    ));
    // ... and at the API's login.
    let login = svc.login(
        &Caller {
            ip: "198.51.100.1".parse().unwrap(),
            bearer: None,
        },
        LoginReq {
            account: "alice".into(),
            auth: hex::encode([9u8; 32]),
            totp: Some(code(1)),
            device_token: None,
            remember_device: false,
            replaces_token: None,
        },
    );
    assert!(
        matches!(login, Err(ApiError::RateLimited { .. })),
        "{login:?}"
    );
}

#[test]
fn an_idle_session_ends_and_web_off_ends_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let svc = KeyService::open(
        &StoreOptions::in_dir(dir.path()),
        config(Duration::from_millis(300), 10),
        true,
    )
    .unwrap();
    let (token, code) = alice(&svc);
    let me = DeviceIdentity::generate().unwrap();
    let obj = manifest_of(&[&me], &me);
    let c = caller(Some(&token));
    svc.web_on(&c, registration("alice", STORE, &obj, &me))
        .unwrap();
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    let a = svc
        .web_sign_in(ip, "alice", PASSWORD, &code(0), "t")
        .unwrap();
    let b = svc
        .web_sign_in(ip, "alice", PASSWORD, &code(1), "t")
        .unwrap();
    // Used within the idle time, `a` lives on; `b` idles out.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        svc.web_session(&a).unwrap();
    }
    assert!(matches!(
        svc.web_session(&b),
        Err(ApiError::Unauthorized(_))
    ));
    let st = svc.web_off(&c).unwrap();
    assert!(!st.enabled);
    assert!(svc.web_session(&a).is_err());
    assert!(svc.web_store("alice").is_err());
}

/// Under ADP (the registered manifest's flag): a sign-in waits with a key and a code MAC
/// only this server's memory can answer for; a device's approval releases only
/// allow-listed e2e categories; a released key opens for that session only, until it
/// expires or the session ends.
#[test]
fn adp_sign_ins_wait_for_approval_and_released_keys_open_only_for_their_session() {
    use crate::format::table::{CategoryEntry, Class};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Duration::from_secs(60), 10);
    if let Some(w) = cfg.web.as_mut() {
        w.release_ttl = Duration::from_millis(600);
    }
    let svc = KeyService::open(&StoreOptions::in_dir(dir.path()), cfg, true).unwrap();
    let (token, code) = alice(&svc);
    let c = caller(Some(&token));
    let me = DeviceIdentity::generate().unwrap();
    let entry = |id, name: &str, class| CategoryEntry {
        id,
        name: name.into(),
        class,
        retired: false,
        key_version: 2,
    };
    let obj = manifest_with(&[&me], &me, |m| {
        m.flags |= crate::format::manifest::FLAG_ADP;
        m.table.entries = vec![
            entry(1, "Photos", Class::E2e),
            entry(2, "Health", Class::E2e),
            entry(3, "Mail", Class::Standard),
            entry(4, "Notes", Class::Standard),
        ];
        m.table.next_id = 5;
    });
    let st = svc
        .web_on(&c, registration("alice", STORE, &obj, &me))
        .unwrap();
    assert!(st.approvals);
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let tok = svc
        .web_sign_in(ip, "alice", PASSWORD, &code(0), "t")
        .unwrap();
    let s = svc.web_session(&tok).unwrap();
    assert_eq!(s.approval, Approval::Waiting);
    // The device finds it by the code the page shows.
    let shown = svc.web_sign_in_code(&s.id).unwrap();
    let jc = crate::keys::join::JoinCode::parse(&shown).unwrap();
    let list = svc.web_approvals_list(&c).unwrap().approvals;
    assert_eq!(list.len(), 1);
    let pk: [u8; 32] = hex::decode(&list[0].public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let mac = hex::decode(&list[0].mac).unwrap();
    assert!(crate::keys::web::session_key_mac_ok(
        &jc, "alice", &s.id, &pk, &mac
    ));
    assert!(!list[0].approved);
    let key = SecretKey::from_bytes([7; 32]);
    let seal =
        |cat, id: &str| crate::keys::web::seal_release(&pk, "alice", id, cat, 2, &key).unwrap();
    let item = |cat, id: &str| WebReleaseItem {
        category: cat,
        version: 2,
        sealed: hex::encode(seal(cat, id)),
    };
    let proof = crate::keys::web::approval_proof(&jc, "alice", &s.id, &pk);
    let approve_with = |proof: [u8; 32], releases| {
        svc.web_approve(
            &c,
            WebApproveReq {
                id: s.id.clone(),
                device: "laptop0".into(),
                proof: hex::encode(proof),
                releases,
            },
        )
    };
    let approve = |releases| approve_with(proof, releases);
    // Without the code (the published MAC, or a guess, as the proof): refused, even from
    // an API session of the account.
    let published: [u8; 32] = mac.clone().try_into().unwrap();
    assert!(matches!(
        approve_with(published, vec![]),
        Err(ApiError::Forbidden(_))
    ));
    assert!(matches!(
        approve_with([0; 32], vec![]),
        Err(ApiError::Forbidden(_))
    ));
    assert_eq!(svc.web_session(&tok).unwrap().approval, Approval::Waiting);
    // A key version far from the manifest's (2): refused.
    let mut far = item(1, &s.id);
    far.version = 40;
    assert!(matches!(approve(vec![far]), Err(ApiError::BadRequest(_))));
    // Health and Mail are never released; a standard category needs no release; nothing
    // is approved by a refused request.
    assert!(matches!(
        approve(vec![item(2, &s.id)]),
        Err(ApiError::Forbidden(_))
    ));
    assert!(matches!(
        approve(vec![item(3, &s.id)]),
        Err(ApiError::Forbidden(_))
    ));
    assert!(matches!(
        approve(vec![item(4, &s.id)]),
        Err(ApiError::BadRequest(_))
    ));
    // A refused key among good ones: none is stored.
    assert!(matches!(
        approve(vec![item(1, &s.id), item(2, &s.id)]),
        Err(ApiError::Forbidden(_))
    ));
    assert!(svc.web_released("alice", &s.id, 1, 2).unwrap().is_none());
    assert!(matches!(
        approve(vec![item(9, &s.id)]),
        Err(ApiError::BadRequest(_))
    ));
    assert_eq!(svc.web_session(&tok).unwrap().approval, Approval::Waiting);
    approve(vec![item(1, &s.id)]).unwrap();
    assert_eq!(svc.web_session(&tok).unwrap().approval, Approval::Approved);
    let got = svc.web_released("alice", &s.id, 1, 2).unwrap().unwrap();
    assert_eq!(got.expose(), key.expose());
    // Another version, another category, another account: nothing.
    assert!(svc.web_released("alice", &s.id, 1, 1).unwrap().is_none());
    assert!(svc.web_released("alice", &s.id, 2, 2).unwrap().is_none());
    assert!(svc.web_released("bob", &s.id, 1, 2).unwrap().is_none());
    // A second session gets nothing of the first's releases.
    let tok2 = svc
        .web_sign_in(ip, "alice", PASSWORD, &code(1), "t")
        .unwrap();
    let s2 = svc.web_session(&tok2).unwrap();
    assert_eq!(s2.approval, Approval::Waiting);
    assert!(svc.web_released("alice", &s2.id, 1, 2).unwrap().is_none());
    // Expired: dropped, though the sign-in stays approved.
    std::thread::sleep(Duration::from_millis(700));
    assert!(svc.web_released("alice", &s.id, 1, 2).unwrap().is_none());
    assert_eq!(svc.web_session(&tok).unwrap().approval, Approval::Approved);
    // Released again, then signed out: the secret goes, nothing opens.
    approve(vec![item(1, &s.id)]).unwrap();
    assert!(svc.web_released("alice", &s.id, 1, 2).unwrap().is_some());
    svc.web_sign_out(&tok).unwrap();
    assert!(svc.web_released("alice", &s.id, 1, 2).unwrap().is_none());
    assert!(svc.web_sign_in_code(&s.id).is_none());
    // The database keeps no release of an ended session.
    let left = svc.read(|tx| Ok(tx.web_releases(&s.id, 0)?)).unwrap();
    assert!(left.is_empty());
}
