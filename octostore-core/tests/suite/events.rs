//! The change log: one event per change, in order, read from any kept index exactly once;
//! who sees what; resync past what was pruned; a failed change leaves no event. Indexes
//! increase but need not be consecutive (PostgreSQL's are not): the tests learn them by
//! reading the log.

use std::time::Duration;

use octostore_core::backend::sqlite::faults::Fault;
use octostore_core::{
    Api, ConfigKey, Error, Event, EventFilter, EventKind, FlagName, Kinds, LimitName, LockName,
    RatePolicy, Session, Settings, SqliteBackend, Store, Ttl,
};
use serde_json::json;

use crate::support::{each_backend, Open};

each_backend!(
    each_change_makes_one_event_in_order,
    a_reader_from_any_index_sees_each_later_event_once,
    a_reader_past_the_kept_events_is_told_to_resync,
    events_older_than_their_max_age_are_pruned,
    the_log_is_pruned_as_changes_go_without_a_sweep,
    others_see_my_locks_but_not_my_flags_configs_or_limits,
    filters_pick_kinds_and_name_prefixes,
    a_refused_change_makes_no_event,
    a_page_limit_out_of_range_is_refused,
);

fn flag(name: &str) -> FlagName {
    FlagName::parse(name).unwrap()
}

fn lock(name: &str) -> LockName {
    LockName::parse(name).unwrap()
}

/// Every event `me` may see after `since`, read page after page of `limit`.
fn read_all(me: &Session, since: u64, filter: &EventFilter, limit: usize) -> Vec<Event> {
    let (mut events, mut since) = (Vec::new(), since);
    loop {
        let page = me.events(since, filter, limit).unwrap();
        assert!(!page.resync, "resync from {since}");
        let done = page.events.len() < limit;
        events.extend(page.events);
        if done {
            return events;
        }
        since = page.next;
    }
}

/// The newest index: a reader from past it is told to resync, and told where the log stands.
/// (On PostgreSQL it moves with every transaction of the database, as it settles.)
fn newest(me: &Session) -> u64 {
    me.events(u64::MAX, &EventFilter::default(), 1)
        .unwrap()
        .next
}

/// The indexes of `events`.
fn indexes(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.index).collect()
}

/// Each event as `kind action name`.
fn said(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let c = &e.change;
            format!("{} {} {}", c.kind().as_str(), c.action(), c.name())
        })
        .collect()
}

fn each_change_makes_one_event_in_order(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let ttl = Ttl::seconds(10).unwrap();
    let key = ConfigKey::parse("db.pool").unwrap();
    let limit = LimitName::parse("api").unwrap();

    alice.set_flag(&flag("beta"), true, None).unwrap();
    alice.set_flag_enabled(&flag("beta"), false).unwrap();
    alice.evaluate_flag(&flag("beta"), None).unwrap();
    alice.delete_flag(&flag("beta")).unwrap();
    alice.put_config(&key, json!(1), None).unwrap();
    alice.put_config(&key, json!(2), None).unwrap();
    alice.get_config(&key, None).unwrap();
    alice.delete_config(&key).unwrap();
    let policy = RatePolicy::new(5, 60).unwrap();
    alice.check(&limit, policy).unwrap();
    alice.check(&limit, policy).unwrap();
    alice.reset_limit(&limit).unwrap();
    let grant = alice.acquire(&lock("deploy"), ttl, None).unwrap();
    alice.acquire(&lock("deploy"), ttl, None).unwrap(); // held already: no change
    alice
        .renew(&lock("deploy"), grant.lease.lease_id, ttl)
        .unwrap();
    alice
        .release(&lock("deploy"), grant.lease.lease_id)
        .unwrap();
    alice.acquire(&lock("deploy"), ttl, None).unwrap();
    h.advance_secs(10);
    bob.acquire(&lock("deploy"), ttl, None).unwrap(); // takes over alice's dead lease
    h.advance_secs(10);
    h.store.sweep().unwrap();

    let events = read_all(&alice, 0, &EventFilter::default(), 100);
    assert_eq!(
        said(&events),
        [
            "flag set beta",
            "flag set beta",
            "flag deleted beta",
            "config put db.pool",
            "config put db.pool",
            "config deleted db.pool",
            "limit reset api",
            "lock acquired deploy",
            "lock renewed deploy",
            "lock released deploy",
            "lock acquired deploy",
            "lock expired deploy",
            "lock acquired deploy",
            "lock expired deploy",
        ]
    );
    assert!(indexes(&events).is_sorted_by(|a, b| a < b));
    let holders: Vec<&str> = events[10..]
        .iter()
        .map(|e| match &e.change {
            octostore_core::Change::LockAcquired(l) | octostore_core::Change::LockExpired(l) => {
                l.holder.as_str()
            }
            other => panic!("not a lease's event: {other:?}"),
        })
        .collect();
    assert_eq!(holders, ["alice", "alice", "bob", "bob"]);
    assert!(matches!(
        events[1].change,
        octostore_core::Change::FlagSet { enabled: false, .. }
    ));
    assert!(matches!(
        events[4].change,
        octostore_core::Change::ConfigPut { version: 2, .. }
    ));
}

fn a_reader_from_any_index_sees_each_later_event_once(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    for i in 0..7 {
        alice
            .set_flag(&flag(&format!("f{i}")), i % 2 == 0, None)
            .unwrap();
    }
    let all = read_all(&alice, 0, &EventFilter::default(), 100);
    assert_eq!(all.len(), 7);
    let starts = std::iter::once(0).chain(indexes(&all));
    for (seen, since) in starts.enumerate() {
        for limit in [1, 2, 3, 100] {
            let read = read_all(&alice, since, &EventFilter::default(), limit);
            assert_eq!(read, all[seen..], "from {since} by {limit}");
        }
    }
    // A reader at the end waits at the end: an empty page, the same index next.
    let end = newest(&alice);
    assert!(end >= all[6].index);
    let page = alice.events(end, &EventFilter::default(), 10).unwrap();
    assert!(page.events.is_empty() && !page.resync && page.next >= end);
}

fn a_reader_past_the_kept_events_is_told_to_resync(open: Open) {
    let h = open(Settings {
        events_kept: 3,
        ..Settings::default()
    });
    let alice = h.user("alice");
    for i in 0..6 {
        alice.set_flag(&flag(&format!("f{i}")), true, None).unwrap();
    }
    let made = indexes(&read_all(&alice, 0, &EventFilter::default(), 10));
    assert_eq!(h.store.sweep().unwrap().events, 3);
    assert_eq!(h.store.sweep().unwrap().events, 0);
    for since in [0, made[0], made[1]] {
        let page = alice.events(since, &EventFilter::default(), 10).unwrap();
        assert!(page.resync, "from {since}");
        assert!(page.events.is_empty());
        assert!(page.next >= made[5]);
    }
    // The third was read before the prune: nothing after it is lost.
    let after_third = read_all(&alice, made[2], &EventFilter::default(), 10);
    assert_eq!(indexes(&after_third), made[3..]);
    // An index this log never reached is not of this log.
    let beyond = newest(&alice) * 2 + 1;
    let page = alice.events(beyond, &EventFilter::default(), 10).unwrap();
    assert!(page.resync);
    assert!(page.next >= made[5] && page.next < beyond);
}

fn events_older_than_their_max_age_are_pruned(open: Open) {
    let h = open(Settings {
        events_max_age: Duration::from_secs(60),
        ..Settings::default()
    });
    let alice = h.user("alice");
    alice.set_flag(&flag("old"), true, None).unwrap();
    h.advance_secs(30);
    alice.set_flag(&flag("new"), true, None).unwrap();
    let made = indexes(&read_all(&alice, 0, &EventFilter::default(), 10));
    h.advance_secs(29);
    assert_eq!(h.store.sweep().unwrap().events, 0);
    h.advance_secs(1);
    assert_eq!(h.store.sweep().unwrap().events, 1);
    assert!(alice.events(0, &EventFilter::default(), 10).unwrap().resync);
    assert_eq!(
        said(&read_all(&alice, made[0], &EventFilter::default(), 10)),
        ["flag set new"]
    );
    h.advance_secs(30);
    assert_eq!(h.store.sweep().unwrap().events, 1);
    // Nothing kept: a reader at the newest index misses nothing.
    let end = newest(&alice);
    assert!(end >= made[1]);
    let page = alice.events(end, &EventFilter::default(), 10).unwrap();
    assert!(page.events.is_empty() && !page.resync && page.next >= end);
}

fn the_log_is_pruned_as_changes_go_without_a_sweep(open: Open) {
    let h = open(Settings {
        events_kept: 10,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let changes = octostore_core::PRUNE_EVERY + 10;
    let mut before_the_last_ten = 0;
    for i in 0..changes {
        alice.set_flag(&flag("f"), i % 2 == 0, None).unwrap();
        if i + 10 == changes - 1 {
            before_the_last_ten = newest(&alice);
        }
    }
    assert!(alice.events(0, &EventFilter::default(), 10).unwrap().resync);
    let last_ten = read_all(&alice, before_the_last_ten, &EventFilter::default(), 100);
    assert_eq!(last_ten.len(), 10);
}

fn others_see_my_locks_but_not_my_flags_configs_or_limits(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let limit = LimitName::parse("api").unwrap();
    alice.set_flag(&flag("beta"), true, None).unwrap();
    alice
        .put_config(&ConfigKey::parse("k").unwrap(), json!(1), None)
        .unwrap();
    alice
        .check(&limit, RatePolicy::new(5, 60).unwrap())
        .unwrap();
    alice.reset_limit(&limit).unwrap();
    alice
        .acquire(&lock("deploy"), Ttl::seconds(10).unwrap(), None)
        .unwrap();
    bob.set_flag(&flag("beta"), false, None).unwrap();

    let seen_by_bob = read_all(&bob, 0, &EventFilter::default(), 10);
    assert_eq!(
        said(&seen_by_bob),
        ["lock acquired deploy", "flag set beta"]
    );
    let seen_by_alice = read_all(&alice, 0, &EventFilter::default(), 10);
    assert_eq!(seen_by_bob[0], seen_by_alice[3]);
    assert_eq!(
        said(&seen_by_alice),
        [
            "flag set beta",
            "config put k",
            "limit reset api",
            "lock acquired deploy"
        ]
    );
    // Bob's page ends at the log's newest index, though alice's events came before.
    let bobs_next = bob.events(0, &EventFilter::default(), 10).unwrap().next;
    assert!(bobs_next >= seen_by_bob[1].index);
}

fn filters_pick_kinds_and_name_prefixes(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let ttl = Ttl::seconds(10).unwrap();
    alice.set_flag(&flag("app_beta"), true, None).unwrap();
    alice.acquire(&lock("app_deploy"), ttl, None).unwrap();
    alice.set_flag(&flag("web_dark"), true, None).unwrap();
    alice
        .put_config(&ConfigKey::parse("app_size").unwrap(), json!(1), None)
        .unwrap();

    let flags = EventFilter::new(Kinds::of([EventKind::Flag]), "").unwrap();
    assert_eq!(
        said(&read_all(&alice, 0, &flags, 10)),
        ["flag set app_beta", "flag set web_dark"]
    );
    let app = EventFilter::new(Kinds::ALL, "app_").unwrap();
    assert_eq!(
        said(&read_all(&alice, 0, &app, 10)),
        [
            "flag set app_beta",
            "lock acquired app_deploy",
            "config put app_size"
        ]
    );
    let app_locks_and_configs =
        EventFilter::new(Kinds::of([EventKind::Lock, EventKind::Config]), "app").unwrap();
    assert_eq!(
        said(&read_all(&alice, 0, &app_locks_and_configs, 10)),
        ["lock acquired app_deploy", "config put app_size"]
    );
    // A filter that matches nothing still moves the reader to the newest index.
    let none = EventFilter::new(Kinds::ALL, "zzz").unwrap();
    let page = alice.events(0, &none, 10).unwrap();
    let last = read_all(&alice, 0, &EventFilter::default(), 10)[3].index;
    assert!(page.events.is_empty() && page.next >= last);

    assert!(matches!(
        EventFilter::new(Kinds::of([]), ""),
        Err(Error::Invalid { field: "kind", .. })
    ));
    assert!(matches!(
        EventFilter::new(Kinds::ALL, &"a".repeat(129)),
        Err(Error::Invalid {
            field: "prefix",
            ..
        })
    ));
}

fn a_refused_change_makes_no_event(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let ttl = Ttl::seconds(10).unwrap();
    alice.acquire(&lock("deploy"), ttl, None).unwrap();
    assert!(bob.acquire(&lock("deploy"), ttl, None).is_err());
    assert!(alice.set_flag_enabled(&flag("missing"), true).is_err());
    assert!(alice.delete_flag(&flag("missing")).is_err());
    assert!(alice
        .delete_config(&ConfigKey::parse("missing").unwrap())
        .is_err());
    assert!(alice
        .reset_limit(&LimitName::parse("missing").unwrap())
        .is_err());
    let events = read_all(&alice, 0, &EventFilter::default(), 10);
    assert_eq!(said(&events), ["lock acquired deploy"]);
}

fn a_page_limit_out_of_range_is_refused(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    for limit in [0, octostore_core::MAX_EVENTS_PER_PAGE + 1] {
        assert!(matches!(
            alice.events(0, &EventFilter::default(), limit),
            Err(Error::Invalid { field: "limit", .. })
        ));
    }
    assert!(alice
        .events(
            0,
            &EventFilter::default(),
            octostore_core::MAX_EVENTS_PER_PAGE
        )
        .is_ok());
}

/// A change whose commit fails keeps neither the change nor its event.
#[test]
fn a_change_whose_commit_fails_leaves_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("f.db")).unwrap();
    let faults = backend.faults();
    let store = Store::builder().backend(backend).build();
    let alice = store.session(
        store
            .local_user(&octostore_core::Login::parse("alice").unwrap())
            .unwrap(),
    );
    alice.set_flag(&flag("kept"), true, None).unwrap();
    faults.arm(Fault::CommitRolledBack);
    assert!(alice.set_flag(&flag("lost"), true, None).is_err());
    faults.arm(Fault::CommitRolledBack);
    let key = ConfigKey::parse("lost").unwrap();
    assert!(alice.put_config(&key, json!(1), None).is_err());

    assert!(alice.evaluate_flag(&flag("lost"), None).is_err());
    assert!(alice.get_config(&key, None).is_err());
    let events = read_all(&alice, 0, &EventFilter::default(), 10);
    assert_eq!(said(&events), ["flag set kept"]);
    // The next change takes the next index: the failed ones took none.
    alice.set_flag(&flag("after"), true, None).unwrap();
    let events = read_all(&alice, 0, &EventFilter::default(), 10);
    assert_eq!(events.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
}
