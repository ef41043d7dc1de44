//! The one error type of the crate. Each variant is one kind of answer a caller acts on
//! differently; the HTTP layer maps each to one status code, the CLI to one exit code.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::names::{LockName, Login};

/// What an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A lock lease.
    Lock,
    /// A rate limit.
    Limit,
    /// A feature flag.
    Flag,
    /// A config key.
    Config,
    /// One version of a config key.
    ConfigVersion,
    /// The bytes of every kept version of a user's config keys.
    ConfigBytes,
    /// A user.
    User,
    /// A bearer token.
    Token,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Lock => "lock",
            Resource::Limit => "rate limit",
            Resource::Flag => "feature flag",
            Resource::Config => "config key",
            Resource::ConfigVersion => "config version",
            Resource::ConfigBytes => "bytes of config values and descriptions (every kept version of every key; delete keys to free some)",
            Resource::User => "user",
            Resource::Token => "token",
        })
    }
}

/// Everything that can go wrong in OctoStore.
///
/// A denied rate-limit check is not an error but a [`crate::Decision`]; a lock held by
/// someone else is, because the caller did not get what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request parameter is out of the contract's bounds (HTTP 422, exit code 2).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as named in the API (`name`, `ttl_seconds`...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The thing asked for does not exist, or is not the caller's (HTTP 404, exit code 3).
    #[error("{what} {name:?} not found")]
    NotFound {
        /// What kind of thing.
        what: Resource,
        /// Its name (for a config version, `key@version`).
        name: String,
    },
    /// The lock is held by another caller (HTTP 409, exit code 1).
    #[error("lock {name} is held by {holder} until {expires_at}")]
    LockHeld {
        /// The lock.
        name: LockName,
        /// Who holds it.
        holder: Login,
        /// When the current lease ends unless renewed.
        expires_at: DateTime<Utc>,
    },
    /// The request contradicts stored state other than a lock, e.g. a login already
    /// taken (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The token is unknown, revoked or rotated away (HTTP 401, exit code 4).
    #[error("invalid or missing bearer token")]
    Unauthorized,
    /// The caller already owns as many of these as its quota allows (HTTP 429).
    #[error("quota exceeded: a user may own at most {limit} of {what}")]
    QuotaExceeded {
        /// What the quota counts.
        what: Resource,
        /// The quota.
        limit: usize,
    },
    /// A value is larger than the store accepts (HTTP 413).
    #[error("{field} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The storage backend failed; the operation may or may not have taken effect only if
    /// the backend says so in the message (HTTP 500, exit code 5).
    #[error("storage failure: {0}")]
    Storage(String),
    /// The store could not take the operation in time (the file held by another process past
    /// the caller's deadline, too many operations queued): it was not run, and may be sent
    /// again (HTTP 503 with `Retry-After`, exit code 5).
    #[error("store busy, the operation was not run: {0}")]
    Unavailable(String),
}

impl Error {
    /// An [`Error::Invalid`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// An [`Error::NotFound`] for `what` called `name`.
    pub fn not_found(what: Resource, name: impl fmt::Display) -> Self {
        Error::NotFound {
            what,
            name: name.to_string(),
        }
    }
}

impl Error {
    /// The same error again, for another caller of one failed group or queue: the variants
    /// that storage reports are rebuilt as they are, any other is reported as a storage
    /// failure naming it.
    pub(crate) fn again(&self) -> Self {
        match self {
            Error::Unavailable(reason) => Error::Unavailable(reason.clone()),
            Error::Storage(reason) => Error::Storage(reason.clone()),
            other => Error::Storage(other.to_string()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
