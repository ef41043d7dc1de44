//! Time as a trait, so every rule about expiry and windows can be tested to the nanosecond.
//!
//! Architecture invariant: nothing in this crate reads the system clock except
//! [`SystemClock`]. Rules receive `now` from the transaction ([`crate::backend::Tx::now`]),
//! which asks the store's [`Clock`], and only operations that use time read it.

use std::cell::Cell;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use parking_lot::Mutex;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;
/// Days from 0001-01-01 (day 1 of the common era, as chrono counts) to 1970-01-01.
const DAYS_FROM_CE_TO_UNIX_EPOCH: i64 = 719_163;

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
    ///
    /// Finding the date of a day number is most of the conversion's cost (~15 ns, where the
    /// rest takes ~2), so each thread remembers the last day it converted and where it
    /// starts: answers about now (a lease's expiry, a window's reset) fall on the same days.
    pub fn to_datetime(self) -> DateTime<Utc> {
        thread_local! {
            static LAST_DAY: Cell<Option<(i64, NaiveDate)>> = const { Cell::new(None) };
        }
        let remembered = LAST_DAY.get().and_then(|(start, date)| {
            let into = self.0.checked_sub(start)?;
            (0..NANOS_PER_DAY).contains(&into).then_some((into, date))
        });
        let (into_day, date) = remembered.unwrap_or_else(|| {
            let day = self.0.div_euclid(NANOS_PER_DAY);
            let date = (i32::try_from(day + DAYS_FROM_CE_TO_UNIX_EPOCH).ok())
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .expect("every i64 of nanoseconds is a date chrono knows");
            // The first day of the range starts before it: it is never remembered.
            if let Some(start) = day.checked_mul(NANOS_PER_DAY) {
                LAST_DAY.set(Some((start, date)));
            }
            (self.0.rem_euclid(NANOS_PER_DAY), date)
        });
        let into_day = into_day as u64;
        let per_second = NANOS_PER_SECOND as u64;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(
            (into_day / per_second) as u32,
            (into_day % per_second) as u32,
        )
        .expect("a second of the day and its nanoseconds");
        date.and_time(time).and_utc()
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

/// The operating system's wall clock (`CLOCK_REALTIME`), read at the speed of the CPU's
/// timestamp counter.
///
/// Each thread reads the wall clock at most once a millisecond and in between adds the
/// time the counter measured since (through `quanta`, which calibrates the counter against
/// the monotonic clock once per process, in about a millisecond, and falls back to that clock
/// where the counter is not reliable). A read costs ~12 ns instead of `clock_gettime`'s ~30.
/// The price is an error of at most the counter's calibration error over one anchor period
/// (well under a microsecond), and a step of that size when a thread re-anchors: the wall
/// clock itself may step back further when it is corrected, which every rule tolerates.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How long a thread extrapolates the wall clock from one reading of it.
const ANCHOR_NANOS: u64 = 1_000_000;
/// A wall-clock read that took longer than this (the thread was preempted during it) is not
/// paired with the counter: the pair would be off by the delay.
const MAX_READ_NANOS: u64 = 10_000;

/// One reading of the wall clock and the counter's value just after it.
#[derive(Clone, Copy)]
struct Anchor {
    ticks: u64,
    wall: i64,
}

fn counter() -> &'static quanta::Clock {
    static COUNTER: std::sync::LazyLock<quanta::Clock> =
        std::sync::LazyLock::new(quanta::Clock::new);
    &COUNTER
}

thread_local! {
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        self.timestamp().to_datetime()
    }

    fn timestamp(&self) -> Timestamp {
        let counter = counter();
        let ticks = counter.raw();
        if let Some(a) = ANCHOR.get() {
            let since = counter.delta_as_nanos(a.ticks, ticks);
            if since < ANCHOR_NANOS {
                return Timestamp(a.wall.saturating_add(since as i64));
            }
        }
        reanchor(counter, ticks)
    }
}

/// Reads the wall clock, and pairs it with the counter for this thread's next reads if the
/// read was quick. Once a millisecond, so kept out of line.
#[cold]
#[inline(never)]
fn reanchor(counter: &quanta::Clock, ticks: u64) -> Timestamp {
    let wall = wall_clock_nanos();
    let after = counter.raw();
    if counter.delta_as_nanos(ticks, after) < MAX_READ_NANOS {
        ANCHOR.set(Some(Anchor { ticks: after, wall }));
    }
    Timestamp(wall)
}

/// `CLOCK_REALTIME` in nanoseconds, read with `clock_gettime` itself (`SystemTime::now` and
/// its conversion to a `Duration` cost a third more).
#[cfg(unix)]
fn wall_clock_nanos() -> i64 {
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
    nanos.unwrap_or(if now.tv_sec < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(not(unix))]
fn wall_clock_nanos() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
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

    proptest::proptest! {
        #[test]
        fn dates_agree_with_chronos_own_conversion(
            instants in proptest::collection::vec(proptest::num::i64::ANY, 1..50),
            offsets in proptest::collection::vec(-200_000_000_000_000i64..200_000_000_000_000, 1..50),
        ) {
            // Far-apart instants, and instants near one another (the remembered day).
            for nanos in instants.iter().copied().chain(
                offsets.iter().map(|o| 1_704_067_200_000_000_000i64.saturating_add(*o)),
            ) {
                proptest::prop_assert_eq!(
                    Timestamp::from_nanos(nanos).to_datetime(),
                    DateTime::from_timestamp_nanos(nanos)
                );
            }
        }
    }

    #[test]
    fn the_system_clock_keeps_to_the_operating_systems_wall_clock() {
        let clock = SystemClock;
        // Across several anchor periods, each read lies within the reads of the wall clock
        // itself just before and after it, give or take the counter's error.
        let slack = 50_000;
        for _ in 0..200_000 {
            let before = wall_clock_nanos();
            let stamp = clock.timestamp().nanos();
            let after = wall_clock_nanos();
            assert!(
                before - slack <= stamp && stamp <= after + slack,
                "{before} {stamp} {after}"
            );
        }
        let now = Timestamp::from(clock.now()).nanos();
        assert!((now - wall_clock_nanos()).abs() < 1_000_000);
    }
}
