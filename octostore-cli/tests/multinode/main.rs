//! Several `octostore serve` nodes on one PostgreSQL database, driven over HTTP by clients
//! spread across them: every guarantee holds across nodes, and a node killed with SIGKILL
//! mid-load loses nothing it acknowledged (nor its change log's events) while the other keeps
//! serving. Also every command
//! of the CLI on the database directly (`--database-url`).
//!
//! Runs when `OCTOSTORE_TEST_POSTGRES_URL` names a database; unset, each test says once that
//! it was skipped; set but unreachable, they fail.

mod cluster;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use octostore_core::{
    AcquireStatus, Api, Change, ClientId, ConfigKey, Error, Event, EventFilter, LimitName,
    LockName, LockStatus, RatePolicy, Ttl, MAX_EVENTS_PER_PAGE,
};
use serde_json::{json, Value};

use crate::cluster::{postgres_url, Cluster};

const NODES: usize = 2;
/// Client threads, spread over the nodes (thread `t` on node `t % NODES`).
const CLIENTS: usize = 6;

/// Runs `client(t, node)` on `CLIENTS` threads started together; their results, in order.
fn spread<T: Send>(client: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(CLIENTS);
    thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (client, barrier) = (&client, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    client(t, t % NODES)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn clients_on_two_nodes_hold_one_lock_in_turn_with_increasing_fencing_tokens() {
    const TURNS: usize = 10;
    let Some(url) = postgres_url() else { return };
    let cluster = Cluster::start(&url, NODES);
    let name = LockName::parse("contended").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let inside = AtomicUsize::new(0);
    let turn = AtomicUsize::new(0);
    // (turn, fencing token, node) of every time a client held the lock.
    let mut held: Vec<(usize, u64, usize)> = spread(|t, node| {
        let api = cluster.client(node);
        let me = ClientId::parse(&format!("racer-{t}")).unwrap();
        let mut mine = Vec::with_capacity(TURNS);
        while mine.len() < TURNS {
            let grant = match api.acquire(&name, ttl, Some(&me)) {
                Ok(grant) => grant,
                Err(Error::LockHeld { .. }) => continue,
                Err(e) => panic!("acquire on node {node}: {e}"),
            };
            assert_eq!(grant.status, AcquireStatus::Acquired);
            assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders at once");
            mine.push((turn.fetch_add(1, SeqCst), grant.lease.fencing_token.0, node));
            inside.fetch_sub(1, SeqCst);
            api.release(&name, grant.lease.lease_id).unwrap();
        }
        mine
    })
    .into_iter()
    .flatten()
    .collect();
    held.sort_unstable();
    assert_eq!(held.len(), CLIENTS * TURNS);
    for pair in held.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "fencing tokens out of order: {pair:?}"
        );
    }
    for node in 0..NODES {
        assert!(
            held.iter().any(|h| h.2 == node),
            "node {node} never granted"
        );
    }
}

#[test]
fn one_rate_limit_counts_the_checks_of_both_nodes() {
    const CHECKS: usize = 30;
    const MAX: usize = 50;
    let Some(url) = postgres_url() else { return };
    let cluster = Cluster::start(&url, NODES);
    let name = LimitName::parse("shared").unwrap();
    let policy = RatePolicy::new(MAX as i64, 3600).unwrap();
    let allowed: usize = spread(|_, node| {
        let api = cluster.client(node);
        (0..CHECKS)
            .filter(|_| api.check(&name, policy).unwrap().allowed)
            .count()
    })
    .into_iter()
    .sum();
    assert_eq!(allowed, MAX, "allowed checks of {}", CLIENTS * CHECKS);
    for node in 0..NODES {
        let status = cluster.client(node).limit_status(&name).unwrap();
        assert!(!status.allowed && status.remaining == 0, "{status:?}");
    }
}

#[test]
fn config_puts_on_both_nodes_get_every_version_once() {
    const PUTS: usize = 15;
    let Some(url) = postgres_url() else { return };
    let cluster = Cluster::start(&url, NODES);
    let key = ConfigKey::parse("shared.setting").unwrap();
    let acknowledged: Vec<(u64, Value)> = spread(|t, node| {
        let api = cluster.client(node);
        (0..PUTS)
            .map(|n| {
                let value = json!({ "writer": t, "n": n });
                let entry = api.put_config(&key, value.clone(), None).unwrap();
                (entry.version, value)
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let versions = distinct_versions(&acknowledged);
    assert_eq!(
        versions.keys().copied().collect::<Vec<_>>(),
        (1..=(CLIENTS * PUTS) as u64).collect::<Vec<_>>()
    );
    assert_history_has(&cluster.client(1), &key, &versions);
}

/// Writers put config versions through both nodes and clients take turns on a lock; node 0
/// is killed with SIGKILL mid-load. Its clients move to node 1, which keeps serving: every
/// acknowledged version is in the history with its value, and the lock's fencing tokens keep
/// growing.
#[test]
fn a_node_killed_mid_load_loses_nothing_it_acknowledged() {
    const BEFORE_KILL: usize = 40;
    const AFTER_KILL: usize = 40;
    let Some(url) = postgres_url() else { return };
    let mut cluster = Cluster::start(&url, NODES);
    let key = ConfigKey::parse("durable").unwrap();
    let lock = LockName::parse("leader").unwrap();
    // A lease of node 0's client outlives the node, and dies at its TTL.
    let leader = cluster
        .client(0)
        .acquire(&lock, Ttl::seconds(1).unwrap(), None)
        .unwrap();

    let done = AtomicUsize::new(0);
    let done_after_kill = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let moved = AtomicUsize::new(0);
    let clients: Vec<_> = (0..NODES).map(|node| cluster.client(node)).collect();
    let acknowledged: Vec<(u64, Value)> = thread::scope(|s| {
        let writers: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (done, done_after_kill, killed, moved, clients, key) =
                    (&done, &done_after_kill, &killed, &moved, &clients, &key);
                s.spawn(move || {
                    let mut node = t % NODES;
                    let mut mine = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(120);
                    for n in 0.. {
                        if done_after_kill.load(SeqCst) >= AFTER_KILL {
                            break;
                        }
                        assert!(Instant::now() < deadline, "the load did not finish");
                        let value = json!({ "writer": t, "n": n });
                        match clients[node].put_config(key, value.clone(), None) {
                            Ok(entry) => {
                                mine.push((entry.version, value));
                                done.fetch_add(1, SeqCst);
                                if killed.load(SeqCst) {
                                    done_after_kill.fetch_add(1, SeqCst);
                                }
                            }
                            // Unacknowledged: it may or may not have been applied.
                            Err(e) => {
                                assert!(
                                    node == 0 && killed.load(SeqCst),
                                    "put on node {node}: {e}"
                                );
                                node = 1;
                                moved.fetch_add(1, SeqCst);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(SeqCst) < BEFORE_KILL {
            assert!(Instant::now() < deadline, "the load did not start");
            thread::sleep(Duration::from_millis(5));
        }
        killed.store(true, SeqCst);
        cluster.kill(0);
        writers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    assert!(moved.load(SeqCst) > 0, "no writer saw the node die");
    let survivor = cluster.client(1);
    assert_history_has(&survivor, &key, &distinct_versions(&acknowledged));

    // The dead node's lease still excludes other clients until its TTL, by the database's
    // clock.
    let other_client = ClientId::parse("survivor").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let grant = loop {
        match survivor.acquire(&lock, Ttl::seconds(60).unwrap(), Some(&other_client)) {
            Ok(grant) => break grant,
            Err(Error::LockHeld { .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "the dead node's lease never expired"
                );
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(grant.status, AcquireStatus::Acquired);
    assert!(grant.lease.fencing_token > leader.lease.fencing_token);

    // The change log agrees with the state, whichever node wrote: an event for each stored
    // version, in index order as in version order; the dead node's lease acquired, then
    // expired when the survivor's acquire took the lock over; and no other event.
    let events = all_events(&survivor);
    let mut versions: Vec<u64> = survivor
        .config_history(&key)
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    versions.sort_unstable();
    let puts: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.change {
            Change::ConfigPut { key: k, version } if *k == key => Some(*version),
            _ => None,
        })
        .collect();
    assert_eq!(puts, versions, "put events (left) and stored versions");
    let leases: Vec<(&str, u64)> = events
        .iter()
        .filter_map(|e| match &e.change {
            Change::LockAcquired(l) | Change::LockExpired(l) if l.name == lock => {
                Some((e.change.action(), l.fencing_token.0))
            }
            _ => None,
        })
        .collect();
    let (dead, new) = (leader.lease.fencing_token.0, grant.lease.fencing_token.0);
    assert_eq!(
        leases,
        [("acquired", dead), ("expired", dead), ("acquired", new)]
    );
    assert_eq!(
        events.len(),
        puts.len() + leases.len(),
        "an event of no change: {events:?}"
    );
}

/// The whole change log, oldest first, its indexes strictly increasing.
fn all_events(api: &dyn Api) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut since = 0;
    loop {
        let page = api
            .events(since, &EventFilter::default(), MAX_EVENTS_PER_PAGE)
            .unwrap();
        assert!(!page.resync);
        let full = page.events.len() == MAX_EVENTS_PER_PAGE;
        for event in page.events {
            let last = events.last().map_or(since, |e| e.index);
            assert!(event.index > last, "event {event:?} after index {last}");
            events.push(event);
        }
        if !full {
            return events;
        }
        since = page.next;
    }
}

/// Every command that works on the local file works on the database (`--database-url`),
/// and a server on the same database sees what the commands wrote.
#[test]
fn every_command_works_on_the_database_directly() {
    let Some(url) = postgres_url() else { return };
    let cluster = Cluster::start(&url, 1);
    let run = |args: &[&str], code: i32| -> String {
        let output = cluster
            .octostore(args)
            .env("OCTOSTORE_USER", "alice")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    };
    let grant: Value = serde_json::from_str(&run(
        &["lock", "acquire", "job", "--ttl", "60", "--json"],
        0,
    ))
    .unwrap();
    let lease = grant["lease_id"].as_str().unwrap();
    run(&["lock", "status", "job"], 0);
    run(
        &["lock", "renew", "job", "--lease", lease, "--ttl", "60"],
        0,
    );
    assert!(run(&["lock", "list"], 0).contains("job"));
    run(&["lock", "release", "job", "--lease", lease], 0);
    run(
        &["limit", "check", "emails", "--max", "1", "--window", "3600"],
        0,
    );
    run(
        &["limit", "check", "emails", "--max", "1", "--window", "3600"],
        1,
    );
    run(&["limit", "status", "emails"], 1); // nothing remains
    assert!(run(&["limit", "list"], 0).contains("emails"));
    run(&["limit", "reset", "emails"], 0);
    run(
        &["flag", "set", "new-ui", "--enable", "--percentage", "100"],
        0,
    );
    run(&["flag", "get", "new-ui"], 0);
    assert!(run(&["flag", "list"], 0).contains("new-ui"));
    run(&["config", "set", "db.pool", r#"{"size": 10}"#], 0);
    run(&["config", "set", "db.pool", r#"{"size": 12}"#], 0);
    assert_eq!(
        serde_json::from_str::<Value>(&run(&["config", "get", "db.pool"], 0)).unwrap(),
        json!({"size": 12})
    );
    assert!(run(&["config", "history", "db.pool"], 0).contains("10"));
    assert!(run(&["config", "list"], 0).contains("db.pool"));
    // Two tokens: the cluster's, and one more.
    run(&["token", "create", "alice"], 0);
    assert_eq!(run(&["token", "list", "alice"], 0).lines().count(), 2);

    let server = cluster.client(0);
    let key = ConfigKey::parse("db.pool").unwrap();
    assert_eq!(server.get_config(&key, None).unwrap().version, 2);
    assert_eq!(
        server
            .lock_status(&LockName::parse("job").unwrap())
            .unwrap(),
        LockStatus::Available
    );
    run(&["config", "delete", "db.pool"], 0);
    assert!(matches!(
        server.get_config(&key, None),
        Err(Error::NotFound { .. })
    ));
}

/// The acknowledged versions by number, each acknowledged once.
fn distinct_versions(acknowledged: &[(u64, Value)]) -> BTreeMap<u64, Value> {
    let mut versions = BTreeMap::new();
    for (version, value) in acknowledged {
        let earlier = versions.insert(*version, value.clone());
        assert!(earlier.is_none(), "version {version} acknowledged twice");
    }
    versions
}

/// The key's history holds every acknowledged version with its value, with no gap.
fn assert_history_has(api: &dyn Api, key: &ConfigKey, acknowledged: &BTreeMap<u64, Value>) {
    let history: BTreeMap<u64, Value> = api
        .config_history(key)
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.value))
        .collect();
    for (version, value) in acknowledged {
        assert_eq!(history.get(version), Some(value), "version {version}");
    }
    let numbers: Vec<u64> = history.keys().copied().collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
}
