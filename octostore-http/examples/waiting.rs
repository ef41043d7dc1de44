//! What waiting costs a server on a SQLite file, measured over real sockets:
//!
//! - **handoff:** from sending a release to the waiter receiving its grant, over 1 000
//!   rounds (p50, p99, max), on a server in this process; across two servers in this process
//!   on one SQLite file (each with its own connections, as two processes would be); with
//!   `OCTOSTORE_BENCH_POSTGRES_URL` set, also across two servers (nodes) in this process on
//!   one PostgreSQL database, the release sent to one and the waiter on the other (in a
//!   schema of its own, dropped after);
//! - **idle connections:** a real `octostore serve` (a child process: `OCTOSTORE_BIN`, by
//!   default the workspace's release build) holding 10 000 connections of one kind at once,
//!   each kind on a fresh server: acquires waiting for a held lock, SSE streams of
//!   `GET /events`, long polls `GET /events?since=<newest>&wait=300s`. Its resident memory per
//!   connection (its `/proc/PID/status`, so the clients' side is not counted) and its CPU over
//!   30 s of waiting (a period of a stream's keep-alive), from 31 s after they all wait (past
//!   the body timeout), by thread; then,
//!   for streams and long polls, one change and the time until every connection has its
//!   event.
//!
//! `cargo build --release -p octostore-cli && cargo run --release -p octostore-http
//! --example waiting [ROUNDS] [CONNECTIONS]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use octostore_core::{
    Api, ClientId, EventFilter, FlagName, LockGrant, LockName, LockStatus, Login, PostgresBackend,
    PostgresOptions, Store, Ttl,
};
use octostore_http::{App, Client, ConnectionLimits, ServerOptions};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let rounds = args.next().unwrap_or(1_000);
    let connections = args.next().unwrap_or(10_000);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path().join("octostore.db")).expect("a store");
    let token = |login: &str| {
        let user = store.create_user(&Login::parse(login).unwrap()).unwrap();
        store.issue_token(user.id).unwrap().expose().to_owned()
    };
    let tokens: Vec<String> = ["alice", "bob"].into_iter().map(token).collect();
    let addr = format!("http://{}", serve(store.clone(), 100));
    handoff("one node, SQLite", &store, [&addr, &addr], &tokens, rounds);
    // A second server on the same file, as a second process would be: its own connections,
    // its own queues' side, told of the first one's commits only through the file.
    let beside = Store::open(dir.path().join("octostore.db")).expect("a second store");
    let besides = format!("http://{}", serve(beside.clone(), 100));
    handoff(
        "two servers, one SQLite file",
        &beside,
        [&addr, &besides],
        &tokens,
        rounds,
    );
    if let Ok(url) = std::env::var("OCTOSTORE_BENCH_POSTGRES_URL") {
        handoff_across_postgres_nodes(&url, rounds);
    }

    for kind in [Kind::Waiters, Kind::Stream, Kind::LongPoll] {
        idle(kind, connections);
    }
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

/// [`handoff`] between two servers on one PostgreSQL database, in a schema of its own.
fn handoff_across_postgres_nodes(url: &str, rounds: usize) {
    let schema = format!("octostore_bench_{}", uuid::Uuid::new_v4().simple());
    let node = || {
        let options = PostgresOptions {
            schema: Some(schema.clone()),
            ..PostgresOptions::default()
        };
        let backend = PostgresBackend::connect_with(url, options).expect("a PostgreSQL node");
        Store::builder().backend(backend).build()
    };
    let (here, there) = (node(), node());
    let token = |login: &str| {
        let user = here.create_user(&Login::parse(login).unwrap()).unwrap();
        here.issue_token(user.id).unwrap().expose().to_owned()
    };
    let tokens: Vec<String> = ["alice", "bob"].into_iter().map(token).collect();
    let alices = format!("http://{}", serve(here, 100));
    let bobs = format!("http://{}", serve(there.clone(), 100));
    handoff(
        "two nodes, PostgreSQL",
        &there,
        [&alices, &bobs],
        &tokens,
        rounds,
    );
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("the database");
    let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
    client
        .batch_execute(&drop_schema)
        .expect("the schema dropped");
}

/// Rounds of: alice holds, bob waits, alice releases (alice on the server `bases[0]`, bob on
/// `bases[1]`, whose store is `bobs_store`); the time from sending the release to bob's
/// grant.
fn handoff(label: &str, bobs_store: &Store, bases: [&str; 2], tokens: &[String], rounds: usize) {
    let alice = Client::new(bases[0], &tokens[0]).unwrap();
    let name = LockName::parse("handoff").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let (to_bob, bobs_turn) = mpsc::channel::<()>();
    let (granted, grants) = mpsc::channel::<(Instant, LockGrant)>();
    let bob = {
        let (base, token, name) = (bases[1].to_owned(), tokens[1].clone(), name.clone());
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
        while bobs_store.lock_queues().waiters(&name) == 0 {
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
        "handoff, {label}, over {rounds} rounds (release sent -> waiter's grant received): \
         p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
}

/// A kind of idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /locks/idle/acquire` waiting 300 s for a held lock.
    Waiters,
    /// `GET /events` as Server-Sent Events.
    Stream,
    /// `GET /events?since=<newest>&wait=300s`.
    LongPoll,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Waiters => "waiting acquires",
            Kind::Stream => "SSE streams",
            Kind::LongPoll => "long polls",
        }
    }
}

/// `connections` of `kind` held open at once on a fresh server: its memory before and after,
/// its CPU over 10 s of waiting, and (streams and long polls) how long one change takes to
/// reach them all.
fn idle(kind: Kind, connections: usize) {
    let server = Server::start(connections + 100);
    let api = Client::new(format!("http://{}", server.addr), &server.token).unwrap();
    let lock = LockName::parse("idle").unwrap();
    let holder = ClientId::parse("holder").unwrap();
    api.acquire(&lock, Ttl::seconds(3_600).unwrap(), Some(&holder))
        .unwrap();
    let newest = api.events(0, &EventFilter::default(), 1).unwrap().next;
    let (addr, token) = (&server.addr, &server.token);
    let request = match kind {
        Kind::Waiters => {
            let body = r#"{"ttl_seconds":60,"wait_seconds":300}"#;
            format!(
                "POST /locks/idle/acquire HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer \
                 {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
        Kind::Stream => format!(
            "GET /events?since={newest} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer \
             {token}\r\nAccept: text/event-stream\r\n\r\n"
        ),
        Kind::LongPoll => format!(
            "GET /events?since={newest}&wait=300s HTTP/1.1\r\nHost: {addr}\r\nAuthorization: \
             Bearer {token}\r\n\r\n"
        ),
    };
    server.settle();
    let before = server.rss_kib();
    let mut streams: Vec<TcpStream> = (0..connections)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            stream
        })
        .collect();
    // Every connection is waiting: the lock's queue is full, every stream has its head; a
    // long poll says nothing until it ends, so the change below is what proves it waited.
    match kind {
        Kind::Waiters => {
            while waiters(&server, "idle") < connections {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Kind::Stream => {
            for stream in &mut streams {
                read_until(stream, b"\r\n\r\n");
            }
        }
        Kind::LongPoll => {}
    }
    // Past the body timeout (30 s), after which a connection's watchdog sleeps until the
    // request is answered: what follows is what they cost for as long as they wait.
    std::thread::sleep(ConnectionLimits::default().body_timeout + Duration::from_secs(1));
    server.settle();
    let after = server.rss_kib();
    let cpu_before = server.cpu_ticks();
    let threads_before = server.cpu_ticks_by_thread();
    let wall = Instant::now();
    // One period of a stream's keep-alive comment: each stream sends one in any such window.
    std::thread::sleep(Duration::from_secs(30));
    let cpu = (server.cpu_ticks() - cpu_before) as f64 / ticks_per_second();
    let mut by_thread: Vec<(String, u64)> = (server.cpu_ticks_by_thread().into_iter())
        .map(|(name, ticks)| {
            let before = threads_before.get(&name).copied().unwrap_or(0);
            (name, ticks.saturating_sub(before))
        })
        .filter(|(_, ticks)| *ticks > 0)
        .collect();
    by_thread.sort_by_key(|(_, ticks)| std::cmp::Reverse(*ticks));
    let share = cpu / wall.elapsed().as_secs_f64() * 100.0;
    let grown = after.saturating_sub(before);
    println!(
        "{connections} idle {}: the server's resident memory {before} -> {after} KiB, {:.1} KiB \
         each; {share:.2} % of one core while they wait",
        kind.name(),
        grown as f64 / connections as f64
    );
    let by_thread: Vec<String> = (by_thread.iter())
        .map(|(name, ticks)| format!("{name} {ticks}"))
        .collect();
    println!("  CPU ticks by thread: {}", by_thread.join(", "));
    if kind != Kind::Waiters {
        let changed = Instant::now();
        api.set_flag(&FlagName::parse("wake").unwrap(), true, None)
            .unwrap();
        for stream in &mut streams {
            read_until(stream, br#""kind":"flag""#);
        }
        println!(
            "  one change reached all {connections} in {:?}",
            changed.elapsed()
        );
    }
}

/// Reads `stream` until what it read holds `marker`.
fn read_until(stream: &mut TcpStream, marker: &[u8]) {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    while !read.windows(marker.len()).any(|w| w == marker) {
        let n = stream.read(&mut buf).expect("the server's answer");
        assert!(n > 0, "the server closed the connection");
        read.extend_from_slice(&buf[..n]);
    }
}

/// How many wait for `lock` on `server`, from `GET /locks/{name}`.
fn waiters(server: &Server, lock: &str) -> usize {
    let url = format!("http://{}/locks/{lock}", server.addr);
    let status: serde_json::Value = reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(&server.token)
        .send()
        .and_then(|r| r.json())
        .unwrap();
    status["waiters"].as_u64().unwrap_or(0) as usize
}

/// A real `octostore serve` on a fresh SQLite file, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with room for `max_connections`, as user `alice`'s token.
    fn start(max_connections: usize) -> Self {
        let bin = std::env::var_os("OCTOSTORE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/octostore")
            });
        assert!(
            bin.exists(),
            "no {}: build it (cargo build --release -p octostore-cli) or name one in OCTOSTORE_BIN",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let octostore = |args: &[&str]| {
            let mut command = Command::new(&bin);
            command
                .args(args)
                .env("OCTOSTORE_DB", dir.path().join("octostore.db"))
                .env("RUST_LOG", "info")
                .stdin(Stdio::null());
            command
        };
        let created = octostore(&["token", "create", "alice"]).output().unwrap();
        assert!(created.status.success(), "token create failed");
        let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
        let max = max_connections.to_string();
        let mut child = octostore(&["serve", "--bind", "127.0.0.1:0", "--max-connections", &max])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // `octostore VERSION listening on http://ADDR, store …`
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let (_, rest) = line.split_once(" listening on http://")?;
                Some(rest.split_once(',')?.0.to_owned())
            })
            .expect("the server's address");
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            token,
            _dir: dir,
        }
    }

    /// Waits until the server has used no CPU for half a second.
    fn settle(&self) {
        let mut last = self.cpu_ticks();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.cpu_ticks();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// The server's resident memory, from its `/proc/PID/status`.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The server's user and system CPU time, in clock ticks, from its `/proc/PID/stat`.
    fn cpu_ticks(&self) -> u64 {
        stat_ticks(&format!("/proc/{}/stat", self.child.id())).unwrap()
    }

    /// The CPU ticks of the server's threads, added up by thread name (its tasks' `stat`).
    fn cpu_ticks_by_thread(&self) -> std::collections::BTreeMap<String, u64> {
        let mut by_name = std::collections::BTreeMap::new();
        let tasks = format!("/proc/{}/task", self.child.id());
        for task in std::fs::read_dir(tasks).unwrap().flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if let Some(ticks) = stat_ticks(&path.join("stat").to_string_lossy()) {
                *by_name.entry(name.trim().to_owned()).or_default() += ticks;
            }
        }
        by_name
    }
}

/// User plus system CPU ticks from a `stat` file of `/proc`; `None` if it is gone.
fn stat_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks a second.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}
