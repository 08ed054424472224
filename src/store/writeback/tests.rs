//! The write-back rules over an in-memory remote that can be switched off and that records
//! the order in which objects arrive.

use super::*;
use crate::store::MemStore;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct Remote {
    inner: MemStore,
    offline: AtomicBool,
    arrivals: Mutex<Vec<String>>,
    /// While set, a head upload waits (to catch it in flight).
    hold_heads: Mutex<bool>,
    held: Condvar,
    holding: AtomicBool,
    /// Puts of exactly this content take a while (to let a later put overtake them).
    slow_content: Mutex<Option<Vec<u8>>>,
}

impl Remote {
    fn check(&self) -> Result<(), StoreError> {
        if self.offline.load(Ordering::SeqCst) {
            Err(StoreError::Unreachable {
                endpoint: "test".into(),
                cause: "connection refused".into(),
                timed_out: false,
            })
        } else {
            Ok(())
        }
    }
}

impl Store for Remote {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        if self.slow_content.lock().unwrap().as_deref() == Some(data) {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.inner.put(name, data)?;
        self.arrivals.lock().unwrap().push(name.to_string());
        Ok(())
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.check()?;
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, o: u64, l: u64) -> Result<Vec<u8>, StoreError> {
        self.check()?;
        self.inner.get_range(name, o, l)
    }
    fn put_if(&self, name: &str, data: &[u8], e: Option<&Etag>) -> Result<Etag, StoreError> {
        self.check()?;
        let mut g = self.hold_heads.lock().unwrap();
        while *g {
            self.holding.store(true, Ordering::SeqCst);
            g = self.held.wait(g).unwrap();
        }
        drop(g);
        let r = self.inner.put_if(name, data, e)?;
        self.arrivals.lock().unwrap().push(name.to_string());
        Ok(r)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(name)
    }
    fn size(&self, name: &str) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.size(name)
    }
}

fn classify(name: &str) -> Policy {
    if let Some(h) = name.strip_prefix("packs/") {
        let hash = hex::decode(h).ok().and_then(|v| v.try_into().ok());
        Policy::Immutable(hash)
    } else if name.starts_with("a/") {
        Policy::Immutable(None)
    } else if name.starts_with("heads/") {
        Policy::Head
    } else {
        Policy::Through
    }
}

fn pack_name(data: &[u8]) -> String {
    format!("packs/{}", blake3::hash(data).to_hex())
}

struct Fixture {
    dir: tempfile::TempDir,
    remote: Arc<Remote>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            remote: Arc::new(Remote::default()),
        }
    }
    fn open(&self, opts: impl FnOnce(&mut WriteBackOptions)) -> Arc<WriteBack> {
        let mut o = WriteBackOptions::new(classify);
        opts(&mut o);
        WriteBack::open(
            self.remote.clone(),
            &self.dir.path().join("journal"),
            &self.dir.path().join("cache"),
            o,
        )
        .unwrap()
    }
}

fn drain(wb: &WriteBack) -> SyncStatus {
    wb.wait_drained(Some(Duration::from_secs(20)), &|| false, &mut |_| {})
}

#[test]
fn conforms_before_and_after_upload() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    crate::store::conformance::suite(&*wb);
    wb.start(3);
    let s = drain(&wb);
    assert_eq!(s.pending_objects, 0, "{s:?}");
    wb.stop();
    // The remote ends with the same objects the local view shows.
    assert_eq!(f.remote.inner.get("a/b/one").unwrap(), b"world!");
    assert_eq!(f.remote.inner.get("heads/1").unwrap(), b"v2");
}

#[test]
fn rewrites_of_one_name_reach_the_remote_in_order() {
    let f = Fixture::new();
    *f.remote.slow_content.lock().unwrap() = Some(b"old".to_vec());
    let wb = f.open(|_| {});
    for round in ["old", "new"] {
        for i in 0..4u32 {
            wb.put(&format!("a/{i}"), round.as_bytes()).unwrap();
        }
    }
    wb.start(8);
    let s = drain(&wb);
    assert_eq!(s.pending_objects, 0, "{s:?}");
    wb.stop();
    for i in 0..4u32 {
        assert_eq!(
            f.remote.inner.get(&format!("a/{i}")).unwrap(),
            b"new",
            "a/{i}"
        );
    }
}

#[test]
fn writes_return_before_upload_and_heads_go_after_their_objects() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    let p1 = vec![1u8; 5000];
    let p2 = vec![2u8; 7000];
    wb.put(&pack_name(&p1), &p1).unwrap();
    wb.put(&pack_name(&p2), &p2).unwrap();
    let e1 = wb.put_if("heads/00000001", b"head 1", None).unwrap();
    // A second commit before anything was sent: one slot, still based on "absent".
    let p3 = vec![3u8; 100];
    wb.put(&pack_name(&p3), &p3).unwrap();
    wb.put_if("heads/00000001", b"head 2", Some(&e1)).unwrap();
    assert!(
        f.remote.inner.list("").unwrap().is_empty(),
        "nothing sent yet"
    );
    assert_eq!(wb.get("heads/00000001").unwrap(), b"head 2");
    assert_eq!(wb.get_range(&pack_name(&p2), 10, 5).unwrap(), vec![2; 5]);
    let s = wb.status();
    assert_eq!(s.pending_objects, 4);
    assert_eq!(s.pending_bytes, 5000 + 7000 + 100 + 6);
    wb.start(4);
    let s = drain(&wb);
    wb.stop();
    assert_eq!((s.pending_objects, s.pending_bytes), (0, 0), "{s:?}");
    let arrivals = f.remote.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 4, "{arrivals:?}");
    assert_eq!(arrivals.last().unwrap(), "heads/00000001", "{arrivals:?}");
    assert_eq!(f.remote.inner.get("heads/00000001").unwrap(), b"head 2");
    // Served from the disk cache now, not the remote.
    f.remote.offline.store(true, Ordering::SeqCst);
    assert_eq!(wb.get(&pack_name(&p1)).unwrap(), p1);
}

#[test]
fn a_head_published_elsewhere_is_a_conflict_and_nothing_is_lost() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    let e0 = wb.put_if("heads/00000002", b"base", None).unwrap();
    wb.start(2);
    drain(&wb);
    // Another device moves the head on.
    f.remote
        .inner
        .put_if("heads/00000002", b"theirs", Some(&e0))
        .unwrap();
    wb.put_if("heads/00000002", b"mine", Some(&e0)).unwrap();
    let s = drain(&wb);
    wb.stop();
    assert_eq!(s.conflicts.len(), 1, "{s:?}");
    assert!(s.conflicts[0].starts_with("heads/00000002"), "{s:?}");
    assert_eq!(f.remote.inner.get("heads/00000002").unwrap(), b"theirs");
    // The local head is still ours and still queued, also after a restart.
    assert_eq!(wb.get("heads/00000002").unwrap(), b"mine");
    drop(wb);
    let wb = f.open(|_| {});
    assert_eq!(wb.status().pending_objects, 1);
    assert_eq!(wb.get("heads/00000002").unwrap(), b"mine");
}

#[test]
fn a_restart_resumes_the_queue_and_a_lost_answer_is_no_conflict() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    let p = vec![9u8; 3000];
    wb.put(&pack_name(&p), &p).unwrap();
    wb.put_if("heads/00000003", b"h1", None).unwrap();
    drop(wb);
    // The head reached the remote, but the process died before the journal knew.
    f.remote
        .inner
        .put_if("heads/00000003", b"h1", None)
        .unwrap();
    let wb = f.open(|_| {});
    assert_eq!(wb.status().pending_objects, 2);
    wb.start(2);
    let s = drain(&wb);
    wb.stop();
    assert_eq!(s.pending_objects, 0, "{s:?}");
    assert!(s.conflicts.is_empty(), "{s:?}");
    assert_eq!(f.remote.inner.get(&pack_name(&p)).unwrap(), p);
}

#[test]
fn offline_writes_queue_reads_fail_fast_and_the_queue_drains_later() {
    let f = Fixture::new();
    let wb = f.open(|o| o.offline_retry = Duration::from_secs(60));
    let old = vec![4u8; 1000];
    f.remote.inner.put(&pack_name(&old), &old).unwrap();
    f.remote.offline.store(true, Ordering::SeqCst);
    wb.start(2);
    let p = vec![5u8; 2000];
    wb.put(&pack_name(&p), &p).unwrap();
    assert_eq!(wb.get(&pack_name(&p)).unwrap(), p, "queued data reads back");
    assert!(matches!(
        wb.get(&pack_name(&old)),
        Err(StoreError::Unreachable { .. })
    ));
    let t = Instant::now();
    let e = wb.get_range(&pack_name(&old), 0, 10).unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(100), "fails fast: {e}");
    let s = wb.wait_drained(Some(Duration::from_millis(1500)), &|| false, &mut |_| {});
    assert!(s.offline, "{s:?}");
    assert_eq!(s.pending_objects, 1);
    assert!(
        s.last_error
            .as_ref()
            .is_some_and(|e| e.1.contains("connection refused")),
        "{s:?}"
    );
    f.remote.offline.store(false, Ordering::SeqCst);
    wb.kick();
    let s = drain(&wb);
    wb.stop();
    assert_eq!(s.pending_objects, 0, "{s:?}");
    assert!(!s.offline);
    assert_eq!(f.remote.inner.get(&pack_name(&p)).unwrap(), p);
}

#[test]
fn a_full_journal_refuses_writes_and_keeps_what_it_has() {
    let f = Fixture::new();
    let wb = f.open(|o| o.journal_max = 10_000);
    let a = vec![1u8; 6000];
    let b = vec![2u8; 6000];
    wb.put(&pack_name(&a), &a).unwrap();
    assert!(matches!(
        wb.put(&pack_name(&b), &b),
        Err(StoreError::Full(_))
    ));
    assert_eq!(wb.get(&pack_name(&a)).unwrap(), a);
    wb.start(1);
    drain(&wb);
    wb.stop();
    wb.put(&pack_name(&b), &b).unwrap();
}

#[test]
fn a_corrupted_remote_object_is_refused_not_cached() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    let p = vec![6u8; 4000];
    let name = pack_name(&p);
    let mut bad = p.clone();
    bad[100] ^= 1;
    f.remote.inner.put(&name, &bad).unwrap();
    assert!(matches!(
        wb.get_range(&name, 0, 10),
        Err(StoreError::Corrupt(_))
    ));
    f.remote.inner.put(&name, &p).unwrap();
    assert_eq!(wb.get_range(&name, 100, 1).unwrap(), vec![6]);
}

#[test]
fn offline_reads_of_through_objects_use_the_cached_copy() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    wb.put("account/manifest", b"m1").unwrap();
    f.remote.offline.store(true, Ordering::SeqCst);
    assert_eq!(wb.get("account/manifest").unwrap(), b"m1");
    assert!(wb.put("account/manifest", b"m2").is_err(), "write-through");
}

fn release(remote: &Remote) {
    *remote.hold_heads.lock().unwrap() = false;
    remote.held.notify_all();
}

fn wait_holding(remote: &Remote) {
    let t = Instant::now();
    while !remote.holding.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the head upload never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn head_files(f: &Fixture) -> usize {
    std::fs::read_dir(f.dir.path().join("journal/heads"))
        .unwrap()
        .count()
}

#[test]
fn a_head_replaced_while_on_its_way_is_rebased_and_nothing_leaks() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    let e1 = wb.put_if("heads/00000005", b"h1", None).unwrap();
    *f.remote.hold_heads.lock().unwrap() = true;
    wb.start(2);
    wait_holding(&f.remote);
    // h1 is on its way; the volume commits h2 on top of it.
    wb.put_if("heads/00000005", b"h2", Some(&e1)).unwrap();
    assert_eq!(wb.status().pending_bytes, 2, "only h2 counts");
    release(&f.remote);
    let s = drain(&wb);
    wb.stop();
    assert_eq!((s.pending_objects, s.pending_bytes), (0, 0), "{s:?}");
    assert!(s.conflicts.is_empty(), "h2 was rebased onto h1: {s:?}");
    assert_eq!(f.remote.inner.get("heads/00000005").unwrap(), b"h2");
    assert_eq!(head_files(&f), 0, "no journal file left behind");
}

#[test]
fn a_rebase_while_a_head_is_on_its_way_drops_it_cleanly() {
    let f = Fixture::new();
    let wb = f.open(|_| {});
    wb.put_if("heads/00000006", b"mine", None).unwrap();
    // Another device publishes first.
    f.remote
        .inner
        .put_if("heads/00000006", b"theirs", None)
        .unwrap();
    *f.remote.hold_heads.lock().unwrap() = true;
    wb.start(1);
    wait_holding(&f.remote);
    // The merge (done above this layer) takes "theirs" as the base; the merged head
    // replaces "mine".
    wb.rebase("heads/00000006", b"theirs");
    assert_eq!(
        wb.head_base("heads/00000006").as_deref(),
        Some(&b"theirs"[..])
    );
    let e = etag_of(b"theirs");
    wb.put_if("heads/00000006", b"merged", Some(&e)).unwrap();
    release(&f.remote);
    let s = drain(&wb);
    wb.stop();
    assert_eq!((s.pending_objects, s.pending_bytes), (0, 0), "{s:?}");
    assert!(s.conflicts.is_empty(), "{s:?}");
    assert_eq!(f.remote.inner.get("heads/00000006").unwrap(), b"merged");
    assert_eq!(head_files(&f), 0);
}
