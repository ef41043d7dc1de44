//! Records from SQL rows, written once for every SQL backend.
//!
//! Each SQL backend stores a record in the same columns (instants as nanoseconds since the
//! epoch, ids as 16-byte blobs) and selects them in the order of the `*_columns!` macros, so
//! one decoder per record serves them all; a backend only says how to read one column of its
//! row type ([`Columns`]). Names are validated again on the way out: a row that no longer
//! parses is reported as corrupt storage, never passed on.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::records::config::{
    lost_version, ConfigHead, ConfigSchema, ConfigSummary, ConfigVersion, SchemaDigest,
};
use crate::records::event::{Change, Event, LeaseChange};
use crate::records::flag::Flag;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
use crate::records::lock::{FencingToken, LeaseId, LeaseRecord, NodeId, WaiterRecord};
use crate::records::rate_limit::LimitRecord;
use crate::records::targeting::{self, Segment};
use crate::values::bounds::Percentage;
use crate::values::error::{Error, Result};
use crate::values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, Login, SegmentName,
};

/// The columns [`user`] reads, in order.
macro_rules! user_columns {
    () => {
        "id, login, avatar_url, github_id"
    };
}
/// The columns [`token`] reads, in order.
macro_rules! token_columns {
    () => {
        "hash, id, user_id, created_at"
    };
}
/// The columns [`lease`] reads, in order.
macro_rules! lease_columns {
    () => {
        "name, owner, client_id, lease_id, fencing_token, expires_at"
    };
}
/// The columns [`flag`] reads, in order.
macro_rules! flag_columns {
    () => {
        "name, enabled, percentage, created_at, updated_at, targeting"
    };
}
/// The columns [`segment`] reads, in order.
macro_rules! segment_columns {
    () => {
        "name, description, constraints, created_at, updated_at"
    };
}
/// The columns [`config_head`] reads, in order.
macro_rules! config_head_columns {
    () => {
        "latest, oldest, created_at, deleted_at"
    };
}
/// The columns [`config_version`] reads, in order.
macro_rules! config_version_columns {
    () => {
        "version, value, description, created_at, created_by"
    };
}
/// The columns [`config_schema`] reads, in order.
macro_rules! config_schema_columns {
    () => {
        "digest, updated_at, updated_by, schema"
    };
}
/// The columns [`event`] reads, in order.
macro_rules! event_columns {
    () => {
        "idx, at, change, name, enabled, percentage, number, holder, expires_at"
    };
}
pub(crate) use {
    config_head_columns, config_schema_columns, config_version_columns, event_columns,
    flag_columns, lease_columns, segment_columns, token_columns, user_columns,
};

/// One column of a row, by position, as the few SQL types the backends store.
pub(crate) trait Columns {
    /// A 64-bit integer.
    fn int(&self, i: usize) -> Result<i64>;
    /// A 64-bit integer or NULL.
    fn int_or_null(&self, i: usize) -> Result<Option<i64>>;
    /// A boolean.
    fn boolean(&self, i: usize) -> Result<bool>;
    /// Text.
    fn text(&self, i: usize) -> Result<String>;
    /// Text or NULL.
    fn text_or_null(&self, i: usize) -> Result<Option<String>>;
    /// A blob.
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
}

/// Implements [`Columns`] for a backend's row type by `$column(row, i)`, a function generic
/// over the column's Rust type that reads it with the driver's own conversions.
macro_rules! columns_by {
    ($row:ty, $column:ident) => {
        impl $crate::backend::rows::Columns for $row {
            fn int(&self, i: usize) -> $crate::values::error::Result<i64> {
                $column(self, i)
            }

            fn int_or_null(&self, i: usize) -> $crate::values::error::Result<Option<i64>> {
                $column(self, i)
            }

            fn boolean(&self, i: usize) -> $crate::values::error::Result<bool> {
                $column(self, i)
            }

            fn text(&self, i: usize) -> $crate::values::error::Result<String> {
                $column(self, i)
            }

            fn text_or_null(&self, i: usize) -> $crate::values::error::Result<Option<String>> {
                $column(self, i)
            }

            fn bytes(&self, i: usize) -> $crate::values::error::Result<Vec<u8>> {
                $column(self, i)
            }
        }
    };
}
pub(crate) use columns_by;

/// A row's columns from the `by`th on, as a row of their own: a record read after others.
pub(crate) struct Shifted<'a> {
    pub row: &'a dyn Columns,
    pub by: usize,
}

impl Columns for Shifted<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        self.row.int(self.by + i)
    }

    fn int_or_null(&self, i: usize) -> Result<Option<i64>> {
        self.row.int_or_null(self.by + i)
    }

    fn boolean(&self, i: usize) -> Result<bool> {
        self.row.boolean(self.by + i)
    }

    fn text(&self, i: usize) -> Result<String> {
        self.row.text(self.by + i)
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>> {
        self.row.text_or_null(self.by + i)
    }

    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.row.bytes(self.by + i)
    }
}

/// The error for a stored value that does not decode.
pub(crate) fn corrupt(what: &str) -> Error {
    Error::storage(format!("corrupt {what} in the database"))
}

/// An id as stored: its 16 bytes.
pub(crate) fn id(uuid: Uuid) -> [u8; 16] {
    *uuid.as_bytes()
}

/// An instant as stored: nanoseconds since the epoch.
pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().expect("instants before 2262")
}

pub(crate) fn uuid_at(row: &dyn Columns, i: usize) -> Result<Uuid> {
    Uuid::from_slice(&row.bytes(i)?).map_err(|_| corrupt("id"))
}

fn instant_at(row: &dyn Columns, i: usize) -> Result<DateTime<Utc>> {
    Ok(DateTime::from_timestamp_nanos(row.int(i)?))
}

/// The stored name in column `i`, validated by `parse`.
pub(crate) fn name_at<T>(row: &dyn Columns, i: usize, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse(&row.text(i)?).map_err(|_| corrupt("name"))
}

fn u64_at(row: &dyn Columns, i: usize) -> Result<u64> {
    u64::try_from(row.int(i)?).map_err(|_| corrupt("number"))
}

/// A fencing token, from its column at `i`.
pub(crate) fn fencing_token_at(row: &dyn Columns, i: usize) -> Result<FencingToken> {
    u64_at(row, i).map(FencingToken)
}

/// `max` as a SQL `LIMIT`.
pub(crate) fn sql_limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// A stored count.
pub(crate) fn count(n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| corrupt("count"))
}

/// A stored number of bytes.
pub(crate) fn bytes(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| corrupt("config bytes"))
}

/// A user, from [`user_columns!`].
pub(crate) fn user(row: &dyn Columns) -> Result<User> {
    Ok(User {
        id: UserId(uuid_at(row, 0)?),
        login: name_at(row, 1, Login::parse)?,
        avatar_url: row.text_or_null(2)?,
        source: match row.int_or_null(3)? {
            Some(id) => UserSource::Github {
                github_id: id as u64,
            },
            None => UserSource::Local,
        },
    })
}

/// The GitHub id column of a user.
pub(crate) fn github_id(user: &User) -> Option<i64> {
    match user.source {
        UserSource::Github { github_id } => Some(github_id as i64),
        UserSource::Local => None,
    }
}

/// A token, from [`token_columns!`].
pub(crate) fn token(row: &dyn Columns) -> Result<TokenRecord> {
    Ok(TokenRecord {
        hash: TokenHash(
            row.bytes(0)?
                .try_into()
                .map_err(|_| corrupt("token hash"))?,
        ),
        id: uuid_at(row, 1)?,
        user: UserId(uuid_at(row, 2)?),
        created_at: instant_at(row, 3)?,
    })
}

/// A lease, from [`lease_columns!`].
pub(crate) fn lease(row: &dyn Columns) -> Result<LeaseRecord> {
    Ok(LeaseRecord {
        name: name_at(row, 0, LockName::parse)?,
        owner: UserId(uuid_at(row, 1)?),
        client_id: row
            .text_or_null(2)?
            .map(|c| ClientId::parse(&c).map_err(|_| corrupt("client id")))
            .transpose()?,
        lease_id: LeaseId(uuid_at(row, 3)?),
        fencing_token: fencing_token_at(row, 4)?,
        expires_at: instant_at(row, 5)?,
    })
}

/// A waiter: ticket, owner, node.
pub(crate) fn waiter(row: &dyn Columns) -> Result<WaiterRecord> {
    Ok(WaiterRecord {
        ticket: u64_at(row, 0)?,
        owner: UserId(uuid_at(row, 1)?),
        node: NodeId(uuid_at(row, 2)?),
    })
}

/// A record with its name: the name in column 0 (validated by `parse`), the record read by
/// `record` from column 1 on.
pub(crate) fn named<N, T>(
    row: &dyn Columns,
    parse: fn(&str) -> Result<N>,
    record: fn(&dyn Columns, usize) -> Result<T>,
) -> Result<(N, T)> {
    Ok((name_at(row, 0, parse)?, record(row, 1)?))
}

/// A rate-limit record, from its one column at `i`.
pub(crate) fn limit_record(row: &dyn Columns, i: usize) -> Result<LimitRecord> {
    LimitRecord::from_bytes(&row.bytes(i)?)
}

/// A limit with its key, from the columns `owner, name, record`.
pub(crate) fn keyed_limit(row: &dyn Columns) -> Result<(UserId, LimitName, LimitRecord)> {
    Ok((
        UserId(uuid_at(row, 0)?),
        name_at(row, 1, LimitName::parse)?,
        limit_record(row, 2)?,
    ))
}

/// A flag, from [`flag_columns!`].
pub(crate) fn flag(row: &dyn Columns) -> Result<Flag> {
    Ok(Flag {
        name: name_at(row, 0, FlagName::parse)?,
        enabled: row.boolean(1)?,
        percentage: row
            .int_or_null(2)?
            .map(|p| Percentage::new(p).map_err(|_| corrupt("percentage")))
            .transpose()?,
        created_at: instant_at(row, 3)?,
        updated_at: instant_at(row, 4)?,
        targeting: match row.text_or_null(5)? {
            Some(text) => Arc::new(targeting::decode(&text)?),
            None => Arc::default(),
        },
    })
}

/// A segment, from [`segment_columns!`].
pub(crate) fn segment(row: &dyn Columns) -> Result<Segment> {
    Ok(Segment {
        name: name_at(row, 0, SegmentName::parse)?,
        description: row.text_or_null(1)?,
        constraints: targeting::decode(&row.text(2)?)?,
        created_at: instant_at(row, 3)?,
        updated_at: instant_at(row, 4)?,
    })
}

/// A config head, from [`config_head_columns!`] starting at column `at`.
pub(crate) fn config_head(row: &dyn Columns, at: usize) -> Result<ConfigHead> {
    Ok(ConfigHead {
        latest: u64_at(row, at)?,
        oldest: u64_at(row, at + 1)?,
        created_at: instant_at(row, at + 2)?,
        deleted_at: row.int_or_null(at + 3)?.map(DateTime::from_timestamp_nanos),
    })
}

/// A config version, from [`config_version_columns!`].
pub(crate) fn config_version(row: &dyn Columns) -> Result<ConfigVersion> {
    Ok(ConfigVersion {
        version: u64_at(row, 0)?,
        value: serde_json::from_str::<Value>(&row.text(1)?).map_err(|_| corrupt("config value"))?,
        description: row.text_or_null(2)?,
        created_at: instant_at(row, 3)?,
        created_by: row
            .text_or_null(4)?
            .map(|login| Login::parse(&login).map_err(|_| corrupt("login")))
            .transpose()?,
    })
}

/// A digest, from its column `i`.
pub(crate) fn schema_digest(row: &dyn Columns, i: usize) -> Result<SchemaDigest> {
    let bytes = row.bytes(i)?;
    Ok(SchemaDigest(
        bytes.try_into().map_err(|_| corrupt("schema digest"))?,
    ))
}

/// A config schema, from [`config_schema_columns!`].
pub(crate) fn config_schema(row: &dyn Columns) -> Result<ConfigSchema> {
    Ok(ConfigSchema {
        digest: schema_digest(row, 0)?,
        updated_at: instant_at(row, 1)?,
        updated_by: row
            .text_or_null(2)?
            .map(|login| Login::parse(&login).map_err(|_| corrupt("login")))
            .transpose()?,
        schema: serde_json::from_str::<Value>(&row.text(3)?)
            .map_err(|_| corrupt("config schema"))?,
    })
}

/// A config key's summary, from its key, [`config_head_columns!`] and its latest version's
/// `description, created_at` (NULL if the version is missing: storage lost it).
pub(crate) fn config_summary(row: &dyn Columns) -> Result<ConfigSummary> {
    let key = name_at(row, 0, ConfigKey::parse)?;
    let head = config_head(row, 1)?;
    let Some(updated_at) = row.int_or_null(6)? else {
        return Err(lost_version(&key, head.latest));
    };
    Ok(ConfigSummary {
        key,
        description: row.text_or_null(5)?,
        version: head.latest,
        created_at: head.created_at,
        updated_at: DateTime::from_timestamp_nanos(updated_at),
        deleted_at: head.deleted_at,
    })
}

/// An event's change as stored: its columns `change, name, enabled, percentage, number,
/// holder, expires_at` (`change` a code, `number` a config version or a fencing token; the
/// columns a change has no use for NULL).
pub(crate) struct StoredChange<'a> {
    pub(crate) change: i64,
    pub(crate) name: &'a str,
    pub(crate) enabled: Option<i64>,
    pub(crate) percentage: Option<i64>,
    pub(crate) number: Option<i64>,
    pub(crate) holder: Option<&'a str>,
    pub(crate) expires_at: Option<i64>,
}

/// The codes of the `change` column.
const FLAG_SET: i64 = 1;
const FLAG_DELETED: i64 = 2;
const CONFIG_PUT: i64 = 3;
const CONFIG_DELETED: i64 = 4;
const LIMIT_RESET: i64 = 5;
const LOCK_ACQUIRED: i64 = 6;
const LOCK_RENEWED: i64 = 7;
const LOCK_RELEASED: i64 = 8;
const LOCK_EXPIRED: i64 = 9;

impl<'a> StoredChange<'a> {
    /// `change`'s columns.
    pub(crate) fn of(change: &'a Change) -> Self {
        let named = |change, name: &'a str| StoredChange {
            change,
            name,
            enabled: None,
            percentage: None,
            number: None,
            holder: None,
            expires_at: None,
        };
        let lease = |change, lease: &'a LeaseChange| StoredChange {
            number: Some(lease.fencing_token.0 as i64),
            holder: Some(lease.holder.as_str()),
            expires_at: Some(nanos(lease.expires_at)),
            ..named(change, lease.name.as_str())
        };
        match change {
            Change::FlagSet {
                name,
                enabled,
                percentage,
            } => StoredChange {
                enabled: Some(i64::from(*enabled)),
                percentage: percentage.map(|p| i64::from(p.get())),
                ..named(FLAG_SET, name.as_str())
            },
            Change::FlagDeleted { name } => named(FLAG_DELETED, name.as_str()),
            Change::ConfigPut { key, version } => StoredChange {
                number: Some(*version as i64),
                ..named(CONFIG_PUT, key.as_str())
            },
            Change::ConfigDeleted { key } => named(CONFIG_DELETED, key.as_str()),
            Change::LimitReset { name } => named(LIMIT_RESET, name.as_str()),
            Change::LockAcquired(l) => lease(LOCK_ACQUIRED, l),
            Change::LockRenewed(l) => lease(LOCK_RENEWED, l),
            Change::LockReleased(l) => lease(LOCK_RELEASED, l),
            Change::LockExpired(l) => lease(LOCK_EXPIRED, l),
        }
    }
}

/// An event, from [`event_columns!`].
pub(crate) fn event(row: &dyn Columns) -> Result<Event> {
    let present = |value: Option<i64>| value.ok_or_else(|| corrupt("event"));
    let lease = || -> Result<LeaseChange> {
        Ok(LeaseChange {
            name: name_at(row, 3, LockName::parse)?,
            holder: Login::parse(&row.text_or_null(7)?.ok_or_else(|| corrupt("event"))?)
                .map_err(|_| corrupt("login"))?,
            fencing_token: FencingToken(
                u64::try_from(present(row.int_or_null(6)?)?).map_err(|_| corrupt("number"))?,
            ),
            expires_at: DateTime::from_timestamp_nanos(present(row.int_or_null(8)?)?),
        })
    };
    let change = match row.int(2)? {
        FLAG_SET => Change::FlagSet {
            name: name_at(row, 3, FlagName::parse)?,
            enabled: present(row.int_or_null(4)?)? != 0,
            percentage: row
                .int_or_null(5)?
                .map(|p| Percentage::new(p).map_err(|_| corrupt("percentage")))
                .transpose()?,
        },
        FLAG_DELETED => Change::FlagDeleted {
            name: name_at(row, 3, FlagName::parse)?,
        },
        CONFIG_PUT => Change::ConfigPut {
            key: name_at(row, 3, ConfigKey::parse)?,
            version: u64::try_from(present(row.int_or_null(6)?)?).map_err(|_| corrupt("number"))?,
        },
        CONFIG_DELETED => Change::ConfigDeleted {
            key: name_at(row, 3, ConfigKey::parse)?,
        },
        LIMIT_RESET => Change::LimitReset {
            name: name_at(row, 3, LimitName::parse)?,
        },
        LOCK_ACQUIRED => Change::LockAcquired(lease()?),
        LOCK_RENEWED => Change::LockRenewed(lease()?),
        LOCK_RELEASED => Change::LockReleased(lease()?),
        LOCK_EXPIRED => Change::LockExpired(lease()?),
        _ => return Err(corrupt("event")),
    };
    Ok(Event {
        index: u64_at(row, 0)?,
        at: instant_at(row, 1)?,
        change,
    })
}
