//! Feature flags with percentage rollouts.
//!
//! A subject's bucket, 1 to 100, is `murmur3_32("<flag>:<subject>", seed 0) % 100 + 1`, as
//! Unleash computes it, so any SDK can reproduce it. A subject is enabled iff its bucket is at
//! most the percentage: the same subject always gets the same answer, and raising the
//! percentage only ever adds subjects.

use crate::backend::Tx;
use crate::records::event::Change;
use crate::records::flag::Flag;
use crate::records::identity::UserId;
use crate::rules::event;
use crate::values::bounds::Percentage;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::{FlagName, Subject};

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
    (hash_of(flag, subject, 0) % 100 + 1) as u8
}

/// `murmur3_32("<flag>:<subject>", seed)`, Unleash's hash of a subject for a flag.
pub(crate) fn hash_of(flag: &FlagName, subject: &Subject, seed: u32) -> u32 {
    // The longest key: a flag name of ASCII characters, ':', and a subject of characters of
    // up to 4 bytes each. Building it on the stack costs no allocation.
    const MAX_KEY: usize = FlagName::MAX_CHARS + 1 + Subject::MAX_CHARS * 4;
    let (flag, subject) = (flag.as_str().as_bytes(), subject.as_str().as_bytes());
    let mut key = [0u8; MAX_KEY];
    let len = flag.len() + 1 + subject.len();
    key[..flag.len()].copy_from_slice(flag);
    key[flag.len()] = b':';
    key[flag.len() + 1..len].copy_from_slice(subject);
    murmur3_32(&key[..len], seed)
}

/// MurmurHash3's x86 32-bit variant, as Austin Appleby published it (and as the `murmur3`
/// crate computes it through `io::Read`, a byte at a time; here over a slice, a word at a time).
pub(crate) fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut hash = seed;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let k = u32::from_le_bytes(word.try_into().expect("chunks of 4 bytes"));
        hash = (hash ^ scramble(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        hash ^= scramble(k);
    }
    hash ^= data.len() as u32;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

pub(crate) fn set(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    owner: UserId,
    name: &FlagName,
    enabled: bool,
    percentage: Option<Percentage>,
) -> Result<Flag> {
    let at = now;
    let now = now.to_datetime();
    let (created_at, targeting) = match tx.flag(owner, name)? {
        Some(existing) => (existing.created_at, existing.targeting),
        None if tx.count_flags_of(owner)? >= quota => {
            return Err(Error::QuotaExceeded {
                what: Resource::Flag,
                limit: quota,
            })
        }
        None => (now, Default::default()),
    };
    let flag = Flag {
        name: name.clone(),
        enabled,
        percentage,
        targeting,
        created_at,
        updated_at: now,
    };
    tx.put_flag(owner, &flag)?;
    event::append(tx, owner, at, set_change(&flag))?;
    Ok(flag)
}

/// The event of a set.
pub(crate) fn set_change(flag: &Flag) -> Change {
    Change::FlagSet {
        name: flag.name.clone(),
        enabled: flag.enabled,
        percentage: flag.percentage,
    }
}

/// Turns an existing flag on or off, keeping its percentage and `created_at`; a flag that does
/// not exist is not found (this never creates one, so no quota applies).
pub(crate) fn set_enabled(
    tx: &mut dyn Tx,
    now: Timestamp,
    owner: UserId,
    name: &FlagName,
    enabled: bool,
) -> Result<Flag> {
    let existing = existing(tx, owner, name)?;
    let flag = Flag {
        enabled,
        updated_at: now.to_datetime(),
        ..existing
    };
    tx.put_flag(owner, &flag)?;
    event::append(tx, owner, now, set_change(&flag))?;
    Ok(flag)
}

/// The owner's flag, which must exist.
pub(crate) fn existing(tx: &mut dyn Tx, owner: UserId, name: &FlagName) -> Result<Flag> {
    tx.flag(owner, name)?
        .ok_or_else(|| Error::not_found(Resource::Flag, name))
}

/// Deletes a flag no other flag requires.
pub(crate) fn delete(
    tx: &mut dyn Tx,
    now: Timestamp,
    owner: UserId,
    name: &FlagName,
) -> Result<()> {
    let dependents: Vec<_> = tx
        .flags_of(owner)?
        .into_iter()
        .filter(|f| f.targeting.prerequisites.iter().any(|p| &p.flag == name))
        .map(|f| f.name.to_string())
        .collect();
    if !dependents.is_empty() {
        return Err(Error::Conflict(format!(
            "flag {name} is required by {}: remove it from their prerequisites first",
            dependents.join(", ")
        )));
    }
    if tx.delete_flag(owner, name)? {
        let change = Change::FlagDeleted { name: name.clone() };
        event::append(tx, owner, now, change)
    } else {
        Err(Error::not_found(Resource::Flag, name))
    }
}

pub(crate) fn list(tx: &mut dyn Tx, owner: UserId) -> Result<Vec<Flag>> {
    let mut flags = tx.flags_of(owner)?;
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_the_reference_implementation() {
        let mut data = Vec::new();
        for len in 0..=64u8 {
            for seed in [0, 1, 0x9747_b28c] {
                let reference = murmur3::murmur3_32(&mut &data[..], seed).unwrap();
                assert_eq!(murmur3_32(&data, seed), reference, "{data:?} seed {seed}");
            }
            data.push(len.wrapping_mul(37) ^ 0xa5);
        }
    }

    #[test]
    fn the_longest_key_fits() {
        let flag = FlagName::parse(&"f".repeat(FlagName::MAX_CHARS)).unwrap();
        let subject = Subject::parse(&"\u{10ffff}".repeat(Subject::MAX_CHARS)).unwrap();
        assert!((1..=100).contains(&bucket(&flag, &subject)));
    }
}
