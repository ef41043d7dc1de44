//! The one error type of the crate. Each variant is one kind of answer a caller acts on
//! differently; the HTTP layer maps each to one status code, the CLI to one exit code.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::values::names::{ConfigKey, FlagName, LockName, Login};

/// What an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A lock lease.
    Lock,
    /// A rate limit.
    Limit,
    /// A feature flag.
    Flag,
    /// A segment of flag constraints.
    Segment,
    /// One rule of a flag, by its index.
    FlagRule,
    /// A config key.
    Config,
    /// One version of a config key.
    ConfigVersion,
    /// A config key's JSON Schema.
    ConfigSchema,
    /// A deleted config key kept for an undelete.
    DeletedConfig,
    /// The bytes of every kept version of a user's config keys.
    ConfigBytes,
    /// A user.
    User,
    /// A bearer token.
    Token,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.counted(1))
    }
}

impl Resource {
    /// Its name for `n` of them: "1 lock", "3 locks".
    pub fn counted(self, n: usize) -> &'static str {
        match (self, n == 1) {
            (Resource::Lock, true) => "lock",
            (Resource::Limit, true) => "rate limit",
            (Resource::Flag, true) => "feature flag",
            (Resource::Segment, true) => "segment",
            (Resource::FlagRule, true) => "flag rule",
            (Resource::Config, true) => "config key",
            (Resource::ConfigVersion, true) => "config version",
            (Resource::ConfigSchema, true) => "config schema",
            (Resource::DeletedConfig, true) => "deleted config key",
            (Resource::User, true) => "user",
            (Resource::Token, true) => "token",
            (_, _) => self.plural(),
        }
    }

    /// Its name for a number of them other than one.
    fn plural(self) -> &'static str {
        match self {
            Resource::Lock => "locks",
            Resource::Limit => "rate limits",
            Resource::Flag => "feature flags",
            Resource::Segment => "segments",
            Resource::FlagRule => "flag rules",
            Resource::Config => "config keys",
            Resource::ConfigVersion => "config versions",
            Resource::ConfigSchema => "config schemas",
            Resource::DeletedConfig => "deleted config keys",
            Resource::ConfigBytes => "bytes of config values and descriptions (every kept version of every key; delete keys to free some)",
            Resource::User => "users",
            Resource::Token => "tokens",
        }
    }
}

/// Who holds a lock whose lease the caller named but does not hold (release, renew): told
/// with [`Error::NotFound`], since anyone may read who holds a lock (`lock_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeldBy {
    /// No live lease: the one named expired or was released (or never was).
    Nobody,
    /// A live lease other than the one named: another user's, or another of the caller's.
    AnotherLease,
}

/// The error under a [`Error::Storage`] or [`Error::Remote`] (a driver's, the operating
/// system's): shared, so that the one failure of a group can be reported to each of its
/// callers.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in OctoStore.
///
/// A denied rate-limit check is not an error but a [`crate::Decision`]; a lock held by
/// someone else is, because the caller did not get what it asked for. Kinds may be added:
/// match with a `_` arm. [`std::error::Error::source`] leads to the driver's or the operating
/// system's error under a storage or remote failure; print the chain to show all of it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A request parameter is out of the contract's bounds (HTTP 422, exit code 2).
    Invalid {
        /// The field, as named in the API (`name`, `ttl_seconds`...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The thing asked for does not exist, or is not the caller's (HTTP 404, exit code 3).
    NotFound {
        /// What kind of thing.
        what: Resource,
        /// Its name (for a config version, `key@version`).
        name: String,
        /// For a lock's lease: who holds the lock instead (`None` for other resources, and
        /// from a server that does not say).
        held_by: Option<HeldBy>,
    },
    /// The lock is held by another caller (HTTP 409, exit code 1).
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
    Conflict(String),
    /// A compare-and-set found the config key at another version than the one expected
    /// (HTTP 412, exit code 1); nothing was written.
    VersionMismatch {
        /// The key.
        key: ConfigKey,
        /// The version expected: 0 for a key that does not exist.
        expected: u64,
        /// The key's latest version: 0 if it does not exist.
        current: u64,
    },
    /// The token is unknown, revoked or rotated away (HTTP 401, exit code 4).
    Unauthorized,
    /// A flag's answer depends on the subject (a rollout under 100 % or a split between
    /// variants) and the evaluation context has none (HTTP 422, exit code 2).
    SubjectRequired {
        /// The flag whose rollout or variants needed it.
        flag: FlagName,
    },
    /// A config value does not match its key's JSON Schema (HTTP 422, exit code 2); nothing
    /// was written.
    SchemaViolation {
        /// The key.
        key: ConfigKey,
        /// The JSON pointer of the value's part that fails (empty: the whole value).
        pointer: String,
        /// The JSON pointer, in the schema, of the rule it breaks (`/properties/port/maximum`).
        rule: String,
        /// Why, in words.
        reason: String,
    },
    /// The caller already owns as many of these as its quota allows (HTTP 429).
    QuotaExceeded {
        /// What the quota counts.
        what: Resource,
        /// The quota.
        limit: usize,
    },
    /// A value is larger than the store accepts (HTTP 413).
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
    Storage {
        /// What failed.
        message: String,
        /// Why: the driver's or the operating system's error, if there is one.
        source: Option<Source>,
    },
    /// The store could not take the operation in time (the file held by another process past
    /// the caller's deadline, too many operations queued): it was not run, and may be sent
    /// again (HTTP 503 with `Retry-After`, exit code 5).
    Unavailable(String),
    /// Talking to a server failed: it could not be reached, did not answer in time, or
    /// answered what no OctoStore server answers; whether the operation took effect is
    /// unknown unless the message says. Made by a remote client (such as `octostore-http`'s
    /// `Client`), never sent by a server (one that met it would answer HTTP 502; exit code 5).
    Remote {
        /// What went wrong, e.g. `server unreachable: …`.
        message: String,
        /// Why: the transport's error, if there is one.
        source: Option<Source>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::NotFound {
                name,
                held_by: Some(HeldBy::Nobody),
                ..
            } => write!(
                f,
                "lock {name} is not held (its lease expired or was released)"
            ),
            Error::NotFound {
                name,
                held_by: Some(HeldBy::AnotherLease),
                ..
            } => write!(f, "lock {name} is held by another lease"),
            Error::NotFound { what, name, .. } => write!(f, "{what} {name:?} not found"),
            Error::LockHeld {
                name,
                holder,
                expires_at,
            } => write!(f, "lock {name} is held by {holder} until {expires_at}"),
            Error::Conflict(message) => f.write_str(message),
            Error::VersionMismatch {
                key,
                expected,
                current,
            } => match (expected, current) {
                (0, current) => write!(
                    f,
                    "config key {key} already exists, at version {current}: nothing was written"
                ),
                (expected, 0) => write!(
                    f,
                    "config key {key} does not exist (expected at version {expected}): nothing \
                     was written"
                ),
                (expected, current) => write!(
                    f,
                    "config key {key} is at version {current}, not {expected} as expected: \
                     nothing was written"
                ),
            },
            Error::SchemaViolation {
                key,
                pointer,
                rule,
                reason,
            } => {
                let at = if pointer.is_empty() {
                    "the whole value"
                } else {
                    pointer
                };
                write!(
                    f,
                    "the value does not match config key {key}'s schema: at {at}, rule {rule}: \
                     {reason}"
                )
            }
            Error::Unauthorized => f.write_str("invalid or missing bearer token"),
            Error::SubjectRequired { flag } => write!(
                f,
                "flag {flag} rolls out by subject and the evaluation context has none: give a \
                 subject (OpenFeature's targetingKey)"
            ),
            Error::QuotaExceeded { what, limit } => write!(
                f,
                "quota exceeded: a user may own at most {limit} {}",
                what.counted(*limit)
            ),
            Error::TooLarge { field, size, limit } => write!(
                f,
                "{field} is {size} bytes, more than the limit of {limit} bytes"
            ),
            Error::Storage { message, .. } => write!(f, "storage failure: {message}"),
            Error::Unavailable(reason) => {
                write!(f, "store busy, the operation was not run: {reason}")
            }
            Error::Remote { message, .. } => f.write_str(message),
        }
    }
}

/// Written out rather than derived: a derived `source` would be the [`Arc`] itself, which
/// displays as the error inside but is not it, so `downcast_ref::<rusqlite::Error>()` and the
/// like would fail.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Storage { source, .. } | Error::Remote { source, .. } => source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
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
            held_by: None,
        }
    }

    /// An [`Error::NotFound`] of a lease of lock `name`, which `held_by` holds instead.
    pub fn lease_not_found(name: &LockName, held_by: HeldBy) -> Self {
        Error::NotFound {
            what: Resource::Lock,
            name: name.to_string(),
            held_by: Some(held_by),
        }
    }

    /// An [`Error::Storage`] with no error under it.
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Storage`] caused by `source`, which [`std::error::Error::source`] returns.
    pub fn storage_caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// An [`Error::Remote`] with no error under it.
    pub fn remote(message: impl Into<String>) -> Self {
        Error::Remote {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Remote`] caused by `source`, which [`std::error::Error::source`] returns.
    pub fn remote_caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Remote {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

impl Error {
    /// The same error again, for another caller of one failed group or queue: the variants
    /// that storage reports are rebuilt as they are (sharing their source), any other is
    /// reported as a storage failure naming it.
    pub(crate) fn again(&self) -> Self {
        match self {
            Error::Unavailable(reason) => Error::Unavailable(reason.clone()),
            Error::Storage { message, source } => Error::Storage {
                message: message.clone(),
                source: source.clone(),
            },
            Error::Remote { message, source } => Error::Remote {
                message: message.clone(),
                source: source.clone(),
            },
            other => Error::storage(other.to_string()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line, `error: source: source of the source…`, leaving out
/// a source whose text the line already holds (a message that repeats its cause's).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn a_storage_failure_keeps_its_cause_as_its_source() {
        let e = Error::storage_caused("cannot open f", io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "storage failure: cannot open f");
        let source = e.source().expect("a source");
        assert_eq!(source.to_string(), "disk on fire");
        assert!(source.downcast_ref::<io::Error>().is_some(), "{source:?}");
        assert_eq!(
            Chain(&e).to_string(),
            "storage failure: cannot open f: disk on fire"
        );
        assert!(Error::storage("lost").source().is_none());
    }

    #[test]
    fn a_remote_failure_shows_its_message_alone() {
        let e = Error::remote_caused("server unreachable: x", io::Error::other("refused"));
        assert_eq!(e.to_string(), "server unreachable: x");
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        assert_eq!(Chain(&e).to_string(), "server unreachable: x: refused");
    }

    #[test]
    fn again_shares_the_source() {
        let e = Error::storage_caused("the commit failed", io::Error::other("EIO"));
        let again = e.again();
        assert_eq!(Chain(&again).to_string(), Chain(&e).to_string());
        match (&e, &again) {
            (
                Error::Storage {
                    source: Some(first),
                    ..
                },
                Error::Storage {
                    source: Some(second),
                    ..
                },
            ) => assert!(Arc::ptr_eq(first, second)),
            other => panic!("{other:?}"),
        }
        let held = Error::Conflict("taken".into()).again();
        assert!(matches!(&held, Error::Storage { message, source: None } if message == "taken"));
    }

    #[test]
    fn each_kind_reads_as_before() {
        let lock = LockName::parse("deploy").unwrap();
        let holder = Login::parse("bob").unwrap();
        let expires_at = DateTime::from_timestamp(30, 0).unwrap();
        for (error, shown) in [
            (
                Error::invalid("ttl_seconds", "must be positive"),
                "invalid ttl_seconds: must be positive",
            ),
            (
                Error::not_found(Resource::Flag, "f"),
                "feature flag \"f\" not found",
            ),
            (
                Error::lease_not_found(&LockName::parse("x").unwrap(), HeldBy::Nobody),
                "lock x is not held (its lease expired or was released)",
            ),
            (
                Error::lease_not_found(&LockName::parse("x").unwrap(), HeldBy::AnotherLease),
                "lock x is held by another lease",
            ),
            (
                Error::LockHeld {
                    name: lock,
                    holder,
                    expires_at,
                },
                "lock deploy is held by bob until 1970-01-01 00:00:30 UTC",
            ),
            (Error::Conflict("login taken".into()), "login taken"),
            (Error::Unauthorized, "invalid or missing bearer token"),
            (
                Error::QuotaExceeded {
                    what: Resource::Lock,
                    limit: 3,
                },
                "quota exceeded: a user may own at most 3 locks",
            ),
            (
                Error::QuotaExceeded {
                    what: Resource::Flag,
                    limit: 1,
                },
                "quota exceeded: a user may own at most 1 feature flag",
            ),
            (
                Error::TooLarge {
                    field: "value",
                    size: 9,
                    limit: 8,
                },
                "value is 9 bytes, more than the limit of 8 bytes",
            ),
            (Error::storage("lost"), "storage failure: lost"),
            (
                Error::Unavailable("queue full".into()),
                "store busy, the operation was not run: queue full",
            ),
            (
                Error::remote("server unreachable: x"),
                "server unreachable: x",
            ),
        ] {
            assert_eq!(error.to_string(), shown);
        }
    }

    #[test]
    fn a_chain_leaves_out_a_source_its_line_already_holds() {
        let inner = io::Error::other("database is locked");
        let e = Error::storage_caused("sqlite: database is locked", inner);
        assert_eq!(
            Chain(&e).to_string(),
            "storage failure: sqlite: database is locked"
        );
    }
}
