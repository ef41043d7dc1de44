//! Leases as storage keeps them, and the fencing tokens they carry.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::records::identity::UserId;
use crate::values::names::{ClientId, LockName};

/// Identifies one lease; needed to release or renew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub Uuid);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A number granted with every new lease: strictly increasing per lock, never repeated in
/// the store (the [rules of locks](crate::rules::lock) say what holds across locks). A resource guarded by a
/// lock rejects writes carrying a token smaller than one it has already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One process sharing a store (a server, or a program embedding it), as the queues of lock
/// waiters name it: random, one per [`Store`](crate::Store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub Uuid);

/// A waiter in a lock's queue, as storage keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaiterRecord {
    /// Its place: tickets increase store-wide in the order waiters joined.
    pub ticket: u64,
    /// Whose acquire waits.
    pub owner: UserId,
    /// The process that waits; its waiters count while it is alive.
    pub node: NodeId,
}

/// A lease as a backend stores it: the owner by id, not by login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The lock.
    pub name: LockName,
    /// Whose lease it is.
    pub owner: UserId,
    /// Which of the owner's processes holds it, if it said.
    pub client_id: Option<ClientId>,
    /// The lease's id.
    pub lease_id: LeaseId,
    /// The fencing token granted with the lease.
    pub fencing_token: FencingToken,
    /// The instant the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
}
