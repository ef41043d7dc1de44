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
//!
//! Each new lease, renewal and release is an event of the change log, and so is a dead lease
//! when storage forgets it: taken over by an acquire, deleted at a quota, or swept
//! ([`sweep_step`]); a dead lease is noticed only then, never at the instant it dies.
//!
//! A free lock that waiters queue for (`waiting.rs`) is promised to the first of them whose
//! process is alive ([`Turn`]): anyone else's acquire is told it is held by that waiter's
//! user until now. The grant deletes the waiter's place in the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::backend::{Acquiring, EventQuery, Retained, Tx, Unleased};
use crate::records::event::{Change, EventKind, Kinds, LeaseChange};
use crate::records::identity::{User, UserId};
use crate::records::lock::{FencingToken, LeaseId, LeaseRecord, NodeId, WaiterRecord};
use crate::rules::event;
use crate::rules::identity::random_uuid;
use crate::values::bounds::{page_limit, Ttl};
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

/// Which of every user's locks a listing reads: the first `limit` by name after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPage {
    after: Option<LockName>,
    limit: usize,
}

impl LockPage {
    /// The most locks one page holds.
    pub const MAX_LIMIT: usize = 1000;
    /// How many locks a page holds unless asked for fewer or more.
    pub const DEFAULT_LIMIT: usize = 100;

    /// The page of at most `limit` locks (1 to [`MAX_LIMIT`](Self::MAX_LIMIT); default
    /// [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT)) named after `after` (default: from the first).
    pub fn new(after: Option<LockName>, limit: Option<u64>) -> Result<Self> {
        let limit = page_limit(limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)?;
        Ok(Self { after, limit })
    }

    /// The page starts after this lock (`None`: at the first).
    pub fn after(&self) -> Option<&LockName> {
        self.after.as_ref()
    }

    /// The most stored leases the page reads.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Default for LockPage {
    fn default() -> Self {
        Self {
            after: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of every user's live leases, by lock name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllLocks {
    /// The live leases among the page's stored ones (a dead one is left out, so a page may
    /// hold fewer than its limit, even none, and still have a next).
    pub locks: Vec<ListedLock>,
    /// Where the next page starts, if the page read as many stored leases as it could.
    pub next: Option<LockPage>,
}

/// A live lease in a listing of every user's, with its lock's waiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLock {
    /// The lease.
    pub lease: Lease,
    /// How many acquires wait in the lock's queue, in every live process.
    pub waiters: usize,
}

/// Which waiters of a queue count: those of live processes, but this process's (`me`) whose
/// tickets have left (their rows are about to go).
pub(crate) struct Counting<'a> {
    pub me: NodeId,
    pub has_left: &'a dyn Fn(&LockName, u64) -> bool,
}

/// How many wait in `name`'s queue at `now`, as `counting` counts them.
pub(crate) fn waiters(
    tx: &mut dyn Tx,
    now: Timestamp,
    name: &LockName,
    counting: &Counting,
) -> Result<usize> {
    let waiting = tx.queue_of(name, counting.me, now.to_datetime(), usize::MAX)?;
    let left = |w: &&WaiterRecord| w.node == counting.me && (counting.has_left)(name, w.ticket);
    Ok(waiting.iter().filter(|w| !left(w)).count())
}

// The rule of a lease's life, as a method of the record storage keeps.
impl LeaseRecord {
    /// Whether the lease still holds at `now`: a lease is dead at `expires_at`, exactly.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < Timestamp::from(self.expires_at)
    }

    /// The lease as an event of `holder`'s tells of it.
    fn change(&self, holder: &Login) -> LeaseChange {
        LeaseChange {
            name: self.name.clone(),
            holder: holder.clone(),
            fencing_token: self.fencing_token,
            expires_at: self.expires_at,
        }
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

/// An acquire's place among the lock's waiters.
pub(crate) struct Turn<'a> {
    /// The process that asks.
    pub node: NodeId,
    /// The caller's ticket, if it waits.
    pub ticket: Option<u64>,
    /// Until when a waiting caller's try marks its process alive.
    pub alive_until: Option<DateTime<Utc>>,
    /// Whether a ticket of this process has left the queue (its row is about to go).
    pub has_left: &'a dyn Fn(u64) -> bool,
}

/// The change log's index read up to, and the locks released or expired after `after`
/// (`None`: only the index to read after next time).
pub(crate) fn released_after(tx: &mut dyn Tx, after: Option<u64>) -> Result<(u64, Vec<LockName>)> {
    let newest = tx.event_bounds()?.newest;
    let after = match after {
        Some(after) if after < newest => after,
        after => return Ok((after.map_or(newest, |after| after.max(newest)), Vec::new())),
    };
    let locks = Kinds::of([EventKind::Lock]);
    let query = EventQuery {
        kinds: locks,
        prefix: "",
        owner: UserId(uuid::Uuid::nil()),
        of_anyone: locks,
    };
    let events = tx.events_after(after, &query, RELEASES_READ)?;
    let read_to = match events.last() {
        Some(last) if events.len() == RELEASES_READ => last.index,
        _ => newest,
    };
    let released = events.into_iter().filter_map(|event| match event.change {
        Change::LockReleased(lease) | Change::LockExpired(lease) => Some(lease.name),
        _ => None,
    });
    Ok((read_to, released.collect()))
}

/// How many lock events one read of the released locks takes.
const RELEASES_READ: usize = 1_000;

/// How many of a queue's first waiters one read takes.
const QUEUE_READ: usize = 8;

/// Whom a free lock is promised to: the owner of the first live waiter in its queue, unless
/// that is `turn`'s own ticket. Rows of this process's tickets that left are deleted on the
/// way. `first`: the queue's first waiters, as read for `turn` (at most [`QUEUE_READ`]).
fn promised_to(
    tx: &mut dyn Tx,
    now: Timestamp,
    name: &LockName,
    turn: &Turn,
    mut first: Vec<WaiterRecord>,
) -> Result<Option<UserId>> {
    loop {
        for waiter in &first {
            if waiter.node == turn.node && (turn.has_left)(waiter.ticket) {
                tx.leave_queue(waiter.ticket)?;
                continue;
            }
            return Ok((turn.ticket != Some(waiter.ticket)).then_some(waiter.owner));
        }
        if first.len() < QUEUE_READ {
            return Ok(None);
        }
        first = tx.queue_of(name, turn.node, now.to_datetime(), QUEUE_READ)?;
    }
}

/// A new lease for `caller`, unless the lock is held (by a live lease of another, or promised
/// to another waiter, see [`Turn`]). A waiting caller's try marks its process alive, and its
/// grant (or a lease it already holds) ends its wait.
#[allow(clippy::too_many_arguments)] // each is one of the acquire's inputs
pub(crate) fn acquire(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    caller: &User,
    name: &LockName,
    ttl: Ttl,
    client_id: Option<&ClientId>,
    turn: &Turn,
) -> Result<LockGrant> {
    if let Some(alive_until) = turn.alive_until {
        tx.beat(turn.node, alive_until)?;
    }
    let acquiring = Acquiring {
        name,
        owner: caller.id,
        me: turn.node,
        now: now.to_datetime(),
        max_waiters: QUEUE_READ,
    };
    let view = tx.acquire_view(&acquiring)?;
    let stored = view.lease;
    if let Some(lease) = stored.as_ref().filter(|l| l.is_live(now)) {
        if lease.owner == caller.id && lease.client_id.as_ref() == client_id {
            if let Some(ticket) = turn.ticket {
                tx.leave_queue(ticket)?;
            }
            return Ok(LockGrant {
                status: AcquireStatus::Held,
                lease: lease.clone().held_by(caller.login.clone()),
            });
        }
        return Err(Error::LockHeld {
            name: name.clone(),
            holder: holder_login(tx, lease.owner)?,
            expires_at: lease.expires_at,
        });
    }
    let unleased = match view.unleased {
        Some(unleased) => unleased,
        None => Unleased::read(tx, &acquiring)?,
    };
    if let Some(waiter) = promised_to(tx, now, name, turn, unleased.first_waiters)? {
        return Err(Error::LockHeld {
            name: name.clone(),
            holder: holder_login(tx, waiter)?,
            expires_at: now.to_datetime(),
        });
    }
    if let Some(ticket) = turn.ticket {
        tx.leave_queue(ticket)?;
    }
    let swept_own = check_quota(tx, now, quota, caller.id, unleased.leases_of_owner)?;
    if let Some(dead) = stored.filter(|d| !(swept_own && d.owner == caller.id)) {
        // Before the new lease's writes: `forget_dead` deletes the lease it is handed.
        forget_dead(tx, now, &dead)?;
    }
    let lease = LeaseRecord {
        name: name.clone(),
        owner: caller.id,
        client_id: client_id.cloned(),
        lease_id: LeaseId(random_uuid()),
        // Taken after reading the lock's record: the per-lock order rests on it.
        fencing_token: match unleased.fencing_token {
            Some(token) => token,
            None => tx.next_fencing_token()?,
        },
        expires_at: now.plus_seconds(ttl.as_secs()).to_datetime(),
    };
    tx.put_lease(&lease)?;
    let change = Change::LockAcquired(lease.change(&caller.login));
    event::append(tx, caller.id, now, change)?;
    Ok(LockGrant {
        status: AcquireStatus::Acquired,
        lease: lease.held_by(caller.login.clone()),
    })
}

/// Dead leases still count in the store until deleted, so only when the raw count (`stored`,
/// as [`Tx::count_leases_of`] answers it) reaches the quota are the owner's leases read, the
/// dead ones deleted, and the live ones counted. Whether it deleted the owner's dead leases.
fn check_quota(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    owner: UserId,
    stored: usize,
) -> Result<bool> {
    if stored < quota {
        return Ok(false);
    }
    let (live, mut dead): (Vec<_>, Vec<_>) =
        (tx.leases_of(owner)?.into_iter()).partition(|lease| lease.is_live(now));
    // In name order, whatever order the backend read them in.
    dead.sort_by(|a, b| a.name.cmp(&b.name));
    for lease in &dead {
        forget_dead(tx, now, lease)?;
    }
    if live.len() >= quota {
        return Err(Error::QuotaExceeded {
            what: Resource::Lock,
            limit: quota,
        });
    }
    Ok(true)
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
    let lease = own_live_lease(tx, now, caller, name, lease_id)?;
    tx.delete_lease(name)?;
    let change = Change::LockReleased(lease.change(&caller.login));
    event::append(tx, caller.id, now, change)
}

/// Deletes a dead lease, with its `expired` event.
fn forget_dead(tx: &mut dyn Tx, now: Timestamp, lease: &LeaseRecord) -> Result<()> {
    tx.delete_lease(&lease.name)?;
    expired(tx, now, lease)
}

/// Appends the `expired` event of a dead lease storage has forgotten.
fn expired(tx: &mut dyn Tx, now: Timestamp, lease: &LeaseRecord) -> Result<()> {
    let holder = holder_login(tx, lease.owner)?;
    let change = Change::LockExpired(lease.change(&holder));
    event::append(tx, lease.owner, now, change)
}

/// One step of a sweep: deletes the dead leases among at most `max` read in name order after
/// `after`, each with its `expired` event (in name order, whatever order the backend read
/// them in, as at a quota).
pub(crate) fn sweep_step(
    tx: &mut dyn Tx,
    now: Timestamp,
    after: Option<&LockName>,
    max: usize,
) -> Result<Retained<LockName>> {
    let mut dead = Vec::new();
    let step = tx.retain_leases(after, max, &mut |lease| {
        let live = lease.is_live(now);
        if !live {
            dead.push(lease.clone());
        }
        live
    })?;
    dead.sort_by(|a, b| a.name.cmp(&b.name));
    for lease in &dead {
        expired(tx, now, lease)?;
    }
    Ok(step)
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
    let change = Change::LockRenewed(lease.change(&caller.login));
    event::append(tx, caller.id, now, change)?;
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

/// The live leases of every user among the stored ones of `page`, each with its holder's
/// login (read once per owner).
pub(crate) fn all(
    tx: &mut dyn Tx,
    now: Timestamp,
    page: &LockPage,
    counting: &Counting,
) -> Result<AllLocks> {
    let stored = tx.leases_after(page.after(), page.limit())?;
    let next = (stored.len() == page.limit())
        .then(|| stored.last())
        .flatten()
        .map(|last| LockPage {
            after: Some(last.name.clone()),
            limit: page.limit(),
        });
    let mut logins: HashMap<UserId, Login> = HashMap::new();
    let mut locks = Vec::new();
    for lease in stored.into_iter().filter(|l| l.is_live(now)) {
        let holder = match logins.get(&lease.owner) {
            Some(login) => login.clone(),
            None => {
                let login = holder_login(tx, lease.owner)?;
                logins.insert(lease.owner, login.clone());
                login
            }
        };
        let waiters = waiters(tx, now, &lease.name, counting)?;
        let lease = lease.held_by(holder);
        locks.push(ListedLock { lease, waiters });
    }
    Ok(AllLocks { locks, next })
}
