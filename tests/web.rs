//! The web front (issue 12, step a) in a real browser: Debian's chromium, driven by the
//! Python scenarios of `tests/web/` through Playwright, against a real `cirrus serve
//! --web-listen` and a real mounted device whose store is on SeaweedFS
//! (tests/common/web.rs). One test runs the scenarios in turn on one server and device
//! (one setup per binary keeps CI time down): sign-in (a wrong TOTP code refused),
//! browsing, the 50 MiB download and a Range request, hostile names, a second account
//! whose files the first never reads (crafted paths included), everything again with
//! JavaScript off, CSRF and sign-out. Screenshots of every main page are kept in
//! `<target>/web-test-output/step_a/` for a person to look at.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::accounts::with_pw;
use common::web::{WebDrive, assert_png, output_dir};
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The big file: downloaded whole through the browser, and read by ranges.
const BIG: usize = 50 << 20;
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const TEXT: &str = "alpha: plain text, previewed inline\n";
/// How long the server keeps a key released to a web session (`--release-ttl`): long
/// enough for the scenario to read the released category, short enough to wait out.
const RELEASE_TTL: u64 = 12;
/// A file of Photos, read on the web once a device released Photos under ADP.
const PHOTO: &str = "a photo of the end-to-end kind: only a released key opens it\n";
/// The file the web deletes: the device finds it in Recently Deleted.
const OLD_DRAFT: &str = "an old draft, deleted on the web, kept in Recently Deleted\n";
/// The files the web renames, and moves into the folder it makes.
const RENAMED: &str = "renamed on the web, same bytes on the device\n";
const MOVED: &str = "moved on the web into a folder made there\n";
/// The second account's file, which the first account's session must never read.
const BOB_SECRET: &str = "bob's file: never on alice's pages";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `secs` seconds after the epoch, as a file time.
fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Writes the drive the scenarios browse through the device's mount, and describes it
/// for them (the spec; see tests/web/browse.py): Notes/docs with three files of distinct
/// names, sizes and times (so each sort order differs), a subfolder, a file named like
/// markup, an HTML file; a search term found in two folders. Returns the spec and the
/// big file's bytes.
fn write_fixture(w: &WebDrive) -> (Value, Vec<u8>) {
    let notes = w.drive.notes();
    let docs = notes.join("docs");
    fs::create_dir_all(docs.join("inner")).unwrap();
    let big = pseudo_random(BIG, 12);
    fs::write(docs.join("alpha.txt"), TEXT).unwrap();
    fs::write(docs.join("charlie.txt"), "charlie ".repeat(500)).unwrap();
    fs::write(docs.join("big.bin"), &big).unwrap();
    fs::write(docs.join(HOSTILE), b"a name that is markup").unwrap();
    fs::write(
        docs.join("page.html"),
        "<script>alert('served as a page')</script>",
    )
    .unwrap();
    fs::write(docs.join("inner/deep-note.txt"), b"found by the search").unwrap();
    fs::write(notes.join("Deep Thoughts.md"), b"found from anywhere").unwrap();
    fs::create_dir_all(notes.join("from-web")).unwrap();
    fs::write(notes.join("from-web/old-draft.txt"), OLD_DRAFT).unwrap();
    fs::write(notes.join("from-web/rename-me.txt"), RENAMED).unwrap();
    fs::write(notes.join("from-web/move-me.txt"), MOVED).unwrap();
    // Modified: big 2020, alpha 2021, charlie 2022 (name, size and time orders differ).
    for (name, t) in [
        ("big.bin", 1_577_934_240),     // 2020-01-02 03:04 UTC
        ("alpha.txt", 1_614_834_360),   // 2021-03-04 05:06 UTC
        ("charlie.txt", 1_657_264_080), // 2022-07-08 07:08 UTC
    ] {
        let f = fs::File::options()
            .write(true)
            .open(docs.join(name))
            .unwrap();
        f.set_modified(at(t)).unwrap();
    }
    let start = (3 << 20) - 1000;
    let end = start + (1 << 20) + 1999;
    let spec = json!({
        "categories": {
            "Notes": {"state": "available", "class": "standard"},
            "Drive": {"state": "available", "class": "standard"},
            "Mail": {"state": "available", "class": "transit"},
            "Health": {"state": "locked", "class": "e2e"},
            "Backup": {"state": "unavailable", "class": "standard"},
            "Maps": {"state": "unavailable", "class": "e2e"},
        },
        "category": "Notes",
        "folder": "docs",
        "subfolder": "docs/inner",
        "entries": {
            "alpha.txt": "file", "big.bin": "file", "charlie.txt": "file",
            "inner": "dir", HOSTILE: "file", "page.html": "file",
        },
        "modified": {"alpha.txt": "2021-03-04 05:06", "big.bin": "2020-01-02 03:04"},
        "sorted": {
            "name": ["alpha.txt", "big.bin", "charlie.txt"],
            "size": ["alpha.txt", "charlie.txt", "big.bin"],
            "modified": ["big.bin", "alpha.txt", "charlie.txt"],
        },
        "search": {"q": "DEEP", "hits": ["deep-note.txt", "Deep Thoughts.md"],
                   "misses": ["alpha.txt", "charlie.txt"]},
        "big": {"path": "docs/big.bin", "size": BIG, "sha256": sha256_hex(&big)},
        "range": {"start": start, "end": end, "sha256": sha256_hex(&big[start..=end])},
        "text": {"path": "docs/alpha.txt", "content": TEXT},
        "hostile": {"path": format!("docs/{HOSTILE}")},
        "html": {"path": "docs/page.html"},
        "other": {"category": "Notes", "folder": "bob-only", "file": "bob-only/secret.txt",
                  "content": BOB_SECRET},
        "write": {"folder": "from-web", "new_folder": "Made on the web",
                  "victim": "old-draft.txt", "e2e_category": "Health",
                  "rename": {"from": "rename-me.txt", "to": "renamed on the web.txt",
                             "content": RENAMED},
                  "move": {"name": "move-me.txt", "folder": "/from-web/Made on the web",
                           "content": MOVED},
                  "uploads": {"hello from the web.txt": 2000, "scan.bin": (3 << 20) + 17},
                  "dropped": {"name": "dropped on the page.txt",
                              "content": "dropped on the folder's page\n"}},
    });
    (spec, big)
}

/// Every screenshot a scenario listed is a PNG in `out`.
fn check_screenshots(j: &Value, out: &Path) {
    let shots = j["screenshots"].as_array().expect("screenshots");
    assert!(!shots.is_empty(), "{j}");
    for s in shots {
        let p = Path::new(s.as_str().unwrap());
        assert!(p.starts_with(out), "{}", p.display());
        assert_png(p);
    }
}

#[test]
fn step_a_sign_in_browse_download_in_a_real_browser() {
    let mut w = WebDrive::start(&["--release-ttl", &RELEASE_TTL.to_string()]);
    let out = output_dir("step_a");
    let (spec, big) = write_fixture(&w);
    w.sync();
    let spec_file = out.join("spec.json");
    fs::write(&spec_file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let sp = ["--spec", spec_file.to_str().unwrap()];

    let code = w.codes.take();
    let wrong = w.wrong_code();
    let j = w.scenario("signin", &out, &["--totp", &code, "--wrong-totp", &wrong]);
    assert_eq!(j["cookie"]["name"], "__Host-cirrus", "{j}");
    assert_eq!(j["cookie"]["httpOnly"], true, "{j}");
    check_screenshots(&j, &out);

    let j = w.scenario("browse", &out, &sp);
    assert_eq!(j["categories"]["Health"]["state"], "locked", "{j}");
    check_screenshots(&j, &out);

    let j = w.scenario("download", &out, &sp);
    // The bytes the browser saved are the ones written through the mount (BLAKE3 of
    // each, besides the script's SHA-256 against the spec).
    let saved = Path::new(j["download"]["path"].as_str().unwrap()).to_path_buf();
    assert_eq!(j["download"]["size"], BIG, "{j}");
    assert_eq!(file_hash(&saved), hash(&big));
    assert_eq!(
        file_hash(&saved),
        file_hash(&w.drive.notes().join("docs/big.bin"))
    );
    fs::remove_file(&saved).unwrap();
    assert_eq!(j["range"]["status"], 206, "{j}");
    assert_eq!(j["range"]["past_end"], 416, "{j}");
    check_screenshots(&j, &out);

    let j = w.scenario("hostile", &out, &sp);
    assert!(
        j["hostile"]["content_disposition"]
            .as_str()
            .unwrap()
            .starts_with("attachment"),
        "{j}"
    );
    check_screenshots(&j, &out);

    // A second account on the same server: neither session reads the other's files, and
    // crafted paths reach nothing.
    let mut bob = w.add_account("bob");
    fs::create_dir_all(bob.drive.notes().join("bob-only")).unwrap();
    fs::write(bob.drive.notes().join("bob-only/secret.txt"), BOB_SECRET).unwrap();
    bob.sync();
    let code = bob.codes.take();
    let j = w.scenario_as(
        &bob,
        "isolation",
        &out,
        &[&sp[..], &["--totp", &code]].concat(),
    );
    assert!(
        j["crafted"].as_object().is_some_and(|m| m.len() >= 10),
        "{j}"
    );
    check_screenshots(&j, &out);

    // JavaScript off: a browser of its own, signed in with a code of its own.
    let code = w.codes.take();
    let j = w.scenario("nojs", &out, &[&sp[..], &["--totp", &code]].concat());
    assert_eq!(j["download"]["sha256"], spec["big"]["sha256"], "{j}");
    check_screenshots(&j, &out);

    web_changes_reach_the_device(&w, &out, &sp);

    // Last: it ends the first session.
    let j = w.scenario("signout", &out, &sp);
    assert_eq!(j["refused"]["no csrf"], 403, "{j}");
    check_screenshots(&j, &out);

    // A screenshot of each main page, for a person to look at.
    for page in ["signin", "categories", "folder", "file"] {
        assert_png(&out.join(format!("{page}.png")));
    }

    // A new sign-in for the devices to see and end.
    let code = w.codes.take();
    let wrong = w.wrong_code();
    w.scenario("signin", &out, &["--totp", &code, "--wrong-totp", &wrong]);
    devices_see_and_end_web_access(&mut w);
    adp_sign_ins_wait_for_a_device(&mut w, &out);
}

/// Step (c): uploads, a new folder, a rename, a move and a delete made in the browser
/// wait, sealed, in the store; the mounted device's next `cirrus sync` takes them in: the
/// uploaded bytes, the folder, the renamed and moved files, and the deleted file in
/// Recently Deleted, nothing lost. Once its head is in the
/// store, the next sync empties the inbox.
fn web_changes_reach_the_device(w: &WebDrive, out: &Path, sp: &[&str]) {
    let j = w.scenario("write", out, sp);
    check_screenshots(&j, out);
    let dir = w.drive.notes().join("from-web");
    w.sync();
    for (name, u) in j["uploaded"].as_object().unwrap() {
        let got = fs::read(dir.join(name)).unwrap();
        assert_eq!(sha256_hex(&got), u["sha256"].as_str().unwrap(), "{name}");
    }
    assert!(dir.join("Made on the web").is_dir());
    assert_eq!(
        fs::read_to_string(dir.join("renamed on the web.txt")).unwrap(),
        RENAMED
    );
    assert_eq!(
        fs::read_to_string(dir.join("Made on the web/move-me.txt")).unwrap(),
        MOVED
    );
    // The kernel may still hold the old entries for the attribute timeout.
    for gone in ["old-draft.txt", "rename-me.txt", "move-me.txt"] {
        let p = dir.join(gone);
        eventually(
            &format!("{gone} leaves its folder"),
            Duration::from_secs(5),
            || !p.exists(),
        );
    }
    let kept = w.drive.notes().join("Recently Deleted/old-draft.txt");
    assert_eq!(fs::read_to_string(kept).unwrap(), OLD_DRAFT);
    // The mark that lets devices empty it after 30 days (a user's own folder of that
    // name has none).
    let mark = common::get_xattr(
        &w.drive.notes().join("Recently Deleted"),
        "user.cirrus.recently-deleted",
    )
    .unwrap();
    assert_eq!(mark, b"kept 30 days");
    w.sync();
    let store = w.sw.store(&format!("web-{}", common::web::ACCOUNT));
    let left = cirrus::store::Store::list(&store, "web/").unwrap();
    assert!(
        left.is_empty(),
        "applied changes left in the inbox: {left:?}"
    );
}

/// Step (b): web access turned on again under ADP. A sign-in waits on the approval page;
/// the device approves it with the page's code, refusing Health and releasing Photos;
/// the browser reads Photos until the release expires; the device's next `cirrus sync`
/// rotates Photos.
fn adp_sign_ins_wait_for_a_device(w: &mut WebDrive, dir: &Path) {
    let cmd = |args: &[&str]| out(with_pw(&w.drive, &w.password_file, args));
    // Under ADP, Photos is end-to-end: the server has no key of it.
    let photos = w.drive.category_path("Photos");
    fs::write(photos.join("beach.txt"), PHOTO).unwrap();
    w.sync();
    let code = w.codes.take();
    let (ok, t) = cmd(&[
        "web",
        "on",
        "--store",
        &w.store_url,
        "--web-password-file",
        w.web_password_file.to_str().unwrap(),
        "--totp",
        &code,
    ]);
    assert!(ok, "{t}");
    assert!(
        t.contains("each web sign-in waits until a trusted device approves it"),
        "{t}"
    );

    let spec = json!({
        "photo": {"path": "beach.txt", "content": PHOTO},
        "approved": {"Photos": "available", "Mail": "available", "Health": "locked",
                     "Notes": "locked"},
    });
    let spec_file = dir.join("adp-spec.json");
    fs::write(&spec_file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let code_file = dir.join("adp-code");
    let go_file = dir.join("adp-go");
    let totp = w.codes.take();
    let mut args = w.script_args(dir);
    args.extend(
        [
            "--spec",
            spec_file.to_str().unwrap(),
            "--totp",
            &totp,
            "--code-file",
            code_file.to_str().unwrap(),
            "--go-file",
            go_file.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let out_dir = dir.to_path_buf();
    // The browser waits on the approval page while this thread approves on the device.
    let browser = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::web::run_script("adp", &args, &[], &out_dir)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let shown = loop {
        if let Ok(c) = fs::read_to_string(&code_file) {
            break c.trim().to_string();
        }
        assert!(
            !browser.is_finished() && std::time::Instant::now() < deadline,
            "the sign-in page showed no code: {:?}",
            browser.is_finished().then(|| browser.join())
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The device lists the sign-in as waiting.
    let (ok, t) = cmd(&["web", "sessions"]);
    assert!(ok && t.contains("(waiting for approval)"), "{t}");
    // A wrong code matches no sign-in; Health is never released; nothing is approved.
    let (ok, t) = cmd(&[
        "web",
        "approve",
        "AAAA-BBBB-CCCC-DDDD",
        "--category",
        "Photos",
    ]);
    assert!(
        !ok && t.contains("no web sign-in waits with this code"),
        "{t}"
    );
    let (ok, t) = cmd(&["web", "approve", &shown, "--category", "Photos,Health"]);
    assert!(
        !ok && t.contains("Health is never released to the web"),
        "{t}"
    );
    let (ok, t) = cmd(&["web", "sessions"]);
    assert!(ok && t.contains("(waiting for approval)"), "{t}");
    // The right code, Photos: approved and released.
    let (ok, t) = cmd(&["web", "approve", &shown, "--category", "Photos"]);
    assert!(ok, "{t}");
    assert!(t.contains("Approving web sign-in"), "{t}");
    let released_version: u64 = t
        .split("Released Photos (key version ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no released key version in:\n{t}"));
    fs::write(&go_file, b"go").unwrap();
    let j = browser.join().unwrap();
    assert_eq!(j["approved"]["Photos"], "available", "{j}");
    assert_eq!(j["expired"]["Photos"], "locked", "{j}");
    check_screenshots(&j, dir);
    assert_png(&dir.join("approve.png"));

    // The release is over: the mounted device rotates Photos by itself (its watcher, at
    // the poll interval, through the daemon), with no command run.
    let version = |w: &WebDrive| {
        common::status::category(&common::status::status_json(&w.drive), "Photos")["key_version"]
            .as_u64()
            .unwrap()
    };
    let t = "(no command was run)";
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while version(w) < released_version + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "Photos was not rotated after its release ended {t}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !w.drive.home.join("device/web-releases.json").exists()
            || fs::read_to_string(w.drive.home.join("device/web-releases.json"))
                .unwrap()
                .trim()
                == "[]",
        "the record still owes a rotation"
    );
    // Nothing is owed any more: a sync rotates nothing.
    let mut sync = w.drive.cirrus_cmd();
    sync.args(["sync", "--wait"]);
    let (ok, t) = out(sync);
    assert!(ok && !t.contains("rotating the keys released"), "{t}");
    assert_eq!(fs::read_to_string(photos.join("beach.txt")).unwrap(), PHOTO);
}

/// The trusted device's side: the web sign-ins are notices in `account status`, `web
/// sessions` lists the open ones and `web revoke --all` ends them, and `adp on` turns web
/// access off.
fn devices_see_and_end_web_access(w: &mut WebDrive) {
    let cmd = |args: &[&str]| out(with_pw(&w.drive, &w.password_file, args));
    let (ok, t) = cmd(&["account", "status"]);
    assert!(ok, "{t}");
    assert!(t.contains("signed in to the web front"), "{t}");
    assert!(t.contains("web access: on"), "{t}");
    let (ok, t) = cmd(&["web", "status", "--json"]);
    assert!(ok, "{t}");
    let st: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(st["enabled"], true, "{t}");
    assert_eq!(st["store"], w.store_url.as_str(), "{t}");
    let (ok, t) = cmd(&["web", "sessions", "--json"]);
    assert!(ok, "{t}");
    let open: Vec<Value> = serde_json::from_str(&t).unwrap();
    assert!(!open.is_empty(), "{t}");
    assert!(open.iter().all(|s| s["from"] == "127.0.0.1"), "{t}");
    let (ok, t) = cmd(&["web", "revoke", "--all"]);
    assert!(ok, "{t}");
    assert!(
        t.contains(&format!("{} web session(s) ended", open.len())),
        "{t}"
    );
    let (ok, t) = cmd(&["web", "sessions", "--json"]);
    assert!(ok, "{t}");
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&t).unwrap().len(),
        0,
        "{t}"
    );

    // ADP on: web access goes off (the device ends it; the web front would refuse the
    // account's ADP manifest anyway).
    let code = w.codes.take();
    common::accounts::create_recovery_key(&w.drive, &w.password_file, &code);
    let (ok, t) = cmd(&["adp", "on"]);
    assert!(ok, "{t}");
    let (ok, t) = cmd(&["web", "status", "--json"]);
    assert!(ok, "{t}");
    let st: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(st["enabled"], false, "{t}");
}
