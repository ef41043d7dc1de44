//! `GET /metrics`: requests by route and status, a latency histogram by route, live locks,
//! the decisions of each primitive (limit checks allowed or denied, lock acquires granted or
//! conflicted, flag evaluations on or off), the process's CPU, memory, open files and start
//! time, and the build. Routes are labelled by template (`/locks/{name}`), never by the names
//! in the path.

use std::sync::OnceLock;

use parking_lot::RwLock;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::operation::ROUTES;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    live_locks: IntGauge,
    /// `octostore_decisions_total`'s children, in [`Outcome`]'s order: resolved once, so that
    /// counting a decision is one atomic add.
    decisions: [IntCounter; Outcome::ALL.len()],
    /// The children of `requests` and `latency` already used, by route (the templates, then
    /// "unmatched"), so that counting a request neither formats nor hashes its labels.
    routes: Box<[RouteMetrics]>,
}

/// The methods counted under their own name; any other (a client may send any token) is
/// counted as [`OTHER_METHOD`], so that made-up methods cannot add series without end.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
const OTHER_METHOD: &str = "other";

/// At most this many (method, status) counters are kept per route; more go through the
/// vector's own lookup.
const CACHED_PER_ROUTE: usize = 16;

/// One route's metric children, created on first use (as `with_label_values` creates them,
/// so the exposition lists the same series).
#[derive(Default)]
struct RouteMetrics {
    latency: OnceLock<Histogram>,
    /// (index in [`METHODS`], or its length for any other method; status) and its counter.
    requests: RwLock<Vec<((u8, u16), IntCounter)>>,
}

/// A decision of a primitive, counted in `octostore_decisions_total{primitive, outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A rate-limit check that counted the request.
    LimitAllowed,
    /// A rate-limit check that refused it (answered 200 with `allowed: false`).
    LimitDenied,
    /// A lock acquire that gave the caller the lease.
    LockGranted,
    /// A lock acquire refused because another lease holds the lock (409).
    LockConflicted,
    /// A flag evaluation that answered on.
    FlagOn,
    /// A flag evaluation that answered off.
    FlagOff,
}

impl Outcome {
    /// Every outcome, each with its `primitive` and `outcome` labels.
    const ALL: [(Outcome, &'static str, &'static str); 6] = [
        (Outcome::LimitAllowed, "rate_limit", "allowed"),
        (Outcome::LimitDenied, "rate_limit", "denied"),
        (Outcome::LockGranted, "lock", "granted"),
        (Outcome::LockConflicted, "lock", "conflicted"),
        (Outcome::FlagOn, "flag", "on"),
        (Outcome::FlagOff, "flag", "off"),
    ];

    /// A rate-limit check's outcome.
    pub fn limit(allowed: bool) -> Self {
        if allowed {
            Outcome::LimitAllowed
        } else {
            Outcome::LimitDenied
        }
    }

    /// A flag evaluation's outcome.
    pub fn flag(on: bool) -> Self {
        if on {
            Outcome::FlagOn
        } else {
            Outcome::FlagOff
        }
    }
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
        let decisions = IntCounterVec::new(
            Opts::new(
                "octostore_decisions_total",
                "Decisions by primitive and outcome: rate-limit checks allowed or denied, lock \
                 acquires granted or conflicted, flag evaluations on or off",
            ),
            &["primitive", "outcome"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "octostore_build_info",
                "Always 1, labelled with the version",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let mut collectors = vec![
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(live_locks.clone()),
            Box::new(decisions.clone()),
            Box::new(build_info),
        ];
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        // process_start_time_seconds and the like, read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        collectors.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        let decisions = Outcome::ALL
            .map(|(_, primitive, outcome)| decisions.with_label_values(&[primitive, outcome]));
        Self {
            registry,
            requests,
            latency,
            live_locks,
            decisions,
            routes: (0..=ROUTES).map(|_| RouteMetrics::default()).collect(),
        }
    }

    /// Counts one answered request of `route` (its number and template, from
    /// [`Operation::find`](crate::operation::Operation::find); `None`: no route matched).
    pub fn observe(
        &self,
        route: Option<(usize, &'static str)>,
        method: &str,
        status: u16,
        seconds: f64,
    ) {
        let (index, route) = route.unwrap_or((ROUTES, "unmatched"));
        let cached = &self.routes[index];
        self.count_request(cached, route, method, status);
        cached
            .latency
            .get_or_init(|| self.latency.with_label_values(&[route]))
            .observe(seconds);
    }

    /// Counts a decision of a primitive.
    pub fn decided(&self, outcome: Outcome) {
        self.decisions[outcome as usize].inc();
    }

    /// Counts a request of `route`, `method` and `status` on the route's cached counter if
    /// it has one.
    fn count_request(&self, cached: &RouteMetrics, route: &str, method: &str, status: u16) {
        let m = METHODS.iter().position(|&known| known == method);
        let method = m.map_or(OTHER_METHOD, |m| METHODS[m]);
        let create = || {
            self.requests
                .with_label_values(&[route, method, &status.to_string()])
        };
        let key = (m.unwrap_or(METHODS.len()) as u8, status);
        let counted = |requests: &[((u8, u16), IntCounter)]| {
            let found = requests.iter().find(|(k, _)| *k == key);
            found.map(|(_, counter)| counter.inc()).is_some()
        };
        if counted(&cached.requests.read()) {
            return;
        }
        let mut requests = cached.requests.write();
        if counted(&requests) {
            return;
        }
        let counter = create();
        counter.inc();
        if requests.len() < CACHED_PER_ROUTE {
            requests.push((key, counter));
        }
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
    use crate::operation::Operation;

    /// The route of a request for `path`, as the dispatcher finds it.
    fn route(path: &str) -> Option<(usize, &'static str)> {
        Operation::find(&http::Method::GET, path).map(|m| (m.route, m.template))
    }

    #[test]
    fn requests_are_counted_by_route_template() {
        let metrics = Metrics::new();
        metrics.observe(route("/locks/a/acquire"), "POST", 200, 0.001);
        metrics.observe(route("/nope/x/y/z"), "GET", 404, 0.001);
        let text = metrics.render(3);
        assert!(text.contains(
            r#"octostore_http_requests_total{method="POST",route="/locks/{name}/acquire",status="200"} 1"#
        ));
        assert!(text.contains(r#"route="unmatched""#));
        assert!(text.contains("octostore_live_locks 3"));
    }

    #[test]
    fn decisions_process_and_build_are_exposed() {
        // `decided` finds each outcome's counter by its place in `Outcome::ALL`.
        for (place, (outcome, _, _)) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, place, "{outcome:?}");
        }
        let metrics = Metrics::new();
        metrics.decided(Outcome::limit(true));
        metrics.decided(Outcome::limit(false));
        metrics.decided(Outcome::limit(false));
        metrics.decided(Outcome::LockConflicted);
        metrics.decided(Outcome::flag(true));
        let text = metrics.render(0);
        for line in [
            r#"octostore_decisions_total{outcome="allowed",primitive="rate_limit"} 1"#,
            r#"octostore_decisions_total{outcome="denied",primitive="rate_limit"} 2"#,
            r#"octostore_decisions_total{outcome="granted",primitive="lock"} 0"#,
            r#"octostore_decisions_total{outcome="conflicted",primitive="lock"} 1"#,
            r#"octostore_decisions_total{outcome="on",primitive="flag"} 1"#,
            r#"octostore_decisions_total{outcome="off",primitive="flag"} 0"#,
            concat!(
                r#"octostore_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        for process in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(process), "missing {process}:\n{text}");
        }
    }

    #[test]
    fn cached_counters_count_every_request() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.observe(route("/locks/a/release"), "POST", 200, 0.001);
        }
        for made_up in ["BREW", "PROPFIND", "X-1", "X-2"] {
            metrics.observe(route("/locks/b/release"), made_up, 200, 0.001);
        }
        // More statuses on one route than the cache keeps.
        for status in 400..(400 + CACHED_PER_ROUTE as u16 + 4) {
            metrics.observe(route("/locks"), "GET", status, 0.001);
            metrics.observe(route("/locks"), "GET", status, 0.001);
        }
        let text = metrics.render(0);
        assert!(text.contains(
            r#"octostore_http_requests_total{method="POST",route="/locks/{name}/release",status="200"} 3"#
        ));
        assert!(text.contains(
            r#"octostore_http_requests_total{method="other",route="/locks/{name}/release",status="200"} 4"#
        ));
        assert!(!text.contains("BREW"), "a made-up method is not a label");
        for status in 400..(400 + CACHED_PER_ROUTE as u16 + 4) {
            let line = format!(
                r#"octostore_http_requests_total{{method="GET",route="/locks",status="{status}"}} 2"#
            );
            assert!(text.contains(&line), "missing {line}");
        }
        assert!(text.contains(
            r#"octostore_http_request_duration_seconds_count{route="/locks/{name}/release"} 7"#
        ));
        assert!(
            !text.contains(r#"route="/flags""#),
            "no series before a request"
        );
    }
}
