//! The home's record of heads seen, as the volume's [`HeadWitness`]. The impl lives here,
//! in the layer above both, so that neither `home` nor `volume` names the other
//! (ARCHITECTURE.md, "Layers").

use crate::home::{SeenError, SeenHeads};
use crate::volume::{HeadWitness, WitnessError};

impl From<SeenError> for WitnessError {
    fn from(e: SeenError) -> Self {
        match e {
            SeenError::Poisoned => WitnessError::Unavailable,
            SeenError::Save(why) => WitnessError::Save(why),
        }
    }
}

impl HeadWitness for SeenHeads {
    fn seen(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        Ok(self.head(category)?)
    }

    fn record(&self, category: u32, counter: u64, hash: [u8; 32]) -> Result<(), WitnessError> {
        Ok(self.record_head(category, counter, hash)?)
    }

    fn record_committed(
        &self,
        category: u32,
        counter: u64,
        hash: [u8; 32],
    ) -> Result<(), WitnessError> {
        Ok(self.record_head_soon(category, counter, hash)?)
    }

    fn flush(&self) -> Result<(), WitnessError> {
        Ok(SeenHeads::flush(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ChunkCache;
    use crate::crypto::SecretKey;
    use crate::format::names;
    use crate::store::{MemStore, Store};
    use crate::volume::{Category, CategorySetup, NewNode, ROOT_INO, VolError, VolumeOptions};
    use std::sync::Arc;

    fn open(store: &Arc<dyn Store>, seen: &Arc<SeenHeads>) -> Arc<Category> {
        Category::open(
            CategorySetup::standard(3, "Photos", SecretKey::from_bytes([1; 32]), 1, None),
            store.clone(),
            Arc::new(ChunkCache::new(1 << 20)),
            seen.clone(),
            VolumeOptions::offline(Arc::new(crate::volume::UnsignedHeads), Some(2)),
        )
    }

    fn add_file(c: &Category, name: &str) {
        let node = NewNode {
            mode: libc::S_IFREG | 0o644,
            rdev: 0,
            uid: 0,
            gid: 0,
            target: None,
            umask: 0,
            inherit_acl: true,
        };
        c.create_node(ROOT_INO, name.as_bytes(), node).unwrap();
        c.commit().unwrap();
    }

    fn seen_heads(dir: &std::path::Path) -> Arc<SeenHeads> {
        let key = SecretKey::from_bytes([2; 32]);
        Arc::new(SeenHeads::load(dir.join("seen"), key, None, false).unwrap())
    }

    #[test]
    fn a_store_serving_an_older_head_is_a_rollback() {
        let d = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let seen = seen_heads(d.path());
        let c = open(&store, &seen);
        add_file(&c, "a");
        let old = store.get(&names::head(3)).unwrap();
        add_file(&c, "b");
        assert!(seen.seen(3).unwrap().is_some_and(|(n, _)| n >= 2));
        drop(c);
        // The store puts the older head back; a fresh open with the record must refuse it.
        store.put(&names::head(3), &old).unwrap();
        let c = open(&store, &seen);
        let e = c.getattr(ROOT_INO).unwrap_err();
        assert!(matches!(e, VolError::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains("rollback"), "{e}");
        // After a restart too (the record is on disk once flushed, as at unmount).
        HeadWitness::flush(&*seen).unwrap();
        let c = open(&store, &seen_heads(d.path()));
        assert!(matches!(
            c.getattr(ROOT_INO),
            Err(VolError::Unavailable { .. })
        ));
    }

    #[test]
    fn a_poisoned_record_makes_the_category_unavailable_not_unchecked() {
        let d = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let seen = seen_heads(d.path());
        add_file(&open(&store, &seen), "a");
        // A panic of any thread that holds the record, as a bug would cause.
        std::thread::scope(|t| {
            assert!(t.spawn(|| seen.poison_for_test()).join().is_err());
        });
        assert!(matches!(seen.seen(3), Err(WitnessError::Unavailable)));
        assert!(matches!(
            seen.record(3, 9, [0; 32]),
            Err(WitnessError::Unavailable)
        ));
        // Loading the category needs the check, so it fails closed (EIO), even though
        // the store's head is the genuine newest one.
        let c = open(&store, &seen);
        assert!(matches!(
            c.getattr(ROOT_INO),
            Err(VolError::Unavailable { .. })
        ));
    }
}
