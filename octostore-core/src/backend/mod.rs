//! Storage: what a backend must do, and the backends.
//!
//! A backend keeps records and runs each operation as one atomic transaction; it knows no
//! rule. The rules (expiry, fencing, windows, bucketing, versions, quotas) are functions over
//! a [`Tx`] in the primitive modules, so every backend behaves the same by construction.
//!
//! Duties of every implementor:
//! - [`Backend::transact`] runs `op` so that no other transaction, in this process or any
//!   other sharing the storage, observes its writes partially or interleaves with it
//!   (serializable isolation). It may run `op` more than once (to retry a conflict); only
//!   the last run's writes may persist, and if `op` fails none may.
//! - Once `transact` returns `Ok`, the writes are as durable as the backend promises.
//! - Fencing tokens from [`Tx::next_fencing_token`] are strictly greater than every token the
//!   storage handed out before the call, committed or not. (Concurrent transactions may
//!   commit in another order than their tokens, as PostgreSQL's do.)
//! - Records come back exactly as they were put.
//! - Events from [`Tx::append_event`] are read in the order of their indexes, and never
//!   behind a reader: once a transaction has read an event (or the newest index,
//!   [`EventBounds::newest`]), no event with a smaller index becomes readable. Indexes need
//!   not be consecutive, nor follow commit order for changes that touch nothing in common
//!   (PostgreSQL's do not); two changes of one record take them in commit order.
//!
//! A few reads and writes have provided implementations made of the others (such as
//! [`Tx::update_limit`], a read then a write); a backend overrides them only to do the same
//! thing in fewer steps, as the memory backend does with one hash lookup.

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::records::config::{
    ConfigHead, ConfigSchema, ConfigSummary, ConfigVersion, SchemaDigest,
};
use crate::records::event::{Change, Event, Kinds};
use crate::records::flag::Flag;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId};
use crate::records::lock::{FencingToken, LeaseRecord, NodeId, WaiterRecord};
use crate::records::rate_limit::LimitRecord;
use crate::records::targeting::Segment;
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::Result;
use crate::values::names::{ConfigKey, FlagName, LimitName, LockName, Login, SegmentName};

/// A storage engine.
pub trait Backend: Send + Sync {
    /// Runs `op` as one atomic, isolated transaction (see the module docs for the duties).
    /// `clock` is the store's; a backend that keeps time for several nodes may answer
    /// [`Tx::now`] from its own instead.
    fn transact(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()>;

    /// Runs `op` as [`transact`](Self::transact) does, for an operation that declares
    /// `keys`: what it decides on (see [`Key`]). A backend that runs writers side by side
    /// may lock the keys before the transaction begins and isolate it less itself, so the
    /// operation must name every record its decisions read, as [`Key`] says. By default,
    /// [`transact`](Self::transact).
    fn transact_on(
        &self,
        clock: &dyn Clock,
        keys: Keys,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let _ = keys;
        self.transact(clock, op)
    }

    /// Runs `op`, which only reads, as one transaction that sees every write committed
    /// before it began and none after. A backend with readers beside its one writer (SQLite)
    /// runs it there, so that a long read neither waits for writes nor holds them up. By
    /// default, [`transact`](Self::transact).
    fn read(&self, clock: &dyn Clock, op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.transact(clock, op)
    }

    /// Runs `op`, which only reads and reads the change log ([`Tx::event_bounds`],
    /// [`Tx::events_after`]), as [`read`](Self::read) does: a backend whose events may take
    /// indexes out of commit order reads, before the transaction begins, how far the log is
    /// settled, where a transaction of its own could only tell a lower bound. By default,
    /// [`read`](Self::read).
    fn read_log(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        self.read(clock, op)
    }

    /// How a server should run operations on this backend to get the most out of it.
    fn concurrency(&self) -> Concurrency;

    /// Runs `update` on the owner's stored limit, given the clock's instant, and keeps the
    /// record it leaves: one atomic read-modify-write of that record, without a transaction,
    /// if the backend has such a path. Whether it ran `update`: not if the backend has no
    /// such path or holds no such limit (the caller then runs a transaction). By default it
    /// has none. The memory backend takes it for the hottest operation, the check of an
    /// existing rate limit: one lookup under its mutex, where a transaction's layers cost
    /// twice that. As in a transaction, the backend decides nothing: `update` is the rule.
    fn update_limit_now(
        &self,
        clock: &dyn Clock,
        owner: UserId,
        name: &LimitName,
        update: &mut dyn FnMut(&mut LimitRecord, Timestamp),
    ) -> bool {
        let _ = (clock, owner, name, update);
        false
    }

    /// A number that moves whenever another process or node may have committed a change of
    /// users or tokens (a backend may move it with every write of others, or with its own
    /// changes of them too); `None` if the backend cannot tell. The store remembers which
    /// user each token belongs to only while it stays (see `known_tokens`). By default the
    /// backend cannot tell.
    fn outside_writes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Whether another process may write to the same storage (a file, a database): a store
    /// then watches its change log for their changes while anyone waits for changes
    /// (`changes.rs`). By default it may.
    fn written_by_others(&self) -> bool {
        true
    }

    /// Tells other processes' [`Listener`]s that this one committed changes (called after
    /// each commit of a change). By default no one is told: they see the changes by reading
    /// the change log now and then.
    fn announce(&self) {}

    /// A [`Listener`] that hears other processes' commits (their
    /// [`announce`](Self::announce)ments, or what the storage itself reports); `None` if this
    /// backend cannot hear them (by default): they are then seen by reading the change log
    /// now and then. Made without I/O: it is set up when first waited on.
    fn listen(&self) -> Option<Box<dyn Listener>> {
        None
    }

    /// Runs `work`, whose transactions on this thread may be committed together when it
    /// ends (group commit): each stays atomic and isolated, and one that fails leaves no
    /// write, but their writes are durable only once `group` returns `Ok`. On `Err`, some
    /// of them may have been committed and some not, and every transaction of the group
    /// after the failure failed too. The group waits for other processes' writes until
    /// `give_up_at` at most, then fails with [`Error::Unavailable`](crate::Error::Unavailable)
    /// (nothing of it was run). By default each transaction commits on its own.
    fn group(&self, clock: &dyn Clock, give_up_at: Instant, work: &mut dyn FnMut()) -> Result<()> {
        let _ = (clock, give_up_at);
        work();
        Ok(())
    }
}

/// What an operation run by [`Backend::transact_on`] decides on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keys<'a> {
    /// Every key the operation decides on.
    pub keys: &'a [Key<'a>],
    /// Whether the operation often decides without writing anything (an acquire of a lock
    /// another holds): while another operation holds one of its keys, a backend may then
    /// first run it without them, as a read of one snapshot, and run it again on its keys
    /// only if it writes.
    pub often_only_reads: bool,
}

impl<'a> Keys<'a> {
    /// An operation on `keys` that writes whenever it succeeds.
    pub fn of(keys: &'a [Key<'a>]) -> Self {
        Self {
            keys,
            often_only_reads: false,
        }
    }
}

/// One thing an operation run by [`Backend::transact_on`] decides on. Between two operations
/// that declare the same key, one sees all of the other's writes or none: the backend runs
/// them one after the other. The operation may also write records it does not declare, and
/// read them to write them, but may not decide anything else on a record it only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A lock: its lease and its queue of waiters. Every operation that writes either
    /// declares it.
    Lock(&'a LockName),
    /// An owner's rate limit. Every operation that writes it declares it.
    Limit(UserId, &'a LimitName),
    /// All of an owner's config keys: their versions, schemas, bytes and count. Every
    /// operation that writes any of them declares it, but sweeps: those only delete what
    /// has expired, and a write of a row they delete fails one of the two.
    Configs(UserId),
    /// An owner's quotas: the counts of their records. Every operation that may add one of
    /// the owner's leases or limits declares it. Operations declaring it may run side by
    /// side, so in them `count_leases_of` and `count_limits_of` may answer more than the
    /// owner has, up to how many of them could be running; an operation that reads all
    /// of the owner's leases or limits runs alone, and there every count is exact.
    Quota(UserId),
}

/// Hears other processes' commits ([`Backend::listen`]).
pub trait Listener: Send {
    /// Blocks until another process announces a commit or `timeout` passes; whether one
    /// did. An announcement may be lost (a process killed after its commit, a connection
    /// lost): after a timeout, read what changed all the same.
    fn wait(&mut self, timeout: Duration) -> bool;
}

/// How operations on a backend are best run by a server with many clients at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// An operation never waits for I/O (memory): run it on the caller's thread.
    NonBlocking,
    /// One writer at a time (a file): queue operations to one thread that commits them in
    /// groups ([`Committer`](crate::Committer)).
    Serial,
    /// Many connections work at once (a database server): run operations on many threads.
    Parallel,
}

/// What one step of a sweep ([`Tx::retain_leases`], [`Tx::retain_limits`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained<K> {
    /// How many records it deleted.
    pub deleted: usize,
    /// The key of the last record it read if it stopped at its `max`: the next step starts
    /// after it. `None` once it has read to the end.
    pub next: Option<K>,
}

// Taken only by the SQL backends (`sql.rs`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<K> Retained<K> {
    /// The step that read `read` (in key order, at most `max` records): deletes with `delete`
    /// each record `keep` rejects; `key` names the last one for the next step.
    pub(crate) fn step<T>(
        read: &[T],
        max: usize,
        mut keep: impl FnMut(&T) -> bool,
        mut delete: impl FnMut(&T) -> Result<()>,
        key: impl Fn(&T) -> K,
    ) -> Result<Self> {
        let mut deleted = 0;
        for record in read.iter().filter(|r| !keep(r)) {
            delete(record)?;
            deleted += 1;
        }
        let last = read.last().filter(|_| read.len() >= max);
        Ok(Self {
            deleted,
            next: last.map(key),
        })
    }
}

/// An acquire whose view is read ([`Tx::acquire_view`]).
#[derive(Debug, Clone, Copy)]
pub struct Acquiring<'a> {
    /// The lock.
    pub name: &'a LockName,
    /// Who acquires it.
    pub owner: UserId,
    /// The process asking: its own waiters are read, alive or not.
    pub me: NodeId,
    /// The instant that tells which processes are alive.
    pub now: DateTime<Utc>,
    /// How many of the queue's first waiters are read, at most.
    pub max_waiters: usize,
}

/// What an acquire decides on ([`Tx::acquire_view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireView {
    /// The lock's lease, live or not.
    pub lease: Option<LeaseRecord>,
    /// Read with the lease only when none is stored: a live lease answers the acquire alone.
    pub unleased: Option<Unleased>,
}

/// What an acquire of a lock whose lease is gone decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unleased {
    /// The first waiters of its queue.
    pub first_waiters: Vec<WaiterRecord>,
    /// How many leases the acquiring owner has stored.
    pub leases_of_owner: usize,
    /// A fencing token taken after the lease was read, where the backend takes it with the
    /// view ([`Tx::next_fencing_token`]); one the acquire does not use is never handed out.
    pub fencing_token: Option<FencingToken>,
}

impl AcquireView {
    /// The view read a statement at a time ([`Tx::acquire_view`]).
    pub fn read_apart(tx: &mut (impl Tx + ?Sized), of: &Acquiring) -> Result<Self> {
        let lease = tx.lease(of.name)?;
        let unleased = match lease {
            Some(_) => None,
            None => Some(Unleased::read(tx, of)?),
        };
        Ok(Self { lease, unleased })
    }
}

impl Unleased {
    /// As [`queue_of`](Tx::queue_of) (at most `of.max_waiters`) and
    /// [`count_leases_of`](Tx::count_leases_of) answer.
    pub fn read(tx: &mut (impl Tx + ?Sized), of: &Acquiring) -> Result<Self> {
        Ok(Self {
            first_waiters: tx.queue_of(of.name, of.me, of.now, of.max_waiters)?,
            leases_of_owner: tx.count_leases_of(of.owner)?,
            fencing_token: None,
        })
    }
}

/// Which events [`Tx::events_after`] reads: those of `kinds` whose name starts with
/// `prefix`, and of `owner` unless their kind is in `of_anyone`.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery<'a> {
    /// The kinds read.
    pub kinds: Kinds,
    /// The start of every name read (empty: any name).
    pub prefix: &'a str,
    /// Whose events are read...
    pub owner: UserId,
    /// ...but of these kinds, everyone's.
    pub of_anyone: Kinds,
}

impl EventQuery<'_> {
    /// Whether the event `change`, of `owner`, is one this query reads.
    pub fn matches(&self, owner: UserId, change: &Change) -> bool {
        let kind = change.kind();
        self.kinds.contains(kind)
            && (owner == self.owner || self.of_anyone.contains(kind))
            && change.name().starts_with(self.prefix)
    }
}

/// The indexes of the log's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBounds {
    /// The oldest kept event's; `newest + 1` when none is kept.
    pub oldest: u64,
    /// The newest event's ever appended, kept or not; 0 before the first.
    pub newest: u64,
}

/// The reads and writes one transaction may make. Owner-scoped records are keyed by
/// (owner, name); locks by name alone.
///
/// Rules make every check before their first write, so a backend without rollback (the
/// memory one, which cannot fail) stays consistent.
pub trait Tx {
    /// The instant this transaction runs at; every rule reads time only from here, and only
    /// a rule that uses time asks.
    fn now(&mut self) -> Result<Timestamp>;

    /// The user with this id.
    fn user(&mut self, id: UserId) -> Result<Option<User>>;
    /// The user with this login, compared regardless of case.
    fn user_by_login(&mut self, login: &Login) -> Result<Option<User>>;
    /// The user signed in with this GitHub id.
    fn user_by_github_id(&mut self, github_id: u64) -> Result<Option<User>>;
    /// Inserts or replaces the user with `user.id`.
    fn put_user(&mut self, user: &User) -> Result<()>;
    /// All users, in no particular order.
    fn users(&mut self) -> Result<Vec<User>>;

    /// The token with this hash.
    fn token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>>;
    /// Stores a token.
    fn put_token(&mut self, token: &TokenRecord) -> Result<()>;
    /// Deletes the token with this hash; whether it existed.
    fn delete_token(&mut self, hash: &TokenHash) -> Result<bool>;
    /// The user's tokens.
    fn tokens_of(&mut self, user: UserId) -> Result<Vec<TokenRecord>>;

    /// The lease stored for the lock, live or not.
    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>>;
    /// Inserts or replaces the lease of `lease.name`.
    fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()>;
    /// Deletes the lease of the lock, if any.
    fn delete_lease(&mut self, name: &LockName) -> Result<()>;
    /// The owner's stored leases, live or not.
    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>>;
    /// The stored leases, live or not, every owner's, in name order after `after`, at most
    /// `max` (the order of the database's collation on PostgreSQL, where `after` compares by
    /// it too, so pages still follow one another).
    fn leases_after(&mut self, after: Option<&LockName>, max: usize) -> Result<Vec<LeaseRecord>>;
    /// How many leases the owner has stored, live or not.
    fn count_leases_of(&mut self, owner: UserId) -> Result<usize>;
    /// What an acquire decides on, read together where the backend can: as
    /// [`lease`](Self::lease) answers, and, if no lease is stored,
    /// [`queue_of`](Self::queue_of) and [`count_leases_of`](Self::count_leases_of).
    fn acquire_view(&mut self, of: &Acquiring) -> Result<AcquireView> {
        AcquireView::read_apart(self, of)
    }
    /// Keeps the leases for which `keep` is true and deletes the others, reading them in
    /// name order after `after`, at most `max` (a backend without I/O may read them all).
    fn retain_leases(
        &mut self,
        after: Option<&LockName>,
        max: usize,
        keep: &mut dyn FnMut(&LeaseRecord) -> bool,
    ) -> Result<Retained<LockName>>;
    /// A fencing token greater than every one issued before.
    fn next_fencing_token(&mut self) -> Result<FencingToken>;

    /// The owner's limit.
    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>>;
    /// Inserts or replaces the owner's limit.
    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()>;
    /// Runs `update` on the owner's stored limit and stores the record it leaves, as
    /// [`limit`](Self::limit) then [`put_limit`](Self::put_limit) would; whether the owner
    /// has such a limit (if not, `update` is not called).
    fn update_limit(
        &mut self,
        owner: UserId,
        name: &LimitName,
        update: &mut dyn FnMut(&mut LimitRecord),
    ) -> Result<bool> {
        let Some(mut record) = self.limit(owner, name)? else {
            return Ok(false);
        };
        update(&mut record);
        self.put_limit(owner, name, &record)?;
        Ok(true)
    }
    /// Deletes the owner's limit; whether it existed.
    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool>;
    /// The owner's limits.
    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>>;
    /// How many limits the owner has.
    fn count_limits_of(&mut self, owner: UserId) -> Result<usize>;
    /// Keeps the limits for which `keep` is true and deletes the others, reading them in
    /// (owner, name) order after `after`, at most `max`, as
    /// [`retain_leases`](Self::retain_leases) does.
    fn retain_limits(
        &mut self,
        after: Option<&(UserId, LimitName)>,
        max: usize,
        keep: &mut dyn FnMut(&LimitRecord) -> bool,
    ) -> Result<Retained<(UserId, LimitName)>>;

    /// The owner's flag.
    fn flag(&mut self, owner: UserId, name: &FlagName) -> Result<Option<Flag>>;
    /// Inserts or replaces the owner's flag `flag.name`.
    fn put_flag(&mut self, owner: UserId, flag: &Flag) -> Result<()>;
    /// Deletes the owner's flag; whether it existed.
    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool>;
    /// The owner's flags.
    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>>;
    /// How many flags the owner has.
    fn count_flags_of(&mut self, owner: UserId) -> Result<usize>;
    /// The owner's segment.
    fn segment(&mut self, owner: UserId, name: &SegmentName) -> Result<Option<Segment>>;
    /// Inserts or replaces the owner's segment `segment.name`.
    fn put_segment(&mut self, owner: UserId, segment: &Segment) -> Result<()>;
    /// Deletes the owner's segment; whether it existed.
    fn delete_segment(&mut self, owner: UserId, name: &SegmentName) -> Result<bool>;
    /// The owner's segments.
    fn segments_of(&mut self, owner: UserId) -> Result<Vec<Segment>>;
    /// How many segments the owner has.
    fn count_segments_of(&mut self, owner: UserId) -> Result<usize>;

    /// The head of the owner's key.
    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>>;
    /// Inserts or replaces the head of the owner's key.
    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()>;
    /// One stored version of the owner's key.
    fn config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<ConfigVersion>>;
    /// The description of one stored version of the owner's key, as
    /// [`config_version`](Self::config_version) would read it; `None` if there is no such
    /// version.
    fn config_description(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<Option<String>>> {
        Ok(self
            .config_version(owner, key, version)?
            .map(|v| v.description))
    }
    /// Stores a version of the owner's key, which counts `bytes` (see
    /// [`config_bytes_before`](Self::config_bytes_before)).
    fn put_config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: &ConfigVersion,
        bytes: u64,
    ) -> Result<()>;
    /// Deletes the key's versions numbered below `version`.
    fn delete_config_versions_before(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<()>;
    /// The key's stored versions numbered above `after`, oldest first, at most `max`; only
    /// those are read. Shared, so that a backend keeping versions in memory hands out its
    /// own without copying their values.
    fn config_versions_after(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<ConfigVersion>>>;
    /// The sum of the `bytes` the key's versions numbered below `version` were stored with.
    fn config_bytes_before(&mut self, owner: UserId, key: &ConfigKey, version: u64) -> Result<u64>;
    /// The owner's stored total of config bytes (0 if none was stored).
    fn config_bytes_of(&mut self, owner: UserId) -> Result<u64>;
    /// Stores the owner's total of config bytes.
    fn put_config_bytes_of(&mut self, owner: UserId, bytes: u64) -> Result<()>;
    /// Deletes the key's head and all its versions; whether it existed.
    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool>;
    /// Each of the owner's keys, deleted ones included, with its latest version's
    /// description and time, read without the versions' values.
    fn config_summaries_of(&mut self, owner: UserId) -> Result<Vec<ConfigSummary>>;
    /// How many keys the owner has that are not deleted.
    fn count_configs_of(&mut self, owner: UserId) -> Result<usize>;
    /// The key's schema.
    fn config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigSchema>>;
    /// The digest of the key's schema alone, without the schema: what a put reads.
    fn config_schema_digest(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
    ) -> Result<Option<SchemaDigest>>;
    /// Stores the key's schema.
    fn put_config_schema(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        schema: &ConfigSchema,
    ) -> Result<()>;
    /// Deletes the key's schema; whether it had one.
    fn delete_config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool>;
    /// How many keys of the owner have a schema.
    fn count_config_schemas_of(&mut self, owner: UserId) -> Result<usize>;
    /// At most `max` keys of any owner deleted before `before`.
    fn configs_deleted_before(
        &mut self,
        before: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(UserId, ConfigKey)>>;

    /// Puts `owner`'s waiter, of the process `node`, at the back of the lock's queue; its
    /// ticket, greater than every ticket handed out before.
    fn join_queue(&mut self, name: &LockName, owner: UserId, node: NodeId) -> Result<u64>;
    /// The first waiters of the lock's queue, by ticket, at most `max`: those of the process
    /// `me` and of every process alive at `now` (see [`beat`](Self::beat)).
    fn queue_of(
        &mut self,
        name: &LockName,
        me: NodeId,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<WaiterRecord>>;
    /// Deletes the waiter of this ticket, if any.
    fn leave_queue(&mut self, ticket: u64) -> Result<()>;
    /// Marks the process `node` alive until `until`.
    fn beat(&mut self, node: NodeId, until: DateTime<Utc>) -> Result<()>;
    /// Deletes the processes not alive at `now`, but `me`, and their waiters; how many
    /// waiters.
    fn forget_dead_nodes(&mut self, now: DateTime<Utc>, me: NodeId) -> Result<usize>;

    /// Appends the event of `owner`'s change, made `at`, to the log, at an index greater than
    /// every index readable before it (one more than the newest, where indexes follow
    /// commit order).
    fn append_event(&mut self, owner: UserId, at: DateTime<Utc>, change: &Change) -> Result<()>;
    /// The events `query` reads whose index is above `after` and at most the newest
    /// ([`EventBounds::newest`]), in index order, at most `max`.
    fn events_after(&mut self, after: u64, query: &EventQuery, max: usize) -> Result<Vec<Event>>;
    /// The indexes of the log's ends.
    fn event_bounds(&mut self) -> Result<EventBounds>;
    /// The index of the oldest of the newest `kept` events; `None` if there are fewer
    /// (`u64::MAX` for none kept). Indexes need not be consecutive.
    fn event_kept_from(&mut self, kept: usize) -> Result<Option<u64>>;
    /// Deletes the oldest events, in index order, while `prune` (given an event's index and
    /// instant) is true for them, at most `max`; how many it deleted. It never deletes an
    /// event newer than one it keeps, so the kept events stay one run of indexes.
    fn prune_events(
        &mut self,
        max: usize,
        prune: &mut dyn FnMut(u64, DateTime<Utc>) -> bool,
    ) -> Result<usize>;
}
