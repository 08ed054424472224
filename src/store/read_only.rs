//! A store that refuses every write, under a read-only mount: whatever path of the
//! daemon would still try to write (a commit, an acknowledgement, an upload) fails with
//! [`StoreError::ReadOnly`] instead of touching the store.

use super::{Etag, ObjectInfo, Store, StoreError};
use std::sync::Arc;

pub struct ReadOnlyStore {
    inner: Arc<dyn Store>,
}

impl ReadOnlyStore {
    pub fn new(inner: Arc<dyn Store>) -> ReadOnlyStore {
        ReadOnlyStore { inner }
    }
}

impl Store for ReadOnlyStore {
    fn put(&self, name: &str, _data: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly(name.to_string()))
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        self.inner.get_range(name, offset, len)
    }
    fn put_if(&self, name: &str, _data: &[u8], _exp: Option<&Etag>) -> Result<Etag, StoreError> {
        Err(StoreError::ReadOnly(name.to_string()))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly(name.to_string()))
    }
    fn size(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.size(name)
    }
    fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list_info(prefix)
    }
    fn usage(&self) -> Option<(u64, u64)> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn reads_pass_through_and_every_write_is_refused() {
        let mem = Arc::new(MemStore::new());
        mem.put("a", b"one").unwrap();
        let ro = ReadOnlyStore::new(mem.clone());
        assert_eq!(ro.get("a").unwrap(), b"one");
        assert_eq!(ro.get_range("a", 1, 2).unwrap(), b"ne");
        assert_eq!(ro.list("").unwrap(), vec!["a".to_string()]);
        assert!(matches!(ro.put("b", b"x"), Err(StoreError::ReadOnly(n)) if n == "b"));
        assert!(matches!(
            ro.put_if("a", b"x", None),
            Err(StoreError::ReadOnly(_))
        ));
        assert!(matches!(ro.delete("a"), Err(StoreError::ReadOnly(_))));
        assert_eq!(mem.get("a").unwrap(), b"one");
        assert!(mem.get("b").is_err());
    }
}
