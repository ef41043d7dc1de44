//! The versioned config store: every put of a key stores version `latest + 1`.
//!
//! Each version keeps its own value, description, `created_at` and `created_by` (the login
//! that put it); as many of the newest as a put is told to keep are kept, and older ones
//! pruned.
//! A put without a description carries the previous version's over; an empty one clears it.
//! A put may expect the key's latest version (compare-and-set; 0: no key), and a rollback
//! puts a kept version's value and description again, as the next version.
//! A deleted key reads as absent (see [`config_delete`](super::config_delete)), and a later
//! put purges what was kept of it and starts again at version 1.
//! A history is read in pages ([`HistoryPage`]), so no read holds a whole history at once.
//! The bytes a user keeps, every kept version of every key, are capped: storage keeps a
//! running total per user, which these rules update with every put, prune and purge; a
//! deleted key's versions count until purged, and a put past the cap purges the owner's
//! deleted keys, the oldest deleted first, to make room before it is refused. A put
//! takes its numbers as it is given them (keys, versions kept, a value's size, bytes kept); a
//! store gives those of its [`Settings`](crate::Settings).

use std::io;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backend::Tx;
use crate::records::config::{lost_version, ConfigHead, ConfigSummary, ConfigVersion};
use crate::records::event::Change;
use crate::records::identity::UserId;
use crate::rules::event;
use crate::rules::schema::{self, Validators};
use crate::values::bounds::{page_limit, Description};
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::{ConfigKey, Login};

/// A key at one version, as a get answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// The key.
    pub key: ConfigKey,
    /// The version's value.
    pub value: Value,
    /// The version's description.
    pub description: Option<String>,
    /// The version.
    pub version: u64,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When this version was put.
    pub updated_at: DateTime<Utc>,
    /// Who put this version (see [`ConfigVersion::created_by`]).
    pub updated_by: Option<Login>,
}

/// Which versions of a key's history to read: at most `limit`, numbered above `after`,
/// oldest first. The default is the first page of [`HistoryPage::MAX_LIMIT`] versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPage {
    after: u64,
    limit: usize,
}

impl HistoryPage {
    /// The most versions one page holds, and how many it holds unless asked for fewer: a
    /// page of the largest values is a few MiB.
    pub const MAX_LIMIT: usize = 100;

    /// The page of at most `limit` versions (1 to [`MAX_LIMIT`](Self::MAX_LIMIT); default
    /// the most) numbered above `after` (default: from the oldest kept).
    pub fn new(after: Option<u64>, limit: Option<u64>) -> Result<Self> {
        let limit = page_limit(limit, Self::MAX_LIMIT, Self::MAX_LIMIT)?;
        let after = after.unwrap_or(0);
        if after > i64::MAX as u64 {
            return Err(Error::invalid(
                "after",
                format!("must be a version number, at most {}", i64::MAX),
            ));
        }
        Ok(Self { after, limit })
    }

    /// The page starts after this version (0: at the oldest kept).
    pub fn after(&self) -> u64 {
        self.after
    }

    /// The most versions the page holds.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Default for HistoryPage {
    fn default() -> Self {
        Self {
            after: 0,
            limit: Self::MAX_LIMIT,
        }
    }
}

/// One page of a key's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigHistory {
    /// The page's versions, oldest first.
    pub versions: Vec<ConfigVersion>,
    /// The next page, of the same limit, if the key has newer versions than this page's.
    pub next: Option<HistoryPage>,
}

/// The numbers a put is bounded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PutBounds {
    /// How many keys an owner may have.
    pub(crate) keys: usize,
    /// How many versions of a key are kept, at least 1.
    pub(crate) history: usize,
    /// The largest value, as compact JSON.
    pub(crate) value_max_bytes: usize,
    /// The most bytes an owner's kept versions may count (see [`stored_bytes`]).
    pub(crate) bytes_per_owner: u64,
}

/// Counts bytes written, so a value's JSON size is known without building the text.
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `value` as compact JSON, in bytes.
pub fn json_size(value: &Value) -> usize {
    let mut count = ByteCount(0);
    serde_json::to_writer(&mut count, value).expect("counting cannot fail");
    count.0
}

/// The bytes a version counts against its owner's [`PutBounds::bytes_per_owner`]: its value
/// as compact JSON (of `value_size` bytes) and its description.
fn stored_bytes(value_size: usize, description: Option<&str>) -> u64 {
    (value_size + description.map_or(0, str::len)) as u64
}

fn entry(key: &ConfigKey, head: &ConfigHead, version: ConfigVersion) -> ConfigEntry {
    ConfigEntry {
        key: key.clone(),
        value: version.value,
        description: version.description,
        version: version.version,
        created_at: head.created_at,
        updated_at: version.created_at,
        updated_by: version.created_by,
    }
}

/// The key's head, unless it does not exist or is deleted: a deleted key reads as absent.
pub(crate) fn head_of(tx: &mut dyn Tx, owner: UserId, key: &ConfigKey) -> Result<ConfigHead> {
    (tx.config_head(owner, key)?)
        .filter(|head| head.deleted_at.is_none())
        .ok_or_else(|| Error::not_found(Resource::Config, key))
}

/// The bytes every kept version of the key counts.
pub(crate) fn bytes_of(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    head: &ConfigHead,
) -> Result<u64> {
    tx.config_bytes_before(owner, key, head.latest + 1)
}

/// The owner's deleted keys (but `key`) to purge, oldest deleted first, so that their bytes
/// free at least `needed` (a deleted key's versions count until it is purged); and the bytes
/// they free. Too few: the byte quota is exceeded.
fn deleted_to_purge(
    tx: &mut dyn Tx,
    bounds: PutBounds,
    owner: UserId,
    key: &ConfigKey,
    needed: u64,
) -> Result<(Vec<ConfigKey>, u64)> {
    let mut deleted: Vec<_> = (tx.config_summaries_of(owner)?.into_iter())
        .filter_map(|s| Some((s.deleted_at?, s.key, s.version)))
        .filter(|(_, k, _)| k != key)
        .collect();
    deleted.sort();
    let (mut keys, mut freed) = (Vec::new(), 0);
    for (_, k, latest) in deleted {
        if freed >= needed {
            break;
        }
        freed += tx.config_bytes_before(owner, &k, latest + 1)?;
        keys.push(k);
    }
    if freed < needed {
        return Err(Error::QuotaExceeded {
            what: Resource::ConfigBytes,
            limit: bounds.bytes_per_owner as usize,
        });
    }
    Ok((keys, freed))
}

fn stored_version(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    version: u64,
) -> Result<ConfigVersion> {
    tx.config_version(owner, key, version)?
        .ok_or_else(|| lost_version(key, version))
}

/// Fails with [`Error::VersionMismatch`] unless the key's latest version (0: it does not
/// exist) is `expected`; any version passes when none is expected.
fn check_expected(key: &ConfigKey, head: Option<&ConfigHead>, expected: Option<u64>) -> Result<()> {
    let current = head.map_or(0, |head| head.latest);
    match expected {
        Some(expected) if expected != current => Err(Error::VersionMismatch {
            key: key.clone(),
            expected,
            current,
        }),
        _ => Ok(()),
    }
}

/// Stores `value` as the key's next version, put by `author`, if the key's latest version is
/// `expected` (compare-and-set; 0: the key does not exist) or none is expected, and the value
/// matches the key's schema, if it has one.
#[allow(clippy::too_many_arguments)] // each is one of the put's inputs
pub(crate) fn put(
    tx: &mut dyn Tx,
    now: Timestamp,
    bounds: PutBounds,
    validators: &Validators,
    owner: UserId,
    author: &Login,
    key: &ConfigKey,
    value: &Value,
    description: Option<&Description>,
    expected: Option<u64>,
) -> Result<ConfigEntry> {
    let size = json_size(value);
    if size > bounds.value_max_bytes {
        return Err(Error::TooLarge {
            field: "value",
            size,
            limit: bounds.value_max_bytes,
        });
    }
    let at = now;
    let now = now.to_datetime();
    // A deleted key's kept versions are purged by a put, which starts again at version 1.
    let (stored, purged) = match tx.config_head(owner, key)? {
        Some(head) if head.deleted_at.is_some() => (None, Some(bytes_of(tx, owner, key, &head)?)),
        live => (live, None),
    };
    check_expected(key, stored.as_ref(), expected)?;
    schema::check_put(tx, validators, owner, key, value)?;
    // The oldest version kept before this put, whose older neighbours it may prune.
    let kept_from = stored.map(|head| head.oldest);
    let (head, description) = match stored {
        Some(head) => {
            let description = match description {
                Some(d) => Some(d.as_str().to_owned()),
                None => tx
                    .config_description(owner, key, head.latest)?
                    .ok_or_else(|| lost_version(key, head.latest))?,
            };
            let latest = head.latest + 1;
            let oldest = head
                .oldest
                .max((latest + 1).saturating_sub(bounds.history as u64));
            (
                ConfigHead {
                    latest,
                    oldest,
                    ..head
                },
                description,
            )
        }
        None if tx.count_configs_of(owner)? >= bounds.keys => {
            return Err(Error::QuotaExceeded {
                what: Resource::Config,
                limit: bounds.keys,
            })
        }
        None => {
            let head = ConfigHead {
                latest: 1,
                oldest: 1,
                created_at: now,
                deleted_at: None,
            };
            (head, description.map(|d| d.as_str().to_owned()))
        }
    };
    let description = description.filter(|d| !d.is_empty());
    let bytes = stored_bytes(size, description.as_deref());
    let pruned = match kept_from {
        Some(oldest) if oldest < head.oldest => tx.config_bytes_before(owner, key, head.oldest)?,
        _ => 0,
    };
    let freed = pruned + purged.unwrap_or(0);
    let mut kept = tx.config_bytes_of(owner)?.saturating_sub(freed) + bytes;
    let mut reclaimed = Vec::new();
    if kept > bounds.bytes_per_owner {
        let needed = kept - bounds.bytes_per_owner;
        let freed;
        (reclaimed, freed) = deleted_to_purge(tx, bounds, owner, key, needed)?;
        kept -= freed;
    }
    if purged.is_some() {
        tx.delete_config(owner, key)?;
    }
    for deleted in &reclaimed {
        tx.delete_config(owner, deleted)?;
    }
    let version = ConfigVersion {
        version: head.latest,
        value: value.clone(),
        description,
        created_at: now,
        created_by: Some(author.clone()),
    };
    tx.put_config_version(owner, key, &version, bytes)?;
    tx.put_config_head(owner, key, &head)?;
    tx.delete_config_versions_before(owner, key, head.oldest)?;
    tx.put_config_bytes_of(owner, kept)?;
    let change = Change::ConfigPut {
        key: key.clone(),
        version: head.latest,
    };
    event::append(tx, owner, at, change)?;
    Ok(entry(key, &head, version))
}

/// Stores a kept version's value and description again, as the key's next version (put by
/// `author`, under the put's bounds and compare-and-set): the history keeps every version.
#[allow(clippy::too_many_arguments)] // each is one of the rollback's inputs
pub(crate) fn rollback(
    tx: &mut dyn Tx,
    now: Timestamp,
    bounds: PutBounds,
    validators: &Validators,
    owner: UserId,
    author: &Login,
    key: &ConfigKey,
    version: u64,
    expected: Option<u64>,
) -> Result<ConfigEntry> {
    let head = head_of(tx, owner, key)?;
    check_expected(key, Some(&head), expected)?;
    let old = kept_version(tx, owner, key, version)?;
    // Stored descriptions were checked when put; an empty one clears the carried-over one.
    let description = Description::new(old.description.unwrap_or_default())?;
    put(
        tx,
        now,
        bounds,
        validators,
        owner,
        author,
        key,
        &old.value,
        Some(&description),
        expected,
    )
}

/// Version `version` of the key, if it is kept; else the key, or the version, is not found.
pub(crate) fn kept_version(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    version: u64,
) -> Result<ConfigVersion> {
    let head = head_of(tx, owner, key)?;
    if !(head.oldest..=head.latest).contains(&version) {
        return Err(Error::not_found(
            Resource::ConfigVersion,
            format!("{key}@{version}"),
        ));
    }
    stored_version(tx, owner, key, version)
}

pub(crate) fn get(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    version: Option<i64>,
) -> Result<ConfigEntry> {
    let head = head_of(tx, owner, key)?;
    let wanted = match version {
        None => head.latest,
        Some(v) => u64::try_from(v)
            .ok()
            .filter(|v| (head.oldest..=head.latest).contains(v))
            .ok_or_else(|| Error::not_found(Resource::ConfigVersion, format!("{key}@{v}")))?,
    };
    let version = stored_version(tx, owner, key, wanted)?;
    Ok(entry(key, &head, version))
}

/// One page of the key's history, as the versions storage shares (a memory backend keeps
/// its own copy: the caller copies each out after the transaction), and the next page.
pub(crate) fn history(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    page: HistoryPage,
) -> Result<(Vec<Arc<ConfigVersion>>, Option<HistoryPage>)> {
    let head = head_of(tx, owner, key)?;
    let versions = tx.config_versions_after(owner, key, page.after, page.limit)?;
    let next = versions
        .last()
        .filter(|last| last.version < head.latest)
        .map(|last| HistoryPage {
            after: last.version,
            ..page
        });
    Ok((versions, next))
}

/// The owner's keys, but deleted ones, by key.
pub(crate) fn list(tx: &mut dyn Tx, owner: UserId) -> Result<Vec<ConfigSummary>> {
    let mut summaries = tx.config_summaries_of(owner)?;
    summaries.retain(|s| s.deleted_at.is_none());
    summaries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(summaries)
}
