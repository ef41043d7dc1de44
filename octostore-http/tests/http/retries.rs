//! The client's retries, through a proxy the test scripts: each new connection meets the
//! next fault of the script (closed after the request was read, or answered 503), and once
//! the script is spent, the real server. The proxy counts connections, so a test sees how
//! many attempts a call made; every client is new, so no connection is reused.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use octostore_core::{
    Api, ClientId, ConfigKey, Error, LimitName, LockName, LockStatus, RatePolicy, Result, Ttl,
};
use octostore_http::Client;
use parking_lot::Mutex;
use serde_json::json;

use crate::support::Server;

/// What one connection to the proxy meets.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The request is read, then the connection closed without an answer.
    Close,
    /// OctoStore's own 503: the operation was not run.
    StoreBusy,
    /// A gateway's 503, which says nothing of whether the server ran it.
    Gateway,
}

/// The scripted proxy in front of a real server.
struct Proxy {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Fault>>>,
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::<Fault>::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (faults, count) = (script.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let fault = faults.lock().pop_front();
                std::thread::spawn(move || match fault {
                    Some(fault) => meet(client, fault),
                    None => forward(client, server),
                });
            }
        });
        Self {
            addr,
            script,
            connections,
        }
    }

    /// A new client through the proxy (no connection of another's reused), the faults its
    /// next connections meet, and the count of connections reset.
    fn client(&self, token: &str, faults: &[Fault]) -> Client {
        *self.script.lock() = faults.iter().copied().collect();
        self.connections.store(0, Ordering::SeqCst);
        Client::new(format!("http://{}", self.addr), token).unwrap()
    }

    /// The connections made since the last [`client`](Self::client).
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (its head and its `content-length` body).
fn read_request(stream: &mut TcpStream) -> io::Result<()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if seen.len() >= end + 4 + length {
                return Ok(());
            }
        }
    }
}

fn meet(mut client: TcpStream, fault: Fault) {
    if read_request(&mut client).is_err() {
        return;
    }
    let (content_type, body) = match fault {
        Fault::Close => return,
        Fault::StoreBusy => (
            "application/json",
            json!({"error": "Store busy", "code": "store_busy"}).to_string(),
        ),
        Fault::Gateway => ("text/html", "<html>no upstream</html>".to_owned()),
    };
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes());
}

fn forward(client: TcpStream, server: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(server) else {
        return;
    };
    let (mut client_in, mut upstream_out) =
        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut upstream_in, mut client_out) = (upstream, client);
    std::thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(std::net::Shutdown::Write);
    });
    let _ = io::copy(&mut upstream_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
}

fn lock(name: &str) -> LockName {
    LockName::parse(name).unwrap()
}

fn key(name: &str) -> ConfigKey {
    ConfigKey::parse(name).unwrap()
}

fn limit(name: &str) -> LimitName {
    LimitName::parse(name).unwrap()
}

fn ttl() -> Ttl {
    Ttl::seconds(60).unwrap()
}

fn is_remote<T: std::fmt::Debug>(result: &Result<T>) -> bool {
    matches!(result, Err(Error::Remote { .. }))
}

#[test]
fn reads_and_repeatable_writes_are_sent_again_after_a_broken_connection() {
    let server = Server::start();
    let token = server.token("alice");
    let proxy = Proxy::start(server.addr);
    let direct = Client::new(server.url(""), &token).unwrap();
    let grant = direct.acquire(&lock("held"), ttl(), None).unwrap();

    let client = proxy.client(&token, &[Fault::Close, Fault::Gateway]);
    let status = client.lock_status(&lock("held")).unwrap();
    assert!(matches!(status, LockStatus::Held(lease) if lease == grant.lease));
    assert_eq!(proxy.connections(), 3);

    let client = proxy.client(&token, &[Fault::Close]);
    let renewed = client.renew(&lock("held"), grant.lease.lease_id, ttl());
    assert_eq!(renewed.unwrap().lease_id, grant.lease.lease_id);
    assert_eq!(proxy.connections(), 2);

    let client = proxy.client(&token, &[Fault::Close]);
    client.release(&lock("held"), grant.lease.lease_id).unwrap();
    assert_eq!(proxy.connections(), 2);

    // An acquire with a client id: a second attempt would find the lock its own.
    let me = ClientId::parse("worker-1").unwrap();
    let client = proxy.client(&token, &[Fault::Gateway]);
    client.acquire(&lock("mine"), ttl(), Some(&me)).unwrap();
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn a_config_put_a_check_and_an_anonymous_acquire_are_not_sent_twice_on_a_guess() {
    let server = Server::start();
    let token = server.token("alice");
    let proxy = Proxy::start(server.addr);
    let direct = Client::new(server.url(""), &token).unwrap();
    let policy = RatePolicy::new(10, 60).unwrap();

    for fault in [Fault::Close, Fault::Gateway] {
        let client = proxy.client(&token, &[fault]);
        assert!(is_remote(&client.put_config(&key("k"), json!(1), None)));
        assert_eq!(proxy.connections(), 1, "{fault:?}");

        let client = proxy.client(&token, &[fault]);
        assert!(is_remote(&client.check(&limit("api"), policy)));
        assert_eq!(proxy.connections(), 1, "{fault:?}");

        let client = proxy.client(&token, &[fault]);
        assert!(is_remote(&client.acquire(&lock("l"), ttl(), None)));
        assert_eq!(proxy.connections(), 1, "{fault:?}");
    }
    // None of them reached the server.
    assert!(matches!(
        direct.get_config(&key("k"), None),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        direct.lock_status(&lock("l")).unwrap(),
        LockStatus::Available
    );
}

#[test]
fn any_operation_is_sent_again_when_the_server_says_it_did_not_run_it() {
    let server = Server::start();
    let token = server.token("alice");
    let proxy = Proxy::start(server.addr);
    let policy = RatePolicy::new(10, 60).unwrap();

    let client = proxy.client(&token, &[Fault::StoreBusy, Fault::StoreBusy]);
    assert_eq!(
        client
            .put_config(&key("k"), json!(1), None)
            .unwrap()
            .version,
        1
    );
    assert_eq!(proxy.connections(), 3);

    let client = proxy.client(&token, &[Fault::StoreBusy]);
    let decision = client.check(&limit("api"), policy).unwrap();
    assert_eq!((decision.allowed, decision.remaining), (true, 9));
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn a_refused_connection_is_tried_again_until_the_window_closes() {
    // Nothing listens on a port that was free a moment ago: every attempt is refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let attempts = |window: Duration| {
        let client = Client::builder(&url, "octo_x")
            .retry_within(window)
            .build()
            .unwrap();
        // Refused, so never run: even a config put is tried again.
        match client.put_config(&key("k"), json!(1), None) {
            Err(Error::Remote { message, .. }) => message,
            other => panic!("expected a remote error, got {other:?}"),
        }
    };
    let once = attempts(Duration::ZERO);
    assert!(!once.contains("attempts"), "{once}");
    let again = attempts(Duration::from_millis(300));
    let made: u32 = again
        .split(" attempts)")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of attempts in {again}"));
    assert!(made >= 2, "{again}");
}
