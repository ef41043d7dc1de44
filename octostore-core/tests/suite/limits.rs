//! Rate limits: the sliding window, remaining, reset_at, retry_after, status and reset.

use octostore_core::{Api, Error, LimitName, Quotas, RatePolicy, Settings};

use crate::support::{each_backend, Open};

fn name(s: &str) -> LimitName {
    LimitName::parse(s).unwrap()
}

fn policy(max: i64, window: i64) -> RatePolicy {
    RatePolicy::new(max, window).unwrap()
}

fn counts_down_then_denies_with_a_retry_time(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let start = h.store.now();
    for expected in (0..3).rev() {
        let d = alice.check(&name("api"), policy(3, 60)).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, expected);
        assert_eq!(d.retry_after_seconds, None);
    }
    let denied = alice.check(&name("api"), policy(3, 60)).unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.reset_at, start + chrono::Duration::seconds(60));
    assert_eq!(denied.retry_after_seconds, Some(60));
}

fn the_window_slides(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let p = policy(2, 10);
    assert!(alice.check(&name("w"), p).unwrap().allowed); // t = 0
    h.advance_secs(6);
    assert!(alice.check(&name("w"), p).unwrap().allowed); // t = 6
    h.advance_secs(3);
    assert!(!alice.check(&name("w"), p).unwrap().allowed); // t = 9: both in (−1, 9]
    h.advance_secs(1);
    let at_10 = alice.check(&name("w"), p).unwrap(); // t = 10: the first left the window
    assert!(at_10.allowed);
    assert_eq!(at_10.remaining, 0);
    h.advance_secs(5);
    assert!(
        !alice.check(&name("w"), p).unwrap().allowed,
        "t = 15: 6 and 10 still count"
    );
    h.advance_secs(1);
    assert!(
        alice.check(&name("w"), p).unwrap().allowed,
        "t = 16: 6 left"
    );
}

fn waiting_retry_after_is_enough(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let p = policy(5, 7);
    for _ in 0..5 {
        alice.check(&name("r"), p).unwrap();
        h.advance_ms(333);
    }
    let denied = alice.check(&name("r"), p).unwrap();
    assert!(!denied.allowed);
    let wait = denied.retry_after_seconds.unwrap();
    assert!(wait >= 1);
    h.advance_secs(wait as i64);
    assert!(alice.check(&name("r"), p).unwrap().allowed);
}

/// A lowered `max_requests` leaves more admissions in the window than the new maximum: the
/// denial's wait covers all of them that must leave, not just the oldest, and the status agrees.
fn waiting_retry_after_is_enough_after_the_maximum_is_lowered(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let start = h.store.now();
    // One admission a second at 0..=3 s, each in a sub-window of its own (625 ms wide).
    for _ in 0..4 {
        assert!(alice.check(&name("l"), policy(4, 10)).unwrap().allowed);
        h.advance_secs(1);
    }
    // At 4 s, a maximum of 2: the admissions at 0, 1 and 2 s must leave (the two at 2 and
    // 3 s would still fill it), so 12 s; the oldest alone leaves at 10 s.
    let denied = alice.check(&name("l"), policy(2, 10)).unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.reset_at, start + chrono::Duration::seconds(12));
    assert_eq!(denied.retry_after_seconds, Some(8));
    assert_eq!(alice.limit_status(&name("l")).unwrap(), denied);
    h.advance_secs(7);
    assert!(
        !alice.check(&name("l"), policy(2, 10)).unwrap().allowed,
        "at 11 s"
    );
    h.advance_secs(1);
    assert!(
        alice.check(&name("l"), policy(2, 10)).unwrap().allowed,
        "at 12 s"
    );
}

fn status_does_not_consume_and_reset_forgets(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    assert!(matches!(
        alice.limit_status(&name("s")),
        Err(Error::NotFound { .. })
    ));
    alice.check(&name("s"), policy(2, 60)).unwrap();
    for _ in 0..3 {
        let status = alice.limit_status(&name("s")).unwrap();
        assert!(status.allowed);
        assert_eq!(status.remaining, 1);
    }
    alice.check(&name("s"), policy(2, 60)).unwrap();
    let full = alice.limit_status(&name("s")).unwrap();
    assert!(!full.allowed);
    assert_eq!(full.retry_after_seconds, Some(60));
    alice.reset_limit(&name("s")).unwrap();
    assert!(matches!(
        alice.limit_status(&name("s")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        alice.reset_limit(&name("s")),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(alice.check(&name("s"), policy(2, 60)).unwrap().remaining, 1);
}

fn the_latest_policy_applies(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    for _ in 0..3 {
        assert!(alice.check(&name("p"), policy(3, 60)).unwrap().allowed);
    }
    assert!(!alice.check(&name("p"), policy(3, 60)).unwrap().allowed);
    let raised = alice.check(&name("p"), policy(5, 60)).unwrap();
    assert!(raised.allowed);
    assert_eq!(raised.remaining, 1);
    let listed = alice.limits().unwrap();
    assert_eq!(listed[0].policy, policy(5, 60));
    assert_eq!(listed[0].current_count, 4);
}

fn reset_at_is_now_when_nothing_counts(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    alice.check(&name("idle"), policy(10, 5)).unwrap();
    h.advance_secs(5);
    let status = alice.limit_status(&name("idle")).unwrap();
    assert_eq!(status.remaining, 10);
    assert_eq!(status.reset_at, h.store.now());
    assert_eq!(
        h.store.sweep().unwrap().limits,
        1,
        "an idle limit may be forgotten"
    );
    assert!(alice.limits().unwrap().is_empty());
}

fn limits_are_private_and_listed_by_name(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    alice.check(&name("b"), policy(1, 60)).unwrap();
    alice.check(&name("a"), policy(1, 60)).unwrap();
    let d = bob.check(&name("a"), policy(1, 60)).unwrap();
    assert!(d.allowed, "bob's limit a is not alice's");
    let listed: Vec<_> = alice
        .limits()
        .unwrap()
        .into_iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(listed, ["a", "b"]);
    bob.reset_limit(&name("a")).unwrap();
    assert!(matches!(
        bob.reset_limit(&name("b")),
        Err(Error::NotFound { .. })
    ));
    assert!(
        !alice.limit_status(&name("a")).unwrap().allowed,
        "bob's reset left alice's alone"
    );
}

fn the_limit_quota_counts_new_limits(open: Open) {
    let h = open(Settings {
        quotas: Quotas {
            limits: 1,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let alice = h.user("alice");
    alice.check(&name("one"), policy(1, 1)).unwrap();
    alice.check(&name("one"), policy(1, 1)).unwrap();
    assert!(matches!(
        alice.check(&name("two"), policy(1, 1)),
        Err(Error::QuotaExceeded { limit: 1, .. })
    ));
    h.advance_secs(1);
    // "one" counted nothing for a whole window: it is forgotten to make room.
    alice.check(&name("two"), policy(1, 1)).unwrap();
    assert!(matches!(
        alice.limit_status(&name("one")),
        Err(Error::NotFound { .. })
    ));
}

fn idle_limits_do_not_pile_up_without_sweeps(open: Open) {
    let h = open(Settings {
        quotas: Quotas {
            limits: 5,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let alice = h.user("alice");
    for i in 0..100 {
        alice.check(&name(&format!("l{i}")), policy(3, 1)).unwrap();
        h.advance_secs(1);
    }
    let stored = h.store.sweep().unwrap().limits;
    assert!(stored <= 5, "{stored} idle limits were still stored");
}

fn a_sweep_in_small_batches_forgets_every_idle_limit(open: Open) {
    let h = open(Settings::default());
    let users = ["alice", "bob", "carol"];
    for user in users {
        for i in 0..3 {
            let idle = name(&format!("idle-{i}"));
            h.user(user).check(&idle, policy(3, 1)).unwrap();
        }
    }
    h.advance_secs(1);
    for user in users {
        h.user(user).check(&name("busy"), policy(3, 60)).unwrap();
    }
    // Two limits a transaction: the same names under each owner, resumed after (owner, name).
    let batch = std::num::NonZeroUsize::new(2).unwrap();
    assert_eq!(h.store.sweep_in_batches(batch).unwrap().limits, 9);
    assert_eq!(h.store.sweep_in_batches(batch).unwrap().limits, 0);
    for user in users {
        let limits = h.user(user).limits().unwrap();
        let names: Vec<&str> = limits.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["busy"], "{user}");
    }
}

each_backend!(
    a_sweep_in_small_batches_forgets_every_idle_limit,
    idle_limits_do_not_pile_up_without_sweeps,
    counts_down_then_denies_with_a_retry_time,
    the_window_slides,
    waiting_retry_after_is_enough,
    waiting_retry_after_is_enough_after_the_maximum_is_lowered,
    status_does_not_consume_and_reset_forgets,
    the_latest_policy_applies,
    reset_at_is_now_when_nothing_counts,
    limits_are_private_and_listed_by_name,
    the_limit_quota_counts_new_limits,
);
