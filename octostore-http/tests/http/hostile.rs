//! Hostile clients on raw sockets: a body far over the cap, a large body without a good token,
//! clients that trickle their head or body, thousands of idle keep-alive connections, the cap on connections, a flood of invalid
//! tokens, JSON nested to the parser's limit, and names that play with percent-encoding and
//! dot segments. Every wait has a deadline, and the servers that time clients out do so in
//! fractions of a second.
//!
//! Covered elsewhere: 413 for every body operation and the cap to the byte (`api::body_cap`),
//! 401 for every kind of bad `Authorization` (`api::conventions`), 50 000 levels of nesting
//! and odd paths never causing a 5xx (`api::conventions`), the characters each kind of name
//! allows (the topical modules of `api`).

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use octostore_core::{Settings, SqliteBackend, Store};
use octostore_http::{ConnectionLimits, ServerOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{text, Api};
use crate::support::Server;

/// The longest any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(10);

/// How often a trickling client sends its next byte.
const TRICKLE: Duration = Duration::from_millis(50);

/// Timeouts short enough for tests: heads 200 ms, bodies 300 ms, idle connections 1 s.
fn quick() -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

fn server_within(connections: ConnectionLimits) -> Server {
    Server::start_with(
        Settings::default(),
        ServerOptions {
            connections,
            ..ServerOptions::default()
        },
    )
}

/// An answer read off a raw socket.
#[derive(Debug)]
struct Wire {
    status: u16,
    head: String,
    body: String,
}

impl Wire {
    /// A header's value (the first, by case-insensitive name).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Asserts `status`.
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        self
    }

    /// Asserts `status` and a JSON body, and returns it.
    #[track_caller]
    fn json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts `status` with a JSON error body, and returns it.
    #[track_caller]
    fn error(&self, status: u16) -> Value {
        let body = self.json(status);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{self:?}"
        );
        body
    }
}

/// A client on a raw socket, for what an HTTP library would not send.
struct Raw {
    stream: TcpStream,
    /// Bytes read past the last answer.
    buffer: Vec<u8>,
}

impl Raw {
    fn connect(server: &Server) -> Self {
        let stream = TcpStream::connect(server.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a whole request, with `token` if any.
    fn send_request(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: octostore\r\n");
        if let Some(token) = token {
            request += &format!("Authorization: Bearer {token}\r\n");
        }
        if !body.is_empty() {
            request += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        request += "\r\n";
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
    }

    /// Sends a whole request and reads its answer.
    fn request(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Wire {
        self.send_request(method, path, token, body);
        self.answer()
    }

    /// Reads one answer (its body framed by `Content-Length`; none for 1xx).
    #[track_caller]
    fn answer(&mut self) -> Wire {
        let head_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(self.fill(), "closed before a whole head: {:?}", self.text());
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let status: u16 = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head:?}"));
        let mut wire = Wire {
            status,
            head,
            body: String::new(),
        };
        let length: usize = match wire.header("content-length") {
            Some(length) => length.parse().unwrap(),
            None if status < 200 => 0,
            None => panic!("no Content-Length: {wire:?}"),
        };
        while self.buffer.len() < head_end + length {
            assert!(self.fill(), "closed before a whole body: {wire:?}");
        }
        let rest = self.buffer.split_off(head_end + length);
        wire.body = String::from_utf8_lossy(&self.buffer[head_end..]).into_owned();
        self.buffer = rest;
        wire
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => panic!("no bytes within {DEADLINE:?}: {e}"),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer).into_owned()
    }

    /// Whether the server closes the connection within `wait`; bytes it sends meanwhile are
    /// kept for [`answer`](Self::answer).
    fn closed_within(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0; 4096];
            let read = self.stream.read(&mut chunk);
            self.stream.set_read_timeout(Some(DEADLINE)).unwrap();
            match read {
                Ok(0) => return true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Sends `bytes` one every [`TRICKLE`] until the server closes the connection; returns
    /// when it did.
    #[track_caller]
    fn trickle(&mut self, bytes: impl IntoIterator<Item = u8>) -> Instant {
        let started = Instant::now();
        for byte in bytes {
            assert!(
                started.elapsed() < DEADLINE,
                "still open after {DEADLINE:?}"
            );
            if self.stream.write_all(&[byte]).is_err() || self.closed_within(TRICKLE) {
                return Instant::now();
            }
        }
        panic!("the server read every byte");
    }
}

/// A client that opens a new connection per request, so that no request of it waits on a
/// connection the server is closing.
fn fresh_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// Asserts that `GET /health` answers 200.
#[track_caller]
fn healthy(http: &reqwest::blocking::Client, server: &Server) {
    let reply = http.get(server.url("/health")).send().unwrap();
    assert_eq!(reply.status(), 200);
}

/// Asserts that alice has no config `c`: the refused request stored nothing.
#[track_caller]
fn nothing_stored(server: &Server, token: &str) {
    nothing_stored_on(&mut Raw::connect(server), token);
}

/// [`nothing_stored`], asked on `client`'s connection.
#[track_caller]
fn nothing_stored_on(client: &mut Raw, token: &str) {
    client
        .request("GET", "/config/c", Some(token), b"")
        .error(404);
}

/// Runs `client` on its own thread while asserting, again and again until it returns, that
/// other clients are served; returns what it returned.
fn while_others_are_served<T: Send>(server: &Server, client: impl FnOnce() -> T + Send) -> T {
    let http = fresh_client();
    std::thread::scope(|scope| {
        let client = scope.spawn(client);
        healthy(&http, server);
        while !client.is_finished() {
            healthy(&http, server);
        }
        client.join().unwrap()
    })
}

#[test]
fn a_body_far_over_the_cap_is_refused_before_it_is_sent() {
    let server = Server::start();
    let token = server.token("alice");
    let mut client = Raw::connect(&server);
    let mut head = format!(
        "PUT /config/c HTTP/1.1\r\nHost: octostore\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        100 * 1024 * 1024
    )
    .into_bytes();
    head.extend_from_slice(&[b' '; 1024]);
    client.send(&head);
    // The answer comes though 100 MiB less 1 KiB of the body are still to be sent...
    let answer = client.answer();
    answer.error(413);
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    // ...and the server does not wait for them.
    assert!(client.closed_within(DEADLINE));
    nothing_stored(&server, &token);
}

/// A `PUT /config/c` head with `token` if any, its body framed by `Content-Length: length`
/// or chunked; and the framing of a part of the body.
fn put_config_head(
    token: Option<&str>,
    length: usize,
    chunked: bool,
) -> (String, impl Fn(&[u8]) -> Vec<u8>) {
    let mut head =
        "PUT /config/c HTTP/1.1\r\nHost: octostore\r\nContent-Type: application/json\r\n"
            .to_owned();
    if let Some(token) = token {
        head += &format!("Authorization: Bearer {token}\r\n");
    }
    head += &if chunked {
        "Transfer-Encoding: chunked\r\n\r\n".to_owned()
    } else {
        format!("Content-Length: {length}\r\n\r\n")
    };
    let frame = move |part: &[u8]| match chunked {
        true if part.is_empty() => b"0\r\n\r\n".to_vec(),
        true => [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat(),
        false => part.to_vec(),
    };
    (head, frame)
}

/// A request without a good token is refused once the server has kept a few KiB of its body
/// at most: answered 401 while the client still has most of a 100 KiB body of invalid JSON
/// to send, whether its `Content-Length` announced it or its chunks bring it. The rest is
/// read and thrown away, so the connection then serves the next request. With a good token,
/// a body as large is read whole. On memory, and on a file (where the token is checked on the
/// committer).
#[test]
fn a_large_body_without_a_good_token_is_refused_before_it_is_sent() {
    const LENGTH: usize = 100 * 1024;
    const SENT_FIRST: usize = 5 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let on_file = Store::builder()
        .backend(SqliteBackend::open(dir.path().join("octostore.db")).unwrap())
        .build();
    let on_file = Server::serve(on_file, Arc::default(), ServerOptions::default());
    for server in [Server::start(), on_file] {
        let token = server.token("alice");
        let forged = format!("octo_{}", uuid::Uuid::new_v4().simple());
        let junk = b"{ not json ".repeat(LENGTH / 11 + 1)[..LENGTH].to_vec();
        for auth in [Some(forged.as_str()), None] {
            for chunked in [false, true] {
                let case = format!("token {auth:?}, chunked {chunked}");
                let mut client = Raw::connect(&server);
                let (head, frame) = put_config_head(auth, LENGTH, chunked);
                client.send(&[head.as_bytes(), &frame(&junk[..SENT_FIRST])].concat());
                let answer = client.answer();
                answer.error(401);
                assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{case}");
                client.send(&[frame(&junk[SENT_FIRST..]), frame(b"")].concat());
                nothing_stored_on(&mut client, &token);
            }
        }
        let value = json!({ "value": "v".repeat(50 * 1024) }).to_string();
        for chunked in [false, true] {
            let mut client = Raw::connect(&server);
            let (head, frame) = put_config_head(Some(&token), value.len(), chunked);
            let (first, rest) = value.as_bytes().split_at(SENT_FIRST);
            let request = [head.as_bytes(), &frame(first), &frame(rest), &frame(b"")].concat();
            client.send(&request);
            assert_eq!(client.answer().json(200)["key"], "c");
        }
    }
}

#[test]
fn a_client_trickling_its_head_is_dropped_while_others_are_served() {
    let server = server_within(quick());
    let timeout = quick().header_timeout;
    // A new connection, whose head is timed from the accept, and a keep-alive one between two
    // requests, whose next head is timed from its first byte.
    for keep_alive in [false, true] {
        let mut started = Instant::now();
        let mut client = Raw::connect(&server);
        if keep_alive {
            client.request("GET", "/health", None, b"").expect(200);
            started = Instant::now();
        }
        let head = b"GET /health HTTP/1.1\r\nX-Slow: "
            .iter()
            .copied()
            .chain(std::iter::repeat(b'a'));
        let dropped = while_others_are_served(&server, || client.trickle(head));
        let after = dropped - started;
        assert!(
            after >= timeout,
            "dropped after {after:?}, before the header timeout"
        );
    }
}

#[test]
fn a_client_trickling_or_stalling_its_body_is_answered_408() {
    let server = server_within(quick());
    let token = server.token("alice");
    let timeout = quick().body_timeout;
    let body = json!({ "value": "v".repeat(1000) }).to_string();
    let head = format!(
        "PUT /config/c HTTP/1.1\r\nHost: octostore\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for trickled in [true, false] {
        let mut client = Raw::connect(&server);
        let sent = Instant::now();
        client.send(head.as_bytes());
        let (answer, after) = while_others_are_served(&server, || {
            if trickled {
                client.trickle(body.bytes());
            } else {
                assert!(
                    client.closed_within(DEADLINE),
                    "still open: {}",
                    client.text()
                );
            }
            (client.answer(), sent.elapsed())
        });
        answer.error(408);
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
        assert!(
            after >= timeout,
            "408 after {after:?}, before the body timeout"
        );
    }
    nothing_stored(&server, &token);
}

#[test]
fn an_idle_keep_alive_connection_is_timed_by_the_idle_timeout_not_the_header_timeout() {
    let limits = quick();
    let server = server_within(limits);
    let mut client = Raw::connect(&server);
    client.request("GET", "/health", None, b"").expect(200);
    // Idle for twice the header timeout: still open, and serving.
    assert!(!client.closed_within(limits.header_timeout * 2));
    // Idle from (a little after) this instant.
    let asked = Instant::now();
    client.request("GET", "/health", None, b"").expect(200);
    assert!(client.closed_within(DEADLINE));
    let idle = asked.elapsed();
    assert!(idle >= limits.idle_timeout, "closed after {idle:?} idle");
}

/// Raises this process's soft limit on open files to at least `needed`, within the hard limit.
fn open_files_at_least(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < needed as libc::rlim_t {
            assert!(
                limit.rlim_max >= needed as libc::rlim_t,
                "this test needs {needed} open files; the hard limit is {}",
                limit.rlim_max
            );
            limit.rlim_cur = needed as libc::rlim_t;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

#[test]
fn thousands_of_idle_keep_alive_connections_keep_no_one_out() {
    const IDLE: usize = 3000;
    // Both ends of each connection are in this process.
    open_files_at_least(2 * IDLE as u64 + 512);
    let server = Server::start();
    let token = server.token("alice");
    let mut idle: Vec<Raw> = (0..IDLE)
        .map(|_| {
            let mut client = Raw::connect(&server);
            client.send_request("GET", "/health", None, b"");
            client
        })
        .collect();
    for client in &mut idle {
        client.answer().expect(200);
    }
    let acquired = Raw::connect(&server).request(
        "POST",
        "/locks/l/acquire",
        Some(&token),
        br#"{"ttl_seconds": 10}"#,
    );
    assert_eq!(acquired.json(200)["status"], "acquired");
    // The idle connections are still open, and serve.
    for i in [0, IDLE - 1] {
        idle[i].request("GET", "/health", None, b"").expect(200);
    }
}

#[test]
fn at_the_cap_connections_waiting_for_a_request_are_closed_to_make_room() {
    const CAP: usize = 50;
    let server = server_within(ConnectionLimits {
        max_connections: CAP,
        ..ConnectionLimits::default()
    });
    // Idle keep-alive connections, then connections that never send a byte, up to the cap.
    // (Sent at the cap, an answer would close its connection.)
    let mut waiting: Vec<Raw> = (0..CAP / 2)
        .map(|_| {
            let mut client = Raw::connect(&server);
            client.request("GET", "/health", None, b"").expect(200);
            client
        })
        .collect();
    waiting.extend((CAP / 2..CAP).map(|_| Raw::connect(&server)));
    // A newcomer is served: every one of them is closed to make room.
    healthy(&fresh_client(), &server);
    for (i, client) in waiting.iter_mut().enumerate() {
        assert!(client.closed_within(DEADLINE), "connection {i} still open");
    }
}

#[test]
fn at_the_cap_a_busy_connection_is_kept_and_answers_close_their_connection() {
    let server = server_within(ConnectionLimits {
        max_connections: 2,
        ..ConnectionLimits::default()
    });
    let token = server.token("alice");
    // A request whose body the server waits for: its `100 Continue` proves it is being served.
    let body = json!({ "value": 1 }).to_string();
    let mut busy = Raw::connect(&server);
    busy.send(
        format!(
            "PUT /config/c HTTP/1.1\r\nHost: octostore\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(busy.answer().status, 100);
    // At the cap, an answer closes its connection...
    let mut second = Raw::connect(&server);
    let answer = second.request("GET", "/health", None, b"");
    answer.expect(200);
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(second.closed_within(DEADLINE));
    // ...which lets the next client in, while the busy request is left to finish.
    healthy(&fresh_client(), &server);
    busy.send(body.as_bytes());
    assert_eq!(busy.answer().json(200)["version"], 1);
}

#[test]
fn a_flood_of_invalid_tokens_is_401_and_changes_nothing() {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("l", 60).ok();
    alice.put_config("c", json!({ "value": 1 })).ok();
    alice.set_flag("f", json!({ "enabled": true })).ok();
    let before = |alice: &crate::api::Caller<'_>| {
        [
            alice.get("/locks").ok(),
            alice.get("/config").ok(),
            alice.get("/flags").ok(),
            alice.get("/limits").ok(),
        ]
    };
    let state = before(&alice);
    let operations: [(Method, &str, Option<Value>); 7] = [
        (
            Method::POST,
            "/locks/l/acquire",
            Some(json!({ "ttl_seconds": 10 })),
        ),
        (
            Method::POST,
            "/locks/l/release",
            Some(json!({ "lease_id": lease["lease_id"] })),
        ),
        (
            Method::POST,
            "/limits/r/check",
            Some(json!({ "max_requests": 5, "window_seconds": 60 })),
        ),
        (Method::PUT, "/flags/f", Some(json!({ "enabled": false }))),
        (Method::PUT, "/config/c", Some(json!({ "value": 2 }))),
        (Method::DELETE, "/config/c", None),
        (Method::POST, "/auth/token/rotate", Some(json!({}))),
    ];
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for i in 0..EACH {
                    let token = format!(
                        "octo_{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    );
                    let (method, path, body) = &operations[i % operations.len()];
                    let caller = api.with_token(&token);
                    let reply = match body {
                        Some(body) => caller.raw(method.clone(), path, body.to_string()),
                        None => caller.send(method.clone(), path, None, None),
                    };
                    reply.unauthorized();
                }
            });
        }
    });
    assert_eq!(before(&alice), state);
    assert_eq!(alice.get("/locks/l").ok()["lease_id"], lease["lease_id"]);
    assert_eq!(
        alice.put_config("c", json!({ "value": 2 })).ok()["version"],
        2
    );
}

/// `[[…[]…]]` (or `{"a":{"a":…{}…}}`) nested `depth` deep.
fn nested(depth: usize, objects: bool) -> String {
    if objects {
        format!(
            "{}{{}}{}",
            "{\"a\":".repeat(depth - 1),
            "}".repeat(depth - 1)
        )
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// The deepest config value accepted: serde_json's recursion limit of 128 levels, less the
/// body object around the value and one.
const DEEPEST_VALUE: usize = 126;

#[test]
fn config_values_nest_to_the_parsers_limit_and_not_one_level_more() {
    let api = Api::start();
    let alice = api.user("alice");
    for objects in [false, true] {
        let deepest = nested(DEEPEST_VALUE, objects);
        let put = alice.raw(
            Method::PUT,
            "/config/c",
            format!("{{\"value\": {deepest}}}"),
        );
        let value: Value = serde_json::from_str(&deepest).unwrap();
        assert_eq!(put.ok()["value"], value);
        // Read back whole, by a parser with the same limit.
        assert_eq!(alice.get("/config/c").ok()["value"], value);

        let too_deep = nested(DEEPEST_VALUE + 1, objects);
        alice
            .raw(
                Method::PUT,
                "/config/d",
                format!("{{\"value\": {too_deep}}}"),
            )
            .invalid("body");
        alice.get("/config/d").error(404);
    }
}

#[test]
fn a_flat_array_of_tiny_elements_fills_the_value_cap() {
    let api = Api::start();
    let alice = api.user("alice");
    let cap = 64 * 1024;
    // `[0,0,…,0]` of n elements is 2n + 1 bytes.
    let array = |n: usize| Value::Array(vec![json!(0); n]);
    let largest = array((cap - 1) / 2);
    let put = alice.put_config("flat", json!({ "value": largest })).ok();
    assert_eq!(put["value"], largest);
    assert_eq!(alice.get("/config/flat").ok()["value"], largest);
    alice
        .put_config("flat", json!({ "value": array((cap - 1) / 2 + 1) }))
        .error(413);
    assert_eq!(alice.get("/config/flat").ok()["version"], 1);
}

#[test]
fn names_mean_their_percent_decoded_text_and_tricks_reach_no_other_resource() {
    let server = Server::start();
    let token = server.token("alice");
    let token = Some(token.as_str());
    let mut client = Raw::connect(&server);
    let policy = br#"{"max_requests": 5, "window_seconds": 60}"#;
    let check = |client: &mut Raw, path: &str| client.request("POST", path, token, policy);
    // What the tricks below might reach instead: a limit and a lock of alice's.
    check(&mut client, "/limits/x/check").json(200);
    let lease = client.request("POST", "/locks/x/acquire", token, br#"{"ttl_seconds": 60}"#);
    let lease = lease.json(200);

    // Each of these is a limit, named by exactly its decoded path segment.
    let decoded = [
        ("/limits/a%2Fb/check", "a/b"),
        ("/limits/%2F/check", "/"),
        ("/limits/%252F/check", "%2F"),
        ("/limits/%2e%2e/check", ".."),
        ("/limits/%2E/check", "."),
        ("/limits/%C3%A9t%C3%A9/check", "été"),
        ("/limits/%F0%9F%94%92/check", "🔒"),
        ("/limits/x%3Fy%23z/check", "x?y#z"),
    ];
    for (path, name) in decoded {
        let answer = check(&mut client, path);
        assert_eq!(answer.json(200)["remaining"], 4, "{path}: {answer:?}");
        // The same limit, not a new one (which would be 404).
        let limit = path.strip_suffix("/check").unwrap();
        let answer = client.request("GET", limit, token, b"");
        assert_eq!(
            answer.json(200)["remaining"],
            4,
            "{limit} ({name}): {answer:?}"
        );
    }
    let mut expected: BTreeSet<String> = decoded.iter().map(|(_, name)| name.to_string()).collect();
    expected.insert("x".into());
    assert_eq!(limit_names(&mut client, token), expected);

    // Each of these is refused with a JSON 4xx, whatever the method.
    let refused = [
        "/limits/a%00b/check",
        "/limits/%C0%AF/check",
        "/limits/%ED%A0%80/check",
        "/limits/%ZZ/check",
        "/limits/a%2/check",
        "/limits/%/check",
        "/locks/%2e%2e/acquire",
        "/locks/./acquire",
        "/locks/../limits/x/check",
        "/locks/x/../../limits/x/check",
        "/limits/x/check/..",
        "/locks/x%2Facquire",
        "/flags/%C3%A9",
        "/config/a%2F..%2Fb",
        "//locks/x",
        "/locks//x",
        "/locks/x//",
    ];
    for path in refused {
        for method in ["POST", "PUT", "GET", "DELETE"] {
            let answer = client.request(method, path, token, policy);
            assert!(
                (400..500).contains(&answer.status),
                "{method} {path}: {answer:?}"
            );
            answer.error(answer.status);
        }
    }

    // One trailing slash is the same path (as warp routes it); a name sent as raw UTF-8 is
    // the name its percent-encoding spells: "été" counts a second time.
    let lock = client.request("GET", "/locks/x/", token, b"").json(200);
    assert_eq!(lock["lease_id"], lease["lease_id"]);
    let raw = client.request("POST", "/limits/été/check", token, policy);
    assert_eq!(raw.json(200)["remaining"], 3, "{raw:?}");

    // Nothing else moved: no new limit, the limit x counted once, the lock x held by the same
    // lease and no other.
    assert_eq!(limit_names(&mut client, token), expected);
    let limit = client.request("GET", "/limits/x", token, b"").json(200);
    assert_eq!(limit["remaining"], 4);
    let locks = client.request("GET", "/locks", token, b"").json(200);
    assert_eq!(locks["total"], 1, "{locks}");
    let lock = client.request("GET", "/locks/x", token, b"").json(200);
    assert_eq!(lock["lease_id"], lease["lease_id"]);
}

/// The names of the caller's rate limits.
fn limit_names(client: &mut Raw, token: Option<&str>) -> BTreeSet<String> {
    client.request("GET", "/limits", token, b"").json(200)["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|limit| text(&limit["name"]).to_owned())
        .collect()
}
