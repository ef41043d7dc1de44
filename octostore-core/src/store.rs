//! The facade: a [`Store`] joins a backend, a clock and [`Settings`], and runs each operation
//! as one transaction of the backend; a [`Session`] is the store acting for one user. The
//! store also owns this process's queues of lock waiters ([`LockQueues`]).

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, Concurrency, Keys, Retained, Tx};
use crate::changes::{ChangeWaiter, Changes, OutsideCommits, Wake, WATCH_EVERY};
use crate::known_tokens::KnownTokens;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId};
use crate::records::rate_limit::LimitRecord;
use crate::rules::config::PutBounds;
use crate::rules::config_delete;
use crate::rules::config_schema::SchemaBounds;
use crate::rules::event::{self};
use crate::rules::identity::{self, Token};
use crate::rules::lock::{self};
use crate::rules::schema::Validators;
use crate::values::clock::{Clock, SystemClock, Timestamp};
use crate::values::error::Result;
use crate::values::names::{LimitName, Login};
use crate::waiting::{self, LockQueues, Next, HEAD_RECHECK, RELEASES_READ_EVERY};

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
    pub(crate) fn config_schema_bounds(&self) -> SchemaBounds {
        SchemaBounds {
            max_bytes: self.config_schema_max_bytes,
            keys: self.quotas.configs,
        }
    }

    /// The numbers the config rules bound a put by.
    pub(crate) fn config_put_bounds(&self) -> PutBounds {
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
                    store.read_log(|tx| Ok(tx.event_bounds()?.newest)).ok()
                };
                let lock_queues = LockQueues::default();
                if watched {
                    let weak = weak.clone();
                    lock_queues.read_releases_with(
                        Box::new(move |after: Option<u64>| {
                            let store = Store {
                                inner: weak.upgrade()?,
                            };
                            store.read_log(|tx| lock::released_after(tx, after)).ok()
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
    /// [`Ticket::after_held`](crate::waiting::Ticket::after_held)); `None`: only when woken. This process's first waiter tries at
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

    /// [`Backend::update_limit_now`] on this store's clock: a check of an existing limit made
    /// in place, where the backend can.
    #[inline]
    pub(crate) fn update_limit_now(
        &self,
        owner: UserId,
        name: &LimitName,
        update: &mut dyn FnMut(&mut LimitRecord, Timestamp),
    ) -> bool {
        (self.inner.backend).update_limit_now(&*self.inner.clock, owner, name, update)
    }

    /// The compiled JSON Schemas of config keys, by digest.
    pub(crate) fn validators(&self) -> &Validators {
        &self.inner.validators
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
    pub(crate) fn transact<R>(
        &self,
        op: impl FnMut(&mut dyn Tx, &Settings) -> Result<R>,
    ) -> Result<R> {
        self.transact_on(Keys::default(), op)
    }

    /// Runs `op`, which decides on `keys` ([`Key`](crate::Key) says what that binds it to),
    /// as [`transact`](Self::transact) does; with no keys, it is `transact`.
    pub(crate) fn transact_on<R>(
        &self,
        keys: Keys,
        mut op: impl FnMut(&mut dyn Tx, &Settings) -> Result<R>,
    ) -> Result<R> {
        let mut out = None;
        let settings = &self.inner.settings;
        let (backend, clock) = (&self.inner.backend, &*self.inner.clock);
        let run = &mut |tx: &mut dyn Tx| {
            out = Some(op(tx, settings)?);
            Ok(())
        };
        match keys.keys {
            [] => backend.transact(clock, run),
            _ => backend.transact_on(clock, keys, run),
        }?;
        Ok(out.expect("a committed transaction ran its operation"))
    }

    /// Runs `op`, which only reads, as one read-only transaction of the backend
    /// ([`Backend::read`]): on SQLite, beside the writer rather than in its queue.
    pub(crate) fn read<R>(&self, op: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        self.read_by(|backend, clock, op| backend.read(clock, op), op)
    }

    /// Runs `op`, which only reads, and reads the change log, as one read-only transaction
    /// ([`Backend::read_log`]).
    pub(crate) fn read_log<R>(&self, op: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        self.read_by(|backend, clock, op| backend.read_log(clock, op), op)
    }

    /// `op`'s answer, run by `run` as one read-only transaction.
    fn read_by<R>(
        &self,
        run: impl FnOnce(
            &dyn Backend,
            &dyn Clock,
            &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
        ) -> Result<()>,
        mut op: impl FnMut(&mut dyn Tx) -> Result<R>,
    ) -> Result<R> {
        let mut out = None;
        run(&*self.inner.backend, &*self.inner.clock, &mut |tx| {
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
    pub(crate) fn transact_now<R>(
        &self,
        op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        self.transact_now_on(Keys::default(), op)
    }

    /// [`transact_now`](Self::transact_now) for an operation that decides on `keys`.
    pub(crate) fn transact_now_on<R>(
        &self,
        keys: Keys,
        mut op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        self.transact_on(keys, |tx, settings| {
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
                let user = self.read(|tx| identity::authenticate(tx, &token))?;
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
    pub(crate) fn change<R>(
        &self,
        op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        self.change_on(Keys::default(), op)
    }

    /// [`change`](Self::change) for an operation that decides on `keys`.
    pub(crate) fn change_on<R>(
        &self,
        keys: Keys,
        op: impl FnMut(&mut dyn Tx, Timestamp, &Settings) -> Result<R>,
    ) -> Result<R> {
        thread_local! {
            static CHANGES: Cell<u64> = const { Cell::new(0) };
        }
        let outcome = self.transact_now_on(keys, op);
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

/// The store acting as one user: the embedded implementation of [`Api`](crate::Api).
#[derive(Clone)]
pub struct Session {
    pub(crate) store: Store,
    pub(crate) user: User,
}
