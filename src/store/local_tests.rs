//! A shared local store never follows a symbolic link below its root: a link as a
//! directory component or as the object itself is refused by every operation, and
//! nothing outside the store is read or written.

use super::*;
use std::os::unix::fs::symlink;

struct Setup {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    root: PathBuf,
    outside: PathBuf,
    store: LocalStore,
}

/// A store with `packs` a link to a directory outside it (holding `ab/x`), and
/// `account/manifest` a link to a file outside it.
fn setup() -> Setup {
    let d = tempfile::tempdir().unwrap();
    let o = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    let outside = o.path().to_path_buf();
    std::fs::create_dir_all(outside.join("ab")).unwrap();
    std::fs::write(outside.join("ab/x"), b"outside pack").unwrap();
    std::fs::write(outside.join("secret"), b"outside file").unwrap();
    let store = LocalStore::create(root.clone()).unwrap();
    store.put("account/other", b"inside").unwrap();
    symlink(&outside, root.join("packs")).unwrap();
    symlink(outside.join("secret"), root.join("account/manifest")).unwrap();
    Setup {
        _dirs: (d, o),
        root,
        outside,
        store,
    }
}

fn is_refused(r: Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(r, Err(StoreError::Refused { .. }))
}

/// What the outside directory holds, to show nothing was written or removed there.
fn outside_state(s: &Setup) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for n in ["ab/x", "secret"] {
        v.push((n.to_string(), std::fs::read(s.outside.join(n)).unwrap()));
    }
    let mut names: Vec<_> = std::fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    v.push((names.join(","), Vec::new()));
    v
}

#[test]
fn a_linked_directory_component_is_refused_by_every_operation() {
    linked_directory_component_refused();
}

#[test]
fn a_linked_object_is_refused_by_every_operation() {
    linked_object_refused();
}

/// The same on a kernel without `openat2` (the walk), and the contract still holds there.
#[test]
fn without_openat2_links_are_refused_the_same() {
    super::beneath::FORCE_WALK.with(|f| f.set(true));
    linked_directory_component_refused();
    linked_object_refused();
    let d = tempfile::tempdir().unwrap();
    crate::store::conformance::suite(&LocalStore::create(d.path().join("s")).unwrap());
}

fn linked_directory_component_refused() {
    let s = setup();
    let before = outside_state(&s);
    let st = &s.store;
    assert!(is_refused(st.get("packs/ab/x")));
    assert!(is_refused(st.get_range("packs/ab/x", 0, 4)));
    assert!(is_refused(st.size("packs/ab/x")));
    assert!(is_refused(st.put("packs/ab/x", b"overwrite")));
    assert!(is_refused(st.put("packs/ab/new", b"new")));
    assert!(is_refused(st.put("packs/cd/new", b"new dir")));
    assert!(is_refused(st.put_if("packs/ab/x", b"cas", None)));
    assert!(is_refused(st.delete("packs/ab/x")));
    assert!(st.list("packs/").unwrap().is_empty());
    assert!(
        st.list_info("")
            .unwrap()
            .iter()
            .all(|o| !o.name.starts_with("packs"))
    );
    assert_eq!(outside_state(&s), before);
    assert!(!s.outside.join("cd").exists());
}

fn linked_object_refused() {
    let s = setup();
    let before = outside_state(&s);
    let st = &s.store;
    let name = "account/manifest";
    assert!(is_refused(st.get(name)));
    assert!(is_refused(st.get_range(name, 0, 4)));
    assert!(is_refused(st.size(name)));
    assert!(is_refused(st.put(name, b"overwrite")));
    assert!(is_refused(st.put_if(name, b"cas", None)));
    assert!(is_refused(st.delete(name)));
    let listed = st.list("account/").unwrap();
    assert_eq!(listed, vec!["account/other".to_string()]);
    let info = st.list_info("").unwrap();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(outside_state(&s), before);
    // The link is still there, untouched: neither replaced nor removed.
    assert!(
        std::fs::symlink_metadata(s.root.join(name))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_fifo_in_the_store_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let st = LocalStore::create(d.path().join("s")).unwrap();
    std::fs::create_dir(d.path().join("s/heads")).unwrap();
    let c =
        std::ffi::CString::new(d.path().join("s/heads/1").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(is_refused(st.get("heads/1")));
    assert!(st.list("").unwrap().is_empty());
}

#[test]
fn the_root_may_be_a_link_and_is_resolved_once() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("real")).unwrap();
    symlink(d.path().join("real"), d.path().join("link")).unwrap();
    let st = LocalStore::open(d.path().join("link")).unwrap();
    st.put("a/b", b"x").unwrap();
    assert_eq!(std::fs::read(d.path().join("real/a/b")).unwrap(), b"x");
    assert_eq!(
        st.root(),
        std::fs::canonicalize(d.path().join("real")).unwrap()
    );
    // Repointing the link afterwards does not move the store.
    std::fs::create_dir(d.path().join("other")).unwrap();
    std::fs::remove_file(d.path().join("link")).unwrap();
    symlink(d.path().join("other"), d.path().join("link")).unwrap();
    st.put("a/c", b"y").unwrap();
    assert!(d.path().join("real/a/c").exists());
    assert!(!d.path().join("other/a").exists());
}

#[test]
fn list_prunes_by_prefix_and_keeps_every_match() {
    let d = tempfile::tempdir().unwrap();
    let st = LocalStore::create(d.path().join("s")).unwrap();
    for n in ["packs/ab/1", "packs/cd/2", "pa", "heads/1", "x"] {
        st.put(n, b"v").unwrap();
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(st.list("pa").unwrap()),
        ["pa", "packs/ab/1", "packs/cd/2"]
    );
    assert_eq!(sorted(st.list("packs/a").unwrap()), ["packs/ab/1"]);
    assert_eq!(st.list("").unwrap().len(), 5);
    let info = st.list_info("heads/").unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].size, 1);
    assert!(info[0].modified.is_some());
}

#[test]
fn a_huge_sparse_file_in_the_store_is_refused_without_allocating_it() {
    let d = tempfile::tempdir().unwrap();
    let st = LocalStore::create(d.path().join("s")).unwrap();
    std::fs::create_dir(d.path().join("s/packs")).unwrap();
    let f = std::fs::File::create(d.path().join("s/packs/big")).unwrap();
    // A terabyte on paper, nothing on disk: preallocating it would abort the process.
    f.set_len(1 << 40).unwrap();
    assert!(is_refused(st.get("packs/big")));
    f.set_len(10).unwrap();
    assert_eq!(st.get("packs/big").unwrap(), vec![0u8; 10]);
}
