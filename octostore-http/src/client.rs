//! [`Client`]: a blocking client of a remote OctoStore server that implements
//! [`octostore_core::Api`], so a program moves from the embedded store to a server by
//! changing the one line that makes its `impl Api`:
//!
//! ```no_run
//! use octostore_core::{Api, LockName, Ttl};
//! use octostore_http::Client;
//!
//! // let me = store.session(user);
//! let me = Client::new("https://octostore.example.com", "octo_…")?;
//! let grant = me.acquire(&LockName::parse("deploy")?, Ttl::seconds(60)?, None)?;
//! println!("fencing token {}", grant.lease.fencing_token);
//! # Ok::<(), octostore_core::Error>(())
//! ```
//!
//! Every answer is mapped back to the core's [`Error`] as the server mapped it (see
//! `error.rs`): 401 is [`Error::Unauthorized`], 404 [`Error::NotFound`] of the resource the
//! operation is about, 409 on acquire [`Error::LockHeld`], 422 [`Error::Invalid`], 413
//! [`Error::TooLarge`], 429 [`Error::QuotaExceeded`]. A server that cannot be reached, or that
//! answers what no OctoStore server would, is an [`Error::Storage`] whose message starts with
//! `server unreachable:` or `unexpected answer from the server:`.
//!
//! The client is blocking (reqwest's blocking client, which runs its own small runtime): call
//! it from plain threads, or from `tokio::task::spawn_blocking`, never directly from async
//! code. Connections are kept alive and reused; each request has a timeout (30 s unless
//! [`ClientBuilder::timeout`] says otherwise).
//!
//! Names travel percent-encoded in the path, every byte but the unreserved `A-Z a-z 0-9 - . _ ~`
//! escaped. A rate-limit name or config key that is exactly `.` or `..` cannot be sent: URLs
//! resolve such segments as "this" and "parent" directory, even percent-encoded, so the client
//! refuses them with [`Error::Invalid`] instead of addressing another path.

use std::fmt;
use std::time::Duration;

use octostore_core::{
    Api, ClientId, ConfigEntry, ConfigHistory, ConfigKey, ConfigSummary, ConfigVersion, Decision,
    Description, Error, Flag, FlagName, HistoryPage, Lease, LeaseId, LimitName, LimitSummary,
    LockGrant, LockName, LockStatus, Login, Percentage, RatePolicy, Resource, Result, Subject, Ttl,
};
use parking_lot::RwLock;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::blocking::Client as Http;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::dto::{
    ConfigInfo, ConfigList, Deleted, ErrorBody, FlagEvaluation, FlagInfo, FlagList, History,
    LimitDecision, LimitList, LimitReset, LockConflict, LockList, LockResponse, NewToken, Released,
};

/// What a path segment escapes: everything but the unreserved characters of RFC 3986.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Shown instead of a token in `Debug` output and error messages.
const HIDDEN_TOKEN: &str = "octo_…";

/// How long a request may take, from connecting to reading the last byte, unless the
/// [`ClientBuilder`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A remote OctoStore server, as one user: the user of the bearer token it was made with.
///
/// Implements [`Api`] exactly as the embedded [`Session`](octostore_core::Session) does, with
/// the same answers and the same errors. Cheap to share between threads (`&Client` is enough:
/// it is `Send + Sync`); its connections are pooled and kept alive.
pub struct Client {
    base: String,
    http: Http,
    timeout: Duration,
    token: RwLock<String>,
}

/// Makes a [`Client`] with settings other than the defaults.
///
/// ```no_run
/// use std::time::Duration;
/// use octostore_http::Client;
///
/// let client = Client::builder("http://127.0.0.1:8080", "octo_…")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), octostore_core::Error>(())
/// ```
pub struct ClientBuilder {
    base: String,
    token: String,
    timeout: Duration,
}

impl ClientBuilder {
    /// The longest a request may take, connecting included (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client. A base URL that is not `http(s)://…`: [`Error::Invalid`] of `url`; a
    /// token that cannot travel in a header: [`Error::Invalid`] of `token`.
    pub fn build(self) -> Result<Client> {
        let url = Url::parse(self.base.trim())
            .map_err(|e| Error::invalid("url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::invalid(
                "url",
                format!(
                    "must be an http:// or https:// URL with a host, not a {}: URL",
                    url.scheme()
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                "url",
                "must not carry credentials: the token authenticates",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid("url", "must not have a query or a fragment"));
        }
        bearer(&self.token)?;
        let http = Http::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("octostore-http/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Storage(format!("cannot make an HTTP client: {}", chain(&e))))?;
        Ok(Client {
            base: url.as_str().trim_end_matches('/').to_owned(),
            http,
            timeout: self.timeout,
            token: RwLock::new(self.token),
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base", &self.base)
            .field("token", &HIDDEN_TOKEN)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &HIDDEN_TOKEN)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `Authorization` header for `token`, marked sensitive so no log prints it.
fn bearer(token: &str) -> Result<HeaderValue> {
    let refused = || Error::invalid("token", "must be non-empty printable ASCII without spaces");
    if token.is_empty()
        || !token.is_ascii()
        || token.contains(|c: char| c.is_ascii_control() || c == ' ')
    {
        return Err(refused());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| refused())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A name as one path segment.
fn segment(name: &str, field: &'static str) -> Result<String> {
    if name == "." || name == ".." {
        return Err(Error::invalid(
            field,
            format!("{name:?} cannot be sent in a URL path: URLs resolve it as a directory"),
        ));
    }
    Ok(utf8_percent_encode(name, SEGMENT).to_string())
}

/// What an operation is about: how its 404, 409, 413 and 429 answers read.
#[derive(Clone, Copy)]
enum Target<'a> {
    Lock(&'a LockName),
    Limit(&'a LimitName),
    Flag(&'a FlagName),
    Config(&'a ConfigKey),
    /// A version of a config key was asked for.
    ConfigVersion(&'a ConfigKey, i64),
}

impl Target<'_> {
    fn path(self) -> Result<String> {
        Ok(match self {
            Target::Lock(name) => format!("/locks/{}", segment(name.as_str(), "name")?),
            Target::Limit(name) => format!("/limits/{}", segment(name.as_str(), "name")?),
            Target::Flag(name) => format!("/flags/{}", segment(name.as_str(), "name")?),
            Target::Config(key) | Target::ConfigVersion(key, _) => {
                format!("/config/{}", segment(key.as_str(), "key")?)
            }
        })
    }

    /// What a quota of this operation counts.
    fn resource(self) -> Resource {
        match self {
            Target::Lock(_) => Resource::Lock,
            Target::Limit(_) => Resource::Limit,
            Target::Flag(_) => Resource::Flag,
            Target::Config(_) | Target::ConfigVersion(..) => Resource::Config,
        }
    }

    /// The not-found error of this target, as the core words it. `message` is the server's
    /// `error`: asked for a version, the key itself may be what is missing.
    fn not_found(self, message: &str) -> Error {
        match self {
            Target::Lock(name) => Error::not_found(Resource::Lock, name),
            Target::Limit(name) => Error::not_found(Resource::Limit, name),
            Target::Flag(name) => Error::not_found(Resource::Flag, name),
            Target::Config(key) => Error::not_found(Resource::Config, key),
            Target::ConfigVersion(key, _)
                if message.starts_with(&format!("{} ", Resource::Config)) =>
            {
                Error::not_found(Resource::Config, key)
            }
            Target::ConfigVersion(key, version) => {
                Error::not_found(Resource::ConfigVersion, format!("{key}@{version}"))
            }
        }
    }
}

/// One request: what it asks and what it is about.
struct Call<'a> {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    /// The JSON body, serialized.
    body: Option<Vec<u8>>,
    target: Option<Target<'a>>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            target: None,
        }
    }

    /// `method` on the target's own path followed by `suffix`.
    fn on(method: Method, target: Target<'a>, suffix: &str) -> Result<Self> {
        let mut call = Self::new(method, target.path()? + suffix);
        call.target = Some(target);
        Ok(call)
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(serde_json::to_vec(&body).expect("a JSON value serializes"));
        self
    }

    fn query(mut self, name: &'static str, value: String) -> Self {
        self.query.push((name, value));
        self
    }
}

/// The `after` of the next page that a `Link: <…?after=N&limit=M>; rel="next"` header names.
fn next_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter(|link| link.contains("rel=\"next\""))
        .find_map(|link| {
            let target = link.split(['<', '>']).nth(1)?;
            let query = target.split_once('?')?.1;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("after="))?
                .parse()
                .ok()
        })
}

/// An [`Error::Storage`] for an answer no OctoStore server gives.
fn unexpected(what: impl fmt::Display) -> Error {
    Error::Storage(format!("unexpected answer from the server: {what}"))
}

/// An error and its sources, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The first `max` characters of an answer that is not the JSON expected, for a message.
fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        short.push('…');
    }
    short
}

/// The API's field names, as the `&'static str` of [`Error::Invalid`]; `"request"` for any
/// other.
fn known_field(field: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "name",
        "key",
        "ttl_seconds",
        "lease_id",
        "client_id",
        "max_requests",
        "window_seconds",
        "enabled",
        "percentage",
        "value",
        "description",
        "version",
        "subject",
        "body",
    ];
    FIELDS
        .iter()
        .find(|known| **known == field)
        .copied()
        .unwrap_or("request")
}

/// The last unsigned integer in `text`, e.g. the limit in "limited to 1024 bytes".
fn last_number(text: &str) -> Option<usize> {
    text.split(|c: char| !c.is_ascii_digit())
        .rfind(|part| !part.is_empty())
        .and_then(|part| part.parse().ok())
}

/// The core error the server answered with `status` and `body`, for a request about
/// `target` whose body was `sent` bytes long.
fn error_from(status: StatusCode, body: &[u8], target: Option<Target<'_>>, sent: usize) -> Error {
    if status == StatusCode::UNAUTHORIZED {
        return Error::Unauthorized;
    }
    if let (StatusCode::CONFLICT, Some(Target::Lock(_))) = (status, target) {
        if let Ok(conflict) = serde_json::from_slice::<LockConflict>(body) {
            let lock = conflict.lock;
            return match (LockName::parse(&lock.name), Login::parse(&lock.holder)) {
                (Ok(name), Ok(holder)) => Error::LockHeld {
                    name,
                    holder,
                    expires_at: lock.expires_at,
                },
                _ => unexpected(format!(
                    "409 naming lock {:?} held by {:?}",
                    lock.name, lock.holder
                )),
            };
        }
    }
    let Ok(ErrorBody { error, details }) = serde_json::from_slice::<ErrorBody>(body) else {
        return if status.is_server_error() {
            server_error(status, &excerpt(body, 200))
        } else {
            unexpected(format!("{status}: {}", excerpt(body, 200)))
        };
    };
    let details = details.unwrap_or_default();
    match status {
        StatusCode::NOT_FOUND => match target {
            // A 404 of the router, not of the store: the base URL is not an OctoStore API.
            Some(target) if !(error == "not found" && details == "no such path") => {
                target.not_found(&error)
            }
            _ => unexpected(format!(
                "404 {error} ({details}): is the base URL that of an OctoStore server?"
            )),
        },
        StatusCode::CONFLICT => Error::Conflict(error),
        StatusCode::UNPROCESSABLE_ENTITY => {
            let field = known_field(&details);
            let prefix = format!("invalid {details}: ");
            match error.strip_prefix(&prefix) {
                Some(reason) if field != "request" => Error::invalid(field, reason),
                _ if details.is_empty() => Error::invalid(field, error),
                _ => Error::invalid(field, format!("{error} ({details})")),
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            let Some(limit) = details.parse().ok().or_else(|| last_number(&details)) else {
                return unexpected(format!("413 {error} ({details})"));
            };
            // The store's own: "{field} is {size} bytes, more than the limit of {limit} bytes".
            let mut words = error.split(' ');
            match (words.next(), words.next(), words.next().map(str::parse)) {
                (Some(field), Some("is"), Some(Ok(size))) => Error::TooLarge {
                    field: known_field(field),
                    size,
                    limit,
                },
                // The server's body cap.
                _ => Error::TooLarge {
                    field: "body",
                    size: sent,
                    limit,
                },
            }
        }
        StatusCode::TOO_MANY_REQUESTS => match (target, details.parse()) {
            (Some(target), Ok(limit)) => Error::QuotaExceeded {
                // The per-user byte cap on configs, or the quota of the target's kind.
                what: if error.contains(&Resource::ConfigBytes.to_string()) {
                    Resource::ConfigBytes
                } else {
                    target.resource()
                },
                limit,
            },
            _ => unexpected(format!("429 {error} ({details})")),
        },
        // The server's own 503 (a gateway's has no such body): the operation was not run.
        StatusCode::SERVICE_UNAVAILABLE => Error::Unavailable(error),
        _ if status.is_server_error() => server_error(status, &error),
        _ if details.is_empty() => unexpected(format!("{status}: {error}")),
        _ => unexpected(format!("{status}: {error} ({details})")),
    }
}

/// A 5xx: a gateway that cannot reach the server, or the server's own failure.
fn server_error(status: StatusCode, what: &str) -> Error {
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Error::Storage(format!("server unreachable: answered {status}: {what}"))
        }
        _ => unexpected(format!("{status}: {what}")),
    }
}

/// An answer's DTO made into core types; a value the core refuses is not an answer a server
/// gives.
fn converted<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| unexpected(format!("a value out of bounds: {e}")))
}

impl Client {
    /// A client of the server at `base_url` (e.g. `https://octostore.example.com`, or with a
    /// path prefix), acting as the user of `token`, with the default timeout.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Result<Self> {
        Self::builder(base_url, token).build()
    }

    /// A [`ClientBuilder`], for a client with other settings.
    pub fn builder(base_url: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            token: token.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The bearer token the client sends: after [`rotate_token`](Self::rotate_token), the new
    /// one. For a caller that keeps it (the CLI's credentials file); never log it.
    pub fn token(&self) -> String {
        self.token.read().clone()
    }

    /// Whether the server answers `GET /health` (no token needed).
    pub fn health(&self) -> Result<()> {
        let (status, _, body) = self.send(&Call::new(Method::GET, "/health"), false)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.scrub(error_from(status, &body, None, 0)))
        }
    }

    /// Replaces the client's token by a new one (`POST /auth/token/rotate`), which it then
    /// uses; the old token stops working at once. Returns the new token, for the caller to
    /// keep. A request of another thread in flight with the old token may answer
    /// [`Error::Unauthorized`].
    pub fn rotate_token(&self) -> Result<String> {
        let answer: NewToken = self.call(Call::new(Method::POST, "/auth/token/rotate"))?;
        bearer(&answer.token)
            .map_err(|_| unexpected("a new token that cannot be sent in a header"))?;
        *self.token.write() = answer.token.clone();
        Ok(answer.token)
    }

    /// Sends `call`, with the token if `authorized`: the status and the body, or why there
    /// is none.
    fn send(&self, call: &Call<'_>, authorized: bool) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let mut url = Url::parse(&format!("{}{}", self.base, call.path))
            .map_err(|e| Error::invalid("request", format!("makes no valid URL: {e}")))?;
        for (name, value) in &call.query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut request = self.http.request(call.method.clone(), url);
        if authorized {
            request = request.header(AUTHORIZATION, bearer(&self.token.read())?);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let unreachable = |e: reqwest::Error| {
            let endpoint = format!("{} {}{}", call.method, self.base, call.path);
            let text = if e.is_timeout() {
                format!(
                    "{endpoint}: no answer within {:?}; the operation may or may not have \
                     taken effect",
                    self.timeout
                )
            } else {
                format!("{endpoint}: {}", chain(&e.without_url()))
            };
            self.scrub(Error::Storage(format!("server unreachable: {text}")))
        };
        let response = request.send().map_err(unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().map_err(unreachable)?;
        Ok((status, headers, body.to_vec()))
    }

    /// Sends `call` with the token and decodes a 2xx answer as `T`; any other answer is the
    /// core error the server mapped.
    fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        self.call_for_headers(call).map(|(answer, _)| answer)
    }

    /// [`call`](Self::call), with the answer's headers.
    fn call_for_headers<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<(T, HeaderMap)> {
        let (status, headers, body) = self.send(&call, true)?;
        if !status.is_success() {
            let sent = call.body.as_ref().map_or(0, Vec::len);
            return Err(self.scrub(error_from(status, &body, call.target, sent)));
        }
        let answer = serde_json::from_slice(&body).map_err(|e| {
            self.scrub(unexpected(format!(
                "{status} to {} {} that does not decode: {e}: {}",
                call.method,
                call.path,
                excerpt(&body, 200)
            )))
        })?;
        Ok((answer, headers))
    }

    /// `err` with the token, should any text of it carry it, hidden.
    fn scrub(&self, err: Error) -> Error {
        let token = self.token.read();
        if token.is_empty() {
            return err;
        }
        let hide = |text: String| text.replace(token.as_str(), HIDDEN_TOKEN);
        match err {
            Error::Storage(m) => Error::Storage(hide(m)),
            Error::Unavailable(m) => Error::Unavailable(hide(m)),
            Error::Conflict(m) => Error::Conflict(hide(m)),
            Error::Invalid { field, reason } => Error::Invalid {
                field,
                reason: hide(reason),
            },
            other => other,
        }
    }
}

impl Api for Client {
    fn acquire(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
    ) -> Result<LockGrant> {
        let mut body = Map::new();
        body.insert("ttl_seconds".into(), ttl.as_secs().into());
        if let Some(client_id) = client_id {
            body.insert("client_id".into(), client_id.as_str().into());
        }
        let call = Call::on(Method::POST, Target::Lock(name), "/acquire")?.body(body.into());
        let answer: LockResponse = self.call(call)?;
        converted(answer.into_grant())
    }

    fn release(&self, name: &LockName, lease_id: LeaseId) -> Result<()> {
        let call = Call::on(Method::POST, Target::Lock(name), "/release")?
            .body(json!({ "lease_id": lease_id.0 }));
        self.call::<Released>(call).map(drop)
    }

    fn renew(&self, name: &LockName, lease_id: LeaseId, ttl: Ttl) -> Result<Lease> {
        let call = Call::on(Method::POST, Target::Lock(name), "/renew")?
            .body(json!({ "lease_id": lease_id.0, "ttl_seconds": ttl.as_secs() }));
        let answer: LockResponse = self.call(call)?;
        converted(answer.into_lease())
    }

    fn lock_status(&self, name: &LockName) -> Result<LockStatus> {
        let answer: Value = self.call(Call::on(Method::GET, Target::Lock(name), "")?)?;
        if answer.get("status").and_then(Value::as_str) == Some("available") {
            return Ok(LockStatus::Available);
        }
        let held: LockResponse = serde_json::from_value(answer)
            .map_err(|e| unexpected(format!("a lock status that does not decode: {e}")))?;
        Ok(LockStatus::Held(converted(held.into_lease())?))
    }

    fn locks(&self) -> Result<Vec<Lease>> {
        let list: LockList = self.call(Call::new(Method::GET, "/locks"))?;
        list.locks
            .into_iter()
            .map(|info| converted(info.into_lease()))
            .collect()
    }

    fn check(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let call = Call::on(Method::POST, Target::Limit(name), "/check")?.body(json!({
            "max_requests": policy.max_requests(),
            "window_seconds": policy.window_seconds(),
        }));
        self.call::<LimitDecision>(call).map(Decision::from)
    }

    fn limit_status(&self, name: &LimitName) -> Result<Decision> {
        let call = Call::on(Method::GET, Target::Limit(name), "")?;
        self.call::<LimitDecision>(call).map(Decision::from)
    }

    fn reset_limit(&self, name: &LimitName) -> Result<()> {
        let call = Call::on(Method::DELETE, Target::Limit(name), "")?;
        self.call::<LimitReset>(call).map(drop)
    }

    fn limits(&self) -> Result<Vec<LimitSummary>> {
        let list: LimitList = self.call(Call::new(Method::GET, "/limits"))?;
        list.limits
            .into_iter()
            .map(|info| converted(info.into_summary()))
            .collect()
    }

    fn set_flag(
        &self,
        name: &FlagName,
        enabled: bool,
        percentage: Option<Percentage>,
    ) -> Result<Flag> {
        let mut body = Map::new();
        body.insert("enabled".into(), enabled.into());
        if let Some(percentage) = percentage {
            body.insert("percentage".into(), percentage.get().into());
        }
        let call = Call::on(Method::PUT, Target::Flag(name), "")?.body(body.into());
        converted(self.call::<FlagInfo>(call)?.into_flag())
    }

    fn evaluate_flag(&self, name: &FlagName, subject: Option<&Subject>) -> Result<bool> {
        let mut call = Call::on(Method::GET, Target::Flag(name), "")?;
        if let Some(subject) = subject {
            call = call.query("subject", subject.to_string());
        }
        self.call::<FlagEvaluation>(call).map(|e| e.enabled)
    }

    fn delete_flag(&self, name: &FlagName) -> Result<()> {
        let call = Call::on(Method::DELETE, Target::Flag(name), "")?;
        self.call::<Deleted>(call).map(drop)
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        let list: FlagList = self.call(Call::new(Method::GET, "/flags"))?;
        list.flags
            .into_iter()
            .map(|info| converted(info.into_flag()))
            .collect()
    }

    fn put_config(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
    ) -> Result<ConfigEntry> {
        let mut body = Map::new();
        body.insert("value".into(), value);
        if let Some(description) = description {
            body.insert("description".into(), description.as_str().into());
        }
        let call = Call::on(Method::PUT, Target::Config(key), "")?.body(body.into());
        converted(self.call::<ConfigInfo>(call)?.into_entry())
    }

    fn get_config(&self, key: &ConfigKey, version: Option<i64>) -> Result<ConfigEntry> {
        let call = match version {
            Some(v) => Call::on(Method::GET, Target::ConfigVersion(key, v), "")?
                .query("version", v.to_string()),
            None => Call::on(Method::GET, Target::Config(key), "")?,
        };
        converted(self.call::<ConfigInfo>(call)?.into_entry())
    }

    fn config_history_page(&self, key: &ConfigKey, page: HistoryPage) -> Result<ConfigHistory> {
        let call = Call::on(Method::GET, Target::Config(key), "/history")?
            .query("after", page.after().to_string())
            .query("limit", page.limit().to_string());
        let (history, headers): (History, _) = self.call_for_headers(call)?;
        let next = next_after(&headers)
            .map(|after| converted(HistoryPage::new(Some(after), Some(page.limit() as u64))))
            .transpose()?;
        Ok(ConfigHistory {
            versions: history
                .versions
                .into_iter()
                .map(ConfigVersion::from)
                .collect(),
            next,
        })
    }

    fn delete_config(&self, key: &ConfigKey) -> Result<()> {
        let call = Call::on(Method::DELETE, Target::Config(key), "")?;
        self.call::<Deleted>(call).map(drop)
    }

    fn configs(&self) -> Result<Vec<ConfigSummary>> {
        let list: ConfigList = self.call(Call::new(Method::GET, "/config"))?;
        list.configs
            .into_iter()
            .map(|item| converted(item.into_summary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value, target: Option<Target<'_>>) -> Error {
        let status = StatusCode::from_u16(status).unwrap();
        error_from(status, body.to_string().as_bytes(), target, 1234)
    }

    #[test]
    fn each_status_maps_back_to_the_core_error_the_server_mapped() {
        let name = LimitName::parse("emails").unwrap();
        let key = ConfigKey::parse("k").unwrap();
        let lock = LockName::parse("deploy").unwrap();
        let limit = Some(Target::Limit(&name));

        let err = answer(401, json!({"error": "Invalid", "details": "x"}), limit);
        assert!(matches!(err, Error::Unauthorized));

        let body = json!({"error": "invalid ttl_seconds: must be between 1 and 3600 seconds, got 0",
                          "details": "ttl_seconds"});
        let err = answer(422, body, Some(Target::Lock(&lock)));
        assert!(
            matches!(&err, Error::Invalid { field: "ttl_seconds", reason }
                if reason == "must be between 1 and 3600 seconds, got 0"),
            "{err:?}"
        );
        let err = answer(
            422,
            json!({"error": "invalid login: bad", "details": "login"}),
            None,
        );
        assert!(
            matches!(&err, Error::Invalid { field: "request", reason } if reason == "invalid login: bad (login)"),
            "{err:?}"
        );
        let err = answer(
            422,
            json!({"error": "invalid query string", "details": "no"}),
            None,
        );
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "request",
                    ..
                }
            ),
            "{err:?}"
        );

        let body = json!({"error": "quota exceeded: a user may own at most 7 of rate limit",
                          "details": "7"});
        let err = answer(429, body, limit);
        assert!(
            matches!(
                err,
                Error::QuotaExceeded {
                    what: Resource::Limit,
                    limit: 7
                }
            ),
            "{err:?}"
        );
        let err = answer(429, json!({"error": "slow down"}), limit);
        assert!(
            matches!(&err, Error::Storage(m) if m.starts_with("unexpected answer from the server:"))
        );

        let body = json!({"error": "value is 100 bytes, more than the limit of 64 bytes", "details": "64"});
        let err = answer(413, body, Some(Target::Config(&key)));
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    field: "value",
                    size: 100,
                    limit: 64
                }
            ),
            "{err:?}"
        );
        let body = json!({"error": "request body too large",
                          "details": "the request body is limited to 1024 bytes"});
        let err = answer(413, body, Some(Target::Config(&key)));
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    field: "body",
                    size: 1234,
                    limit: 1024
                }
            ),
            "{err:?}"
        );

        let body = json!({"error": "config key \"k\" not found"});
        let err = answer(404, body, Some(Target::ConfigVersion(&key, 3)));
        assert!(matches!(&err, Error::NotFound { what: Resource::Config, name } if name == "k"));
        let body = json!({"error": "config version \"k@3\" not found"});
        let err = answer(404, body, Some(Target::ConfigVersion(&key, 3)));
        assert!(
            matches!(&err, Error::NotFound { what: Resource::ConfigVersion, name } if name == "k@3")
        );
        let body = json!({"error": "Lock not found or not owned by caller", "details": "…"});
        let err = answer(404, body, Some(Target::Lock(&lock)));
        assert!(matches!(&err, Error::NotFound { what: Resource::Lock, name } if name == "deploy"));

        let body = json!({"error": "Lock already held",
                          "lock": {"name": "deploy", "holder": "bob", "expires_at": "2024-01-01T00:00:30Z"}});
        let err = answer(409, body, Some(Target::Lock(&lock)));
        assert!(
            matches!(&err, Error::LockHeld { name, holder, .. }
                if name.as_str() == "deploy" && holder.as_str() == "bob"),
            "{err:?}"
        );
        let err = answer(409, json!({"error": "login alice is already taken"}), None);
        assert!(matches!(&err, Error::Conflict(m) if m == "login alice is already taken"));
    }

    #[test]
    fn server_failures_and_strange_answers_are_storage_errors() {
        let err = answer(500, json!({"error": "storage failure"}), None);
        assert!(
            matches!(&err, Error::Storage(m) if m == "unexpected answer from the server: 500 Internal Server Error: storage failure"),
            "{err:?}"
        );
        let err = error_from(
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
            None,
            0,
        );
        assert!(
            matches!(&err, Error::Storage(m) if m.starts_with("server unreachable:")),
            "{err:?}"
        );
        let err = error_from(StatusCode::IM_A_TEAPOT, b"not json", None, 0);
        assert!(
            matches!(&err, Error::Storage(m) if m.starts_with("unexpected answer from the server:")),
            "{err:?}"
        );
        let err = answer(
            405,
            json!({"error": "method not allowed", "details": "GET"}),
            None,
        );
        assert!(
            matches!(&err, Error::Storage(m) if m.starts_with("unexpected answer from the server:"))
        );
    }

    #[test]
    fn segments_escape_all_but_unreserved_characters() {
        assert_eq!(segment("a-b.c_d~e", "name").unwrap(), "a-b.c_d~e");
        assert_eq!(
            segment("api calls/min ü%?#+", "name").unwrap(),
            "api%20calls%2Fmin%20%C3%BC%25%3F%23%2B"
        );
        assert!(matches!(
            segment("..", "key"),
            Err(Error::Invalid { field: "key", .. })
        ));
        assert_eq!(segment("...", "key").unwrap(), "...");
    }

    #[test]
    fn one_client_serves_many_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
    }

    #[test]
    fn the_token_shows_nowhere() {
        let client = Client::new("http://127.0.0.1:9/prefix/", "octo_secret").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9/prefix");
        let shown = format!(
            "{client:?} {:?}",
            Client::builder("http://x", "octo_secret")
        );
        assert!(!shown.contains("octo_secret"), "{shown}");
        let err = client.scrub(Error::Storage("echoed octo_secret back".into()));
        assert!(matches!(&err, Error::Storage(m) if m == "echoed octo_… back"));
    }
}
