//! Two trusted devices of one account, each with its own home and mount, against one
//! real SeaweedFS: changes travel both ways (on `cirrus sync` and by polling), edits of
//! different files merge, an edit of one file on both makes one winner plus a named
//! conflict copy, deletes and renames propagate, delete vs edit keeps the edit, and a
//! store that rolls a head back is refused while the device keeps its own state.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::store::Store;
use common::seaweed::Seaweed;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const MOUNT_ARGS: &[&str] = &["--poll-interval", "2", "--commit-interval", "1"];

fn ok(d: &Drive, args: &[&str]) -> String {
    let o = d.cirrus_cmd().args(args).output().unwrap();
    assert!(o.status.success(), "cirrus {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn pass(d: &Drive) -> String {
    d.passcode_file.to_str().unwrap().to_string()
}

/// Device A (laptop) with an account on `s3://BUCKET/<prefix>`, and device B (phone)
/// joined to it and approved by A; both unmounted.
fn two_devices(sw: &Seaweed, prefix: &str) -> (Drive, Drive) {
    two_devices_with(sw, prefix, &[])
}

/// [`two_devices`], with `server` (key service arguments) given to `init` and `device add`.
fn two_devices_with(sw: &Seaweed, prefix: &str, server: &[&str]) -> (Drive, Drive) {
    two_devices_mounting(sw, prefix, server, MOUNT_ARGS)
}

/// [`two_devices_with`], both mounting with `mount_args`.
fn two_devices_mounting(
    sw: &Seaweed,
    prefix: &str,
    server: &[&str],
    mount_args: &[&str],
) -> (Drive, Drive) {
    let mut init = vec!["--device-name", "laptop"];
    init.extend_from_slice(server);
    let a = sw.drive(prefix, mount_args, &init);
    let b = sw.blank_drive(mount_args);
    let (child, code) = start_join_at(&b, &sw.url(prefix), server);
    let (joined, t) = approve_and_finish(&a, child, &code);
    assert!(joined, "device add failed:\n{t}");
    (a, b)
}

fn sync(d: &Drive) -> String {
    ok(d, &["sync", "--wait"])
}

/// `cirrus sync --wait` on both devices at the same moment: whichever head loses the race
/// to the store must merge and send again.
fn sync_both_at_once(a: &Drive, b: &Drive) {
    std::thread::scope(|s| {
        s.spawn(|| sync(a));
        sync(b);
    });
}

/// Relative path → content (None for directories) of everything under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn same_tree(a: &Drive, b: &Drive) -> bool {
    snapshot(&a.notes()) == snapshot(&b.notes())
}

#[test]
fn two_devices_exchange_and_merge_changes() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "two");
    a.mount_again();
    fs::write(a.notes().join("hello.txt"), b"hello from the laptop").unwrap();
    fs::write(a.notes().join("shared.txt"), b"v0").unwrap();
    fs::write(a.notes().join("x.txt"), b"x v0").unwrap();
    sync(&a);
    b.mount_again();
    assert_eq!(
        fs::read(b.notes().join("hello.txt")).unwrap(),
        b"hello from the laptop"
    );

    // A file written on A appears on B at once with `cirrus sync`...
    fs::write(a.notes().join("from-a.txt"), b"pushed").unwrap();
    sync(&a);
    let sy = status::sync_json(&b);
    assert_eq!(sy["complete"], true, "{sy:#}");
    eventually("from-a.txt on B", Duration::from_secs(5), || {
        fs::read(b.notes().join("from-a.txt")).ok().as_deref() == Some(&b"pushed"[..])
    });
    // ... and by itself within the poll interval.
    fs::write(a.notes().join("polled.txt"), b"found by polling").unwrap();
    sync(&a);
    eventually("polled.txt on B", Duration::from_secs(15), || {
        fs::read(b.notes().join("polled.txt")).is_ok()
    });

    // Concurrent edits: one file on both (either may publish first: both upload in the
    // background), and a different file each.
    fs::write(a.notes().join("shared.txt"), b"edited on the laptop").unwrap();
    fs::write(a.notes().join("only-a.txt"), b"a's own").unwrap();
    fs::write(b.notes().join("shared.txt"), b"edited on the phone").unwrap();
    fs::write(b.notes().join("only-b.txt"), b"b's own").unwrap();
    // Delete vs edit: A deletes x.txt, B edits it.
    fs::remove_file(a.notes().join("x.txt")).unwrap();
    fs::write(b.notes().join("x.txt"), b"x edited on the phone").unwrap();
    sync(&a);
    sync(&b);
    sync(&a);
    eventually("both trees equal", Duration::from_secs(10), || {
        same_tree(&a, &b)
    });
    let tree = snapshot(&a.notes());
    one_winner_and_a_copy(
        &tree,
        ("shared", ".txt"),
        b"edited on the laptop",
        b"edited on the phone",
    );
    assert_eq!(tree.get("only-a.txt"), Some(&Some(b"a's own".to_vec())));
    assert_eq!(tree.get("only-b.txt"), Some(&Some(b"b's own".to_vec())));
    assert_eq!(
        tree.get("x.txt"),
        Some(&Some(b"x edited on the phone".to_vec())),
        "the edit survives the delete: {tree:?}"
    );

    // Deletes and renames propagate.
    fs::remove_file(a.notes().join("hello.txt")).unwrap();
    fs::rename(b.notes().join("from-a.txt"), b.notes().join("renamed.txt")).unwrap();
    fs::create_dir(b.notes().join("dir")).unwrap();
    fs::write(b.notes().join("dir/deep.txt"), b"deep").unwrap();
    // Both at once: the one whose head loses the race to the store merges and sends
    // again, and `sync --wait` still ends with everything in the store.
    sync_both_at_once(&a, &b);
    sync(&a);
    eventually("both trees equal again", Duration::from_secs(10), || {
        same_tree(&a, &b)
    });
    let tree = snapshot(&b.notes());
    assert!(!tree.contains_key("hello.txt"), "{tree:?}");
    assert!(!tree.contains_key("from-a.txt"), "{tree:?}");
    assert_eq!(tree.get("renamed.txt"), Some(&Some(b"pushed".to_vec())));
    assert_eq!(tree.get("dir/deep.txt"), Some(&Some(b"deep".to_vec())));

    // Both unmount cleanly; a remount of each shows the same tree.
    a.unmount();
    b.unmount();
    a.mount_again();
    b.mount_again();
    assert!(same_tree(&a, &b));
    assert_eq!(snapshot(&a.notes()), tree);
}

#[test]
fn a_rolled_back_head_is_refused_and_the_device_keeps_its_state() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "rb");
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("one.txt"), b"first").unwrap();
    sync(&a);
    sync(&b);
    let s = sw.store("rb");
    let old: Vec<(String, Vec<u8>)> = s
        .list("heads/")
        .unwrap()
        .into_iter()
        .map(|n| {
            let d = s.get(&n).unwrap();
            (n, d)
        })
        .collect();
    fs::write(a.notes().join("two.txt"), b"second").unwrap();
    sync(&a);
    sync(&b);
    eventually("two.txt on B", Duration::from_secs(5), || {
        b.notes().join("two.txt").exists()
    });
    // The store serves the older heads again.
    for (n, d) in &old {
        s.put(n, d).unwrap();
    }
    let mut c = b.cirrus_cmd();
    c.args(["sync", "--wait"]);
    let (ok, sy, t) = status::run_json(c);
    assert!(!ok, "{t}");
    assert!(t.contains("rollback detected"), "{t}");
    assert_eq!(
        status::pulled(&sy, "Notes").as_deref(),
        Some("failed"),
        "{sy:#}"
    );
    assert_eq!(
        status::pulled(&sy, "Photos").as_deref(),
        Some("unchanged"),
        "{sy:#}"
    );
    assert!(sy["error"].is_string() && sy["complete"] == false, "{sy:#}");
    // B keeps working on what it has.
    assert_eq!(fs::read(b.notes().join("two.txt")).unwrap(), b"second");
    // `status` reads the store through B's journal: it shows the rollback, unless B's
    // own newer head of Notes waits there to be published (seen in one CI run of two
    // test binaries at a time, cause not yet known), when it shows B's state, never the
    // rolled-back head #2.
    let st = status::status_json(&b);
    let (state, why) = status::category_state(&st, "Notes");
    let head = st["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "Notes"))
        .and_then(|c| c["head"].as_u64());
    assert!(
        (state == "unavailable" && why.contains("rollback detected"))
            || (state == "ok" && head.is_some_and(|h| h > 3)),
        "{st:#}"
    );
}

/// The file edited on both devices holds one device's version, and a conflict copy named
/// after the other device holds the other's. Which device published first depends on
/// timing (both upload in the background), so either may win.
fn one_winner_and_a_copy(
    tree: &BTreeMap<String, Option<Vec<u8>>>,
    (stem, ext): (&str, &str),
    laptop: &[u8],
    phone: &[u8],
) {
    let date = today_utc();
    let winner = tree
        .get(&format!("{stem}{ext}"))
        .cloned()
        .flatten()
        .unwrap_or_else(|| panic!("{stem}{ext} missing: {tree:?}"));
    let (loser_dev, loser) = if winner == laptop {
        ("phone", phone)
    } else {
        assert_eq!(winner, phone, "{tree:?}");
        ("laptop", laptop)
    };
    let copy = format!("{stem} (conflict from {loser_dev} {date}){ext}");
    assert_eq!(tree.get(&copy), Some(&Some(loser.to_vec())), "{tree:?}");
    let copies = tree.keys().filter(|k| k.contains("(conflict from")).count();
    assert_eq!(copies, 1, "exactly one conflict copy: {tree:?}");
}

/// Today in UTC, as conflict copies name it.
fn today_utc() -> String {
    cirrus::sync::today()
}

/// Whether key version 1 of the one category whose key went to version 2 is in the store.
fn old_key_left(s3: &dyn Store) -> bool {
    let names = s3.list("keys/").unwrap();
    let v2: Vec<&String> = names.iter().filter(|n| n.ends_with("/00000002")).collect();
    assert_eq!(v2.len(), 1, "one category rotated: {names:?}");
    let v1 = v2[0].replace("/00000002", "/00000001");
    names.contains(&v1)
}

#[test]
fn a_key_rotated_on_one_device_is_taken_in_by_the_other() {
    let mut sw = Seaweed::start();
    let s3 = sw.store("rot");
    let (mut a, mut b) = two_devices(&sw, "rot");
    a.mount_again();
    b.mount_again();
    fs::write(a.health().join("before.txt"), b"under key v1").unwrap();
    sync(&a);
    sync(&b);
    eventually("before.txt on B", Duration::from_secs(5), || {
        b.health().join("before.txt").exists()
    });
    // B writes under v1 and goes away before that edit reaches the store (its uploads
    // wait in its journal); then A rotates Health's key.
    sw.kill();
    fs::write(
        b.health().join("b-early.txt"),
        b"written on the phone under v1",
    )
    .unwrap();
    let o = b
        .cirrus_cmd()
        .args(["umount", b.mnt.to_str().unwrap(), "--no-wait"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    b.mark_unmounted();
    sw.restart();
    let t = ok(
        &a,
        &[
            "rotate",
            "--category",
            "Health",
            "--passcode-file",
            &pass(&a),
        ],
    );
    assert!(t.contains("Rotated"), "{t}");
    // B may still hold data under v1: the old key is kept until B is past it.
    assert!(
        t.contains("key version 1 is kept until phone has synced"),
        "{t}"
    );
    assert!(old_key_left(&s3));
    let st = status::status_json(&a);
    let kept = &st["store"]["old_keys_kept"];
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{st:#}");
    assert_eq!(kept[0]["category"], "Health");
    assert_eq!(kept[0]["key_version"], 1);
    assert_eq!(kept[0]["until_synced"], serde_json::json!(["phone"]));
    // The text says who holds it, and that a read-only mount there never lets it go.
    let t = ok(&a, &["status"]);
    assert!(
        t.contains("old key kept: Health key version 1, until phone has synced (a device that only mounts read-only never acknowledges"),
        "{t}"
    );
    fs::write(a.health().join("after.txt"), b"under key v2").unwrap();
    sync(&a);
    assert!(old_key_left(&s3), "destroyed before B synced");
    // B comes back: takes in the new key and tree, merges its own change (resealed
    // under v2) and says it no longer needs v1; A's next sync destroys v1.
    b.mount_again();
    sync(&b);
    sync(&a);
    eventually("after.txt on B", Duration::from_secs(10), || {
        fs::read(b.health().join("after.txt")).ok().as_deref() == Some(&b"under key v2"[..])
    });
    eventually("b-early.txt on A", Duration::from_secs(10), || {
        fs::read(a.health().join("b-early.txt")).ok().as_deref()
            == Some(&b"written on the phone under v1"[..])
    });
    fs::write(b.health().join("b-late.txt"), b"phone, after the rotation").unwrap();
    sync(&b);
    sync(&a);
    eventually("b-late.txt on A", Duration::from_secs(10), || {
        a.health().join("b-late.txt").exists()
    });
    eventually("key v1 destroyed", Duration::from_secs(10), || {
        sync(&a);
        !old_key_left(&s3)
    });
    // A fresh mount of A (key v2 only) reads everything B wrote: nothing of B's is left
    // under the destroyed key v1.
    a.unmount();
    b.unmount();
    a.mount_again();
    for (f, want) in [
        ("before.txt", &b"under key v1"[..]),
        ("b-early.txt", b"written on the phone under v1"),
        ("after.txt", b"under key v2"),
        ("b-late.txt", b"phone, after the rotation"),
    ] {
        assert_eq!(fs::read(a.health().join(f)).unwrap(), want, "{f}");
    }
    let st = ok(&a, &["fsck", "--passcode-file", &pass(&a)]);
    assert!(st.contains("no damage found"), "{st}");
}

#[test]
fn gc_with_another_device_syncing_deletes_only_what_no_head_needs() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "gc");
    a.mount_again();
    b.mount_again();
    let f = a.notes().join("rewritten.bin");
    fs::write(&f, pseudo_random(900_000, 1)).unwrap();
    sync(&a);
    let keep = pseudo_random(900_000, 2);
    fs::write(&f, &keep).unwrap();
    sync(&a);
    fs::write(b.notes().join("from-b.txt"), b"b's data").unwrap();
    sync(&b);
    sync(&a);
    a.unmount();
    // A pack in the store that no head names yet: what a device's upload looks like
    // before its head is published.
    let s = sw.store("gc");
    let orphan = b"CRPK an upload whose head is not published yet".to_vec();
    let orphan_name = cirrus::format::names::pack(blake3::hash(&orphan).as_bytes());
    s.put(&orphan_name, &orphan).unwrap();
    let t = ok(&a, &["gc", "--passcode-file", &pass(&a)]);
    assert!(
        t.contains("unreferenced and old for the grace period"),
        "{t}"
    );
    assert!(s.size(&orphan_name).is_ok(), "a young pack is kept");
    // Marked now: it goes only once B, too, has had everything published since (B's
    // journal could hold an edit naming it).
    let t = ok(&a, &["gc", "--grace", "0", "--passcode-file", &pass(&a)]);
    assert!(t.starts_with("deleted 0 "), "{t}");
    assert!(t.contains("kept until phone has synced"), "{t}");
    assert!(
        t.contains("only mounts read-only never acknowledges"),
        "{t}"
    );
    assert!(s.size(&orphan_name).is_ok(), "kept for B");
    std::thread::sleep(Duration::from_millis(1100));
    sync(&b);
    let t = ok(&a, &["gc", "--grace", "0", "--passcode-file", &pass(&a)]);
    let deleted: usize = t
        .strip_prefix("deleted ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!(deleted >= 2, "the overwritten data and the orphan: {t}");
    assert!(s.size(&orphan_name).is_err());
    // B, mounted all along, still reads everything, and so does A.
    assert_eq!(fs::read(b.notes().join("rewritten.bin")).unwrap(), keep);
    fs::write(b.notes().join("after-gc.txt"), b"still syncing").unwrap();
    sync(&b);
    b.unmount();
    fs::remove_dir_all(b.home.join("cache")).unwrap();
    b.mount_again();
    assert_eq!(fs::read(b.notes().join("rewritten.bin")).unwrap(), keep);
    a.mount_again();
    assert_eq!(fs::read(a.notes().join("from-b.txt")).unwrap(), b"b's data");
    assert_eq!(
        fs::read(a.notes().join("after-gc.txt")).unwrap(),
        b"still syncing"
    );
    // statfs reports what the store holds (listed by the sync thread at mount): at
    // least the 900,000 bytes of rewritten.bin, sealed.
    eventually(
        "statfs shows the store's bytes",
        Duration::from_secs(10),
        || nix_statfs(&a.mnt) > 900_000,
    );
}

/// A merge may name again packs gc had marked (an edit made on an older tree): the
/// merging device says so in its acknowledgement once the merged head is in the store
/// (`gc_revived`), and the next gc starts its epoch above that, marking again what was
/// marked up to it (FORMAT.md §14a, §14b).
#[test]
fn a_merge_is_acknowledged_to_gc_as_a_possible_revival() {
    use cirrus::format::ack::Ack;
    use cirrus::format::gc_marks;
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "revive");
    // B looks at the store only when the test says so (and when its own upload finds a
    // newer head): a background poll could take A's head in before B's edit below, and
    // then nobody merges.
    let extra = &mut b.mount_options().extra;
    let at = extra
        .iter()
        .position(|x| x == "--poll-interval")
        .expect("the devices poll");
    extra[at + 1] = "86400".to_string();
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("base.txt"), b"v0").unwrap();
    sync(&a);
    sync(&b);
    let s = sw.store("revive");
    let revived = |s: &dyn Store| -> Vec<(u64, Option<u64>)> {
        objects_in(s, "account/acks/")
            .values()
            .map(|o| Ack::decode(o).unwrap().0)
            .map(|a| (a.gc_revived, a.gc_epoch))
            .collect()
    };
    // A gc raises the epoch, and B acknowledges it.
    a.unmount();
    ok(&a, &["gc", "--passcode-file", &pass(&a)]);
    let e = gc_marks::epoch_of(&s.get(gc_marks::GC_MARKS).unwrap()).unwrap();
    a.mount_again();
    sync(&b);
    assert!(
        revived(&s).iter().any(|(r, g)| *g == Some(e) && *r <= e),
        "{:?}",
        revived(&s)
    );
    // Concurrent edits: B's upload finds A's head, and B merges. A's head goes first:
    // written together, B's daemon (committing every second) could publish first, and
    // A would merge instead, which this gc on A does not count (it reads the other
    // devices' acknowledgements; its own merge is in the heads it reads).
    fs::write(a.notes().join("only-a.txt"), b"a's own").unwrap();
    sync(&a);
    fs::write(b.notes().join("only-b.txt"), b"b's own").unwrap();
    sync(&b);
    sync(&b);
    eventually("the merge on A", Duration::from_secs(10), || {
        fs::read(a.notes().join("only-b.txt")).is_ok()
    });
    // Merged in epoch e: a gc run between reading the heads and writing its marks could
    // be epoch e + 1, so the merge covers marks up to that.
    // Both acknowledgements: A's says as much since its mount (every mount counts as a
    // possible revival), so only both together show B's.
    let acks = revived(&s);
    assert_eq!(acks, vec![(e + 1, Some(e)); 2], "A's and B's");
    a.unmount();
    ok(&a, &["gc", "--passcode-file", &pass(&a)]);
    let marks = s.get(gc_marks::GC_MARKS).unwrap();
    assert_eq!(
        gc_marks::epoch_of(&marks),
        Some(e + 2),
        "above the revived epoch"
    );
}

/// Bytes used on the file system at `p` (f_blocks - f_bfree) * f_frsize.
fn nix_statfs(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    (s.f_blocks - s.f_bfree) * s.f_frsize
}

#[test]
fn two_devices_on_one_key_service_sync_their_standard_categories() {
    let sw = Seaweed::start();
    let tmp = tempfile::tempdir().unwrap();
    let srv = common::keyserver::Server::start(tmp.path(), &[]);
    let pw = tmp.path().join("password");
    fs::write(&pw, "the account password\n").unwrap();
    let fp = srv.fingerprint.to_string();
    let pw_s = pw.to_str().unwrap().to_string();
    let server = [
        "--server",
        &srv.url,
        "--fingerprint",
        &fp,
        "--account",
        "alice",
        "--password-file",
        &pw_s,
    ];
    let (mut a, mut b) = two_devices_with(&sw, "ks", &server);
    for d in [&a, &b] {
        let c = fs::read_to_string(d.home.join("config.toml")).unwrap();
        assert!(
            c.contains(&srv.url),
            "both devices use the key service: {c}"
        );
    }
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("plan.txt"), b"v0").unwrap();
    sync(&a);
    sync(&b);
    eventually("plan.txt on B", Duration::from_secs(5), || {
        b.notes().join("plan.txt").exists()
    });
    fs::write(a.notes().join("plan.txt"), b"laptop's plan").unwrap();
    fs::write(b.notes().join("plan.txt"), b"phone's plan").unwrap();
    sync(&a);
    sync(&b);
    sync(&a);
    eventually("same trees", Duration::from_secs(10), || same_tree(&a, &b));
    let tree = snapshot(&a.notes());
    one_winner_and_a_copy(&tree, ("plan", ".txt"), b"laptop's plan", b"phone's plan");
}

#[test]
fn adp_turned_on_by_one_device_is_followed_by_the_other() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "adp");
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("before.txt"), b"standard, then e2e").unwrap();
    sync(&a);
    sync(&b);
    let t = ok(
        &a,
        &["recovery-key", "create", "--passcode-file", &pass(&a)],
    );
    assert!(t.contains("recovery key"), "{t}");
    let t = ok(&a, &["adp", "on", "--passcode-file", &pass(&a)]);
    assert!(t.contains("Advanced Data Protection is on"), "{t}");
    fs::write(a.notes().join("after.txt"), b"written under ADP").unwrap();
    sync(&a);
    // B takes in the new (end-to-end) keys of the moved categories and the new trees.
    sync(&b);
    eventually("after.txt on B", Duration::from_secs(10), || {
        fs::read(b.notes().join("after.txt")).ok().as_deref() == Some(&b"written under ADP"[..])
    });
    assert_eq!(
        fs::read(b.notes().join("before.txt")).unwrap(),
        b"standard, then e2e"
    );
    fs::write(b.notes().join("from-b.txt"), b"phone, under ADP").unwrap();
    sync(&b);
    sync(&a);
    eventually("from-b.txt on A", Duration::from_secs(10), || {
        a.notes().join("from-b.txt").exists()
    });
    let st = ok(&b, &["status", "--passcode-file", &pass(&b)]);
    assert!(!st.contains("cannot take"), "{st}");
}

#[test]
fn a_device_that_only_read_takes_in_edits_and_deletes_without_conflicts() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "ro");
    a.mount_again();
    fs::write(a.notes().join("g.txt"), b"g v1").unwrap();
    fs::write(a.notes().join("h.txt"), b"h v1").unwrap();
    sync(&a);
    a.unmount();
    // B opens the category from the store and changes nothing; A edits and deletes.
    b.mount_again();
    assert_eq!(fs::read(b.notes().join("g.txt")).unwrap(), b"g v1");
    a.mount_again();
    fs::write(a.notes().join("g.txt"), b"g v2").unwrap();
    fs::remove_file(a.notes().join("h.txt")).unwrap();
    sync(&a);
    sync(&b);
    eventually("B has A's edit", Duration::from_secs(10), || {
        fs::read(b.notes().join("g.txt")).ok().as_deref() == Some(&b"g v2"[..])
    });
    let tree = snapshot(&b.notes());
    assert!(!tree.contains_key("h.txt"), "the delete holds: {tree:?}");
    assert!(
        !tree.keys().any(|k| k.contains("conflict")),
        "nothing to conflict with: {tree:?}"
    );
    // And B's next publish does not bring h.txt back on A.
    fs::write(b.notes().join("b.txt"), b"b").unwrap();
    sync(&b);
    sync(&a);
    eventually("b.txt on A", Duration::from_secs(10), || {
        a.notes().join("b.txt").exists()
    });
    assert!(!a.notes().join("h.txt").exists());
}

#[test]
fn with_long_kernel_timeouts_a_sync_shows_the_other_devices_changes_at_once() {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::PermissionsExt;
    // The kernel may keep names and attributes for 10 minutes: only the daemon's
    // notifications after a merge can make B see A's changes (no waiting below).
    let args = [MOUNT_ARGS, &["--attr-timeout", "600"][..]].concat();
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices_mounting(&sw, "fresh", &[], &args);
    a.mount_again();
    b.mount_again();
    let (an, bn) = (a.notes(), b.notes());
    fs::create_dir(an.join("dir")).unwrap();
    for (name, data) in [
        ("renamed.txt", &b"r"[..]),
        ("deleted.txt", b"d"),
        ("grows.txt", b"small"),
        ("chmod.txt", b"m"),
    ] {
        fs::write(an.join(name), data).unwrap();
    }
    fs::write(an.join("pages.bin"), vec![b'1'; 200_000]).unwrap();
    sync(&a);
    sync(&b);
    // B looks at everything (so the kernel caches it) and keeps pages.bin open with its
    // pages cached; it looks up a name that does not exist yet.
    for name in [
        "renamed.txt",
        "deleted.txt",
        "grows.txt",
        "chmod.txt",
        "dir",
    ] {
        fs::symlink_metadata(bn.join(name)).unwrap();
    }
    assert_eq!(fs::read(bn.join("grows.txt")).unwrap(), b"small");
    let mut open = fs::File::open(bn.join("pages.bin")).unwrap();
    let mut cached = Vec::new();
    open.read_to_end(&mut cached).unwrap();
    assert!(cached.iter().all(|c| *c == b'1') && cached.len() == 200_000);
    assert!(fs::symlink_metadata(bn.join("late.txt")).is_err());

    fs::rename(an.join("renamed.txt"), an.join("dir/moved.txt")).unwrap();
    fs::remove_file(an.join("deleted.txt")).unwrap();
    fs::write(an.join("grows.txt"), b"much bigger now").unwrap();
    fs::set_permissions(an.join("chmod.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(an.join("late.txt"), b"late").unwrap();
    fs::write(an.join("pages.bin"), vec![b'2'; 200_000]).unwrap();
    sync(&a);
    sync(&b);

    assert!(!bn.join("renamed.txt").exists(), "the old name is gone");
    assert_eq!(fs::read(bn.join("dir/moved.txt")).unwrap(), b"r");
    assert!(!bn.join("deleted.txt").exists(), "the delete shows");
    assert_eq!(fs::metadata(bn.join("grows.txt")).unwrap().len(), 15);
    assert_eq!(fs::read(bn.join("grows.txt")).unwrap(), b"much bigger now");
    let mode = fs::metadata(bn.join("chmod.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the mode change shows");
    assert_eq!(fs::read(bn.join("late.txt")).unwrap(), b"late");
    let mut again = Vec::new();
    open.seek(SeekFrom::Start(0)).unwrap();
    open.read_to_end(&mut again).unwrap();
    assert!(
        again.len() == 200_000 && again.iter().all(|c| *c == b'2'),
        "the handle opened before reads the new content, not the cached pages"
    );
    assert!(
        fs::read(bn.join("pages.bin"))
            .unwrap()
            .iter()
            .all(|c| *c == b'2')
    );
    let names: Vec<String> = fs::read_dir(&bn)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("conflict")),
        "B changed nothing: {names:?}"
    );
}

#[test]
fn a_file_open_here_and_deleted_there_stays_readable_until_closed() {
    use std::io::{Read, Seek, SeekFrom};
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "open");
    a.mount_again();
    b.mount_again();
    let data = pseudo_random(700_000, 5);
    fs::write(a.notes().join("open.bin"), &data).unwrap();
    sync(&a);
    sync(&b);
    eventually("open.bin on B", Duration::from_secs(5), || {
        b.notes().join("open.bin").exists()
    });
    let mut f = fs::File::open(a.notes().join("open.bin")).unwrap();
    fs::remove_file(b.notes().join("open.bin")).unwrap();
    sync(&b);
    sync(&a);
    eventually("the delete reaches A", Duration::from_secs(10), || {
        !a.notes().join("open.bin").exists()
    });
    let mut back = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut back).unwrap();
    assert!(back == data, "the open handle still reads the file");
    drop(f);
    sync(&a);
    a.unmount();
    a.mount_again();
    assert!(!a.notes().join("open.bin").exists());
}

#[test]
fn a_removed_device_stops_receiving_new_data() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "rm");
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("shared-before.txt"), b"both may read this").unwrap();
    sync(&a);
    sync(&b);
    eventually("shared-before.txt on B", Duration::from_secs(5), || {
        b.notes().join("shared-before.txt").exists()
    });
    // The phone is lost: B stops (its daemon dies with the phone), A removes it.
    b.unmount();
    let t = ok(
        &a,
        &["device", "remove", "phone", "--passcode-file", &pass(&a)],
    );
    assert!(t.contains("Removed device phone"), "{t}");
    fs::write(a.notes().join("after-removal.txt"), b"not for the phone").unwrap();
    sync(&a);
    // The phone comes back online: it cannot take in anything written since.
    let o = b
        .cirrus_cmd()
        .args([
            "mount",
            b.mnt.to_str().unwrap(),
            "--passcode-file",
            &pass(&b),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("removed"), "{}", text(&o));
    let st = b
        .cirrus_cmd()
        .args(["status", "--passcode-file", &pass(&b)])
        .output()
        .unwrap();
    assert!(!st.status.success(), "{}", text(&st));
}

/// The store's head objects, by name.
fn heads_in(store: &dyn Store) -> BTreeMap<String, Vec<u8>> {
    objects_in(store, "heads/")
}

/// The store's objects under `prefix`, by name.
fn objects_in(store: &dyn Store, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    store
        .list(prefix)
        .unwrap()
        .into_iter()
        .map(|n| {
            let v = store.get(&n).unwrap();
            (n, v)
        })
        .collect()
}

#[test]
fn a_head_published_by_a_removed_device_is_replaced_not_merged() {
    let sw = Seaweed::start();
    let s3 = sw.store("rmlate");
    let (mut a, mut b) = two_devices(&sw, "rmlate");
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("shared.txt"), b"both may read this").unwrap();
    sync(&a);
    sync(&b);
    sync(&a);
    a.unmount();
    // The phone publishes an edit; the store is then put back as it was, to replay that
    // publish after the removal (as a removed device still online would, in the race
    // with the removal's new heads).
    let before = heads_in(&s3);
    let acks_before = objects_in(&s3, "account/acks/");
    fs::write(b.notes().join("late.txt"), b"from the removed phone").unwrap();
    sync(&b);
    b.unmount();
    let late: BTreeMap<String, Vec<u8>> = heads_in(&s3)
        .into_iter()
        .filter(|(n, v)| before.get(n) != Some(v))
        .collect();
    assert_eq!(
        late.len(),
        1,
        "the phone's edit changes one head: {:?}",
        late.keys()
    );
    // (The phone's acknowledgement of that head goes back too, or A would rightly see
    // the store withholding it.)
    for (n, v) in before.iter().chain(&acks_before) {
        s3.put(n, v).unwrap();
    }
    a.mount_again();
    let t = ok(
        &a,
        &["device", "remove", "phone", "--passcode-file", &pass(&a)],
    );
    assert!(t.contains("Removed device phone"), "{t}");
    for (n, v) in &late {
        s3.put(n, v).unwrap();
    }
    fs::write(a.notes().join("after.txt"), b"written after the removal").unwrap();
    let sy = status::sync_json(&a);
    // Refused by that sync, or already by the sync thread's own poll before it.
    let log = fs::read_to_string(a.home.join("cirrus.log")).unwrap_or_default();
    assert!(
        status::pulled(&sy, "Notes").as_deref() == Some("refused")
            || log.contains("Notes: the store's head was published by phone, a device removed"),
        "{sy:#}"
    );
    for (n, v) in &late {
        assert_ne!(
            &s3.get(n).unwrap(),
            v,
            "{n}: the phone's head is still there"
        );
    }
    assert!(!a.notes().join("late.txt").exists());
    a.unmount();
    a.mount_again();
    assert_eq!(
        fs::read(a.notes().join("after.txt")).unwrap(),
        b"written after the removal"
    );
    assert!(!a.notes().join("late.txt").exists());
    assert!(a.notes().join("shared.txt").exists());
    sync(&a);
}

#[test]
fn a_device_removed_while_it_keeps_writing_is_shut_out() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "rmlive");
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("shared.txt"), b"both may read this").unwrap();
    sync(&a);
    sync(&b);
    // The phone (stolen, still online) keeps writing and syncing while A removes it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let dir = b.notes();
        let mut cmd = b.cirrus_cmd();
        cmd.args(["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::write(dir.join(format!("phone-{i}.txt")), b"x");
                let _ = cmd.status();
                i += 1;
            }
        })
    };
    let t = ok(
        &a,
        &["device", "remove", "phone", "--passcode-file", &pass(&a)],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(t.contains("Removed device phone"), "{t}");
    fs::write(a.notes().join("after.txt"), b"not for the phone").unwrap();
    sync(&a);
    // B's `cirrus sync` polls the store before it returns, after A published after.txt;
    // B has taken in what it can once it knows it was removed (it cannot take the new
    // key, so it takes in nothing more): only then is after.txt's absence a result.
    let _ = b.cirrus_cmd().args(["sync"]).output();
    eventually(
        "the phone knows it was removed",
        Duration::from_secs(30),
        || {
            let st = b
                .cirrus_cmd()
                .args(["status", "--passcode-file", &pass(&b)])
                .output();
            st.is_ok_and(|st| text(&st).contains("removed"))
        },
    );
    assert!(!b.notes().join("after.txt").exists());
    // Having learnt it was removed, the phone sends nothing more: A has nothing to refuse.
    sync(&a);
    fs::write(b.notes().join("phone-after.txt"), b"kept on the phone").unwrap();
    let _ = b.cirrus_cmd().args(["sync"]).output();
    let sy = status::sync_json(&a);
    let pulls = sy["pull"]["categories"].as_array().unwrap();
    assert!(pulls.iter().all(|c| c["outcome"] != "refused"), "{sy:#}");
    let st = b
        .cirrus_cmd()
        .args(["status", "--passcode-file", &pass(&b)])
        .output()
        .unwrap();
    assert!(text(&st).contains("removed"), "{}", text(&st));
    // A's drive is whole and in the store: a remount reads it back.
    a.unmount();
    a.mount_again();
    assert_eq!(
        fs::read(a.notes().join("after.txt")).unwrap(),
        b"not for the phone"
    );
    assert!(a.notes().join("shared.txt").exists());
    sync(&a);
}

#[test]
fn a_conflict_copy_of_a_large_file_stays_within_the_memory_cache() {
    use std::io::{Read, Seek, SeekFrom, Write};
    const CACHE_MIB: u64 = 64;
    const SIZE: u64 = 512 << 20;
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "bigcopy");
    for d in [&mut a, &mut b] {
        d.mount_options()
            .extra
            .extend(["--memory-cache".to_string(), format!("{CACHE_MIB}M")]);
    }
    a.mount_again();
    b.mount_again();
    let block = pseudo_random(1 << 20, 21);
    {
        let mut f = fs::File::create(a.notes().join("big.bin")).unwrap();
        for i in 0..(SIZE >> 20) {
            let mut blk = block.clone();
            blk[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&blk).unwrap();
        }
    }
    sync(&a);
    sync(&b);
    let edit = |d: &Drive, what: &[u8]| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(d.notes().join("big.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(what).unwrap();
    };
    edit(&a, b"edited on the laptop");
    edit(&b, b"edited on the phone!");
    // Both daemons upload in the background, so either may publish first; the other
    // merges, and its version becomes a 512 MiB conflict copy resealed under a new
    // inode. Both are watched, and the merge must fit the cache whichever device runs it.
    let (rss_a, rss_b) = (
        RssPeak::start(daemon_pid(&a)),
        RssPeak::start(daemon_pid(&b)),
    );
    sync(&a);
    sync(&b);
    sync(&a);
    let peak_mib = rss_a.stop().max(rss_b.stop()) / 1024;
    eprintln!("daemon RSS peak while merging a 512 MiB conflict copy: {peak_mib} MiB");
    assert!(
        peak_mib <= CACHE_MIB + 64,
        "RSS {peak_mib} MiB passes --memory-cache {CACHE_MIB}M + 64 MiB"
    );
    let copies: Vec<_> = fs::read_dir(b.notes())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("big (conflict from "))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (loser, winner): (&[u8], &[u8]) = if copies[0].starts_with("big (conflict from phone ") {
        (b"edited on the phone!", b"edited on the laptop")
    } else {
        assert!(
            copies[0].starts_with("big (conflict from laptop "),
            "{copies:?}"
        );
        (b"edited on the laptop", b"edited on the phone!")
    };
    // The winner's version stays under the name, on both devices.
    for d in [&a, &b] {
        let mut f = fs::File::open(d.notes().join("big.bin")).unwrap();
        let mut head = vec![0u8; 4116];
        f.read_exact(&mut head).unwrap();
        assert_eq!(&head[4096..], winner);
    }
    // The copy holds the loser's whole version, chunk by chunk.
    let mut f = fs::File::open(b.notes().join(&copies[0])).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..(SIZE >> 20) {
        f.read_exact(&mut buf).unwrap();
        let mut want = block.clone();
        want[..8].copy_from_slice(&i.to_le_bytes());
        if i == 0 {
            want[4096..4116].copy_from_slice(loser);
        }
        if buf != want {
            let bad: Vec<usize> = (0..4)
                .filter(|c| buf[c << 18..(c + 1) << 18] != want[c << 18..(c + 1) << 18])
                .collect();
            let zero = buf.iter().all(|b| *b == 0);
            panic!(
                "MiB {i} of the copy differs (256 KiB chunks {bad:?} of it; all zero: {zero}; \
                 first bytes {:?})",
                &buf[..8]
            );
        }
    }
    assert_eq!(f.read(&mut buf).unwrap(), 0);
}

#[test]
fn a_store_withholding_another_devices_head_is_caught() {
    let sw = Seaweed::start();
    let s3 = sw.store("withhold");
    let (mut a, mut b) = two_devices(&sw, "withhold");
    // A looks at the store only when the test says so (not every 2 s as MOUNT_ARGS has
    // it): a background poll between B's
    // publishing and the replay below would show A the newer head itself, and the replay
    // would then read as a plain rollback rather than as withholding. (A poll interval
    // longer than the machine's uptime is also what a boot-time mount has.)
    let extra = &mut a.mount_options().extra;
    let at = extra
        .iter()
        .position(|x| x == "--poll-interval")
        .expect("the devices poll");
    extra[at + 1] = "86400".to_string();
    a.mount_again();
    b.mount_again();
    fs::write(a.notes().join("seen-by-both.txt"), b"1").unwrap();
    // Both daemons upload in the background: sync until the heads in the store stop
    // changing, so A has seen every head that `before` holds and nothing newer (else A
    // sees the replay below as a plain rollback, not as withholding).
    let mut before = heads_in(&s3);
    for _ in 0..10 {
        sync(&a);
        sync(&b);
        sync(&a);
        let now = heads_in(&s3);
        if now == before {
            break;
        }
        before = now;
    }
    // B publishes an edit and says so in its acknowledgement (its second sync: the
    // first one's poll ran before the upload).
    fs::write(b.notes().join("from-b.txt"), b"the store hides this").unwrap();
    sync(&b);
    sync(&b);
    // The store serves A the heads A saw before, forever.
    for (n, v) in &before {
        s3.put(n, v).unwrap();
    }
    let o = a.cirrus_cmd().args(["sync", "--wait"]).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("device phone says it published head"),
        "{}",
        text(&o)
    );
    // `status` shows it (the daemon refreshes what it reads every second).
    eventually(
        "status names the withholding",
        Duration::from_secs(5),
        || ok(&a, &["status", "--passcode-file", &pass(&a)]).contains("withholding"),
    );
    assert!(!a.notes().join("from-b.txt").exists());
}

/// Both devices run `cirrus sync --wait` at the same moment, over and over: each time one
/// device's head loses the race to the store, and its sync must merge and send again
/// rather than end with the head held back as a conflict.
#[test]
fn devices_syncing_at_the_same_moment_both_end_with_everything_in_the_store() {
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "race");
    a.mount_again();
    b.mount_again();
    for i in 0..12 {
        fs::write(a.notes().join(format!("a{i}")), b"from a").unwrap();
        fs::write(b.notes().join(format!("b{i}")), b"from b").unwrap();
        sync_both_at_once(&a, &b);
    }
    sync(&a);
    eventually("both trees equal", Duration::from_secs(10), || {
        same_tree(&a, &b)
    });
    let tree = snapshot(&a.notes());
    for i in 0..12 {
        assert_eq!(tree.get(&format!("a{i}")), Some(&Some(b"from a".to_vec())));
        assert_eq!(tree.get(&format!("b{i}")), Some(&Some(b"from b".to_vec())));
    }
}

/// Small writes are stored as patches over the chunk they changed (FORMAT §5.1b): they
/// travel to the other device, which patches the same chunks over the bases the first
/// one wrote; and an edit of the same file on both at once leaves one winner and a
/// conflict copy, each byte for byte the version of its device.
#[test]
fn patched_chunks_travel_between_devices_and_conflict_copies_keep_them() {
    use std::os::unix::fs::FileExt;
    let sw = Seaweed::start();
    let (mut a, mut b) = two_devices(&sw, "patches");
    a.mount_again();
    let mut model = pseudo_random(4 * CHUNK, 21);
    fs::write(a.notes().join("db.bin"), &model).unwrap();
    sync(&a);
    b.mount_again();
    let edit = |d: &Drive, model: &mut Vec<u8>, off: usize, data: &[u8]| {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.notes().join("db.bin"))
            .unwrap();
        f.write_all_at(data, off as u64).unwrap();
        f.sync_all().unwrap();
        model[off..off + data.len()].copy_from_slice(data);
    };
    edit(&a, &mut model, 300_000, b"written on the laptop");
    sync(&a);
    eventually(
        "the laptop's patch on the phone",
        Duration::from_secs(15),
        || fs::read(b.notes().join("db.bin")).ok().as_deref() == Some(&model[..]),
    );
    edit(&b, &mut model, 310_000, b"written on the phone, same chunk");
    edit(&b, &mut model, 700_000, b"and another chunk");
    sync(&b);
    eventually(
        "the phone's patches on the laptop",
        Duration::from_secs(15),
        || fs::read(a.notes().join("db.bin")).ok().as_deref() == Some(&model[..]),
    );

    // Both at once, in the same chunk: one winner, one copy.
    let mut laptop = model.clone();
    let mut phone = model.clone();
    edit(&a, &mut laptop, 5_000, b"the laptop's version");
    edit(&b, &mut phone, 6_000, b"the phone's version");
    sync_both_at_once(&a, &b);
    sync(&a);
    sync(&b);
    eventually("the same tree on both", Duration::from_secs(20), || {
        same_tree(&a, &b)
    });
    one_winner_and_a_copy(&snapshot(&a.notes()), ("db", ".bin"), &laptop, &phone);
}
