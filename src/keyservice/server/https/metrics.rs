//! The key service's Prometheus metrics, counted by the HTTPS front and shown by the admin
//! listener (`--admin-listen`). Every label value is a name from the route table or an
//! error kind, never the request path: the number of series stays fixed whatever
//! clients send.

use super::conns::ConnCounter;
use crate::keyservice::server::service::ApiError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The endpoint label of requests that matched no route (scanners, typos).
pub(crate) const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

type DurationFamily = Family<EndpointLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms to about 10 s: a salt lookup at the bottom, an Argon2 verify in the middle,
    // a request that waited for a KDF slot at the top.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<EndpointLabel, Counter>,
    failures: Family<KindLabel, Counter>,
    lockouts: Counter,
    durations: DurationFamily,
    open_connections: Gauge,
    conns: ConnCounter,
}

impl Metrics {
    pub(crate) fn new(conns: ConnCounter) -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            failures: Family::default(),
            lockouts: Counter::default(),
            durations: Family::new_with_constructor(duration_histogram),
            open_connections: Gauge::default(),
            conns,
        };
        // The encoder appends `_total` to counters.
        m.registry.register(
            "cirrus_requests",
            "Requests per API endpoint (the route's name; unmatched: no route)",
            m.requests.clone(),
        );
        m.registry.register(
            "cirrus_request_failures",
            "Requests answered with an error, per kind of error (the API's error code)",
            m.failures.clone(),
        );
        m.registry.register(
            "cirrus_lockouts",
            "Refusals by a failure rate limit (HTTP 429: too many wrong logins, resets or \
             escrow proofs per account or source) plus escrow records destroyed by a wrong \
             proof",
            m.lockouts.clone(),
        );
        m.registry.register(
            "cirrus_request_duration_seconds",
            "Time from the request's headers to its answer, per API endpoint",
            m.durations.clone(),
        );
        m.registry.register(
            "cirrus_open_connections",
            "TLS connections open now (admitted under the connection caps)",
            m.open_connections.clone(),
        );
        m
    }

    /// Counts one answered request of `endpoint` (a route name or [`UNMATCHED`]).
    pub(crate) fn observe(&self, endpoint: &'static str, err: Option<&ApiError>, took: Duration) {
        let label = EndpointLabel { endpoint };
        self.requests.get_or_create(&label).inc();
        self.durations
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        let Some(e) = err else { return };
        self.failures
            .get_or_create(&KindLabel { kind: e.code() })
            .inc();
        if matches!(
            e,
            ApiError::RateLimited { .. } | ApiError::EscrowWrong { remaining: 0 }
        ) {
            self.lockouts.inc();
        }
    }

    /// The exposition in the Prometheus text format (0.0.4).
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let open = i64::try_from(self.conns.open_total()).unwrap_or(i64::MAX);
        self.open_connections.set(open);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_failures_and_lockouts() {
        let m = Metrics::new(ConnCounter::new(10, 10));
        let ms = Duration::from_millis(3);
        m.observe("login", None, ms);
        m.observe("login", Some(&ApiError::Unauthorized("x".into())), ms);
        m.observe("login", Some(&ApiError::RateLimited { retry_after: 1 }), ms);
        m.observe(
            "escrow/open",
            Some(&ApiError::EscrowWrong { remaining: 2 }),
            ms,
        );
        m.observe(
            "escrow/open",
            Some(&ApiError::EscrowWrong { remaining: 0 }),
            ms,
        );
        m.observe(UNMATCHED, Some(&ApiError::NotFound("x".into())), ms);
        let text = m.render().unwrap();
        for line in [
            "cirrus_requests_total{endpoint=\"login\"} 3",
            "cirrus_requests_total{endpoint=\"escrow/open\"} 2",
            "cirrus_requests_total{endpoint=\"unmatched\"} 1",
            "cirrus_request_failures_total{kind=\"unauthorized\"} 1",
            "cirrus_request_failures_total{kind=\"rate_limited\"} 1",
            "cirrus_request_failures_total{kind=\"escrow_wrong\"} 2",
            "cirrus_lockouts_total 2",
            "cirrus_request_duration_seconds_count{endpoint=\"login\"} 3",
            "cirrus_open_connections 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }
}
