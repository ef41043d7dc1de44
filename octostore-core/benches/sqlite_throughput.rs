//! Operations per second on one SQLite file, in each durability mode, from one process and
//! from several at once. Run: `cargo bench -p octostore-core --bench sqlite_throughput`.
//!
//! Each worker runs one kind of operation on its own names for a fixed time; the parent
//! process spawns this same binary as the workers of the multi-process runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use octostore_core::{
    Api, ConfigKey, Durability, LimitName, LockName, Login, RatePolicy, Session, SqliteBackend,
    Store, Ttl,
};

const RUN_FOR: Duration = Duration::from_secs(3);
const PROCESSES: usize = 4;
const WORKER: &str = "OCTOSTORE_BENCH_WORKER";

#[derive(Clone, Copy)]
enum Workload {
    /// One acquire and one release: two transactions.
    LockCycle,
    RateLimitCheck,
    ConfigPut,
}

impl Workload {
    const ALL: [Workload; 3] = [
        Workload::LockCycle,
        Workload::RateLimitCheck,
        Workload::ConfigPut,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::LockCycle => "lock acquire+release",
            Workload::RateLimitCheck => "rate-limit check",
            Workload::ConfigPut => "config put",
        }
    }

    fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .expect("a workload name")
    }

    /// Runs the workload as `worker` until `RUN_FOR` has passed; operations done.
    fn run(self, session: &Session, worker: &str) -> u64 {
        let lock = LockName::parse(&format!("bench-{worker}")).unwrap();
        let limit = LimitName::parse(&format!("bench-{worker}")).unwrap();
        let key = ConfigKey::parse(&format!("bench-{worker}")).unwrap();
        let ttl = Ttl::seconds(60).unwrap();
        let policy = RatePolicy::new(10_000, 1).unwrap();
        let start = Instant::now();
        let mut ops = 0;
        while start.elapsed() < RUN_FOR {
            match self {
                Workload::LockCycle => {
                    let grant = session.acquire(&lock, ttl, None).unwrap();
                    session.release(&lock, grant.lease.lease_id).unwrap();
                }
                Workload::RateLimitCheck => {
                    session.check(&limit, policy).unwrap();
                }
                Workload::ConfigPut => {
                    session
                        .put_config(&key, serde_json::json!({ "n": ops }), None)
                        .unwrap();
                }
            }
            ops += 1;
        }
        ops
    }
}

fn durability(name: &str) -> Durability {
    match name {
        "power-loss" => Durability::PowerLoss,
        _ => Durability::ProcessCrash,
    }
}

fn session(path: &str, durability: Durability) -> Session {
    let backend = SqliteBackend::open_with(path, durability).unwrap();
    let store = Store::builder().backend(backend).build();
    store.session(store.local_user(&Login::parse("bench").unwrap()).unwrap())
}

/// In a worker process: `path durability workload worker-id`, prints its operation count.
fn worker(spec: &str) {
    let parts: Vec<&str> = spec.splitn(4, '|').collect();
    let session = session(parts[0], durability(parts[1]));
    println!("{}", Workload::parse(parts[2]).run(&session, parts[3]));
}

fn multi_process(path: &str, mode: &str, workload: Workload) -> u64 {
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .env(WORKER, format!("{path}|{mode}|{}|p{i}", workload.name()))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

fn main() {
    if let Ok(spec) = std::env::var(WORKER) {
        return worker(&spec);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` asks bench binaries to list their benches
    }
    let dir = tempfile::tempdir().unwrap();
    println!(
        "| durability | workload | 1 process (ops/s) | {PROCESSES} processes (ops/s, total) |"
    );
    println!("|---|---|---:|---:|");
    for mode in ["process-crash", "power-loss"] {
        let path = dir.path().join(format!("{mode}.db")).display().to_string();
        for workload in Workload::ALL {
            let single = workload.run(&session(&path, durability(mode)), "s") as f64;
            let multi = multi_process(&path, mode, workload) as f64;
            let per_second = |ops: f64| ops / RUN_FOR.as_secs_f64();
            println!(
                "| {mode} | {} | {:.0} | {:.0} |",
                workload.name(),
                per_second(single),
                per_second(multi)
            );
        }
    }
}
