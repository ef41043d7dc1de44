//! The change log as storage keeps it: an [`Event`] for every change a user can see, each
//! numbered by a store-wide index that only increases (see `backend`'s duties for the
//! order it follows).

use chrono::{DateTime, Utc};

use crate::records::lock::FencingToken;
use crate::values::bounds::Percentage;
use crate::values::names::{ConfigKey, FlagName, LimitName, LockName, Login};

/// The kind of thing an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A lock's lease.
    Lock,
    /// A rate limit.
    Limit,
    /// A feature flag.
    Flag,
    /// A config key.
    Config,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 4] = [Self::Lock, Self::Limit, Self::Flag, Self::Config];

    /// The kind's name: `lock`, `limit`, `flag` or `config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Limit => "limit",
            Self::Flag => "flag",
            Self::Config => "config",
        }
    }

    /// The kind named `name` (as [`as_str`](Self::as_str) spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Self::Lock => 1,
            Self::Limit => 2,
            Self::Flag => 4,
            Self::Config => 8,
        }
    }
}

/// A set of [`EventKind`]s; by default all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    /// Every kind.
    pub const ALL: Kinds = Kinds(15);

    /// The set of `kinds`.
    pub fn of(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        Kinds(kinds.into_iter().fold(0, |bits, k| bits | k.bit()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The set as bits, one per kind (lock 1, limit 2, flag 4, config 8), as SQL stores them.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The kinds in the set.
    pub fn iter(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl Default for Kinds {
    fn default() -> Self {
        Self::ALL
    }
}

/// A lease, as a lock event tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseChange {
    /// The lock.
    pub name: LockName,
    /// The login of the lease's owner.
    pub holder: Login,
    /// The lease's fencing token.
    pub fencing_token: FencingToken,
    /// When the lease ends (or ended) unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A flag was set (created, replaced, turned on or off).
    FlagSet {
        /// The flag.
        name: FlagName,
        /// Whether it is on.
        enabled: bool,
        /// Its rollout, if any.
        percentage: Option<Percentage>,
    },
    /// A flag was deleted.
    FlagDeleted {
        /// The flag.
        name: FlagName,
    },
    /// A config key got a new version.
    ConfigPut {
        /// The key.
        key: ConfigKey,
        /// The new version.
        version: u64,
    },
    /// A config key was deleted with its history.
    ConfigDeleted {
        /// The key.
        key: ConfigKey,
    },
    /// A rate limit was reset (forgotten).
    LimitReset {
        /// The limit.
        name: LimitName,
    },
    /// A new lease took the lock.
    LockAcquired(LeaseChange),
    /// The lease was extended (to its new `expires_at`).
    LockRenewed(LeaseChange),
    /// Its holder released the lease.
    LockReleased(LeaseChange),
    /// The lease had expired, and storage forgot it.
    LockExpired(LeaseChange),
}

impl Change {
    /// What the change is about.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::FlagSet { .. } | Self::FlagDeleted { .. } => EventKind::Flag,
            Self::ConfigPut { .. } | Self::ConfigDeleted { .. } => EventKind::Config,
            Self::LimitReset { .. } => EventKind::Limit,
            Self::LockAcquired(_)
            | Self::LockRenewed(_)
            | Self::LockReleased(_)
            | Self::LockExpired(_) => EventKind::Lock,
        }
    }

    /// What happened to it: `set`, `deleted`, `put`, `reset`, `acquired`, `renewed`,
    /// `released` or `expired`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::FlagSet { .. } => "set",
            Self::FlagDeleted { .. } | Self::ConfigDeleted { .. } => "deleted",
            Self::ConfigPut { .. } => "put",
            Self::LimitReset { .. } => "reset",
            Self::LockAcquired(_) => "acquired",
            Self::LockRenewed(_) => "renewed",
            Self::LockReleased(_) => "released",
            Self::LockExpired(_) => "expired",
        }
    }

    /// The name of the lock, limit, flag or config key.
    pub fn name(&self) -> &str {
        match self {
            Self::FlagSet { name, .. } | Self::FlagDeleted { name } => name.as_str(),
            Self::ConfigPut { key, .. } | Self::ConfigDeleted { key } => key.as_str(),
            Self::LimitReset { name } => name.as_str(),
            Self::LockAcquired(lease)
            | Self::LockRenewed(lease)
            | Self::LockReleased(lease)
            | Self::LockExpired(lease) => lease.name.as_str(),
        }
    }
}

/// One change, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's place in the store's log: every later commit's events have larger ones.
    pub index: u64,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// What changed.
    pub change: Change,
}
