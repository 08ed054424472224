//! Unit tests of `sync.rs`: the poll report's schema and what the acknowledgement tells
//! gc (clean polls, revivals).

use super::*;

#[test]
fn civil_dates() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(11_016 * 86_400), "2000-02-29");
    assert_eq!(utc_date(20_785 * 86_400 + 86_399), "2026-11-28");
    assert_eq!(utc_date(-1), "1969-12-31");
}

/// The report is `cirrus sync --json`'s `pull`: its names are the documented schema.
#[test]
fn a_poll_report_names_every_category_with_its_outcome() {
    let mut r = PollReport::default();
    r.push("Notes", PollOutcome::Merged, 2);
    r.push("Photos", PollOutcome::FastForward, 0);
    r.push("Mail", PollOutcome::Refused, 0);
    r.failed("Health", "Health: rollback detected".into());
    r.add_unchanged(["Notes", "Drive"].into_iter());
    assert_eq!(r.pulled(), ["Notes", "Photos"]);
    assert_eq!(r.refused(), ["Mail"]);
    assert_eq!(r.copies(), 2);
    assert_eq!(r.errors(), ["Health: rollback detected"]);
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["unreachable"], serde_json::Value::Null);
    let outcomes: Vec<_> = j["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("Notes", "merged"),
            ("Photos", "fast_forward"),
            ("Mail", "refused"),
            ("Health", "failed"),
            ("Drive", "unchanged"),
        ]
    );
    assert_eq!(j["categories"][0]["conflict_copies"], 2);
    assert_eq!(j["categories"][3]["error"], "Health: rollback detected");
    let back: PollReport = serde_json::from_value(j).unwrap();
    assert_eq!(back, r);
}

type Sent = Arc<Mutex<Vec<GcAck>>>;
type Fixture = (
    Syncer,
    Arc<dyn crate::store::Store>,
    Sent,
    tempfile::TempDir,
);

/// A syncer with no category over a memory store whose gc header is at `epoch`, and
/// the acknowledgements it writes.
fn syncer_at(epoch: u64) -> Fixture {
    syncer_with(epoch, |_| Vec::new())
}

/// [`syncer_at`] with the categories `cats` opens over the store.
fn syncer_with(
    epoch: u64,
    cats: impl FnOnce(&Arc<dyn crate::store::Store>) -> Vec<Arc<Category>>,
) -> Fixture {
    use crate::store::writeback::{Policy, WriteBackOptions};
    let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::MemStore::new());
    set_epoch(&*store, epoch);
    let dir = tempfile::tempdir().unwrap();
    let opts = WriteBackOptions::new(|_| Policy::Through);
    let wb = WriteBack::open(
        store.clone(),
        &dir.path().join("j"),
        &dir.path().join("c"),
        opts,
    )
    .unwrap();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let sent = acks.clone();
    let hooks = AccountHooks {
        keys: Box::new(|_, _| Err(HookError::Busy)),
        ack: Box::new(move |_, _, _, gc| {
            sent.lock().unwrap().push(gc);
            Ok(())
        }),
        acked_heads: Box::new(|| Ok(HashMap::new())),
        release: Box::new(|_| Ok(Vec::new())),
    };
    let sy = Syncer::new(cats(&store), wb, "b".into(), hooks);
    (sy, store, acks, dir)
}

fn set_epoch(store: &dyn crate::store::Store, epoch: u64) {
    let m = gc_marks::Marks {
        epoch,
        ..Default::default()
    };
    store
        .put(gc_marks::GC_MARKS, &gc_marks::encode(&m))
        .unwrap();
}

#[test]
fn the_first_clean_poll_of_a_mount_says_gc_revived() {
    // An earlier mount may have published a merge and stopped before acknowledging
    // it, with nothing left in the journal: the first clean poll still says so.
    let (sy, _store, acks, _dir) = syncer_at(4);
    sy.poll(true);
    let last = *acks.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        GcAck {
            epoch: 4,
            revived: 5
        }
    );
    assert!(!sy.acknowledge_revival(), "said once: nothing pending");
}

#[test]
fn a_revival_is_acknowledged_before_the_daemon_stops() {
    let (sy, store, acks, _dir) = syncer_at(4);
    sy.poll(true);
    // A merge after that (its head now uploaded), gc ran meanwhile: the unmount
    // acknowledges it without waiting for the next background poll.
    sy.may_revive();
    set_epoch(&*store, 6);
    assert!(sy.acknowledge_revival());
    let last = *acks.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        GcAck {
            epoch: 6,
            revived: 7
        }
    );
}

#[test]
fn uncommitted_changes_keep_a_poll_from_counting_as_clean() {
    let cat = std::cell::RefCell::new(None);
    let (sy, store, acks, _dir) = syncer_with(4, |store| {
        let c = crate::volume::testing::open(store, 3);
        crate::volume::testing::write_file(&c, "a", b"old");
        *cat.borrow_mut() = Some(c.clone());
        vec![c]
    });
    let c = cat.into_inner().unwrap();
    sy.poll(true);
    let last = *acks.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        GcAck {
            epoch: 4,
            revived: 5
        },
        "committed: clean"
    );
    // gc runs; then an edit not committed yet (its pack may already be in the
    // store): the epoch read at the start of the next poll is not acknowledged.
    set_epoch(&*store, 6);
    let f = c.lookup(crate::volume::ROOT_INO, b"a").unwrap();
    c.write(f.ino, 0, b"new", false).unwrap();
    assert!(c.is_dirty());
    sy.poll(true);
    let last = *acks.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        GcAck {
            epoch: 4,
            revived: 5
        }
    );
}

/// Changes made on the web (FORMAT.md §9f): a poll applies them once; a replayed one, or
/// anything under the inbox that does not open as a change sealed here (a huge number
/// included), never applies and never moves `web_seq`.
#[test]
fn web_changes_apply_once_and_garbage_moves_nothing() {
    use crate::format::web_change::{self, WebChange, WebOp};
    let (sy, store, _acks, _dir) = syncer_with(1, |s| vec![crate::volume::testing::open(s, 3)]);
    let c = sy.cats[0].clone();
    let mkdir = |seq: u64, name: &str| WebChange::sample(seq, &[], name, WebOp::Mkdir);
    let first = c.seal_web_change(&mkdir(1, "from the web")).unwrap();
    store.put(&web_change::change_name(3, 1), &first).unwrap();
    store
        .put(&web_change::change_name(3, u64::MAX), b"garbage!")
        .unwrap();
    let rep = sy.poll(true);
    assert_eq!(
        rep.categories.iter().map(|p| p.web_changes).sum::<usize>(),
        1
    );
    assert!(c.lookup(crate::volume::ROOT_INO, b"from the web").is_ok());
    assert_eq!(c.web_seq(), 1, "the garbage moved nothing");
    // The head in the store now holds change 1: the next poll deletes it.
    sy.poll(true);
    assert!(store.get(&web_change::change_name(3, 1)).is_err());
    // Replayed after the folder was removed: ignored, the folder stays gone.
    c.rmdir(crate::volume::ROOT_INO, b"from the web").unwrap();
    store.put(&web_change::change_name(3, 1), &first).unwrap();
    let second = c.seal_web_change(&mkdir(2, "next")).unwrap();
    store.put(&web_change::change_name(3, 2), &second).unwrap();
    sy.poll(true);
    assert!(c.lookup(crate::volume::ROOT_INO, b"from the web").is_err());
    assert!(c.lookup(crate::volume::ROOT_INO, b"next").is_ok());
    assert_eq!(c.web_seq(), 2);
}

#[test]
fn a_command_takes_web_changes_in_itself_and_stops_on_one_that_waits() {
    use crate::format::web_change::{self, WebChange, WebOp};
    use crate::store::{MemStore, Store};
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let c = crate::volume::testing::open(&store, 3);
    let change = |seq: u64, name: &str, op: WebOp| WebChange::sample(seq, &[], name, op);
    let put = |ch: &WebChange| {
        let obj = c.seal_web_change(ch).unwrap();
        store
            .put(&web_change::change_name(3, ch.seq), &obj)
            .unwrap();
    };
    put(&change(1, "made", WebOp::Mkdir));
    assert_eq!(super::web::take_in_now(&c, &*store), Ok(1));
    assert!(c.lookup(crate::volume::ROOT_INO, b"made").is_ok());
    assert_eq!(c.web_seq(), 1);
    // An upload whose part is not in the store (yet): the command must not go on.
    let part = c.seal_web_part(&[2; 16], 0, &[5; 10]).unwrap();
    let up = change(
        2,
        "up.bin",
        WebOp::Upload {
            size: 10,
            mtime: 0,
            replaces: None,
            parts: vec![crate::crypto::hash(&part)],
        },
    );
    put(&up);
    assert!(super::web::take_in_now(&c, &*store).is_err());
    assert_eq!(c.web_seq(), 1, "nothing moved");
    assert!(c.lookup(crate::volume::ROOT_INO, b"up.bin").is_err());
    store
        .put(&web_change::part_name(3, &[2; 16], 0), &part)
        .unwrap();
    assert_eq!(super::web::take_in_now(&c, &*store), Ok(1));
    assert_eq!(c.web_seq(), 2);
}
