//! Trusted devices and the recovery key, through the real command line and real mounts:
//! a second device joins with an approval code and reads both standard and end-to-end
//! data; a substituted join request is not approvable; the recovery key brings the
//! end-to-end data back on a new device, and a new recovery key revokes the old one.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;
use std::process::{Child, Command};
use std::time::Duration;

fn store_url(d: &Drive) -> String {
    format!("file://{}", d.home.join("store").display())
}

fn cmd_ok(mut c: Command) -> String {
    let o = c.output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{c:?} failed:\n{t}");
    t
}

fn cmd_fails(mut c: Command) -> String {
    let o = c.output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{c:?} should fail:\n{t}");
    t
}

fn new_device_args(c: &mut Command, d: &Drive, store: &str, name: &str) {
    c.args(["--store", store, "--device-name", name])
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .args(["--kdf-memory", "8192", "--kdf-time", "1"]);
}

fn wait_child(mut child: Child) -> String {
    for _ in 0..600 {
        if let Some(st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            let t = text(&o);
            assert!(st.success(), "device add failed:\n{t}");
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("device add did not finish");
}

#[test]
fn a_second_device_joins_with_the_approval_code_and_reads_everything() {
    let mut a = Drive::mount();
    fs::write(a.notes().join("standard.txt"), b"standard data").unwrap();
    fs::write(a.health().join("e2e.txt"), b"end-to-end data").unwrap();
    a.unmount();

    let mut b = Drive::blank();
    let (child, code) = start_join(&b, &a, &[]);
    // A wrong code approves nothing.
    let wrong = if code.starts_with('0') {
        "1111-1111-1111-1111"
    } else {
        "0000-0000-0000-0000"
    };
    let t = cmd_fails(approve(&a, wrong));
    assert!(t.contains("no waiting device shows this code"), "{t}");
    let t = cmd_ok(approve(&a, &code));
    assert!(t.contains("Approved device phone"), "{t}");
    let t = wait_child(child);
    assert!(t.contains("now belongs to the account"), "{t}");

    let mut list = a.cirrus_cmd();
    list.args(["device", "list", "--passcode-file"])
        .arg(&a.passcode_file);
    let t = cmd_ok(list);
    assert!(t.contains("phone") && t.contains("trusted"), "{t}");
    assert!(t.contains("(this device)"), "{t}");

    // The new device has no key service of its own: the standard keys came with the
    // approval, sealed to it.
    assert!(!b.home.join("keyservice").exists());
    b.mount_again();
    assert_eq!(
        fs::read(b.notes().join("standard.txt")).unwrap(),
        b"standard data"
    );
    assert_eq!(
        fs::read(b.health().join("e2e.txt")).unwrap(),
        b"end-to-end data"
    );
    fs::write(b.notes().join("from-b.txt"), b"written on b").unwrap();
    b.unmount();
    // B's head is signed by B, which A trusts through the signed device list.
    a.mount_again();
    assert_eq!(
        fs::read(a.notes().join("from-b.txt")).unwrap(),
        b"written on b"
    );
}

#[test]
fn a_join_request_replaced_by_the_server_cannot_be_approved() {
    use cirrus::format::manifest::{JOIN_SIGN_DOMAIN, JoinRequest};
    use cirrus::keys::device::DeviceIdentity;
    let mut a = Drive::mount();
    a.unmount();
    let b = Drive::blank();
    let (mut child, code) = start_join(&b, &a, &[]);
    // The server swaps the request for one carrying its own keys (validly self-signed).
    let reqs = a.home.join("store/account/requests");
    let entries: Vec<_> = fs::read_dir(&reqs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let evil = DeviceIdentity::generate().unwrap();
    let pk = evil.public();
    // It cannot make the MAC under the code (it never saw it): it reuses the real one.
    let real = JoinRequest::decode(&fs::read(&entries[0]).unwrap()).unwrap();
    let part = JoinRequest::signed_part("phone", &pk.sign, &pk.kx, 1);
    let req = JoinRequest {
        name: "phone".into(),
        sign: pk.sign,
        kx: pk.kx,
        features: 1,
        tag: real.tag,
        sig: evil.sign(JOIN_SIGN_DOMAIN, &part),
    };
    fs::write(&entries[0], req.encode()).unwrap();
    let t = cmd_fails(approve(&a, &code));
    assert!(t.contains("no waiting device shows this code"), "{t}");
    let _ = child.kill();
    let _ = child.wait();
    // Nothing was granted to the server's key.
    let grants = a.home.join("store/account/grants");
    let n: usize = fs::read_dir(&grants)
        .unwrap()
        .map(|v| fs::read_dir(v.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(n, 1, "only the first device holds the account key");
}

#[test]
fn a_new_device_refuses_an_approval_the_server_made_up() {
    use cirrus::format::manifest::Approval;
    let mut a = Drive::mount();
    a.unmount();
    let b = Drive::blank();
    let (child, _code) = start_join(&b, &a, &[]);
    // The server answers the request itself: an approval naming the current manifest
    // (signed by the real device) with a MAC it had to guess.
    let reqs = a.home.join("store/account/requests");
    let req = fs::read_dir(&reqs).unwrap().next().unwrap().unwrap().path();
    let holder = req.file_name().unwrap().to_string_lossy().to_string();
    let mans: Vec<_> = fs::read_dir(a.home.join("store/account/manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let counter = mans
        .iter()
        .map(|n| u64::from_str_radix(n, 16).unwrap())
        .max()
        .unwrap();
    let sm = cirrus::format::manifest::SignedManifest::decode(
        &fs::read(a.home.join("store/account/manifest")).unwrap(),
    )
    .unwrap();
    let fake = Approval {
        counter,
        approver: sm.signer,
        mac: [7; 32],
    };
    let dir = a.home.join("store/account/approvals");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&holder), fake.encode()).unwrap();
    let mut child = child;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert!(!st.success(), "{t}");
    assert!(t.contains("not made by a device that saw"), "{t}");
    assert!(!b.home.join("config.toml").exists());
}

fn create_recovery_key(a: &Drive) -> String {
    let mut c = a.cirrus_cmd();
    c.args(["recovery-key", "create", "--passcode-file"])
        .arg(&a.passcode_file);
    let t = cmd_ok(c);
    let code = t
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 34 && l.matches('-').count() == 6)
        .unwrap_or_else(|| panic!("no recovery key in:\n{t}"))
        .to_string();
    assert!(t.contains("shown only now"), "{t}");
    code
}

fn recover(c: &Drive, a: &Drive, key: &str) -> Command {
    let f = c.root.join("rk");
    fs::write(&f, key).unwrap();
    let mut cmd = c.cirrus_cmd();
    cmd.arg("recover").arg("--recovery-key-file").arg(&f);
    new_device_args(&mut cmd, c, &store_url(a), "new laptop");
    cmd
}

#[test]
fn the_recovery_key_restores_end_to_end_data_on_a_new_device_and_a_new_one_revokes_it() {
    let mut a = Drive::mount();
    fs::write(a.health().join("steps.txt"), b"10432 steps").unwrap();
    a.unmount();
    let first = create_recovery_key(&a);
    let second = create_recovery_key(&a);
    assert_ne!(first, second);

    // The first key was revoked by the second.
    let c1 = Drive::blank();
    let t = cmd_fails(recover(&c1, &a, &first));
    assert!(t.contains("wrong recovery key"), "{t}");
    // A typo is caught by the checksum before anything is tried.
    let mut typo = second.clone().into_bytes();
    typo[3] = if typo[3] == b'A' { b'B' } else { b'A' };
    let c2 = Drive::blank();
    let t = cmd_fails(recover(&c2, &a, std::str::from_utf8(&typo).unwrap()));
    assert!(t.contains("recover:"), "{t}");
    assert!(!c2.home.join("config.toml").exists());

    let mut c = Drive::blank();
    let t = cmd_ok(recover(&c, &a, &second));
    assert!(t.contains("Recovered"), "{t}");
    // Standard keys live with the (embedded, lost) key service: said plainly.
    assert!(
        t.contains("Not recoverable on this device") && t.contains("Notes"),
        "{t}"
    );
    c.mount_again();
    assert_eq!(
        fs::read(c.health().join("steps.txt")).unwrap(),
        b"10432 steps"
    );
    c.unmount();
    // The original device trusts the recovered one (it signed nothing A does not know).
    let mut list = a.cirrus_cmd();
    list.args(["device", "list", "--passcode-file"])
        .arg(&a.passcode_file);
    let t = cmd_ok(list);
    assert!(t.contains("new laptop"), "{t}");
}

#[test]
fn the_passcode_can_be_changed_and_the_old_one_stops_working() {
    let mut a = Drive::mount();
    fs::write(a.health().join("h.txt"), b"kept").unwrap();
    a.unmount();
    let newp = a.root.join("new-passcode");
    fs::write(&newp, "a much better passcode\n").unwrap();
    let mut c = a.cirrus_cmd();
    c.args(["passcode", "change", "--passcode-file"])
        .arg(&a.passcode_file)
        .arg("--new-passcode-file")
        .arg(&newp);
    let t = cmd_ok(c);
    assert!(t.contains("Passcode changed"), "{t}");
    // The old passcode is refused, the new one unlocks.
    let mut old = a.cirrus_cmd();
    old.args(["status", "--passcode-file"])
        .arg(&a.passcode_file);
    let t = cmd_fails(old);
    assert!(t.contains("wrong passcode"), "{t}");
    fs::copy(&newp, &a.passcode_file).unwrap();
    a.mount_again();
    assert_eq!(fs::read(a.health().join("h.txt")).unwrap(), b"kept");
    // No staged files are left behind.
    for f in fs::read_dir(a.home.join("device")).unwrap() {
        let n = f.unwrap().file_name();
        assert!(!n.to_string_lossy().ends_with(".new"), "{n:?}");
    }
}
