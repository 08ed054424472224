//! Floors and ceilings under Argon2id costs that come from anything this device does not
//! yet trust (a manifest's recovery entries, a key service's `salt` answer): a server that
//! could lower them would get cheap-to-guess values derived from a passcode or password.

use super::{KdfParams, KeyError};
use std::sync::atomic::{AtomicBool, Ordering};

/// The protocol's floor (FORMAT.md "Key-derivation costs"): OWASP's Argon2id minimum,
/// 19 MiB and 2 passes. No untrusted source may name less, and no device may create a
/// recovery method or account below it.
pub const KDF_FLOOR: KdfParams = KdfParams {
    memory_kib: 19 * 1024,
    time: 2,
    lanes: 1,
};

/// The ceiling: no untrusted source may make this device allocate or spin more.
pub const KDF_CEILING: KdfParams = KdfParams {
    memory_kib: 4 << 20,
    time: 64,
    lanes: 16,
};

/// The environment variable by which a test run (and only a test run: its name says so)
/// lowers the floor to [`INSECURE_TEST_FLOOR`], so suites can use millisecond KDFs. No
/// store, manifest or server can set a device's environment.
pub const INSECURE_TEST_ENV: &str = "CIRRUS_INSECURE_TEST_KDF";

/// The floor in force when a test opted in.
pub const INSECURE_TEST_FLOOR: KdfParams = KdfParams {
    memory_kib: 8,
    time: 1,
    lanes: 1,
};

static TEST_OPT_IN: AtomicBool = AtomicBool::new(false);

/// For in-process tests: lowers the floor of this process as [`INSECURE_TEST_ENV`] does.
pub fn allow_insecure_test_kdf() {
    TEST_OPT_IN.store(true, Ordering::Relaxed);
}

/// Whether this process opted in to the test suite's insecure settings.
pub fn insecure_test_opt_in() -> bool {
    test_opt_in()
}

fn test_opt_in() -> bool {
    TEST_OPT_IN.load(Ordering::Relaxed)
        || std::env::var_os(INSECURE_TEST_ENV).is_some_and(|v| v == "1")
}

/// The protocol floor, or the test floor when this process opted in.
pub fn protocol_floor() -> KdfParams {
    if test_opt_in() {
        INSECURE_TEST_FLOOR
    } else {
        KDF_FLOOR
    }
}

/// The least an untrusted source may ask of this device: the protocol floor, and never
/// less than what this device itself spends (`own`).
pub fn floor_for(own: KdfParams) -> KdfParams {
    let p = protocol_floor();
    KdfParams {
        memory_kib: p.memory_kib.max(own.memory_kib),
        time: p.time.max(own.time),
        lanes: 1,
    }
}

/// Checks costs named by an untrusted source (`what`, for the message) against
/// [`floor_for`]`(own)` and the ceiling.
pub fn check_untrusted(
    what: &str,
    offered: KdfParams,
    own: KdfParams,
) -> Result<KdfParams, KeyError> {
    check_between(what, offered, floor_for(own))
}

/// Checks costs this device is asked to use for itself (`init --kdf-memory`, say): at least
/// the protocol floor, since recovery methods and the account password take them.
pub fn check_own(offered: KdfParams) -> Result<KdfParams, KeyError> {
    check_between(
        "the requested key-derivation cost",
        offered,
        protocol_floor(),
    )
}

/// `offered` between `floor` and [`KDF_CEILING`].
fn check_between(what: &str, offered: KdfParams, floor: KdfParams) -> Result<KdfParams, KeyError> {
    if offered.memory_kib < floor.memory_kib || offered.time < floor.time {
        return Err(KeyError::KdfTooWeak {
            what: what.to_string(),
            offered,
            floor,
        });
    }
    if offered.memory_kib > KDF_CEILING.memory_kib
        || offered.time > KDF_CEILING.time
        || offered.lanes == 0
        || offered.lanes > KDF_CEILING.lanes
    {
        return Err(KeyError::KdfTooCostly {
            what: what.to_string(),
            offered,
        });
    }
    Ok(offered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn k(memory_kib: u32, time: u32) -> KdfParams {
        KdfParams {
            memory_kib,
            time,
            lanes: 1,
        }
    }

    // Unit tests run with the floor as shipped unless a test opts in, which none here
    // does (the opt-in is per process and would leak into the other unit tests).
    #[test]
    fn untrusted_costs_need_the_floor_and_this_devices_own_costs() {
        if test_opt_in() {
            return;
        }
        let own = k(64 * 1024, 3);
        assert!(check_untrusted("x", k(8, 1), own).is_err());
        assert!(
            check_untrusted("x", k(19 * 1024, 2), own).is_err(),
            "below own"
        );
        assert!(
            check_untrusted("x", k(64 * 1024, 2), own).is_err(),
            "t below own"
        );
        assert_eq!(
            check_untrusted("x", k(64 * 1024, 3), own).unwrap(),
            k(64 * 1024, 3)
        );
        assert!(check_untrusted("x", k(5 << 20, 3), own).is_err(), "ceiling");
        assert!(
            check_untrusted("x", k(64 * 1024, 65), own).is_err(),
            "ceiling"
        );
        let tiny_own = k(8, 1);
        assert_eq!(floor_for(tiny_own), KDF_FLOOR);
        assert!(check_own(k(8192, 1)).is_err());
        assert!(check_own(KDF_FLOOR).is_ok());
        assert!(check_own(KdfParams::default()).is_ok());
        let msg = check_untrusted("the escrow", k(8, 1), own)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("the escrow") && msg.contains("65536 KiB"),
            "{msg}"
        );
    }
}
