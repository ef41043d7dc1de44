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
//! - [`Store`] (`store.rs`) is the facade: a backend, a [`Clock`] and [`Settings`]. Each
//!   operation is one call to [`Backend::transact`] (config history pages and lists, which
//!   only read, to [`Backend::read`]). [`Session`] is the store acting for one
//!   user and implements [`Api`], the operations a remote client offers too.
//! - The rules live once, in one module per primitive, as functions over a [`Tx`] and the
//!   transaction's `now`, in [`rules`]: `lock.rs`, `rate_limit.rs`, `flag.rs`, `config.rs`,
//!   and `identity.rs` for users and tokens.
//! - [`values`] ([`names`](values::names), [`bounds`](values::bounds)) makes validated
//!   values; an invalid name never reaches a rule.
//! - [`records`] holds what storage keeps (leases, limits and their windows, flags, configs,
//!   users and tokens), made of values.
//! - [`backend`] holds the storage contract ([`Backend`], [`Tx`]) and the backends, which
//!   keep records and know no rule: [`MemoryBackend`], `SqliteBackend` (feature
//!   `sqlite`, on by default), one file shared safely by several processes, and
//!   `PostgresBackend` (feature `postgres`), one database shared by several server nodes.
//! - [`Committer`] runs operations for many callers on one thread, committing those that
//!   queue up meanwhile together: group commit for a serial backend such as SQLite.
//! - Time comes only from a [`Clock`]: [`SystemClock`] in production, [`ManualClock`] in tests.
#![deny(missing_docs)]

pub mod values;

pub mod records;

pub mod backend;

pub mod rules;

pub mod api;
pub mod committer;
mod known_tokens;
pub mod store;

pub use api::Api;
pub use backend::memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use backend::postgres::{PostgresBackend, PostgresOptions, TimeSource};
#[cfg(feature = "sqlite")]
pub use backend::sqlite::{Durability, SqliteBackend};
pub use backend::{Backend, Concurrency, Tx};
pub use committer::{Caller, Committer};
pub use records::config::{ConfigHead, ConfigSummary, ConfigVersion};
pub use records::flag::Flag;
pub use records::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
pub use records::lock::{FencingToken, LeaseId, LeaseRecord};
pub use records::rate_limit::LimitRecord;
pub use rules::config::{ConfigEntry, ConfigHistory, HistoryPage};
pub use rules::flag::bucket as flag_bucket;
pub use rules::identity::Token;
pub use rules::lock::{AcquireStatus, Lease, LockGrant, LockStatus};
pub use rules::rate_limit::{Decision, LimitSummary};
pub use store::{Quotas, Session, Settings, Store, StoreBuilder, Swept};
pub use values::bounds::{Description, Percentage, RatePolicy, Ttl};
pub use values::clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use values::error::{Error, Resource, Result};
pub use values::names::{ClientId, ConfigKey, FlagName, LimitName, LockName, Login, Subject};
