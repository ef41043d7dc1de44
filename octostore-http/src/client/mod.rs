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
//! answers what no OctoStore server would, is an [`Error::Remote`] whose message starts with
//! `server unreachable:` or `unexpected answer from the server:`.
//!
//! The client is blocking (reqwest's blocking client, which runs its own small runtime): call
//! it from plain threads, or from `tokio::task::spawn_blocking`, never directly from async
//! code. Connections are kept alive and reused; each attempt has a timeout (30 s unless
//! [`ClientBuilder::timeout`] says otherwise).
//!
//! A call is attempted again, after a short random pause, while its retry window (2 s from
//! its start unless [`ClientBuilder::retry_within`] says otherwise) is open, when the server
//! was not reached or did not run it: any operation after a refused connection or a 503
//! `store_busy`; after a connection broken mid-request or a gateway's 502, 503 or 504, only
//! an operation safe to repeat — reads, a release or renewal of a known lease, an acquire
//! with a `client_id`, setting a flag. A config put and a rate-limit check are never sent
//! twice on a guess, nor is anything after a timeout. A call ends within the window plus one
//! timeout. A release retried after its first answer was lost may answer
//! [`Error::NotFound`]: the lease is gone either way.
//!
//! Names travel percent-encoded in the path, every byte but the unreserved `A-Z a-z 0-9 - . _ ~`
//! escaped. A rate-limit name or config key that is exactly `.` or `..` cannot be sent: URLs
//! resolve such segments as "this" and "parent" directory, even percent-encoded, so the client
//! refuses them with [`Error::Invalid`] instead of addressing another path.

mod retry;

use std::fmt;
use std::time::{Duration, Instant};

use octostore_core::values::error::Chain;
use octostore_core::{
    AllLocks, Api, ClientId, ConfigDiff, ConfigEntry, ConfigHistory, ConfigKey, ConfigSchema,
    ConfigSummary, Constraint, Decision, Description, Error, Evaluation, EvaluationContext,
    EventFilter, EventPage, Flag, FlagName, HistoryPage, Lease, LeaseId, LimitName, LimitSummary,
    ListedLock, LockGrant, LockName, LockPage, LockStatus, Login, Percentage, RatePolicy, Result,
    Segment, SegmentName, Subject, TargetingChange, Ttl,
};
use parking_lot::RwLock;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::blocking::Client as Http;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LINK};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::dto::{
    held_by_of, resource_of, ErrorBody, ErrorCode, LockConflict, LockStatusAnswer, OfrepErrorCode,
    OfrepFlag, VersionInfo,
};
use crate::operation::requests::{self, Encoded, Endpoint};
use crate::operation::Operation;

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

/// How long after a call's first attempt another may start, unless the [`ClientBuilder`]
/// says otherwise: time for a server to restart.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(2);

/// A remote OctoStore server, as one user: the user of the bearer token it was made with.
///
/// Implements [`Api`] exactly as the embedded [`Session`](octostore_core::Session) does, with
/// the same answers and the same errors. Cheap to share between threads (`&Client` is enough:
/// it is `Send + Sync`); its connections are pooled and kept alive.
pub struct Client {
    base: String,
    http: Http,
    timeout: Duration,
    retry_window: Duration,
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
    retry_window: Duration,
}

impl ClientBuilder {
    /// The longest one attempt of a request may take, connecting included (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long after a call's first attempt another may start (default
    /// [`DEFAULT_RETRY_WINDOW`]); `Duration::ZERO` makes one attempt only.
    pub fn retry_within(mut self, window: Duration) -> Self {
        self.retry_window = window;
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
            .map_err(|e| Error::storage(format!("cannot make an HTTP client: {}", Chain(&e))))?;
        Ok(Client {
            base: url.as_str().trim_end_matches('/').to_owned(),
            http,
            timeout: self.timeout,
            retry_window: self.retry_window,
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

/// One request: an operation of the table, on its path, with its query and body.
struct Call {
    operation: Operation,
    path: String,
    query: Vec<(&'static str, String)>,
    /// The headers beyond the token's.
    headers: Vec<(&'static str, String)>,
    /// The JSON body, serialized.
    body: Option<Vec<u8>>,
    /// Whether it may be sent again after an attempt that may have reached the server.
    retry_safe: bool,
    /// How long the server may wait before it answers, beyond the client's timeout.
    wait: Duration,
}

impl Call {
    /// `operation`, on a path without a name.
    fn new(operation: Operation) -> Self {
        Self {
            operation,
            path: operation.template().to_owned(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            retry_safe: operation.method() == http::Method::GET,
            wait: Duration::ZERO,
        }
    }

    /// The request `encoded` of `operation`: its name escaped into the path.
    fn of(operation: Operation, encoded: Encoded) -> Result<Self> {
        let mut call = Self::new(operation);
        if let Some(name) = &encoded.name {
            let field = operation.name_field().unwrap_or("name");
            call.path = operation.path_with(&segment(name, field)?);
        }
        call.query = encoded.query;
        call.headers = encoded.headers;
        call.body = encoded
            .body
            .map(|body| serde_json::to_vec(&body).expect("a JSON value serializes"));
        Ok(call)
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

/// An [`Error::Remote`] for an answer no OctoStore server gives.
fn unexpected(what: impl fmt::Display) -> Error {
    Error::remote(format!("unexpected answer from the server: {what}"))
}

/// An [`Error::Remote`] for a server that could not be reached (or a gateway that could not
/// reach it).
fn unreachable(what: impl fmt::Display) -> Error {
    Error::remote(format!("server unreachable: {what}"))
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

/// The API's field names, as the `&'static str` of [`Error::Invalid`] and
/// [`Error::TooLarge`]; `"request"` for any other.
fn known_field(field: Option<&str>) -> &'static str {
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
        "after",
        "limit",
        "since",
        "kind",
        "prefix",
        "wait",
        "wait_for_version",
        "login",
        "body",
        "if_version",
        "If-Match",
        "If-None-Match",
        "from",
        "to",
        "purge",
        "deleted",
        "schema",
        "force",
        "rules",
        "constraints",
        "property",
        "operator",
        "values",
        "segments",
        "segment",
        "variants",
        "variant",
        "payload",
        "prerequisites",
        "index",
        "context",
    ];
    field
        .and_then(|field| FIELDS.iter().find(|known| **known == field))
        .copied()
        .unwrap_or("request")
}

/// The core error the server answered with `status` and `body`, for a request whose body was
/// `sent` bytes long: mapped by the answer's `code` alone, its facts read from their fields.
fn error_from(status: StatusCode, body: &[u8], sent: usize) -> Error {
    let Ok(answer) = serde_json::from_slice::<ErrorBody>(body) else {
        return match status {
            // A gateway's answer: the server itself was not reached.
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                unreachable(format!("answered {status}: {}", excerpt(body, 200)))
            }
            _ => unexpected(format!("{status}: {}", excerpt(body, 200))),
        };
    };
    let ErrorBody {
        error,
        code,
        details,
        field,
        resource,
        name,
        limit,
        size,
        lock_held_by,
        expected_version,
        current_version,
        pointer,
        rule,
    } = answer;
    let resource = resource.as_deref().and_then(resource_of);
    let words = || match &details {
        Some(details) => format!("{status}: {error} ({details})"),
        None => format!("{status}: {error}"),
    };
    match code {
        ErrorCode::Unauthorized => Error::Unauthorized,
        ErrorCode::ValidationFailed => {
            Error::invalid(known_field(field.as_deref()), details.unwrap_or(error))
        }
        ErrorCode::NotFound => match (resource, name) {
            (Some(what), Some(name)) => Error::NotFound {
                what,
                name,
                held_by: lock_held_by.as_deref().and_then(held_by_of),
            },
            _ => unexpected(words()),
        },
        ErrorCode::LockHeld => match serde_json::from_slice::<LockConflict>(body) {
            Ok(LockConflict { lock, .. }) => {
                match (LockName::parse(&lock.name), Login::parse(&lock.holder)) {
                    (Ok(name), Ok(holder)) => Error::LockHeld {
                        name,
                        holder,
                        expires_at: lock.expires_at,
                    },
                    _ => unexpected(format!(
                        "409 naming lock {:?} held by {:?}",
                        lock.name, lock.holder
                    )),
                }
            }
            Err(e) => unexpected(format!("409 lock_held without its lock: {e}")),
        },
        ErrorCode::Conflict => Error::Conflict(error),
        ErrorCode::SubjectRequired => match name.as_deref().map(FlagName::parse) {
            Some(Ok(flag)) => Error::SubjectRequired { flag },
            _ => unexpected(words()),
        },
        ErrorCode::VersionMismatch => {
            let key = name.as_deref().map(ConfigKey::parse);
            match (key, expected_version, current_version) {
                (Some(Ok(key)), Some(expected), Some(current)) => Error::VersionMismatch {
                    key,
                    expected,
                    current,
                },
                _ => unexpected(words()),
            }
        }
        ErrorCode::SchemaViolation => {
            let key = name.as_deref().map(ConfigKey::parse);
            match (key, pointer, rule, details.clone()) {
                (Some(Ok(key)), Some(pointer), Some(rule), Some(reason)) => {
                    Error::SchemaViolation {
                        key,
                        pointer,
                        rule,
                        reason,
                    }
                }
                _ => unexpected(words()),
            }
        }
        ErrorCode::QuotaExceeded => match (resource, limit) {
            (Some(what), Some(limit)) => Error::QuotaExceeded {
                what,
                limit: limit as usize,
            },
            _ => unexpected(words()),
        },
        ErrorCode::PayloadTooLarge => match limit {
            Some(limit) => Error::TooLarge {
                field: known_field(field.as_deref()),
                size: size.map_or(sent, |size| size as usize),
                limit: limit as usize,
            },
            None => unexpected(words()),
        },
        ErrorCode::StorageFailure => Error::storage(format!("on the server: {error}")),
        // The operation was not run.
        ErrorCode::StoreBusy => Error::Unavailable(details.unwrap_or(error)),
        ErrorCode::NoSuchPath => unexpected(format!(
            "{}: is the base URL that of an OctoStore server?",
            words()
        )),
        _ => unexpected(words()),
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
            retry_window: DEFAULT_RETRY_WINDOW,
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
        let (status, _, body) = self.send(&Call::new(Operation::Health), false)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.scrub(error_from(status, &body, 0)))
        }
    }

    /// Replaces the client's token by a new one (`POST /auth/token/rotate`), which it then
    /// uses; the old token stops working at once. Returns the new token, for the caller to
    /// keep. A request of another thread in flight with the old token may answer
    /// [`Error::Unauthorized`].
    pub fn rotate_token(&self) -> Result<String> {
        let answer = self.request(&requests::RotateToken)?;
        bearer(&answer.token)
            .map_err(|_| unexpected("a new token that cannot be sent in a header"))?;
        *self.token.write() = answer.token.clone();
        Ok(answer.token)
    }

    /// [`Api::events`], waiting on the server up to `wait` (at most 300 s) for an event when
    /// there is none after `since` yet (`GET /events?wait=`): an empty page only once the
    /// wait is over. The attempt's timeout is the client's plus `wait`.
    pub fn events_within(
        &self,
        since: u64,
        filter: &EventFilter,
        limit: usize,
        wait: Duration,
    ) -> Result<EventPage> {
        let page = self.request(&requests::ListEvents {
            since,
            filter: filter.clone(),
            limit,
            wait,
        })?;
        converted(page.into_page())
    }

    /// The latest version of `key` once it is past `version`, waiting on the server up to
    /// `wait` (at most 300 s) for it (`GET /config/{key}?wait_for_version=&wait=`); when the
    /// wait ends first, the latest version then (or [`Error::NotFound`] if there is none).
    pub fn config_after(
        &self,
        key: &ConfigKey,
        version: u64,
        wait: Duration,
    ) -> Result<ConfigEntry> {
        let answer = self.request(&requests::GetConfig {
            key: key.clone(),
            version: None,
            wait_for_version: Some(version),
            wait,
        })?;
        converted(answer.into_entry())
    }

    /// The caller's config keys, or its deleted ones.
    fn config_list(&self, deleted: bool) -> Result<Vec<ConfigSummary>> {
        let list = self.request(&requests::ListConfigs { deleted })?;
        (list.configs.into_iter())
            .map(|item| converted(item.into_summary()))
            .collect()
    }

    /// Sends `request` with the token and decodes its answer; any other answer is the core
    /// error the server mapped.
    fn request<E: Endpoint>(&self, request: &E) -> Result<E::Answer> {
        self.request_for_headers(request).map(|(answer, _)| answer)
    }

    /// [`request`](Self::request), with the answer's headers.
    fn request_for_headers<E: Endpoint>(&self, request: &E) -> Result<(E::Answer, HeaderMap)> {
        let mut call = Call::of(E::OPERATION, request.encode())?;
        call.retry_safe = request.retry_safe();
        call.wait = request.wait();
        self.call_for_headers(call)
    }

    /// Sends `call`, with the token if `authorized`, attempting it again as [`retry`] allows:
    /// the last attempt's status, headers and body, or why it had none.
    fn send(&self, call: &Call, authorized: bool) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let mut url = Url::parse(&format!("{}{}", self.base, call.path))
            .map_err(|e| Error::invalid("request", format!("makes no valid URL: {e}")))?;
        for (name, value) in &call.query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let token = authorized.then(|| bearer(&self.token.read())).transpose()?;
        let mut attempts = retry::Attempts::start(self.retry_window);
        loop {
            match self.attempt(call, &url, token.as_ref()) {
                Ok(answer) => {
                    let (status, headers, body) = &answer;
                    let again = retry::after_answer(*status, body);
                    if !(again.allows(call.retry_safe)
                        && attempts.pause_for_another(retry::retry_after(headers)))
                    {
                        return Ok(answer);
                    }
                }
                Err(e) => {
                    let again = retry::after_failure(&e);
                    if !(again.allows(call.retry_safe)
                        && attempts.pause_for_another(Duration::ZERO))
                    {
                        return Err(self.unreachable(call, e, attempts.made()));
                    }
                }
            }
        }
    }

    /// One attempt of `call` at `url`: the status, headers and body, or reqwest's error.
    fn attempt(
        &self,
        call: &Call,
        url: &Url,
        token: Option<&HeaderValue>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut request = self.http.request(call.operation.method(), url.clone());
        if !call.wait.is_zero() {
            request = request.timeout(self.timeout + call.wait);
        }
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, token.clone());
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request.send()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes()?;
        Ok((status, headers, body.to_vec()))
    }

    /// The [`Error::Remote`] of `call` when its last of `attempts` failed with `err`.
    fn unreachable(&self, call: &Call, err: reqwest::Error, attempts: u32) -> Error {
        let mut endpoint = format!("{} {}{}", call.operation.method(), self.base, call.path);
        if attempts > 1 {
            endpoint.push_str(&format!(" ({attempts} attempts)"));
        }
        let err = if err.is_timeout() {
            unreachable(format!(
                "{endpoint}: no answer within {:?}; the operation may or may not have taken \
                 effect",
                self.timeout
            ))
        } else {
            // The cause as the error's source (a program can downcast it; `Chain` prints
            // it), not copied into the message.
            Error::remote_caused(format!("server unreachable: {endpoint}"), err.without_url())
        };
        self.scrub(err)
    }

    /// Sends `call` with the token and decodes a 2xx answer as `T`, with the answer's
    /// headers; any other answer is the core error the server mapped.
    fn call_for_headers<T: DeserializeOwned>(&self, call: Call) -> Result<(T, HeaderMap)> {
        let (status, headers, body) = self.send(&call, true)?;
        if !status.is_success() {
            let sent = call.body.as_ref().map_or(0, Vec::len);
            return Err(self.scrub(error_from(status, &body, sent)));
        }
        let answer = serde_json::from_slice(&body).map_err(|e| {
            self.scrub(unexpected(format!(
                "{status} to {} {} that does not decode: {e}: {}",
                call.operation.method(),
                call.path,
                excerpt(&body, 200)
            )))
        })?;
        Ok((answer, headers))
    }

    /// One `POST /locks/{name}/acquire` that the server may hold up to `wait` in the lock's
    /// queue.
    fn acquire_waiting(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        wait: Duration,
    ) -> Result<LockGrant> {
        let answer = self.request(&requests::AcquireLock {
            name: name.clone(),
            ttl,
            client_id: client_id.cloned(),
            wait,
        })?;
        converted(answer.into_grant())
    }

    /// `err` with the token, should any text of it carry it, hidden.
    fn scrub(&self, err: Error) -> Error {
        let token = self.token.read();
        if token.is_empty() {
            return err;
        }
        let hide = |text: String| text.replace(token.as_str(), HIDDEN_TOKEN);
        match err {
            Error::Storage { message, source } => Error::Storage {
                message: hide(message),
                source,
            },
            Error::Remote { message, source } => Error::Remote {
                message: hide(message),
                source,
            },
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
        self.acquire_waiting(name, ttl, client_id, Duration::ZERO)
    }

    /// Waits in requests of at most [`MAX_WAIT`](requests::MAX_WAIT) each (whole
    /// seconds, rounded up): each next request joins the server's queue anew, at its back.
    fn acquire_within(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        wait: Duration,
    ) -> Result<LockGrant> {
        let give_up = octostore_core::waiting::give_up_at(wait);
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let asked = Duration::from_secs(seconds).min(requests::MAX_WAIT);
            let sent = Instant::now();
            match self.acquire_waiting(name, ttl, client_id, asked) {
                Err(Error::LockHeld { .. }) if !asked.is_zero() && Instant::now() < give_up => {
                    // A server that answered before the wait it was asked for (one that does
                    // not wait) is not asked again at once.
                    let early = (sent + asked).saturating_duration_since(Instant::now());
                    let left = give_up.saturating_duration_since(Instant::now());
                    std::thread::sleep(early.min(left).min(Duration::from_secs(1)));
                }
                outcome => return outcome,
            }
        }
    }

    fn release(&self, name: &LockName, lease_id: LeaseId) -> Result<()> {
        let name = name.clone();
        self.request(&requests::ReleaseLock { name, lease_id })
            .map(drop)
    }

    fn renew(&self, name: &LockName, lease_id: LeaseId, ttl: Ttl) -> Result<Lease> {
        let name = name.clone();
        let answer = self.request(&requests::RenewLock {
            name,
            lease_id,
            ttl,
        })?;
        converted(answer.into_lease())
    }

    fn lock_status(&self, name: &LockName) -> Result<LockStatus> {
        match self.request(&requests::GetLock(name.clone()))? {
            LockStatusAnswer::Available(_) => Ok(LockStatus::Available),
            LockStatusAnswer::Held(held) => Ok(LockStatus::Held(converted(held.into_lease())?)),
        }
    }

    fn locks(&self) -> Result<Vec<Lease>> {
        let list = self.request(&requests::ListLocks::default())?;
        list.locks
            .into_iter()
            .map(|info| converted(info.into_lease()))
            .collect()
    }

    fn all_locks(&self, page: &LockPage) -> Result<AllLocks> {
        let list = self.request(&requests::ListLocks {
            all: Some(page.clone()),
        })?;
        let locks = (list.locks.into_iter())
            .map(|info| {
                let waiters = info.waiters.unwrap_or(0);
                let lease = converted(info.into_lease())?;
                Ok(ListedLock { lease, waiters })
            })
            .collect::<Result<_>>()?;
        let next = list
            .next
            .map(|after| {
                let after = converted(LockName::parse(&after))?;
                converted(LockPage::new(Some(after), Some(page.limit() as u64)))
            })
            .transpose()?;
        Ok(AllLocks { locks, next })
    }

    fn check(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let name = name.clone();
        self.request(&requests::CheckLimit { name, policy })
            .map(Decision::from)
    }

    fn limit_status(&self, name: &LimitName) -> Result<Decision> {
        self.request(&requests::GetLimit(name.clone()))
            .map(Decision::from)
    }

    fn reset_limit(&self, name: &LimitName) -> Result<()> {
        self.request(&requests::ResetLimit(name.clone())).map(drop)
    }

    fn limits(&self) -> Result<Vec<LimitSummary>> {
        let list = self.request(&requests::ListLimits)?;
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
        let answer = self.request(&requests::SetFlag {
            name: name.clone(),
            enabled,
            percentage,
        })?;
        converted(answer.into_flag())
    }

    fn set_flag_enabled(&self, name: &FlagName, enabled: bool) -> Result<Flag> {
        let answer = self.request(&requests::PatchFlag {
            name: name.clone(),
            enabled,
        })?;
        converted(answer.into_flag())
    }

    fn evaluate_flag(&self, name: &FlagName, subject: Option<&Subject>) -> Result<bool> {
        let name = name.clone();
        let subject = subject.cloned();
        self.request(&requests::EvaluateFlag { name, subject })
            .map(|e| e.enabled)
    }

    fn delete_flag(&self, name: &FlagName) -> Result<()> {
        self.request(&requests::DeleteFlag(name.clone())).map(drop)
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        let list = self.request(&requests::ListFlags)?;
        list.flags
            .into_iter()
            .map(|info| converted(info.into_flag()))
            .collect()
    }

    fn flag(&self, name: &FlagName) -> Result<Flag> {
        converted(
            self.request(&requests::GetFlagTargeting(name.clone()))?
                .into_flag(),
        )
    }

    fn change_flag_targeting(&self, name: &FlagName, change: TargetingChange) -> Result<Flag> {
        let name = name.clone();
        let answer = match change {
            TargetingChange::AddRule { rule, at } => {
                self.request(&requests::AddFlagRule { name, rule, at })
            }
            TargetingChange::RemoveRule(index) => {
                self.request(&requests::RemoveFlagRule { name, index })
            }
            TargetingChange::SetVariants(variants) => {
                self.request(&requests::SetFlagVariants { name, variants })
            }
            TargetingChange::SetPrerequisites(prerequisites) => {
                self.request(&requests::SetFlagPrerequisites {
                    name,
                    prerequisites,
                })
            }
        }?;
        converted(answer.into_flag())
    }

    fn evaluate_flag_in(&self, name: &FlagName, context: &EvaluationContext) -> Result<Evaluation> {
        let answer = self.request(&requests::EvaluateFlagInContext {
            name: name.clone(),
            context: context.clone(),
        })?;
        converted(answer.into_evaluation())
    }

    /// Through OFREP's bulk evaluation.
    fn evaluate_flags_in(
        &self,
        context: &EvaluationContext,
    ) -> Result<Vec<(FlagName, Result<Evaluation>)>> {
        let answer = self.request(&requests::OfrepEvaluateFlags {
            context: context.clone(),
            if_none_match: None,
        })?;
        answer
            .flags
            .into_iter()
            .map(|flag| match flag {
                OfrepFlag::Evaluation(e) => {
                    let name = converted(FlagName::parse(&e.key))?;
                    Ok((name, converted(e.into_evaluation())))
                }
                OfrepFlag::Failure(f) => {
                    let name = converted(FlagName::parse(&f.key))?;
                    let error = match f.error_code {
                        OfrepErrorCode::TargetingKeyMissing => {
                            Error::SubjectRequired { flag: name.clone() }
                        }
                        OfrepErrorCode::FlagNotFound => {
                            Error::not_found(octostore_core::Resource::Flag, &name)
                        }
                        _ => Error::invalid("context", f.error_details),
                    };
                    Ok((name, Err(error)))
                }
            })
            .collect()
    }

    fn set_segment(
        &self,
        name: &SegmentName,
        description: Option<String>,
        constraints: Vec<Constraint>,
    ) -> Result<Segment> {
        let answer = self.request(&requests::SetSegment {
            name: name.clone(),
            description,
            constraints,
        })?;
        converted(answer.into_segment())
    }

    fn segment(&self, name: &SegmentName) -> Result<Segment> {
        converted(
            self.request(&requests::GetSegment(name.clone()))?
                .into_segment(),
        )
    }

    fn delete_segment(&self, name: &SegmentName) -> Result<()> {
        self.request(&requests::DeleteSegment(name.clone()))
            .map(drop)
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        let list = self.request(&requests::ListSegments)?;
        list.segments
            .into_iter()
            .map(|info| converted(info.into_segment()))
            .collect()
    }

    fn put_config_if(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        let answer = self.request(&requests::PutConfig {
            key: key.clone(),
            value,
            description,
            if_version,
        })?;
        converted(answer.into_entry())
    }

    fn rollback_config(
        &self,
        key: &ConfigKey,
        version: u64,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        let answer = self.request(&requests::RollbackConfig {
            key: key.clone(),
            version,
            if_version,
        })?;
        converted(answer.into_entry())
    }

    fn diff_config(&self, key: &ConfigKey, from: u64, to: u64) -> Result<ConfigDiff> {
        let key = key.clone();
        let patch = self.request(&requests::DiffConfig {
            key: key.clone(),
            from,
            to,
        })?;
        Ok(ConfigDiff {
            key,
            from,
            to,
            patch,
        })
    }

    fn get_config(&self, key: &ConfigKey, version: Option<i64>) -> Result<ConfigEntry> {
        let key = key.clone();
        converted(
            self.request(&requests::GetConfig {
                key,
                version,
                wait_for_version: None,
                wait: Duration::ZERO,
            })?
            .into_entry(),
        )
    }

    fn config_history_page(&self, key: &ConfigKey, page: HistoryPage) -> Result<ConfigHistory> {
        let key = key.clone();
        let (history, headers) =
            self.request_for_headers(&requests::GetConfigHistory { key, page })?;
        let next = next_after(&headers)
            .map(|after| converted(HistoryPage::new(Some(after), Some(page.limit() as u64))))
            .transpose()?;
        Ok(ConfigHistory {
            versions: (history.versions.into_iter())
                .map(VersionInfo::into_version)
                .collect::<Result<_>>()?,
            next,
        })
    }

    fn delete_config(&self, key: &ConfigKey) -> Result<()> {
        let key = key.clone();
        let purge = false;
        self.request(&requests::DeleteConfig { key, purge })
            .map(drop)
    }

    fn purge_config(&self, key: &ConfigKey) -> Result<()> {
        let key = key.clone();
        let purge = true;
        self.request(&requests::DeleteConfig { key, purge })
            .map(drop)
    }

    fn undelete_config(&self, key: &ConfigKey) -> Result<ConfigEntry> {
        let answer = self.request(&requests::UndeleteConfig(key.clone()))?;
        converted(answer.into_entry())
    }

    fn configs(&self) -> Result<Vec<ConfigSummary>> {
        self.config_list(false)
    }

    fn deleted_configs(&self) -> Result<Vec<ConfigSummary>> {
        self.config_list(true)
    }

    fn set_config_schema(
        &self,
        key: &ConfigKey,
        schema: Value,
        force: bool,
    ) -> Result<ConfigSchema> {
        let key = key.clone();
        let answer = self.request(&requests::PutConfigSchema { key, schema, force })?;
        converted(answer.into_schema())
    }

    fn config_schema(&self, key: &ConfigKey) -> Result<ConfigSchema> {
        let answer = self.request(&requests::GetConfigSchema(key.clone()))?;
        converted(answer.into_schema())
    }

    fn delete_config_schema(&self, key: &ConfigKey) -> Result<()> {
        self.request(&requests::DeleteConfigSchema(key.clone()))
            .map(drop)
    }

    fn events(&self, since: u64, filter: &EventFilter, limit: usize) -> Result<EventPage> {
        self.events_within(since, filter, limit, Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use octostore_core::{EventKind, Kinds, Resource};
    use serde_json::json;

    use crate::operation::requests::Received;

    use super::*;

    fn answer(status: u16, body: Value) -> Error {
        let status = StatusCode::from_u16(status).unwrap();
        error_from(status, body.to_string().as_bytes(), 1234)
    }

    #[test]
    fn each_code_maps_back_to_the_core_error_the_server_mapped() {
        let err = answer(401, json!({"error": "Invalid", "code": "unauthorized"}));
        assert!(matches!(err, Error::Unauthorized));

        let body = json!({"error": "invalid ttl_seconds: must be between 1 and 3600 seconds, got 0",
                          "code": "validation_failed", "field": "ttl_seconds",
                          "details": "must be between 1 and 3600 seconds, got 0"});
        let err = answer(422, body);
        assert!(
            matches!(&err, Error::Invalid { field: "ttl_seconds", reason }
                if reason == "must be between 1 and 3600 seconds, got 0"),
            "{err:?}"
        );
        let body = json!({"error": "invalid shoe: bad", "code": "validation_failed",
                          "field": "shoe", "details": "bad"});
        let err = answer(422, body);
        assert!(
            matches!(&err, Error::Invalid { field: "request", reason } if reason == "bad"),
            "{err:?}"
        );

        let body = json!({"error": "quota exceeded: a user may own at most 7 rate limits",
                          "code": "quota_exceeded", "resource": "limit", "limit": 7});
        let err = answer(429, body);
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
        let err = answer(429, json!({"error": "slow down", "code": "quota_exceeded"}));
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.starts_with("unexpected answer from the server:"))
        );

        let body = json!({"error": "value is 100 bytes, more than the limit of 64 bytes",
                          "code": "payload_too_large", "field": "value", "size": 100, "limit": 64});
        let err = answer(413, body);
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
        let body = json!({"error": "request body too large", "code": "payload_too_large",
                          "field": "body", "limit": 1024,
                          "details": "the request body is limited to 1024 bytes"});
        let err = answer(413, body);
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

        let body = json!({"error": "config version \"k@3\" not found", "code": "not_found",
                          "resource": "config_version", "name": "k@3"});
        let err = answer(404, body);
        assert!(
            matches!(&err, Error::NotFound { what: Resource::ConfigVersion, name, held_by: None } if name == "k@3")
        );
        let body = json!({"error": "Lock not found or not owned by caller", "code": "not_found",
                          "resource": "lock", "name": "deploy"});
        let err = answer(404, body);
        assert!(
            matches!(&err, Error::NotFound { what: Resource::Lock, name, held_by: None } if name == "deploy")
        );
        let body = json!({"error": "Lock not found or not owned by caller", "code": "not_found",
                          "resource": "lock", "name": "deploy", "lock_held_by": "another_lease"});
        let err = answer(404, body);
        assert_eq!(err.to_string(), "lock deploy is held by another lease");

        let body = json!({"error": "Lock already held", "code": "lock_held",
                          "lock": {"name": "deploy", "holder": "bob", "expires_at": "2024-01-01T00:00:30Z"}});
        let err = answer(409, body);
        assert!(
            matches!(&err, Error::LockHeld { name, holder, .. }
                if name.as_str() == "deploy" && holder.as_str() == "bob"),
            "{err:?}"
        );
        let body = json!({"error": "login alice is already taken", "code": "conflict"});
        let err = answer(409, body);
        assert!(matches!(&err, Error::Conflict(m) if m == "login alice is already taken"));

        let body = json!({"error": "store busy, the operation was not run: queue full",
                          "code": "store_busy", "details": "queue full"});
        let err = answer(503, body);
        assert!(
            matches!(&err, Error::Unavailable(m) if m == "queue full"),
            "{err:?}"
        );
    }

    #[test]
    fn the_code_decides_not_the_words_or_the_status() {
        // Words that read like another error change nothing.
        let body = json!({"error": "config key \"k\" not found", "code": "conflict"});
        assert!(matches!(answer(404, body), Error::Conflict(_)));
        // No code: no OctoStore server's answer.
        let err = answer(404, json!({"error": "config key \"k\" not found"}));
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.starts_with("unexpected answer from the server:")),
            "{err:?}"
        );
        // A code from a newer server.
        let err = answer(418, json!({"error": "brewing", "code": "teapot_busy"}));
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m == "unexpected answer from the server: 418 I'm a teapot: brewing"),
            "{err:?}"
        );
    }

    #[test]
    fn server_failures_and_strange_answers_are_told_apart() {
        let body = json!({"error": "storage failure", "code": "storage_failure"});
        let err = answer(500, body);
        assert!(
            matches!(&err, Error::Storage { message: m, .. } if m == "on the server: storage failure"),
            "{err:?}"
        );
        let err = error_from(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", 0);
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.starts_with("server unreachable:")),
            "{err:?}"
        );
        let err = error_from(StatusCode::IM_A_TEAPOT, b"not json", 0);
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.starts_with("unexpected answer from the server:")),
            "{err:?}"
        );
        let body = json!({"error": "method not allowed", "code": "method_not_allowed",
                          "details": "this path accepts GET"});
        let err = answer(405, body);
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.starts_with("unexpected answer from the server:"))
        );
        let body = json!({"error": "not found", "code": "no_such_path", "details": "no such path"});
        let err = answer(404, body);
        assert!(
            matches!(&err, Error::Remote { message: m, .. } if m.contains("is the base URL that of an OctoStore server?")),
            "{err:?}"
        );
    }

    /// `request` as the client sends it (through a real URL, as `send` builds it) and as the
    /// server reads it: found in the table as its operation, then decoded as it was made.
    fn sent_and_received<E: Endpoint + PartialEq + fmt::Debug>(request: E) {
        let call = Call::of(E::OPERATION, request.encode()).unwrap();
        let mut url = Url::parse(&format!("http://127.0.0.1{}", call.path)).unwrap();
        for (name, value) in &call.query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let found = Operation::find(&E::OPERATION.method(), url.path()).unwrap();
        assert_eq!(found.operation, Some(E::OPERATION), "{}", url.path());
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let body = call.body.unwrap_or_default();
        let mut headers = http::HeaderMap::new();
        for (name, value) in &call.headers {
            headers.append(*name, value.parse().unwrap());
        }
        let received = Received {
            name: found.name.unwrap_or(("", "name")),
            query: &query,
            headers: &headers,
            body: &body,
        };
        assert_eq!(E::decode(&received).unwrap(), request, "{url}");
    }

    #[test]
    fn every_request_the_client_sends_reads_the_same_on_the_server() {
        for name in ["deploy", "a", "-", "x_y-z"] {
            let name = LockName::parse(name).unwrap();
            let ttl = Ttl::seconds(60).unwrap();
            let lease_id = LeaseId(uuid::Uuid::new_v4());
            for client_id in [None, Some(ClientId::parse("host:42.a-b").unwrap())] {
                for wait in [0, 1, 300].map(Duration::from_secs) {
                    let (name, client_id) = (name.clone(), client_id.clone());
                    sent_and_received(requests::AcquireLock {
                        name,
                        ttl,
                        client_id,
                        wait,
                    });
                }
            }
            sent_and_received(requests::ReleaseLock {
                name: name.clone(),
                lease_id,
            });
            let renew = requests::RenewLock {
                name: name.clone(),
                lease_id,
                ttl,
            };
            sent_and_received(renew);
            sent_and_received(requests::GetLock(name));
        }
        for name in ["api calls/min ü%?#+", "...", "a.b", "%2F", "x&y=z"] {
            let name = LimitName::parse(name).unwrap();
            let policy = RatePolicy::new(10, 60).unwrap();
            sent_and_received(requests::CheckLimit {
                name: name.clone(),
                policy,
            });
            sent_and_received(requests::GetLimit(name.clone()));
            sent_and_received(requests::ResetLimit(name));
        }
        let flag = FlagName::parse("new-ui").unwrap();
        for percentage in [
            None,
            Some(Percentage::new(0).unwrap()),
            Some(Percentage::new(100).unwrap()),
        ] {
            for enabled in [true, false] {
                let name = flag.clone();
                sent_and_received(requests::SetFlag {
                    name,
                    enabled,
                    percentage,
                });
            }
        }
        for subject in [None, Some("user 42"), Some("a&b=c?d#e/f%g"), Some("ü")] {
            let subject = subject.map(|s| Subject::parse(s).unwrap());
            sent_and_received(requests::EvaluateFlag {
                name: flag.clone(),
                subject,
            });
        }
        for enabled in [true, false] {
            sent_and_received(requests::PatchFlag {
                name: flag.clone(),
                enabled,
            });
        }
        sent_and_received(requests::DeleteFlag(flag));
        let key = ConfigKey::parse("app.settings").unwrap();
        for value in [
            json!(null),
            json!({"a": [1, "ü", {"b": null}]}),
            json!("x"),
            json!(1.5),
        ] {
            for description in [None, Some(Description::new("for ü & you").unwrap())] {
                for if_version in [None, Some(0), Some(1), Some(i64::MAX as u64)] {
                    let (key, value) = (key.clone(), value.clone());
                    let description = description.clone();
                    sent_and_received(requests::PutConfig {
                        key,
                        value,
                        description,
                        if_version,
                    });
                }
            }
        }
        for (version, if_version) in [(1, None), (2, Some(0)), (i64::MAX as u64, Some(7))] {
            sent_and_received(requests::RollbackConfig {
                key: key.clone(),
                version,
                if_version,
            });
        }
        for (from, to) in [(0, 0), (1, 2), (9, 3), (i64::MAX as u64, 1)] {
            let key = key.clone();
            sent_and_received(requests::DiffConfig { key, from, to });
        }
        for version in [None, Some(1), Some(i64::MAX)] {
            sent_and_received(requests::GetConfig {
                key: key.clone(),
                version,
                wait_for_version: None,
                wait: Duration::ZERO,
            });
        }
        for (wait_for_version, wait) in [(Some(0), 0), (Some(3), 1), (Some(i64::MAX as u64), 300)] {
            sent_and_received(requests::GetConfig {
                key: key.clone(),
                version: None,
                wait_for_version,
                wait: Duration::from_secs(wait),
            });
        }
        for (after, limit) in [
            (None, None),
            (Some(7), Some(1)),
            (Some(u64::MAX >> 1), Some(100)),
        ] {
            let page = HistoryPage::new(after, limit).unwrap();
            sent_and_received(requests::GetConfigHistory {
                key: key.clone(),
                page,
            });
        }
        for purge in [false, true] {
            let key = key.clone();
            sent_and_received(requests::DeleteConfig { key, purge });
        }
        sent_and_received(requests::UndeleteConfig(key.clone()));
        for (schema, force) in [(json!({"type": "integer"}), false), (json!(true), true)] {
            let key = key.clone();
            sent_and_received(requests::PutConfigSchema { key, schema, force });
        }
        sent_and_received(requests::GetConfigSchema(key.clone()));
        sent_and_received(requests::DeleteConfigSchema(key));
        for (since, kinds, prefix, limit, wait) in [
            (0, Kinds::ALL, "", 100, 0),
            (7, Kinds::of([EventKind::Flag]), "app_", 1, 30),
            (
                i64::MAX as u64,
                Kinds::of([EventKind::Lock, EventKind::Config]),
                "ü &/?=",
                1000,
                300,
            ),
        ] {
            sent_and_received(requests::ListEvents {
                since,
                filter: EventFilter::new(kinds, prefix).unwrap(),
                limit,
                wait: Duration::from_secs(wait),
            });
        }
        sent_and_received(requests::ListLocks::default());
        for (after, limit) in [(None, None), (Some("deploy"), Some(1)), (None, Some(1000))] {
            let after = after.map(|a| LockName::parse(a).unwrap());
            sent_and_received(requests::ListLocks {
                all: Some(LockPage::new(after, limit).unwrap()),
            });
        }
        sent_and_received(requests::ListLimits);
        sent_and_received(requests::ListFlags);
        sent_and_received(requests::ListConfigs { deleted: false });
        sent_and_received(requests::ListConfigs { deleted: true });
        sent_and_received(requests::RotateToken);
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
        let err = client.scrub(Error::storage("echoed octo_secret back"));
        assert!(matches!(&err, Error::Storage { message, .. } if message == "echoed octo_… back"));
        let err = client.scrub(Error::remote("server unreachable: echoed octo_secret back"));
        assert!(
            matches!(&err, Error::Remote { message, .. } if message == "server unreachable: echoed octo_… back")
        );
    }
}
