//! Time as a trait, so every rule about expiry and windows can be tested to the nanosecond.
//!
//! Architecture invariant: nothing in this crate reads the system clock except
//! [`SystemClock`]. Rules receive `now` from the transaction ([`crate::backend::Tx::now`]),
//! which asks the store's [`Clock`], and only operations that use time read it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// An instant as whole nanoseconds since the Unix epoch: the form the rules compute with,
/// because comparing and adding integers is far cheaper than calendar arithmetic.
///
/// It spans 1677-09-21 to 2262-04-11 (the range of `i64` nanoseconds, the one the SQLite
/// backend stores); instants outside it are clamped to its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `nanos` nanoseconds after the Unix epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// The instant `seconds` later, clamped to the representable range.
    pub fn plus_seconds(self, seconds: u32) -> Self {
        Self(self.0.saturating_add(i64::from(seconds) * NANOS_PER_SECOND))
    }

    /// The same instant as a calendar date and time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// The instant, clamped to the representable range.
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        }))
    }
}

/// A source of the current instant.
///
/// Implementors must be cheap to call: every operation that uses time reads the clock once.
/// [`now`](Self::now) and [`timestamp`](Self::timestamp) must tell the same time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The current instant as a [`Timestamp`], which is what the rules read. The default
    /// converts [`now`](Self::now); a clock that can count nanoseconds directly overrides it,
    /// as [`SystemClock`] does, to skip the calendar conversions.
    fn timestamp(&self) -> Timestamp {
        Timestamp::from(self.now())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn timestamp(&self) -> Timestamp {
        (**self).timestamp()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Reads the clock [`Utc::now`] reads, `CLOCK_REALTIME`, without building a calendar
    /// date from it, and on Unix with `clock_gettime` itself: 27 ns on the benchmark machine
    /// where `SystemTime::now` and its conversion to a `Duration` take 40.
    #[cfg(unix)]
    fn timestamp(&self) -> Timestamp {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable `timespec` for the call's duration, and
        // `CLOCK_REALTIME` exists on every Unix; the call writes nothing else.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        assert_eq!(status, 0, "CLOCK_REALTIME cannot be read");
        // `time_t` and `c_long` are `i64` here but narrower on some 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let nanos = i64::from(now.tv_sec)
            .checked_mul(NANOS_PER_SECOND)
            .and_then(|n| n.checked_add(i64::from(now.tv_nsec)));
        Timestamp(nanos.unwrap_or(if now.tv_sec < 0 { i64::MIN } else { i64::MAX }))
    }

    /// Reads the clock [`Utc::now`] reads without building a calendar date from it.
    #[cfg(not(unix))]
    fn timestamp(&self) -> Timestamp {
        let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        Timestamp(nanos)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_exactly_and_clamp_outside_their_range() {
        let t = DateTime::from_timestamp(1_704_067_200, 123_456_789).unwrap();
        let stamp = Timestamp::from(t);
        assert_eq!(stamp.nanos(), 1_704_067_200_123_456_789);
        assert_eq!(stamp.to_datetime(), t);
        assert_eq!(
            stamp.plus_seconds(30).to_datetime(),
            t + Duration::seconds(30)
        );
        let far = DateTime::from_timestamp(20_000_000_000, 0).unwrap();
        assert_eq!(Timestamp::from(far).nanos(), i64::MAX);
        assert_eq!(Timestamp::from(DateTime::<Utc>::MIN_UTC).nanos(), i64::MIN);
        assert_eq!(
            Timestamp::from_nanos(i64::MAX).plus_seconds(1).nanos(),
            i64::MAX
        );
    }

    #[test]
    fn the_system_clock_tells_the_same_time_both_ways() {
        let clock = SystemClock;
        let before = Timestamp::from(clock.now());
        let stamp = clock.timestamp();
        let after = Timestamp::from(clock.now());
        assert!(
            before <= stamp && stamp <= after,
            "{before:?} {stamp:?} {after:?}"
        );
    }
}
