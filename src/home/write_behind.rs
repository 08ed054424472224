//! Writes a small durable file behind the requests that change it: a thread saves what
//! was noted, gathering the notes of a short while into one write, so the caller does not
//! wait for the file's flushes. Used for the record of heads seen, which an fsync's
//! commit would otherwise write (two device flushes) before answering.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a failed write waits before the next try.
const RETRY: Duration = Duration::from_secs(1);

type Save = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A writer thread and what it has been asked to write.
pub(super) struct WriteBehind {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    what: &'static str,
    flags: Mutex<Flags>,
    cv: Condvar,
    /// Saves the current state (it takes its own snapshot, after being called).
    save: Save,
}

#[derive(Default)]
struct Flags {
    /// Changes noted so far, and how many of them a finished write covered.
    noted: u64,
    written: u64,
    stop: bool,
}

impl Shared {
    /// The counters hold no invariant a panic could break, so a poisoned lock is used.
    fn flags(&self) -> MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes once if anything noted is not written yet. The count is read before `save`
    /// takes its snapshot, so a success covers every change noted up to that count.
    fn write_once(&self) -> Result<(), String> {
        let upto = {
            let f = self.flags();
            if f.written >= f.noted {
                return Ok(());
            }
            f.noted
        };
        (self.save)()?;
        let mut f = self.flags();
        f.written = f.written.max(upto);
        Ok(())
    }

    fn run(&self, gather: Duration) {
        let mut failing = false;
        loop {
            let mut f = self.flags();
            while f.written >= f.noted && !f.stop {
                f = self.cv.wait(f).unwrap_or_else(|p| p.into_inner());
            }
            if f.written >= f.noted {
                return; // stopped with nothing left to write
            }
            if !f.stop {
                // Commits close together (a database's fsyncs) share one write.
                f = self
                    .cv
                    .wait_timeout_while(f, gather, |f| !f.stop)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let stop = f.stop;
            drop(f);
            match self.write_once() {
                Ok(()) if failing => {
                    log::info!("{} saved again", self.what);
                    failing = false;
                }
                Ok(()) => {}
                Err(why) => {
                    if stop {
                        log::error!("cannot save {} ({why}); stopping without it", self.what);
                        return;
                    }
                    if !failing {
                        log::error!("cannot save {} ({why}); retrying every second", self.what);
                    }
                    failing = true;
                    let f = self.flags();
                    let _ = self.cv.wait_timeout_while(f, RETRY, |f| !f.stop);
                }
            }
        }
    }
}

impl WriteBehind {
    /// Starts the writer thread. `what` names the file in logs.
    pub(super) fn start(
        what: &'static str,
        gather: Duration,
        save: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            what,
            flags: Mutex::default(),
            cv: Condvar::new(),
            save: Box::new(save),
        });
        let run = shared.clone();
        let thread = std::thread::Builder::new()
            .name("write-behind".into())
            .spawn(move || run.run(gather))?;
        Ok(WriteBehind {
            shared,
            thread: Some(thread),
        })
    }

    /// A change to write: returns at once; the thread writes it soon.
    pub(super) fn note(&self) {
        self.shared.flags().noted += 1;
        self.shared.cv.notify_all();
    }

    /// Writes now whatever is noted and not written yet, in the caller's thread.
    pub(super) fn flush(&self) -> Result<(), String> {
        self.shared.write_once()
    }
}

impl Drop for WriteBehind {
    /// Stops the thread after its last write of what is noted.
    fn drop(&mut self) {
        self.shared.flags().stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("the writer of {} panicked", self.shared.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    fn counting(fail: Arc<AtomicBool>) -> (Arc<AtomicU32>, WriteBehind) {
        let writes = Arc::new(AtomicU32::new(0));
        let w = writes.clone();
        let behind = WriteBehind::start("the test file", Duration::from_millis(50), move || {
            if fail.load(Ordering::SeqCst) {
                return Err("the disk is full".into());
            }
            w.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        (writes, behind)
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn notes_close_together_share_a_write_and_nothing_is_written_twice() {
        let (writes, behind) = counting(Arc::default());
        for _ in 0..20 {
            behind.note();
        }
        wait_for("the write", || writes.load(Ordering::SeqCst) >= 1);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(writes.load(Ordering::SeqCst), 1);
        // Nothing noted since: neither a flush nor the drop writes again.
        behind.flush().unwrap();
        drop(behind);
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_flush_and_the_drop_write_what_is_pending_at_once() {
        let (writes, behind) = counting(Arc::default());
        behind.note();
        behind.flush().unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 1);
        behind.note();
        drop(behind);
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "the drop writes the last note"
        );
    }

    #[test]
    fn a_failed_write_is_retried_and_a_flush_reports_it() {
        let fail = Arc::new(AtomicBool::new(true));
        let (writes, behind) = counting(fail.clone());
        behind.note();
        assert_eq!(behind.flush().unwrap_err(), "the disk is full");
        fail.store(false, Ordering::SeqCst);
        // The thread tries again by itself.
        wait_for("the retry", || writes.load(Ordering::SeqCst) >= 1);
        behind.flush().unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }
}
