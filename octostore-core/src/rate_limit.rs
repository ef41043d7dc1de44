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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    count: u32,
    /// Nanoseconds since the epoch of the latest admission counted here.
    latest: i64,
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
        for slot in &self.window.slots {
            out.extend_from_slice(&slot.count.to_le_bytes());
            out.extend_from_slice(&slot.latest.to_le_bytes());
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
        let mut window = SlidingWindow {
            head: i64_at(8),
            slots: [Slot::default(); SLOTS],
        };
        for (i, slot) in window.slots.iter_mut().enumerate() {
            let at = 16 + i * 12;
            *slot = Slot {
                count: u32_at(at),
                latest: i64_at(at + 4),
            };
        }
        Ok(Self { policy, window })
    }

    /// Whether nothing is counted in the window at `now`: such a limit may be forgotten.
    pub fn is_idle(&self, now: DateTime<Utc>) -> bool {
        let t = self.window.effective_now(nanos(now));
        self.window.counted(t, window_nanos(self.policy)) == 0
    }
}

/// A ring of sub-windows; slot `i % SLOTS` holds sub-window `i` for `i` in
/// `head - SUB_WINDOWS ..= head`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlidingWindow {
    head: i64,
    slots: [Slot; SLOTS],
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn instant(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
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
            slots: [Slot::default(); SLOTS],
        }
    }

    /// The instant to judge at: `now`, or the latest admission if the clock went back, so a
    /// clock stepping backwards can never free capacity.
    fn effective_now(&self, now: i64) -> i64 {
        self.slots.iter().map(|s| s.latest).fold(now, i64::max)
    }

    /// Makes sub-window `index` the head, clearing those that fall out of the ring.
    fn advance_to(&mut self, index: i64) {
        if index <= self.head {
            return;
        }
        if self.head == i64::MIN || index - self.head >= SLOTS as i64 {
            self.slots = [Slot::default(); SLOTS];
        } else {
            for i in self.head + 1..=index {
                self.slots[slot_of(i)] = Slot::default();
            }
        }
        self.head = index;
    }

    /// Sub-windows whose latest admission is inside `(t - window, t]`.
    fn live_slots(&self, t: i64, window: i64) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .filter(move |s| s.count > 0 && s.latest > t - window)
    }

    fn counted(&self, t: i64, window: i64) -> u32 {
        self.live_slots(t, window).map(|s| s.count).sum()
    }

    fn decision(&self, now: i64, t: i64, window: i64, max: u32, allowed: bool) -> Decision {
        let counted = self.counted(t, window);
        let remaining = max.saturating_sub(counted);
        let reset_at = self
            .live_slots(t, window)
            .map(|s| s.latest + window)
            .min()
            .unwrap_or(now);
        let retry_after_seconds = (!allowed).then(|| {
            let wait = (reset_at - now).max(1);
            (wait as u64).div_ceil(NANOS_PER_SECOND as u64)
        });
        Decision {
            allowed,
            remaining,
            reset_at: instant(reset_at),
            retry_after_seconds,
        }
    }

    /// Re-cuts the window for a new width, moving each admission to the sub-window of its
    /// sub-window's latest admission: later, never earlier, so nothing is under-counted.
    fn recut(&self, width: i64) -> Self {
        let mut slots: Vec<Slot> = self.slots.iter().copied().filter(|s| s.count > 0).collect();
        slots.sort_by_key(|s| s.latest);
        let mut recut = Self::empty();
        for old in slots {
            recut.advance_to(old.latest.div_euclid(width));
            let slot = &mut recut.slots[slot_of(recut.head)];
            slot.count += old.count;
            slot.latest = slot.latest.max(old.latest);
        }
        recut
    }
}

/// Counts one check at `now` under `policy`, if the window allows it.
fn check_record(
    record: Option<LimitRecord>,
    policy: RatePolicy,
    now: DateTime<Utc>,
) -> (LimitRecord, Decision) {
    let window = window_nanos(policy);
    let width = width(window);
    let mut state = match record {
        Some(r) if r.policy.window_seconds() == policy.window_seconds() => r.window,
        Some(r) => r.window.recut(width),
        None => SlidingWindow::empty(),
    };
    let now = nanos(now);
    let t = state.effective_now(now);
    state.advance_to(t.div_euclid(width));
    let allowed = state.counted(t, window) < policy.max_requests();
    if allowed {
        let slot = &mut state.slots[slot_of(state.head)];
        slot.count += 1;
        slot.latest = t;
    }
    let decision = state.decision(now, t, window, policy.max_requests(), allowed);
    (
        LimitRecord {
            policy,
            window: state,
        },
        decision,
    )
}

fn peek(record: &LimitRecord, now: DateTime<Utc>) -> (u32, Decision) {
    let window = window_nanos(record.policy);
    let now = nanos(now);
    let t = record.window.effective_now(now);
    let counted = record.window.counted(t, window);
    let allowed = counted < record.policy.max_requests();
    let decision = record
        .window
        .decision(now, t, window, record.policy.max_requests(), allowed);
    (counted, decision)
}

pub(crate) fn check(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    quota: usize,
    owner: UserId,
    name: &LimitName,
    policy: RatePolicy,
) -> Result<Decision> {
    let existing = tx.limit(owner, name)?;
    if existing.is_none() {
        check_quota(tx, now, quota, owner)?;
    }
    let (record, decision) = check_record(existing, policy, now);
    tx.put_limit(owner, name, &record)?;
    Ok(decision)
}

/// Idle limits still count in the store until deleted, so only when the raw count reaches
/// the quota are the owner's idle limits forgotten and the rest counted.
fn check_quota(tx: &mut dyn Tx, now: DateTime<Utc>, quota: usize, owner: UserId) -> Result<()> {
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
    now: DateTime<Utc>,
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

pub(crate) fn list(
    tx: &mut dyn Tx,
    now: DateTime<Utc>,
    owner: UserId,
) -> Result<Vec<LimitSummary>> {
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
    use chrono::Duration;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_704_067_200_000 + ms).unwrap()
    }

    fn run(policy: RatePolicy, times_ms: &[i64]) -> Vec<bool> {
        let mut record = None;
        times_ms
            .iter()
            .map(|&ms| {
                let (next, decision) = check_record(record.take(), policy, at(ms));
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
        let (r, _) = check_record(None, policy, at(0));
        let (r, _) = check_record(Some(r), policy, at(500));
        let (r, denied) = check_record(Some(r), policy, at(1_000));
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // Both admissions share a sub-window whose latest is at 500 ms: it frees at 60.5 s.
        assert_eq!(denied.reset_at, at(60_500));
        assert_eq!(denied.retry_after_seconds, Some(60));
        let (_, retried) = check_record(Some(r), policy, at(1_000) + Duration::seconds(60));
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
    fn records_round_trip_through_bytes() {
        let policy = RatePolicy::new(7, 30).unwrap();
        let (mut record, _) = check_record(None, policy, at(0));
        for ms in [10, 2_000, 9_000, 31_000] {
            record = check_record(Some(record), policy, at(ms)).0;
        }
        assert_eq!(LimitRecord::from_bytes(&record.to_bytes()).unwrap(), record);
        assert!(LimitRecord::from_bytes(&[0; 3]).is_err());
    }

    #[test]
    fn shrinking_the_window_keeps_the_admissions_counted() {
        let wide = RatePolicy::new(3, 60).unwrap();
        let narrow = RatePolicy::new(3, 10).unwrap();
        let (r, _) = check_record(None, wide, at(0));
        let (r, _) = check_record(Some(r), wide, at(5_000));
        let (r, _) = check_record(Some(r), wide, at(6_000));
        let (r, denied) = check_record(Some(r), narrow, at(7_000));
        assert!(!denied.allowed);
        let (_, allowed) = check_record(Some(r), narrow, at(16_000));
        assert!(allowed.allowed);
    }
}
