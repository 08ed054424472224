//! Rollback and fork detection, in one place: a signed, counted object the store serves
//! (a category head, the account manifest) against the newest one this device has seen.
//! A lower counter is a rollback; the same counter with other content is a fork. Each
//! caller words its own error (what was served, where it was seen).

/// How a served object stands against the one seen, when the store may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// The very object seen.
    Same,
    /// A higher counter: the store moved on (the caller checks the chain, if any).
    Newer,
}

/// Why a served object must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// The store serves counter `served`, below the `seen` one: a rollback.
    Rollback { served: u64, seen: u64 },
    /// The store serves another object with the `counter` seen: a fork.
    Fork { counter: u64 },
}

/// Compares a served (counter, hash) with the newest (counter, hash) seen.
pub fn check_freshness(served: (u64, &[u8; 32]), seen: (u64, &[u8; 32])) -> Result<Fresh, Stale> {
    let ((n, hash), (seen_n, seen_hash)) = (served, seen);
    if n < seen_n {
        Err(Stale::Rollback {
            served: n,
            seen: seen_n,
        })
    } else if n > seen_n {
        Ok(Fresh::Newer)
    } else if hash == seen_hash {
        Ok(Fresh::Same)
    } else {
        Err(Stale::Fork { counter: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    #[test]
    fn an_older_counter_is_a_rollback_whatever_its_hash() {
        for h in [&A, &B] {
            assert_eq!(
                check_freshness((4, h), (5, &A)),
                Err(Stale::Rollback { served: 4, seen: 5 })
            );
        }
    }

    #[test]
    fn the_same_counter_with_other_content_is_a_fork() {
        assert_eq!(
            check_freshness((5, &B), (5, &A)),
            Err(Stale::Fork { counter: 5 })
        );
    }

    #[test]
    fn the_object_seen_is_the_same() {
        assert_eq!(check_freshness((5, &A), (5, &A)), Ok(Fresh::Same));
    }

    #[test]
    fn a_higher_counter_is_newer_whatever_its_hash() {
        assert_eq!(check_freshness((6, &B), (5, &A)), Ok(Fresh::Newer));
        assert_eq!(check_freshness((6, &A), (5, &A)), Ok(Fresh::Newer));
    }
}
