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
}
