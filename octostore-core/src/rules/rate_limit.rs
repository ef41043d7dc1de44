//! Rate limits: a sliding window in bounded memory.
//!
//! **Guarantee:** in every half-open interval `(t - window, t]`, at most `max_requests` checks
//! of one limit are allowed. The window is cut into [`SUB_WINDOWS`] sub-windows; each keeps a
//! count and the instant of its latest admission. A sub-window counts, whole, until its
//! latest admission has left the window. That over-counts only the one sub-window straddling
//! the window's start, so the guarantee holds, and a client at the allowed rate is still
//! admitted at about `SUB_WINDOWS / (SUB_WINDOWS + 1)` (94%) of that rate, or fully when each
//! sub-window holds at most one admission.
//!
//! The latest check's policy applies. A lowered `max_requests` may find more admissions in
//! the window than it allows: then `reset_at` waits for all but `max_requests - 1` to leave.

use chrono::{DateTime, Utc};

use crate::backend::Tx;
use crate::records::event::Change;
use crate::records::identity::UserId;
use crate::records::rate_limit::window::{Cut, SlidingWindow, Tally};
use crate::records::rate_limit::LimitRecord;
use crate::rules::event;
use crate::values::bounds::RatePolicy;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::LimitName;

pub use crate::records::rate_limit::SUB_WINDOWS;

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

// The rules of a limit's window, as methods of the record storage keeps.
impl LimitRecord {
    /// Whether nothing is counted in the window at `now`: such a limit may be forgotten.
    pub fn is_idle(&self, now: Timestamp) -> bool {
        let cut = self.cut();
        let t = self.window.effective_now(now.nanos(), cut);
        self.window.tally(t, cut).counted == 0
    }

    /// Counts one check at `now` under `policy`, if the window allows it: the rule of a
    /// check, as the store hands it to a backend that updates the record in place
    /// ([`Backend::update_limit_now`](crate::backend::Backend::update_limit_now)).
    #[inline]
    pub fn check(&mut self, policy: RatePolicy, now: Timestamp) -> Decision {
        check_record(self, policy, now).decision()
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
    /// The answer at `now` for `window`, which counts `tally` under a maximum of `max`.
    ///
    /// `reset_at` is when the oldest counting sub-window leaves the window; or, when it
    /// counts more than `max` (the maximum was lowered), when enough have left that it
    /// counts fewer than `max`: before then `remaining` stays 0, and a check is denied.
    fn new(
        now: i64,
        window: &SlidingWindow,
        cut: Cut,
        max: u32,
        tally: &Tally,
        allowed: bool,
    ) -> Self {
        let last_to_leave = match tally.earliest {
            Some(earliest) if tally.counted > max => {
                window.latest_once_left(earliest, tally.counted - max + 1, cut)
            }
            earliest => earliest,
        };
        let reset_at = last_to_leave.map_or(now, |latest| latest.saturating_add(cut.window));
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

/// Counts one check at `now` under `policy` in `record`, if the window allows it: the rule of
/// a check, in a transaction ([`check`]) or in place ([`LimitRecord::check`]). Inlined even
/// into the closure that hands it to a backend: a call there costs ~25 instructions a check.
#[inline(always)]
fn check_record(record: &mut LimitRecord, policy: RatePolicy, now: Timestamp) -> Verdict {
    if record.policy.window_seconds() != policy.window_seconds() {
        let cut = Cut::of(policy.window_seconds());
        record.window = record.window.recut(record.cut(), cut);
    }
    record.policy = policy;
    let cut = record.cut();
    let (now, max) = (now.nanos(), policy.max_requests());
    let (allowed, tally) = match count_in_head(&mut record.window, now, cut, max) {
        Some(counted) => counted,
        None => count(&mut record.window, now, cut, max),
    };
    Verdict::new(now, &record.window, cut, max, &tally, allowed)
}

/// Counts one admission at `now` in `window` if it counts fewer than `max`: whether it did,
/// and the tally after. Out of line, so the short path stays short.
#[inline(never)]
fn count(window: &mut SlidingWindow, now: i64, cut: Cut, max: u32) -> (bool, Tally) {
    let t = window.effective_now(now, cut);
    window.advance_to_instant(t, cut);
    let mut tally = window.tally(t, cut);
    let allowed = tally.counted < max;
    if allowed {
        let kept = window.admit(t, 1, cut);
        // The latest instant in the window, so the earliest only if alone.
        tally.counted += 1;
        tally.earliest.get_or_insert(kept);
    }
    (allowed, tally)
}

/// [`count`] in a few instructions when `now` falls in the window's head (most checks do);
/// `None` when it cannot tell.
#[inline]
fn count_in_head(
    window: &mut SlidingWindow,
    now: i64,
    cut: Cut,
    max: u32,
) -> Option<(bool, Tally)> {
    let in_head = window.tally_in_head(now, cut)?;
    let mut tally = in_head.tally;
    let allowed = tally.counted < max;
    if allowed {
        window.admit_in_head(&in_head);
        tally.counted += 1;
        tally.earliest.get_or_insert(now);
    }
    Some((allowed, tally))
}

fn peek(record: &LimitRecord, now: Timestamp) -> (u32, Decision) {
    let cut = record.cut();
    let now = now.nanos();
    let t = record.window.effective_now(now, cut);
    let tally = record.window.tally(t, cut);
    let max = record.policy.max_requests();
    let allowed = tally.counted < max;
    let verdict = Verdict::new(now, &record.window, cut, max, &tally, allowed);
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

pub(crate) fn reset(
    tx: &mut dyn Tx,
    now: Timestamp,
    owner: UserId,
    name: &LimitName,
) -> Result<()> {
    if tx.delete_limit(owner, name)? {
        event::append(tx, owner, now, Change::LimitReset { name: name.clone() })
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
            bytes[16 + slot * 8..16 + slot * 8 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert!(matches!(
            LimitRecord::from_bytes(&bytes),
            Err(Error::Storage { .. })
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
    fn a_check_in_the_head_after_its_latest_admission_takes_the_short_path() {
        let policy = RatePolicy::new(2, 16).unwrap();
        let cut = Cut::of(16);
        let (record, _) = check_at(None, policy, 0);
        let mut window = record.window;
        let now = |ms| at(ms).nanos();
        assert!(count_in_head(&mut window, now(10), cut, 2).is_some_and(|(allowed, _)| allowed));
        assert!(count_in_head(&mut window, now(20), cut, 2).is_some_and(|(allowed, _)| !allowed));
        // Before the head's latest admission (the clock went back), or past the head.
        assert!(count_in_head(&mut window, now(5), cut, 2).is_none());
        assert!(count_in_head(&mut window, now(1_000), cut, 2).is_none());
    }

    proptest::proptest! {
        #[test]
        fn the_ring_ends_tell_what_every_slot_tells(
            // Long steps, and short ones that mostly stay in the head's sub-window.
            steps in proptest::collection::vec(
                (proptest::prop_oneof![-3_000i64..9_000, 0i64..200], 0usize..5),
                1..120,
            )
        ) {
            let policies = [(3, 10), (50, 10), (2, 3), (20, 40), (5, 100)]
                .map(|(max, secs)| RatePolicy::new(max, secs).unwrap());
            let mut record = LimitRecord::new(policies[0]);
            let mut ms = 0;
            for (step, policy) in steps {
                ms += step;
                let policy = policies[policy];
                let window = &record.window;
                let cut = record.cut();
                let now = at(ms).nanos();
                let (t, counted, earliest) = window.scanned(now, cut);
                proptest::prop_assert_eq!(window.effective_now(now, cut), t);
                let tally = window.tally(t, cut);
                proptest::prop_assert_eq!((tally.counted, tally.earliest), (counted, earliest));
                let stored = LimitRecord::from_bytes(&record.to_bytes());
                proptest::prop_assert_eq!(stored.as_ref().ok(), Some(&record));
                // The short path, where it answers, answers as the general one.
                let max = policy.max_requests();
                if policy.window_seconds() == record.policy.window_seconds() {
                    let (mut short, mut general) = (record.window.clone(), record.window.clone());
                    if let Some((allowed, tally)) = count_in_head(&mut short, now, cut, max) {
                        let (expected, by_all) = count(&mut general, now, cut, max);
                        proptest::prop_assert_eq!(allowed, expected);
                        proptest::prop_assert_eq!(tally.counted, by_all.counted);
                        proptest::prop_assert_eq!(tally.earliest, by_all.earliest);
                        proptest::prop_assert_eq!(short, general);
                    }
                }
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
        let sized = |len: usize| {
            let mut bytes = record.to_bytes()[..8].to_vec();
            bytes.resize(len, 0);
            LimitRecord::from_bytes(&bytes)
        };
        for len in [0, 3, 8, 12, 151, 153, 219, 221] {
            assert!(sized(len).is_err(), "{len} bytes");
        }
        // The current form and the form of earlier versions.
        for len in [152, 220] {
            assert_eq!(sized(len).unwrap().policy, policy, "{len} bytes");
        }
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
