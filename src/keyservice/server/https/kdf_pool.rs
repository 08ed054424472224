//! A bounded pool for the key service's Argon2 work: a few requests run at once, a few
//! more wait, and the rest are refused at once instead of queueing without bound.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests that may wait for a KDF slot, per slot. Past that the service answers 503:
/// a waiting request holds a connection and a body, and would mostly time out anyway.
pub(crate) const QUEUE_PER_WORKER: usize = 4;

/// The pool was full: running and waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every Argon2 slot is busy and the queue for them is full")]
pub(crate) struct Saturated;

pub(crate) struct KdfPool {
    workers: usize,
    /// Running plus waiting; taken without waiting, so a full queue refuses at once.
    admitted: Arc<Semaphore>,
    /// Running.
    running: Arc<Semaphore>,
}

/// Leave to run one request's KDF work; hold it until the work is done (it is moved into
/// the blocking task, so a request that timed out still holds it while its Argon2 runs).
pub(crate) struct KdfPermit {
    _admitted: OwnedSemaphorePermit,
    _running: OwnedSemaphorePermit,
}

impl KdfPool {
    /// `workers` at once (at least 1), and `workers * QUEUE_PER_WORKER` waiting.
    pub(crate) fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        KdfPool {
            workers,
            admitted: Arc::new(Semaphore::new(workers * (1 + QUEUE_PER_WORKER))),
            running: Arc::new(Semaphore::new(workers)),
        }
    }

    /// One per core: Argon2 is CPU-bound, more at once would only share the cores.
    pub(crate) fn sized_to_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Waits for a running slot, or fails at once when the queue is full.
    pub(crate) async fn acquire(&self) -> Result<KdfPermit, Saturated> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Saturated)?;
        // The semaphores are never closed, so this only waits.
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Saturated)?;
        Ok(KdfPermit {
            _admitted: admitted,
            _running: running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn runs_n_queues_a_bounded_number_and_refuses_the_rest() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = Arc::new(KdfPool::new(2));
            let a = pool.acquire().await.unwrap();
            let _b = pool.acquire().await.unwrap();
            // the next 2 * QUEUE_PER_WORKER wait
            let mut waiting = Vec::new();
            for _ in 0..2 * QUEUE_PER_WORKER {
                let p = pool.clone();
                // the task's output keeps its permit until the handle is dropped
                waiting.push(tokio::spawn(async move { p.acquire().await }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(waiting.iter().all(|w| !w.is_finished()));
            // and one more is refused without waiting
            assert_eq!(pool.acquire().await.err(), Some(Saturated));
            // a finished one lets a waiting one run
            drop(a);
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(waiting.iter().filter(|w| w.is_finished()).count(), 1);
        });
    }
}
