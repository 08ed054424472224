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
