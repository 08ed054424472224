//! `cirrus serve`'s HTTPS front: binds the socket, terminates TLS, turns each `POST /v1/...`
//! into one call of `service/` on a blocking thread, answers `GET /healthz`, counts
//! metrics for the admin listener, and stops cleanly on SIGTERM/SIGINT.

mod accept;
mod admin;
mod conns;
mod front;
mod kdf_pool;
mod metrics;
mod proxy;
mod tls;

pub use front::{Front, FrontContext, Listening, Serving};
pub use proxy::{TrustedProxies, parse_cidr};
pub use tls::TlsError;

use super::service::{ApiError, Caller, KeyService, ServiceConfig, StoreOptions};
use super::state::StateError;
use crate::keyservice::Fingerprint;
use crate::keyservice::api::{self, ErrorBody};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use conns::ConnCounter;
use kdf_pool::KdfPool;
use metrics::Metrics;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What `cirrus serve` was asked to run.
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// DATA, the database and the master key.
    pub store: StoreOptions,
    /// `--cert` and `--key`; `None` means DATA/tls, made on first start.
    pub cert: Option<(PathBuf, PathBuf)>,
    pub config: ServiceConfig,
    pub limits: ServeLimits,
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` names the caller.
    pub trusted_proxies: TrustedProxies,
    /// `--admin-listen`: the loopback address of the plain-HTTP `/metrics` listener.
    pub admin_listen: Option<SocketAddr>,
    /// Listeners run beside the API with the same service (the web front).
    pub fronts: Vec<Box<dyn Front>>,
}

/// A listener that started, as the ready callback is told of it.
pub struct Started {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
}

/// How many connections `cirrus serve` keeps, and for how long (denial-of-service bounds).
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Open connections in all; `None`: the descriptor limit less a margin. A larger
    /// value is lowered to that.
    pub max_connections: Option<usize>,
    /// Open connections from one source address (an IPv6 /64 counts as one).
    pub max_connections_per_ip: usize,
    /// From the end of the request headers to the answer: body, queue and work.
    pub request_timeout: Duration,
    /// How long a connection may wait for (and read) the headers of its next request,
    /// the first one included; also how long a write may stall on a client that does not
    /// read.
    pub idle_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: None,
            max_connections_per_ip: 64,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("key service data: {0}")]
    State(#[from] StateError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the server runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
    #[error(
        "--admin-listen {0} is not a loopback address: the admin listener has no TLS and \
         no authentication (use 127.0.0.1:PORT or [::1]:PORT)"
    )]
    AdminNotLoopback(SocketAddr),
}

/// How long a client may take to finish the TLS handshake (slow-loris guard).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const GRACE: Duration = Duration::from_secs(10);
/// Blocking threads for requests with no KDF work (file reads and writes), on top of one
/// per KDF slot, so a full KDF pool does not hold up the other endpoints.
const OTHER_BLOCKING_THREADS: usize = 8;
/// Retry-After of a 503 from a full KDF pool or a request that ran out of time.
const BUSY_RETRY_AFTER: u64 = 2;
/// How long `GET /healthz` waits for the storage before answering 503.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What every request handler shares.
struct App {
    svc: Arc<KeyService>,
    kdf: Arc<KdfPool>,
    request_timeout: Duration,
    proxies: TrustedProxies,
    metrics: Arc<Metrics>,
    /// Held by the health check running on a blocking thread (it may outlive its
    /// timeout): one at a time.
    health_check: Arc<tokio::sync::Mutex<()>>,
}

type Svc = Arc<App>;
type Endpoint<Req, Resp> = fn(&KeyService, &Caller, Req) -> Result<Resp, ApiError>;

/// Runs the key service in the foreground until SIGTERM or SIGINT. `ready` is called once
/// every socket listens: the API first (its address and the certificate fingerprint
/// clients must pin), then each extra front.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(&[Started])) -> Result<(), ServeError> {
    let limits = opts.limits;
    // First, so a refused admin address stops the start before anything is opened.
    let admin_listener = opts.admin_listen.map(admin::bind).transpose()?;
    let counter = ConnCounter::new(
        conns::total_cap(limits.max_connections),
        limits.max_connections_per_ip,
    );
    let app = Arc::new(App {
        svc: Arc::new(KeyService::open(&opts.store, opts.config, true)?),
        kdf: Arc::new(KdfPool::sized_to_cores()),
        request_timeout: limits.request_timeout,
        proxies: opts.trusted_proxies,
        metrics: Arc::new(Metrics::new(counter.clone())),
        health_check: Arc::default(),
    });
    if !app.proxies.is_empty() {
        log::info!(
            "trusted proxies: {} (their X-Forwarded-For names the caller)",
            app.proxies
        );
    }
    log::info!(
        "at most {} connections ({} per source), idle timeout {} s, request timeout {} s, \
         {} Argon2 at once",
        counter.max_total(),
        limits.max_connections_per_ip,
        limits.idle_timeout.as_secs(),
        limits.request_timeout.as_secs(),
        app.kdf.workers()
    );
    let given = opts.cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let id = tls::identity(&opts.store.data, given, opts.listen.ip(), "tls")?;
    let fingerprint = id.fingerprint;
    let tls_config = tls::server_config(id)?;
    let fronts = opts.fronts;
    let extra_threads: usize = fronts.iter().map(|f| f.blocking_threads()).sum();

    // Two workers are plenty for a key service; Argon2 runs on the blocking pool, at most
    // `kdf.workers()` at once (each verify uses --verifier-memory-kib), so a burst of
    // logins cannot take unbounded memory.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(app.kdf.workers() + OTHER_BLOCKING_THREADS + extra_threads)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    // The service is dropped here, after the runtime, never inside it: its PostgreSQL
    // connections each own a small runtime, which must not be dropped from async code.
    let svc = app.svc.clone();
    let data = opts.store.data.clone();
    let served = rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before `ready`, so a signal sent as soon as the address is printed
        // is not lost.
        let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
        let handle = axum_server::Handle::<SocketAddr>::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => log::info!("SIGTERM: stopping"),
                _ = int.recv() => log::info!("SIGINT: stopping"),
            }
            stopper.graceful_shutdown(Some(GRACE));
        });
        let (addr, api) = front::serve_on(
            opts.listen,
            tls_config,
            counter.clone(),
            &limits,
            handle.clone(),
            router(app.clone()),
        )?;
        let mut started = vec![Started {
            name: "key service",
            addr,
            fingerprint,
        }];
        let mut loops = vec![api];
        for f in fronts {
            let name = f.name();
            let cx = FrontContext::new(
                app.svc.clone(),
                app.kdf.clone(),
                app.proxies.clone(),
                data.clone(),
                limits.clone(),
                counter.clone(),
                handle.clone(),
            );
            let l = f.start(cx)?;
            log::info!("{name} listening on https://{}", l.addr);
            started.push(Started {
                name,
                addr: l.addr,
                fingerprint: l.fingerprint,
            });
            loops.push(l.serving);
        }
        if let Some(l) = admin_listener {
            admin::spawn(l, app.metrics.clone())?;
        }
        ready(&started);
        // Every loop ends at the shared graceful shutdown; the first error ends the rest.
        let mut set = tokio::task::JoinSet::new();
        for l in loops {
            set.spawn(l);
        }
        while let Some(done) = set.join_next().await {
            done.map_err(|e| ServeError::Serve(std::io::Error::other(e.to_string())))??;
        }
        log::info!("key service stopped");
        Ok(())
    });
    drop(rt);
    drop(svc);
    served
}

fn router(svc: Svc) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/v1/account/create",
            kdf_route("account/create", |s, c, r| s.create(c, r)),
        )
        .route("/v1/salt", route("salt", |s, _, r| s.salt(r)))
        .route("/v1/login", kdf_route("login", |s, c, r| s.login(c, r)))
        .route(
            "/v1/logout",
            route("logout", |s, c, _: api::Empty| s.logout(c)),
        )
        .route("/v1/reauth", kdf_route("reauth", |s, c, r| s.reauth(c, r)))
        .route(
            "/v1/account/status",
            route("account/status", |s, c, _: api::Empty| s.account_status(c)),
        )
        .route(
            "/v1/account/flags",
            route("account/flags", |s, c, r| s.account_flags(c, r)),
        )
        .route("/v1/notices", route("notices", |s, c, r| s.notices(c, r)))
        .route(
            "/v1/account/cancel-reset",
            route("account/cancel-reset", |s, c, r| s.cancel_reset(c, r)),
        )
        .route(
            "/v1/account/reset",
            kdf_route("account/reset", |s, c, r| s.reset(c, r)),
        )
        .route(
            "/v1/password/change",
            kdf_route("password/change", |s, c, r| s.password_change(c, r)),
        )
        .route(
            "/v1/totp/enroll",
            route("totp/enroll", |s, c, _: api::Empty| s.totp_enroll(c)),
        )
        .route(
            "/v1/totp/confirm",
            route("totp/confirm", |s, c, r| s.totp_confirm(c, r)),
        )
        .route(
            "/v1/device-token/revoke-all",
            route("device-token/revoke-all", |s, c, _: api::Empty| {
                s.revoke_devices(c)
            }),
        )
        .route(
            "/v1/service/wrap",
            route("service/wrap", |s, c, r| s.service_wrap(c, r)),
        )
        .route(
            "/v1/service/unwrap",
            route("service/unwrap", |s, c, r| s.service_unwrap(c, r)),
        )
        .route(
            "/v1/service/rewrap",
            route("service/rewrap", |s, c, r| s.service_rewrap(c, r)),
        )
        .route(
            "/v1/service/rotate",
            route("service/rotate", |s, c, _: api::Empty| s.service_rotate(c)),
        )
        .route(
            "/v1/service/retire",
            route("service/retire", |s, c, r| s.service_retire(c, r)),
        )
        .route(
            "/v1/service/status",
            route("service/status", |s, c, _: api::Empty| s.service_status(c)),
        )
        .route(
            "/v1/record/put",
            route("record/put", |s, c, r| s.record_put(c, r)),
        )
        .route(
            "/v1/record/get",
            route("record/get", |s, c, r| s.record_get(c, r)),
        )
        .route(
            "/v1/record/delete",
            route("record/delete", |s, c, r| s.record_delete(c, r)),
        )
        .route(
            "/v1/record/list",
            route("record/list", |s, c, _: api::Empty| s.record_list(c)),
        )
        .route(
            "/v1/escrow/put",
            route("escrow/put", |s, c, r| s.escrow_put(c, r)),
        )
        .route(
            "/v1/escrow/open",
            route("escrow/open", |s, c, r| s.escrow_open(c, r)),
        )
        .route(
            "/v1/escrow/delete",
            route("escrow/delete", |s, c, _: api::Empty| s.escrow_delete(c)),
        )
        .route("/v1/web/on", kdf_route("web/on", |s, c, r| s.web_on(c, r)))
        .route(
            "/v1/web/off",
            route("web/off", |s, c, _: api::Empty| s.web_off(c)),
        )
        .route(
            "/v1/web/status",
            route("web/status", |s, c, _: api::Empty| s.web_status(c)),
        )
        .route(
            "/v1/web/sessions",
            route("web/sessions", |s, c, _: api::Empty| s.web_sessions_list(c)),
        )
        .route(
            "/v1/web/revoke",
            route("web/revoke", |s, c, r| s.web_revoke(c, r)),
        )
        .route(
            "/v1/web/approvals",
            route("web/approvals", |s, c, _: api::Empty| {
                s.web_approvals_list(c)
            }),
        )
        .route(
            "/v1/web/approve",
            route("web/approve", |s, c, r| s.web_approve(c, r)),
        )
        .fallback(|State(app): State<Svc>| async move {
            unmatched(
                &app,
                ApiError::NotFound("no such endpoint (the API is POST /v1/...)".into()),
            )
        })
        .method_not_allowed_fallback(|State(app): State<Svc>| async move {
            unmatched(
                &app,
                ApiError::BadRequest("every endpoint takes POST with a JSON body".into()),
            )
        })
        .with_state(svc)
}

/// A request that matched no route: counted under one label, whatever its path.
fn unmatched(app: &App, e: ApiError) -> Response {
    app.metrics
        .observe(metrics::UNMATCHED, Some(&e), Duration::ZERO);
    error_response(&e)
}

/// `GET /healthz`: 200 when the storage answers within [`HEALTH_TIMEOUT`], else 503. No
/// authentication and no rate limit, so it must stay cheap: one check runs at a time on
/// a blocking thread, holding `health_check` until it ends. Probes arriving together
/// wait their turn; while a check hangs (a stuck storage), later probes time out waiting
/// for the lock and take no blocking thread of their own.
async fn healthz(State(app): State<Svc>) -> Response {
    let lock = app.health_check.clone();
    let svc = app.svc.clone();
    let check = async move {
        let one_at_a_time = lock.lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let _held = one_at_a_time;
            svc.healthy()
        })
        .await
    };
    let healthy = matches!(
        tokio::time::timeout(HEALTH_TIMEOUT, check).await,
        Ok(Ok(true))
    );
    let (status, body) = if healthy {
        (StatusCode::OK, "ok\n")
    } else {
        log::warn!("health check failed: the storage did not answer");
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n")
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An endpoint that does no Argon2 work.
fn route<Req, Resp>(name: &'static str, f: Endpoint<Req, Resp>) -> MethodRouter<Svc>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    endpoint(name, false, f)
}

/// An endpoint that may run Argon2 (a verifier made or checked): it runs under a permit
/// of the bounded KDF pool.
fn kdf_route<Req, Resp>(name: &'static str, f: Endpoint<Req, Resp>) -> MethodRouter<Svc>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    endpoint(name, true, f)
}

fn endpoint<Req, Resp>(name: &'static str, kdf: bool, f: Endpoint<Req, Resp>) -> MethodRouter<Svc>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    post(
        move |State(svc): State<Svc>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              headers: HeaderMap,
              body: Body| async move {
            let start = Instant::now();
            let client = svc.proxies.client_ip(peer.ip(), &headers);
            let metrics = svc.metrics.clone();
            let res = call(svc, client, &headers, body, kdf, f).await;
            metrics.observe(name, res.as_ref().err(), start.elapsed());
            let status = res.as_ref().map(|_| 200).unwrap_or_else(|e| e.status());
            log::debug!("{client} {name} -> {status}");
            match res {
                Ok(bytes) => json_response(StatusCode::OK, bytes),
                Err(e) => error_response(&e),
            }
        },
    )
}

/// Reads the body (capped in size and time), decodes it, and runs the endpoint on a
/// blocking thread: Argon2 and file writes must not stall the async workers. The whole
/// of it has `--request-timeout`. `client` is the caller's address: the peer's, or the
/// one a trusted proxy named.
async fn call<Req, Resp>(
    app: Svc,
    client: IpAddr,
    headers: &HeaderMap,
    body: Body,
    kdf: bool,
    f: Endpoint<Req, Resp>,
) -> Result<Vec<u8>, ApiError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + app.request_timeout;
    let busy = || ApiError::Busy {
        retry_after: BUSY_RETRY_AFTER,
    };
    let bytes = tokio::time::timeout_at(deadline, axum::body::to_bytes(body, api::MAX_BODY))
        .await
        .map_err(|_| ApiError::TimedOut)?
        .map_err(|_| ApiError::TooLarge)?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    let req: Req = serde_json::from_slice(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body is not what this endpoint takes: {e}"
        ))
    })?;
    let caller = Caller {
        ip: client,
        bearer: bearer(headers),
    };
    let permit = if kdf {
        let waited = tokio::time::timeout_at(deadline, app.kdf.acquire()).await;
        Some(waited.map_err(|_| busy())?.map_err(|_| busy())?)
    } else {
        None
    };
    // The permit moves into the task: a request that runs out of time below still holds
    // its KDF slot until its Argon2 is done, so the pool bounds the work really running.
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&app.svc, &caller, req)
    });
    let resp = tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| busy())?
        .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))??;
    serde_json::to_vec(&resp).map_err(|e| ApiError::Internal(format!("encoding a response: {e}")))
}

fn bearer(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Zeroizing::new(token.trim().to_string()))
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Answers carry keys and tokens: no cache anywhere may keep them.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error_response(e: &ApiError) -> Response {
    if let ApiError::Internal(detail) = e {
        log::error!("internal error: {detail}");
    }
    let body: ErrorBody = e.body();
    let bytes =
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, bytes);
    if let Some(secs) = body.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref().map(String::as_str), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).is_none());
    }

    #[test]
    fn errors_are_json_with_status_and_retry_after() {
        let r = error_response(&ApiError::RateLimited { retry_after: 42 });
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "42");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = error_response(&ApiError::EscrowWrong { remaining: 3 });
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let internal = ApiError::Internal("secret detail".into());
        assert_eq!(
            error_response(&internal).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // the detail stays in the server log
        assert!(!internal.body().error.contains("secret detail"));
    }
}
