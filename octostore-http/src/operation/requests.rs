//! Each operation's request, typed: what it carries beyond its token (the name in its path,
//! its query, its JSON body) as the core's validated values, with the one encoding the client
//! sends and the one decoding the server applies, and the type of its answer.

use octostore_core::json_patch::Patch;
use octostore_core::{
    ClientId, ConfigKey, Description, Error, EventFilter, EventKind, FlagName, HistoryPage, Kinds,
    LeaseId, LimitName, LockName, LockPage, Percentage, RatePolicy, Result, Subject, Ttl,
};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::fields::{path_name, JsonBody};
use super::Operation;
use crate::dto::{
    ConfigInfo, ConfigList, Deleted, EventList, FlagEvaluation, FlagInfo, FlagList, History,
    LimitDecision, LimitList, LimitReset, LockList, LockResponse, LockStatusAnswer, NewToken,
    Released, SchemaInfo,
};

/// A request as it travels: the name in its path (before escaping), its query parameters and
/// its JSON body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Encoded {
    /// The name in the path, for an operation whose template has one.
    pub name: Option<String>,
    /// The query parameters, in order.
    pub query: Vec<(&'static str, String)>,
    /// The headers beyond the token's, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body, for an operation that reads one.
    pub body: Option<Value>,
}

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The name in the path as sent (percent-encoded), and what the template calls it
    /// (`name`, `key`); `("", "name")` if the template has none.
    pub name: (&'a str, &'static str),
    /// The query parameters, percent-decoded.
    pub query: &'a [(String, String)],
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The body's bytes.
    pub body: &'a [u8],
}

impl Received<'_> {
    /// The name in the path, percent-decoded and parsed; an error names it as the template
    /// does.
    fn name<T>(&self, parse: fn(&str) -> Result<T>) -> Result<T> {
        let (raw, field) = self.name;
        parse(&path_name(raw, field)?)
    }

    /// The body as a JSON object.
    fn json(&self) -> Result<JsonBody> {
        JsonBody::parse(self.body)
    }

    /// The query parameter `name`, if given (the first, if given twice).
    fn query(&self, name: &str) -> Option<&str> {
        (self.query.iter())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The query parameter `name` as a number, if given; `what` says which in an error.
    fn number<T: std::str::FromStr>(&self, name: &'static str, what: &str) -> Result<Option<T>> {
        self.query(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::invalid(name, format!("must be {what}")))
            })
            .transpose()
    }
}

impl Received<'_> {
    /// The query parameter `name`, a number from 0 to 2^63 - 1 (as storage keeps indexes
    /// and versions), described as `what` in the error.
    fn counter(&self, name: &'static str, what: &str) -> Result<Option<u64>> {
        let what = format!("{what}, an integer from 0 to 9223372036854775807");
        let number = self.number::<u64>(name, &what)?;
        if number.is_some_and(|n| i64::try_from(n).is_err()) {
            return Err(Error::invalid(name, format!("must be {what}")));
        }
        Ok(number)
    }
}

/// The headers of a compare-and-set, as RFC 9110 names them.
const IF_MATCH: &str = "If-Match";
const IF_NONE_MATCH: &str = "If-None-Match";

impl Received<'_> {
    /// The header `name` as text, if sent (the first, if sent twice).
    fn header(&self, name: &'static str) -> Result<Option<&str>> {
        (self.headers.get(name))
            .map(|v| (v.to_str()).map_err(|_| Error::invalid(name, "must be ASCII text")))
            .transpose()
    }

    /// The version a compare-and-set expects of a config key: `If-Match: "N"` (the `ETag` a
    /// get answers), `If-None-Match: *` (0: the key must not exist), or the body's
    /// `if_version` (N, or 0), for clients that cannot set headers; `None` if none is sent.
    /// Two that disagree are refused.
    fn if_version(&self, body: &JsonBody) -> Result<Option<u64>> {
        let matched = match self.header(IF_MATCH)? {
            None => None,
            Some(etag) => Some(
                (etag.trim().strip_prefix('"'))
                    .and_then(|etag| etag.strip_suffix('"'))
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|&n| n >= 1 && i64::try_from(n).is_ok())
                    .ok_or_else(|| {
                        Error::invalid(
                            IF_MATCH,
                            format!(
                                "must be one version's ETag, as \"3\" (a GET's ETag), found \
                                 {etag:?}"
                            ),
                        )
                    })?,
            ),
        };
        let absent = match self.header(IF_NONE_MATCH)? {
            None => None,
            Some("*") => Some(0),
            Some(other) => {
                return Err(Error::invalid(
                    IF_NONE_MATCH,
                    format!("must be * (put only if the key does not exist), found {other:?}"),
                ))
            }
        };
        let in_body = match body.optional_int("if_version")? {
            None => None,
            Some(n) if n >= 0 => Some(n as u64),
            Some(n) => {
                return Err(Error::invalid(
                    "if_version",
                    format!("must be a version, or 0 for a key that does not exist, got {n}"),
                ))
            }
        };
        let sent = [
            (IF_MATCH, matched),
            (IF_NONE_MATCH, absent),
            ("if_version", in_body),
        ];
        let mut given = sent.iter().filter_map(|(field, v)| v.map(|v| (*field, v)));
        let first = given.next();
        if let (Some((field, v)), Some((other, w))) = (first, given.next()) {
            if v != w {
                return Err(Error::invalid(
                    other,
                    format!("expects another version than {field} does: send one of them"),
                ));
            }
        }
        Ok(first.map(|(_, v)| v))
    }
}

/// `if_version` as the headers send it, if any.
fn encode_if_version(headers: &mut Vec<(&'static str, String)>, if_version: Option<u64>) {
    match if_version {
        None => {}
        Some(0) => headers.push((IF_NONE_MATCH, "*".into())),
        Some(n) => headers.push((IF_MATCH, format!("\"{n}\""))),
    }
}

/// The longest a request may wait for a change (`wait`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

impl Received<'_> {
    /// The query parameter `wait`: how long to wait for a change, as seconds (`30`, `30s`) or
    /// minutes (`2m`), cut to [`MAX_WAIT`]; zero if not given.
    fn wait(&self) -> Result<Duration> {
        let Some(text) = self.query("wait") else {
            return Ok(Duration::ZERO);
        };
        let refused = || {
            let max = MAX_WAIT.as_secs();
            Error::invalid(
                "wait",
                format!("must be seconds or minutes (cut to {max} s), as `30`, `30s` or `2m`, found {text:?}"),
            )
        };
        let (number, unit) = match text.strip_suffix('m') {
            Some(minutes) => (minutes, 60),
            None => (text.strip_suffix('s').unwrap_or(text), 1),
        };
        // Digits only: no sign, no spaces.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        // As many digits as anyone sends mean "the longest wait".
        let count: u64 = number.parse().unwrap_or(u64::MAX);
        let seconds = count.saturating_mul(unit).min(MAX_WAIT.as_secs());
        Ok(Duration::from_secs(seconds))
    }
}

/// `wait` as the query sends it, if not zero.
fn encode_wait(query: &mut Vec<(&'static str, String)>, wait: Duration) {
    if !wait.is_zero() {
        query.push(("wait", format!("{}s", wait.as_secs())));
    }
}

/// The request of one [`Operation`]: how the client encodes it, how the server decodes it,
/// and the JSON of its answer. `decode(encode(r)) == r` for every request (a test checks it).
pub trait Endpoint: Sized {
    /// Its operation in the table.
    const OPERATION: Operation;
    /// The JSON of its 2xx answer.
    type Answer: Serialize + DeserializeOwned;
    /// The request as the client sends it.
    fn encode(&self) -> Encoded;
    /// The request as the server reads it, every field checked.
    fn decode(received: &Received<'_>) -> Result<Self>;
    /// Whether a client may send it again after an attempt that may have reached the server
    /// (a connection broken mid-request, a 502, 503 or 504): sent twice, it must leave the
    /// store as sent once does. Reads are; so are a release and a renewal of a known lease,
    /// an acquire with a `client_id` (the second finds the lock held by the same client),
    /// and setting a flag whole or on/off. A config put (a second would be a new version)
    /// and a rate-limit check (a second would count twice) are not.
    fn retry_safe(&self) -> bool {
        Self::OPERATION.method() == http::Method::GET
    }
    /// How long the server may wait for a change before it answers (`wait`): none unless the
    /// request asks.
    fn wait(&self) -> Duration {
        Duration::ZERO
    }
}

/// Requests that carry nothing beyond the token.
macro_rules! bare {
    ($($(#[doc = $doc:literal])* $name:ident: $op:ident -> $answer:ty;)*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name;

        impl Endpoint for $name {
            const OPERATION: Operation = Operation::$op;
            type Answer = $answer;
            fn encode(&self) -> Encoded {
                Encoded::default()
            }
            fn decode(_: &Received<'_>) -> Result<Self> {
                Ok(Self)
            }
        }
    )*};
}

/// Requests that carry the name in their path alone.
macro_rules! named {
    ($($(#[doc = $doc:literal])* $name:ident($kind:ty): $op:ident -> $answer:ty;)*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $kind);

        impl Endpoint for $name {
            const OPERATION: Operation = Operation::$op;
            type Answer = $answer;
            fn encode(&self) -> Encoded {
                Encoded { name: Some(self.0.to_string()), ..Encoded::default() }
            }
            fn decode(received: &Received<'_>) -> Result<Self> {
                received.name(<$kind>::parse).map(Self)
            }
        }
    )*};
}

bare! {
    /// `POST /auth/token/rotate`.
    RotateToken: RotateToken -> NewToken;
    /// `GET /limits`.
    ListLimits: ListLimits -> LimitList;
    /// `GET /flags`.
    ListFlags: ListFlags -> FlagList;
}

named! {
    /// `GET /locks/{name}`.
    GetLock(LockName): GetLock -> LockStatusAnswer;
    /// `GET /limits/{name}`.
    GetLimit(LimitName): GetLimit -> LimitDecision;
    /// `DELETE /limits/{name}`.
    ResetLimit(LimitName): ResetLimit -> LimitReset;
    /// `DELETE /flags/{name}`.
    DeleteFlag(FlagName): DeleteFlag -> Deleted;
    /// `POST /config/{key}/undelete`: a deleted key brought back.
    UndeleteConfig(ConfigKey): UndeleteConfig -> ConfigInfo;
    /// `GET /config/{key}/schema`.
    GetConfigSchema(ConfigKey): GetConfigSchema -> SchemaInfo;
    /// `DELETE /config/{key}/schema`.
    DeleteConfigSchema(ConfigKey): DeleteConfigSchema -> Deleted;
}

/// `PUT /config/{key}/schema`: the key's JSON Schema, checked against its latest value
/// unless forced.
#[derive(Debug, Clone, PartialEq)]
pub struct PutConfigSchema {
    /// The key.
    pub key: ConfigKey,
    /// The schema (draft 2020-12).
    pub schema: Value,
    /// Set it even if the key's latest value does not match it.
    pub force: bool,
}

impl Endpoint for PutConfigSchema {
    const OPERATION: Operation = Operation::PutConfigSchema;
    type Answer = SchemaInfo;

    fn encode(&self) -> Encoded {
        let mut body = Map::new();
        body.insert("schema".into(), self.schema.clone());
        if self.force {
            body.insert("force".into(), true.into());
        }
        Encoded::named(&self.key).body(body.into())
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let mut body = received.json()?;
        let force = match body.has("force") {
            true => body.bool("force")?,
            false => false,
        };
        let schema = body.take_value("schema")?;
        Ok(Self { key, schema, force })
    }
}

impl Received<'_> {
    /// The query parameter `name`, `true` or `false`; false if not given.
    fn boolean(&self, name: &'static str) -> Result<bool> {
        match self.query(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(Error::invalid(
                name,
                format!("must be true or false, found {other:?}"),
            )),
        }
    }
}

/// `true` as the query sends a boolean parameter, if it is.
fn encode_flag(query: &mut Vec<(&'static str, String)>, name: &'static str, on: bool) {
    if on {
        query.push((name, "true".into()));
    }
}

/// `GET /locks`: the caller's live leases; or `?all=true&after=&limit=`: a page of every
/// user's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListLocks {
    /// Which of every user's locks, instead of the caller's.
    pub all: Option<LockPage>,
}

impl Endpoint for ListLocks {
    const OPERATION: Operation = Operation::ListLocks;
    type Answer = LockList;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::default();
        if let Some(page) = &self.all {
            encode_flag(&mut encoded.query, "all", true);
            if let Some(after) = page.after() {
                encoded.query.push(("after", after.to_string()));
            }
            encoded.query.push(("limit", page.limit().to_string()));
        }
        encoded
    }

    /// `after` and `limit` are checked whether or not `all` is given, and used only with it.
    fn decode(received: &Received<'_>) -> Result<Self> {
        let all = received.boolean("all")?;
        let after = (received.query("after"))
            .map(|after| {
                LockName::parse(after).map_err(|e| match e {
                    Error::Invalid { reason, .. } => Error::invalid("after", reason),
                    other => other,
                })
            })
            .transpose()?;
        let limit = received.number("limit", "a number of locks")?;
        let page = LockPage::new(after, limit)?;
        Ok(Self {
            all: all.then_some(page),
        })
    }
}

/// `GET /config`, or `?deleted=true`: the deleted keys an undelete may bring back.
#[derive(Debug, Clone, PartialEq)]
pub struct ListConfigs {
    /// List the deleted keys instead.
    pub deleted: bool,
}

impl Endpoint for ListConfigs {
    const OPERATION: Operation = Operation::ListConfigs;
    type Answer = ConfigList;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::default();
        encode_flag(&mut encoded.query, "deleted", self.deleted);
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        Ok(Self {
            deleted: received.boolean("deleted")?,
        })
    }
}

/// `DELETE /config/{key}`, or `?purge=true`: erased at once, history and all.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteConfig {
    /// The key.
    pub key: ConfigKey,
    /// Erase it at once (a deleted key too) instead of keeping it for an undelete.
    pub purge: bool,
}

impl Endpoint for DeleteConfig {
    const OPERATION: Operation = Operation::DeleteConfig;
    type Answer = Deleted;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.key);
        encode_flag(&mut encoded.query, "purge", self.purge);
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        Ok(Self {
            key: received.name(ConfigKey::parse)?,
            purge: received.boolean("purge")?,
        })
    }
}

/// `POST /locks/{name}/acquire`.
#[derive(Debug, Clone, PartialEq)]
pub struct AcquireLock {
    /// The lock.
    pub name: LockName,
    /// How long the lease lasts unless renewed.
    pub ttl: Ttl,
    /// Who within the user asks (two clients of one token exclude each other).
    pub client_id: Option<ClientId>,
    /// Extension: how long to wait in the lock's queue while it is held (whole seconds,
    /// at most [`MAX_WAIT`]; zero, the default, is one try).
    pub wait: Duration,
}

impl Endpoint for AcquireLock {
    const OPERATION: Operation = Operation::AcquireLock;
    type Answer = LockResponse;

    fn encode(&self) -> Encoded {
        let mut body = Map::new();
        body.insert("ttl_seconds".into(), self.ttl.as_secs().into());
        if let Some(client_id) = &self.client_id {
            body.insert("client_id".into(), client_id.as_str().into());
        }
        if !self.wait.is_zero() {
            body.insert("wait_seconds".into(), self.wait.as_secs().into());
        }
        Encoded::named(&self.name).body(body.into())
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(LockName::parse)?;
        let body = received.json()?;
        let ttl = Ttl::seconds(body.int("ttl_seconds")?)?;
        let client_id = body
            .optional_str("client_id")?
            .map(ClientId::parse)
            .transpose()?;
        let max = MAX_WAIT.as_secs();
        let wait = match body.optional_int("wait_seconds")? {
            None => 0,
            Some(seconds) => u64::try_from(seconds)
                .ok()
                .filter(|s| *s <= max)
                .ok_or_else(|| {
                    Error::invalid(
                        "wait_seconds",
                        format!("must be 0 to {max} seconds, not {seconds}"),
                    )
                })?,
        };
        Ok(Self {
            name,
            ttl,
            client_id,
            wait: Duration::from_secs(wait),
        })
    }

    /// Safe with a `client_id` (a repeat returns the lease the first made), waiting or not;
    /// a waiting acquire sent again joins the queue anew, at its back.
    fn retry_safe(&self) -> bool {
        self.client_id.is_some()
    }

    fn wait(&self) -> Duration {
        self.wait
    }
}

/// `POST /locks/{name}/release`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseLock {
    /// The lock.
    pub name: LockName,
    /// The lease to end.
    pub lease_id: LeaseId,
}

impl Endpoint for ReleaseLock {
    const OPERATION: Operation = Operation::ReleaseLock;
    type Answer = Released;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.name).body(json!({ "lease_id": self.lease_id.0 }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        Ok(Self {
            name: received.name(LockName::parse)?,
            lease_id: LeaseId(received.json()?.uuid("lease_id")?),
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `POST /locks/{name}/renew`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenewLock {
    /// The lock.
    pub name: LockName,
    /// The lease to extend.
    pub lease_id: LeaseId,
    /// Its new time to live, from now.
    pub ttl: Ttl,
}

impl Endpoint for RenewLock {
    const OPERATION: Operation = Operation::RenewLock;
    type Answer = LockResponse;

    fn encode(&self) -> Encoded {
        let body = json!({ "lease_id": self.lease_id.0, "ttl_seconds": self.ttl.as_secs() });
        Encoded::named(&self.name).body(body)
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(LockName::parse)?;
        let body = received.json()?;
        Ok(Self {
            name,
            lease_id: LeaseId(body.uuid("lease_id")?),
            ttl: Ttl::seconds(body.int("ttl_seconds")?)?,
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `POST /limits/{name}/check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckLimit {
    /// The limit.
    pub name: LimitName,
    /// How many requests a window allows.
    pub policy: RatePolicy,
}

impl Endpoint for CheckLimit {
    const OPERATION: Operation = Operation::CheckLimit;
    type Answer = LimitDecision;

    fn encode(&self) -> Encoded {
        let body = json!({
            "max_requests": self.policy.max_requests(),
            "window_seconds": self.policy.window_seconds(),
        });
        Encoded::named(&self.name).body(body)
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(LimitName::parse)?;
        let body = received.json()?;
        let policy = RatePolicy::new(body.int("max_requests")?, body.int("window_seconds")?)?;
        Ok(Self { name, policy })
    }
}

/// `PUT /flags/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFlag {
    /// The flag.
    pub name: FlagName,
    /// Whether it is on at all.
    pub enabled: bool,
    /// The share of subjects it is on for (all, if none).
    pub percentage: Option<Percentage>,
}

impl Endpoint for SetFlag {
    const OPERATION: Operation = Operation::SetFlag;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        let mut body = Map::new();
        body.insert("enabled".into(), self.enabled.into());
        if let Some(percentage) = self.percentage {
            body.insert("percentage".into(), percentage.get().into());
        }
        Encoded::named(&self.name).body(body.into())
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let body = received.json()?;
        let enabled = body.bool("enabled")?;
        let percentage = body
            .optional_int("percentage")?
            .map(Percentage::new)
            .transpose()?;
        Ok(Self {
            name,
            enabled,
            percentage,
        })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `PATCH /flags/{name}`: turns an existing flag on or off, keeping its percentage.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFlag {
    /// The flag.
    pub name: FlagName,
    /// Whether it is on at all.
    pub enabled: bool,
}

impl Endpoint for PatchFlag {
    const OPERATION: Operation = Operation::PatchFlag;
    type Answer = FlagInfo;

    fn encode(&self) -> Encoded {
        Encoded::named(&self.name).body(json!({ "enabled": self.enabled }))
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let name = received.name(FlagName::parse)?;
        let body = received.json()?;
        let enabled = body.bool("enabled")?;
        // A percentage sent here would be dropped without a word: refused instead.
        if body.has("percentage") {
            return Err(Error::invalid(
                "percentage",
                "is kept by PATCH; PUT the flag to change it",
            ));
        }
        Ok(Self { name, enabled })
    }

    fn retry_safe(&self) -> bool {
        true
    }
}

/// `GET /flags/{name}?subject=`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateFlag {
    /// The flag.
    pub name: FlagName,
    /// Who it is asked for (a rollout's bucket is this subject's).
    pub subject: Option<Subject>,
}

impl Endpoint for EvaluateFlag {
    const OPERATION: Operation = Operation::EvaluateFlag;
    type Answer = FlagEvaluation;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.name);
        if let Some(subject) = &self.subject {
            encoded.query.push(("subject", subject.to_string()));
        }
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        Ok(Self {
            name: received.name(FlagName::parse)?,
            subject: received.query("subject").map(Subject::parse).transpose()?,
        })
    }
}

/// `PUT /config/{key}`, with `If-Match: "N"` or `If-None-Match: *` (or the body's
/// `if_version`) a compare-and-set.
#[derive(Debug, Clone, PartialEq)]
pub struct PutConfig {
    /// The key.
    pub key: ConfigKey,
    /// The new version's value: any JSON.
    pub value: Value,
    /// What the value is for.
    pub description: Option<Description>,
    /// Put only if the key's latest version is this one (0: if the key does not exist).
    pub if_version: Option<u64>,
}

impl Endpoint for PutConfig {
    const OPERATION: Operation = Operation::PutConfig;
    type Answer = ConfigInfo;

    fn encode(&self) -> Encoded {
        let mut body = Map::new();
        body.insert("value".into(), self.value.clone());
        if let Some(description) = &self.description {
            body.insert("description".into(), description.as_str().into());
        }
        let mut encoded = Encoded::named(&self.key).body(body.into());
        encode_if_version(&mut encoded.headers, self.if_version);
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let mut body = received.json()?;
        let description = body
            .optional_str("description")?
            .map(Description::new)
            .transpose()?;
        let if_version = received.if_version(&body)?;
        let value = body.take_value("value")?;
        Ok(Self {
            key,
            value,
            description,
            if_version,
        })
    }
}

/// `POST /config/{key}/rollback`: a kept version put again as the next, with `If-Match`,
/// `If-None-Match` or the body's `if_version` a compare-and-set.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackConfig {
    /// The key.
    pub key: ConfigKey,
    /// The kept version to put again.
    pub version: u64,
    /// Only if the key's latest version is this one.
    pub if_version: Option<u64>,
}

impl Endpoint for RollbackConfig {
    const OPERATION: Operation = Operation::RollbackConfig;
    type Answer = ConfigInfo;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.key).body(json!({ "version": self.version }));
        encode_if_version(&mut encoded.headers, self.if_version);
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let body = received.json()?;
        // Version 0, as on a get, is not found (no version has the number).
        let version = u64::try_from(body.int("version")?)
            .map_err(|_| Error::invalid("version", "must be a version number, not negative"))?;
        let if_version = received.if_version(&body)?;
        Ok(Self {
            key,
            version,
            if_version,
        })
    }
}

/// `GET /config/{key}/diff?from=&to=`: the JSON Patch from one kept version to another.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffConfig {
    /// The key.
    pub key: ConfigKey,
    /// The version the patch applies to.
    pub from: u64,
    /// The version the patch makes.
    pub to: u64,
}

impl Endpoint for DiffConfig {
    const OPERATION: Operation = Operation::DiffConfig;
    type Answer = Patch;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.key);
        encoded.query.push(("from", self.from.to_string()));
        encoded.query.push(("to", self.to.to_string()));
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let version = |name| {
            received
                .counter(name, "a version number")?
                .ok_or_else(|| Error::invalid(name, "is required: a version number"))
        };
        Ok(Self {
            key,
            from: version("from")?,
            to: version("to")?,
        })
    }
}

/// `GET /config/{key}?version=`, or `?wait_for_version=&wait=`: the latest version once it
/// is past `wait_for_version`, or whatever it is when the wait ends.
#[derive(Debug, Clone, PartialEq)]
pub struct GetConfig {
    /// The key.
    pub key: ConfigKey,
    /// The version asked for (the latest, if none).
    pub version: Option<i64>,
    /// Answer the latest version once it is past this one (waiting up to `wait`).
    pub wait_for_version: Option<u64>,
    /// How long to wait for a version past `wait_for_version` (zero: answer at once).
    pub wait: Duration,
}

impl Endpoint for GetConfig {
    const OPERATION: Operation = Operation::GetConfig;
    type Answer = ConfigInfo;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.key);
        if let Some(version) = self.version {
            encoded.query.push(("version", version.to_string()));
        }
        if let Some(version) = self.wait_for_version {
            encoded
                .query
                .push(("wait_for_version", version.to_string()));
        }
        encode_wait(&mut encoded.query, self.wait);
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let version = received.number("version", "an integer")?;
        let mut wait_for_version = received.counter("wait_for_version", "a version number")?;
        let mut wait = received.wait()?;
        if version.is_some() {
            // A version read once never changes: nothing to wait for.
            (wait_for_version, wait) = (None, Duration::ZERO);
        }
        Ok(Self {
            key,
            version,
            wait_for_version,
            wait,
        })
    }

    fn wait(&self) -> Duration {
        self.wait
    }
}

/// `GET /config/{key}/history?after=&limit=`.
#[derive(Debug, Clone, PartialEq)]
pub struct GetConfigHistory {
    /// The key.
    pub key: ConfigKey,
    /// Which versions.
    pub page: HistoryPage,
}

impl Endpoint for GetConfigHistory {
    const OPERATION: Operation = Operation::GetConfigHistory;
    type Answer = History;

    fn encode(&self) -> Encoded {
        let mut encoded = Encoded::named(&self.key);
        encoded.query.push(("after", self.page.after().to_string()));
        encoded.query.push(("limit", self.page.limit().to_string()));
        encoded
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let key = received.name(ConfigKey::parse)?;
        let after = received.number("after", "a version number")?;
        let limit = received.number("limit", "a number of versions")?;
        Ok(Self {
            key,
            page: HistoryPage::new(after, limit)?,
        })
    }
}

/// `GET /events?since=&kind=&prefix=&limit=&wait=`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEvents {
    /// The index of the last event the caller has seen (0: none).
    pub since: u64,
    /// Which events.
    pub filter: EventFilter,
    /// The most events the page holds.
    pub limit: usize,
    /// How long to wait for an event when there is none yet (zero: answer at once).
    pub wait: Duration,
}

impl ListEvents {
    /// How many events a page holds unless asked for fewer or more.
    pub const DEFAULT_LIMIT: usize = 100;
}

impl Endpoint for ListEvents {
    const OPERATION: Operation = Operation::ListEvents;
    type Answer = EventList;

    fn encode(&self) -> Encoded {
        let mut query = vec![("since", self.since.to_string())];
        let kinds = self.filter.kinds();
        if kinds != Kinds::ALL {
            let names: Vec<&str> = kinds.iter().map(EventKind::as_str).collect();
            query.push(("kind", names.join(",")));
        }
        if !self.filter.prefix().is_empty() {
            query.push(("prefix", self.filter.prefix().to_owned()));
        }
        query.push(("limit", self.limit.to_string()));
        encode_wait(&mut query, self.wait);
        Encoded {
            query,
            ..Encoded::default()
        }
    }

    fn decode(received: &Received<'_>) -> Result<Self> {
        let since = received.counter("since", "an event index")?;
        let kinds = match received.query("kind") {
            None => Kinds::ALL,
            Some(list) => Kinds::of(
                list.split(',')
                    .map(|name| {
                        EventKind::from_name(name).ok_or_else(|| {
                            Error::invalid(
                                "kind",
                                format!("must list lock, limit, flag or config, found {name:?}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let prefix = received.query("prefix").unwrap_or("");
        let limit = received.number("limit", "a number of events")?;
        Ok(Self {
            since: since.unwrap_or(0),
            filter: EventFilter::new(kinds, prefix)?,
            limit: limit.unwrap_or(Self::DEFAULT_LIMIT),
            wait: received.wait()?,
        })
    }

    fn wait(&self) -> Duration {
        self.wait
    }
}

impl Encoded {
    /// A request on the thing called `name`.
    fn named(name: &impl std::fmt::Display) -> Self {
        Self {
            name: Some(name.to_string()),
            ..Self::default()
        }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

mod targeting;

pub use targeting::{
    AddFlagRule, DeleteSegment, EvaluateFlagInContext, GetFlagTargeting, GetSegment, ListSegments,
    OfrepEvaluateFlag, OfrepEvaluateFlags, RemoveFlagRule, SetFlagPrerequisites, SetFlagVariants,
    SetSegment,
};
