//! The change log as every backend stores it, through `Tx` alone: events come back as they
//! were appended, with increasing indexes (one after another, but on PostgreSQL), read by
//! query; the bounds; pruning keeps one run of indexes.

use std::any::Any;

use chrono::{DateTime, Utc};
use octostore_core::backend::{EventBounds, EventQuery};
use octostore_core::{
    Backend, Change, ConfigKey, Event, EventKind, FencingToken, FlagName, Kinds, LeaseChange,
    LimitName, LockName, Login, ManualClock, MemoryBackend, Percentage, SqliteBackend, Tx, UserId,
};
use uuid::Uuid;

/// A bare backend, and what must outlive it (a file's directory, a schema).
type Bare = (Box<dyn Backend>, Option<Box<dyn Any>>);

fn bare_backends() -> Vec<(&'static str, Bare)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteBackend::open(dir.path().join("events.db")).unwrap();
    #[allow(unused_mut)] // without the postgres feature
    let mut all: Vec<(&'static str, Bare)> = vec![
        ("memory", (Box::new(MemoryBackend::new()), None)),
        ("sqlite", (Box::new(sqlite), Some(Box::new(dir)))),
    ];
    #[cfg(feature = "postgres")]
    if let Some(url) = crate::support::postgres_url() {
        let schema = crate::support::TestSchema::new(&url);
        let backend = schema.backend();
        all.push(("postgres", (Box::new(backend), Some(Box::new(schema)))));
    }
    all
}

/// Whether the backend numbers events one after another (PostgreSQL numbers them by their
/// transaction's id).
fn consecutive(backend: &str) -> bool {
    backend != "postgres"
}

/// Runs `op`, which reads the log, in one reading transaction of `backend`.
fn read_log<R>(backend: &dyn Backend, mut op: impl FnMut(&mut dyn Tx) -> R) -> R {
    let clock = ManualClock::default();
    let mut out = None;
    backend
        .read_log(&clock, &mut |tx| {
            out = Some(op(tx));
            Ok(())
        })
        .unwrap();
    out.unwrap()
}

/// Runs `op` in one transaction of `backend`.
fn transact<R>(backend: &dyn Backend, mut op: impl FnMut(&mut dyn Tx) -> R) -> R {
    let clock = ManualClock::default();
    let mut out = None;
    backend
        .transact(&clock, &mut |tx| {
            out = Some(op(tx));
            Ok(())
        })
        .unwrap();
    out.unwrap()
}

/// Appends `owner`'s `change` in a transaction of its own, and answers its index, read back
/// once committed: the newest event `owner` may read.
fn append(backend: &dyn Backend, owner: UserId, when: DateTime<Utc>, change: &Change) -> u64 {
    transact(backend, |tx| tx.append_event(owner, when, change).unwrap());
    let all = query(owner, Kinds::ALL, "");
    let read = read_log(backend, |tx| tx.events_after(0, &all, 1000).unwrap());
    let newest = read.last().expect("the event appended");
    assert_eq!(&newest.change, change);
    newest.index
}

fn at(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + second, 123_456_789).unwrap()
}

/// One change of every shape.
fn changes() -> Vec<Change> {
    let lease = LeaseChange {
        name: LockName::parse("app_deploy").unwrap(),
        holder: Login::parse("alice").unwrap(),
        fencing_token: FencingToken(42),
        expires_at: at(30),
    };
    let flag = FlagName::parse("app_beta").unwrap();
    let key = ConfigKey::parse("web_size").unwrap();
    vec![
        Change::FlagSet {
            name: flag.clone(),
            enabled: true,
            percentage: Some(Percentage::new(25).unwrap()),
        },
        Change::FlagSet {
            name: flag.clone(),
            enabled: false,
            percentage: None,
        },
        Change::FlagDeleted { name: flag },
        Change::ConfigPut {
            key: key.clone(),
            version: 7,
        },
        Change::ConfigDeleted { key },
        Change::LimitReset {
            name: LimitName::parse("app_api").unwrap(),
        },
        Change::LockAcquired(lease.clone()),
        Change::LockRenewed(lease.clone()),
        Change::LockReleased(lease.clone()),
        Change::LockExpired(lease),
    ]
}

fn query(owner: UserId, kinds: Kinds, prefix: &str) -> EventQuery<'_> {
    EventQuery {
        kinds,
        prefix,
        owner,
        of_anyone: Kinds::of([EventKind::Lock]),
    }
}

#[test]
fn events_come_back_as_appended_in_index_order() {
    let (alice, bob) = (UserId(Uuid::new_v4()), UserId(Uuid::new_v4()));
    for (name, (backend, _keep)) in bare_backends() {
        let backend = &*backend;
        let empty = read_log(backend, |tx| tx.event_bounds().unwrap());
        assert_eq!(empty.oldest, 1, "{name}");
        let mut appended = Vec::new();
        for (i, change) in changes().into_iter().enumerate() {
            let owner = if i % 2 == 0 { alice } else { bob };
            let when = at(i as i64);
            let index = append(backend, owner, when, &change);
            let previous = appended
                .last()
                .map_or(empty.newest, |(_, e): &(_, Event)| e.index);
            assert!(index > previous, "{name}");
            if consecutive(name) {
                assert_eq!(index, i as u64 + 1, "{name}");
            }
            appended.push((
                owner,
                Event {
                    index,
                    at: when,
                    change,
                },
            ));
        }
        let bounds = read_log(backend, |tx| tx.event_bounds().unwrap());
        let last = appended[9].1.index;
        assert_eq!(bounds.oldest, 1, "{name}");
        assert!(bounds.newest >= last, "{name}");
        if consecutive(name) {
            assert_eq!(bounds.newest, last, "{name}");
        }
        let third = appended[2].1.index;

        for (kinds, prefix) in [
            (Kinds::ALL, ""),
            (Kinds::of([EventKind::Flag]), ""),
            (Kinds::of([EventKind::Lock, EventKind::Config]), ""),
            (Kinds::ALL, "app_"),
            (Kinds::ALL, "web"),
            (Kinds::ALL, "nothing"),
        ] {
            let q = query(alice, kinds, prefix);
            let expected: Vec<Event> = appended
                .iter()
                .filter(|(owner, e)| q.matches(*owner, &e.change))
                .map(|(_, e)| e.clone())
                .collect();
            for after in [0, third] {
                let read = read_log(backend, |tx| tx.events_after(after, &q, 100).unwrap());
                let wanted: Vec<Event> = expected
                    .iter()
                    .filter(|e| e.index > after)
                    .cloned()
                    .collect();
                assert_eq!(read, wanted, "{name}: {kinds:?} {prefix:?} after {after}");
            }
            let first_two = read_log(backend, |tx| tx.events_after(0, &q, 2).unwrap());
            assert_eq!(first_two[..], expected[..expected.len().min(2)], "{name}");
        }
    }
}

#[test]
fn pruning_deletes_only_the_oldest_run() {
    let owner = UserId(Uuid::new_v4());
    let change = Change::LimitReset {
        name: LimitName::parse("l").unwrap(),
    };
    for (name, (backend, _keep)) in bare_backends() {
        let backend = &*backend;
        let made: Vec<u64> = (0..6)
            .map(|i| append(backend, owner, at(i), &change))
            .collect();
        // The third is kept, so the fourth and fifth are too, though the rule would prune them.
        let deleted = transact(backend, |tx| {
            tx.prune_events(10, &mut |index, _| index != made[2])
                .unwrap()
        });
        assert_eq!(deleted, 2, "{name}");
        let bounds = read_log(backend, |tx| tx.event_bounds().unwrap());
        assert!(
            bounds.oldest > made[1] && bounds.oldest <= made[2],
            "{name}"
        );
        assert!(bounds.newest >= made[5], "{name}");
        if consecutive(name) {
            assert_eq!(
                bounds,
                EventBounds {
                    oldest: 3,
                    newest: 6
                },
                "{name}"
            );
        }
        // At most `max`, by instant.
        let deleted = transact(backend, |tx| {
            tx.prune_events(2, &mut |_, when| when < at(5)).unwrap()
        });
        assert_eq!(deleted, 2, "{name}");
        let all = query(owner, Kinds::ALL, "");
        let left = read_log(backend, |tx| tx.events_after(0, &all, 10).unwrap());
        let indexes: Vec<u64> = left.iter().map(|e| e.index).collect();
        assert_eq!(indexes, made[4..], "{name}");
        // Every event pruned: the newest index stays, and the next append follows it.
        transact(backend, |tx| tx.prune_events(10, &mut |_, _| true).unwrap());
        let bounds = read_log(backend, |tx| tx.event_bounds().unwrap());
        assert!(
            bounds.oldest > made[5] && bounds.newest >= made[5],
            "{name}"
        );
        let next = append(backend, owner, at(9), &change);
        assert!(next > bounds.newest, "{name}");
        if consecutive(name) {
            assert_eq!((bounds.oldest, bounds.newest, next), (7, 6, 7), "{name}");
        }
    }
}
