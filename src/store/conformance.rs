//! One conformance suite, run against every backend: the unit tests below run it on the
//! local and memory stores, and `tests/store_s3.rs` on S3 against a real server. Public
//! (and so compiled into the library) only so integration tests can reach it; it panics
//! on the first broken rule, as a test should.
// A test suite: a panic is a broken rule, so unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Checks the `Store` contract on an empty store; panics on the first violation.
pub fn suite(s: &dyn Store) {
    // put/get round trip and overwrite
    s.put("a/b/one", b"hello").unwrap();
    assert_eq!(s.get("a/b/one").unwrap(), b"hello");
    s.put("a/b/one", b"world!").unwrap();
    assert_eq!(s.get("a/b/one").unwrap(), b"world!");
    assert_eq!(s.size("a/b/one").unwrap(), 6);
    // ranges, including past the end
    assert_eq!(s.get_range("a/b/one", 1, 3).unwrap(), b"orl");
    assert_eq!(s.get_range("a/b/one", 4, 100).unwrap(), b"d!");
    assert_eq!(s.get_range("a/b/one", 100, 4).unwrap(), b"");
    // not found
    assert!(matches!(s.get("a/none"), Err(StoreError::NotFound(_))));
    assert!(matches!(s.delete("a/none"), Err(StoreError::NotFound(_))));
    // invalid names
    for bad in ["", "../x", "a//b", "A", "a/./b", "x y", "/abs"] {
        assert!(
            matches!(s.put(bad, b"x"), Err(StoreError::InvalidName(_))),
            "{bad:?} accepted"
        );
    }
    // list by prefix
    s.put("a/c", b"1").unwrap();
    s.put("b/d", b"2").unwrap();
    let mut l = s.list("a/").unwrap();
    l.sort();
    assert_eq!(l, vec!["a/b/one".to_string(), "a/c".to_string()]);
    // conditional create and update
    let e1 = s.put_if("heads/1", b"v1", None).unwrap();
    assert!(matches!(
        s.put_if("heads/1", b"v1b", None),
        Err(StoreError::PreconditionFailed(_))
    ));
    let e2 = s.put_if("heads/1", b"v2", Some(&e1)).unwrap();
    assert!(matches!(
        s.put_if("heads/1", b"v3", Some(&e1)),
        Err(StoreError::PreconditionFailed(_))
    ));
    assert_eq!(s.get("heads/1").unwrap(), b"v2");
    assert_eq!(e2, etag_of(b"v2"));
    // delete
    s.delete("a/c").unwrap();
    assert!(matches!(s.get("a/c"), Err(StoreError::NotFound(_))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_conforms() {
        suite(&MemStore::new());
    }

    #[test]
    fn local_store_conforms() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStore::create(d.path().join("store")).unwrap();
        suite(&s);
        // no temp files left behind
        let leftovers: Vec<_> = s.list("").unwrap();
        assert!(leftovers.iter().all(|n| !n.contains(".tmp")));
    }

    #[test]
    fn local_store_concurrent_cas_has_one_winner() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(LocalStore::create(d.path().join("s")).unwrap());
        let base = s.put_if("heads/x", b"base", None).unwrap();
        let wins: usize = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.put_if("heads/x", format!("w{i}").as_bytes(), Some(&base))
                        .is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum();
        assert_eq!(wins, 1);
    }

    #[test]
    fn missing_local_store_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(LocalStore::open(d.path().join("nope")).is_err());
    }
}
