//! The JSON of the API: the one place that knows the wire shape of each request and answer.
//! The server serializes these, the client deserializes them.
//!
//! Field names and types follow `openapi.yaml`; optional fields with no value are omitted,
//! never `null`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use octostore_core::{
    AcquireStatus, Change, ClientId, ConfigEntry, ConfigKey, ConfigSchema, ConfigSummary,
    ConfigVersion, Decision, Error, Event, EventKind, EventPage, FencingToken, Flag, FlagName,
    HeldBy, Lease, LeaseChange, LeaseId, LimitName, LimitSummary, ListedLock, LockGrant, LockName,
    Login, Percentage, Prerequisite, RatePolicy, Resource, Result, Rule, Targeting, User, Variant,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod targeting;

pub use targeting::{
    constraints_of, context_json, context_of, payload_value, ConstraintBody, EvaluationInfo,
    OfrepBulk, OfrepErrorCode, OfrepEvaluation, OfrepFailure, OfrepFlag, RuleBody, SegmentInfo,
    SegmentList, TARGETING_KEY,
};

/// An instant as chrono serializes it (RFC 3339, UTC as `Z`, as many fractional digits as
/// it has: none, 3, 6 or 9), formatted into a string first: chrono's own `Serialize` writes
/// it character by character through serde_json's escaping writer, which costs more.
fn rfc3339<S: serde::Serializer>(
    at: &DateTime<Utc>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// An optional instant as [`rfc3339`] writes one (only called for `Some`: the field is
/// omitted without a value).
fn rfc3339_some<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// `status` of a lock answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// `acquired`: this acquire made a new lease.
    Acquired,
    /// `held`: the lease is live and was not made by this request (an acquire by its holder,
    /// a renew, or a lock's status).
    Held,
    /// `available`: nobody holds the lock (its status).
    Available,
    /// `released`: the lease was released.
    Released,
}

/// A live lease: the answer to acquire, renew, and status of a held lock.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockResponse {
    /// `acquired` when this acquire made the lease, `held` otherwise.
    pub status: LockState,
    /// The lock's name.
    pub name: String,
    /// The lease's id, which releases and renews it.
    pub lease_id: Uuid,
    /// The lease's fencing token: greater than every token granted before for this lock.
    pub fencing_token: u64,
    /// When the lease ends unless renewed (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The holder's login.
    pub holder: String,
    /// Extension: the `client_id` the lease was acquired with; omitted without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Extension, in a lock's status only: how many acquires wait in the lock's queue on
    /// this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiters: Option<usize>,
}

impl LockResponse {
    /// The answer for `lease`, as made by an acquire that answered `status` (renew and
    /// status answer [`AcquireStatus::Held`]).
    pub fn new(status: AcquireStatus, lease: &Lease) -> Self {
        Self {
            status: match status {
                AcquireStatus::Acquired => LockState::Acquired,
                AcquireStatus::Held => LockState::Held,
            },
            name: lease.name.to_string(),
            lease_id: lease.lease_id.0,
            fencing_token: lease.fencing_token.0,
            expires_at: lease.expires_at,
            holder: lease.holder.to_string(),
            client_id: lease.client_id.as_ref().map(ToString::to_string),
            waiters: None,
        }
    }

    /// The acquire's grant (`held`, `available` and `released` read as
    /// [`AcquireStatus::Held`]); a name, holder or client id the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_grant(self) -> Result<LockGrant> {
        let status = match self.status {
            LockState::Acquired => AcquireStatus::Acquired,
            _ => AcquireStatus::Held,
        };
        Ok(LockGrant {
            status,
            lease: self.into_lease()?,
        })
    }

    /// The lease, parsed as a list item is ([`LockInfo::into_lease`]).
    pub fn into_lease(self) -> Result<Lease> {
        LockInfo {
            name: self.name,
            holder: self.holder,
            lease_id: self.lease_id,
            fencing_token: self.fencing_token,
            expires_at: self.expires_at,
            client_id: self.client_id,
            waiters: None,
        }
        .into_lease()
    }
}

/// The answer to a lock's status: its live lease, or that it is available.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LockStatusAnswer {
    /// Held: the live lease.
    Held(LockResponse),
    /// Not held by any live lease.
    Available(LockNotHeld),
}

/// The status of a lock nobody holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockNotHeld {
    /// Always `available`.
    pub status: LockState,
    /// The lock's name.
    pub name: String,
    /// A message for people ("Lock not currently held"); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extension: how many acquires wait in the lock's queue on this server (it is free, so
    /// the first is about to take it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiters: Option<usize>,
}

/// A lease in a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// Extension: the login of the lease's owner (the caller's, unless `all=true`), so a
    /// list item is a whole lease.
    pub holder: String,
    /// The lease's id, which releases and renews it.
    pub lease_id: Uuid,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// When the lease ends unless renewed (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// Extension: the `client_id` the lease was acquired with; omitted without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Extension, with `all=true` only: how many acquires wait in the lock's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiters: Option<usize>,
}

impl From<&Lease> for LockInfo {
    fn from(lease: &Lease) -> Self {
        Self {
            name: lease.name.to_string(),
            holder: lease.holder.to_string(),
            lease_id: lease.lease_id.0,
            fencing_token: lease.fencing_token.0,
            expires_at: lease.expires_at,
            client_id: lease.client_id.as_ref().map(ToString::to_string),
            waiters: None,
        }
    }
}

impl From<&ListedLock> for LockInfo {
    fn from(listed: &ListedLock) -> Self {
        Self {
            waiters: Some(listed.waiters),
            ..Self::from(&listed.lease)
        }
    }
}

impl LockInfo {
    /// The lease; a name, holder or client id the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_lease(self) -> Result<Lease> {
        Ok(Lease {
            name: LockName::parse(&self.name)?,
            holder: Login::parse(&self.holder)?,
            client_id: self.client_id.as_deref().map(ClientId::parse).transpose()?,
            lease_id: LeaseId(self.lease_id),
            fencing_token: FencingToken(self.fencing_token),
            expires_at: self.expires_at,
        })
    }
}

/// The caller's live leases (`GET /locks`), or a page of every user's (`?all=true`).
#[derive(Debug, Serialize, Deserialize)]
pub struct LockList {
    /// Each live lease the caller holds, or every user's in the page.
    pub locks: Vec<LockInfo>,
    /// How many leases `locks` holds.
    pub total: usize,
    /// Extension, with `all=true`: the `after` of the next page; omitted at the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The 409 answer to an acquire.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockConflict {
    /// A message for people ("Lock already held").
    pub error: String,
    /// Always [`ErrorCode::LockHeld`].
    pub code: ErrorCode,
    /// The lease that holds the lock.
    pub lock: ConflictingLock,
}

impl LockConflict {
    /// The answer when `holder`'s lease, ending at `expires_at` unless renewed, holds the lock
    /// `name` (what [`Error::LockHeld`](octostore_core::Error::LockHeld) says).
    pub fn new(name: &LockName, holder: &Login, expires_at: DateTime<Utc>) -> Self {
        Self {
            error: "Lock already held".into(),
            code: ErrorCode::LockHeld,
            lock: ConflictingLock {
                name: name.to_string(),
                holder: holder.to_string(),
                expires_at,
            },
        }
    }
}

/// The lease in the way of an acquire ([`LockConflict::lock`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConflictingLock {
    /// The lock's name.
    pub name: String,
    /// The current holder's login.
    pub holder: String,
    /// When the holder's lease ends unless renewed (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// The answer to a release.
#[derive(Debug, Serialize, Deserialize)]
pub struct Released {
    /// Always `released`.
    pub status: LockState,
    /// A message for people ("Lock released").
    pub message: String,
}

/// The answer to a rate-limit check or status.
#[derive(Debug, Serialize, Deserialize)]
pub struct LimitDecision {
    /// Whether the request is allowed (a check counted it).
    pub allowed: bool,
    /// How many more checks the window allows now.
    pub remaining: u32,
    /// When `remaining` next grows (RFC 3339; now when the window counts nothing).
    #[serde(serialize_with = "rfc3339")]
    pub reset_at: DateTime<Utc>,
    /// Whole seconds until a check would be allowed (at least 1); present only when
    /// `allowed` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl From<&Decision> for LimitDecision {
    fn from(d: &Decision) -> Self {
        Self {
            allowed: d.allowed,
            remaining: d.remaining,
            reset_at: d.reset_at,
            retry_after_seconds: d.retry_after_seconds,
        }
    }
}

impl From<LimitDecision> for Decision {
    fn from(d: LimitDecision) -> Self {
        Decision {
            allowed: d.allowed,
            remaining: d.remaining,
            reset_at: d.reset_at,
            retry_after_seconds: d.retry_after_seconds,
        }
    }
}

/// One of the caller's rate limits in a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct LimitInfo {
    /// The limit's name.
    pub name: String,
    /// The most checks allowed in a window (the latest check's).
    pub max_requests: u32,
    /// The window's length in seconds (the latest check's).
    pub window_seconds: u32,
    /// How many allowed checks the window counts now.
    pub current_count: u32,
    /// How many more checks the window allows now.
    pub remaining: u32,
    /// Whether a check now would be allowed.
    pub allowed: bool,
    /// When `remaining` next grows (RFC 3339; now when the window counts nothing).
    #[serde(serialize_with = "rfc3339")]
    pub reset_at: DateTime<Utc>,
    /// Extension: as in a check's answer, present when a check would be denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl From<&LimitSummary> for LimitInfo {
    fn from(l: &LimitSummary) -> Self {
        Self {
            name: l.name.to_string(),
            max_requests: l.policy.max_requests(),
            window_seconds: l.policy.window_seconds(),
            current_count: l.current_count,
            remaining: l.decision.remaining,
            allowed: l.decision.allowed,
            reset_at: l.decision.reset_at,
            retry_after_seconds: l.decision.retry_after_seconds,
        }
    }
}

impl LimitInfo {
    /// The limit; a name or policy the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_summary(self) -> Result<LimitSummary> {
        Ok(LimitSummary {
            name: LimitName::parse(&self.name)?,
            policy: RatePolicy::new(self.max_requests.into(), self.window_seconds.into())?,
            current_count: self.current_count,
            decision: Decision {
                allowed: self.allowed,
                remaining: self.remaining,
                reset_at: self.reset_at,
                retry_after_seconds: self.retry_after_seconds,
            },
        })
    }
}

/// The caller's rate limits (`GET /limits`).
#[derive(Debug, Serialize, Deserialize)]
pub struct LimitList {
    /// Each limit the store knows for the caller.
    pub limits: Vec<LimitInfo>,
}

/// The answer to a rate limit's reset.
#[derive(Debug, Serialize, Deserialize)]
pub struct LimitReset {
    /// Always true: the limit was forgotten.
    pub reset: bool,
}

/// A feature flag: the answer to a set, and an item of a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct FlagInfo {
    /// The flag's name.
    pub name: String,
    /// Whether the flag is on (for the subjects its `percentage` admits).
    pub enabled: bool,
    /// The rollout percentage, 0 to 100; omitted when the flag has none (everyone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    /// When the flag was first set (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the flag was last set (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Its rules, in order; omitted when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Its variants; omitted when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The flags it requires; omitted when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
}

impl From<&Flag> for FlagInfo {
    fn from(f: &Flag) -> Self {
        Self {
            name: f.name.to_string(),
            enabled: f.enabled,
            percentage: f.percentage.map(Percentage::get),
            created_at: f.created_at,
            updated_at: f.updated_at,
            rules: f.targeting.rules.clone(),
            variants: f.targeting.variants.clone(),
            prerequisites: f.targeting.prerequisites.clone(),
        }
    }
}

impl FlagInfo {
    /// The flag; a name or percentage the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_flag(self) -> Result<Flag> {
        Ok(Flag {
            name: FlagName::parse(&self.name)?,
            enabled: self.enabled,
            percentage: self
                .percentage
                .map(|p| Percentage::new(p.into()))
                .transpose()?,
            targeting: Arc::new(Targeting {
                rules: self.rules,
                variants: self.variants,
                prerequisites: self.prerequisites,
            }),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The caller's feature flags (`GET /flags`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FlagList {
    /// Each flag the caller has set.
    pub flags: Vec<FlagInfo>,
}

/// A flag evaluated for one subject (`GET /flags/{name}`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FlagEvaluation {
    /// The flag's name.
    pub name: String,
    /// Whether the flag is on for the subject (its percentage rollout considered).
    pub enabled: bool,
}

/// The answer to a flag's or a config key's delete.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deleted {
    /// Always true: the flag, or the key with all its history, is gone.
    pub deleted: bool,
}

/// A config key at one version: the answer to a put and a get (`ConfigEntry` in the
/// contract).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigInfo {
    /// The config key.
    pub key: String,
    /// The stored JSON value (any JSON value, `null` included).
    pub value: Value,
    /// The version's description; omitted when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The version's number (the first is 1).
    pub version: u64,
    /// When the key was created (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When this version was put (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Extension: the login that put this version; omitted when unknown (a version stored
    /// before writers were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl From<ConfigEntry> for ConfigInfo {
    fn from(c: ConfigEntry) -> Self {
        Self {
            key: c.key.to_string(),
            value: c.value,
            description: c.description,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            updated_by: c.updated_by.map(|login| login.to_string()),
        }
    }
}

impl ConfigInfo {
    /// The entry; a key the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_entry(self) -> Result<ConfigEntry> {
        Ok(ConfigEntry {
            key: ConfigKey::parse(&self.key)?,
            value: self.value,
            description: self.description,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            updated_by: self.updated_by.as_deref().map(Login::parse).transpose()?,
        })
    }
}

/// A config key's JSON Schema (`/config/{key}/schema`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// The config key.
    pub key: String,
    /// The schema (draft 2020-12).
    pub schema: Value,
    /// When it was set (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// The login that set it; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl SchemaInfo {
    /// The schema of `key`, as answered.
    pub fn new(key: &ConfigKey, schema: ConfigSchema) -> Self {
        Self {
            key: key.to_string(),
            schema: schema.schema,
            updated_at: schema.updated_at,
            updated_by: schema.updated_by.map(|login| login.to_string()),
        }
    }

    /// The schema; a login the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_schema(self) -> Result<ConfigSchema> {
        Ok(ConfigSchema {
            digest: octostore_core::rules::schema::digest(&self.schema),
            schema: self.schema,
            updated_at: self.updated_at,
            updated_by: self.updated_by.as_deref().map(Login::parse).transpose()?,
        })
    }
}

/// One kept version of a config key, in its history.
#[derive(Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version's number.
    pub version: u64,
    /// The JSON value this version stored.
    pub value: Value,
    /// The version's description; omitted when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When this version was put (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Extension: the login that put this version; omitted when unknown (a version stored
    /// before writers were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<ConfigVersion> for VersionInfo {
    fn from(v: ConfigVersion) -> Self {
        Self {
            version: v.version,
            value: v.value,
            description: v.description,
            created_at: v.created_at,
            created_by: v.created_by.map(|login| login.to_string()),
        }
    }
}

impl VersionInfo {
    /// The version; a login the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_version(self) -> Result<ConfigVersion> {
        Ok(ConfigVersion {
            version: self.version,
            value: self.value,
            description: self.description,
            created_at: self.created_at,
            created_by: self.created_by.as_deref().map(Login::parse).transpose()?,
        })
    }
}

/// One page of a config key's history (`GET /config/{key}/history`; a `Link` header names
/// the next page).
#[derive(Debug, Serialize, Deserialize)]
pub struct History {
    /// The page's versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One of the caller's config keys in a list: its latest version, without the value.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigListItem {
    /// The config key.
    pub key: String,
    /// The latest version's description; omitted when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The latest version's number.
    pub version: u64,
    /// When the key was created (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the latest version was put (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Extension: when the key was deleted, for a deleted key (`?deleted=true`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_some"
    )]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<ConfigSummary> for ConfigListItem {
    fn from(c: ConfigSummary) -> Self {
        Self {
            key: c.key.to_string(),
            description: c.description,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            deleted_at: c.deleted_at,
        }
    }
}

impl ConfigListItem {
    /// The summary; a key the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_summary(self) -> Result<ConfigSummary> {
        Ok(ConfigSummary {
            key: ConfigKey::parse(&self.key)?,
            description: self.description,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        })
    }
}

/// The caller's config keys (`GET /config`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigList {
    /// Each key the caller has.
    pub configs: Vec<ConfigListItem>,
}

/// The answer to a token's rotation (`POST /auth/token/rotate`).
#[derive(Debug, Serialize, Deserialize)]
pub struct NewToken {
    /// The new bearer token; the one that asked no longer works.
    pub token: String,
}

/// The answer to a GitHub sign-in's callback (`GET /auth/github/callback`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedIn {
    /// The bearer token for API access.
    pub token: String,
    /// The user signed in.
    pub user: UserInfo,
}

/// A user, as a sign-in answers it.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's login (their GitHub username).
    pub login: String,
    /// The URL of their GitHub avatar; omitted when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        Self {
            login: u.login.to_string(),
            avatar_url: u.avatar_url.clone(),
        }
    }
}

/// Every error answer but a lock held ([`LockConflict`]): what went wrong in words, as a
/// [`ErrorCode`], and the facts a program needs, each in a field of its own.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// What went wrong, for a program: one code for each kind of error.
    pub code: ErrorCode,
    /// Always words: the reason a value is refused, a store busy, or what to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The request field at fault (`validation_failed`, `payload_too_large`), as the API
    /// names it (`ttl_seconds`, `body`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What kind of thing (`not_found`, `quota_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The name of the thing not found (a config version: `key@version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The bound passed: how many a user may own (`quota_exceeded`), or bytes
    /// (`payload_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The size in bytes of the value refused (`payload_too_large`, when the store refused
    /// it: a body refused by the server's cap was not read whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Who holds the lock instead, when the lease named to release or renew is not found
    /// (`not_found` of a lock): `nobody` or `another_lease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_held_by: Option<String>,
    /// The version a compare-and-set expected (`version_mismatch`; 0: no key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// The key's latest version (`version_mismatch`; 0: the key does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// The JSON pointer of the value's part that breaks the schema (`schema_violation`;
    /// empty: the whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The JSON pointer, in the schema, of the rule broken (`schema_violation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ErrorBody {
    /// An error of `code` with words only.
    pub fn new(code: ErrorCode, error: impl Into<String>, details: Option<String>) -> Self {
        Self {
            error: error.into(),
            code,
            details,
            field: None,
            resource: None,
            name: None,
            limit: None,
            size: None,
            lock_held_by: None,
            expected_version: None,
            current_version: None,
            pointer: None,
            rule: None,
        }
    }
}

/// The answer of `GET /ready`: the store answered a read.
#[derive(Debug, Serialize, Deserialize)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
}

/// The `code` of an error answer: stable, one for each kind of error, each answered with one
/// HTTP status ([`ErrorCode::status`]). A client meeting a code it does not know (a newer
/// server's) sees [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 422: a value of the request is out of the API's bounds (`field`, `details`: why).
    ValidationFailed,
    /// 401: the bearer token is missing, unknown, revoked or rotated away.
    Unauthorized,
    /// 404: the lock, limit, flag, config key or version does not exist, or is not the
    /// caller's (`resource`, `name`).
    NotFound,
    /// 404: the API has no such path (is the base URL an OctoStore server's?).
    NoSuchPath,
    /// 405: the path does not answer this method (`Allow` lists those it does).
    MethodNotAllowed,
    /// 408: the request body did not arrive within the server's body timeout.
    RequestTimeout,
    /// 409: the lock is held by another lease (the answer is a [`LockConflict`]).
    LockHeld,
    /// 409: the request contradicts what is stored, other than a held lock.
    Conflict,
    /// 412: a compare-and-set found the config key at another version (`name`: the key;
    /// `expected_version`, `current_version`: 0 for no key); nothing was written.
    VersionMismatch,
    /// 422: a config value does not match its key's JSON Schema (`name`: the key; `pointer`:
    /// where in the value; `rule`: which rule of the schema; `details`: why); nothing was
    /// written.
    SchemaViolation,
    /// 422: the flag (`name`) rolls out by subject or splits between variants, and the
    /// evaluation context has no subject (`targetingKey`).
    SubjectRequired,
    /// 413: the body, or a value in it, is larger than accepted (`field`, `limit`, `size`).
    PayloadTooLarge,
    /// 429: the caller owns as many of `resource` as its quota allows (`limit`).
    QuotaExceeded,
    /// 500: the store failed; whether the operation took effect is unknown.
    StorageFailure,
    /// 503 with `Retry-After`: the store could not take the operation in time; it was not
    /// run and may be sent again (`details`: why).
    StoreBusy,
    /// 401: a GitHub sign-in did not go through (`details`: what to do).
    SignInFailed,
    /// 429 with `Retry-After`: too many sign-ins begun from one address.
    TooManySignIns,
    /// 502: GitHub could not be reached, or refused this server's settings.
    GithubUnavailable,
    /// 404: this server has no GitHub sign-in configured.
    SignInNotConfigured,
    /// 503 (`GET /ready`): the store failed a read or did not answer it in time (`details`:
    /// why).
    NotReady,
    /// A code this client does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The HTTP status every answer with this code has.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ValidationFailed
            | ErrorCode::SchemaViolation
            | ErrorCode::SubjectRequired => 422,
            ErrorCode::Unauthorized | ErrorCode::SignInFailed => 401,
            ErrorCode::NotFound | ErrorCode::NoSuchPath | ErrorCode::SignInNotConfigured => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::LockHeld | ErrorCode::Conflict => 409,
            ErrorCode::VersionMismatch => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::QuotaExceeded | ErrorCode::TooManySignIns => 429,
            ErrorCode::StorageFailure | ErrorCode::Other => 500,
            ErrorCode::GithubUnavailable => 502,
            ErrorCode::StoreBusy | ErrorCode::NotReady => 503,
        }
    }
}

/// Each [`Resource`] and the `resource` of an error answer that names it.
const RESOURCES: [(Resource, &str); 12] = [
    (Resource::Lock, "lock"),
    (Resource::Limit, "limit"),
    (Resource::Flag, "flag"),
    (Resource::Segment, "segment"),
    (Resource::FlagRule, "flag_rule"),
    (Resource::Config, "config"),
    (Resource::ConfigVersion, "config_version"),
    (Resource::DeletedConfig, "deleted_config"),
    (Resource::ConfigSchema, "config_schema"),
    (Resource::ConfigBytes, "config_bytes"),
    (Resource::User, "user"),
    (Resource::Token, "token"),
];

/// The `resource` of an error answer about `resource`.
pub fn resource_code(resource: Resource) -> &'static str {
    RESOURCES
        .iter()
        .find(|(r, _)| *r == resource)
        .map_or("other", |(_, code)| code)
}

/// The [`Resource`] an error answer's `resource` names, if it is one this client knows.
pub fn resource_of(code: &str) -> Option<Resource> {
    RESOURCES.iter().find(|(_, c)| *c == code).map(|(r, _)| *r)
}

/// The `lock_held_by` of an error answer saying `held_by`.
pub fn held_by_code(held_by: HeldBy) -> &'static str {
    match held_by {
        HeldBy::Nobody => "nobody",
        HeldBy::AnotherLease => "another_lease",
    }
}

/// The [`HeldBy`] an error answer's `lock_held_by` says, if it is one this client knows.
pub fn held_by_of(code: &str) -> Option<HeldBy> {
    [HeldBy::Nobody, HeldBy::AnotherLease]
        .into_iter()
        .find(|held_by| held_by_code(*held_by) == code)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);
        let second = Utc.with_ymd_and_hms(2026, 11, 28, 9, 5, 7).unwrap();
        for nanos in [0, 1, 1_000, 120_000_000, 123_000, 123_456_789, 999_999_999] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let theirs = serde_json::to_string(&at).unwrap();
            assert_eq!(serde_json::to_string(&Ours(at)).unwrap(), theirs);
        }
        let at = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            serde_json::to_string(&Ours(at)).unwrap(),
            serde_json::to_string(&at).unwrap()
        );
    }
}

/// A page of the change log (`GET /events`).
#[derive(Debug, Serialize, Deserialize)]
pub struct EventList {
    /// The events after `since` the caller may see, oldest first; none when `resync`.
    pub events: Vec<EventInfo>,
    /// The index to ask from next (`since`).
    pub next: u64,
    /// True when the log no longer holds every event after `since` (pruned, or `since` is
    /// not of this log): re-read the current state, then ask from `next`.
    pub resync: bool,
}

impl From<EventPage> for EventList {
    fn from(page: EventPage) -> Self {
        Self {
            events: page.events.iter().map(EventInfo::from).collect(),
            next: page.next,
            resync: page.resync,
        }
    }
}

impl EventList {
    /// The page; an event the core rejects is its
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_page(self) -> Result<EventPage> {
        Ok(EventPage {
            events: (self.events.into_iter())
                .map(EventInfo::into_event)
                .collect::<Result<_>>()?,
            next: self.next,
            resync: self.resync,
        })
    }
}

/// One event of the change log: a change of a lock, limit, flag or config key.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventInfo {
    /// Its place in the store's log: every later change has a larger one.
    pub index: u64,
    /// When the change was made (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// `lock`, `limit`, `flag` or `config`.
    pub kind: String,
    /// What happened: a flag `set` or `deleted`, a config `put` or `deleted`, a limit
    /// `reset`, a lock's lease `acquired`, `renewed`, `released` or `expired`.
    pub action: String,
    /// The lock's, limit's or flag's name, or the config key.
    pub name: String,
    /// A flag `set`: whether it is on; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A flag `set`: its percentage; omitted otherwise, and when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    /// A config `put`: the new version; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// A lock's event: the login of the lease's holder; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// A lock's event: the lease's fencing token; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// A lock's event: when the lease ends (or ended) unless renewed (RFC 3339); omitted
    /// otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_some"
    )]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Event> for EventInfo {
    fn from(e: &Event) -> Self {
        let mut info = Self {
            index: e.index,
            at: e.at,
            kind: e.change.kind().as_str().to_owned(),
            action: e.change.action().to_owned(),
            name: e.change.name().to_owned(),
            enabled: None,
            percentage: None,
            version: None,
            holder: None,
            fencing_token: None,
            expires_at: None,
        };
        match &e.change {
            Change::FlagSet {
                enabled,
                percentage,
                ..
            } => {
                info.enabled = Some(*enabled);
                info.percentage = percentage.map(Percentage::get);
            }
            Change::ConfigPut { version, .. } => info.version = Some(*version),
            Change::LockAcquired(lease)
            | Change::LockRenewed(lease)
            | Change::LockReleased(lease)
            | Change::LockExpired(lease) => {
                info.holder = Some(lease.holder.to_string());
                info.fencing_token = Some(lease.fencing_token.0);
                info.expires_at = Some(lease.expires_at);
            }
            Change::FlagDeleted { .. }
            | Change::ConfigDeleted { .. }
            | Change::LimitReset { .. } => {}
        }
        info
    }
}

impl EventInfo {
    /// The event; a kind, action or field the core does not know is
    /// [`Error::Invalid`](octostore_core::Error::Invalid).
    pub fn into_event(self) -> Result<Event> {
        fn given<T>(value: Option<T>, field: &'static str) -> Result<T> {
            value.ok_or_else(|| Error::invalid(field, "missing from the event"))
        }
        let kind = EventKind::from_name(&self.kind)
            .ok_or_else(|| Error::invalid("kind", format!("unknown: {:?}", self.kind)))?;
        let name = self.name.as_str();
        let lease = || -> Result<LeaseChange> {
            Ok(LeaseChange {
                name: LockName::parse(name)?,
                holder: Login::parse(&given(self.holder.clone(), "holder")?)?,
                fencing_token: FencingToken(given(self.fencing_token, "fencing_token")?),
                expires_at: given(self.expires_at, "expires_at")?,
            })
        };
        let change = match (kind, self.action.as_str()) {
            (EventKind::Flag, "set") => Change::FlagSet {
                name: FlagName::parse(name)?,
                enabled: given(self.enabled, "enabled")?,
                percentage: (self.percentage)
                    .map(|p| Percentage::new(p.into()))
                    .transpose()?,
            },
            (EventKind::Flag, "deleted") => Change::FlagDeleted {
                name: FlagName::parse(name)?,
            },
            (EventKind::Config, "put") => Change::ConfigPut {
                key: ConfigKey::parse(name)?,
                version: given(self.version, "version")?,
            },
            (EventKind::Config, "deleted") => Change::ConfigDeleted {
                key: ConfigKey::parse(name)?,
            },
            (EventKind::Limit, "reset") => Change::LimitReset {
                name: LimitName::parse(name)?,
            },
            (EventKind::Lock, "acquired") => Change::LockAcquired(lease()?),
            (EventKind::Lock, "renewed") => Change::LockRenewed(lease()?),
            (EventKind::Lock, "released") => Change::LockReleased(lease()?),
            (EventKind::Lock, "expired") => Change::LockExpired(lease()?),
            (_, action) => {
                let kind = kind.as_str();
                return Err(Error::invalid(
                    "action",
                    format!("unknown for a {kind} event: {action:?}"),
                ));
            }
        };
        Ok(Event {
            index: self.index,
            at: self.at,
            change,
        })
    }
}
