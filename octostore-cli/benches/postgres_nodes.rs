//! Requests per second through one and two `octostore serve` nodes sharing one PostgreSQL
//! database, from client threads spread evenly over the nodes. Run:
//!
//! ```sh
//! OCTOSTORE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p octostore-cli --bench postgres_nodes
//! ```
//!
//! Each client is an `octostore_http::Client` (blocking, one kept-alive connection) on a
//! thread of its own; each workload runs for [`RUN_FOR`] after a warm-up of [`WARM_UP`].

#[path = "../tests/multinode/cluster.rs"]
#[allow(dead_code)] // what only the tests use (killing a node)
mod cluster;

use std::time::{Duration, Instant};

use octostore_core::{Api, ConfigKey, LimitName, LockName, RatePolicy, Ttl};
use octostore_http::Client;

use crate::cluster::{postgres_url, Cluster};

const RUN_FOR: Duration = Duration::from_secs(5);
const WARM_UP: Duration = Duration::from_secs(1);
const CLIENTS: usize = 16;

#[derive(Clone, Copy)]
enum Workload {
    /// Acquire then release a lock of the client's own: two requests.
    LockCycle,
    /// A rate-limit check on a limit of the client's own.
    OwnLimitCheck,
    /// A rate-limit check on one limit that every client shares: one hot row.
    SharedLimitCheck,
    /// A config put on a key of the client's own.
    ConfigPut,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::LockCycle,
        Workload::OwnLimitCheck,
        Workload::SharedLimitCheck,
        Workload::ConfigPut,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::LockCycle => "lock acquire + release (own lock)",
            Workload::OwnLimitCheck => "rate-limit check (own limit)",
            Workload::SharedLimitCheck => "rate-limit check (one shared limit)",
            Workload::ConfigPut => "config put (own key)",
        }
    }

    /// Runs the workload as client `i` for `how_long`: each request's latency.
    fn run(self, api: &Client, i: usize, how_long: Duration) -> Vec<Duration> {
        let lock = LockName::parse(&format!("bench-{i}")).unwrap();
        let own = LimitName::parse(&format!("bench-{i}")).unwrap();
        let shared = LimitName::parse("bench-shared").unwrap();
        let key = ConfigKey::parse(&format!("bench-{i}")).unwrap();
        let ttl = Ttl::seconds(60).unwrap();
        let policy = RatePolicy::new(10_000, 1).unwrap();
        let mut latencies = Vec::new();
        let mut timed = |request: &mut dyn FnMut()| {
            let start = Instant::now();
            request();
            latencies.push(start.elapsed());
        };
        let end = Instant::now() + how_long;
        let mut n = 0u64;
        while Instant::now() < end {
            match self {
                Workload::LockCycle => {
                    let mut lease = None;
                    timed(&mut || lease = Some(api.acquire(&lock, ttl, None).unwrap()));
                    let lease_id = lease.unwrap().lease.lease_id;
                    timed(&mut || api.release(&lock, lease_id).unwrap());
                }
                Workload::OwnLimitCheck => timed(&mut || {
                    api.check(&own, policy).unwrap();
                }),
                Workload::SharedLimitCheck => timed(&mut || {
                    api.check(&shared, policy).unwrap();
                }),
                Workload::ConfigPut => timed(&mut || {
                    api.put_config(&key, serde_json::json!({ "n": n }), None)
                        .unwrap();
                }),
            }
            n += 1;
        }
        latencies
    }
}

/// Runs `workload` on [`CLIENTS`] threads, client `i` on node `i % nodes`.
fn measure(cluster: &Cluster, nodes: usize, workload: Workload) -> Vec<Duration> {
    let clients: Vec<Client> = (0..CLIENTS).map(|i| cluster.client(i % nodes)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, api)| {
                s.spawn(move || {
                    workload.run(api, i, WARM_UP);
                    workload.run(api, i, RUN_FOR)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` asks bench binaries to list their benches
    }
    let Some(url) = postgres_url() else { return };
    println!("| nodes | workload | requests/s | p50 | p99 |");
    println!("|---:|---|---:|---:|---:|");
    for nodes in [1, 2] {
        let cluster = Cluster::start(&url, nodes);
        for workload in Workload::ALL {
            let mut latencies = measure(&cluster, nodes, workload);
            latencies.sort_unstable();
            let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
            println!(
                "| {nodes} | {} | {:.0} | {} | {} |",
                workload.name(),
                latencies.len() as f64 / RUN_FOR.as_secs_f64(),
                millis(at(0.5)),
                millis(at(0.99)),
            );
        }
    }
}
