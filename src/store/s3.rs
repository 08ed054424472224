//! The S3 backend: the same object contract over any S3-compatible service (AWS, SeaweedFS,
//! MinIO, ...), so a drive's ciphertext can live off the machine. Requests are presigned
//! with `rusty-s3` (SigV4) and sent on a blocking `ureq` agent: no async runtime in the
//! data path.
//!
//! Compare-and-swap (`put_if`) uses S3 conditional writes; see docs/ARCHITECTURE.md,
//! "S3 store", for the two-step scheme that maps our BLAKE3 etags onto S3 ETags.

use super::aws_profile;
use super::{Etag, Store, StoreError, check_name, etag_of};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default time to open a TCP (and TLS) connection to the endpoint (`connect_timeout=`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole request, body included (`timeout=`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds of both timeout options, in seconds: zero would fail every request, and past an
/// hour a dead server only looks like a hang.
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;
/// Lifetime of a presigned request URL (it is used at once; this only absorbs clock skew
/// between signing and the server's check).
const SIGN_TTL: Duration = Duration::from_secs(600);
/// Idle connections kept open to the endpoint for reuse (FUSE threads, commit and
/// upload threads may all call the store at once).
const IDLE_CONNECTIONS: usize = 16;
/// Largest body accepted from a GET (packs and metadata are far smaller).
const MAX_BODY: u64 = super::MAX_OBJECT;

/// Where and how to reach a bucket. Built from an `s3://` URL by [`S3Config::from_url`]
/// (credentials from the environment or the AWS shared files) or by hand.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix under which the store's objects live (no leading or trailing `/`;
    /// empty: the bucket root).
    pub prefix: String,
    /// `https://host[:port]`; `None`: AWS (`https://s3.REGION.amazonaws.com`).
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    pub path_style: bool,
    /// Accept a plain-`http://` endpoint. Off by default: credentials and ciphertext
    /// would travel unprotected (the ciphertext is sealed, but its shape is not).
    pub allow_http: bool,
    /// PEM file of the CA(s) that sign the endpoint's certificate, instead of the
    /// built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Access key id, secret and optional session token (their `Debug` shows the key id
    /// only). `None`: unsigned requests (public buckets only).
    pub credentials: Option<Credentials>,
    /// Time to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time for a whole request, body included. Also how long a frozen server stalls a
    /// call before it fails (a timed-out request is not retried).
    pub timeout: Duration,
}

fn bad(url: &str, why: impl Into<String>) -> StoreError {
    StoreError::BadUrl(url.to_string(), why.into())
}

fn truthy(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

impl S3Config {
    /// Parses `s3://BUCKET[/PREFIX][?OPTIONS]`, options being `endpoint=URL`, `region=R`,
    /// `path_style=1`, `allow_http=1`, `ca_file=PATH`, `profile=NAME`,
    /// `connect_timeout=SECS` and `timeout=SECS`. Credentials and, when the URL names no
    /// region, the region come from the process environment and the AWS shared files;
    /// see [`S3Config::from_url_with_env`].
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::from_url_with_env(url, &|k| std::env::var(k).ok())
    }

    /// [`S3Config::from_url`] with the environment read through `env` (tests pass their
    /// own instead of changing the process-wide one). Credentials: `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the profile's keys in
    /// `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) or `AWS_CONFIG_FILE`
    /// (default `~/.aws/config`). The profile is `profile=` (which then also skips the
    /// environment's keys), else `AWS_PROFILE`, else `default`. Region: `region=`, else
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`.
    pub fn from_url_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad(url, "expected s3://BUCKET/PREFIX"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let prefix = prefix.trim_end_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !bucket_ok {
            return Err(bad(url, format!("invalid bucket name {bucket:?}")));
        }
        if !prefix.is_empty() && check_name(prefix).is_err() {
            return Err(bad(
                url,
                "the prefix must be `[a-z0-9._-]` segments separated by `/`",
            ));
        }
        let mut cfg = S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            allow_http: false,
            ca_file: None,
            credentials: None,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: REQUEST_TIMEOUT,
        };
        let mut region = None;
        let mut profile = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let flag = |v: &str| truthy(v).ok_or_else(|| bad(url, format!("{k}={v}: not 0 or 1")));
            let secs = |v: &str| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| TIMEOUT_RANGE.contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        bad(
                            url,
                            format!(
                                "{k}={v}: expected whole seconds from {} to {}",
                                TIMEOUT_RANGE.start(),
                                TIMEOUT_RANGE.end()
                            ),
                        )
                    })
            };
            match &*k {
                "endpoint" => cfg.endpoint = Some(v.trim_end_matches('/').to_string()),
                "region" => region = Some(v.to_string()),
                "path_style" => cfg.path_style = flag(&v)?,
                "allow_http" => cfg.allow_http = flag(&v)?,
                "ca_file" => cfg.ca_file = Some(PathBuf::from(&*v)),
                "profile" => {
                    // A section name in the AWS files: no brackets, no spaces.
                    let ok = !v.is_empty()
                        && !v.contains(|c: char| c.is_whitespace() || "[]".contains(c));
                    if !ok {
                        return Err(bad(url, format!("profile={v:?}: not a profile name")));
                    }
                    profile = Some(v.to_string());
                }
                "connect_timeout" => cfg.connect_timeout = secs(&v)?,
                "timeout" => cfg.timeout = secs(&v)?,
                _ => {
                    return Err(bad(
                        url,
                        format!(
                            "unknown option {k:?} (known: endpoint, region, path_style, \
                             allow_http, ca_file, profile, connect_timeout, timeout)"
                        ),
                    ));
                }
            }
        }
        let found = aws_profile::resolve(env, profile.as_deref(), region.is_none())?;
        cfg.credentials = found.credentials;
        if let Some(r) = region.or(found.region) {
            cfg.region = r;
        }
        Ok(cfg)
    }
}

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

/// What an HTTP exchange ended with, before it is mapped to a `StoreError` for one call.
enum Failure {
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
        let style = if cfg.path_style {
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

    /// Signs `action` with `headers` (lowercase names; they are signed too, so a proxy
    /// cannot strip a condition) and sends it.
    fn send<'a, A: S3Action<'a>>(
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
    fn fail(&self, name: &str, f: Failure) -> StoreError {
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

    fn read_body(&self, name: &str, resp: ureq::Response) -> Result<Vec<u8>, StoreError> {
        let cap = resp
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_BODY as usize);
        let mut v = Vec::with_capacity(cap);
        resp.into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut v)
            .map_err(|e| StoreError::Unreachable {
                endpoint: self.endpoint.clone(),
                cause: format!("reading {name}: {e}"),
                timed_out: io_timed_out(e.kind()),
            })?;
        Ok(v)
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
                let mut v = self.read_body(name, resp)?;
                if whole {
                    let start = (offset.min(v.len() as u64)) as usize;
                    let end = (start as u64).saturating_add(len).min(v.len() as u64) as usize;
                    v = v[start..end].to_vec();
                }
                Ok(v)
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

    /// An environment with nothing in it: no keys, no HOME, so no AWS files either.
    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(url: &str) -> Result<S3Config, StoreError> {
        S3Config::from_url_with_env(url, &no_env)
    }

    #[test]
    fn parses_urls() {
        let c = parse(
            "s3://my-bucket/some/prefix/?endpoint=http://127.0.0.1:8333&path_style=1&allow_http=1&region=eu-west-3",
        )
        .unwrap();
        assert_eq!(c.bucket, "my-bucket");
        assert_eq!(c.prefix, "some/prefix");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(c.region, "eu-west-3");
        assert!(c.path_style && c.allow_http);
        let c = parse("s3://bkt").unwrap();
        assert_eq!((c.prefix.as_str(), c.region.as_str()), ("", "us-east-1"));
        assert!(!c.path_style && !c.allow_http && c.endpoint.is_none());
        assert!(c.credentials.is_none());
        assert_eq!(
            (c.connect_timeout, c.timeout),
            (CONNECT_TIMEOUT, REQUEST_TIMEOUT)
        );
        for bad in [
            "s3://",
            "s3://B/x",
            "s3://bkt/Bad",
            "s3://bkt/a//b",
            "s3://bkt/x?what=1",
            "s3://bkt/x?path_style=maybe",
            "s3://bkt/x?profile=",
            "s3://bkt/x?profile=a%20b",
        ] {
            assert!(matches!(parse(bad), Err(StoreError::BadUrl(..))), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_options() {
        let c = parse("s3://bkt/p?connect_timeout=3&timeout=3600").unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.timeout, Duration::from_secs(3600));
        let c = parse("s3://bkt/p?timeout=1").unwrap();
        assert_eq!(
            (c.connect_timeout, c.timeout),
            (CONNECT_TIMEOUT, Duration::from_secs(1))
        );
        for v in ["0", "3601", "-5", "1.5", "", "10s", "99999999999999999999"] {
            for k in ["timeout", "connect_timeout"] {
                let url = format!("s3://bkt/p?{k}={v}");
                let e = parse(&url).err().unwrap();
                let msg = e.to_string();
                assert!(matches!(e, StoreError::BadUrl(..)), "{url}: {e:?}");
                assert!(
                    msg.contains(&format!("{k}={v}")) && msg.contains("1 to 3600"),
                    "{msg}"
                );
            }
        }
        // the unknown-option error lists them
        let msg = parse("s3://bkt/p?timout=5").err().unwrap().to_string();
        assert!(
            msg.contains("connect_timeout, timeout") && msg.contains("profile"),
            "{msg}"
        );
    }

    #[test]
    fn a_url_profile_reads_the_shared_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(
            d.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = d\n\
             [backup]\naws_access_key_id = BAK\naws_secret_access_key = b\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join(".aws/config"),
            "[profile backup]\nregion = eu-north-1\n",
        )
        .unwrap();
        let home = d.path().display().to_string();
        let env = |k: &str| match k {
            "HOME" => Some(home.clone()),
            "AWS_ACCESS_KEY_ID" => Some("ENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("e".to_string()),
            _ => None,
        };
        let c = S3Config::from_url_with_env("s3://bkt/p?profile=backup", &env).unwrap();
        assert_eq!(c.credentials.as_ref().map(|c| c.key()), Some("BAK"));
        assert_eq!(c.region, "eu-north-1");
        // the URL's region wins over the profile's
        let c = S3Config::from_url_with_env("s3://bkt/p?profile=backup&region=x-1", &env).unwrap();
        assert_eq!(c.region, "x-1");
        // without `profile=`, the environment's keys come first
        let c = S3Config::from_url_with_env("s3://bkt/p", &env).unwrap();
        assert_eq!(c.credentials.as_ref().map(|c| c.key()), Some("ENV"));
        assert_eq!(c.region, "us-east-1");
        let e = S3Config::from_url_with_env("s3://bkt/p?profile=gone", &env)
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::AwsSettings { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("\"gone\"") && msg.contains(".aws/credentials"),
            "{msg}"
        );
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let mut c = parse("s3://bkt/p?endpoint=http://127.0.0.1:1&path_style=1").unwrap();
        let err = S3Store::new(c.clone()).err().unwrap().to_string();
        assert!(err.contains("allow_http"), "{err}");
        c.allow_http = true;
        assert!(S3Store::new(c).is_ok());
        // an IP endpoint cannot be addressed virtual-host style
        let c = parse("s3://bkt/p?endpoint=https://127.0.0.1:1").unwrap();
        assert!(matches!(S3Store::new(c), Err(StoreError::BadUrl(..))));
    }

    #[test]
    fn debug_hides_the_secret() {
        let mut c = parse("s3://bkt").unwrap();
        c.credentials = Some(Credentials::new("AKIDEXAMPLE", "very-secret-value"));
        let s = format!("{c:?}");
        assert!(
            s.contains("AKIDEXAMPLE") && !s.contains("very-secret-value"),
            "{s}"
        );
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
