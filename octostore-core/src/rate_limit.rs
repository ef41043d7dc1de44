//! Rate limits: a sliding window in bounded memory.
//!
//! **Guarantee:** in every half-open interval `(t - window, t]`, at most `max_requests` checks
//! of one limit are allowed. The window is cut into [`SUB_WINDOWS`] sub-windows; each keeps a
//! count and the instant of its latest admission. A sub-window counts, whole, until its
//! latest admission has left the window. That over-counts only the one sub-window straddling
//! the window's start, so the guarantee holds, and a client at the allowed rate is still
//! admitted at about `SUB_WINDOWS / (SUB_WINDOWS + 1)` (94%) of that rate, or fully when each
//! sub-window holds at most one admission.

use chrono::{DateTime, Utc};

use crate::backend::Tx;
use crate::bounds::RatePolicy;
use crate::clock::Timestamp;
use crate::error::{Error, Resource, Result};
use crate::identity::UserId;
use crate::names::LimitName;

/// How many sub-windows a window is cut into.
pub const SUB_WINDOWS: usize = 16;
/// A window plus the sub-window that straddles its start.
const SLOTS: usize = SUB_WINDOWS + 1;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The answer to a check (or, without consuming, to a status request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the check was allowed (for a status: whether a check would be).
    pub allowed: bool,
    /// How many more checks would be allowed right now.
    pub remaining: u32,
    /// The earliest instant at which `remaining` grows; `now` when nothing is counted.
    pub reset_at: DateTime<Utc>,
    /// When not allowed: whole seconds until `reset_at`, at least 1.
    pub retry_after_seconds: Option<u64>,
}

/// One limit as [`limits`](crate::Api::limits) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSummary {
    /// The limit.
    pub name: LimitName,
    /// The policy of its latest check.
    pub policy: RatePolicy,
    /// How many admissions the window counts now.
    pub current_count: u32,
    /// The state as a status request sees it.
    pub decision: Decision,
}

/// What a backend stores for one limit: a fixed size whatever `max_requests` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRecord {
    /// The policy of the latest check.
    pub policy: RatePolicy,
    window: SlidingWindow,
}

impl LimitRecord {
    /// The record as bytes, for backends that store it as one value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + SLOTS * 12);
        out.extend_from_slice(&self.policy.max_requests().to_le_bytes());
        out.extend_from_slice(&self.policy.window_seconds().to_le_bytes());
        out.extend_from_slice(&self.window.head.to_le_bytes());
        for (count, latest) in self.window.counts.iter().zip(&self.window.latest) {
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&latest.to_le_bytes());
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::Storage("corrupt rate-limit record".into());
        if bytes.len() != 16 + SLOTS * 12 {
            return Err(corrupt());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let i64_at = |i: usize| i64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let policy = RatePolicy::new(u32_at(0).into(), u32_at(4).into()).map_err(|_| corrupt())?;
        let window = SlidingWindow::from_slots(
            i64_at(8),
            std::array::from_fn(|i| u32_at(16 + i * 12)),
            std::array::from_fn(|i| i64_at(16 + i * 12 + 4)),
        )
        .ok_or_else(corrupt)?;
        Ok(Self { policy, window })
    }

    /// Whether nothing is counted in the window at `now`: such a limit may be forgotten.
    pub fn is_idle(&self, now: Timestamp) -> bool {
        let t = self.window.effective_now(now.nanos());
        self.window.tally(t, window_nanos(self.policy)).counted == 0
    }

    /// A limit that has counted nothing yet.
    fn new(policy: RatePolicy) -> Self {
        Self {
            policy,
            window: SlidingWindow::empty(),
        }
    }
}

/// A ring of sub-windows; slot `i % SLOTS` holds sub-window `i` for `i` in
/// `head - SUB_WINDOWS ..= head`: how many admissions it counts, and the instant
/// (nanoseconds since the epoch) of the latest of them, or 0 while it counts none.
///
/// **Invariant:** a slot's latest admission lies in the sub-window the slot holds (every
/// admission goes to the sub-window of its instant, which becomes the head). So the
/// latest admissions of the non-empty slots grow with their sub-windows: the newest one is
/// the latest admission of all, and the slots that still count at an instant (latest
/// admission inside the window) are the newest ones, after those that no longer do. With
/// the running `total` and the bit set of non-empty slots, a check reads only the newest
/// non-empty slot and the oldest ones up to the first that counts: usually two slots, not 17,
/// whether the window is crowded or nearly empty. Counts and instants are kept in two arrays
/// rather than one of pairs, which would pad each pair to 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlidingWindow {
    head: i64,
    /// The sum of `counts`.
    total: u32,
    /// Bit `s` is set when slot `s` counts any admission.
    filled: u32,
    counts: [u32; SLOTS],
    latest: [i64; SLOTS],
}

/// The live sub-windows of a window at one instant.
struct Tally {
    /// Admissions counted.
    counted: u32,
    /// The earliest latest admission among the sub-windows that count, if any counts.
    earliest: Option<i64>,
}

fn window_nanos(policy: RatePolicy) -> i64 {
    i64::from(policy.window_seconds()) * NANOS_PER_SECOND
}

/// Sub-window width: the window divided into `SUB_WINDOWS`, rounded up.
fn width(window: i64) -> i64 {
    (window + SUB_WINDOWS as i64 - 1) / SUB_WINDOWS as i64
}

fn slot_of(index: i64) -> usize {
    index.rem_euclid(SLOTS as i64) as usize
}

impl SlidingWindow {
    fn empty() -> Self {
        Self {
            head: i64::MIN,
            total: 0,
            filled: 0,
            counts: [0; SLOTS],
            latest: [0; SLOTS],
        }
    }

    /// The window of `counts` and `latest`, with `head` as its newest sub-window; `None` if
    /// the counts add up past what a window can count.
    fn from_slots(head: i64, counts: [u32; SLOTS], latest: [i64; SLOTS]) -> Option<Self> {
        let filled = (counts.iter().enumerate())
            .filter(|&(_, &count)| count > 0)
            .fold(0, |filled, (slot, _)| filled | 1 << slot);
        let total = counts
            .iter()
            .try_fold(0u32, |total, &n| total.checked_add(n))?;
        Some(Self {
            head,
            total,
            filled,
            counts,
            latest,
        })
    }

    /// The non-empty slots by age: the slot of the oldest sub-window of the ring, and a bit
    /// set whose bit `k` is set when the `k`-th oldest sub-window counts any admission.
    fn filled_by_age(&self) -> (usize, u32) {
        let oldest = (slot_of(self.head) + 1) % SLOTS;
        let by_age = (self.filled >> oldest) | (self.filled << (SLOTS - oldest));
        (oldest, by_age & ((1 << SLOTS) - 1))
    }

    /// The non-empty slots, oldest sub-window first.
    fn filled_oldest_first(&self) -> impl Iterator<Item = usize> {
        let (oldest, mut by_age) = self.filled_by_age();
        std::iter::from_fn(move || {
            (by_age != 0).then(|| {
                let age = by_age.trailing_zeros() as usize;
                by_age &= by_age - 1;
                (oldest + age) % SLOTS
            })
        })
    }

    /// The instant to judge at: `now`, or the latest admission if the clock went back, so a
    /// clock stepping backwards can never free capacity.
    fn effective_now(&self, now: i64) -> i64 {
        let (oldest, by_age) = self.filled_by_age();
        if by_age == 0 {
            return now;
        }
        let newest = (oldest + (u32::BITS - 1 - by_age.leading_zeros()) as usize) % SLOTS;
        now.max(self.latest[newest])
    }

    /// The sub-window `t` lies in: most often the head, which two multiplications confirm,
    /// sparing the division (tens of cycles).
    fn index_of(&self, t: i64, width: i64) -> i64 {
        let head_start = self.head.checked_mul(width);
        let in_head = head_start.is_some_and(|start| {
            start <= t && t.checked_sub(width).is_some_and(|before| before < start)
        });
        if in_head {
            self.head
        } else {
            t.div_euclid(width)
        }
    }

    /// Makes sub-window `index` the head, clearing those that fall out of the ring.
    fn advance_to(&mut self, index: i64) {
        if index <= self.head {
            return;
        }
        if self.head == i64::MIN || index - self.head >= SLOTS as i64 {
            *self = Self {
                head: index,
                ..Self::empty()
            };
            return;
        }
        for i in self.head + 1..=index {
            let slot = slot_of(i);
            self.total -= self.counts[slot];
            self.filled &= !(1 << slot);
            self.counts[slot] = 0;
            self.latest[slot] = 0;
        }
        self.head = index;
    }

    /// Counts `count` admissions, the latest at `latest`, in sub-window `index`, which
    /// becomes the head if it is later.
    fn admit(&mut self, index: i64, latest: i64, count: u32) {
        self.advance_to(index);
        let slot = slot_of(index);
        // An empty slot's `latest` is meaningless (0): before 1970 it would win a `max`.
        let was_filled = self.filled & 1 << slot != 0;
        self.latest[slot] = if was_filled {
            self.latest[slot].max(latest)
        } else {
            latest
        };
        self.counts[slot] += count;
        self.total += count;
        self.filled |= 1 << slot;
    }

    /// The sub-windows whose latest admission is inside `(t - window, t]`: all but the
    /// oldest ones, which are skipped from the ring's old end.
    fn tally(&self, t: i64, window: i64) -> Tally {
        // `None` when the window reaches past the earliest instant: then it holds them all.
        let since = t.checked_sub(window);
        let mut counted = self.total;
        for slot in self.filled_oldest_first() {
            if since.is_none_or(|since| self.latest[slot] > since) {
                return Tally {
                    counted,
                    earliest: Some(self.latest[slot]),
                };
            }
            counted -= self.counts[slot];
        }
        Tally {
            counted,
            earliest: None,
        }
    }

    /// Re-cuts the window for a new width, moving each admission to the sub-window of its
    /// sub-window's latest admission: later, never earlier, so nothing is under-counted.
    fn recut(&self, width: i64) -> Self {
        let mut recut = Self::empty();
        for slot in self.filled_oldest_first() {
            let latest = self.latest[slot];
            recut.admit(latest.div_euclid(width), latest, self.counts[slot]);
        }
        recut
    }
}

/// A [`Decision`] as the rules make it, with `reset_at` still a [`Timestamp`]: the calendar
/// date is made only when the caller gets the decision, after the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    allowed: bool,
    remaining: u32,
    reset_at: Timestamp,
    retry_after_seconds: Option<u64>,
}

impl Verdict {
    /// The answer at `now` for a window that counts `tally`.
    fn new(now: i64, window: i64, max: u32, tally: &Tally, allowed: bool) -> Self {
        let reset_at = (tally.earliest).map_or(now, |earliest| earliest.saturating_add(window));
        let retry_after_seconds = (!allowed).then(|| {
            let wait = reset_at.saturating_sub(now).max(1);
            (wait as u64).div_ceil(NANOS_PER_SECOND as u64)
        });
        Self {
            allowed,
            remaining: max.saturating_sub(tally.counted),
            reset_at: Timestamp::from_nanos(reset_at),
            retry_after_seconds,
        }
    }

    /// The decision, as callers see it.
    pub(crate) fn decision(self) -> Decision {
        Decision {
            allowed: self.allowed,
            remaining: self.remaining,
            reset_at: self.reset_at.to_datetime(),
            retry_after_seconds: self.retry_after_seconds,
        }
    }
}

/// Counts one check at `now` under `policy` in `record`, if the window allows it.
fn check_record(record: &mut LimitRecord, policy: RatePolicy, now: Timestamp) -> Verdict {
    let window = window_nanos(policy);
    let width = width(window);
    if record.policy.window_seconds() != policy.window_seconds() {
        record.window = record.window.recut(width);
    }
    record.policy = policy;
    let state = &mut record.window;
    let now = now.nanos();
    let t = state.effective_now(now);
    state.advance_to(state.index_of(t, width));
    let mut tally = state.tally(t, window);
    let allowed = tally.counted < policy.max_requests();
    if allowed {
        state.admit(state.head, t, 1);
        // `t` is the latest instant in the window, so it is the earliest only if alone.
        tally.counted += 1;
        tally.earliest.get_or_insert(t);
    }
    Verdict::new(now, window, policy.max_requests(), &tally, allowed)
}

fn peek(record: &LimitRecord, now: Timestamp) -> (u32, Decision) {
    let window = window_nanos(record.policy);
    let now = now.nanos();
    let t = record.window.effective_now(now);
    let tally = record.window.tally(t, window);
    let allowed = tally.counted < record.policy.max_requests();
    let verdict = Verdict::new(now, window, record.policy.max_requests(), &tally, allowed);
    (tally.counted, verdict.decision())
}

/// Counts one check; the caller makes the [`Decision`] from the verdict after the
/// transaction.
pub(crate) fn check(
    tx: &mut dyn Tx,
    now: Timestamp,
    quota: usize,
    owner: UserId,
    name: &LimitName,
    policy: RatePolicy,
) -> Result<Verdict> {
    let mut verdict = None;
    let update = &mut |record: &mut LimitRecord| verdict = Some(check_record(record, policy, now));
    if tx.update_limit(owner, name, update)? {
        return Ok(verdict.expect("update_limit ran the update on the limit it found"));
    }
    check_quota(tx, now, quota, owner)?;
    let mut record = LimitRecord::new(policy);
    let verdict = check_record(&mut record, policy, now);
    tx.put_limit(owner, name, &record)?;
    Ok(verdict)
}

/// Idle limits still count in the store until deleted, so only when the raw count reaches
/// the quota are the owner's idle limits forgotten and the rest counted.
fn check_quota(tx: &mut dyn Tx, now: Timestamp, quota: usize, owner: UserId) -> Result<()> {
    if tx.count_limits_of(owner)? < quota {
        return Ok(());
    }
    let mut active = 0;
    for (name, record) in tx.limits_of(owner)? {
        if record.is_idle(now) {
            tx.delete_limit(owner, &name)?;
        } else {
            active += 1;
        }
    }
    if active >= quota {
        return Err(Error::QuotaExceeded {
            what: Resource::Limit,
            limit: quota,
        });
    }
    Ok(())
}

pub(crate) fn status(
    tx: &mut dyn Tx,
    now: Timestamp,
    owner: UserId,
    name: &LimitName,
) -> Result<Decision> {
    let record = tx
        .limit(owner, name)?
        .ok_or_else(|| Error::not_found(Resource::Limit, name))?;
    Ok(peek(&record, now).1)
}

pub(crate) fn reset(tx: &mut dyn Tx, owner: UserId, name: &LimitName) -> Result<()> {
    if tx.delete_limit(owner, name)? {
        Ok(())
    } else {
        Err(Error::not_found(Resource::Limit, name))
    }
}

pub(crate) fn list(tx: &mut dyn Tx, now: Timestamp, owner: UserId) -> Result<Vec<LimitSummary>> {
    let mut limits: Vec<LimitSummary> = tx
        .limits_of(owner)?
        .into_iter()
        .map(|(name, record)| {
            let (current_count, decision) = peek(&record, now);
            LimitSummary {
                name,
                policy: record.policy,
                current_count,
                decision,
            }
        })
        .collect();
    limits.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_nanos((1_704_067_200_000 + ms) * 1_000_000)
    }

    fn date(ms: i64) -> DateTime<Utc> {
        at(ms).to_datetime()
    }

    #[test]
    fn a_record_whose_counts_overflow_is_corrupt_not_a_panic() {
        let policy = RatePolicy::new(10, 60).unwrap();
        let mut record = LimitRecord::new(policy);
        check_record(&mut record, policy, at(0));
        let mut bytes = record.to_bytes();
        for slot in 0..2 {
            bytes[16 + slot * 12..16 + slot * 12 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert!(matches!(
            LimitRecord::from_bytes(&bytes),
            Err(Error::Storage(_))
        ));
    }

    #[test]
    fn the_earliest_instant_still_counts_every_admission() {
        let policy = RatePolicy::new(1, 60).unwrap();
        let earliest = Timestamp::from_nanos(i64::MIN);
        let mut record = LimitRecord::new(policy);
        assert!(check_record(&mut record, policy, earliest).allowed);
        let denied = check_record(&mut record, policy, earliest);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_seconds, Some(60));
    }

    /// Checks `record` at `ms`, or a new limit's record when there is none.
    fn check_at(
        record: Option<LimitRecord>,
        policy: RatePolicy,
        ms: i64,
    ) -> (LimitRecord, Decision) {
        let mut record = record.unwrap_or_else(|| LimitRecord::new(policy));
        let decision = check_record(&mut record, policy, at(ms)).decision();
        (record, decision)
    }

    fn run(policy: RatePolicy, times_ms: &[i64]) -> Vec<bool> {
        let mut record = None;
        times_ms
            .iter()
            .map(|&ms| {
                let (next, decision) = check_at(record.take(), policy, ms);
                record = Some(next);
                decision.allowed
            })
            .collect()
    }

    #[test]
    fn one_per_window_is_admitted_exactly_at_the_window_edge() {
        let policy = RatePolicy::new(1, 10).unwrap();
        assert_eq!(
            run(policy, &[0, 9_999, 10_000, 19_999, 20_000]),
            [true, false, true, false, true]
        );
    }

    #[test]
    fn denial_says_when_to_retry_and_retrying_then_succeeds() {
        let policy = RatePolicy::new(2, 60).unwrap();
        let (r, _) = check_at(None, policy, 0);
        let (r, _) = check_at(Some(r), policy, 500);
        let (r, denied) = check_at(Some(r), policy, 1_000);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // Both admissions share a sub-window whose latest is at 500 ms: it frees at 60.5 s.
        assert_eq!(denied.reset_at, date(60_500));
        assert_eq!(denied.retry_after_seconds, Some(60));
        let (_, retried) = check_at(Some(r), policy, 61_000);
        assert!(retried.allowed);
    }

    #[test]
    fn a_clock_going_back_frees_nothing() {
        let policy = RatePolicy::new(1, 10).unwrap();
        assert_eq!(
            run(policy, &[10_000, 0, 5_000, 19_999, 20_000]),
            [true, false, false, false, true]
        );
    }

    #[test]
    fn the_sub_window_of_an_instant_is_found_with_or_without_dividing() {
        let width = 625_000_000;
        let mut window = SlidingWindow::empty();
        for t in [
            -1,
            0,
            1,
            width - 1,
            width,
            5 * width + 7,
            5 * width - 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(window.index_of(t, width), t.div_euclid(width), "{t}");
            window.head = t.div_euclid(width);
            for delta in [-width, -1, 0, 1, width] {
                if let Some(near) = t.checked_add(delta) {
                    assert_eq!(
                        window.index_of(near, width),
                        near.div_euclid(width),
                        "{near}"
                    );
                }
            }
        }
    }

    /// What the ring's ends tell, computed the long way: from every slot.
    fn scanned(window: &SlidingWindow, now: i64, length: i64) -> (i64, u32, Option<i64>) {
        let admitted =
            || (window.counts.iter().zip(&window.latest)).filter(|&(&count, _)| count > 0);
        let t = admitted().map(|(_, &latest)| latest).fold(now, i64::max);
        let live = || admitted().filter(|&(_, &latest)| latest > t - length);
        let counted = live().map(|(&count, _)| count).sum();
        (t, counted, live().map(|(_, &latest)| latest).min())
    }

    proptest::proptest! {
        #[test]
        fn the_ring_ends_tell_what_every_slot_tells(
            steps in proptest::collection::vec((-3_000i64..9_000, 0usize..4), 1..120)
        ) {
            let policies = [(3, 10), (50, 10), (2, 3), (20, 40)]
                .map(|(max, secs)| RatePolicy::new(max, secs).unwrap());
            let mut record = LimitRecord::new(policies[0]);
            let mut ms = 0;
            for (step, policy) in steps {
                ms += step;
                let policy = policies[policy];
                let window = &record.window;
                let length = window_nanos(record.policy);
                let now = at(ms).nanos();
                let (t, counted, earliest) = scanned(window, now, length);
                proptest::prop_assert_eq!(window.effective_now(now), t);
                let tally = window.tally(t, length);
                proptest::prop_assert_eq!((tally.counted, tally.earliest), (counted, earliest));
                let rebuilt = SlidingWindow::from_slots(window.head, window.counts, window.latest)
                    .expect("a window's counts fit");
                proptest::prop_assert_eq!(window, &rebuilt);
                check_record(&mut record, policy, at(ms));
            }
        }
    }

    #[test]
    fn records_round_trip_through_bytes() {
        let policy = RatePolicy::new(7, 30).unwrap();
        let (mut record, _) = check_at(None, policy, 0);
        for ms in [10, 2_000, 9_000, 31_000] {
            record = check_at(Some(record), policy, ms).0;
        }
        assert_eq!(LimitRecord::from_bytes(&record.to_bytes()).unwrap(), record);
        assert!(LimitRecord::from_bytes(&[0; 3]).is_err());
    }

    #[test]
    fn shrinking_the_window_keeps_the_admissions_counted() {
        let wide = RatePolicy::new(3, 60).unwrap();
        let narrow = RatePolicy::new(3, 10).unwrap();
        let (r, _) = check_at(None, wide, 0);
        let (r, _) = check_at(Some(r), wide, 5_000);
        let (r, _) = check_at(Some(r), wide, 6_000);
        let (r, denied) = check_at(Some(r), narrow, 7_000);
        assert!(!denied.allowed);
        let (_, allowed) = check_at(Some(r), narrow, 16_000);
        assert!(allowed.allowed);
    }
}
