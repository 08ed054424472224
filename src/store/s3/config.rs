//! The `s3://` URL and what it names: bucket, prefix, endpoint, region, TLS, timeouts
//! and credentials (from the environment or the AWS shared files). Parsing it touches no
//! network; [`S3Store::new`](super::S3Store::new) then builds the client from it.

use super::super::aws_profile;
use super::super::{StoreError, check_name};
use rusty_s3::Credentials;
use std::path::PathBuf;
use std::time::Duration;

/// Default time to open a TCP (and TLS) connection to the endpoint (`connect_timeout=`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole request, body included (`timeout=`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds of both timeout options, in seconds: zero would fail every request, and past an
/// hour a dead server only looks like a hang.
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

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

pub(super) fn bad(url: &str, why: impl Into<String>) -> StoreError {
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

#[cfg(test)]
mod tests {
    use super::super::S3Store;
    use super::*;

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
        // an IP endpoint cannot be addressed virtual-host style: it implies path style
        // (tests/store_s3.rs talks to a real server that way)
        let c = parse("s3://bkt/p?endpoint=https://127.0.0.1:1").unwrap();
        assert!(!c.path_style);
        assert!(S3Store::new(c).is_ok());
        let c = parse("s3://bkt/p?endpoint=https://[::1]:1").unwrap();
        assert!(S3Store::new(c).is_ok());
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
}
