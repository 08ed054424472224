//! `GET /healthz`'s question to the service: can it reach its storage? Kept apart so the
//! storage back-end can answer it its own way (a database ping) without touching the
//! HTTP front.

use super::KeyService;

impl KeyService {
    /// Whether the service's storage answers. Blocking (it touches the storage): the
    /// front runs it on a blocking thread with a timeout.
    pub(crate) fn healthy(&self) -> bool {
        // For the DATA directory: it can still be listed. A lost mount or a directory
        // made unreadable fails here before the first request that needs it.
        std::fs::read_dir(self.data.root()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ServiceConfig;
    use super::*;

    #[test]
    fn healthy_while_data_can_be_listed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cfg = ServiceConfig {
            verifier_memory_kib: 8,
            verifier_time: 1,
            ..ServiceConfig::default()
        };
        let svc = KeyService::open(&data, cfg).unwrap();
        assert!(svc.healthy());
        std::fs::rename(&data, dir.path().join("moved")).unwrap();
        assert!(!svc.healthy());
    }
}
