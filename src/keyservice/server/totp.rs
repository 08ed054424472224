//! The second factor of `cirrus serve` (issue 3): RFC 6238 TOTP. The `totp-rs` crate
//! computes the codes; this module adds what the crate leaves to its caller: a fresh secret
//! from our CSPRNG, the `otpauth://` URI shown at enrolment, a window of one step either
//! side, and the RFC's once-only rule (a code, or any earlier one, is never accepted twice).

use crate::crypto::{CryptoError, random_bytes};
use totp_rs::{Builder, Totp};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpCheck {
    #[error("the code is wrong or expired")]
    Invalid,
    #[error("that code was already used; wait for the next one")]
    Reused,
}

#[derive(Debug, thiserror::Error)]
pub enum TotpSetupError {
    #[error("TOTP setup: {0}")]
    Totp(String),
    #[error(transparent)]
    Random(#[from] CryptoError),
}

/// One account's TOTP factor: its secret and the last step it accepted.
pub struct TotpFactor {
    totp: Totp,
    /// Kept beside `totp` because the crate does not hand its secret back, and the key
    /// service must persist it (sealed) to rebuild the factor after a restart.
    secret: zeroize::Zeroizing<Vec<u8>>,
    last_step: Option<u64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpFactor(<redacted>)")
    }
}

/// The step every authenticator app assumes (RFC 6238's default; some apps ignore the
/// URI's `period`). Only the test suite runs a server with another, through a hidden
/// flag of `serve`.
pub const PERIOD: u64 = 30;

fn build(secret: Vec<u8>, digits: u8, account: &str, period: u64) -> Result<Totp, TotpSetupError> {
    Builder::new()
        .with_digits(digits)
        .with_skew(1)
        .with_step_duration(period)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some("Cirrus"))
        .build()
        .map_err(|e| TotpSetupError::Totp(e.to_string()))
}

impl TotpFactor {
    /// A new factor with a random 160-bit secret (RFC 4226's recommendation); returns the
    /// `otpauth://` URI to show (or render as a QR code) once.
    /// `period`: seconds per step ([`PERIOD`] outside the test suite).
    pub fn enroll(account: &str, period: u64) -> Result<(Self, String), TotpSetupError> {
        let mut secret = zeroize::Zeroizing::new(vec![0u8; 20]);
        random_bytes(&mut secret)?;
        let f = Self::from_secret(secret.to_vec(), 6, account, None, period)?;
        let uri = f.uri()?;
        Ok((f, uri))
    }

    /// Rebuilds a factor from stored state.
    pub fn from_secret(
        secret: Vec<u8>,
        digits: u8,
        account: &str,
        last_step: Option<u64>,
        period: u64,
    ) -> Result<Self, TotpSetupError> {
        let kept = zeroize::Zeroizing::new(secret.clone());
        Ok(TotpFactor {
            totp: build(secret, digits, account, period)?,
            secret: kept,
            last_step,
        })
    }

    /// The raw secret, to persist (sealed) with the account. Never log it.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The `otpauth://` URI that carries the secret to an authenticator app.
    pub fn uri(&self) -> Result<String, TotpSetupError> {
        self.totp
            .to_url()
            .map_err(|e| TotpSetupError::Totp(e.to_string()))
    }

    /// The last accepted step, to persist with the secret.
    pub fn last_step(&self) -> Option<u64> {
        self.last_step
    }

    /// Accepts `code` at `now` (seconds since the epoch) if it belongs to the previous,
    /// current or next step and is later than every code accepted before.
    pub fn verify(&mut self, code: &str, now: u64) -> Result<(), TotpCheck> {
        let step = self
            .totp
            .check(code.trim(), now)
            .ok_or(TotpCheck::Invalid)?;
        if self.last_step.is_some_and(|last| step <= last) {
            return Err(TotpCheck::Reused);
        }
        self.last_step = Some(step);
        Ok(())
    }

    /// The code for `time` (tests and the embedded single-device service).
    pub fn code_at(&self, time: u64) -> String {
        self.totp.generate(time).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, 8 digits, seed "12345678901234567890".
    #[test]
    fn rfc6238_sha1_vectors() {
        let f = TotpFactor::from_secret(b"12345678901234567890".to_vec(), 8, "rfc", None, PERIOD)
            .unwrap();
        for (t, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(f.code_at(t), code, "T = {t}");
        }
    }

    #[test]
    fn accepts_one_step_either_side_and_never_twice() {
        let mut f = TotpFactor::from_secret(b"12345678901234567890".to_vec(), 6, "t", None, PERIOD)
            .unwrap();
        let now = 1_700_000_015;
        let prev = f.code_at(now - 30);
        let cur = f.code_at(now);
        let next = f.code_at(now + 30);
        let far = f.code_at(now + 90);
        assert_eq!(f.verify(&far, now), Err(TotpCheck::Invalid));
        assert_eq!(f.verify("000000x", now), Err(TotpCheck::Invalid));
        assert_eq!(f.verify(&prev, now), Ok(()));
        assert_eq!(f.verify(&prev, now), Err(TotpCheck::Reused));
        assert_eq!(f.verify(&cur, now), Ok(()));
        assert_eq!(f.verify(&cur, now), Err(TotpCheck::Reused));
        assert_eq!(f.verify(&next, now), Ok(()));
        // an older code that is still in the window is refused once a later one was used
        let mut g = TotpFactor::from_secret(
            b"12345678901234567890".to_vec(),
            6,
            "t",
            Some(f.last_step().unwrap()),
            PERIOD,
        )
        .unwrap();
        assert_eq!(g.verify(&cur, now), Err(TotpCheck::Reused));
    }

    #[test]
    fn enrolment_gives_an_otpauth_uri_and_a_working_factor() {
        let (mut f, uri) = TotpFactor::enroll("alice@example", PERIOD).unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=") && uri.contains("issuer=Cirrus"),
            "{uri}"
        );
        let now = 1_800_000_000;
        let code = f.code_at(now);
        assert_eq!(f.verify(&code, now), Ok(()));
        assert_eq!(format!("{f:?}"), "TotpFactor(<redacted>)");
        // the kept secret rebuilds the same factor (what the key service persists)
        let g =
            TotpFactor::from_secret(f.secret().to_vec(), 6, "alice@example", None, PERIOD).unwrap();
        assert_eq!(f.secret().len(), 20);
        assert_eq!(g.code_at(now + 30), f.code_at(now + 30));
    }
}
