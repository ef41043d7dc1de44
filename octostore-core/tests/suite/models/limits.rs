//! Rate limits against an exact sliding log.
//!
//! The store counts conservatively (sub-windows), so it may deny where an exact log would
//! admit; the model therefore logs the admissions the store actually made and checks what
//! must hold whatever the counting: the guarantee (at most `max_requests` admissions in
//! every interval `(t - window, t]`), the meaning of `remaining`, `reset_at` and
//! `retry_after_seconds`, that waiting `retry_after_seconds` is enough, that a status
//! consumes nothing, and that an empty window always admits. Checks switch a limit between
//! two maxima, so a lowered maximum can find more admissions in the window than it allows. A second property measures
//! the admission rate of a client sending exactly at the allowed rate against the exact log.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use octostore_core::{
    Api, Decision, Error, LimitName, Quotas, RatePolicy, Resource, Session, Settings,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{config, regressions, step_ms, unexpected, within, USERS};
use crate::support::{backends, local_backends, Harness, Open};

const LIMITS: [&str; 3] = ["api", "emails to send", "webhooks/min"];
/// Limits per user: fewer than the names, so creations hit the quota (and forget idle ones).
const QUOTA: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// A check with the limit's first or `second` maximum; when denied and `retry`, wait
    /// `retry_after_seconds` and check again.
    Check {
        user: usize,
        limit: usize,
        second: bool,
        retry: bool,
    },
    Status {
        user: usize,
        limit: usize,
    },
    /// A status, then as many checks as it says remain (all allowed), then one more (denied).
    Drain {
        user: usize,
        limit: usize,
    },
    Reset {
        user: usize,
        limit: usize,
    },
    List {
        user: usize,
    },
    Sweep,
    Advance {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let limit = 0..LIMITS.len();
    prop_oneof![
        12 => (
            user.clone(),
            limit.clone(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.3)
        )
            .prop_map(|(user, limit, second, retry)| Op::Check {
                user,
                limit,
                second,
                retry
            }),
        3 => (user.clone(), limit.clone()).prop_map(|(user, limit)| Op::Status { user, limit }),
        2 => (user.clone(), limit.clone()).prop_map(|(user, limit)| Op::Drain { user, limit }),
        1 => (user.clone(), limit).prop_map(|(user, limit)| Op::Reset { user, limit }),
        2 => user.prop_map(|user| Op::List { user }),
        1 => Just(Op::Sweep),
        6 => prop_oneof![2 => 1..50i64, 3 => step_ms()].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// Two policies per limit name (the same for every user), fixed for the whole case: one
/// window, two maxima.
fn policies() -> impl Strategy<Value = Vec<[RatePolicy; 2]>> {
    prop::collection::vec(
        (1..=6i64, 1..=6i64, 1..=10i64).prop_map(|(first, second, window)| {
            [first, second].map(|max| RatePolicy::new(max, window).unwrap())
        }),
        LIMITS.len(),
    )
}

/// What the store keeps of one limit of one user.
struct Log {
    /// The policy of the latest check.
    policy: RatePolicy,
    /// The instants of the store's admissions since the limit was created (by a first
    /// check) or last forgotten, oldest first.
    admitted: Vec<DateTime<Utc>>,
}

struct Model {
    now: DateTime<Utc>,
    policies: Vec<[RatePolicy; 2]>,
    /// By (user, limit). Present iff the limit exists.
    logs: HashMap<(usize, usize), Log>,
}

impl Model {
    fn window(&self, limit: usize) -> Duration {
        Duration::seconds(self.policies[limit][0].window_seconds().into())
    }

    /// The limit's current policy: that of its latest check.
    fn policy(&self, user: usize, limit: usize) -> RatePolicy {
        self.logs[&(user, limit)].policy
    }

    fn max(&self, user: usize, limit: usize) -> usize {
        self.policy(user, limit).max_requests() as usize
    }

    /// The logged admissions in `(now - window, now]`, oldest first.
    fn inside(&self, user: usize, limit: usize) -> Vec<DateTime<Utc>> {
        let from = self.now - self.window(limit);
        self.logs.get(&(user, limit)).map_or_else(Vec::new, |log| {
            log.admitted
                .iter()
                .copied()
                .filter(|&t| from < t && t <= self.now)
                .collect()
        })
    }
}

struct World {
    h: Harness,
    users: Vec<Session>,
    limits: Vec<LimitName>,
}

/// What any decision at `m.now` must satisfy, given the admissions logged so far.
fn check_decision(m: &Model, user: usize, limit: usize, d: &Decision) -> Result<(), TestCaseError> {
    let inside = m.inside(user, limit);
    let max = m.max(user, limit);
    let window = m.window(limit);
    prop_assert!(
        d.remaining as usize <= max.saturating_sub(inside.len()),
        "remaining {} with {} admissions in the window, max {}",
        d.remaining,
        inside.len(),
        max
    );
    // `remaining` grows once the oldest admission leaves; when the window holds `max` or
    // more (more after the maximum was lowered), once all but `max - 1` have left.
    let last_to_leave = inside.get(inside.len().saturating_sub(max));
    match (last_to_leave, inside.last()) {
        (Some(&last_to_leave), Some(&newest)) => prop_assert!(
            last_to_leave + window <= d.reset_at && d.reset_at <= newest + window,
            "reset_at {} outside [{}, {}]",
            d.reset_at,
            last_to_leave + window,
            newest + window
        ),
        _ => {
            prop_assert_eq!(d.reset_at, m.now, "nothing counted: reset_at is now");
            prop_assert_eq!(d.remaining as usize, max, "nothing counted: all remain");
        }
    }
    if d.allowed {
        prop_assert_eq!(d.retry_after_seconds, None);
    } else {
        prop_assert_eq!(d.remaining, 0, "denied with remaining > 0");
        let wait_ns = (d.reset_at - m.now).num_nanoseconds().unwrap();
        let seconds = ((wait_ns + 999_999_999) / 1_000_000_000).max(1) as u64;
        prop_assert_eq!(d.retry_after_seconds, Some(seconds));
    }
    Ok(())
}

/// One check under `policy`, logged in the model if allowed, with the guarantee checked;
/// `None` if it would create a limit beyond the quota (and the store agrees).
fn check(
    w: &World,
    m: &mut Model,
    user: usize,
    limit: usize,
    policy: RatePolicy,
) -> Result<Option<Decision>, TestCaseError> {
    let got = w.users[user].check(&w.limits[limit], policy);
    if !m.logs.contains_key(&(user, limit)) {
        // The quota counts limits with something in their window: when the owner's limits
        // reach it, its idle ones are forgotten to make room.
        let owned = |m: &Model| m.logs.keys().filter(|(owner, _)| *owner == user).count();
        if owned(m) >= QUOTA {
            let idle: Vec<(usize, usize)> = m
                .logs
                .keys()
                .copied()
                .filter(|&(owner, l)| owner == user && m.inside(owner, l).is_empty())
                .collect();
            for key in idle {
                m.logs.remove(&key);
            }
        }
        if owned(m) >= QUOTA {
            prop_assert!(
                matches!(
                    got,
                    Err(Error::QuotaExceeded {
                        what: Resource::Limit,
                        limit: QUOTA
                    })
                ),
                "expected QuotaExceeded, got {:?}",
                got
            );
            return Ok(None);
        }
    }
    let d = got.map_err(unexpected)?;
    let before = m.inside(user, limit).len();
    let log = m.logs.entry((user, limit)).or_insert_with(|| Log {
        policy,
        admitted: Vec::new(),
    });
    log.policy = policy;
    if before == 0 {
        prop_assert!(d.allowed, "denied with nothing in the window: {:?}", d);
    }
    if d.allowed {
        let max = policy.max_requests() as usize;
        prop_assert!(
            before < max,
            "guarantee broken: admitted with {} admissions already in the window, max {}",
            before,
            max
        );
        log.admitted.push(m.now);
    }
    check_decision(m, user, limit, &d)?;
    Ok(Some(d))
}

/// A check of a limit that exists, under its current policy.
fn check_existing(
    w: &World,
    m: &mut Model,
    user: usize,
    limit: usize,
) -> Result<Decision, TestCaseError> {
    let policy = m.policy(user, limit);
    check(w, m, user, limit, policy)?.ok_or_else(|| TestCaseError::fail("limit vanished"))
}

/// A status; `None` if the model has no such limit (and the store agrees).
fn status(
    w: &World,
    m: &Model,
    user: usize,
    limit: usize,
) -> Result<Option<Decision>, TestCaseError> {
    let got = w.users[user].limit_status(&w.limits[limit]);
    if !m.logs.contains_key(&(user, limit)) {
        prop_assert!(
            matches!(
                got,
                Err(Error::NotFound {
                    what: Resource::Limit,
                    ..
                })
            ),
            "expected NotFound, got {:?}",
            got
        );
        return Ok(None);
    }
    let d = got.map_err(unexpected)?;
    check_decision(m, user, limit, &d)?;
    prop_assert_eq!(d.allowed, d.remaining > 0);
    Ok(Some(d))
}

fn advance(w: &World, m: &mut Model, by: Duration) -> Result<(), TestCaseError> {
    w.h.clock.advance(by);
    m.now += by;
    prop_assert_eq!(w.h.store.now(), m.now);
    Ok(())
}

fn step(w: &World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Check {
            user,
            limit,
            second,
            retry,
        } => {
            let policy = m.policies[limit][usize::from(second)];
            let Some(d) = check(w, m, user, limit, policy)? else {
                return Ok(());
            };
            if !d.allowed && retry {
                let wait = d.retry_after_seconds.unwrap();
                advance(w, m, Duration::seconds(wait as i64))?;
                let again = check_existing(w, m, user, limit)?;
                prop_assert!(again.allowed, "denied after waiting {}s: {:?}", wait, again);
            }
        }
        Op::Status { user, limit } => {
            let first = status(w, m, user, limit)?;
            let second = status(w, m, user, limit)?;
            prop_assert_eq!(first, second, "a status changed the next status");
        }
        Op::Drain { user, limit } => {
            if let Some(d) = status(w, m, user, limit)? {
                for i in 0..d.remaining {
                    let got = check_existing(w, m, user, limit)?;
                    prop_assert!(
                        got.allowed,
                        "check {} of {} remaining denied",
                        i + 1,
                        d.remaining
                    );
                }
                let got = check_existing(w, m, user, limit)?;
                prop_assert!(!got.allowed, "allowed beyond the {} remaining", d.remaining);
            }
        }
        Op::Reset { user, limit } => {
            let got = w.users[user].reset_limit(&w.limits[limit]);
            match m.logs.remove(&(user, limit)) {
                Some(_) => prop_assert!(got.is_ok(), "reset: {:?}", got),
                None => prop_assert!(
                    matches!(
                        got,
                        Err(Error::NotFound {
                            what: Resource::Limit,
                            ..
                        })
                    ),
                    "expected NotFound, got {:?}",
                    got
                ),
            }
        }
        Op::List { user } => {
            let got = w.users[user].limits().map_err(unexpected)?;
            let mut want: Vec<usize> = (0..LIMITS.len())
                .filter(|&limit| m.logs.contains_key(&(user, limit)))
                .collect();
            want.sort_by(|&a, &b| w.limits[a].cmp(&w.limits[b]));
            let names: Vec<&LimitName> = got.iter().map(|s| &s.name).collect();
            let want_names: Vec<&LimitName> = want.iter().map(|&l| &w.limits[l]).collect();
            prop_assert_eq!(names, want_names);
            for (summary, &limit) in got.iter().zip(&want) {
                prop_assert_eq!(summary.policy, m.policy(user, limit));
                prop_assert_eq!(Some(summary.decision), status(w, m, user, limit)?);
                prop_assert_eq!(
                    summary.decision.remaining,
                    m.policy(user, limit)
                        .max_requests()
                        .saturating_sub(summary.current_count)
                );
                prop_assert!(summary.current_count as usize >= m.inside(user, limit).len());
            }
        }
        Op::Sweep => {
            let swept = w.h.store.sweep().map_err(unexpected)?;
            let idle: Vec<(usize, usize)> = m
                .logs
                .keys()
                .copied()
                .filter(|&(user, limit)| m.inside(user, limit).is_empty())
                .collect();
            prop_assert_eq!(swept.limits, idle.len(), "idle limits swept");
            prop_assert_eq!(swept.leases, 0);
            for key in idle {
                m.logs.remove(&key);
            }
        }
        Op::Advance { ms } => advance(w, m, Duration::milliseconds(ms))?,
    }
    Ok(())
}

fn run(open: Open, policies: &[[RatePolicy; 2]], ops: &[Op]) -> Result<(), TestCaseError> {
    let h = open(Settings {
        quotas: Quotas {
            limits: QUOTA,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let w = World {
        users: USERS.iter().map(|u| h.user(u)).collect(),
        limits: LIMITS
            .iter()
            .map(|l| LimitName::parse(l).unwrap())
            .collect(),
        h,
    };
    let mut m = Model {
        now: w.h.store.now(),
        policies: policies.to_vec(),
        logs: HashMap::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format_args!("step {i} ({op:?})")))?;
    }
    Ok(())
}

/// A client checks every `ceil(window / max)` ms for `windows` windows (starting `offset_ms`
/// into the clock); after the first window, the store must admit at least 90% of what an
/// exact sliding log admits for the same request times, and never break the guarantee.
fn steady_client(
    open: Open,
    max: u32,
    window_seconds: u32,
    offset_ms: i64,
) -> Result<(), TestCaseError> {
    let h = open(Settings::default());
    let me = h.user("steady");
    let name = LimitName::parse("steady").unwrap();
    let policy = RatePolicy::new(max.into(), window_seconds.into()).unwrap();
    let max = max as usize;
    let window = i64::from(window_seconds) * 1_000;
    let interval = (window + max as i64 - 1) / max as i64;
    let windows = (20_000 / max as i64).clamp(3, 12);
    let requests = windows * window / interval;
    h.advance_ms(offset_ms % window);

    // Admission instants (ms since the first request) still in the window, of each side.
    let mut exact: VecDeque<i64> = VecDeque::new();
    let mut store: VecDeque<i64> = VecDeque::new();
    let (mut exact_steady, mut store_steady) = (0u64, 0u64);
    for k in 0..requests {
        let t = k * interval;
        if k > 0 {
            h.advance_ms(interval);
        }
        for log in [&mut exact, &mut store] {
            while log.front().is_some_and(|&a| a <= t - window) {
                log.pop_front();
            }
        }
        let exact_admits = exact.len() < max;
        if exact_admits {
            exact.push_back(t);
        }
        let d = me.check(&name, policy).map_err(unexpected)?;
        if d.allowed {
            prop_assert!(
                store.len() < max,
                "guarantee broken at request {} (t = {} ms)",
                k,
                t
            );
            store.push_back(t);
        }
        if t >= window {
            exact_steady += u64::from(exact_admits);
            store_steady += u64::from(d.allowed);
        }
    }
    prop_assert!(exact_steady > 0);
    prop_assert!(
        store_steady * 10 >= exact_steady * 9,
        "admitted {} of the {} an exact sliding log admits ({:.1}%), one every {} ms",
        store_steady,
        exact_steady,
        100.0 * store_steady as f64 / exact_steady as f64,
        interval
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(96, regressions!("limits")))]

    /// Checks (some retried after `retry_after_seconds`), statuses, drains, resets, lists
    /// and sweeps by three users on three limits (a quota of two each) with random small
    /// policies (two maxima a limit, which checks switch between), the clock moving by ms to
    /// minutes: every decision is consistent with the exact log of the store's own
    /// admissions, on every backend.
    #[test]
    fn limits_keep_the_guarantee_and_explain_denials(
        policies in policies(),
        ops in prop::collection::vec(op(), 1..100),
    ) {
        for (backend, open) in backends() {
            run(open, &policies, &ops).map_err(within(backend))?;
        }
    }
}

proptest! {
    #![proptest_config(config(32, regressions!("limits-steady-rate")))]

    /// A client at exactly the allowed rate is admitted at >= 90% of the exact sliding log's
    /// admissions in steady state, for any policy, on the backends in this process (up to
    /// 30 000 checks a case; the model above runs the window on every backend).
    #[test]
    fn a_client_at_the_allowed_rate_is_admitted_at_90_percent(
        max in prop_oneof![1..=20u32, 21..=1_000u32, 1_001..=10_000u32],
        window_seconds in prop_oneof![1..=60u32, 61..=86_400u32],
        offset_ms in 0..86_400_000i64,
    ) {
        for (backend, open) in local_backends() {
            steady_client(open, max, window_seconds, offset_ms).map_err(within(backend))?;
        }
    }
}
