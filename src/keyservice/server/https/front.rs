//! Listeners that `cirrus serve` runs beside its API, on the same runtime and with the
//! same service: the web front (`crate::web`, a layer above this one, handed in by the
//! command line) plugs in through [`Front`]. Every listener gets the API's TLS settings,
//! connection caps, timeouts and graceful shutdown from [`FrontContext::serve_tls`].

use super::accept::GuardAcceptor;
use super::conns::ConnCounter;
use super::kdf_pool::{KdfPermit, KdfPool, Saturated};
use super::{HANDSHAKE_TIMEOUT, ServeError, ServeLimits, TrustedProxies, tls};
use crate::keyservice::Fingerprint;
use crate::keyservice::server::service::KeyService;
use axum::Router;
use axum::http::HeaderMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// A listener's serving loop: ends when `cirrus serve` stops.
pub type Serving = Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>;

/// A listener that started: where it listens, its certificate, and its loop.
pub struct Listening {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    pub serving: Serving,
}

/// What an extra front shares with the API listener.
pub struct FrontContext {
    pub(crate) svc: Arc<KeyService>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) data: PathBuf,
    pub(crate) limits: ServeLimits,
    kdf: Arc<KdfPool>,
    counter: ConnCounter,
    handle: axum_server::Handle<SocketAddr>,
}

/// An extra listener of `cirrus serve`.
pub trait Front: Send {
    /// For the log and the ready line: "web".
    fn name(&self) -> &'static str;
    /// Blocking threads it may hold at once beyond the API's (long downloads hold one
    /// each), added to the runtime's pool.
    fn blocking_threads(&self) -> usize {
        0
    }
    /// Binds and returns its serving loop. Called inside the runtime, before `ready`, so
    /// a refused address stops the start.
    fn start(self: Box<Self>, cx: FrontContext) -> Result<Listening, ServeError>;
}

impl FrontContext {
    pub(super) fn new(
        svc: Arc<KeyService>,
        kdf: Arc<KdfPool>,
        proxies: TrustedProxies,
        data: PathBuf,
        limits: ServeLimits,
        counter: ConnCounter,
        handle: axum_server::Handle<SocketAddr>,
    ) -> Self {
        FrontContext {
            svc,
            proxies,
            data,
            limits,
            kdf,
            counter,
            handle,
        }
    }

    /// A slot of the bounded Argon2 pool shared with the API's logins: hold it while the
    /// KDF work runs (move it into the blocking task).
    pub(crate) async fn kdf_permit(&self) -> Result<KdfPermit, Saturated> {
        self.kdf.acquire().await
    }

    /// The caller's address: the peer's, or the one a trusted proxy names.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.proxies.client_ip(peer, headers)
    }

    /// Binds `listen` with TLS 1.2+ (`cert` = (certificate, key) PEM files, or a
    /// self-signed pair kept in DATA/`tls_dir`, made on first start) and serves `router`
    /// with the API's connection caps (shared with it), header and idle timeouts and
    /// graceful shutdown. Handlers get `ConnectInfo<SocketAddr>`.
    pub(crate) fn serve_tls(
        &self,
        listen: SocketAddr,
        cert: Option<(&Path, &Path)>,
        tls_dir: &str,
        router: Router,
    ) -> Result<Listening, ServeError> {
        let id = tls::identity(&self.data, cert, listen.ip(), tls_dir)?;
        let fingerprint = id.fingerprint;
        let tls_config = tls::server_config(id)?;
        serve_on(
            listen,
            tls_config,
            self.counter.clone(),
            &self.limits,
            self.handle.clone(),
            router,
        )
        .map(|(addr, serving)| Listening {
            addr,
            fingerprint,
            serving,
        })
    }
}

/// Binds `listen` and returns its address and serving loop (see
/// [`FrontContext::serve_tls`]); the API listener uses it too.
pub(super) fn serve_on(
    listen: SocketAddr,
    tls_config: Arc<rustls::ServerConfig>,
    counter: ConnCounter,
    limits: &ServeLimits,
    handle: axum_server::Handle<SocketAddr>,
    router: Router,
) -> Result<(SocketAddr, Serving), ServeError> {
    let listen_err = |source| ServeError::Listen {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    // The guard runs first, on the bare TCP stream: a connection over the caps is closed
    // before any TLS work.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls_config),
    )
    .handshake_timeout(HANDSHAKE_TIMEOUT)
    .acceptor(GuardAcceptor::new(counter, limits.idle_timeout));
    let mut server = axum_server::from_tcp(listener)
        .map_err(listen_err)?
        .acceptor(acceptor)
        .handle(handle)
        .http1_only()
        .first_request_timeout(limits.idle_timeout);
    // axum-server turns hyper's header timeout off. Hyper (1.12) starts it whenever the
    // connection waits for a request head, the first one and each keep-alive one, so it
    // is the idle timeout too: a half-sent or never-sent request is dropped.
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let serving = async move {
        server
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .map_err(ServeError::Serve)
    };
    Ok((addr, Box::pin(serving)))
}
