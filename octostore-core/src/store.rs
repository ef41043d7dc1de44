//! The facade: a [`Store`] joins a backend, a clock and [`Settings`], and runs each operation
//! as one transaction of the backend; a [`Session`] is the store acting for one user. The
//! store also owns this process's queues of lock waiters ([`LockQueues`]).

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::api::Api;
use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, Concurrency, Retained, Tx};
use crate::changes::{ChangeWaiter, Changes, OutsideCommits, Wake, WATCH_EVERY};
use crate::known_tokens::KnownTokens;
use crate::records::config::{ConfigSchema, ConfigSummary};
use crate::records::flag::Flag;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId};
use crate::records::lock::{LeaseId, WaiterRecord};
use crate::records::rate_limit::LimitRecord;
use crate::rules::config::{self, ConfigEntry, ConfigHistory, HistoryPage, PutBounds};
use crate::rules::config_delete;
use crate::rules::config_diff::{self, ConfigDiff};
use crate::rules::config_schema::{self, SchemaBounds};
use crate::rules::event::{self, EventFilter, EventPage};
use crate::rules::flag;
use crate::rules::identity::{self, Token};
use crate::rules::lock::{self, Lease, LockGrant, LockStatus, Turn};
use crate::rules::rate_limit::{self, Decision, LimitSummary};
use crate::rules::schema::Validators;
use crate::values::bounds::{Description, Percentage, RatePolicy, Ttl};
use crate::values::clock::{Clock, SystemClock, Timestamp};
use crate::values::error::{Error, Result};
use crate::values::names::{ClientId, ConfigKey, FlagName, LimitName, LockName, Login, Subject};
use crate::waiting::{
    self, LockQueues, Next, Signal, Ticket, HEAD_RECHECK, NODE_LEASE, RELEASES_READ_EVERY,
};

/// How many of each thing one user may own at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Live leases.
    pub locks: usize,
    /// Rate limits.
    pub limits: usize,
    /// Feature flags.
    pub flags: usize,
    /// Config keys.
    pub configs: usize,
}

impl Default for Quotas {
    /// 1 000 of each.
    fn default() -> Self {
        Self {
            locks: 1_000,
            limits: 1_000,
            flags: 1_000,
            configs: 1_000,
        }
    }
}

/// The store's adjustable bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Per-user quotas.
    pub quotas: Quotas,
    /// How many versions of a config key are kept (at least 1; default 1 000).
    pub config_history: usize,
    /// The largest config value, as compact JSON (default 64 KiB).
    pub config_value_max_bytes: usize,
    /// The most bytes one user's configs may keep: every kept version's value, as compact
    /// JSON, and description (default 32 MiB), deleted keys' included until they are
    /// purged. A put past it purges deleted keys to make room, or is refused.
    pub config_bytes_per_user: u64,
    /// The largest JSON Schema of a config key, as compact JSON (default 64 KiB).
    pub config_schema_max_bytes: usize,
    /// How long a deleted config key is kept for an undelete (default 7 days; zero: a
    /// delete erases the key at once). A sweep forgets the keys deleted longer ago.
    pub config_retention: Duration,
    /// How many of the newest events the change log keeps at least until they are
    /// [`events_max_age`](Self::events_max_age) old (default 100 000).
    pub events_kept: usize,
    /// How long the change log keeps an event at most (default 24 hours). A sweep deletes
    /// the events past either bound.
    pub events_max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            quotas: Quotas::default(),
            config_history: 1_000,
            config_value_max_bytes: 64 * 1024,
            config_bytes_per_user: 32 * 1024 * 1024,
            config_schema_max_bytes: 64 * 1024,
            config_retention: Duration::from_secs(7 * 24 * 60 * 60),
            events_kept: 100_000,
            events_max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl Settings {
    /// The numbers the config rules bound a put by.
    fn config_schema_bounds(&self) -> SchemaBounds {
        SchemaBounds {
            max_bytes: self.config_schema_max_bytes,
            keys: self.quotas.configs,
        }
    }

    /// The numbers the config rules bound a put by.
    fn config_put_bounds(&self) -> PutBounds {
        PutBounds {
            keys: self.quotas.configs,
            history: self.config_history,
            value_max_bytes: self.config_value_max_bytes,
            bytes_per_owner: self.config_bytes_per_user,
        }
    }
}

/// How many records a [`Store::sweep`] reads per transaction: about a millisecond of a
/// SQLite file's time.
pub const SWEEP_BATCH: NonZeroUsize = NonZeroUsize::new(1_000).expect("not zero");

/// After how many changes on a thread a store prunes its change log, between sweeps.
pub const PRUNE_EVERY: u64 = 1_024;

thread_local! {
    /// Inside [`Store::group`] on this thread: whether one of its operations changed
    /// something (its waiters are woken once the group commits). `None` outside a group.
    static CHANGED_IN_GROUP: Cell<Option<bool>> = const { Cell::new(None) };
}

/// What a [`Store::sweep`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired leases.
    pub leases: usize,
    /// Limits that counted nothing in their window.
    pub limits: usize,
    /// Events of the change log past its bounds.
    pub events: usize,
    /// Config keys deleted longer ago than [`Settings::config_retention`].
    pub configs: usize,
}

/// OctoStore: locks, rate limits, flags and configs over one backend. Cheap to clone; the
/// clones share the backend.
///
/// ```
/// use octostore_core::{Api, LockName, Login, Store, Ttl};
///
/// let store = Store::in_memory();
/// let alice = store.create_user(&Login::parse("alice")?)?;
/// let token = store.issue_token(alice.id)?;
///
/// // A server authenticates each request's bearer token...
/// let session = store.authenticate(token.expose())?;
/// // ...and acts as that user.
/// let grant = session.acquire(&LockName::parse("deploy")?, Ttl::seconds(60)?, None)?;
/// assert_eq!(grant.lease.fencing_token.0, 1);
/// # Ok::<(), octostore_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    known_tokens: KnownTokens,
    lock_queues: LockQueues,
    changes: Changes,
    /// The config schemas compiled, by digest.
    validators: Validators,
}

/// Builds a [`Store`] from parts; every part has a default.
pub struct StoreBuilder {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        Self {
            backend: Box::new(MemoryBackend::new()),
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
        }
    }
}

impl StoreBuilder {
    /// Stores in `backend` (default: memory).
    pub fn backend(mut self, backend: impl Backend + 'static) -> Self {
        self.backend = Box::new(backend);
        self
    }

    /// Reads time from `clock` (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Applies `settings` (default: [`Settings::default`]).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The store.
    pub fn build(self) -> Store {
        let settings = Settings {
            config_history: self.settings.config_history.max(1),
            ..self.settings
        };
        let watched = self.backend.written_by_others();
        let changes_listener = self.backend.listen();
        Store {
            inner: Arc::new_cyclic(|weak: &Weak<Inner>| {
                let inner = weak.clone();
                let newest_index = move || {
                    let store = Store {
                        inner: inner.upgrade()?,
                    };
                    store.read(|tx| Ok(tx.event_bounds()?.newest)).ok()
                };
                let lock_queues = LockQueues::default();
                if watched {
                    let weak = weak.clone();
                    lock_queues.read_releases_with(
                        Box::new(move |after: Option<u64>| {
                            let store = Store {
                                inner: weak.upgrade()?,
                            };
                            store.read(|tx| lock::released_after(tx, after)).ok()
                        }),
                        OutsideCommits::new(self.backend.listen(), RELEASES_READ_EVERY),
                    );
                }
                let weak = weak.clone();
                lock_queues.forget_with(Box::new(move |tickets: &[u64]| {
                    let Some(inner) = weak.upgrade() else {
                        return true;
                    };
                    let forget = |tx: &mut dyn Tx, _: &Settings| {
                        tickets
                            .iter()
                            .try_for_each(|ticket| tx.leave_queue(*ticket))
                    };
                    Store { inner }.transact(forget).is_ok()
                }));
                Inner {
                    backend: self.backend,
                    clock: self.clock,
                    settings,
                    known_tokens: KnownTokens::default(),
                    lock_queues,
                    changes: Changes::new(
                        watched.then(|| Box::new(newest_index) as _),
                        OutsideCommits::new(changes_listener, WATCH_EVERY),
                    ),
                    validators: Validators::default(),
                }
            }),
        }
    }
}

impl Store {
    /// A store in this process's memory, on the system clock: for tests and for programs
    /// that coordinate only their own threads.
    ///
    /// ```
    /// use octostore_core::{Api, FlagName, Login, Store};
    ///
    /// let store = Store::in_memory();
    /// let ops = store.session(store.local_user(&Login::parse("ops")?)?);
    /// ops.set_flag(&FlagName::parse("maintenance")?, true, None)?;
    /// assert!(ops.evaluate_flag(&FlagName::parse("maintenance")?, None)?);
    /// # Ok::<(), octostore_core::Error>(())
    /// ```
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// A durable store in the SQLite file at `path`, created if missing, on the system clock:
    /// the one-line way to a store that survives restarts and is shared by processes.
    ///
    /// ```
    /// use octostore_core::{Api, ConfigKey, Login, Store};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("octostore.db");
    /// let store = Store::open(&path)?;
    /// let me = store.session(store.local_user(&Login::parse("ops")?)?);
    /// me.put_config(&ConfigKey::parse("replicas")?, serde_json::json!(3), None)?;
    /// drop(store);
    ///
    /// let reopened = Store::open(&path)?;
    /// let me = reopened.session(reopened.local_user(&Login::parse("ops")?)?);
    /// assert_eq!(me.get_config(&ConfigKey::parse("replicas")?, None)?.version, 1);
    /// # Ok::<(), octostore_core::Error>(())
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let backend = crate::backend::sqlite::SqliteBackend::open(path)?;
        Ok(Self::builder().backend(backend).build())
    }

    /// A store in memory on `clock`: the twin of [`in_memory`](Self::in_memory) for tests.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use chrono::Duration;
    /// use octostore_core::{Api, LockName, LockStatus, Login, ManualClock, Store, Ttl};
    ///
    /// let clock = Arc::new(ManualClock::default());
    /// let store = Store::in_memory_with_clock(clock.clone());
    /// let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let name = LockName::parse("nightly-job")?;
    /// alice.acquire(&name, Ttl::seconds(30)?, None)?;
    ///
    /// clock.advance(Duration::seconds(30)); // a lease is dead at its expires_at
    /// assert_eq!(alice.lock_status(&name)?, LockStatus::Available);
    /// # Ok::<(), octostore_core::Error>(())
    /// ```
    pub fn in_memory_with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::builder().clock(clock).build()
    }

    /// A builder, to choose the backend, clock and settings.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// The store's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The current instant by the store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// This process's queues of waiters for locks, shared by the store's clones.
    pub fn lock_queues(&self) -> &LockQueues {
        &self.inner.lock_queues
    }

    /// When, by real time, a waiter whose try found the lock held tries again (`next`, see
    /// [`Ticket::after_held`]); `None`: only when woken. This process's first waiter tries at
    /// the holder's expiry; and where other processes may share the store (a file, a
    /// database), whose releases wake no one in this process, at least every
    /// [`HEAD_RECHECK`]; a lock promised to another process's waiter, then too.
    pub fn next_try(&self, next: Next) -> Option<Instant> {
        let Next::RetryAt(expires_at) = next else {
            return None;
        };
        let until_expiry = waiting::until(self.now(), expires_at);
        let wait = match self.concurrency() {
            _ if until_expiry.is_zero() => HEAD_RECHECK,
            Concurrency::NonBlocking => until_expiry,
            Concurrency::Serial | Concurrency::Parallel => until_expiry.min(HEAD_RECHECK),
        };
        Some(Instant::now() + wait)
    }

    /// How a server should run this store's operations (see [`Concurrency`]).
    pub fn concurrency(&self) -> Concurrency {
        self.inner.backend.concurrency()
    }

    /// Runs `work`, whose operations on this thread may be committed together when it ends
    /// (see [`Backend::group`]): they are durable only once this returns `Ok`. Waiting for
    /// another process's writes ends at `give_up_at`, failing the group.
    pub fn group(&self, give_up_at: Instant, mut work: impl FnMut()) -> Result<()> {
        let outer = CHANGED_IN_GROUP.replace(Some(false));
        let committed = (self.inner.backend).group(&*self.inner.clock, give_up_at, &mut work);
        if committed.is_err() {
            // A token or user read in the group may not have been committed.
            self.inner.known_tokens.forget_all();
        }
        // Even a failed group may have committed some of its changes.
        if CHANGED_IN_GROUP.replace(outer) == Some(true) {
            self.changed();
        }
        committed
    }

    /// Calls `wake` after every change to the store that commits from now on (at once after
    /// this process's; after another process's, as soon as it is announced on PostgreSQL,
    /// within about [`WATCH_EVERY`] on a shared file), until the returned [`ChangeWaiter`] is dropped. `wake` should only signal
    /// (notify a task, set a flag): it is called on the thread that committed. Register
    /// first, then read, then wait: no change committed after the read goes unseen. A
    /// wake-up may come with nothing new to read.
    pub fn on_change(&self, wake: Wake) -> ChangeWaiter {
        self.inner.changes.register(wake)
    }

    /// A change committed, or will when the group this thread runs commits: wakes the
    /// waiters, and announces it to other processes, then.
    fn changed(&self) {
        match CHANGED_IN_GROUP.get() {
            Some(_) => CHANGED_IN_GROUP.set(Some(true)),
            None => {
                self.inner.changes.wake_all();
                self.inner.backend.announce();
            }
        }
    }

    /// Runs `op` as one transaction that needs no time: the clock is not read. `op` may run
    /// more than once if the backend retries.
    fn transact<R>(&self, mut op: impl FnMut(&mut dyn Tx, &Settings) -> Result<R>) -> Result<R> {
        let mut out = None;
        let settings = &self.inner.settings;
        self.inner.backend.transact(&*self.inner.clock, &mut |tx| {
            out = Some(op(tx, settings)?);
            Ok(())
        })?;
        Ok(out.expect("a committed transaction ran its operation"))
    }

    /// Runs `op`, which only reads, as one read-only transaction of the backend
    /// ([`Backend::read`]): on SQLite, beside the writer rather than in its queue.
    fn read<R>(&self, mut op: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let mut out = None;
        self.inner.backend.read(&*self.inner.clock, &mut |tx| {
            out = Some(op(tx)?);
            Ok(())
        })?;
        Ok(out.expect("a finished transaction ran its operation"))
    }

    /// `outcome`, of a transaction that may have changed tokens or users, once what the store
    /// knows of tokens is forgotten (whatever the outcome).
    fn after_identity_change<R>(&self, outcome: Result<R>) -> Result<R> {
        self.inner.known_tokens.forget_all();
        outcome
    }

    /// Runs `op` as one transaction at the instant the transaction reads from the clock.
    fn transact_now<R>(
        &self,
        mut op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        self.transact(|tx, settings| {
            let now = tx.now()?;
            op(tx, now, settings)
        })
    }

    /// Creates a local user; [`Error::Conflict`](crate::Error::Conflict) if the login is
    /// taken (regardless of case).
    pub fn create_user(&self, login: &Login) -> Result<User> {
        self.after_identity_change(self.transact(|tx, _| identity::create_local_user(tx, login)))
    }

    /// The user with this login, created as a local user if there is none.
    pub fn local_user(&self, login: &Login) -> Result<User> {
        self.after_identity_change(self.transact(|tx, _| identity::local_user(tx, login)))
    }

    /// Creates or updates the user GitHub knows as `github_id`: the same GitHub account
    /// always maps to the same user, whatever its login becomes.
    pub fn upsert_github_user(
        &self,
        github_id: u64,
        login: &Login,
        avatar_url: Option<&str>,
    ) -> Result<User> {
        let upsert = |tx: &mut dyn Tx, _: &Settings| {
            identity::upsert_github_user(tx, github_id, login, avatar_url)
        };
        self.after_identity_change(self.transact(upsert))
    }

    /// The user with this login, if any.
    pub fn user_by_login(&self, login: &Login) -> Result<Option<User>> {
        self.transact(|tx, _| tx.user_by_login(login))
    }

    /// All users, by login.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut users = self.transact(|tx, _| tx.users())?;
        users.sort_by_key(|u| u.login.folded());
        Ok(users)
    }

    /// Issues a new bearer token for `user`; the secret is returned only here.
    pub fn issue_token(&self, user: UserId) -> Result<Token> {
        self.after_identity_change(
            self.transact_now(|tx, now, _| identity::issue_token(tx, now, user)),
        )
    }

    /// The user's tokens (hashes only), oldest first.
    pub fn tokens(&self, user: UserId) -> Result<Vec<TokenRecord>> {
        let mut tokens = self.transact(|tx, _| tx.tokens_of(user))?;
        tokens.sort_by_key(|t| t.created_at);
        Ok(tokens)
    }

    /// Revokes the user's token with this id.
    pub fn revoke_token(&self, user: UserId, token_id: Uuid) -> Result<()> {
        self.after_identity_change(
            self.transact(|tx, _| identity::revoke_token(tx, user, token_id)),
        )
    }

    /// Replaces the token `secret` with a new one, atomically: `secret` stops working at once.
    pub fn rotate_token(&self, secret: &str) -> Result<Token> {
        self.after_identity_change(
            self.transact_now(|tx, now, _| identity::rotate_token(tx, now, secret)),
        )
    }

    /// The session of the user `secret` belongs to, or
    /// [`Error::Unauthorized`](crate::Error::Unauthorized).
    pub fn authenticate(&self, secret: &str) -> Result<Session> {
        let token = TokenHash::of(secret);
        let known = &self.inner.known_tokens;
        let user = match known.user(&token, self.inner.backend.outside_writes()?) {
            Ok(user) => user,
            Err(since) => {
                let user = self.transact(|tx, _| identity::authenticate(tx, &token))?;
                known.learn(since, token, &user);
                user
            }
        };
        Ok(self.session(user))
    }

    /// The store acting as `user`.
    pub fn session(&self, user: User) -> Session {
        Session {
            store: self.clone(),
            user,
        }
    }

    /// How many locks are held by a live lease right now. Like a sweep, it reads
    /// [`SWEEP_BATCH`] leases per transaction, so writes run between its transactions; the
    /// count is not one snapshot, which a gauge does not need.
    pub fn live_lease_count(&self) -> Result<usize> {
        self.live_lease_count_in_batches(SWEEP_BATCH)
    }

    /// [`live_lease_count`](Self::live_lease_count), reading at most `batch` leases per
    /// transaction.
    pub fn live_lease_count_in_batches(&self, batch: NonZeroUsize) -> Result<usize> {
        let mut live = 0;
        self.sweep_steps(|tx, now, after| {
            tx.retain_leases(after, batch.get(), &mut |lease| {
                live += usize::from(lease.is_live(now));
                true
            })
        })?;
        Ok(live)
    }

    /// Deletes expired leases (each with its `expired` event), limits that counted nothing
    /// in their window, and the change log's events past [`Settings::events_kept`] or
    /// [`Settings::events_max_age`]. No lease or limit it deletes is visible to any
    /// operation, so it changes no answer but the log's; it only frees space. It reads
    /// [`SWEEP_BATCH`] records per transaction, so other operations run between its
    /// transactions instead of waiting for the whole store to be read.
    pub fn sweep(&self) -> Result<Swept> {
        self.sweep_in_batches(SWEEP_BATCH)
    }

    /// [`sweep`](Self::sweep), reading at most `batch` records per transaction.
    pub fn sweep_in_batches(&self, batch: NonZeroUsize) -> Result<Swept> {
        let max = batch.get();
        let leases = self.sweep_steps(|tx, now, after| lock::sweep_step(tx, now, after, max));
        if !matches!(leases, Ok(0)) {
            // Each expired lease appended its event (a failed sweep may have committed some).
            self.changed();
        }
        let me = self.inner.lock_queues.node();
        self.transact_now(|tx, now, _| tx.forget_dead_nodes(now.to_datetime(), me))?;
        Ok(Swept {
            leases: leases?,
            limits: self.sweep_steps(|tx, now, after| {
                tx.retain_limits(after, max, &mut |limit| !limit.is_idle(now))
            })?,
            events: self.prune_log(max)?,
            configs: self.sweep_steps(|tx, now, _: Option<&()>| {
                let retention = self.inner.settings.config_retention;
                config_delete::forget_expired(tx, now, retention, max)
            })?,
        })
    }

    /// Deletes the change log's events past its bounds, reading at most `max` per
    /// transaction; how many.
    fn prune_log(&self, max: usize) -> Result<usize> {
        let Settings {
            events_kept: kept,
            events_max_age: max_age,
            ..
        } = self.inner.settings;
        self.sweep_steps(|tx, now, _: Option<&()>| {
            let deleted = event::prune(tx, now, kept, max_age, max)?;
            Ok(Retained {
                deleted,
                next: (deleted == max).then_some(()),
            })
        })
    }

    /// Runs `op`, an operation that may change what users see (and so append events), as
    /// [`transact_now`](Self::transact_now), then wakes those waiting for changes (once it
    /// has committed: at the end of the group it runs in, if any). After every [`PRUNE_EVERY`] changes on a thread,
    /// it prunes the change log too, so that a store no one sweeps (embedded, in memory)
    /// keeps it within its bounds.
    fn change<R>(
        &self,
        op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        thread_local! {
            static CHANGES: Cell<u64> = const { Cell::new(0) };
        }
        let outcome = self.transact_now(op);
        if outcome.is_ok() {
            self.changed();
        }
        let changes = CHANGES.get() + 1;
        CHANGES.set(changes);
        if changes.is_multiple_of(PRUNE_EVERY) {
            // The change is made whatever this does; a prune that fails is made again by
            // the next sweep or round of changes.
            let _ = self.prune_log(SWEEP_BATCH.get());
        }
        outcome
    }

    /// Runs `step`, each time in a transaction of its own, from the first record to the end;
    /// how many records it deleted.
    fn sweep_steps<K>(
        &self,
        mut step: impl FnMut(&mut dyn Tx, Timestamp, Option<&K>) -> Result<Retained<K>>,
    ) -> Result<usize> {
        let (mut deleted, mut after) = (0, None);
        loop {
            let done = self.transact_now(|tx, now, _| step(tx, now, after.as_ref()))?;
            deleted += done.deleted;
            match done.next {
                Some(next) => after = Some(next),
                None => return Ok(deleted),
            }
        }
    }
}

/// The store acting as one user: the embedded implementation of [`Api`].
#[derive(Clone)]
pub struct Session {
    store: Store,
    user: User,
}

impl Session {
    /// The user this session acts as.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The store this session acts on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A check the backend could not make in place: of a new limit, or on a backend without
    /// such a path. Out of line, so the path in place stays short.
    #[inline(never)]
    fn check_in_transaction(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let owner = self.user.id;
        let verdict = self.store.transact_now(|tx, now, s| {
            rate_limit::check(tx, now, s.quotas.limits, owner, name, policy)
        })?;
        Ok(verdict.decision())
    }

    /// Takes a ticket at the back of `name`'s queue of waiters, which `wake` signals when
    /// this session may try again (see [`waiting`]). It is this process's from inside the
    /// transaction that stores it, so no try of this process takes its row for one that left.
    pub fn join_queue(&self, name: &LockName, wake: Wake) -> Result<Ticket> {
        let queues = &self.store.inner.lock_queues;
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::from(wake);
        let node = queues.node();
        let mut added = None;
        let joined = self.store.transact_now(|tx, now, _| {
            if let Some(ticket) = added.take() {
                // A run before this one, not committed.
                queues.remove(name, ticket);
            }
            tx.beat(node, alive_until(now))?;
            let ticket = tx.join_queue(name, self.user.id, node)?;
            let seen = tx.event_bounds()?.newest;
            queues.add(name, ticket, wake.clone(), seen);
            added = Some(ticket);
            Ok(ticket)
        });
        match joined {
            Ok(ticket) => Ok(Ticket::new(queues.clone(), name.clone(), ticket)),
            Err(e) => {
                if let Some(ticket) = added {
                    queues.remove(name, ticket);
                }
                Err(e)
            }
        }
    }

    /// How many wait in `name`'s queue, in every live process sharing the store.
    pub fn waiters(&self, name: &LockName) -> Result<usize> {
        let queues = &self.store.inner.lock_queues;
        let me = queues.node();
        self.store.read(|tx| {
            let now = tx.now()?.to_datetime();
            let waiting = tx.queue_of(name, me, now, usize::MAX)?;
            let left = |w: &&WaiterRecord| w.node == me && queues.has_left(name, w.ticket);
            Ok(waiting.iter().filter(|w| !left(w)).count())
        })
    }

    /// One try of a waiting acquire: [`acquire`](Api::acquire) as the holder of `ticket`,
    /// which may take the lock, free, only as the first live waiter of its queue.
    pub fn acquire_in_turn(
        &self,
        ticket: &Ticket,
        ttl: Ttl,
        client_id: Option<&ClientId>,
    ) -> Result<LockGrant> {
        let grant = self.acquire_promised(ticket.lock(), ttl, client_id, Some(ticket))?;
        ticket.granted();
        Ok(grant)
    }

    /// An acquire that may take a free lock only if no live waiter but `ticket`'s holder
    /// heads its queue.
    fn acquire_promised(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        ticket: Option<&Ticket>,
    ) -> Result<LockGrant> {
        let queues = &self.store.inner.lock_queues;
        let has_left = |number: u64| queues.has_left(name, number);
        self.store.change(|tx, now, s| {
            let turn = Turn {
                node: queues.node(),
                ticket: ticket.map(Ticket::number),
                alive_until: ticket.map(|_| alive_until(now)),
                has_left: &has_left,
            };
            let quota = s.quotas.locks;
            lock::acquire(tx, now, quota, &self.user, name, ttl, client_id, &turn)
        })
    }
}

/// Until when a waiter's transaction at `now` marks its process alive.
fn alive_until(now: Timestamp) -> DateTime<Utc> {
    now.to_datetime() + NODE_LEASE
}

impl Api for Session {
    fn acquire(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
    ) -> Result<LockGrant> {
        self.acquire_promised(name, ttl, client_id, None)
    }

    /// Blocks the calling thread; the waiters of every process sharing the store are
    /// granted the lock in the order they came (see [`waiting`]).
    fn acquire_within(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        wait: Duration,
    ) -> Result<LockGrant> {
        let give_up = waiting::give_up_at(wait);
        let signal = Arc::new(Signal::default());
        let ticket = self.join_queue(name, signal.waker())?;
        loop {
            let held_until = match self.acquire_in_turn(&ticket, ttl, client_id) {
                Err(Error::LockHeld { expires_at, .. }) if Instant::now() < give_up => expires_at,
                outcome => return outcome,
            };
            let retry = self.store.next_try(ticket.after_held(held_until));
            signal.wait_until(retry.map_or(give_up, |at| at.min(give_up)));
        }
    }

    fn release(&self, name: &LockName, lease_id: LeaseId) -> Result<()> {
        self.store
            .change(|tx, now, _| lock::release(tx, now, &self.user, name, lease_id))?;
        // After the commit (in a group, after the operation: the head's try queues behind it).
        self.store.inner.lock_queues.notify(name);
        Ok(())
    }

    fn renew(&self, name: &LockName, lease_id: LeaseId, ttl: Ttl) -> Result<Lease> {
        self.store
            .change(|tx, now, _| lock::renew(tx, now, &self.user, name, lease_id, ttl))
    }

    fn lock_status(&self, name: &LockName) -> Result<LockStatus> {
        self.store
            .transact_now(|tx, now, _| lock::status(tx, now, name))
    }

    fn locks(&self) -> Result<Vec<Lease>> {
        self.store
            .transact_now(|tx, now, _| lock::list(tx, now, &self.user))
    }

    fn check(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let inner = &*self.store.inner;
        let owner = self.user.id;
        // The rule, handed to the backend, which only makes the record's update atomic.
        let mut decision = None;
        let check = &mut |record: &mut LimitRecord, now| decision = Some(record.check(policy, now));
        if inner
            .backend
            .update_limit_now(&*inner.clock, owner, name, check)
        {
            return Ok(decision.expect("update_limit_now ran the check on the limit it found"));
        }
        self.check_in_transaction(name, policy)
    }

    fn limit_status(&self, name: &LimitName) -> Result<Decision> {
        self.store
            .transact_now(|tx, now, _| rate_limit::status(tx, now, self.user.id, name))
    }

    fn reset_limit(&self, name: &LimitName) -> Result<()> {
        self.store
            .change(|tx, now, _| rate_limit::reset(tx, now, self.user.id, name))
    }

    fn limits(&self) -> Result<Vec<LimitSummary>> {
        self.store
            .transact_now(|tx, now, _| rate_limit::list(tx, now, self.user.id))
    }

    fn set_flag(
        &self,
        name: &FlagName,
        enabled: bool,
        percentage: Option<Percentage>,
    ) -> Result<Flag> {
        self.store.change(|tx, now, s| {
            flag::set(
                tx,
                now,
                s.quotas.flags,
                self.user.id,
                name,
                enabled,
                percentage,
            )
        })
    }

    fn set_flag_enabled(&self, name: &FlagName, enabled: bool) -> Result<Flag> {
        self.store
            .change(|tx, now, _| flag::set_enabled(tx, now, self.user.id, name, enabled))
    }

    fn evaluate_flag(&self, name: &FlagName, subject: Option<&Subject>) -> Result<bool> {
        let own_login;
        let subject = match subject {
            Some(subject) => subject,
            None => {
                own_login = Subject::from(&self.user.login);
                &own_login
            }
        };
        self.store
            .transact(|tx, _| flag::evaluate(tx, self.user.id, name, subject))
    }

    fn delete_flag(&self, name: &FlagName) -> Result<()> {
        self.store
            .change(|tx, now, _| flag::delete(tx, now, self.user.id, name))
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        self.store.transact(|tx, _| flag::list(tx, self.user.id))
    }

    fn put_config_if(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        self.store.change(|tx, now, s| {
            let bounds = s.config_put_bounds();
            config::put(
                tx,
                now,
                bounds,
                &self.store.inner.validators,
                self.user.id,
                &self.user.login,
                key,
                &value,
                description.as_ref(),
                if_version,
            )
        })
    }

    fn rollback_config(
        &self,
        key: &ConfigKey,
        version: u64,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        self.store.change(|tx, now, s| {
            let bounds = s.config_put_bounds();
            let (owner, author) = (self.user.id, &self.user.login);
            let validators = &self.store.inner.validators;
            config::rollback(
                tx, now, bounds, validators, owner, author, key, version, if_version,
            )
        })
    }

    fn diff_config(&self, key: &ConfigKey, from: u64, to: u64) -> Result<ConfigDiff> {
        let (from, to) =
            (self.store).read(|tx| config_diff::versions(tx, self.user.id, key, from, to))?;
        // Made here, after the transaction: a large diff holds no lock.
        Ok(ConfigDiff::between(key, &from, &to))
    }

    fn get_config(&self, key: &ConfigKey, version: Option<i64>) -> Result<ConfigEntry> {
        self.store
            .transact(|tx, _| config::get(tx, self.user.id, key, version))
    }

    fn config_history_page(&self, key: &ConfigKey, page: HistoryPage) -> Result<ConfigHistory> {
        let (versions, next) = self
            .store
            .read(|tx| config::history(tx, self.user.id, key, page))?;
        // Copied out here, after the transaction: a memory backend's mutex is not held for it.
        let versions = versions.into_iter().map(Arc::unwrap_or_clone).collect();
        Ok(ConfigHistory { versions, next })
    }

    fn delete_config(&self, key: &ConfigKey) -> Result<()> {
        self.store.change(|tx, now, s| {
            config_delete::delete(tx, now, s.config_retention, self.user.id, key)
        })
    }

    fn purge_config(&self, key: &ConfigKey) -> Result<()> {
        self.store
            .change(|tx, now, _| config_delete::purge(tx, now, self.user.id, key))
    }

    fn undelete_config(&self, key: &ConfigKey) -> Result<ConfigEntry> {
        self.store.change(|tx, now, s| {
            let (retention, keys) = (s.config_retention, s.quotas.configs);
            config_delete::undelete(tx, now, retention, keys, self.user.id, key)
        })
    }

    fn configs(&self) -> Result<Vec<ConfigSummary>> {
        self.store.read(|tx| config::list(tx, self.user.id))
    }

    fn set_config_schema(
        &self,
        key: &ConfigKey,
        schema: Value,
        force: bool,
    ) -> Result<ConfigSchema> {
        self.store.transact_now(|tx, now, s| {
            let (owner, author) = (self.user.id, &self.user.login);
            let validators = &self.store.inner.validators;
            let bounds = s.config_schema_bounds();
            let schema = schema.clone();
            config_schema::set(
                tx, now, bounds, validators, owner, author, key, schema, force,
            )
        })
    }

    fn config_schema(&self, key: &ConfigKey) -> Result<ConfigSchema> {
        self.store
            .transact(|tx, _| config_schema::get(tx, self.user.id, key))
    }

    fn delete_config_schema(&self, key: &ConfigKey) -> Result<()> {
        self.store
            .transact(|tx, _| config_schema::delete(tx, self.user.id, key))
    }

    fn deleted_configs(&self) -> Result<Vec<ConfigSummary>> {
        self.store.transact_now(|tx, now, s| {
            config_delete::list_deleted(tx, now, s.config_retention, self.user.id)
        })
    }

    fn events(&self, since: u64, filter: &EventFilter, limit: usize) -> Result<EventPage> {
        self.store
            .read(|tx| event::read(tx, self.user.id, since, filter, limit))
    }
}
