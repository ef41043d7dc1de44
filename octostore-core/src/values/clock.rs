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
///
/// Within a thread, readings never go back and never stand still for long: a reading that
/// the counter would put at or before the thread's last one (the counter stalled, or moved
/// back as the thread changed CPUs) reads the wall clock instead; a wall-clock reading
/// before the last reading (the counter ran fast) keeps the last reading; and a counter
/// that lags is caught up with at the next read of the wall clock. So readings run at most
/// one anchor period (1 ms) ahead of the wall clock. They go back only when the wall clock
/// itself steps back (it was corrected), which every rule tolerates.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How long a thread extrapolates the wall clock from one reading of it.
const ANCHOR_NANOS: u64 = 1_000_000;
/// A wall-clock read that took longer than this (the thread was preempted during it) is not
/// paired with the counter: the pair would be off by the delay.
const MAX_READ_NANOS: u64 = 10_000;

/// What [`SystemClock`] reads: a fast counter and the wall clock. [`Os`] in production; the
/// tests' counter stalls, lags and runs back at will.
trait Sources {
    /// The counter's raw value.
    fn ticks(&self) -> u64;
    /// The nanoseconds the counter measured from `from` to `to`; 0 unless `to` is later.
    fn nanos_between(&self, from: u64, to: u64) -> u64;
    /// The wall clock, in nanoseconds since the Unix epoch.
    fn wall(&self) -> i64;
}

/// The CPU's counter through `quanta` (the process's, looked up once a read), and
/// `CLOCK_REALTIME`.
struct Os(&'static quanta::Clock);

impl Sources for Os {
    #[inline]
    fn ticks(&self) -> u64 {
        self.0.raw()
    }

    #[inline]
    fn nanos_between(&self, from: u64, to: u64) -> u64 {
        self.0.delta_as_nanos(from, to)
    }

    fn wall(&self) -> i64 {
        wall_clock_nanos()
    }
}

fn counter() -> &'static quanta::Clock {
    static COUNTER: std::sync::LazyLock<quanta::Clock> =
        std::sync::LazyLock::new(quanta::Clock::new);
    &COUNTER
}

/// One reading of the wall clock and the counter's value just after it.
#[derive(Clone, Copy)]
struct Anchor {
    ticks: u64,
    wall: i64,
}

/// What one thread keeps between its readings: its anchor and its last reading. A read
/// writes only the reading, so the two are cells of their own.
struct Reader {
    anchor: Cell<Option<Anchor>>,
    last: Cell<i64>,
}

impl Reader {
    const fn new() -> Self {
        Self {
            anchor: Cell::new(None),
            last: Cell::new(i64::MIN),
        }
    }

    /// The anchor's wall time plus what the counter measured since, if that is within the
    /// anchor period and after the last reading; else a fresh read of the wall clock.
    #[inline]
    fn read(&self, sources: &impl Sources) -> i64 {
        let ticks = sources.ticks();
        if let Some(a) = self.anchor.get() {
            let since = sources.nanos_between(a.ticks, ticks);
            let t = a.wall.saturating_add(since as i64);
            if since < ANCHOR_NANOS && t > self.last.get() {
                self.last.set(t);
                return t;
            }
        }
        self.reanchor(sources, ticks)
    }

    /// Reads the wall clock, and pairs it with the counter for the next reads if the read
    /// was quick. Once a millisecond, so kept out of line.
    #[cold]
    #[inline(never)]
    fn reanchor(&self, sources: &impl Sources, ticks: u64) -> i64 {
        let wall = sources.wall();
        let after = sources.ticks();
        let stepped_back = self.anchor.get().is_some_and(|a| wall < a.wall);
        if sources.nanos_between(ticks, after) < MAX_READ_NANOS {
            self.anchor.set(Some(Anchor { ticks: after, wall }));
        }
        let t = if stepped_back {
            wall
        } else {
            wall.max(self.last.get())
        };
        self.last.set(t);
        t
    }
}

thread_local! {
    static READER: Reader = const { Reader::new() };
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        self.timestamp().to_datetime()
    }

    fn timestamp(&self) -> Timestamp {
        let os = Os(counter());
        Timestamp(READER.with(|reader| reader.read(&os)))
    }
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

    /// A counter and a wall clock that move only when told: a tick is a nanosecond.
    #[derive(Default)]
    struct Simulated {
        ticks: Cell<u64>,
        wall: Cell<i64>,
    }

    impl Sources for Simulated {
        fn ticks(&self) -> u64 {
            self.ticks.get()
        }

        fn nanos_between(&self, from: u64, to: u64) -> u64 {
            to.saturating_sub(from)
        }

        fn wall(&self) -> i64 {
            self.wall.get()
        }
    }

    proptest::proptest! {
        /// Steps that move the wall clock forward and the counter forward, not at all, or
        /// back (as when a thread moves to a CPU whose counter is behind), by any amounts:
        /// readings never go back, never run a whole anchor period ahead of the wall
        /// clock, and whenever the counter measured nothing since the last reading, they
        /// have caught up with the wall clock.
        #[test]
        fn readings_keep_to_the_wall_clock_whatever_the_counter_does(
            steps in proptest::collection::vec(
                (0i64..3_000_000, proptest::prop_oneof![
                    proptest::strategy::Just(0i64),
                    -1_000_000i64..0,
                    0i64..3_000_000,
                ]),
                1..200,
            )
        ) {
            let sources = Simulated {
                ticks: Cell::new(1 << 40),
                wall: Cell::new(1_704_067_200_000_000_000),
            };
            let reader = Reader::new();
            let mut last = reader.read(&sources);
            for (wall_step, counter_step) in steps {
                sources.wall.set(sources.wall.get() + wall_step);
                sources.ticks.set(sources.ticks.get().wrapping_add_signed(counter_step));
                let t = reader.read(&sources);
                let wall = sources.wall.get();
                proptest::prop_assert!(t >= last, "went back from {} to {}", last, t);
                proptest::prop_assert!(t < wall + ANCHOR_NANOS as i64, "{} ahead of {}", t, wall);
                if counter_step <= 0 {
                    proptest::prop_assert!(t >= wall, "stood at {} while the wall clock read {}", t, wall);
                }
                last = t;
            }
        }
    }

    #[test]
    fn a_stalled_counter_reads_the_wall_clock_and_a_fast_one_is_never_undone() {
        let sources = Simulated::default();
        let reader = Reader::new();
        assert_eq!(reader.read(&sources), 0);
        // The counter stops while the wall clock runs.
        sources.wall.set(5_000_000);
        assert_eq!(reader.read(&sources), 5_000_000);
        // The counter measures 900 µs where the wall clock moved 500; at the next anchor
        // the reading stays at its last until the wall clock passes it.
        sources.ticks.set(900_000);
        sources.wall.set(5_500_000);
        assert_eq!(reader.read(&sources), 5_900_000);
        sources.ticks.set(1_100_000);
        sources.wall.set(5_600_000);
        assert_eq!(reader.read(&sources), 5_900_000);
        sources.wall.set(6_000_000);
        assert_eq!(reader.read(&sources), 6_000_000);
    }

    #[test]
    fn readings_follow_the_wall_clock_when_it_steps_back() {
        let sources = Simulated::default();
        sources.wall.set(10_000_000_000);
        let reader = Reader::new();
        assert_eq!(reader.read(&sources), 10_000_000_000);
        sources.ticks.set(2_000_000);
        sources.wall.set(4_000_000_000);
        assert_eq!(reader.read(&sources), 4_000_000_000);
        sources.ticks.set(2_000_100);
        assert_eq!(reader.read(&sources), 4_000_000_100);
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
