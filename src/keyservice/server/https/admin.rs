//! `--admin-listen`: a second, plain-HTTP listener for operators' tools (`GET /metrics`
//! for Prometheus). It has no TLS and no authentication, so it may only listen on a
//! loopback address: a scraper on the same host, or a tunnel to it.

use super::ServeError;
use super::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Binds the admin listener, refusing an address that is not loopback. Called before the
/// runtime starts, so a bad address stops `cirrus serve` before it serves anything.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    if !addr.ip().to_canonical().is_loopback() {
        return Err(ServeError::AdminNotLoopback(addr));
    }
    let listen_err = |source| ServeError::Listen { addr, source };
    let listener = TcpListener::bind(addr).map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    Ok(listener)
}

/// Serves `/metrics` on `listener` until the runtime stops.
pub(crate) fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .with_state(metrics);
    // The admin address goes to the log, not stdout: scripts read the one stdout line.
    log::info!("admin listener on http://{addr} (Prometheus metrics at /metrics)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("the admin listener on {addr} stopped: {e}");
        }
    });
    Ok(())
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> Response {
    let (status, body, content_type) = match metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            text,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ),
        Err(e) => {
            log::error!("encoding the metrics: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n".to_string(),
                "text/plain; charset=utf-8",
            )
        }
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        for a in ["0.0.0.0:0", "192.0.2.1:9100", "[::]:0"] {
            let addr: SocketAddr = a.parse().unwrap();
            assert!(
                matches!(bind(addr), Err(ServeError::AdminNotLoopback(x)) if x == addr),
                "{a}"
            );
        }
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}
