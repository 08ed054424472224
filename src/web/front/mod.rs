//! The web front's HTTPS listener: the routes of the web contract, each request's session
//! looked up from its cookie, the pages built on blocking threads from the account's
//! drive (`drive.rs`), and the security headers on every answer (`headers.rs`). Server-
//! rendered HTML (askama, src/web/templates/) that works without JavaScript.

pub mod drive;
pub mod error;

mod assets;
mod changes;
mod download;
mod headers;
mod mime;
mod pages;
mod paths;
mod range;
mod session;
mod signin;
mod view;

use super::WebOptions;
use crate::keyservice::server::{Approval, Front, FrontContext, Listening, ServeError, WebSession};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drive::{DriveSource, Viewer};
use error::FrontError;
use std::sync::Arc;
use std::time::Duration;

/// How often ended web sessions are removed from the database (they are refused as soon
/// as they end; this only keeps the table small).
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// The web front, run by `cirrus serve --web-listen`.
pub struct WebFront {
    opts: WebOptions,
    drive: Option<Arc<dyn DriveSource>>,
}

impl WebFront {
    pub fn new(opts: WebOptions) -> Self {
        WebFront { opts, drive: None }
    }

    /// With the drives read from `drive` instead of the accounts' stores (tests).
    pub fn with_drive(opts: WebOptions, drive: Arc<dyn DriveSource>) -> Self {
        WebFront {
            opts,
            drive: Some(drive),
        }
    }
}

impl Front for WebFront {
    fn name(&self) -> &'static str {
        "web"
    }

    /// Page builds and download chunk reads each hold a blocking thread for one store
    /// read at a time; a download waiting on its client holds none.
    fn blocking_threads(&self) -> usize {
        16
    }

    fn start(self: Box<Self>, cx: FrontContext) -> Result<Listening, ServeError> {
        let drive = self.drive.unwrap_or_else(|| {
            Arc::new(crate::web::reader_source::ReaderSource {
                svc: cx.svc.clone(),
            })
        });
        tokio::spawn(prune(cx.svc.clone()));
        let app = Arc::new(App { cx, drive });
        let cert = self
            .opts
            .cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        app.cx
            .serve_tls(self.opts.listen, cert, "web-tls", router(app.clone()))
    }
}

/// What every handler shares.
pub(crate) struct App {
    cx: FrontContext,
    drive: Arc<dyn DriveSource>,
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/signin", get(signin::show).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/approve", get(approve))
        .route("/drive", get(categories))
        .route("/drive/", get(|| async { redirect("/drive") }))
        .route("/drive/{*rest}", get(browse))
        .route("/file/{*rest}", get(file))
        .route("/mkdir/{*rest}", post(changes::mkdir))
        .route("/delete/{*rest}", post(changes::delete))
        .route("/rename/{*rest}", post(changes::rename))
        // An upload's size is bounded by the account's quota of pending changes, checked
        // as its parts are stored, not by a body limit.
        .route(
            "/upload/{*rest}",
            post(changes::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/static/{name}", get(assets::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(app)
}

/// Removes ended web sessions now and then.
async fn prune(svc: Arc<crate::keyservice::server::KeyService>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let svc = svc.clone();
        match tokio::task::spawn_blocking(move || svc.web_prune()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("pruning ended web sessions: {e}"),
            Err(e) => log::warn!("pruning ended web sessions: {e}"),
        }
    }
}

impl App {
    /// Runs blocking work (the drive) within the request timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, FrontError> + Send + 'static,
    ) -> Result<T, FrontError> {
        tokio::time::timeout(
            self.cx.limits.request_timeout,
            tokio::task::spawn_blocking(f),
        )
        .await
        .map_err(|_| FrontError::Busy)?
        .map_err(error::joined)?
    }

    /// The session of a drive request and who it reads as; or the answer instead of the
    /// page: the sign-in page when signed out, the approval page while an ADP sign-in
    /// waits for a trusted device.
    async fn viewer(&self, headers: &HeaderMap) -> Result<(WebSession, Viewer), Response> {
        let s = match session::current(&self.cx.svc, headers).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(e, None, headers).await),
        };
        match s.approval {
            Approval::Waiting => Err(redirect("/approve")),
            Approval::Elsewhere => Err(self.fail(FrontError::OtherServer, Some(&s), headers).await),
            Approval::NotNeeded | Approval::Approved => {
                let who = Viewer {
                    account: s.account.clone(),
                    session: s.id.clone(),
                    approved: s.approval == Approval::Approved,
                };
                Ok((s, who))
            }
        }
    }

    /// The answer to a failure: the sign-in page when signed out, web access turned off
    /// when the drive says ADP is on, else an error page.
    async fn fail(&self, e: FrontError, s: Option<&WebSession>, headers: &HeaderMap) -> Response {
        match &e {
            FrontError::SignedOut => {
                let had_cookie = session::token(headers).is_some();
                let mut r = redirect(if had_cookie {
                    "/signin?ended=1"
                } else {
                    "/signin"
                });
                if had_cookie {
                    r.headers_mut()
                        .insert(header::SET_COOKIE, session::clear_cookie());
                }
                return r;
            }
            FrontError::AdpOn => {
                if let Some(s) = s {
                    let svc = self.cx.svc.clone();
                    let account = s.account.clone();
                    let off = tokio::task::spawn_blocking(move || {
                        svc.web_disable(&account, "Advanced Data Protection is on")
                    })
                    .await;
                    if !matches!(off, Ok(Ok(()))) {
                        log::error!("could not turn web access off for {}", s.account);
                    }
                }
                let mut r = signin::page_with_error(
                    StatusCode::FORBIDDEN,
                    "Advanced Data Protection is on for this account, so web access is now \
                     off: the server no longer has the keys. Turning it back on needs a \
                     trusted device.",
                );
                r.headers_mut()
                    .insert(header::SET_COOKIE, session::clear_cookie());
                return r;
            }
            FrontError::Internal(d) => log::error!("web front: {d}"),
            FrontError::Unavailable(_) | FrontError::Integrity(_) => {
                log::warn!(
                    "web front, account {}: {e}",
                    s.map_or("-", |s| s.account.as_str())
                )
            }
            _ => {}
        }
        let chrome = s.map_or_else(view::Chrome::anonymous, view::Chrome::signed_in);
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        html(status, &view::ErrorPage::of(&e, chrome))
    }
}

/// An HTML answer.
fn html(status: StatusCode, page: &impl askama::Template) -> Response {
    let (status, body) = match view::render(page) {
        Ok(b) => (status, b),
        Err(e) => {
            log::error!("{e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n".to_string(),
            )
        }
    };
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// 303 to a location we built (ASCII: paths are percent-encoded).
fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn outcome(o: pages::Outcome) -> Response {
    match o {
        pages::Outcome::Page(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        pages::Outcome::Redirect(to) => redirect(&to),
    }
}

/// `GET /`.
async fn root(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match session::current(&app.cx.svc, &headers).await {
        Ok(_) => redirect("/drive"),
        Err(_) => redirect("/signin"),
    }
}

/// `GET /drive`.
async fn categories(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (src, chrome) = (app.drive.clone(), view::Chrome::signed_in(&s));
    match app
        .blocking(move || pages::categories(&*src, &who, chrome))
        .await
    {
        Ok(o) => outcome(o),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `GET /drive/CAT/...`.
async fn browse(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(p) = uri.path().strip_prefix("/drive/").and_then(paths::parse) else {
        return app.fail(FrontError::NotFound, Some(&s), &headers).await;
    };
    let query = uri.query().map(String::from);
    let (src, chrome) = (app.drive.clone(), view::Chrome::signed_in(&s));
    match app
        .blocking(move || pages::drive(&*src, &who, chrome, &p, query.as_deref()))
        .await
    {
        Ok(o) => outcome(o),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `GET /file/CAT/PATH[?download=1]`.
async fn file(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(p) = uri.path().strip_prefix("/file/").and_then(paths::parse) else {
        return app.fail(FrontError::NotFound, Some(&s), &headers).await;
    };
    let attach = paths::query_value(uri.query(), "download").is_some_and(|v| v != "0");
    let src = app.drive.clone();
    match app
        .blocking(move || pages::open_download(&*src, &who, &p))
        .await
    {
        Ok(d) => download::respond(d, &headers, attach),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `GET /approve`: the code an ADP sign-in waits on; the drive once a device approved it.
async fn approve(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = match session::current(&app.cx.svc, &headers).await {
        Ok(s) => s,
        Err(e) => return app.fail(e, None, &headers).await,
    };
    if s.approval != Approval::Waiting {
        return redirect("/drive");
    }
    let Some(code) = app.cx.svc.web_sign_in_code(&s.id) else {
        return app.fail(FrontError::OtherServer, Some(&s), &headers).await;
    };
    let mut r = html(
        StatusCode::OK,
        &view::ApprovePage {
            chrome: view::Chrome::signed_in(&s),
            code: code.to_string(),
            releasable: crate::format::web::RELEASABLE.join(", "),
        },
    );
    // The code is a secret of this page: never kept by a cache.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Any other path: 404, with the signed-in page frame when there is a session.
async fn not_found(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = session::current(&app.cx.svc, &headers).await.ok();
    app.fail(FrontError::NotFound, s.as_ref(), &headers).await
}
