//! Feature flags with percentage rollouts.
//!
//! A subject's bucket, 1 to 100, is `murmur3_32("<flag>:<subject>", seed 0) % 100 + 1`, as
//! Unleash computes it, so any SDK can reproduce it. A subject is enabled iff its bucket is at
//! most the percentage: the same subject always gets the same answer, and raising the
//! percentage only ever adds subjects.

use std::io::Read;

use chrono::{DateTime, Utc};

use crate::backend::Tx;
use crate::bounds::Percentage;
use crate::error::{Error, Resource, Result};
use crate::identity::UserId;
use crate::names::{FlagName, Subject};

/// A feature flag as set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag.
    pub name: FlagName,
    /// Off for everyone when false.
    pub enabled: bool,
    /// When set, only subjects whose bucket is at most this see the flag on.
    pub percentage: Option<Percentage>,
    /// When the flag was first set.
    pub created_at: DateTime<Utc>,
    /// When the flag was last set.
    pub updated_at: DateTime<Utc>,
}

impl Flag {
    /// Whether the flag is on for `subject`.
    pub fn is_enabled_for(&self, subject: &Subject) -> bool {
        self.enabled
            && self
                .percentage
                .is_none_or(|p| bucket(&self.name, subject) <= p.get())
    }
}

/// The subject's bucket for the flag, 1 to 100.
///
/// ```
/// use octostore_core::{flag_bucket, FlagName, Subject};
///
/// let flag = FlagName::parse("new-checkout").unwrap();
/// let bucket = flag_bucket(&flag, &Subject::parse("user-42").unwrap());
/// assert!((1..=100).contains(&bucket));
/// ```
pub fn bucket(flag: &FlagName, subject: &Subject) -> u8 {
    let mut key = flag
        .as_str()
        .as_bytes()
        .chain(&b":"[..])
        .chain(subject.as_str().as_bytes());
    let hash = murmur3::murmur3_32(&mut key, 0).expect("reading from memory cannot fail");
    (hash % 100 + 1) as u8
}

pub(crate) fn set(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    quota: usize,
    owner: UserId,
    name: &FlagName,
    enabled: bool,
    percentage: Option<Percentage>,
) -> Result<Flag> {
    let created_at = match tx.flag(owner, name)? {
        Some(existing) => existing.created_at,
        None if tx.count_flags_of(owner)? >= quota => {
            return Err(Error::QuotaExceeded {
                what: Resource::Flag,
                limit: quota,
            })
        }
        None => now,
    };
    let flag = Flag {
        name: name.clone(),
        enabled,
        percentage,
        created_at,
        updated_at: now,
    };
    tx.put_flag(owner, &flag)?;
    Ok(flag)
}

pub(crate) fn evaluate(
    tx: &mut dyn Tx,
    owner: UserId,
    name: &FlagName,
    subject: &Subject,
) -> Result<bool> {
    let flag = tx
        .flag(owner, name)?
        .ok_or_else(|| Error::not_found(Resource::Flag, name))?;
    Ok(flag.is_enabled_for(subject))
}

pub(crate) fn delete(tx: &mut dyn Tx, owner: UserId, name: &FlagName) -> Result<()> {
    if tx.delete_flag(owner, name)? {
        Ok(())
    } else {
        Err(Error::not_found(Resource::Flag, name))
    }
}

pub(crate) fn list(tx: &mut dyn Tx, owner: UserId) -> Result<Vec<Flag>> {
    let mut flags = tx.flags_of(owner)?;
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(flags)
}
