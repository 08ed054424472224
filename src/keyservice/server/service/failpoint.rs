//! Test-only pause points: with `CIRRUS_INSECURE_TEST_KDF=1` (the test suite's opt-in) and
//! `CIRRUS_TEST_FAILPOINT=<name>`, a request that reaches the point logs it and stops
//! there for good, inside its transaction, so a test can kill the server at exactly that
//! moment (a crash in the middle of a password change must leave the old password or the
//! new one, never neither). Without both variables, a point costs one lookup.

use std::time::Duration;

/// After the new password is written, before the transaction commits.
pub(super) const PASSWORD_CHANGE: &str = "password-change";

pub(super) fn reach(name: &str) {
    if !crate::keys::floor::insecure_test_opt_in() {
        return;
    }
    if std::env::var("CIRRUS_TEST_FAILPOINT").is_ok_and(|v| v == name) {
        log::warn!("failpoint {name} reached: this request stops here (test only)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
