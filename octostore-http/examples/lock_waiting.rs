//! What waiting for a lock costs a server on a SQLite file, measured over real sockets:
//!
//! - **handoff:** from sending a release to the waiter receiving its grant, over 1 000
//!   rounds (p50, p99, max);
//! - **idle waiters:** the server's memory and CPU with 10 000 acquires waiting at once.
//!
//! `cargo run --release -p octostore-http --example lock_waiting [ROUNDS] [WAITERS]`

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use octostore_core::{Api, LockGrant, LockName, LockStatus, Login, Store, Ttl};
use octostore_http::{App, Client, ConnectionLimits, ServerOptions};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let rounds = args.next().unwrap_or(1_000);
    let waiters = args.next().unwrap_or(10_000);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path().join("octostore.db")).expect("a store");
    let token = |login: &str| {
        let user = store.create_user(&Login::parse(login).unwrap()).unwrap();
        store.issue_token(user.id).unwrap().expose().to_owned()
    };
    let tokens: Vec<String> = ["alice", "bob"].into_iter().map(token).collect();
    let addr = serve(store.clone(), waiters + 100);
    let base = format!("http://{addr}");

    handoff(&store, &base, &tokens, rounds);
    idle(&store, &addr, &tokens[1], waiters);
}

/// Serves `store` on a runtime of two workers, as `octostore serve` does.
fn serve(store: Store, max_connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = App::new(store, ServerOptions::default()).unwrap();
    let limits = ConnectionLimits {
        max_connections,
        ..ConnectionLimits::default()
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            octostore_http::serve_with(listener, app, limits, std::future::pending()).await;
        });
    });
    addr
}

/// Rounds of: alice holds, bob waits, alice releases; the time from sending the release to
/// bob's grant.
fn handoff(store: &Store, base: &str, tokens: &[String], rounds: usize) {
    let alice = Client::new(base, &tokens[0]).unwrap();
    let name = LockName::parse("handoff").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let (to_bob, bobs_turn) = mpsc::channel::<()>();
    let (granted, grants) = mpsc::channel::<(Instant, LockGrant)>();
    let bob = {
        let (base, token, name) = (base.to_owned(), tokens[1].clone(), name.clone());
        std::thread::spawn(move || {
            let bob = Client::new(&base, &token).unwrap();
            while bobs_turn.recv().is_ok() {
                let grant = bob.acquire_within(&name, ttl, None, Duration::from_secs(60));
                let grant = grant.expect("bob's grant");
                granted.send((Instant::now(), grant.clone())).unwrap();
                bob.release(&name, grant.lease.lease_id).unwrap();
            }
        })
    };
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let held = alice.acquire(&name, ttl, None).unwrap();
        to_bob.send(()).unwrap();
        while store.lock_queues().waiters(&name) == 0 {
            std::thread::yield_now();
        }
        let sent = Instant::now();
        alice.release(&name, held.lease.lease_id).unwrap();
        let (at, _) = grants.recv().unwrap();
        latencies.push(at - sent);
        // Bob releases after he reports; the next round's acquire waits for that.
        while !matches!(alice.lock_status(&name), Ok(LockStatus::Available)) {
            std::thread::yield_now();
        }
    }
    drop(to_bob);
    bob.join().unwrap();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "handoff over {rounds} rounds (release sent -> waiter's grant received): \
         p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
}

/// `waiters` acquires waiting at once on a held lock: the process's memory before and after,
/// and its CPU over 10 s of waiting.
fn idle(store: &Store, addr: &str, token: &str, waiters: usize) {
    let alice = store.session(store.local_user(&Login::parse("alice").unwrap()).unwrap());
    let name = LockName::parse("idle").unwrap();
    alice
        .acquire(&name, Ttl::seconds(3_600).unwrap(), None)
        .unwrap();
    let before = rss_kib();
    let body = r#"{"ttl_seconds":60,"wait_seconds":300}"#;
    let streams: Vec<TcpStream> = (0..waiters)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(
                stream,
                "POST /locks/idle/acquire HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer \
                 {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            stream
        })
        .collect();
    while store.lock_queues().waiters(&name) < waiters {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = rss_kib();
    let cpu_before = cpu_ticks();
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu = (cpu_ticks() - cpu_before) as f64 / ticks_per_second();
    let share = cpu / wall.elapsed().as_secs_f64() * 100.0;
    println!(
        "{waiters} idle waiters: {} KiB more resident memory ({:.1} KiB each, the client \
         sockets' side included); {share:.2} % of one core while they wait",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / waiters as f64
    );
    drop(streams);
}

/// This process's resident memory, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// This process's user and system CPU time, in clock ticks, from `/proc/self/stat`.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clock ticks a second.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}
