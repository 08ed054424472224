//! Waiting for events, not for time: a test polls for a positive condition under a
//! generous deadline (which only bounds a failure), never sleeps and then checks.

use std::time::{Duration, Instant};

/// Waits until `f` holds, polling every 200 ms; fails the test naming `what` after
/// `timeout` (e.g. another device's change taken in by a poll; the kernel may also cache
/// a name or attributes for the 1 s attribute timeout).
#[track_caller]
pub fn eventually(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
