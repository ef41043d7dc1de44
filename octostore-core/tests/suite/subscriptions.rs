//! Following the change log: a subscription gives every event once and in order from any
//! kept index, tells of a resync past what was pruned, and a change committed elsewhere (a
//! thread, a group of the committer, another store on the same file) wakes it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use octostore_core::{
    Api, Caller, Committer, EventFilter, EventKind, FlagName, Kinds, Settings, SqliteBackend,
    Store, Subscription, SubscriptionItem,
};

use crate::support::{each_backend, Open};

each_backend!(
    a_subscription_gives_each_event_once_in_order_from_any_index,
    a_subscription_past_the_kept_events_resyncs_then_goes_on,
    a_change_on_another_thread_wakes_a_waiting_subscription,
    a_grouped_change_wakes_a_waiting_subscription_once_committed,
);

/// Long enough never to end in a passing run: a lost wake-up shows as a `None` after it.
const PATIENCE: Duration = Duration::from_secs(30);

fn flag(name: &str) -> FlagName {
    FlagName::parse(name).unwrap()
}

/// The indexes of the events after `since` that `me` reads now (indexes increase, but need
/// not be consecutive: PostgreSQL's are not).
fn indexes_after(me: &octostore_core::Session, since: u64) -> Vec<u64> {
    let page = me.events(since, &EventFilter::default(), 100).unwrap();
    assert!(!page.resync);
    page.events.iter().map(|e| e.index).collect()
}

/// The indexes of the events given until none is ready, and every resync's `next`.
fn drain(subscription: &mut Subscription) -> (Vec<u64>, Vec<u64>) {
    let (mut events, mut resyncs) = (Vec::new(), Vec::new());
    while let Some(item) = subscription.next_within(Duration::ZERO).unwrap() {
        match item {
            SubscriptionItem::Event(e) => events.push(e.index),
            SubscriptionItem::Resync { next } => resyncs.push(next),
        }
    }
    (events, resyncs)
}

/// The next item's event name, waiting up to [`PATIENCE`].
fn next_name(subscription: &mut Subscription) -> String {
    match subscription.next_within(PATIENCE).unwrap() {
        Some(SubscriptionItem::Event(e)) => e.change.name().to_owned(),
        other => panic!("expected an event, got {other:?}"),
    }
}

fn a_subscription_gives_each_event_once_in_order_from_any_index(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    for i in 0..7 {
        alice
            .set_flag(&flag(&format!("f{i}")), i % 2 == 0, None)
            .unwrap();
    }
    let mut all = indexes_after(&alice, 0);
    assert_eq!(all.len(), 7);
    for seen in 0..=7 {
        let since = if seen == 0 { 0 } else { all[seen - 1] };
        let mut subscription = alice.subscribe(since, EventFilter::default());
        let (events, resyncs) = drain(&mut subscription);
        assert_eq!(events, all[seen..], "from {since}");
        assert!(resyncs.is_empty());
        alice.set_flag(&flag("later"), true, None).unwrap();
        alice.delete_flag(&flag("later")).unwrap();
        let new = indexes_after(&alice, *all.last().unwrap());
        assert_eq!(new.len(), 2);
        let (later, _) = drain(&mut subscription);
        assert_eq!(later, new, "from {since}: each new event, once");
        all.extend(new);
    }
    // A filter's events only, still in order.
    let configs = EventFilter::new(Kinds::of([EventKind::Config]), "").unwrap();
    let mut subscription = alice.subscribe(0, configs);
    assert_eq!(drain(&mut subscription), (vec![], vec![]));
}

fn a_subscription_past_the_kept_events_resyncs_then_goes_on(open: Open) {
    let h = open(Settings {
        events_kept: 3,
        ..Settings::default()
    });
    let alice = h.user("alice");
    for i in 0..6 {
        alice.set_flag(&flag(&format!("f{i}")), true, None).unwrap();
    }
    let made = indexes_after(&alice, 0);
    assert_eq!(h.store.sweep().unwrap().events, 3);
    let mut subscription = alice.subscribe(made[0], EventFilter::default());
    let (events, resyncs) = drain(&mut subscription);
    assert!(events.is_empty());
    assert!(
        matches!(resyncs[..], [next] if next >= made[5]),
        "{resyncs:?}"
    );
    alice.set_flag(&flag("after"), true, None).unwrap();
    let after = indexes_after(&alice, made[5]);
    assert_eq!(drain(&mut subscription), (after, vec![]));
}

fn a_change_on_another_thread_wakes_a_waiting_subscription(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let mut subscription = alice.subscribe(0, EventFilter::default());
    assert_eq!(subscription.next_within(Duration::ZERO).unwrap(), None);
    let (go, start) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let writer = alice.clone();
        s.spawn(move || {
            start.recv().unwrap();
            writer.set_flag(&flag("from-a-thread"), true, None).unwrap();
        });
        go.send(()).unwrap();
        assert_eq!(next_name(&mut subscription), "from-a-thread");
    });
}

fn a_grouped_change_wakes_a_waiting_subscription_once_committed(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let mut subscription = alice.subscribe(0, EventFilter::default());
    assert_eq!(subscription.next_within(Duration::ZERO).unwrap(), None);
    let committer = Committer::start(h.store.clone(), 8).unwrap();
    let writer = alice.clone();
    let (done, answered) = mpsc::channel();
    let caller = Caller::until(Instant::now() + PATIENCE);
    let work = move |_: &Store| writer.set_flag(&flag("grouped"), true, None);
    committer
        .submit(caller, work, move |outcome| done.send(outcome).unwrap())
        .unwrap();
    assert_eq!(next_name(&mut subscription), "grouped");
    answered.recv().unwrap().unwrap();
}

#[test]
fn another_store_on_the_same_file_wakes_a_waiting_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let open = || {
        Store::builder()
            .backend(SqliteBackend::open(&path).unwrap())
            .build()
    };
    let (here, there) = (open(), open());
    let login = octostore_core::Login::parse("alice").unwrap();
    let me_here = here.session(here.local_user(&login).unwrap());
    let me_there = there.session(there.local_user(&login).unwrap());
    let mut subscription = me_here.subscribe(0, EventFilter::default());
    assert_eq!(subscription.next_within(Duration::ZERO).unwrap(), None);
    let (go, start) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            start.recv().unwrap();
            me_there.set_flag(&flag("elsewhere"), true, None).unwrap();
        });
        go.send(()).unwrap();
        assert_eq!(next_name(&mut subscription), "elsewhere");
    });
}
