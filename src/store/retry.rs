//! Retries with exponential backoff around a remote store, so a dropped connection or a
//! 5xx from an overloaded server costs a pause, not a failed commit. Only transient
//! errors are retried, and retries of writes are made safe: a compare-and-swap or delete
//! whose first attempt may already have taken effect is checked, not blindly repeated.

use super::{Etag, Store, StoreError, etag_of};
use log::info;
use std::sync::Arc;
use std::time::Duration;

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Errors worth another try: the endpoint could not be reached (but did not time out:
/// a request that already waited its whole timeout is not made to wait again, so a hung
/// server costs one timeout, not five), or answered with a server-side (5xx) or
/// throttling (429) status. Everything else is final.
pub fn transient(e: &StoreError) -> bool {
    match e {
        StoreError::Unreachable { timed_out, .. } => !timed_out,
        StoreError::Remote { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

pub struct RetryStore {
    inner: Arc<dyn Store>,
    policy: RetryPolicy,
}

impl RetryStore {
    pub fn new(inner: Arc<dyn Store>, policy: RetryPolicy) -> Self {
        RetryStore { inner, policy }
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts are used up.
    /// `op` gets the attempt number (0 first).
    fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut(u32) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut delay = self.policy.first_delay;
        let mut attempt = 0;
        loop {
            match op(attempt) {
                Err(e) if transient(&e) && attempt + 1 < self.policy.attempts => {
                    info!("store: {what}: {e}; retrying in {} ms", delay.as_millis());
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.policy.max_delay);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl Store for RetryStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.run(name, |_| self.inner.put(name, data))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.run(name, |_| self.inner.get(name))
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        self.run(name, |_| self.inner.get_range(name, offset, len))
    }

    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError> {
        let mine = etag_of(data);
        self.run(name, |attempt| {
            match self.inner.put_if(name, data, expected) {
                // A retry that loses may have lost to our own earlier attempt, which took
                // effect although its answer never arrived: then the object is our data.
                Err(StoreError::PreconditionFailed(n)) if attempt > 0 => match self.inner.get(name)
                {
                    Ok(cur) if etag_of(&cur) == mine => Ok(mine),
                    _ => Err(StoreError::PreconditionFailed(n)),
                },
                r => r,
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.run(prefix, |_| self.inner.list(prefix))
    }

    fn list_info(&self, prefix: &str) -> Result<Vec<super::ObjectInfo>, StoreError> {
        self.run(prefix, |_| self.inner.list_info(prefix))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.run(name, |attempt| match self.inner.delete(name) {
            // Gone on a retry: the earlier attempt did it.
            Err(StoreError::NotFound(_)) if attempt > 0 => Ok(()),
            r => r,
        })
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        self.run(name, |_| self.inner.size(name))
    }

    fn usage(&self) -> Option<(u64, u64)> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use std::sync::Mutex;

    /// A store that fails the next `n` calls with a transient error, optionally after
    /// performing the operation (an answer lost on the way back).
    struct Flaky {
        inner: MemStore,
        fail: Mutex<u32>,
        after: bool,
    }

    impl Flaky {
        fn step<T>(&self, op: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
            let mut f = self.fail.lock().unwrap();
            if *f == 0 {
                return op();
            }
            *f -= 1;
            if self.after {
                let _ = op();
            }
            Err(StoreError::Unreachable {
                endpoint: "test".into(),
                cause: "connection reset".into(),
                timed_out: false,
            })
        }
    }

    impl Store for Flaky {
        fn put(&self, n: &str, d: &[u8]) -> Result<(), StoreError> {
            self.step(|| self.inner.put(n, d))
        }
        fn get(&self, n: &str) -> Result<Vec<u8>, StoreError> {
            self.step(|| self.inner.get(n))
        }
        fn get_range(&self, n: &str, o: u64, l: u64) -> Result<Vec<u8>, StoreError> {
            self.step(|| self.inner.get_range(n, o, l))
        }
        fn put_if(&self, n: &str, d: &[u8], e: Option<&Etag>) -> Result<Etag, StoreError> {
            self.step(|| self.inner.put_if(n, d, e))
        }
        fn list(&self, p: &str) -> Result<Vec<String>, StoreError> {
            self.step(|| self.inner.list(p))
        }
        fn delete(&self, n: &str) -> Result<(), StoreError> {
            self.step(|| self.inner.delete(n))
        }
        fn size(&self, n: &str) -> Result<u64, StoreError> {
            self.step(|| self.inner.size(n))
        }
    }

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    fn flaky(fail: u32, after: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: MemStore::default(),
            fail: Mutex::new(fail),
            after,
        })
    }

    #[test]
    fn transient_failures_are_retried_and_final_ones_are_not() {
        let f = flaky(3, false);
        let s = RetryStore::new(f.clone(), quick(5));
        s.put("a", b"x").unwrap();
        assert_eq!(s.get("a").unwrap(), b"x");
        // Too many failures in a row: the last error comes through.
        *f.fail.lock().unwrap() = 5;
        assert!(matches!(s.get("a"), Err(StoreError::Unreachable { .. })));
        // NotFound is final, not retried (one call, no failure budget used).
        *f.fail.lock().unwrap() = 0;
        assert!(matches!(s.get("nope"), Err(StoreError::NotFound(_))));
        assert!(!transient(&StoreError::Unreachable {
            endpoint: "e".into(),
            cause: "Network Error: timed out reading response".into(),
            timed_out: true,
        }));
        // The decision is on the classification made with the error, not its wording.
        assert!(transient(&StoreError::Unreachable {
            endpoint: "e".into(),
            cause: "connect timeout? no: connection refused".into(),
            timed_out: false,
        }));
        assert!(!transient(&StoreError::Unreachable {
            endpoint: "e".into(),
            cause: "no answer".into(),
            timed_out: true,
        }));
        assert!(transient(&StoreError::Remote {
            name: "n".into(),
            status: 503,
            code: "SlowDown".into()
        }));
        assert!(!transient(&StoreError::Remote {
            name: "n".into(),
            status: 403,
            code: "AccessDenied".into()
        }));
    }

    #[test]
    fn a_cas_or_delete_whose_answer_was_lost_is_not_reported_as_failed() {
        // The first attempt takes effect but its answer is lost.
        let f = flaky(1, true);
        let s = RetryStore::new(f.clone(), quick(3));
        let e = s.put_if("head", b"v1", None).unwrap();
        assert_eq!(e, etag_of(b"v1"));
        assert_eq!(f.inner.get("head").unwrap(), b"v1");
        // A real loss stays a loss: someone else's data is there.
        f.inner.put("head", b"theirs").unwrap();
        *f.fail.lock().unwrap() = 0;
        assert!(matches!(
            s.put_if("head", b"mine", Some(&e)),
            Err(StoreError::PreconditionFailed(_))
        ));
        *f.fail.lock().unwrap() = 1;
        s.delete("head").unwrap();
        assert!(matches!(f.inner.get("head"), Err(StoreError::NotFound(_))));
    }
}
