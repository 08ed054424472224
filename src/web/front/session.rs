//! The web session as the browser holds it: the `__Host-cirrus` cookie (the token; the
//! key service keeps only its hash), looked up on every request, and the forms' CSRF
//! token. A form from another site is refused before its token is even looked at.

use super::error::{self, FrontError};
use crate::keyservice::server::{KeyService, WebSession};
use axum::http::{HeaderMap, HeaderValue, header};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The cookie's name. `__Host-`: the browser takes it only with `Secure`, `Path=/` and no
/// `Domain`, so no other host (a sibling subdomain) can set or shadow it.
pub const COOKIE: &str = "__Host-cirrus";
/// Longer than any token the key service makes (64 hex).
const MAX_TOKEN: usize = 128;

/// The session token of the request's cookie, if it has one that could be one.
pub fn token(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_TOKEN && v.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(|v| Zeroizing::new(v.to_string()))
}

/// `Set-Cookie` for a new session: a browser-session cookie (the server ends it anyway
/// after the idle and absolute limits), never readable by scripts, never sent cross-site.
pub fn set_cookie(token: &str) -> Result<HeaderValue, FrontError> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .map_err(|_| FrontError::Internal("a session token that is no header value".into()))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-cirrus=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the browser says the request comes from another site (`Sec-Fetch-Site`,
/// sent by every current browser). A login form posted from elsewhere (login CSRF) is
/// refused with it; without the header, the CSRF token and SameSite are the guard.
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !matches!(v, "same-origin" | "none"))
}

/// A state-changing form's check: same site, and this session's token.
pub fn check_form(
    headers: &HeaderMap,
    s: &WebSession,
    csrf: Option<&str>,
) -> Result<(), FrontError> {
    if cross_site(headers) {
        return Err(FrontError::Csrf);
    }
    match csrf {
        Some(given) if s.csrf_ok(given) => Ok(()),
        _ => Err(FrontError::Csrf),
    }
}

/// The live session of the request's cookie (the key service moves its last use to now
/// and ends it when idle or too old). `SignedOut` without one.
pub async fn current(svc: &Arc<KeyService>, headers: &HeaderMap) -> Result<WebSession, FrontError> {
    let token = token(headers).ok_or(FrontError::SignedOut)?;
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || svc.web_session(&token))
        .await
        .map_err(error::joined)?
        .map_err(error::from_api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let t = |v| token(&with_cookie(v)).map(|t| t.to_string());
        assert_eq!(t("__Host-cirrus=ab12"), Some("ab12".into()));
        assert_eq!(t("a=b; __Host-cirrus=ab12; c=d"), Some("ab12".into()));
        assert_eq!(t("a=b"), None);
        assert_eq!(t("__Host-cirrus="), None);
        assert_eq!(t("__Host-cirrus=a;b"), Some("a".into()));
        assert_eq!(t("__Host-cirrus=a%20b"), None);
        assert_eq!(t("cirrus=ab12"), None);
        let mut h = with_cookie("x=y");
        h.append(header::COOKIE, HeaderValue::from_static("__Host-cirrus=ff"));
        assert_eq!(token(&h).map(|t| t.to_string()), Some("ff".into()));
    }

    #[test]
    fn cookies_carry_the_contract_attributes() {
        let v = set_cookie("abc").unwrap();
        assert_eq!(
            v,
            "__Host-cirrus=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("a\nb").is_err());
        assert!(clear_cookie().to_str().unwrap().contains("Max-Age=0"));
    }

    fn session() -> WebSession {
        WebSession {
            id: "0011223344556677".into(),
            account: "alice".into(),
            csrf: "ab".repeat(32),
            approval: crate::keyservice::server::Approval::NotNeeded,
        }
    }

    #[test]
    fn forms_need_the_session_token_and_the_same_site() {
        let s = session();
        let good = "ab".repeat(32);
        let h = HeaderMap::new();
        assert!(check_form(&h, &s, Some(&good)).is_ok());
        assert!(matches!(check_form(&h, &s, None), Err(FrontError::Csrf)));
        assert!(matches!(
            check_form(&h, &s, Some("")),
            Err(FrontError::Csrf)
        ));
        assert!(matches!(
            check_form(&h, &s, Some(&"ab".repeat(31))),
            Err(FrontError::Csrf)
        ));
        assert!(matches!(
            check_form(&h, &s, Some(&"ba".repeat(32))),
            Err(FrontError::Csrf)
        ));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_form(&h, &s, Some(&good)).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(matches!(
            check_form(&h, &s, Some(&good)),
            Err(FrontError::Csrf)
        ));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(cross_site(&h));
    }
}
