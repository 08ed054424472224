//! `cirrus rotate`: a category is re-encrypted under a new key version while mounted and
//! in use (every read succeeds), the old key object is destroyed, the old key opens
//! nothing of the tree afterwards, a daemon killed mid-rotation resumes, and an unmounted
//! drive rotates in-process.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::crypto::{self, SecretKey, Suite};
use cirrus::format::table::{CategoryEntry, CategoryTable};
use cirrus::format::{Context, ObjKind, names};
use cirrus::keys::category_key_context;
use cirrus::keyservice::{EmbeddedKeyService, ServiceKeys};
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn rotate(d: &Drive, category: &str, extra: &[&str]) -> (bool, String) {
    out(d
        .cirrus_cmd()
        .args(["rotate", "--category", category])
        .args(extra)
        .arg("--passcode-file")
        .arg(&d.passcode_file))
}

fn fsck_ok(d: &Drive) {
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["fsck", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.contains("no damage found"), "fsck:\n{text}");
}

fn status(d: &Drive) -> String {
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "status:\n{text}");
    text
}

/// The category table as stored (MAC-only: readable without the account key).
fn table(home: &Path) -> CategoryTable {
    store_table(home)
}

fn entry(home: &Path, name: &str) -> CategoryEntry {
    table(home).find(name).unwrap().clone()
}

fn key_object(home: &Path, id: u32, version: u32) -> PathBuf {
    home.join("store").join(names::category_key(id, version))
}

/// Checks that `category` went from key version 1 to 2 and that key object 1 is gone.
fn assert_rotated_once(home: &Path, category: &str) -> CategoryEntry {
    let e = entry(home, category);
    assert_eq!(e.key_version, 2, "{category} must use key version 2 now");
    assert!(
        !key_object(home, e.id, 1).exists(),
        "the old key object of {category} must be destroyed"
    );
    assert!(key_object(home, e.id, 2).exists());
    e
}

/// What the Photos tree holds: name → content (a hard link appears under both names).
fn photos_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (i, len) in [
        (0u64, 3 * CHUNK + 17),
        (1, 9 << 20),
        (2, 5 << 20),
        (3, CHUNK),
    ] {
        m.insert(format!("big-{i}.bin"), pseudo_random(len, 10 + i));
    }
    for i in 0..40u64 {
        m.insert(
            format!("small/{i}.txt"),
            format!("small file {i}\n").into_bytes(),
        );
    }
    for (name, data) in &m {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }
    // Sparse: a hole of several chunks between two writes.
    let f = fs::File::create(root.join("sparse.bin")).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 6 << 20).unwrap();
    let mut sparse = vec![0u8; (6 << 20) + 4];
    sparse[..4].copy_from_slice(b"head");
    sparse[6 << 20..].copy_from_slice(b"tail");
    m.insert("sparse.bin".into(), sparse);
    fs::hard_link(root.join("big-2.bin"), root.join("small/link-to-big-2")).unwrap();
    m.insert("small/link-to-big-2".into(), m["big-2.bin"].clone());
    // fsync commits the whole category.
    f.sync_all().unwrap();
    m
}

fn check_tree(root: &Path, m: &BTreeMap<String, Vec<u8>>, what: &str) {
    for (name, data) in m {
        let got = fs::read(root.join(name)).unwrap_or_else(|e| panic!("{what}: read {name}: {e}"));
        assert_bytes_eq(&got, data, &format!("{what}: {name}"));
    }
}

#[test]
fn online_rotation_keeps_the_drive_usable_and_destroys_the_old_key() {
    let mut d = Drive::mount();
    let photos = d.category_path("Photos");
    let tree = photos_tree(&photos);
    let before = entry(&d.home, "Photos");
    assert_eq!(before.key_version, 1);
    assert!(key_object(&d.home, before.id, 1).exists());

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    // A reader that checks every byte it reads, the whole time.
    let reader = {
        let (stop, reads, failures, photos, tree) = (
            stop.clone(),
            reads.clone(),
            failures.clone(),
            photos.clone(),
            tree.clone(),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (name, data) in &tree {
                    match fs::read(photos.join(name)) {
                        Ok(got) if got == *data => {
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(got) => failures.lock().unwrap().push(format!(
                            "{name}: read {} bytes that differ from the {} written",
                            got.len(),
                            data.len()
                        )),
                        Err(e) => failures.lock().unwrap().push(format!("{name}: {e}")),
                    }
                }
            }
        })
    };
    // A writer that keeps appending to a file (and sometimes fsyncs: commits).
    let writer = {
        let (stop, failures, photos) = (stop.clone(), failures.clone(), photos.clone());
        thread::spawn(move || {
            let mut f = fs::File::create(photos.join("live.log")).unwrap();
            let mut written = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let block = pseudo_random(100_000, 1000 + i);
                if let Err(e) = f.write_all(&block) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("live.log write: {e}"));
                    break;
                }
                written.extend_from_slice(&block);
                if i.is_multiple_of(8) {
                    f.sync_all().unwrap();
                }
                i += 1;
                thread::sleep(Duration::from_millis(5));
            }
            f.sync_all().unwrap();
            written
        })
    };
    thread::sleep(Duration::from_millis(300));
    // Small batches: many commits while the reader and writer run.
    let (ok, text) = rotate(&d, "Photos", &["--batch", "1M"]);
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let live = writer.join().unwrap();
    assert!(ok, "rotate failed:\n{text}");
    assert!(text.contains("key version 2"), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("progress:")).count() >= 5,
        "progress is reported per batch:\n{text}"
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "I/O failed during rotation: {failures:?}"
    );
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_rotated_once(&d.home, "Photos");
    let st = common::status::status_json(&d);
    let cats = st["categories"].as_array().unwrap();
    assert!(cats.iter().all(|c| c["rotation"].is_null()), "{st:#}");
    // Rotating again makes version 3 (a new rotation, not a resumption).
    let (ok, text) = rotate(&d, "Photos", &[]);
    assert!(ok && text.contains("key version 3"), "{text}");
    d.unmount();
    fsck_ok(&d);
    d.mount_again();
    check_tree(&d.category_path("Photos"), &tree, "after remount");
    assert_bytes_eq(
        &fs::read(d.category_path("Photos").join("live.log")).unwrap(),
        &live,
        "live.log after remount",
    );
}

/// Every blob of a pack: (offset, sealed bytes). Packs are an 8-byte header and sealed
/// blobs back to back (FORMAT.md §4).
fn blobs_of(pack: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut at = 8;
    while at + 53 <= pack.len() {
        let len = u32::from_le_bytes(pack[at + 17..at + 21].try_into().unwrap()) as usize;
        let body = match pack[at] {
            1 => crypto::padded_len(len),
            _ => len,
        };
        let end = at + 21 + body + 32;
        assert!(end <= pack.len(), "pack parse");
        v.push(&pack[at..end]);
        at = end;
    }
    assert_eq!(at, pack.len(), "pack parse");
    v
}

#[test]
fn the_old_key_opens_nothing_written_after_rotation() {
    let mut d = Drive::mount();
    let notes = d.notes();
    let before = pseudo_random(3 * CHUNK + 5, 1);
    fs::write(notes.join("before.bin"), &before).unwrap();
    fs::create_dir(notes.join("dir")).unwrap();
    fs::write(notes.join("dir/small.txt"), b"small").unwrap();
    fs::File::open(notes.join("before.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    let e = entry(&d.home, "Notes");
    // What an attacker might have kept: the old wrapped key.
    let saved_old = fs::read(key_object(&d.home, e.id, 1)).unwrap();
    let (ok, text) = rotate(&d, "Notes", &[]);
    assert!(ok, "{text}");
    let after = pseudo_random(2 * CHUNK + 9, 2);
    fs::write(notes.join("after.bin"), &after).unwrap();
    fs::File::open(notes.join("after.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    d.unmount();
    assert_rotated_once(&d.home, "Notes");

    // The server side (store + key service) unwraps both keys; Notes is standard.
    let service = EmbeddedKeyService::open(&d.home.join("keyservice")).unwrap();
    let unwrap = |obj: &[u8], v: u32| -> SecretKey {
        service
            .unwrap(category_key_context(e.id, v), &obj[1..], "Notes")
            .unwrap()
    };
    let old = unwrap(&saved_old, 1);
    let new = unwrap(&fs::read(key_object(&d.home, e.id, 2)).unwrap(), 2);

    // The current tree, through the library with the new key alone.
    let store: Arc<dyn cirrus::store::Store> =
        Arc::new(cirrus::store::LocalStore::open(d.home.join("store")).unwrap());
    let head_obj = store.get(&names::head(e.id)).unwrap();
    let env = cirrus::format::manifest::decode_head_envelope(&head_obj).unwrap();
    assert_eq!(env.key_version, 2, "head under key version 2");
    let head_ctx = Context::new(ObjKind::Head, e.id, 0, 0).to_bytes();
    assert!(crypto::open(&old, Suite::XtsBlake3, &head_ctx, env.sealed).is_err());
    let head = crypto::open(&new, Suite::XtsBlake3, &head_ctx, env.sealed).unwrap();
    let head = cirrus::format::head::Head::decode(&head).unwrap();
    assert_eq!((head.key_version, head.rotating_from), (2, 0));
    let cat = cirrus::volume::Category::open(
        cirrus::volume::CategorySetup {
            entry: e.clone(),
            key: new.duplicate(),
            key_version: 2,
            old_key: None,
        },
        store.clone(),
        Arc::new(cirrus::cache::ChunkCache::new(1 << 20)),
        Arc::new(cirrus::volume::NoWitness),
        cirrus::volume::VolumeOptions {
            dirty_limit: 1 << 20,
            owner: (0, 0),
            dirty_total: Default::default(),
            heads: Arc::new(UncheckedHeads),
            device_slot: None,
            sealer: None,
            read_only: false,
            atime: Default::default(),
            dir_atime: true,
        },
    );
    let rep = cat.verify(&|_| {});
    assert!(
        rep.problems.is_empty(),
        "the new key alone opens the whole tree: {:?}",
        rep.problems
    );
    // Every context a blob of this tree can have: each chunk of each inode, each leaf.
    let mut contexts = vec![];
    let mut inodes = vec![cirrus::volume::ROOT_INO];
    let mut i = 0;
    while i < inodes.len() {
        let ino = inodes[i];
        i += 1;
        let info = cat.getattr(ino).unwrap();
        if info.attr.mode & libc::S_IFMT == libc::S_IFDIR {
            inodes.extend(cat.readdir(ino).unwrap().1.iter().map(|l| l.1));
        } else {
            for idx in 0..info.size.div_ceil(CHUNK as u64) {
                contexts.push(Context::chunk(e.id, ino, idx).to_bytes());
            }
        }
    }
    // Inode numbers are sparse (one range per device): the leaves of the inodes seen.
    let leaves: std::collections::BTreeSet<u64> = inodes.iter().map(|i| i / 256).collect();
    for leaf in leaves {
        contexts.push(Context::new(ObjKind::Leaf, e.id, 0, leaf).to_bytes());
    }
    let mut blobs = 0;
    for pack in &rep.packs {
        let bytes = store.get(&names::pack(pack)).unwrap();
        for blob in blobs_of(&bytes) {
            blobs += 1;
            assert!(
                contexts
                    .iter()
                    .any(|c| crypto::open(&new, Suite::XtsBlake3, c, blob).is_ok()),
                "every blob of the tree opens with the new key in one of the contexts"
            );
            for c in &contexts {
                assert!(
                    crypto::open(&old, Suite::XtsBlake3, c, blob).is_err(),
                    "the old key opened a blob of the current tree"
                );
            }
        }
    }
    assert!(blobs >= 6, "chunks of both files and leaves: {blobs}");
    // Sanity: the tree holds the data written before and after.
    let n = cat.lookup(cirrus::volume::ROOT_INO, b"after.bin").unwrap();
    assert_eq!(cat.read(n.ino, 0, 1 << 20).unwrap(), after);
    let n = cat.lookup(cirrus::volume::ROOT_INO, b"before.bin").unwrap();
    assert_eq!(cat.read(n.ino, 0, 1 << 20).unwrap(), before);
}

#[test]
fn a_daemon_killed_mid_rotation_resumes_and_finishes() {
    let mut d = Drive::mount();
    let photos = d.category_path("Photos");
    let mut tree = BTreeMap::new();
    for i in 0..8u64 {
        tree.insert(format!("f{i}.bin"), pseudo_random(8 << 20, 50 + i));
    }
    for (name, data) in &tree {
        fs::write(photos.join(name), data).unwrap();
    }
    fs::File::open(photos.join("f0.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    let id = entry(&d.home, "Photos").id;
    // One commit per chunk: many durable steps; kill the daemon after the first.
    let mut child = d
        .cirrus_cmd()
        .args(["rotate", "--category", "Photos", "--batch", "256K"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each read blocks until rotate prints a line or exits: a clock checked between reads
    // would bound nothing.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let l = lines
            .next()
            .expect("rotate ended before reporting progress")
            .unwrap();
        let done: u64 = l
            .strip_prefix("progress: ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if done > 0 {
            break;
        }
    }
    let pid = daemon_pid(&d);
    // SAFETY: SIGKILL to the daemon this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let st = child.wait().unwrap();
    assert!(!st.success(), "the client must report the lost daemon");
    let (ok, text) = out(d.cirrus_cmd().arg("umount").arg(&d.mnt));
    assert!(ok, "stale cleanup: {text}");
    d.mark_unmounted();
    // Mid-way: the table names version 2, key 1 is still there, the head records it.
    assert_eq!(entry(&d.home, "Photos").key_version, 2);
    assert!(key_object(&d.home, id, 1).exists());
    let st = common::status::status_json(&d);
    let rot = &common::status::category(&st, "Photos")["rotation"];
    assert!(
        rot["from_key_version"] == 1 && rot["to_key_version"] == 2,
        "status must show the interrupted rotation: {st:#}"
    );
    assert!(
        rot["done_bytes"].as_u64() <= rot["total_bytes"].as_u64(),
        "{rot}"
    );
    // The text shows it too.
    let line = status(&d);
    let line = line.lines().find(|l| l.starts_with("Photos")).unwrap();
    assert!(line.contains("rotating key v1 \u{2192} v2"), "{line}");
    fsck_ok(&d);
    d.mount_again();
    // Reads work on the half-rotated tree.
    check_tree(&d.category_path("Photos"), &tree, "after the crash");
    let (ok, text) = rotate(&d, "Photos", &[]);
    assert!(ok && text.contains("Finished rotating"), "{text}");
    assert_rotated_once(&d.home, "Photos");
    d.unmount();
    fsck_ok(&d);
    d.mount_again();
    check_tree(&d.category_path("Photos"), &tree, "after resuming");
}

#[test]
fn an_unmounted_drive_rotates_in_process() {
    let mut d = Drive::mount();
    let health = d.health();
    let data = pseudo_random(5 * CHUNK + 3, 7);
    fs::write(health.join("e2e.bin"), &data).unwrap();
    fs::create_dir(health.join("sub")).unwrap();
    fs::write(health.join("sub/note.txt"), b"note").unwrap();
    d.unmount();
    let (ok, text) = rotate(&d, "Health", &[]);
    assert!(ok && text.contains("Rotated"), "{text}");
    let e = assert_rotated_once(&d.home, "Health");
    assert_eq!(e.class.name(), "e2e");
    let (ok, text) = rotate(&d, "NoSuchCategory", &[]);
    assert!(!ok && text.contains("unknown category"), "{text}");
    fsck_ok(&d);
    d.mount_again();
    assert_bytes_eq(&fs::read(d.health().join("e2e.bin")).unwrap(), &data, "e2e");
    assert_eq!(fs::read(d.health().join("sub/note.txt")).unwrap(), b"note");
}
