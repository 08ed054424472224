//! The reader against a real account: what it lists, reads and finds, and everything it
//! refuses to serve (locked, retired, rolled back, unsigned, substituted, under ADP).

use super::tests_fixture::{Scene, write_in};
use super::*;
use crate::format::manifest::{
    FLAG_ADP, HEAD_SIGN_DOMAIN, decode_head_envelope, encode_head_envelope, head_signed_message,
};
use crate::format::names;
use crate::keys::device::DeviceIdentity;
use crate::keyservice::ServiceKeys;
use crate::volume::HeadSignError;

/// Bytes that differ from chunk to chunk and within one.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7919) as u8).collect()
}

fn view<'a>(views: &'a [CategoryView], name: &str) -> Option<&'a CategoryView> {
    views.iter().find(|v| v.name == name)
}

#[test]
fn categories_say_what_the_web_serves() {
    let s = Scene::new();
    s.write("Photos", &["a.txt"], b"0123456789");
    s.write("Mail", &["inbox", "1.eml"], b"hello");
    s.write("Health", &["steps"], b"secret");
    let drive = s.drive().unwrap();
    let views = drive.categories();
    let photos = view(&views, "Photos").unwrap();
    assert_eq!(
        (photos.class, photos.state, photos.size),
        (Class::Standard, CategoryState::Available, Some(10))
    );
    let mail = view(&views, "Mail").unwrap();
    assert_eq!(
        (mail.class, mail.state, mail.size),
        (Class::Transit, CategoryState::Available, Some(5))
    );
    let health = view(&views, "Health").unwrap();
    assert_eq!(
        (health.class, health.state, health.size),
        (Class::E2e, CategoryState::Locked, None)
    );
    assert_eq!(health.state.data_state(), "locked");
    // A category nobody wrote yet is served empty.
    assert_eq!(view(&views, "Notes").unwrap().size, Some(0));
    assert!(matches!(
        drive.open_category("Health"),
        Err(ReadError::Locked)
    ));
    assert!(matches!(
        drive.open_category("Nope"),
        Err(ReadError::NotFound)
    ));
    assert!(matches!(
        drive.open_category("photos"),
        Err(ReadError::NotFound)
    ));
    // Transit content reads back too (its blobs are only authenticated, not encrypted).
    let mail = drive.open_category("Mail").unwrap();
    let f = mail.resolve(&[b"inbox", b"1.eml"]).unwrap();
    assert_eq!(mail.read(&f, 0, 100).unwrap(), b"hello");
    assert!(s.access.advanced.lock().unwrap().is_empty());
}

#[test]
fn folders_list_resolve_and_read_the_exact_bytes() {
    let s = Scene::new();
    let big = pattern(4 * 262_144 + 1000);
    s.write("Photos", &["album", "big.bin"], &big);
    s.write("Photos", &["album", "sub", "Note.TXT"], b"note");
    s.write("Photos", &["readme"], b"read me");
    let drive = s.drive().unwrap();
    let photos = drive.open_category("Photos").unwrap();
    assert_eq!(photos.size(), big.len() as u64 + 11);
    let root = photos.resolve(&[]).unwrap();
    assert_eq!((root.entry.kind, root.entry.name.len()), (Kind::Dir, 0));
    let listed = photos.list(&root).unwrap();
    let names: Vec<(&[u8], Kind)> = listed.iter().map(|e| (&e.name[..], e.kind)).collect();
    assert_eq!(
        names,
        [(&b"album"[..], Kind::Dir), (&b"readme"[..], Kind::File)]
    );
    assert_eq!(listed[1].size, 7);
    assert!(listed[1].mtime.secs > 1_700_000_000);

    let f = photos.resolve(&[b"album", b"big.bin"]).unwrap();
    assert_eq!((f.entry.kind, f.entry.size), (Kind::File, big.len() as u64));
    assert_eq!(photos.stat(&f).unwrap(), f.entry);
    assert_eq!(photos.read(&f, 0, usize::MAX).unwrap(), big);
    // A range across two chunk boundaries, in the middle.
    assert_eq!(
        photos.read(&f, 300_000, 500_000).unwrap(),
        &big[300_000..800_000]
    );
    assert_eq!(
        photos.read(&f, big.len() as u64 - 10, 100).unwrap(),
        &big[big.len() - 10..]
    );
    assert!(
        photos
            .read(&f, big.len() as u64 + 5, 100)
            .unwrap()
            .is_empty()
    );

    let album = photos.resolve(&[b"album"]).unwrap();
    assert!(matches!(photos.read(&album, 0, 10), Err(ReadError::IsDir)));
    assert!(matches!(photos.list(&f), Err(ReadError::NotDir)));
    for bad in [&[&b".."[..]][..], &[b"album", b""], &[b"."], &[b"a/b"]] {
        assert!(
            matches!(photos.resolve(bad), Err(ReadError::BadPath)),
            "{bad:?}"
        );
    }
    assert!(matches!(
        photos.resolve(&[b"album", b"none"]),
        Err(ReadError::NotFound)
    ));
    assert!(matches!(
        photos.resolve(&[b"readme", b"x"]),
        Err(ReadError::NotDir)
    ));
}

#[test]
fn search_finds_names_anywhere_ignoring_case_within_the_limit() {
    let s = Scene::new();
    s.write("Photos", &["album", "sub", "Note.TXT"], b"note");
    s.write("Photos", &["notes.md"], b"n");
    s.write("Photos", &["other"], b"o");
    let drive = s.drive().unwrap();
    let photos = drive.open_category("Photos").unwrap();
    let hits = photos.search("NOTE", 10).unwrap();
    let paths: Vec<Vec<Vec<u8>>> = hits.iter().map(|(p, _)| p.clone()).collect();
    // Breadth first: the shallow one comes first.
    assert_eq!(
        paths,
        [
            vec![b"notes.md".to_vec()],
            vec![b"album".to_vec(), b"sub".to_vec(), b"Note.TXT".to_vec()],
        ]
    );
    assert_eq!((hits[1].1.kind, hits[1].1.size), (Kind::File, 4));
    assert_eq!(photos.search("note", 1).unwrap().len(), 1);
    assert_eq!(photos.search("u", 10).unwrap()[0].1.kind, Kind::Dir);
    assert!(photos.search("", 10).unwrap().is_empty());
    assert!(photos.search("absent", 10).unwrap().is_empty());
    // The visit cap ends the walk, found or not: root has album, notes.md, other.
    assert_eq!(photos.search_within("note", 10, 2).unwrap().len(), 1);
    assert!(photos.search_within("Note.TXT", 10, 4).unwrap().is_empty());
    assert_eq!(photos.search_within("Note.TXT", 10, 5).unwrap().len(), 1);
}

#[test]
fn a_newer_manifest_is_followed_and_recorded_and_retired_categories_go() {
    let mut s = Scene::new();
    let before = s.acct.manifest().counter;
    s.acct.remove_category("Notes").unwrap();
    let after = s.acct.manifest().counter;
    assert!(after > before);
    let drive = s.drive().unwrap();
    assert_eq!(*s.access.advanced.lock().unwrap(), [after]);
    assert_eq!(drive.manifest().counter, after);
    assert!(view(&drive.categories(), "Notes").is_none());
    assert!(matches!(
        drive.open_category("Notes"),
        Err(ReadError::NotFound)
    ));
    // Nothing newer: nothing recorded again.
    s.drive().unwrap();
    assert_eq!(s.access.advanced.lock().unwrap().len(), 1);
}

#[test]
fn a_manifest_rolled_back_below_the_trusted_one_is_refused() {
    let mut s = Scene::new();
    let old = s.acct.store.get(names::MANIFEST).unwrap();
    s.acct.remove_category("Notes").unwrap();
    s.drive().unwrap();
    s.acct.store.put(names::MANIFEST, &old).unwrap();
    let e = s.drive().err().unwrap();
    assert!(
        matches!(&e, ReadError::BadManifest(why) if why.contains("rollback")),
        "{e}"
    );
}

#[test]
fn advanced_data_protection_turns_the_drive_off() {
    let mut s = Scene::new();
    let mut next = s.acct.manifest().clone();
    next.set(FLAG_ADP, true);
    s.acct.publish_manifest(next).unwrap();
    assert!(matches!(s.drive(), Err(ReadError::AdpOn)));
    // The newer manifest is still recorded: the server never goes back to before it.
    assert_eq!(
        *s.access.advanced.lock().unwrap(),
        [s.acct.manifest().counter]
    );
}

#[test]
fn a_rolled_back_head_is_an_error_not_old_data() {
    let s = Scene::new();
    s.write("Photos", &["a"], b"first");
    let head = names::head(s.id("Photos"));
    let old = s.acct.store.get(&head).unwrap();
    s.write("Photos", &["b"], b"second");
    let drive = s.drive().unwrap();
    assert!(drive.open_category("Photos").is_ok());
    s.acct.store.put(&head, &old).unwrap();
    let drive = s.drive().unwrap();
    let e = drive.open_category("Photos").err().unwrap();
    assert!(
        matches!(&e, ReadError::Unavailable(why) if why.contains("rollback")),
        "{e}"
    );
    assert_eq!(view(&drive.categories(), "Photos").unwrap().size, None);
}

/// Signs heads with a key no manifest lists; takes any head it reads.
struct Stranger {
    account_id: [u8; 16],
    id: DeviceIdentity,
}

impl HeadSigner for Stranger {
    fn envelope(&self, category: u32, kv: u32, sealed: &[u8]) -> Result<Vec<u8>, HeadSignError> {
        let msg = head_signed_message(&self.account_id, category, kv, sealed);
        let sig = self.id.sign(HEAD_SIGN_DOMAIN, &msg);
        Ok(encode_head_envelope(
            kv,
            &self.id.public().sign,
            &sig,
            sealed,
        ))
    }
    fn check<'a>(&self, _: u32, obj: &'a [u8]) -> Result<(u32, &'a [u8]), HeadSignError> {
        let e = decode_head_envelope(obj)?;
        Ok((e.key_version, e.sealed))
    }
}

#[test]
fn a_head_signed_by_a_key_that_is_no_device_is_refused() {
    let s = Scene::new();
    s.write("Photos", &["a"], b"mine");
    let stranger = Arc::new(Stranger {
        account_id: s.acct.manifest().account_id,
        id: DeviceIdentity::generate().unwrap(),
    });
    write_in(&s.category("Photos", Some(stranger)), &["b"], b"theirs");
    let e = s.drive().unwrap().open_category("Photos").err().unwrap();
    assert!(
        matches!(&e, ReadError::Unavailable(why) if why.contains("not a trusted device")),
        "{e}"
    );
}

#[test]
fn a_substituted_category_key_is_refused() {
    let s = Scene::new();
    s.write("Photos", &["a"], b"mine");
    let id = s.id("Photos");
    let ctx = crate::keys::category_key_context(id, 1);
    let other = crate::crypto::random_key().unwrap();
    let mut obj = vec![Class::Standard as u8];
    obj.extend(s.access.service.wrap(ctx, &other).unwrap());
    s.acct.store.put(&names::category_key(id, 1), &obj).unwrap();
    let e = s.drive().unwrap().open_category("Photos").err().unwrap();
    assert!(
        matches!(&e, ReadError::Unavailable(why) if why.contains("commits to")),
        "{e}"
    );
    // The class byte of the current version must be the table's.
    obj[0] = Class::E2e as u8;
    s.acct.store.put(&names::category_key(id, 1), &obj).unwrap();
    let e = s.drive().unwrap().open_category("Photos").err().unwrap();
    assert!(
        matches!(&e, ReadError::Unavailable(why) if why.contains("another protection class")),
        "{e}"
    );
}

#[test]
fn a_category_in_mid_rotation_reads_with_both_key_versions() {
    let mut s = Scene::new();
    let data = pattern(300_000);
    s.write("Photos", &["old.bin"], &data);
    // A rotation that made key version 2 and stopped before re-encrypting anything: the
    // head and every blob are still under version 1.
    let id = s.id("Photos");
    s.acct.create_key_version(id, Class::Standard, 2).unwrap();
    let drive = s.drive().unwrap();
    let photos = drive.open_category("Photos").unwrap();
    let f = photos.resolve(&[b"old.bin"]).unwrap();
    assert_eq!(photos.read(&f, 0, usize::MAX).unwrap(), data);
    // Without the old key object, the blobs under it cannot open: never served as if.
    s.acct.store.delete(&names::category_key(id, 1)).unwrap();
    let drive = s.drive().unwrap();
    assert!(matches!(
        drive.open_category("Photos"),
        Err(ReadError::Unavailable(_))
    ));
}

#[test]
fn another_accounts_store_is_refused() {
    let (a, b) = (Scene::new(), Scene::new());
    let e = Drive::open(b.acct.store.clone(), a.access.clone())
        .err()
        .unwrap();
    assert!(matches!(e, ReadError::BadManifest(_)), "{e}");
}
