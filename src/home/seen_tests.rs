//! `SeenHeads`: what it records, that it survives a restart, and that it fails closed.

use super::*;

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes([b; 32])
}

fn open(path: &Path, k: u8) -> Result<SeenHeads, HomeError> {
    SeenHeads::load(path.to_path_buf(), key(k), None, false)
}

/// Panics on a thread while it holds the record's lock, as a bug in any caller would.
fn poison(seen: &SeenHeads) {
    std::thread::scope(|t| {
        assert!(t.spawn(|| seen.poison_for_test()).join().is_err());
    });
    assert!(seen.state.is_poisoned());
}

#[test]
fn records_only_higher_counters() {
    let d = tempfile::tempdir().unwrap();
    let seen = open(&d.path().join("seen"), 1).unwrap();
    assert_eq!(seen.head(7).unwrap(), None);
    seen.record_head(7, 5, [5; 32]).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((5, [5; 32])));
    // A lower or equal counter never replaces the higher one.
    seen.record_head(7, 3, [3; 32]).unwrap();
    seen.record_head(7, 5, [9; 32]).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((5, [5; 32])));
    seen.record_head(7, 6, [6; 32]).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((6, [6; 32])));
    assert_eq!(seen.head(8).unwrap(), None);
}

#[test]
fn survives_a_restart_and_needs_its_key() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("seen");
    {
        let seen = open(&p, 1).unwrap();
        seen.record_head(7, 5, [5; 32]).unwrap();
        seen.record_head(7 | (1 << 31), 4, [4; 32]).unwrap();
        seen.record_manifest(9, [9; 32]).unwrap();
        seen.record_table(10).unwrap();
    }
    let seen = open(&p, 1).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((5, [5; 32])));
    assert_eq!(seen.head(7 | (1 << 31)).unwrap(), Some((4, [4; 32])));
    assert_eq!(seen.table_seen().unwrap(), 10);
    assert_eq!(seen.manifest_seen().unwrap(), (10, [9; 32]));
    // Under another key the record is damaged, not empty.
    assert!(matches!(open(&p, 2), Err(HomeError::Damaged { .. })));
}

#[test]
fn the_plaintext_round_trips() {
    let s = Seen {
        table: 3,
        heads: [(1, (2, [7; 32])), (5, (9, [8; 32]))].into_iter().collect(),
        manifest: [4; 32],
    };
    let b = s.encode();
    assert_eq!(SeenHeads::reencode(&b).unwrap(), b);
}

#[test]
fn a_poisoned_record_fails_closed() {
    let d = tempfile::tempdir().unwrap();
    let seen = open(&d.path().join("seen"), 1).unwrap();
    seen.record_head(7, 5, [5; 32]).unwrap();
    seen.record_manifest(2, [2; 32]).unwrap();
    poison(&seen);
    // The old code answered "nothing seen" (None, 0), which turned off rollback checks.
    assert!(matches!(seen.head(7), Err(SeenError::Poisoned)));
    assert!(matches!(seen.head(8), Err(SeenError::Poisoned)));
    assert!(matches!(seen.table_seen(), Err(SeenError::Poisoned)));
    assert!(matches!(seen.manifest_seen(), Err(SeenError::Poisoned)));
    assert!(matches!(
        seen.record_head(7, 6, [6; 32]),
        Err(SeenError::Poisoned)
    ));
    assert!(seen.record_table(3).is_err());
    assert!(seen.record_manifest(3, [3; 32]).is_err());
    assert!(matches!(
        seen.record_head_soon(7, 6, [6; 32]),
        Err(SeenError::Poisoned)
    ));
}

/// A commit's record is in memory at once and reaches the disk by itself soon after, or
/// at a flush, or when the record is dropped (unmount), never going back.
#[test]
fn a_commit_s_record_is_seen_at_once_and_written_behind() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("seen");
    let on_disk = |id: u32| open(&p, 1).unwrap().head(id).unwrap();
    let seen = open(&p, 1).unwrap();
    // Not allowed yet (a CLI process, or the daemon before its fork): saved at once.
    seen.record_head_soon(7, 1, [1; 32]).unwrap();
    assert_eq!(on_disk(7), Some((1, [1; 32])));
    seen.allow_write_behind();
    seen.record_head_soon(7, 2, [2; 32]).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((2, [2; 32])));
    // A lower counter is ignored, as by record_head.
    seen.record_head_soon(7, 1, [9; 32]).unwrap();
    assert_eq!(seen.head(7).unwrap(), Some((2, [2; 32])));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while on_disk(7) != Some((2, [2; 32])) {
        assert!(std::time::Instant::now() < until, "never written behind");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    seen.record_head_soon(7, 3, [3; 32]).unwrap();
    seen.flush().unwrap();
    assert_eq!(on_disk(7), Some((3, [3; 32])));
    // What another process records meanwhile is merged, not overwritten.
    open(&p, 1).unwrap().record_head(9, 4, [4; 32]).unwrap();
    seen.record_head_soon(8, 1, [1; 32]).unwrap();
    drop(seen);
    assert_eq!(
        on_disk(8),
        Some((1, [1; 32])),
        "the drop writes the last one"
    );
    assert_eq!(on_disk(9), Some((4, [4; 32])));
    assert_eq!(on_disk(7), Some((3, [3; 32])));
}
