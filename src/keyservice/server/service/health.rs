//! `GET /healthz`'s question to the service: does its database answer? Kept apart so the
//! HTTP front asks it without knowing the storage.

use super::KeyService;

impl KeyService {
    /// Whether the service's storage answers. Blocking (it touches the storage): the
    /// front runs it on a blocking thread with a timeout.
    pub(crate) fn healthy(&self) -> bool {
        match self.db.ping() {
            Ok(()) => true,
            Err(e) => {
                log::warn!("health check: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ServiceConfig;
    use super::*;

    #[test]
    fn healthy_while_the_database_answers() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cfg = ServiceConfig {
            verifier_memory_kib: 8,
            verifier_time: 1,
            ..ServiceConfig::default()
        };
        let svc = KeyService::open(&super::super::StoreOptions::in_dir(&data), cfg, true).unwrap();
        assert!(svc.healthy());
        std::fs::rename(&data, dir.path().join("moved")).unwrap();
        assert!(!svc.healthy());
    }
}
