//! Token security over real HTTP: rotations of one token at once leave exactly one
//! successor, and the server's logs, captured at TRACE level, never show a token or a lease
//! id. (That tokens are stored only as SHA-256 hashes is `api::auth`'s
//! `tokens_are_stored_only_as_sha256_hashes`; why token checks leak nothing through timing
//! is in `SECURITY.md`.)

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use octostore_core::{Login, ManualClock, SqliteBackend, Store};
use octostore_http::ServerOptions;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Metadata, Subscriber};

use crate::support::Server;

/// Rounds of the rotation race, per store.
const RACES: usize = 200;
/// Threads rotating one token at once in each round.
const RACERS: usize = 4;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `POST /auth/token/rotate` with `token`: the status, and the new token if one came back.
fn rotate(http: &Client, server: &Server, token: &str) -> (StatusCode, Option<String>) {
    let reply = http
        .post(server.url("/auth/token/rotate"))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = reply.status();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = reply.headers().get("www-authenticate").cloned();
        assert_eq!(
            challenge.as_ref().map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
    let body: Value = reply.json().unwrap();
    let token = body["token"].as_str().map(str::to_owned);
    (status, token)
}

/// The status of `GET /locks` with `token`: whether the token works.
fn locks_status(http: &Client, server: &Server, token: &str) -> StatusCode {
    http.get(server.url("/locks"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
}

/// Rotates one token from [`RACERS`] threads at once, [`RACES`] times: each time exactly one
/// rotation answers 200 with a new token and the others 401; the old token is dead, the new
/// one works, and the user holds exactly as many tokens as before.
fn rotation_race(server: &Server) {
    let alice = server
        .store
        .local_user(&Login::parse("alice").unwrap())
        .unwrap();
    // A token the race never touches: the user's other tokens are left alone.
    let bystander = server.token("alice");
    let racers: Vec<Client> = (0..RACERS).map(|_| http()).collect();
    let checker = http();
    for racer in &racers {
        // Connected before the race, so the two requests leave together.
        assert!(racer
            .get(server.url("/health"))
            .send()
            .unwrap()
            .status()
            .is_success());
    }
    let mut token = server.token("alice");
    for round in 0..RACES {
        let before = server.store.tokens(alice.id).unwrap().len();
        let barrier = Barrier::new(racers.len());
        let answers: Vec<(StatusCode, Option<String>)> = thread::scope(|s| {
            let handles: Vec<_> = racers
                .iter()
                .map(|racer| {
                    let (barrier, token) = (&barrier, &token);
                    s.spawn(move || {
                        barrier.wait();
                        rotate(racer, server, token)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
        statuses.sort_unstable();
        let mut expected = vec![401; RACERS];
        expected[0] = 200;
        assert_eq!(statuses, expected, "round {round}: {answers:?}");
        let successor = answers
            .into_iter()
            .find_map(|(_, token)| token)
            .expect("the successful rotation's token");
        assert_ne!(successor, token);
        assert_eq!(
            locks_status(&checker, server, &token),
            StatusCode::UNAUTHORIZED,
            "round {round}: the rotated token still works"
        );
        assert_eq!(
            locks_status(&checker, server, &successor),
            StatusCode::OK,
            "round {round}: the new token does not work"
        );
        assert_eq!(
            server.store.tokens(alice.id).unwrap().len(),
            before,
            "round {round}: the race left other than one successor"
        );
        token = successor;
    }
    assert_eq!(locks_status(&checker, server, &bystander), StatusCode::OK);
}

#[test]
fn rotations_of_one_token_at_once_leave_exactly_one_successor() {
    rotation_race(&Server::start());
}

#[test]
fn rotations_of_one_token_at_once_leave_exactly_one_successor_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(SqliteBackend::open(dir.path().join("octostore.db")).unwrap())
        .clock(clock.clone())
        .build();
    rotation_race(&Server::serve(store, clock, ServerOptions::default()));
}

// ---- logs --------------------------------------------------------------------------------

/// A subscriber that enables everything, TRACE included, and writes every event and every
/// span's fields, as text, into one buffer: what any formatter could print of them.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

/// Writes each field as ` name=value`.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl Capture {
    fn line(&self, kind: &str, metadata: &Metadata<'_>, fields: impl FnOnce(&mut Fields<'_>)) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(
            text,
            "{kind} {} {} {}:",
            metadata.level(),
            metadata.target(),
            metadata.name()
        );
        fields(&mut Fields(&mut text));
        text.push('\n');
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.line("span", span.metadata(), |fields| span.record(fields));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("record:");
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.line("event", event.metadata(), |fields| event.record(fields));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// One user's calls through the whole API, on `server`; every token and lease id it saw.
fn drive_every_secret_path(server: &Server) -> Vec<String> {
    let http = http();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = http.request(method, server.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().unwrap();
        let status = reply.status();
        let body: Value = reply.json().unwrap_or(Value::Null);
        (status, body)
    };
    use reqwest::Method as M;
    let mut secrets = Vec::new();
    let created = server.token("alice");
    secrets.push(created.clone());
    let (status, body) = call(M::POST, "/auth/token/rotate", &created, Some(json!({})));
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());

    let (status, body) = call(
        M::POST,
        "/locks/deploy/acquire",
        &token,
        Some(json!({ "ttl_seconds": 60 })),
    );
    assert_eq!(status, 200, "{body}");
    let lease = body["lease_id"].as_str().unwrap().to_owned();
    secrets.push(lease.clone());
    let (status, body) = call(
        M::POST,
        "/locks/deploy/renew",
        &token,
        Some(json!({ "lease_id": lease, "ttl_seconds": 120 })),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(M::GET, "/locks/deploy", &token, None);
    assert_eq!(status, 200);
    // A lease id that is no lease, and the real one on the wrong lock: both 404.
    let stranger = uuid::Uuid::new_v4().to_string();
    secrets.push(stranger.clone());
    let (status, _) = call(
        M::POST,
        "/locks/deploy/release",
        &token,
        Some(json!({ "lease_id": stranger })),
    );
    assert_eq!(status, 404);
    let (status, _) = call(
        M::POST,
        "/locks/other/release",
        &token,
        Some(json!({ "lease_id": lease })),
    );
    assert_eq!(status, 404);
    // A malformed body that carries the lease id: 422.
    let (status, _) = call(
        M::POST,
        "/locks/deploy/renew",
        &token,
        Some(json!({ "lease_id": lease })),
    );
    assert_eq!(status, 422);
    let (status, body) = call(
        M::POST,
        "/locks/deploy/release",
        &token,
        Some(json!({ "lease_id": lease })),
    );
    assert_eq!(status, 200, "{body}");

    let (status, _) = call(
        M::PUT,
        "/config/db.pool",
        &token,
        Some(json!({ "value": { "size": 10 } })),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        M::PUT,
        "/flags/new-ui",
        &token,
        Some(json!({ "enabled": true, "percentage": 25 })),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        M::POST,
        "/limits/emails/check",
        &token,
        Some(json!({ "max_requests": 10, "window_seconds": 60 })),
    );
    assert_eq!(status, 200);

    // Failed authentications: the rotated-away token, a well-formed unknown one, and junk.
    let (status, _) = call(M::GET, "/locks", &created, None);
    assert_eq!(status, 401);
    let bogus = format!("octo_{}", "5eed".repeat(16));
    secrets.push(bogus.clone());
    let (status, _) = call(M::GET, "/locks", &bogus, None);
    assert_eq!(status, 401);
    let (status, _) = call(M::POST, "/auth/token/rotate", &bogus, None);
    assert_eq!(status, 401);
    let junk = "not-a-token-but-secret-7c3d9a";
    secrets.push(junk.to_owned());
    let (status, _) = call(M::GET, "/flags", junk, None);
    assert_eq!(status, 401);
    secrets
}

/// The forms in which `secret` could appear in a log: whole, and (for a token) its 64 hex
/// digits in either case; for a lease id, also without hyphens.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if let Some(hex) = secret.strip_prefix("octo_") {
        forms.push(hex.to_owned());
        forms.push(hex.to_ascii_uppercase());
    }
    if let Ok(uuid) = uuid::Uuid::parse_str(secret) {
        forms.push(uuid.simple().to_string());
        forms.push(format!("{uuid:?}"));
    }
    forms
}

fn assert_no_secret_in(logs: &str, secrets: &[String]) {
    // The capture saw the server's own events and the request spans' fields.
    assert!(logs.contains("serving"), "nothing captured:\n{logs}");
    assert!(
        logs.contains("route=/locks/{name}/renew"),
        "the request spans were not captured:\n{logs}"
    );
    for secret in secrets {
        for form in forms(secret) {
            if let Some(at) = logs.find(&form) {
                let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
                panic!("a secret is logged: {}", &logs[start..end]);
            }
        }
    }
}

fn logs_of(store: Store, clock: Arc<ManualClock>) -> (String, Vec<String>) {
    let capture = Capture::default();
    let server = Server::serve_traced(store, clock, Dispatch::new(capture.clone()));
    let secrets = drive_every_secret_path(&server);
    drop(server);
    (capture.text(), secrets)
}

#[test]
fn no_token_or_lease_id_is_logged_at_trace_level() {
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder().clock(clock.clone()).build();
    let (logs, secrets) = logs_of(store, clock);
    assert_no_secret_in(&logs, &secrets);
}

#[test]
fn no_token_or_lease_id_is_logged_at_trace_level_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(SqliteBackend::open(dir.path().join("octostore.db")).unwrap())
        .clock(clock.clone())
        .build();
    let (logs, secrets) = logs_of(store, clock);
    assert_no_secret_in(&logs, &secrets);
}
