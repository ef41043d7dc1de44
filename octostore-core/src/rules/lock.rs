//! Locks: leases with a TTL and fencing tokens.
//!
//! A lease is live while `now < expires_at`, exactly, whether or not a sweep has run. A lease
//! belongs to (user, client id): the same pair acquiring again gets the lease it holds;
//! anyone else gets [`Error::LockHeld`].
//!
//! Every new lease takes the store's next fencing token, in the transaction that read the
//! lock's record. So, on every backend, a lock's tokens strictly increase in the order of its
//! grants (a grant reads what the one before it wrote, so that one had committed, and taken
//! its token, before this one took its own); no token is handed out twice; and a token is
//! greater than every token acknowledged before its acquire began. Across locks, SQLite and
//! memory hand tokens out in commit order, one transaction at a time; PostgreSQL takes them
//! from a sequence before the commit, so overlapping acquires of different locks may commit
//! in another order than their tokens.

use chrono::{DateTime, Utc};

use crate::backend::Tx;
use crate::records::identity::{User, UserId};
use crate::records::lock::{FencingToken, LeaseId, LeaseRecord};
use crate::rules::identity::random_uuid;
use crate::values::bounds::Ttl;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, HeldBy, Resource, Result};
use crate::values::names::{ClientId, LockName, Login};

/// The right, until `expires_at`, to act as the holder of a lock, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lock.
    pub name: LockName,
    /// The login of the lease's owner.
    pub holder: Login,
    /// Which of the owner's processes holds it, if it said.
    pub client_id: Option<ClientId>,
    /// The lease's id.
    pub lease_id: LeaseId,
    /// The fencing token granted with the lease; renewals keep it.
    pub fencing_token: FencingToken,
    /// The instant the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
}

// The rule of a lease's life, as a method of the record storage keeps.
impl LeaseRecord {
    /// Whether the lease still holds at `now`: a lease is dead at `expires_at`, exactly.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < Timestamp::from(self.expires_at)
    }

    fn held_by(self, holder: Login) -> Lease {
        Lease {
            name: self.name,
            holder,
            client_id: self.client_id,
            lease_id: self.lease_id,
            fencing_token: self.fencing_token,
            expires_at: self.expires_at,
        }
    }
}

/// Whether [`acquire`](crate::Api::acquire) made a new lease or found the caller's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireStatus {
    /// A new lease with a new fencing token.
    Acquired,
    /// The caller already held the lock; the lease is unchanged.
    Held,
}

/// The answer to a successful acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockGrant {
    /// New or existing.
    pub status: AcquireStatus,
    /// The caller's lease.
    pub lease: Lease,
}

/// Who, if anyone, holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// A live lease exists.
    Held(Lease),
    /// Nobody holds the lock.
    Available,
}

fn holder_login(tx: &mut dyn Tx, owner: UserId) -> Result<Login> {
    tx.user(owner)?
        .map(|user| user.login)
        .ok_or_else(|| Error::storage(format!("lease owner {owner} has no user record")))
}

pub(crate) fn acquire(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    caller: &User,
    name: &LockName,
    ttl: Ttl,
    client_id: Option<&ClientId>,
) -> Result<LockGrant> {
    if let Some(lease) = tx.lease(name)?.filter(|l| l.is_live(now)) {
        if lease.owner == caller.id && lease.client_id.as_ref() == client_id {
            return Ok(LockGrant {
                status: AcquireStatus::Held,
                lease: lease.held_by(caller.login.clone()),
            });
        }
        return Err(Error::LockHeld {
            name: name.clone(),
            holder: holder_login(tx, lease.owner)?,
            expires_at: lease.expires_at,
        });
    }
    check_quota(tx, now, quota, caller.id)?;
    let lease = LeaseRecord {
        name: name.clone(),
        owner: caller.id,
        client_id: client_id.cloned(),
        lease_id: LeaseId(random_uuid()),
        // Taken after reading the lock's record: the per-lock order rests on it.
        fencing_token: tx.next_fencing_token()?,
        expires_at: now.plus_seconds(ttl.as_secs()).to_datetime(),
    };
    tx.put_lease(&lease)?;
    Ok(LockGrant {
        status: AcquireStatus::Acquired,
        lease: lease.held_by(caller.login.clone()),
    })
}

/// Dead leases still count in the store until deleted, so only when the raw count reaches
/// the quota are the owner's leases read, the dead ones deleted, and the live ones counted.
fn check_quota(tx: &mut dyn Tx, now: Timestamp, quota: usize, owner: UserId) -> Result<()> {
    if tx.count_leases_of(owner)? < quota {
        return Ok(());
    }
    let mut live = 0;
    for lease in tx.leases_of(owner)? {
        if lease.is_live(now) {
            live += 1;
        } else {
            tx.delete_lease(&lease.name)?;
        }
    }
    if live >= quota {
        return Err(Error::QuotaExceeded {
            what: Resource::Lock,
            limit: quota,
        });
    }
    Ok(())
}

/// The caller's live lease `lease_id` of `name`; else not found, saying whether another lease
/// holds the lock or none does. That tells a caller nothing more than `status` does: lock
/// names are one namespace for all users, and anyone may ask who holds a lock.
fn own_live_lease(
    tx: &mut dyn Tx,
    now: Timestamp,
    caller: &User,
    name: &LockName,
    lease_id: LeaseId,
) -> Result<LeaseRecord> {
    match tx.lease(name)?.filter(|l| l.is_live(now)) {
        Some(lease) if lease.owner == caller.id && lease.lease_id == lease_id => Ok(lease),
        Some(_) => Err(Error::lease_not_found(name, HeldBy::AnotherLease)),
        None => Err(Error::lease_not_found(name, HeldBy::Nobody)),
    }
}

pub(crate) fn release(
    tx: &mut dyn Tx,
    now: Timestamp,
    caller: &User,
    name: &LockName,
    lease_id: LeaseId,
) -> Result<()> {
    own_live_lease(tx, now, caller, name, lease_id)?;
    tx.delete_lease(name)
}

pub(crate) fn renew(
    tx: &mut dyn Tx,
    now: Timestamp,
    caller: &User,
    name: &LockName,
    lease_id: LeaseId,
    ttl: Ttl,
) -> Result<Lease> {
    let mut lease = own_live_lease(tx, now, caller, name, lease_id)?;
    lease.expires_at = now.plus_seconds(ttl.as_secs()).to_datetime();
    tx.put_lease(&lease)?;
    Ok(lease.held_by(caller.login.clone()))
}

pub(crate) fn status(tx: &mut dyn Tx, now: Timestamp, name: &LockName) -> Result<LockStatus> {
    match tx.lease(name)?.filter(|l| l.is_live(now)) {
        Some(lease) => {
            let holder = holder_login(tx, lease.owner)?;
            Ok(LockStatus::Held(lease.held_by(holder)))
        }
        None => Ok(LockStatus::Available),
    }
}

pub(crate) fn list(tx: &mut dyn Tx, now: Timestamp, caller: &User) -> Result<Vec<Lease>> {
    let mut leases: Vec<Lease> = tx
        .leases_of(caller.id)?
        .into_iter()
        .filter(|l| l.is_live(now))
        .map(|l| l.held_by(caller.login.clone()))
        .collect();
    leases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(leases)
}
