//! `GET /metrics`: requests by route and status, a latency histogram by route, live locks.
//! Routes are labelled by template (`/locks/{name}`), never by the names in the path.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    live_locks: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "octostore_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "octostore_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                1.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let live_locks = IntGauge::new("octostore_live_locks", "Locks held by a live lease")
            .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(live_locks.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            live_locks,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, path: &str, method: &str, status: u16, seconds: f64) {
        let route = crate::routes::template_of(path).map_or("unmatched", |(t, _)| t);
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The exposition text, with the live-lock gauge set to `live_locks`.
    pub fn render(&self, live_locks: usize) -> String {
        self.live_locks.set(live_locks as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_template() {
        let metrics = Metrics::new();
        metrics.observe("/locks/a/acquire", "POST", 200, 0.001);
        metrics.observe("/nope/x/y/z", "GET", 404, 0.001);
        let text = metrics.render(3);
        assert!(text.contains(
            r#"octostore_http_requests_total{method="POST",route="/locks/{name}/acquire",status="200"} 1"#
        ));
        assert!(text.contains(r#"route="unmatched""#));
        assert!(text.contains("octostore_live_locks 3"));
    }
}
