//! An attacker who holds the store and the key service's directory (the server side) but
//! not the device: standard categories decrypt (that is what makes data recovery
//! possible), e2e categories do not.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cirrus::cache::ChunkCache;
use cirrus::format::names;
use cirrus::format::table::Class;
use cirrus::keys::category_key_context;
use cirrus::keyservice::{EmbeddedKeyService, ServiceKeys};
use cirrus::store::{LocalStore, Store};
use cirrus::volume::{Category, CategorySetup, NoWitness, ROOT_INO, VolumeOptions};
use common::*;
use std::fs;
use std::sync::Arc;

#[test]
fn server_side_reads_standard_categories_but_not_e2e() {
    let mut d = Drive::mount();
    fs::write(
        d.notes().join("standard.txt"),
        b"recoverable by the service",
    )
    .unwrap();
    fs::write(d.health().join("e2e.txt"), b"only my devices").unwrap();
    d.unmount();

    // What the attacker has: the store and the key service's state, nothing of the device.
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(d.home.join("store")).unwrap());
    let service = EmbeddedKeyService::open(&d.home.join("keyservice")).unwrap();
    // The manifest with the category table is signed, not encrypted: readable by anyone.
    let table = store_table(&d.home);

    let mut standard_read = 0;
    for e in table.active() {
        let obj = store
            .get(&names::category_key(e.id, e.key_version))
            .unwrap();
        let key = service.unwrap(
            category_key_context(e.id, e.key_version),
            &obj[1..],
            &e.name,
        );
        match e.class {
            Class::E2e => assert!(key.is_err(), "the server unwrapped e2e key of {}", e.name),
            Class::Standard | Class::Transit => {
                let key = key.unwrap_or_else(|err| panic!("{}: {err}", e.name));
                if e.name != "Notes" {
                    continue;
                }
                let cat = Category::open(
                    CategorySetup {
                        entry: e.clone(),
                        key,
                        key_version: e.key_version,
                        old_key: None,
                    },
                    store.clone(),
                    Arc::new(ChunkCache::new(1 << 20)),
                    Arc::new(NoWitness),
                    VolumeOptions {
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
                let n = cat.lookup(ROOT_INO, b"standard.txt").unwrap();
                let data = cat.read(n.ino, 0, 4096).unwrap();
                assert_eq!(data, b"recoverable by the service");
                standard_read += 1;
            }
        }
    }
    assert_eq!(standard_read, 1, "the Notes category must have been read");
    // Without the device, the e2e bytes appear nowhere in the clear either.
    for p in files_under(&d.home.join("store")) {
        let b = fs::read(&p).unwrap();
        assert!(!b.windows(15).any(|w| w == b"only my devices"));
    }
}
