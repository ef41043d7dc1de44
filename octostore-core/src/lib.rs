//! OctoStore's core: distributed locks with fencing tokens, sliding-window rate limits,
//! feature flags with percentage rollouts and a versioned config store, as a synchronous
//! library with no async runtime.
//!
//! ```
//! use octostore_core::{Api, LimitName, Login, RatePolicy, Store};
//!
//! let store = Store::in_memory();
//! let me = store.session(store.local_user(&Login::parse("worker")?)?);
//! let decision = me.check(&LimitName::parse("api")?, RatePolicy::new(100, 60)?)?;
//! assert!(decision.allowed);
//! assert_eq!(decision.remaining, 99);
//! # Ok::<(), octostore_core::Error>(())
//! ```
//!
//! # Layout
//! Five layers, each a folder (the top, files), from the bottom; a module imports only
//! from its own layer and those below, and none imports one that imports it back
//! (`cargo test -p octostore-core --test suite layers` checks both):
//! - [`values`]: what is checked once, when made: validated names ([`LockName`]...) and
//!   bounds ([`Ttl`], [`RatePolicy`]...), an instant ([`Timestamp`]) and the [`Clock`] that
//!   reads it ([`SystemClock`] in production, [`ManualClock`] in tests; time comes from
//!   nowhere else), and the one [`Error`].
//! - [`records`]: what storage keeps, made of values: [`LeaseRecord`], [`LimitRecord`] and its
//!   sliding window, [`Flag`], [`ConfigHead`] and [`ConfigVersion`], [`User`] and
//!   [`TokenRecord`], and the change log's [`Event`]s.
//! - [`backend`]: the storage contract ([`Backend`], [`Tx`]) and the backends, which keep
//!   records and know no rule: [`MemoryBackend`], `SqliteBackend` (feature `sqlite`, on by
//!   default), one file shared safely by several processes, and `PostgresBackend` (feature
//!   `postgres`), one database shared by several server nodes.
//! - [`rules`]: the rules, once, in one module per primitive, as functions over a [`Tx`] and
//!   the transaction's `now`: [`lock`](rules::lock), [`rate_limit`](rules::rate_limit),
//!   [`flag`](rules::flag), [`config`](rules::config), and [`identity`](rules::identity) for
//!   users and tokens; [`event`](rules::event), the change log every change appends to. What a record means at an instant (a lease live, a limit's check, a
//!   flag on for a subject) is one of them, defined there as the record's method.
//! - On top, [`Store`] (`store.rs`) is the facade: a backend, a [`Clock`] and [`Settings`].
//!   Each operation is one call to [`Backend::transact`] (config history pages and lists,
//!   which only read, to [`Backend::read`]). [`Session`] is the store acting for one user and
//!   implements [`Api`] (`api.rs`), the operations a remote client offers too. [`Committer`]
//!   (`committer.rs`) runs operations for many callers on one thread, committing those that
//!   queue up meanwhile together: group commit for a serial backend such as SQLite.
//!   [`waiting`] (`waiting.rs`) is this process's side of each lock's queue of waiters, which
//!   storage keeps: first come, first served across processes ([`Api::acquire_within`]).
//!   `changes.rs` wakes whoever waits for changes ([`Store::on_change`]) once one commits,
//!   and [`Subscription`] (`subscription.rs`, [`Session::subscribe`]) follows the change log
//!   on it.
#![deny(missing_docs)]

pub mod values;

pub mod records;

pub mod backend;

pub mod rules;

pub mod api;
pub mod changes;
pub mod committer;
mod known_tokens;
mod session;
pub mod store;
pub mod subscription;
pub mod waiting;

pub use api::Api;
pub use backend::memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use backend::postgres::{PostgresBackend, PostgresOptions, TimeSource};
#[cfg(feature = "sqlite")]
pub use backend::sqlite::{Durability, SqliteBackend};
pub use backend::{Backend, Concurrency, Key, Keys, Tx};
pub use changes::{ChangeWaiter, Wake};
pub use committer::{Caller, Committer};
pub use json_patch;
pub use records::config::{ConfigHead, ConfigSchema, ConfigSummary, ConfigVersion, SchemaDigest};
pub use records::event::{Change, Event, EventKind, Kinds, LeaseChange};
pub use records::flag::Flag;
pub use records::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
pub use records::lock::{FencingToken, LeaseId, LeaseRecord};
pub use records::rate_limit::LimitRecord;
pub use records::targeting::{
    Constraint, Operand, Operator, Payload, Prerequisite, Rule, Segment, Targeting, Variant,
};
pub use rules::config::{ConfigEntry, ConfigHistory, HistoryPage};
pub use rules::config_diff::ConfigDiff;
pub use rules::event::{EventFilter, EventPage, MAX_EVENTS_PER_PAGE};
pub use rules::flag::bucket as flag_bucket;
pub use rules::flag_eval::{
    evaluate as evaluate_flag, Definitions, Evaluation, EvaluationContext, PropertyValue, Reason,
};
pub use rules::flag_targeting::TargetingChange;
pub use rules::identity::Token;
pub use rules::lock::{
    AcquireStatus, AllLocks, Lease, ListedLock, LockGrant, LockPage, LockStatus,
};
pub use rules::rate_limit::{Decision, LimitSummary};
pub use store::{Quotas, Session, Settings, Store, StoreBuilder, Swept, PRUNE_EVERY};
pub use subscription::{Subscription, SubscriptionItem};
pub use values::bounds::{Description, Percentage, RatePolicy, Ttl};
pub use values::clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use values::error::{Error, HeldBy, Resource, Result};
pub use values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, Login, PropertyName, SegmentName, Subject,
    VariantName,
};
pub use waiting::{LockQueues, Next, Ticket};
