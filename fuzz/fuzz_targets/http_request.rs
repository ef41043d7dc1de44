//! Arbitrary requests through the whole warp filter, `octostore_http::routes(&app)`, on a fresh
//! in-memory store per input: a few requests in a row (so a lease acquired by one can be
//! released or renewed by the next), with a valid bearer token part of the time.
//!
//! Checked for every answer: nothing panics; the status is never 5xx (except the 503 that
//! `/auth/github*` documents when GitHub sign-in is not configured); a status of 400 or more
//! has a JSON object body with a string `error`; a JSON content type has a JSON body; and a
//! protected path never answers 2xx to a request whose `Authorization` carries no valid token.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use chrono::Duration;
use libfuzzer_sys::fuzz_target;
use octostore_core::{Login, ManualClock, Settings, Store};
use octostore_http::operation::{Access, Operation};
use octostore_http::{App, ServerOptions};
use serde_json::{json, Map, Value};
use warp::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use warp::http::{Method as HttpMethod, Uri};

/// One runtime for the whole run: building one per input would cost more than the request.
/// Timers on: the body reader times out discarding refused bodies.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Names a route may be asked with: valid for every kind, valid for some, or for none.
const NAMES: [&str; 6] = ["deploy", "a", "x.y", "api calls/min", "ü", "-"];
const CLIENT_IDS: [&str; 3] = ["worker-1", "host:42", "bad id"];
const MAX_REQUESTS: usize = 6;

#[derive(Arbitrary, Debug)]
enum Method {
    /// The method of the operation (GET for a raw path).
    Natural,
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    /// One of [`NAMES`], percent-encoded.
    Known(u8),
    /// Any text, percent-encoded.
    Encoded(String),
    /// Any text as it is: the request is skipped if that does not make a URI.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// The operation of this index in the API's table, on a path with this name.
    Operation(u8, Segment),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    None,
    Subject(String),
    Version(i64),
    VersionText(String),
    Pairs(Vec<(String, String)>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    /// `Bearer <token of the first user>`.
    Valid,
    None,
    /// `Bearer <token of the second user>`.
    Other,
    /// The first user's token under another scheme, or with odd spacing.
    Scheme(String, bool),
    /// The first user's first token, which a rotation may have retired.
    First,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Small(i16),
    Float(f64),
    Str(String),
    Known(u8),
    ClientId(u8),
    /// The lease id of the latest lock answer, if any.
    LastLease,
    /// A JSON text of its own (kept only if it parses).
    Text(String),
    Array(Vec<i32>),
}

#[derive(Arbitrary, Debug)]
enum Field {
    TtlSeconds,
    ClientId,
    LeaseId,
    MaxRequests,
    WindowSeconds,
    Enabled,
    Percentage,
    Value,
    Description,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    /// The body the operation expects, with small numbers, and the latest lease id.
    Natural(u8, bool),
    None,
    Raw(Vec<u8>),
    Object(Vec<(Field, Json)>),
    /// The object, pretty-printed and padded with this many spaces (toward the body cap).
    Padded(Vec<(Field, Json)>, u16),
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: Method,
    path: Path,
    query: Query,
    auth: Auth,
    headers: Vec<(String, String)>,
    body: Body,
    /// Seconds the store's clock moves before the request.
    wait: u16,
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn segment(s: &Segment) -> String {
    match s {
        Segment::Known(i) => encode(NAMES[usize::from(*i) % NAMES.len()]),
        Segment::Encoded(text) => encode(text),
        Segment::Raw(text) => text.clone(),
    }
}

/// The operation a path of the table was made for.
fn operation(p: &Path) -> Option<Operation> {
    let Path::Operation(i, _) = p else {
        return None;
    };
    Some(Operation::ALL[usize::from(*i) % Operation::ALL.len()])
}

/// The path.
fn path(p: &Path) -> String {
    match p {
        Path::Operation(_, name) => operation(p).expect("a table path").path_with(&segment(name)),
        Path::Raw(raw) => raw.clone(),
    }
}

fn query(q: &Query) -> String {
    match q {
        Query::None => String::new(),
        Query::Subject(s) => format!("?subject={}", encode(s)),
        Query::Version(v) => format!("?version={v}"),
        Query::VersionText(v) => format!("?version={}", encode(v)),
        Query::Pairs(pairs) => {
            let pairs: Vec<String> = (pairs.iter().take(4))
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            format!("?{}", pairs.join("&"))
        }
        Query::Raw(raw) => format!("?{raw}"),
    }
}

/// Whether the table has `path` answered without a token.
fn is_public(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    Operation::find(&HttpMethod::GET, path).is_some_and(|found| {
        (Operation::ALL.iter())
            .any(|op| op.template() == found.template && op.access() == Access::Public)
    })
}

struct World {
    clock: Arc<ManualClock>,
    filter: warp::filters::BoxedFilter<(warp::reply::Response,)>,
    /// Each user's current token; a rotation replaces it.
    tokens: [String; 2],
    first: String,
    last_lease: Option<String>,
}

fn json_value(world: &World, j: &Json) -> Option<Value> {
    Some(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => json!(b),
        Json::Int(i) => json!(i),
        Json::Small(i) => json!(i),
        Json::Float(f) => json!(f),
        Json::Str(s) => json!(s),
        Json::Known(i) => json!(NAMES[usize::from(*i) % NAMES.len()]),
        Json::ClientId(i) => json!(CLIENT_IDS[usize::from(*i) % CLIENT_IDS.len()]),
        Json::LastLease => json!(world.last_lease.clone()?),
        Json::Text(text) => serde_json::from_str(text).ok()?,
        Json::Array(items) => json!(items),
    })
}

fn object(world: &World, fields: &[(Field, Json)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (field, value) in fields.iter().take(8) {
        let name = match field {
            Field::TtlSeconds => "ttl_seconds",
            Field::ClientId => "client_id",
            Field::LeaseId => "lease_id",
            Field::MaxRequests => "max_requests",
            Field::WindowSeconds => "window_seconds",
            Field::Enabled => "enabled",
            Field::Percentage => "percentage",
            Field::Value => "value",
            Field::Description => "description",
            Field::Other(name) => name.as_str(),
        };
        if let Some(value) = json_value(world, value) {
            map.insert(name.to_owned(), value);
        }
    }
    map
}

fn natural_body(world: &World, operation: Operation, small: u8, flag: bool) -> Option<Value> {
    let lease = world
        .last_lease
        .clone()
        .unwrap_or_else(|| uuid_nil().to_owned());
    let ttl = 1 + small % 60;
    Some(match operation {
        Operation::AcquireLock if flag => {
            json!({ "ttl_seconds": ttl, "client_id": CLIENT_IDS[usize::from(small) % 2] })
        }
        Operation::AcquireLock => json!({ "ttl_seconds": ttl }),
        Operation::ReleaseLock => json!({ "lease_id": lease }),
        Operation::RenewLock => json!({ "lease_id": lease, "ttl_seconds": ttl }),
        Operation::CheckLimit => json!({ "max_requests": 1 + small % 4, "window_seconds": 1 + small % 10 }),
        Operation::SetFlag if small > 200 => json!({ "enabled": flag }),
        Operation::SetFlag => json!({ "enabled": flag, "percentage": small % 101 }),
        Operation::PatchFlag => json!({ "enabled": flag }),
        Operation::PutConfig if flag => json!({ "value": small, "description": "d" }),
        Operation::PutConfig => json!({ "value": { "n": small } }),
        Operation::RollbackConfig => json!({ "version": 1 + small % 4 }),
        Operation::PutConfigSchema if flag => json!({ "schema": { "type": "integer" }, "force": true }),
        Operation::PutConfigSchema => json!({ "schema": { "maximum": small } }),
        _ => return None,
    })
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

fn body(world: &World, operation: Option<Operation>, b: &Body) -> Option<Vec<u8>> {
    match b {
        Body::Natural(small, flag) => {
            let value = natural_body(world, operation?, *small, *flag)?;
            Some(serde_json::to_vec(&value).unwrap())
        }
        Body::None => None,
        Body::Raw(bytes) => Some(bytes.clone()),
        Body::Object(fields) => Some(serde_json::to_vec(&object(world, fields)).unwrap()),
        Body::Padded(fields, pad) => {
            let mut text = serde_json::to_vec_pretty(&object(world, fields)).unwrap();
            text.extend(std::iter::repeat_n(b' ', usize::from(*pad) * 4));
            Some(text)
        }
    }
}

fn authorization(world: &World, a: &Auth) -> Option<String> {
    match a {
        Auth::None => None,
        Auth::Valid => Some(format!("Bearer {}", world.tokens[0])),
        Auth::Other => Some(format!("Bearer {}", world.tokens[1])),
        Auth::Scheme(scheme, double) => {
            let gap = if *double { "  " } else { " " };
            Some(format!("{scheme}{gap}{}", world.tokens[0]))
        }
        Auth::First => Some(format!("bearer {}", world.first)),
        Auth::Raw(raw) => Some(raw.clone()),
    }
}

fn send(world: &mut World, req: &Request) {
    let operation = operation(&req.path);
    let natural = operation.map_or(HttpMethod::GET, Operation::method);
    let method = match &req.method {
        Method::Natural => natural.as_str(),
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        Method::Other(m) => m.as_str(),
    };
    // What hyper would refuse before the filter sees it is skipped, not tested.
    if HttpMethod::from_bytes(method.as_bytes()).is_err() {
        return;
    }
    let target = format!("{}{}", path(&req.path), query(&req.query));
    if !target.starts_with('/') || target.parse::<Uri>().is_err() {
        return;
    }
    world.clock.advance(Duration::seconds(req.wait.into()));

    let mut builder = warp::test::request().method(method).path(&target);
    let auth = authorization(world, &req.auth);
    if let Some(value) = &auth {
        if HeaderValue::from_str(value).is_err() {
            return;
        }
        builder = builder.header("authorization", value.as_str());
    }
    if let Some(bytes) = body(world, operation, &req.body) {
        builder = builder.body(bytes);
    }
    for (name, value) in req.headers.iter().take(4) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if name == "authorization" {
            continue; // Which token was sent must stay known.
        }
        builder = builder.header(name, value);
    }

    let response = runtime().block_on(builder.reply(&world.filter));
    let status = response.status();
    let text = String::from_utf8_lossy(response.body());
    let parsed = serde_json::from_slice::<Value>(response.body());
    let context = || format!("{method} {target} → {status}: {text}");

    if std::env::var_os("OCTOSTORE_FUZZ_TRACE").is_some_and(|v| v == "1") {
        eprintln!("{method} {target} → {}", status.as_u16());
    }
    let github = target.starts_with("/auth/github");
    assert!(
        !status.is_server_error() || (github && status.as_u16() == 503),
        "server error: {}",
        context()
    );
    if status.as_u16() >= 400 {
        // OFREP's evaluations answer their failures in OFREP's shape (`errorDetails`, with an
        // `errorCode` for a flag's); its paths' other failures (401, 405, 413...) are the API's.
        let said = |field| parsed.as_ref().ok().and_then(|v| v.get(field));
        let ofrep =
            target.starts_with("/ofrep/") && said("errorDetails").is_some_and(Value::is_string);
        assert!(
            ofrep || said("error").is_some_and(Value::is_string),
            "an error answer without a JSON `error`: {}",
            context()
        );
    }
    let is_json = (response.headers().get(CONTENT_TYPE))
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if is_json {
        assert!(
            parsed.is_ok(),
            "a JSON content type on a non-JSON body: {}",
            context()
        );
    }
    if status.is_success() && !is_public(&target) {
        let presented = auth.as_deref().unwrap_or_default();
        assert!(
            world.tokens.iter().any(|t| presented.contains(t.as_str())),
            "a protected path answered without a valid token: {}",
            context()
        );
    }

    // Follow the state the next request may build on.
    let Ok(value) = parsed else { return };
    if let Some(lease) = value.get("lease_id").and_then(Value::as_str) {
        world.last_lease = Some(lease.to_owned());
    }
    if status.is_success() && target.starts_with("/auth/token/rotate") {
        let new = value["token"].as_str().expect("a rotation answers a token");
        let old = auth.as_deref().unwrap_or_default();
        for token in &mut world.tokens {
            if old.contains(token.as_str()) {
                *token = new.to_owned();
            }
        }
    }
}

fn world() -> World {
    let clock = Arc::new(ManualClock::default());
    let settings = Settings {
        // Small, so that a fuzzed value can pass the cap and the padded body the body cap.
        config_value_max_bytes: 256,
        ..Settings::default()
    };
    let store = Store::builder()
        .clock(clock.clone())
        .settings(settings)
        .build();
    let token = |login: &str| {
        let user = store.local_user(&Login::parse(login).unwrap()).unwrap();
        store.issue_token(user.id).unwrap().expose().to_owned()
    };
    let tokens = [token("alice"), token("bob")];
    let app = App::new(store, ServerOptions::default()).expect("an app");
    World {
        clock,
        filter: octostore_http::routes(&app),
        first: tokens[0].clone(),
        tokens,
        last_lease: None,
    }
}

fuzz_target!(|requests: Vec<Request>| {
    let mut world = world();
    for request in requests.iter().take(MAX_REQUESTS) {
        send(&mut world, request);
    }
});
