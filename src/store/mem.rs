//! An in-memory store for unit tests of the layers above; same contract as every backend.

use super::{Etag, Store, StoreError, check_name, etag_of};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        self.map().insert(name.to_string(), data.to_vec());
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        check_name(name)?;
        self.map()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(name.into()))
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let v = self.get(name)?;
        let start = (offset as usize).min(v.len());
        let end = start.saturating_add(len as usize).min(v.len());
        Ok(v[start..end].to_vec())
    }

    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError> {
        check_name(name)?;
        let mut m = self.map();
        let current = m.get(name).map(|v| etag_of(v));
        if current.as_ref() != expected {
            return Err(StoreError::PreconditionFailed(name.into()));
        }
        m.insert(name.to_string(), data.to_vec());
        Ok(etag_of(data))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .map()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        self.map()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StoreError::NotFound(name.into()))
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.get(name)?.len() as u64)
    }
}
