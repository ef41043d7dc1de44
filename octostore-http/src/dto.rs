//! The JSON of the API: the one place that knows the wire shape of each request and answer.
//! The server serializes these, the client deserializes them.
//!
//! Field names and types follow `openapi.yaml`; optional fields with no value are omitted,
//! never `null`.

use chrono::{DateTime, Utc};
use octostore_core::{
    AcquireStatus, ClientId, ConfigEntry, ConfigKey, ConfigSummary, ConfigVersion, Decision,
    FencingToken, Flag, FlagName, Lease, LeaseId, LimitName, LimitSummary, LockGrant, LockName,
    Login, Percentage, RatePolicy, Resource, Result, User,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// An instant as chrono serializes it (RFC 3339, UTC as `Z`, as many fractional digits as
/// it has: none, 3, 6 or 9), formatted into a string first: chrono's own `Serialize` writes
/// it character by character through serde_json's escaping writer, which costs more.
fn rfc3339<S: serde::Serializer>(
    at: &DateTime<Utc>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `status` of a lock answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    Acquired,
    Held,
    Available,
    Released,
}

/// A live lease: the answer to acquire, renew, and status of a held lock.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockResponse {
    pub status: LockState,
    pub name: String,
    pub lease_id: Uuid,
    pub fencing_token: u64,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    pub holder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl LockResponse {
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
        }
    }

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
        }
        .into_lease()
    }
}

/// The status of a lock nobody holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockNotHeld {
    pub status: LockState,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One of the caller's leases in a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub name: String,
    /// Extension: the caller's own login, so a list item is a whole lease.
    pub holder: String,
    pub lease_id: Uuid,
    pub fencing_token: u64,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
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
        }
    }
}

impl LockInfo {
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

#[derive(Debug, Serialize, Deserialize)]
pub struct LockList {
    pub locks: Vec<LockInfo>,
    pub total: usize,
}

/// The 409 answer to an acquire.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockConflict {
    pub error: String,
    /// Always [`ErrorCode::LockHeld`].
    pub code: ErrorCode,
    pub lock: ConflictingLock,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConflictingLock {
    pub name: String,
    pub holder: String,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Released {
    pub status: LockState,
    pub message: String,
}

/// The answer to a rate-limit check or status.
#[derive(Debug, Serialize, Deserialize)]
pub struct LimitDecision {
    pub allowed: bool,
    pub remaining: u32,
    #[serde(serialize_with = "rfc3339")]
    pub reset_at: DateTime<Utc>,
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

#[derive(Debug, Serialize, Deserialize)]
pub struct LimitInfo {
    pub name: String,
    pub max_requests: u32,
    pub window_seconds: u32,
    pub current_count: u32,
    pub remaining: u32,
    pub allowed: bool,
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

#[derive(Debug, Serialize, Deserialize)]
pub struct LimitList {
    pub limits: Vec<LimitInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LimitReset {
    pub reset: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlagInfo {
    pub name: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Flag> for FlagInfo {
    fn from(f: &Flag) -> Self {
        Self {
            name: f.name.to_string(),
            enabled: f.enabled,
            percentage: f.percentage.map(Percentage::get),
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

impl FlagInfo {
    pub fn into_flag(self) -> Result<Flag> {
        Ok(Flag {
            name: FlagName::parse(&self.name)?,
            enabled: self.enabled,
            percentage: self
                .percentage
                .map(|p| Percentage::new(p.into()))
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlagList {
    pub flags: Vec<FlagInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlagEvaluation {
    pub name: String,
    pub enabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigInfo {
    pub key: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version: u64,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
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
        }
    }
}

impl ConfigInfo {
    pub fn into_entry(self) -> Result<ConfigEntry> {
        Ok(ConfigEntry {
            key: ConfigKey::parse(&self.key)?,
            value: self.value,
            description: self.description,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u64,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<ConfigVersion> for VersionInfo {
    fn from(v: ConfigVersion) -> Self {
        Self {
            version: v.version,
            value: v.value,
            description: v.description,
            created_at: v.created_at,
        }
    }
}

impl From<VersionInfo> for ConfigVersion {
    fn from(v: VersionInfo) -> Self {
        ConfigVersion {
            version: v.version,
            value: v.value,
            description: v.description,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct History {
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigListItem {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version: u64,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<ConfigSummary> for ConfigListItem {
    fn from(c: ConfigSummary) -> Self {
        Self {
            key: c.key.to_string(),
            description: c.description,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl ConfigListItem {
    pub fn into_summary(self) -> Result<ConfigSummary> {
        Ok(ConfigSummary {
            key: ConfigKey::parse(&self.key)?,
            description: self.description,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigList {
    pub configs: Vec<ConfigListItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NewToken {
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub token: String,
    pub user: UserInfo,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserInfo {
    pub login: String,
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
        }
    }
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
    /// 503: this server has no GitHub sign-in configured.
    SignInNotConfigured,
    /// A code this client does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The HTTP status every answer with this code has.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ValidationFailed => 422,
            ErrorCode::Unauthorized | ErrorCode::SignInFailed => 401,
            ErrorCode::NotFound | ErrorCode::NoSuchPath => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::LockHeld | ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::QuotaExceeded | ErrorCode::TooManySignIns => 429,
            ErrorCode::StorageFailure | ErrorCode::Other => 500,
            ErrorCode::GithubUnavailable => 502,
            ErrorCode::StoreBusy | ErrorCode::SignInNotConfigured => 503,
        }
    }
}

/// Each [`Resource`] and the `resource` of an error answer that names it.
const RESOURCES: [(Resource, &str); 8] = [
    (Resource::Lock, "lock"),
    (Resource::Limit, "limit"),
    (Resource::Flag, "flag"),
    (Resource::Config, "config"),
    (Resource::ConfigVersion, "config_version"),
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
