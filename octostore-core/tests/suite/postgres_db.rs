//! What only the database backend has: several nodes (backends) on one database, migrations
//! racing at start, schema versions, and the database's clock deciding time for every node.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chrono::DateTime;
use octostore_core::backend::postgres::SCHEMA_VERSION;
use octostore_core::values::error::Chain;
use octostore_core::{
    Api, Backend, Change, Clock, Error, EventFilter, FencingToken, Key, Keys, LeaseChange,
    LimitName, LockName, LockStatus, Login, ManualClock, PostgresBackend, PostgresOptions,
    RatePolicy, Session, Store, TimeSource, TokenHash, Ttl, Tx, UserId,
};

use crate::support::{postgres_url, TestSchema};

/// A node: a store of its own on the shared schema, with its own (manual) clock.
fn node(schema: &TestSchema, time: TimeSource, clock_at: i64) -> Store {
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(clock_at, 0).unwrap(),
    ));
    Store::builder()
        .backend(schema.backend_with(time))
        .clock(clock)
        .build()
}

fn session(store: &Store, login: &str) -> Session {
    store.session(store.local_user(&Login::parse(login).unwrap()).unwrap())
}

fn stored_version(schema: &TestSchema) -> i32 {
    let mut client = schema.client();
    let query = format!("SELECT version FROM {}.octostore_schema", schema.name);
    client.query_one(&query, &[]).unwrap().get(0)
}

#[test]
fn nodes_starting_together_migrate_once() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    const NODES: usize = 6;
    let barrier = Barrier::new(NODES);
    let stores: Vec<Store> = thread::scope(|s| {
        let handles: Vec<_> = (0..NODES)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    Store::builder().backend(schema.backend()).build()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(stored_version(&schema), SCHEMA_VERSION);
    let alice = session(&stores[0], "alice");
    let name = LockName::parse("after-start").unwrap();
    alice
        .acquire(&name, Ttl::seconds(60).unwrap(), None)
        .unwrap();
    for store in &stores {
        assert!(matches!(
            session(store, "alice").lock_status(&name).unwrap(),
            LockStatus::Held(_)
        ));
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    drop(schema.backend());
    let newer = SCHEMA_VERSION + 1;
    let mut client = schema.client();
    let update = format!("UPDATE {}.octostore_schema SET version = $1", schema.name);
    client.execute(&update, &[&newer]).unwrap();
    let options = PostgresOptions {
        schema: Some(schema.name.clone()),
        ..Default::default()
    };
    match PostgresBackend::connect_with(&url, options) {
        Err(Error::Storage { message, .. }) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    assert_eq!(stored_version(&schema), newer);
}

/// Two nodes whose clocks are a century apart agree on leases and windows, because both ask
/// the database for the time.
#[test]
fn the_database_clock_decides_for_every_node() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let year_2000 = node(&schema, TimeSource::Database, 946_684_800);
    let year_2100 = node(&schema, TimeSource::Database, 4_102_444_800);
    let mut client = schema.client();
    let database_now = |client: &mut postgres::Client| -> i64 {
        let row = client
            .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
            .unwrap();
        row.get::<_, f64>(0) as i64
    };

    let name = LockName::parse("century").unwrap();
    let before = database_now(&mut client);
    let grant = session(&year_2000, "alice")
        .acquire(&name, Ttl::seconds(60).unwrap(), None)
        .unwrap();
    let after = database_now(&mut client);
    let expires = grant.lease.expires_at.timestamp();
    assert!(
        (before + 59..=after + 61).contains(&expires),
        "expires at {expires}, the database said {before}..{after}"
    );
    // By its own clock, the node in 2100 would see a lease dead for a century.
    assert!(matches!(
        session(&year_2100, "bob").acquire(&name, Ttl::seconds(60).unwrap(), None),
        Err(Error::LockHeld { .. })
    ));

    let limit = LimitName::parse("hourly").unwrap();
    let policy = RatePolicy::new(1, 3600).unwrap();
    assert!(
        session(&year_2000, "alice")
            .check(&limit, policy)
            .unwrap()
            .allowed
    );
    assert!(
        !session(&year_2100, "alice")
            .check(&limit, policy)
            .unwrap()
            .allowed
    );

    // And a lease of one second dies by the database's clock, on both.
    let short = LockName::parse("one-second").unwrap();
    session(&year_2100, "alice")
        .acquire(&short, Ttl::seconds(1).unwrap(), None)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while session(&year_2000, "bob").lock_status(&short).unwrap() != LockStatus::Available {
        assert!(Instant::now() < deadline, "the lease outlived its TTL");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Threads on two nodes race for one lock and one limit: one holder at a time, fencing
/// tokens strictly increasing in the order the holders got in, and exactly `max` admissions.
/// A node remembers the tokens it has checked, and forgets them once any node, or anyone
/// with SQL, changes a token or a user: a token revoked, rotated or deleted elsewhere is
/// refused by the next request, even where it was trusted a moment before.
#[test]
fn a_token_revoked_rotated_or_deleted_elsewhere_is_refused_by_the_next_request() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let (a, b) = (
        node(&schema, TimeSource::Database, 0),
        node(&schema, TimeSource::Database, 0),
    );
    let alice = a.create_user(&Login::parse("alice").unwrap()).unwrap();
    let trusted = |token: &str| match b.authenticate(token) {
        Ok(session) => {
            assert_eq!(session.user(), &alice);
            true
        }
        Err(Error::Unauthorized) => false,
        Err(e) => panic!("authenticate: {e:?}"),
    };
    let revoked = a.issue_token(alice.id).unwrap();
    let rotated = a.issue_token(alice.id).unwrap();
    let deleted = a.issue_token(alice.id).unwrap();
    for token in [&revoked, &rotated, &deleted] {
        // Twice: the second time from what node b remembers.
        assert!(trusted(token.expose()) && trusted(token.expose()));
    }

    let hash = TokenHash::of(revoked.expose());
    let tokens = a.tokens(alice.id).unwrap();
    let id = tokens.iter().find(|t| t.hash == hash).unwrap().id;
    a.revoke_token(alice.id, id).unwrap();
    assert!(!trusted(revoked.expose()), "revoked on node a");
    assert!(trusted(rotated.expose()), "another token of alice's");

    let new = a.rotate_token(rotated.expose()).unwrap();
    assert!(!trusted(rotated.expose()), "rotated on node a");
    assert!(trusted(new.expose()));

    let sql = format!("DELETE FROM {}.tokens WHERE hash = $1", schema.name);
    let hash = TokenHash::of(deleted.expose());
    schema.client().execute(&sql, &[&&hash.0[..]]).unwrap();
    assert!(!trusted(deleted.expose()), "deleted with SQL");
    assert!(trusted(new.expose()));
}

#[test]
fn two_nodes_share_one_lock_and_one_limit() {
    const THREADS: usize = 6;
    const TURNS: usize = 15;
    const MAX: usize = 40;
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let nodes = [
        node(&schema, TimeSource::Database, 0),
        node(&schema, TimeSource::Database, 0),
    ];
    let name = LockName::parse("shared").unwrap();
    let limit = LimitName::parse("shared").unwrap();
    let policy = RatePolicy::new(MAX as i64, 86_400).unwrap();
    let inside = AtomicUsize::new(0);
    let turn = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    let mut turns: Vec<(usize, u64)> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let me = session(&nodes[t % 2], &format!("racer{t}"));
                let limited = session(&nodes[t % 2], "shared-quota");
                let (inside, turn, admitted, barrier) = (&inside, &turn, &admitted, &barrier);
                let (name, limit) = (&name, &limit);
                s.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    while mine.len() < TURNS {
                        if limited.check(limit, policy).unwrap().allowed {
                            admitted.fetch_add(1, SeqCst);
                        }
                        let grant = match me.acquire(name, Ttl::seconds(3600).unwrap(), None) {
                            Ok(grant) => grant,
                            Err(Error::LockHeld { .. }) => continue,
                            Err(e) => panic!("acquire: {e:?}"),
                        };
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders at once");
                        mine.push((turn.fetch_add(1, SeqCst), grant.lease.fencing_token.0));
                        inside.fetch_sub(1, SeqCst);
                        me.release(name, grant.lease.lease_id).unwrap();
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    turns.sort_unstable();
    assert_eq!(turns.len(), THREADS * TURNS);
    for pair in turns.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "fencing tokens out of order: {pair:?}"
        );
    }
    assert_eq!(admitted.load(SeqCst), MAX);
}

/// Threads on two nodes take turns on several locks at once. What PostgreSQL promises of
/// fencing tokens, exactly: per lock, strictly increasing in the order of grants (each
/// holder appends its token to its lock's list while it holds the lock); store-wide, never
/// repeated; and greater than every token acknowledged before the acquire was sent. (Tokens
/// of acquires of different locks that overlap may be acknowledged out of order: `nextval`
/// runs before the commit.) Checked after the threads end, so a broken promise fails the
/// test instead of leaving a lock held.
#[test]
fn fencing_tokens_from_two_nodes_rise_per_lock_and_never_repeat() {
    const THREADS: usize = 6;
    const LOCKS: usize = 3;
    const GRANTS: usize = 25;
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let nodes = [
        node(&schema, TimeSource::Database, 0),
        node(&schema, TimeSource::Database, 0),
    ];
    let names: Vec<LockName> = (0..LOCKS)
        .map(|l| LockName::parse(&format!("fenced-{l}")).unwrap())
        .collect();
    // Per lock: the tokens of its grants, appended by each holder while it holds the lock.
    let granted: Vec<Mutex<Vec<u64>>> = (0..LOCKS).map(|_| Mutex::new(Vec::new())).collect();
    let holders: Vec<AtomicUsize> = (0..LOCKS).map(|_| AtomicUsize::new(0)).collect();
    let overlaps = AtomicUsize::new(0);
    // The largest token whose acquire has returned.
    let acknowledged = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let barrier = Barrier::new(THREADS);
    // (largest token acknowledged before the acquire was sent, token granted)
    let after_acknowledged: Vec<(u64, u64)> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let me = session(&nodes[t % 2], &format!("fencer{t}"));
                let (names, granted, holders) = (&names, &granted, &holders);
                let (overlaps, acknowledged, barrier) = (&overlaps, &acknowledged, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    for attempt in t.. {
                        if mine.len() == GRANTS {
                            break;
                        }
                        assert!(Instant::now() < deadline, "thread {t}: grants never came");
                        let l = attempt % LOCKS;
                        let before = acknowledged.load(SeqCst);
                        let ttl = Ttl::seconds(3600).unwrap();
                        let grant = match me.acquire(&names[l], ttl, None) {
                            Ok(grant) => grant,
                            Err(Error::LockHeld { .. }) => continue,
                            Err(e) => panic!("acquire: {e:?}"),
                        };
                        let token = grant.lease.fencing_token.0;
                        acknowledged.fetch_max(token, SeqCst);
                        mine.push((before, token));
                        if holders[l].fetch_add(1, SeqCst) != 0 {
                            overlaps.fetch_add(1, SeqCst);
                        }
                        granted[l].lock().unwrap().push(token);
                        holders[l].fetch_sub(1, SeqCst);
                        me.release(&names[l], grant.lease.lease_id).unwrap();
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(overlaps.load(SeqCst), 0, "two holders of one lock at once");
    for (before, token) in after_acknowledged {
        assert!(
            token > before,
            "token {token} granted after {before} was acknowledged"
        );
    }
    let mut all = HashSet::new();
    for (l, tokens) in granted.into_iter().enumerate() {
        let tokens = tokens.into_inner().unwrap();
        for pair in tokens.windows(2) {
            assert!(
                pair[0] < pair[1],
                "lock {l}: tokens out of grant order: {pair:?}"
            );
        }
        for token in tokens {
            assert!(all.insert(token), "token {token} granted twice");
        }
    }
    assert_eq!(all.len(), THREADS * GRANTS);
}

/// The database ending a pooled connection (a restart, an administrator, an idle timeout)
/// costs the next operation a retry on a new connection, not an error.
#[test]
fn connections_the_database_ends_are_replaced() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    // Named after the schema, so that only this test's connections are ended.
    let separator = if url.contains('?') { '&' } else { '?' };
    let options = PostgresOptions {
        schema: Some(schema.name.clone()),
        ..Default::default()
    };
    let backend = PostgresBackend::connect_with(
        &format!("{url}{separator}application_name={}", schema.name),
        options,
    )
    .unwrap();
    let store = Store::builder().backend(backend).build();
    let alice = session(&store, "alice");
    let name = LockName::parse("survives-restarts").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let first = alice.acquire(&name, ttl, None).unwrap();
    let ended: i64 = schema
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&schema.name],
        )
        .unwrap()
        .get(0);
    assert!(ended > 0, "no connection to end");
    alice.release(&name, first.lease.lease_id).unwrap();
    let second = alice.acquire(&name, ttl, None).unwrap();
    assert!(second.lease.fencing_token > first.lease.fencing_token);
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    match PostgresBackend::connect("postgres://postgres@127.0.0.1:1/test") {
        Err(e @ Error::Storage { .. }) => {
            let shown = Chain(&e).to_string();
            assert!(shown.contains("cannot connect"), "{shown}");
            // The driver's error is kept as the source, not only named.
            let source = std::error::Error::source(&e).expect("a source");
            assert!(
                source.downcast_ref::<postgres::Error>().is_some(),
                "{source:?}"
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[test]
fn schema_names_that_would_need_quoting_are_refused() {
    for schema in [
        "",
        "Upper",
        "9lives",
        "a-b",
        "x; DROP TABLE users",
        &"a".repeat(64),
    ] {
        let options = PostgresOptions {
            schema: Some(schema.to_owned()),
            ..Default::default()
        };
        assert!(
            matches!(
                PostgresBackend::connect_with("postgres://postgres@127.0.0.1:1/test", options),
                Err(Error::Invalid {
                    field: "database_schema",
                    ..
                })
            ),
            "{schema:?}"
        );
    }
}

/// Appends on different nodes do not wait for each other: the second commits while the
/// first still runs, with a greater index. No reader sees the log past the first before it
/// commits, then every index is readable.
#[test]
fn appends_commit_side_by_side_and_are_read_once_settled() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let (first, second, reader) = (schema.backend(), schema.backend(), schema.backend());
    let clock = &ManualClock::default();
    let owner = UserId(uuid::Uuid::new_v4());
    let reset = |name| Change::LimitReset {
        name: LimitName::parse(name).unwrap(),
    };
    let (first_change, second_change) = (&reset("first"), &reset("second"));
    let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let newest = || {
        let mut newest = None;
        let read = &mut |tx: &mut dyn Tx| {
            newest = Some(tx.event_bounds()?.newest);
            Ok(())
        };
        reader.read_log(clock, read).unwrap();
        newest.unwrap()
    };
    let (appended, first_appended) = mpsc::channel();
    let (commit, may_commit) = mpsc::channel::<()>();
    thread::scope(|s| {
        let first = s.spawn(move || {
            let op = &mut |tx: &mut dyn Tx| {
                tx.append_event(owner, at, first_change)?;
                // Sent, and its index taken, with the next statement answered.
                tx.event_bounds()?;
                appended.send(()).unwrap();
                may_commit.recv().unwrap();
                Ok(())
            };
            first.transact(clock, op).unwrap();
        });
        first_appended.recv().unwrap();
        let op = &mut |tx: &mut dyn Tx| tx.append_event(owner, at, second_change);
        second.transact(clock, op).unwrap();
        let readable_while_first_runs = newest();
        commit.send(()).unwrap();
        first.join().unwrap();
        let index_of = |change: &Change| {
            let mut index = None;
            let read = &mut |tx: &mut dyn Tx| {
                let query = octostore_core::backend::EventQuery {
                    kinds: octostore_core::Kinds::ALL,
                    prefix: "",
                    owner,
                    of_anyone: octostore_core::Kinds::ALL,
                };
                let events = tx.events_after(0, &query, 10)?;
                index = events.iter().find(|e| &e.change == change).map(|e| e.index);
                Ok(())
            };
            reader.read_log(clock, read).unwrap();
            index.expect("the event appended")
        };
        let (first_index, second_index) = (index_of(first_change), index_of(second_change));
        assert!(second_index > first_index);
        assert!(
            readable_while_first_runs < first_index,
            "the log is readable past a writer still running"
        );
        assert!(newest() >= second_index);
    });
}

#[test]
fn a_change_on_another_node_wakes_a_waiting_subscription() {
    use octostore_core::{EventFilter, FlagName, SubscriptionItem};
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let (here, there) = (
        node(&schema, TimeSource::Database, 0),
        node(&schema, TimeSource::Database, 0),
    );
    let (me_here, me_there) = (session(&here, "alice"), session(&there, "alice"));
    let mut subscription = me_here.subscribe(0, EventFilter::default());
    assert_eq!(subscription.next_within(Duration::ZERO).unwrap(), None);
    let (go, start) = mpsc::channel::<()>();
    thread::scope(|s| {
        s.spawn(move || {
            start.recv().unwrap();
            let flag = FlagName::parse("elsewhere").unwrap();
            me_there.set_flag(&flag, true, None).unwrap();
        });
        go.send(()).unwrap();
        // Seen through the other node's commit alone: a lost wake-up is a `None` after 30 s.
        match subscription.next_within(Duration::from_secs(30)).unwrap() {
            Some(SubscriptionItem::Event(e)) => assert_eq!(e.change.name(), "elsewhere"),
            other => panic!("expected the other node's event, got {other:?}"),
        }
    });
}

#[test]
fn a_nodes_commits_are_announced_to_the_others_listening() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let (here, there) = (schema.backend(), schema.backend());
    let mut listener = here.listen().expect("PostgreSQL announces commits");
    // The first wait connects and listens; nothing was announced on this schema's channel.
    assert!(!listener.wait(Duration::ZERO));
    there.announce();
    assert!(
        listener.wait(Duration::from_secs(30)),
        "announcement unheard"
    );
    // Heard once: the same announcement does not wake it twice.
    assert!(!listener.wait(Duration::ZERO));
    // A store changed on one node announces it to the other.
    let store = Store::builder().backend(there).build();
    session(&store, "alice")
        .set_flag(
            &octostore_core::FlagName::parse("told").unwrap(),
            true,
            None,
        )
        .unwrap();
    assert!(
        listener.wait(Duration::from_secs(30)),
        "the change went unannounced"
    );
}

/// A transaction still running may hold a smaller id, and so give its events smaller
/// indexes, than one that began after it and committed first: the log is read only up to the
/// oldest writer still running, so a reader never moves past an event yet to commit.
#[test]
fn the_log_is_read_up_to_the_oldest_writer_still_running() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let store = node(&schema, TimeSource::Database, 0);
    let alice = session(&store, "alice");
    let slow_writer = schema.backend();
    let released = |name: &str| {
        Change::LockReleased(LeaseChange {
            name: LockName::parse(name).unwrap(),
            holder: Login::parse("alice").unwrap(),
            fencing_token: FencingToken(1),
            expires_at: DateTime::from_timestamp(0, 0).unwrap(),
        })
    };
    let (appended, has_appended) = mpsc::channel();
    let (commit, may_commit) = mpsc::channel::<()>();
    let slow = released("slow");
    let writer = thread::spawn(move || {
        let clock = ManualClock::default();
        slow_writer
            .transact(&clock, &mut |tx| {
                tx.append_event(UserId(uuid::Uuid::nil()), clock.now(), &slow)?;
                // Sent, and its index taken, with the next statement answered.
                tx.event_bounds()?;
                appended.send(()).unwrap();
                may_commit.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    has_appended.recv().unwrap();
    let fast = LockName::parse("fast").unwrap();
    alice
        .acquire(&fast, Ttl::seconds(60).unwrap(), None)
        .unwrap();

    let all = EventFilter::default();
    let before = alice.events(0, &all, 100).unwrap();
    commit.send(()).unwrap();
    writer.join().unwrap();
    let after = alice.events(before.next, &all, 100).unwrap();

    assert!(
        before.events.is_empty(),
        "read past a writer still running: {:?}",
        before.events
    );
    let names: Vec<String> = (after.events.iter())
        .map(|event| event.change.name().to_owned())
        .collect();
    assert_eq!(names, ["slow", "fast"]);
    assert!(after.events[0].index < after.events[1].index);
}

/// An acquire of a lock someone holds is answered at once, from a snapshot, even while
/// another operation on that lock holds the lock's key (here, one left running on another
/// node); an operation that writes waits for the key, and then runs.
#[test]
fn a_held_lock_is_answered_while_another_operation_on_it_runs() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let store = node(&schema, TimeSource::Database, 0);
    let (alice, bob) = (session(&store, "alice"), session(&store, "bob"));
    let busy = LockName::parse("busy").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let lease = alice.acquire(&busy, ttl, None).unwrap().lease;

    let other_node = schema.backend_with(TimeSource::Database);
    let (holding, holds) = mpsc::channel();
    let (finish, may_finish) = mpsc::channel::<()>();
    let holder = {
        let busy = busy.clone();
        thread::spawn(move || {
            let keys = [Key::Lock(&busy)];
            let clock = ManualClock::default();
            other_node
                .transact_on(&clock, Keys::of(&keys), &mut |tx| {
                    tx.lease(&busy)?;
                    holding.send(()).unwrap();
                    let _ = may_finish.recv();
                    Ok(())
                })
                .unwrap();
        })
    };
    holds.recv().unwrap();

    let (answered, answer) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| answered.send(bob.acquire(&busy, ttl, None)).unwrap());
        match answer.recv_timeout(Duration::from_secs(10)) {
            Ok(Err(Error::LockHeld { holder, .. })) => assert_eq!(holder.as_str(), "alice"),
            Ok(other) => panic!("bob's acquire: {other:?}"),
            Err(_) => {
                finish.send(()).unwrap();
                panic!("bob's acquire waited for the other operation on the lock");
            }
        }
        finish.send(()).unwrap();
    });
    holder.join().unwrap();
    alice.release(&busy, lease.lease_id).unwrap();
    assert!(bob.acquire(&busy, ttl, None).is_ok());
}

/// A node frozen mid-operation (here, a transaction that waits between two statements) is
/// ended by the database once idle for its `idle_in_transaction`: its writes are undone and
/// the change log's readers, held back by it, go on.
#[test]
fn a_transaction_left_idle_is_ended_and_holds_the_log_back_no_longer() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let store = node(&schema, TimeSource::Database, 0);
    let alice = session(&store, "alice");
    let frozen = PostgresBackend::connect_with(
        &url,
        PostgresOptions {
            schema: Some(schema.name.clone()),
            idle_in_transaction: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .unwrap();
    let (appended, has_appended) = mpsc::channel();
    let (thaw, thawed) = mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        let clock = ManualClock::default();
        let change = Change::LockReleased(LeaseChange {
            name: LockName::parse("frozen").unwrap(),
            holder: Login::parse("alice").unwrap(),
            fencing_token: FencingToken(1),
            expires_at: DateTime::from_timestamp(0, 0).unwrap(),
        });
        frozen.transact(&clock, &mut |tx| {
            tx.append_event(UserId(uuid::Uuid::nil()), clock.now(), &change)?;
            // Sent, and its index taken, with the next statement answered.
            tx.event_bounds()?;
            appended.send(()).unwrap();
            let _ = thawed.recv();
            Ok(())
        })
    });
    has_appended.recv().unwrap();
    let fast = LockName::parse("fast").unwrap();
    alice
        .acquire(&fast, Ttl::seconds(60).unwrap(), None)
        .unwrap();
    // Readable once the database has ended the frozen transaction, well within this.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let page = alice.events(0, &EventFilter::default(), 10).unwrap();
        if !page.events.is_empty() || Instant::now() >= deadline {
            break page.events;
        }
        thread::sleep(Duration::from_millis(50));
    };
    thaw.send(()).unwrap();
    let frozen_outcome = writer.join().unwrap();

    let names: Vec<&str> = seen.iter().map(|e| e.change.name()).collect();
    assert_eq!(names, ["fast"], "the log stayed held back");
    assert!(frozen_outcome.is_err(), "an ended transaction committed");
    let all = alice.events(0, &EventFilter::default(), 10).unwrap();
    assert_eq!(all.events.len(), 1, "{:?}", all.events);
}

/// An acquire's view, read in one statement, answers what the reads it stands for answer
/// apart: the lease, and without one, the queue's first live waiters (a dead process's left
/// out but the asking one's) and the owner's count of leases.
#[test]
fn an_acquire_view_in_one_statement_answers_as_its_reads_apart() {
    use octostore_core::backend::{AcquireView, Acquiring};
    use octostore_core::records::lock::NodeId;
    use octostore_core::{LeaseId, LeaseRecord};

    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::new(&url);
    let backend = schema.backend();
    let clock = ManualClock::default();
    let now = clock.now();
    let lock = LockName::parse("viewed").unwrap();
    let (alice, bob) = (UserId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
    let node = || NodeId(uuid::Uuid::new_v4());
    let (here, alive, dead) = (node(), node(), node());
    let mut last_token = 0;
    let mut compared = || {
        let mut views = Vec::new();
        let compare = &mut |tx: &mut dyn Tx| {
            for (owner, me) in [(alice, here), (bob, alive), (bob, dead)] {
                for max in [1, 8] {
                    let of = Acquiring {
                        name: &lock,
                        owner,
                        me,
                        now,
                        max_waiters: max,
                    };
                    let mut one = tx.acquire_view(&of)?;
                    // Taken with the view, one more each time, where no lease is stored.
                    let token = one.unleased.as_mut().map(|u| u.fencing_token.take());
                    if let Some(token) = token {
                        let token = token.expect("a token taken with the view").0;
                        assert!(token > last_token, "{token} after {last_token}");
                        last_token = token;
                    }
                    let apart = AcquireView::read_apart(tx, &of)?;
                    assert_eq!(one, apart, "{owner:?} on {me:?}, {max} waiters");
                    views.push(one);
                }
            }
            Ok(())
        };
        backend.transact(&clock, compare).unwrap();
        views
    };
    let lease = |name: &str| LeaseRecord {
        name: LockName::parse(name).unwrap(),
        owner: alice,
        client_id: None,
        lease_id: LeaseId(uuid::Uuid::new_v4()),
        fencing_token: FencingToken(7),
        expires_at: now + chrono::Duration::seconds(30),
    };
    let unleased = |views: &[AcquireView]| -> Vec<(usize, usize)> {
        (views.iter())
            .map(|view| {
                assert_eq!(view.lease, None);
                let unleased = view.unleased.as_ref().expect("read without a lease");
                (unleased.first_waiters.len(), unleased.leases_of_owner)
            })
            .collect()
    };
    assert!(unleased(&compared()).iter().all(|read| *read == (0, 0)));

    let fill = &mut |tx: &mut dyn Tx| {
        tx.put_lease(&lease("other"))?;
        tx.put_lease(&lease("another"))?;
        tx.beat(alive, now + chrono::Duration::seconds(60))?;
        tx.beat(dead, now - chrono::Duration::seconds(1))?;
        tx.join_queue(&lock, bob, dead)?;
        tx.join_queue(&lock, bob, alive)?;
        tx.join_queue(&lock, alice, here)?;
        Ok(())
    };
    backend.transact(&clock, fill).unwrap();
    // A process that never beat is not alive: only its own waiter is read for it. Alice
    // holds two leases, Bob none.
    let read = unleased(&compared());
    let expected = [(1, 2), (2, 2), (1, 0), (1, 0), (1, 0), (2, 0)];
    assert_eq!(read, expected);

    let held = &mut |tx: &mut dyn Tx| tx.put_lease(&lease("viewed"));
    backend.transact(&clock, held).unwrap();
    for view in compared() {
        assert_eq!(view.lease.as_ref().map(|l| l.name.as_str()), Some("viewed"));
        assert_eq!(view.unleased, None);
    }
}
