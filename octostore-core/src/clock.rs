//! Time as a trait, so every rule about expiry and windows can be tested to the nanosecond.
//!
//! Architecture invariant: nothing in this crate reads the system clock except
//! [`SystemClock`]. Rules receive `now` from the transaction ([`crate::backend::Tx::now`]),
//! which asks the store's [`Clock`].

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

/// A source of the current instant.
///
/// Implementors must be cheap to call: every operation reads the clock once.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; share it with the store through an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use chrono::Duration;
/// use octostore_core::{Clock, ManualClock};
///
/// let clock = Arc::new(ManualClock::default());
/// let start = clock.now();
/// clock.advance(Duration::seconds(90));
/// assert_eq!(clock.now() - start, Duration::seconds(90));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or back, for a negative `by`).
    pub fn advance(&self, by: Duration) {
        *self.now.lock() += by;
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.now.lock() = instant;
    }
}

impl Default for ManualClock {
    /// A clock stopped at 2024-01-01T00:00:00Z, so test output is reproducible.
    fn default() -> Self {
        Self::new(DateTime::from_timestamp(1_704_067_200, 0).expect("a valid instant"))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}
