//! The S3 backend: the same object contract over any S3-compatible service (AWS, SeaweedFS,
//! MinIO, ...), so a drive's ciphertext can live off the machine. Requests are presigned
//! with `rusty-s3` (SigV4) and sent on a blocking `ureq` agent: no async runtime in the
//! data path.
//!
//! Compare-and-swap (`put_if`) uses S3 conditional writes; see docs/ARCHITECTURE.md,
//! "S3 store", for the two-step scheme that maps our BLAKE3 etags onto S3 ETags.
//!
//! This file is the [`Store`] contract over a bucket; `config.rs` parses the `s3://` URL,
//! `request.rs` sends one signed request and maps what came back to a [`StoreError`].

mod config;
mod request;

use super::{Etag, Store, StoreError, check_name, etag_of};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use config::S3Config;
use config::bad;
use request::Failure;

/// Lifetime of a presigned request URL (it is used at once; this only absorbs clock skew
/// between signing and the server's check).
const SIGN_TTL: Duration = Duration::from_secs(600);
/// Idle connections kept open to the endpoint for reuse (FUSE threads, commit and
/// upload threads may all call the store at once).
const IDLE_CONNECTIONS: usize = 16;
/// Largest body accepted from a GET (packs and metadata are far smaller).
const MAX_BODY: u64 = super::MAX_OBJECT;

/// S3's `LastModified` (`2026-11-28T11:04:41.000Z`) as a time; `None` if it is not
/// in that form.
fn parse_iso8601(s: &str) -> Option<std::time::SystemTime> {
    let t: jiff::Timestamp = s.parse().ok()?;
    let secs = u64::try_from(t.as_second()).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// A bucket (and key prefix) seen as a [`Store`].
pub struct S3Store {
    bucket: Bucket,
    credentials: Option<Credentials>,
    prefix: String,
    agent: ureq::Agent,
    /// Endpoint origin, for error messages (never a signed URL: those carry a signature).
    endpoint: String,
    /// Keys per ListObjectsV2 page (`None`: the server's default, 1000 on AWS).
    list_page: Option<usize>,
}

fn load_roots(path: &PathBuf) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(roots)
}

impl S3Store {
    /// Checks the configuration and builds the client. Nothing is sent: an unreachable
    /// endpoint or a missing bucket shows up on the first request.
    pub fn new(cfg: S3Config) -> Result<Self, StoreError> {
        let shown = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
        let endpoint = cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
        let ep: url::Url = endpoint
            .parse()
            .map_err(|e| bad(&shown, format!("endpoint {endpoint:?}: {e}")))?;
        match ep.scheme() {
            "https" => {}
            "http" if cfg.allow_http => {}
            "http" => {
                return Err(bad(
                    &shown,
                    format!(
                        "endpoint {endpoint} is plain http: add allow_http=1 to accept an unencrypted connection"
                    ),
                ));
            }
            s => {
                return Err(bad(
                    &shown,
                    format!("endpoint scheme {s:?}: expected https"),
                ));
            }
        }
        // A bucket cannot be a subdomain of an IP address: such an endpoint (a MinIO or
        // SeaweedFS on the LAN) means path-style addressing, given or not.
        let ip_endpoint = matches!(ep.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
        let style = if cfg.path_style || ip_endpoint {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket =
            Bucket::new(ep, style, cfg.bucket.clone(), cfg.region.clone()).map_err(|e| {
                bad(
                    &shown,
                    format!("{e:?} (an IP-address endpoint needs path_style=1)"),
                )
            })?;
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(cfg.connect_timeout)
            .timeout(cfg.timeout)
            // ureq keeps one idle connection per host by default: with several threads
            // calling at once, every other request would open a new connection (a new
            // TLS handshake over HTTPS). Keep one per likely concurrent caller.
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .redirects(0)
            .user_agent(concat!("cirrus/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let roots = load_roots(ca)
                .map_err(|e| bad(&shown, format!("ca_file {}: {e}", ca.display())))?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(&shown, e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_config(Arc::new(tls));
        }
        Ok(S3Store {
            bucket,
            credentials: cfg.credentials,
            prefix: cfg.prefix,
            agent: builder.build(),
            endpoint,
            list_page: None,
        })
    }

    /// Asks for at most `n` keys per listing page (tests use it to exercise continuation).
    pub fn with_list_page_size(mut self, n: usize) -> Self {
        self.list_page = Some(n);
        self
    }

    fn key(&self, name: &str) -> Result<String, StoreError> {
        check_name(name)?;
        Ok(if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        })
    }

    /// GET of the whole object: its bytes and S3 ETag.
    fn get_with_etag(&self, name: &str) -> Result<(Vec<u8>, String), StoreError> {
        let key = self.key(name)?;
        let act = self.bucket.get_object(self.credentials.as_ref(), &key);
        let resp = self
            .send(act, "GET", &[], None)
            .map_err(|f| self.fail(name, f))?;
        let s3_etag = resp.header("ETag").unwrap_or_default().to_string();
        Ok((self.read_body(name, resp)?, s3_etag))
    }

    fn put_with(
        &self,
        name: &str,
        data: &[u8],
        headers: &[(&'static str, String)],
    ) -> Result<(), StoreError> {
        let key = self.key(name)?;
        let act = self.bucket.put_object(self.credentials.as_ref(), &key);
        self.send(act, "PUT", headers, Some(data))
            .map_err(|f| self.fail(name, f))?;
        Ok(())
    }

    /// Creates the bucket (for tests and first setup); an existing bucket we own is fine.
    pub fn create_bucket(&self) -> Result<(), StoreError> {
        let Some(creds) = self.credentials.as_ref() else {
            return Err(StoreError::NoCredentials);
        };
        let act = self.bucket.create_bucket(creds);
        match self.send(act, "PUT", &[], Some(b"")) {
            Ok(_) => Ok(()),
            Err(Failure::Status { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(f) => Err(self.fail("", f)),
        }
    }
}

impl Store for S3Store {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.put_with(name, data, &[])
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get_with_etag(name)?.0)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            // No empty Range in HTTP; still report a missing object like other backends.
            self.size(name)?;
            return Ok(Vec::new());
        }
        let key = self.key(name)?;
        let act = self.bucket.get_object(self.credentials.as_ref(), &key);
        let last = offset.saturating_add(len - 1);
        let range = format!("bytes={offset}-{last}");
        match self.send(act, "GET", &[("range", range)], None) {
            Ok(resp) => {
                // 206, or 200 with the whole object from a server that ignores Range.
                let whole = resp.status() == 200;
                if !whole {
                    // A range answer longer than the range is a broken or hostile server:
                    // read one byte past it to tell, and hand callers nothing else.
                    let v = self.read_body_up_to(name, resp, len.saturating_add(1))?;
                    if v.len() as u64 > len {
                        return Err(StoreError::Remote {
                            name: name.to_string(),
                            status: 206,
                            code: format!("more bytes than the {len} asked for"),
                        });
                    }
                    return Ok(v);
                }
                // The whole object: read no further than the range's end.
                let v = self.read_body_up_to(name, resp, offset.saturating_add(len))?;
                let start = (offset.min(v.len() as u64)) as usize;
                let end = (start as u64).saturating_add(len).min(v.len() as u64) as usize;
                Ok(v[start..end].to_vec())
            }
            // Entirely past the end of an existing object.
            Err(Failure::Status { status: 416, .. }) => Ok(Vec::new()),
            Err(f) => Err(self.fail(name, f)),
        }
    }

    fn put_if(&self, name: &str, data: &[u8], expected: Option<&Etag>) -> Result<Etag, StoreError> {
        match expected {
            None => self.put_with(name, data, &[("if-none-match", "*".to_string())])?,
            Some(want) => {
                let (current, s3_etag) = match self.get_with_etag(name) {
                    Ok(x) => x,
                    Err(StoreError::NotFound(_)) => {
                        return Err(StoreError::PreconditionFailed(name.to_string()));
                    }
                    Err(e) => return Err(e),
                };
                if etag_of(&current) != *want || s3_etag.is_empty() {
                    return Err(StoreError::PreconditionFailed(name.to_string()));
                }
                self.put_with(name, data, &[("if-match", s3_etag)])?;
            }
        }
        Ok(etag_of(data))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list_info(prefix)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    fn list_info(&self, prefix: &str) -> Result<Vec<super::ObjectInfo>, StoreError> {
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let full = format!("{base}{prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut act = self.bucket.list_objects_v2(self.credentials.as_ref());
            act.with_prefix(full.as_str());
            if let Some(n) = self.list_page {
                act.with_max_keys(n);
            }
            if let Some(t) = &token {
                act.with_continuation_token(t.clone());
            }
            let resp = self
                .send(act, "GET", &[], None)
                .map_err(|f| self.fail(prefix, f))?;
            let body = self.read_body(prefix, resp)?;
            let text = String::from_utf8_lossy(&body);
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                StoreError::Remote {
                    name: prefix.to_string(),
                    status: 200,
                    code: format!("unparsable ListObjectsV2 answer: {e}"),
                }
            })?;
            for c in page.contents {
                if let Some(name) = c.key.strip_prefix(&base)
                    && name.starts_with(prefix)
                    && check_name(name).is_ok()
                {
                    out.push(super::ObjectInfo {
                        name: name.to_string(),
                        size: c.size.unwrap_or(0),
                        modified: c.last_modified.as_deref().and_then(parse_iso8601),
                    });
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() && token.as_deref() != Some(t.as_str()) => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        // S3 answers 204 whether or not the key existed; the contract wants NotFound for
        // a missing object, so look first (not atomic with the delete, which only matters
        // to a concurrent deleter, who then gets Ok too).
        self.size(name)?;
        let key = self.key(name)?;
        let act = self.bucket.delete_object(self.credentials.as_ref(), &key);
        match self.send(act, "DELETE", &[], None) {
            Ok(_) => Ok(()),
            Err(f) => Err(self.fail(name, f)),
        }
    }

    fn size(&self, name: &str) -> Result<u64, StoreError> {
        let key = self.key(name)?;
        let act = self.bucket.head_object(self.credentials.as_ref(), &key);
        let resp = self
            .send(act, "HEAD", &[], None)
            .map_err(|f| self.fail(name, f))?;
        resp.header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Remote {
                name: name.to_string(),
                status: resp.status(),
                code: "HEAD answer without Content-Length".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_parses() {
        let t = parse_iso8601("2026-11-28T11:04:41.000Z").unwrap();
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_795_863_881);
        assert_eq!(
            parse_iso8601("1970-01-01T00:00:00Z"),
            Some(std::time::UNIX_EPOCH)
        );
        assert!(parse_iso8601("yesterday").is_none());
        assert!(parse_iso8601("2026-13-01T00:00:00Z").is_none());
    }

    /// A server that answers every request with `answer`, once per connection.
    fn answering(answer: &'static [u8]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = conn.write_all(answer);
            }
        });
        format!("s3://bkt?endpoint=http://{addr}&path_style=1&allow_http=1")
    }

    /// A range answer longer than the range asked for is refused, not handed to the
    /// caller (which would take the extra bytes as the object's); a short one (the
    /// object ends inside the range) is the object's end.
    #[test]
    fn a_range_answer_longer_than_asked_is_refused() {
        let long = answering(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        );
        let s = S3Store::new(S3Config::from_url_with_env(&long, &|_| None).unwrap()).unwrap();
        match s.get_range("packs/ab/x", 0, 4) {
            Err(StoreError::Remote { status: 206, .. }) => {}
            other => panic!("a 10-byte answer to a 4-byte range: {other:?}"),
        }
        let short = answering(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\nConnection: close\r\n\r\n01",
        );
        let s = S3Store::new(S3Config::from_url_with_env(&short, &|_| None).unwrap()).unwrap();
        assert_eq!(s.get_range("packs/ab/x", 0, 4).unwrap(), b"01");
        // A server that ignores Range: the range is cut from the whole object.
        let whole = answering(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        );
        let s = S3Store::new(S3Config::from_url_with_env(&whole, &|_| None).unwrap()).unwrap();
        assert_eq!(s.get_range("packs/ab/x", 3, 4).unwrap(), b"3456");
        assert_eq!(s.get_range("packs/ab/x", 8, 4).unwrap(), b"89");
    }
}
