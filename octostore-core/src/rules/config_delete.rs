//! Deleting config keys softly: a delete keeps the key's versions for a retention period,
//! while the key reads as absent everywhere (get, history, diff, rollback; listed only when
//! deleted keys are asked for); an undelete within it brings the key back as it was; a purge
//! erases it at once, and so does a delete when the retention is zero. A later put purges
//! what was kept (see [`config::put`]), and a sweep forgets the keys deleted longer ago than
//! the retention ([`forget_expired`]). A deleted key's versions count against its owner's
//! bytes until it is purged; its name does not count against the quota of keys.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::{Retained, Tx};
use crate::records::config::{ConfigHead, ConfigSummary};
use crate::records::event::Change;
use crate::records::identity::UserId;
use crate::rules::config::{self, bytes_of, head_of, ConfigEntry};
use crate::rules::event;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::ConfigKey;

/// Whether a key deleted `at` is still kept at `now`, for `retention`.
fn kept(at: DateTime<Utc>, now: DateTime<Utc>, retention: Duration) -> bool {
    let end = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| at.checked_add_signed(retention));
    end.is_none_or(|end| now < end)
}

/// Erases the key (its head and versions) and frees its bytes.
fn erase(tx: &mut dyn Tx, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
    let freed = bytes_of(tx, owner, key, head)?;
    let kept = tx.config_bytes_of(owner)?.saturating_sub(freed);
    tx.delete_config(owner, key)?;
    tx.put_config_bytes_of(owner, kept)
}

/// Deletes the key: kept for `retention` (for an undelete) while it reads as absent, or
/// erased at once if the retention is zero.
pub(crate) fn delete(
    tx: &mut dyn Tx,
    now: Timestamp,
    retention: Duration,
    owner: UserId,
    key: &ConfigKey,
) -> Result<()> {
    let head = head_of(tx, owner, key)?;
    if retention.is_zero() {
        erase(tx, owner, key, &head)?;
    } else {
        let deleted = ConfigHead {
            deleted_at: Some(now.to_datetime()),
            ..head
        };
        tx.put_config_head(owner, key, &deleted)?;
    }
    event::append(tx, owner, now, Change::ConfigDeleted { key: key.clone() })
}

/// Erases the key at once, whether it is live (a deletion, with its event) or deleted and
/// kept (already told).
pub(crate) fn purge(tx: &mut dyn Tx, now: Timestamp, owner: UserId, key: &ConfigKey) -> Result<()> {
    let head =
        (tx.config_head(owner, key)?).ok_or_else(|| Error::not_found(Resource::Config, key))?;
    erase(tx, owner, key, &head)?;
    if head.deleted_at.is_none() {
        event::append(tx, owner, now, Change::ConfigDeleted { key: key.clone() })?;
    }
    Ok(())
}

/// Brings back a key deleted less than `retention` ago, as it was, within the owner's quota
/// of `keys`; a change like a put (its event names the latest version).
pub(crate) fn undelete(
    tx: &mut dyn Tx,
    now: Timestamp,
    retention: Duration,
    keys: usize,
    owner: UserId,
    key: &ConfigKey,
) -> Result<ConfigEntry> {
    let head = match tx.config_head(owner, key)? {
        Some(head) => head,
        None => return Err(deleted_not_found(key)),
    };
    let Some(deleted_at) = head.deleted_at else {
        return Err(Error::Conflict(format!(
            "config key {key} is not deleted: there is nothing to undelete"
        )));
    };
    if !kept(deleted_at, now.to_datetime(), retention) {
        return Err(deleted_not_found(key));
    }
    if tx.count_configs_of(owner)? >= keys {
        return Err(Error::QuotaExceeded {
            what: Resource::Config,
            limit: keys,
        });
    }
    let head = ConfigHead {
        deleted_at: None,
        ..head
    };
    tx.put_config_head(owner, key, &head)?;
    let change = Change::ConfigPut {
        key: key.clone(),
        version: head.latest,
    };
    event::append(tx, owner, now, change)?;
    config::get(tx, owner, key, None)
}

/// A deleted key not kept (never deleted, purged, or past the retention).
fn deleted_not_found(key: &ConfigKey) -> Error {
    Error::not_found(Resource::DeletedConfig, key)
}

/// The owner's deleted keys still kept for an undelete, by key.
pub(crate) fn list_deleted(
    tx: &mut dyn Tx,
    now: Timestamp,
    retention: Duration,
    owner: UserId,
) -> Result<Vec<ConfigSummary>> {
    let now = now.to_datetime();
    let mut summaries = tx.config_summaries_of(owner)?;
    summaries.retain(|s| s.deleted_at.is_some_and(|at| kept(at, now, retention)));
    summaries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(summaries)
}

/// Erases at most `max` keys deleted `retention` or longer ago; how many, and whether there
/// may be more.
pub(crate) fn forget_expired(
    tx: &mut dyn Tx,
    now: Timestamp,
    retention: Duration,
    max: usize,
) -> Result<Retained<()>> {
    let before = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| now.to_datetime().checked_sub_signed(retention));
    let Some(before) = before else {
        // Longer than time has run: nothing has expired.
        return Ok(Retained {
            deleted: 0,
            next: None,
        });
    };
    // Deleted before or at `before`: a key deleted exactly `retention` ago is no longer kept.
    let before = before + chrono::Duration::nanoseconds(1);
    let expired = tx.configs_deleted_before(before, max)?;
    for (owner, key) in &expired {
        if let Some(head) = tx.config_head(*owner, key)? {
            erase(tx, *owner, key, &head)?;
        }
    }
    Ok(Retained {
        deleted: expired.len(),
        next: (expired.len() == max).then_some(()),
    })
}
