//! A store that cannot keep up: the file held by another process past the queue timeout, and
//! a client that leaves while its request waits. Neither request may run late, when nobody
//! hears its answer (a lock granted to a client that has gone blocks it for its whole TTL).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use octostore_core::backend::sqlite::faults::Fault;
use octostore_core::{ManualClock, Store};
use octostore_http::{QueueLimits, ServerOptions};
use reqwest::blocking::Client;
use serde_json::Value;

use crate::support::Server;

/// The longest any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// A server on a SQLite file whose operations may wait `queue_timeout` for the store, a
/// token, and the file's path.
fn on_a_file(dir: &tempfile::TempDir, queue_timeout: Duration) -> (Server, String) {
    let path = dir.path().join("busy.db");
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(octostore_core::SqliteBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    let options = ServerOptions {
        queue: QueueLimits {
            timeout: queue_timeout,
            ..QueueLimits::default()
        },
        ..ServerOptions::default()
    };
    let server = Server::serve(store, clock, options);
    let token = server.token("alice");
    (server, token)
}

/// Another process's write transaction on the file, held until dropped.
struct HeldFile(rusqlite::Connection);

impl HeldFile {
    fn take(dir: &tempfile::TempDir) -> Self {
        let conn = rusqlite::Connection::open(dir.path().join("busy.db")).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(conn)
    }
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

fn client() -> Client {
    Client::builder().timeout(DEADLINE).build().unwrap()
}

fn acquire(server: &Server, token: &str, name: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url(&format!("/locks/{name}/acquire")))
        .bearer_auth(token)
        .json(&serde_json::json!({ "ttl_seconds": 3600 }))
        .send()
        .unwrap()
}

fn status_of(server: &Server, token: &str, name: &str) -> String {
    let status: Value = client()
        .get(server.url(&format!("/locks/{name}")))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    status["status"].as_str().unwrap().to_owned()
}

#[test]
fn a_request_that_cannot_start_by_the_queue_timeout_is_answered_503_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = on_a_file(&dir, Duration::from_millis(300));
    let held = HeldFile::take(&dir);
    let answer = acquire(&server, &token, "deploy");
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer.headers()["retry-after"].to_str().unwrap(),
        "1",
        "{answer:?}"
    );
    let body: Value = answer.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not run"),
        "{body}"
    );
    drop(held);
    assert_eq!(status_of(&server, &token, "deploy"), "available");
    assert_eq!(acquire(&server, &token, "deploy").status(), 200);
}

#[test]
fn an_ofrep_evaluation_that_cannot_start_in_time_is_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = on_a_file(&dir, Duration::from_millis(300));
    let held = HeldFile::take(&dir);
    let answer = client()
        .post(server.url("/ofrep/v1/evaluate/flags/beta"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "context": {} }))
        .send()
        .unwrap();
    // OFREP's providers pause on 429 until `Retry-After`; a 503 they would count as a failure.
    assert_eq!(answer.status(), 429);
    assert_eq!(answer.headers()["retry-after"].to_str().unwrap(), "1");
    let body: Value = answer.json().unwrap();
    assert!(
        body["errorDetails"].as_str().unwrap().contains("not run"),
        "{body}"
    );
    drop(held);
}

#[test]
fn a_request_whose_client_left_while_it_waited_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = on_a_file(&dir, DEADLINE);
    let held = HeldFile::take(&dir);
    let mut gone = TcpStream::connect(server.addr).unwrap();
    gone.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = r#"{"ttl_seconds":3600}"#;
    let request = format!(
        "POST /locks/deploy/acquire HTTP/1.1\r\nHost: octostore\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    gone.write_all(request.as_bytes()).unwrap();
    gone.shutdown(Shutdown::Write).unwrap();
    // The server closes the connection of a client that left mid-request: no answer comes.
    let mut answer = Vec::new();
    gone.read_to_end(&mut answer).unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(held);
    // Queued after the request of the client that left, so answered after it was judged.
    assert_eq!(acquire(&server, &token, "other").status(), 200);
    assert_eq!(status_of(&server, &token, "deploy"), "available");
}

fn ready(server: &Server) -> (u16, Value) {
    let answer = client().get(server.url("/ready")).send().unwrap();
    (answer.status().as_u16(), answer.json().unwrap())
}

#[test]
fn ready_is_503_while_another_process_holds_the_file_and_200_once_it_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = on_a_file(&dir, Duration::from_millis(300));
    assert_eq!(ready(&server).0, 200);
    let held = HeldFile::take(&dir);
    let (status, body) = ready(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready", "{body}");
    // The committer gives up on the file, or the deadline passes first: either says why.
    let details = body["details"].as_str().unwrap();
    assert!(
        details.contains("not run") || details.contains("did not answer a read within 300 ms"),
        "{details}"
    );
    // `/health` says only that the process serves.
    let health = client().get(server.url("/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    drop(held);
    assert_eq!(
        ready(&server),
        (200, serde_json::json!({ "status": "ready" }))
    );
}

#[test]
fn ready_is_503_when_the_store_fails_its_read() {
    let dir = tempfile::tempdir().unwrap();
    let backend = octostore_core::SqliteBackend::open(dir.path().join("failing.db")).unwrap();
    let faults = backend.faults();
    let store = Store::builder().backend(backend).build();
    let server = Server::serve(store, Arc::default(), ServerOptions::default());
    faults.arm(Fault::BeginFails);
    let (status, body) = ready(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready", "{body}");
    let details = body["details"].as_str().unwrap();
    assert!(details.contains("BEGIN"), "{details}");
    assert_eq!(ready(&server).0, 200);
}

/// The variable naming the PostgreSQL database of the tests.
const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

/// On PostgreSQL, operations run on the blocking pool, as many at once as the queue bound
/// allows: past it, 503 at once, the operation not run.
#[test]
fn on_postgres_operations_past_the_queue_bound_are_answered_503_and_never_run() {
    let Some(url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the postgres test of busy_store ({POSTGRES_URL_VAR} is unset)");
        return;
    };
    let schema = format!("octostore_busy_{}", uuid::Uuid::new_v4().simple());
    let options = octostore_core::PostgresOptions {
        schema: Some(schema.clone()),
        ..Default::default()
    };
    let backend = octostore_core::PostgresBackend::connect_with(&url, options)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but: {e}"));
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder().backend(backend).build();
    let options = ServerOptions {
        queue: QueueLimits {
            max_queued: 1,
            timeout: DEADLINE,
        },
        ..ServerOptions::default()
    };
    let server = Server::serve(store, clock, options);
    let token = server.token("alice");
    let mut locker = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {schema}.leases IN ACCESS EXCLUSIVE MODE"
        ))
        .unwrap();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| acquire(&server, &token, "first").status());
        // The first acquire holds the one place, waiting for the table.
        let mut watcher = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let waiting = "SELECT count(*) FROM pg_stat_activity \
                       WHERE wait_event_type = 'Lock' AND query LIKE '%leases%'";
        let started = std::time::Instant::now();
        while watcher.query_one(waiting, &[]).unwrap().get::<_, i64>(0) == 0 {
            assert!(
                started.elapsed() < DEADLINE,
                "the first acquire never waited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = acquire(&server, &token, "second");
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers()["retry-after"].to_str().unwrap(), "1");
        locker.batch_execute("COMMIT").unwrap();
        assert_eq!(first.join().unwrap(), 200);
    });
    assert_eq!(status_of(&server, &token, "second"), "available");
    drop(server);
    locker
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// A TCP proxy that can be cut: every connection through it closed, and each new one closed
/// at once, as a database whose host went away; and restored.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl CuttableProxy {
    fn to(upstream: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cutting, opened) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cutting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut open = opened.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                open.extend([client, server]);
            }
        });
        Self { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// On PostgreSQL, `/ready` answers 503 while the database cannot be reached, and 200 again
/// once it can.
#[test]
fn on_postgres_ready_is_503_while_the_database_is_unreachable() {
    let Some(url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the postgres readiness test ({POSTGRES_URL_VAR} is unset)");
        return;
    };
    // postgres://USER@HOST:PORT/DB: the same database, through the proxy.
    let (user, rest) = url
        .split_once('@')
        .unwrap_or_else(|| panic!("{POSTGRES_URL_VAR}: expected postgres://USER@HOST:PORT/DB"));
    let (upstream, database) = rest.split_once('/').unwrap();
    let proxy = CuttableProxy::to(upstream.to_owned());
    let proxied = format!("{user}@{}/{database}", proxy.addr);
    let schema = format!("octostore_ready_{}", uuid::Uuid::new_v4().simple());
    let options = octostore_core::PostgresOptions {
        schema: Some(schema.clone()),
        ..Default::default()
    };
    let backend = octostore_core::PostgresBackend::connect_with(&proxied, options)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but: {e}"));
    let store = Store::builder().backend(backend).build();
    let server = Server::serve(store, Arc::default(), ServerOptions::default());
    assert_eq!(ready(&server).0, 200);

    proxy.cut();
    let (status, body) = ready(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready", "{body}");
    let details = body["details"].as_str().unwrap();
    assert!(
        details.contains("did not answer a read within 2000 ms")
            || details.contains("failed a read"),
        "{details}"
    );
    assert_eq!(
        client().get(server.url("/health")).send().unwrap().status(),
        200
    );

    proxy.restore();
    let started = std::time::Instant::now();
    while ready(&server).0 != 200 {
        assert!(started.elapsed() < DEADLINE, "never ready again");
    }
    drop(server);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
