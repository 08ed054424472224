//! Signing in and out. The sign-in runs the key service's `web_sign_in` (web password and
//! TOTP, the API's login limits) on a blocking thread holding a slot of the Argon2 pool
//! shared with the API's logins, so a burst of sign-ins cannot take unbounded CPU or
//! memory. Every refusal reads the same.

use super::error::FrontError;
use super::session;
use super::view::{Chrome, SignInPage};
use super::{App, html, redirect};
use crate::keyservice::server::ApiError;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The largest form body taken (the sign-in form is well under 2 KiB).
pub const MAX_FORM: usize = 8 * 1024;

const WRONG: &str = "Wrong account, web password or code, or web access is off for this account.";
const ENDED: &str = "Your session ended. Sign in again.";

/// A posted form's fields; values wiped on drop (the password is one).
pub struct Form(Vec<(String, Zeroizing<String>)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a form body: at most [`MAX_FORM`] bytes, within the request timeout.
pub async fn read_form(app: &App, body: Body) -> Result<Form, FrontError> {
    let bytes = tokio::time::timeout(
        app.cx.limits.request_timeout,
        axum::body::to_bytes(body, MAX_FORM),
    )
    .await
    .map_err(|_| FrontError::Busy)?
    .map_err(|_| FrontError::TooLarge)?;
    let raw = Zeroizing::new(Vec::from(bytes));
    Ok(Form::parse(&raw))
}

fn page(status: StatusCode, error: Option<&str>, notice: Option<&str>, account: &str) -> Response {
    html(
        status,
        &SignInPage {
            chrome: Chrome::anonymous(),
            error: error.map(String::from),
            notice: notice.map(String::from),
            account: account.to_string(),
        },
    )
}

/// The sign-in page with a message, as other handlers answer (web access turned off).
pub fn page_with_error(status: StatusCode, error: &str) -> Response {
    page(status, Some(error), None, "")
}

/// `GET /signin`: the form, or the drive when already signed in.
pub async fn show(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    if session::current(&app.cx.svc, &headers).await.is_ok() {
        return redirect("/drive");
    }
    let ended = super::paths::query_value(uri.query(), "ended").is_some();
    page(StatusCode::OK, None, ended.then_some(ENDED), "")
}

/// `POST /signin`.
pub async fn submit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if session::cross_site(&headers) {
        return app.fail(FrontError::Csrf, None, &headers).await;
    }
    let form = match read_form(&app, body).await {
        Ok(f) => f,
        Err(e) => return app.fail(e, None, &headers).await,
    };
    let account = form.get("account").unwrap_or("").trim().to_string();
    let password = Zeroizing::new(form.get("password").unwrap_or("").to_string());
    let totp: String = form
        .get("totp")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if account.is_empty() || password.is_empty() || totp.is_empty() {
        return page(
            StatusCode::UNAUTHORIZED,
            Some("Enter the account, the web password and the code."),
            None,
            &account,
        );
    }
    let ip = app.cx.client_ip(peer.ip(), &headers);
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let deadline = tokio::time::Instant::now() + app.cx.limits.request_timeout;
    let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, app.cx.kdf_permit()).await else {
        return busy(&account);
    };
    let svc = app.cx.svc.clone();
    let name = account.clone();
    // The permit moves into the task: a request that runs out of time still holds its
    // slot until its Argon2 is done, so the pool bounds the work really running.
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        svc.web_sign_in(ip, &name, &password, &totp, &agent)
    });
    let signed = match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::Internal(format!("sign-in task failed: {e}"))),
        Err(_) => return busy(&account),
    };
    match signed {
        Ok(token) => match session::set_cookie(&token) {
            Ok(cookie) => {
                let mut r = redirect("/drive");
                r.headers_mut().insert(header::SET_COOKIE, cookie);
                r
            }
            Err(e) => app.fail(e, None, &headers).await,
        },
        Err(ApiError::RateLimited { retry_after }) => {
            let msg = format!(
                "Too many failed attempts. Wait {} and try again.",
                wait_text(retry_after)
            );
            let mut r = page(StatusCode::TOO_MANY_REQUESTS, Some(&msg), None, &account);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        Err(ApiError::Busy { .. }) => busy(&account),
        Err(ApiError::Unauthorized(_) | ApiError::SecondFactor(_)) => {
            page(StatusCode::UNAUTHORIZED, Some(WRONG), None, &account)
        }
        Err(e) => {
            log::error!("web sign-in failed: {e}");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("The server could not sign you in. Try again later."),
                None,
                &account,
            )
        }
    }
}

fn busy(account: &str) -> Response {
    let mut r = page(
        StatusCode::SERVICE_UNAVAILABLE,
        Some("The server is busy. Try again in a moment."),
        None,
        account,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

/// "42 seconds", "3 minutes".
fn wait_text(secs: u64) -> String {
    match secs {
        0 | 1 => "a second".into(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// `POST /signout` (form field `csrf`): ends the session, clears the cookie.
pub async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let s = match session::current(&app.cx.svc, &headers).await {
        Ok(s) => s,
        Err(e) => return app.fail(e, None, &headers).await,
    };
    let form = match read_form(&app, body).await {
        Ok(f) => f,
        Err(e) => return app.fail(e, Some(&s), &headers).await,
    };
    if let Err(e) = session::check_form(&headers, &s, form.get("csrf")) {
        return app.fail(e, Some(&s), &headers).await;
    }
    if let Some(token) = session::token(&headers) {
        let svc = app.cx.svc.clone();
        match tokio::task::spawn_blocking(move || svc.web_sign_out(&token)).await {
            Ok(Ok(())) => log::info!("web sign-out of {} (session {})", s.account, s.id),
            Ok(Err(e)) => log::warn!("web sign-out of {}: {e}", s.account),
            Err(e) => log::warn!("web sign-out task: {e}"),
        }
    }
    let mut r = redirect("/signin");
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = Form::parse(b"account=al%20ice&password=p%26w+d&totp=12+34&account=second");
        assert_eq!(f.get("account"), Some("al ice"));
        assert_eq!(f.get("password"), Some("p&w d"));
        assert_eq!(f.get("totp"), Some("12 34"));
        assert_eq!(f.get("csrf"), None);
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(wait_text(1), "a second");
        assert_eq!(wait_text(42), "42 seconds");
        assert_eq!(wait_text(300), "5 minutes");
        assert_eq!(wait_text(301), "6 minutes");
    }
}
