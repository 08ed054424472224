//! The security headers every answer of the web front carries, set in one middleware so
//! no handler can forget them: a CSP with no inline script or style and nothing from
//! another origin, no MIME sniffing, no referrer, no framing, and no caching of anything
//! but the static assets (pages and files are an account's private data).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The web contract's policy: everything from this origin only, nothing inline, no
/// framing by anyone. `connect-src 'self'`: the upload script posts its form to the
/// front itself.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    img-src 'self'; media-src 'self'; object-src 'self'; frame-src 'self'; connect-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The assets' route: the only answers a cache may keep.
pub const STATIC_PREFIX: &str = "/static/";

const FIXED: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Adds the headers to whatever the handler answered.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let cacheable = req.uri().path().starts_with(STATIC_PREFIX);
    let mut resp = next.run(req).await;
    apply(resp.headers_mut(), cacheable);
    resp
}

fn apply(h: &mut axum::http::HeaderMap, cacheable: bool) {
    for (name, value) in FIXED {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !cacheable || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn every_answer_gets_them_and_only_assets_cache() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        apply(&mut h, false);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("  "));
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        apply(&mut h, true);
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        // An asset answer that set nothing (a 404) is not kept either.
        let mut h = HeaderMap::new();
        apply(&mut h, true);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
