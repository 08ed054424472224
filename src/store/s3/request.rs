//! One signed HTTP exchange with the bucket and what it ended with: sending, reading a
//! bounded body, and mapping a status or a transport failure (timeout, refused
//! certificate: decided on types, never on wording) to a [`StoreError`].

use super::super::StoreError;
use super::{MAX_BODY, S3Store, SIGN_TTL};
use rusty_s3::S3Action;
use std::io::Read;

/// What an HTTP exchange ended with, before it is mapped to a `StoreError` for one call.
pub(super) enum Failure {
    Status {
        status: u16,
        code: String,
    },
    /// `timed_out`: see [`StoreError::Unreachable`]. `bad_certificate`: the server's
    /// certificate was refused (the message then names `ca_file`).
    Transport {
        cause: String,
        timed_out: bool,
        bad_certificate: bool,
    },
}

/// Whether a transport failure is a refused server certificate: a rustls
/// `InvalidCertificate` in its source chain (rustls hands it up inside an `io::Error`).
fn is_bad_certificate(mut e: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(err) = e {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if [Some(err), inner].into_iter().flatten().any(|c| {
            matches!(
                c.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(_))
            )
        }) {
            return true;
        }
        e = err.source();
    }
    false
}

/// Whether a transport failure is a timeout: an I/O error of kind `TimedOut` somewhere in
/// its source chain (ureq reports its deadlines and connect timeouts so; `WouldBlock` is a
/// socket read timeout on Unix). Decided on the kind, never on the message.
fn is_timeout(mut e: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(err) = e {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io_timed_out(io.kind()))
        {
            return true;
        }
        e = err.source();
    }
    false
}

fn io_timed_out(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The `<Code>` of an S3 XML error body, if any.
fn error_code(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| c.trim().to_string())
        .unwrap_or_default()
}

impl S3Store {
    /// Signs `action` with `headers` (lowercase names; they are signed too, so a proxy
    /// cannot strip a condition) and sends it.
    pub(super) fn send<'a, A: S3Action<'a>>(
        &self,
        mut action: A,
        method: &str,
        headers: &[(&'a str, String)],
        body: Option<&[u8]>,
    ) -> Result<ureq::Response, Failure> {
        for (k, v) in headers {
            action.headers_mut().insert(*k, v.clone());
        }
        let url = action.sign(SIGN_TTL);
        let mut req = self.agent.request_url(method, &url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let failed = |status: u16, resp: ureq::Response| {
            let mut text = String::new();
            let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
            Failure::Status {
                status,
                code: error_code(&text),
            }
        };
        match res {
            // Redirects are not followed (`redirects(0)`): AWS sends 301 PermanentRedirect
            // for a bucket in another region, which must not pass for success.
            Ok(r) if r.status() >= 300 => Err(failed(r.status(), r)),
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, resp)) => Err(failed(status, resp)),
            // Not `t.to_string()`: it starts with the presigned URL.
            Err(ureq::Error::Transport(t)) => {
                let mut cause = t.kind().to_string();
                if let Some(m) = t.message() {
                    cause = format!("{cause}: {m}");
                }
                let src = std::error::Error::source(&t);
                if let Some(src) = src {
                    cause = format!("{cause}: {src}");
                }
                Err(Failure::Transport {
                    cause,
                    timed_out: is_timeout(src),
                    bad_certificate: is_bad_certificate(src),
                })
            }
        }
    }

    /// Maps a failure of a request on object `name` to the store's error.
    pub(super) fn fail(&self, name: &str, f: Failure) -> StoreError {
        match f {
            Failure::Transport {
                mut cause,
                timed_out,
                bad_certificate,
            } => {
                if bad_certificate {
                    cause.push_str(" (for a private CA, add ca_file=PATH to the store URL)");
                }
                StoreError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    cause,
                    timed_out,
                }
            }
            Failure::Status { status: 404, code } if code == "NoSuchBucket" => {
                StoreError::NoBucket(self.bucket.name().to_string())
            }
            Failure::Status { status: 404, .. } => StoreError::NotFound(name.to_string()),
            Failure::Status { status: 412, .. } => StoreError::PreconditionFailed(name.to_string()),
            // AWS answers 409 ConditionalRequestConflict when conditional writes race.
            Failure::Status { status: 409, code } if code == "ConditionalRequestConflict" => {
                StoreError::PreconditionFailed(name.to_string())
            }
            Failure::Status {
                status: 401 | 403,
                code,
            } => StoreError::Denied {
                bucket: self.bucket.name().to_string(),
                code: if code.is_empty() {
                    "AccessDenied".into()
                } else {
                    code
                },
            },
            Failure::Status { status, code } if (300..400).contains(&status) => {
                StoreError::Remote {
                    name: name.to_string(),
                    status,
                    code: format!("{code} (redirected: is `region` the bucket's region?)"),
                }
            }
            Failure::Status { status, code } => StoreError::Remote {
                name: name.to_string(),
                status,
                code,
            },
        }
    }

    pub(super) fn read_body(
        &self,
        name: &str,
        resp: ureq::Response,
    ) -> Result<Vec<u8>, StoreError> {
        self.read_body_up_to(name, resp, MAX_BODY)
    }

    /// The answer's body, at most `limit` bytes of it: the server's Content-Length only
    /// sizes the first allocation, and never past the limit.
    pub(super) fn read_body_up_to(
        &self,
        name: &str,
        resp: ureq::Response,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let limit = limit.min(MAX_BODY);
        let cap = resp
            .header("Content-Length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(limit) as usize;
        let mut v = Vec::with_capacity(cap);
        resp.into_reader()
            .take(limit)
            .read_to_end(&mut v)
            .map_err(|e| StoreError::Unreachable {
                endpoint: self.endpoint.clone(),
                cause: format!("reading {name}: {e}"),
                timed_out: io_timed_out(e.kind()),
            })?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as TLS and ureq errors wrap the socket's.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "wrapped")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_timeout_is_recognised_by_its_kind_not_its_wording() {
        use std::io::{Error, ErrorKind};
        let quiet = Error::new(ErrorKind::TimedOut, "no answer");
        assert!(is_timeout(Some(&quiet)));
        assert!(is_timeout(Some(&Error::from(ErrorKind::WouldBlock))));
        assert!(is_timeout(Some(&Wrapped(Error::from(ErrorKind::TimedOut)))));
        // Says "timed out" but is a refused connection: worth another try.
        let wordy = Error::new(ErrorKind::ConnectionRefused, "timed out? no: refused");
        assert!(!is_timeout(Some(&wordy)));
        assert!(!is_timeout(Some(&Wrapped(wordy))));
        assert!(!is_timeout(None));
    }

    #[test]
    fn a_refused_certificate_is_recognised_by_its_type_not_its_wording() {
        use std::io::{Error, ErrorKind};
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(is_bad_certificate(Some(&Error::new(
            ErrorKind::InvalidData,
            bad
        ))));
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert!(is_bad_certificate(Some(&Wrapped(Error::new(
            ErrorKind::InvalidData,
            bad
        )))));
        let wordy = Error::new(ErrorKind::ConnectionReset, "certificate? no: reset");
        assert!(!is_bad_certificate(Some(&wordy)));
        assert!(!is_bad_certificate(None));
    }

    #[test]
    fn error_codes_are_read() {
        assert_eq!(
            error_code("<?xml?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>"),
            "NoSuchBucket"
        );
        assert_eq!(error_code(""), "");
    }
}
