//! Group commit on the SQLite file: operations grouped into one transaction keep their own
//! outcomes, and a caller of the committer hears of its operation only once it is durable.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use octostore_core::backend::sqlite::faults::{Fault, Faults};
use octostore_core::{
    Api, Backend, Caller, Committer, ConfigKey, Error, FencingToken, LockName, LockStatus, Login,
    Session, SqliteBackend, Store, SystemClock, Ttl,
};

/// A deadline no test reaches.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn session(store: &Store, login: &str) -> Session {
    store.session(store.local_user(&Login::parse(login).unwrap()).unwrap())
}

fn key(name: &str) -> ConfigKey {
    ConfigKey::parse(name).unwrap()
}

#[test]
fn a_failed_operation_in_a_group_leaves_no_write_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = Store::open(&path).unwrap();
    let (alice, bob) = (session(&store, "alice"), session(&store, "bob"));
    let lock = LockName::parse("deploy").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let mut outcomes = Vec::new();
    store
        .group(soon(), || {
            outcomes.push(alice.acquire(&lock, ttl, None).map(drop));
            outcomes.push(bob.acquire(&lock, ttl, None).map(drop));
            outcomes.push(alice.put_config(&key("a"), 1.into(), None).map(drop));
            // Over the value cap: refused before any write.
            let huge = serde_json::Value::String("x".repeat(2 << 20));
            outcomes.push(bob.put_config(&key("b"), huge, None).map(drop));
            outcomes.push(bob.put_config(&key("c"), 3.into(), None).map(drop));
        })
        .unwrap();
    assert!(outcomes[0].is_ok());
    assert!(
        matches!(outcomes[1], Err(Error::LockHeld { .. })),
        "{:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok() && outcomes[4].is_ok());
    assert!(outcomes[3].is_err());
    drop((alice, bob, store));

    let reopened = Store::open(&path).unwrap();
    let (alice, bob) = (session(&reopened, "alice"), session(&reopened, "bob"));
    assert_eq!(alice.get_config(&key("a"), None).unwrap().version, 1);
    assert_eq!(bob.get_config(&key("c"), None).unwrap().version, 1);
    assert!(matches!(
        bob.get_config(&key("b"), None),
        Err(Error::NotFound { .. })
    ));
    match alice.lock_status(&lock).unwrap() {
        LockStatus::Held(lease) => assert_eq!(lease.holder.as_str(), "alice"),
        LockStatus::Available => panic!("alice's lease was lost"),
    }
}

#[test]
fn a_group_that_outruns_a_fencing_block_keeps_tokens_increasing_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let store = Store::open(&path).unwrap();
    let me = session(&store, "me");
    let ttl = Ttl::seconds(60).unwrap();
    let first = me.acquire(&LockName::parse("first").unwrap(), ttl, None);
    let mut tokens: Vec<FencingToken> = vec![first.unwrap().lease.fencing_token];
    // A block holds a million tokens: skip to a thousand before its end (forward only, as
    // if they had been handed out), so the group below runs out of it midway.
    let file = rusqlite::Connection::open(&path).unwrap();
    let moved = file.execute(
        "UPDATE fencing SET last_issued = reserved_through - 1000 WHERE last_issued < reserved_through - 1000",
        [],
    );
    assert_eq!(moved.unwrap(), 1);
    let reserved = || -> i64 {
        let sql = "SELECT reserved_through FROM fencing";
        file.query_row(sql, [], |row| row.get(0)).unwrap()
    };
    let block_end = reserved();
    store
        .group(soon(), || {
            for i in 0..2500 {
                let name = LockName::parse(&format!("l{}", i % 500)).unwrap();
                let grant = me.acquire(&name, ttl, None).unwrap();
                tokens.push(grant.lease.fencing_token);
                me.release(&name, grant.lease.lease_id).unwrap();
            }
        })
        .unwrap();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
    assert!(reserved() > block_end, "the group reserved a block midway");
    drop((me, store));
    let reopened = Store::open(&path).unwrap();
    let me = session(&reopened, "me");
    let next = me
        .acquire(&LockName::parse("after").unwrap(), ttl, None)
        .unwrap();
    assert!(next.lease.fencing_token > *tokens.last().unwrap());
}

#[test]
fn the_committer_answers_each_caller_only_after_its_write_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Store::open(&path).unwrap();
    let login = Login::parse("writer").unwrap();
    store.local_user(&login).unwrap();
    let committer = Committer::start(store.clone(), 1024).unwrap();
    // Another connection to the file sees only committed writes.
    let observer = Store::open(&path).unwrap();
    let observer = session(&observer, "writer");
    let (answers, heard) = mpsc::channel();
    let callers = 8;
    let per_caller = 50;
    std::thread::scope(|scope| {
        for caller in 0..callers {
            let (committer, answers, login) = (committer.clone(), answers.clone(), login.clone());
            let observer = observer.clone();
            scope.spawn(move || {
                for i in 0..per_caller {
                    let key = key(&format!("k{caller}-{i}"));
                    let (login, answers, observer) =
                        (login.clone(), answers.clone(), observer.clone());
                    let written = key.clone();
                    let queued = committer.submit(
                        Caller::until(soon()),
                        move |store| {
                            let me = store.session(store.local_user(&login)?);
                            me.put_config(&written, i.into(), None)
                        },
                        // Checked as the answer arrives, before the next group can commit.
                        move |outcome| {
                            let seen = observer.get_config(&key, None).map(|e| e.version);
                            answers.send((outcome.map(|e| e.version), seen)).unwrap()
                        },
                    );
                    queued.unwrap();
                }
            });
        }
    });
    drop(answers);
    let mut count = 0;
    for (answered, seen) in heard {
        assert_eq!(answered.unwrap(), 1);
        assert_eq!(seen.ok(), Some(1), "answered before it was committed");
        count += 1;
    }
    assert_eq!(count, callers * per_caller);
}

#[test]
fn a_committer_job_that_panics_loses_only_its_own_answer() {
    let store = Store::open(tempfile::tempdir().unwrap().path().join("p.db")).unwrap();
    store.local_user(&Login::parse("me").unwrap()).unwrap();
    let committer = Committer::start(store, 16).unwrap();
    let (tx, rx) = mpsc::channel();
    let answered = tx.clone();
    let queued = committer.submit(
        Caller::until(soon()),
        |_| -> octostore_core::Result<()> { panic!("a bug in an operation") },
        move |_| answered.send("the panicking job").unwrap(),
    );
    queued.unwrap();
    let queued = committer.submit(
        Caller::until(soon()),
        |store| {
            let me = store.session(store.local_user(&Login::parse("me").unwrap())?);
            me.put_config(&key("after"), 1.into(), None)
                .map(|e| e.version)
        },
        move |outcome| {
            tx.send(if outcome.is_ok() {
                "the next job"
            } else {
                "error"
            })
            .unwrap()
        },
    );
    queued.unwrap();
    drop(committer);
    let answers: Vec<_> = rx.iter().collect();
    assert_eq!(answers, ["the next job"]);
}

/// In a group an operation's writes are undone if it fails, even after writing, while the
/// operations around it, reading or writing, keep theirs.
#[test]
fn a_grouped_operation_that_fails_after_writing_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("u.db")).unwrap();
    let clock = SystemClock;
    let next_token = || {
        let mut token = None;
        let issued = backend.transact(&clock, &mut |tx| {
            token = Some(tx.next_fencing_token()?.0);
            Ok(())
        });
        issued.map(|()| token.unwrap())
    };
    let first = next_token().unwrap();
    let mut in_group = Vec::new();
    backend
        .group(&clock, soon(), &mut || {
            let failed = backend.transact(&clock, &mut |tx| {
                tx.next_fencing_token()?;
                Err(Error::Conflict("a failure after a write".into()))
            });
            assert!(matches!(failed, Err(Error::Conflict(_))), "{failed:?}");
            let lock = LockName::parse("read-only").unwrap();
            backend
                .transact(&clock, &mut |tx| tx.lease(&lock).map(drop))
                .unwrap();
            in_group.push(next_token().unwrap());
        })
        .unwrap();
    assert_eq!(in_group, [first + 1]);
    assert_eq!(next_token().unwrap(), first + 2);
}

/// Holds the committer's thread in a job of its own until the answer sends `()`.
fn hold(committer: &Committer) -> mpsc::Sender<()> {
    let (started, running) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holding = committer.submit(
        Caller::until(soon()),
        move |_| {
            started.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        },
        |_: octostore_core::Result<()>| {},
    );
    holding.unwrap();
    running.recv().unwrap();
    release
}

/// A file whose fencing block runs out after `left` more tokens, and a store on it whose
/// backend's faults the test arms.
fn store_near_a_block_end(path: &std::path::Path, left: i64) -> (Store, Arc<Faults>) {
    let first = Store::open(path).unwrap();
    // A token handed out, so that a block is reserved.
    session(&first, "me")
        .acquire(&lock("first"), Ttl::seconds(1).unwrap(), None)
        .unwrap();
    drop(first);
    let file = rusqlite::Connection::open(path).unwrap();
    let sql = "UPDATE fencing SET last_issued = reserved_through - ?1";
    assert_eq!(file.execute(sql, [left]).unwrap(), 1);
    let backend = SqliteBackend::open(path).unwrap();
    // Opening skips to the end of the reserved block: move back into it.
    assert_eq!(file.execute(sql, [left]).unwrap(), 1);
    let faults = backend.faults();
    (Store::builder().backend(backend).build(), faults)
}

fn lock(name: &str) -> LockName {
    LockName::parse(name).unwrap()
}

/// The lease on `name` as another connection to the file sees it.
fn held_on_file(path: &std::path::Path, name: &str) -> bool {
    let store = Store::open(path).unwrap();
    let me = session(&store, "me");
    matches!(me.lock_status(&lock(name)).unwrap(), LockStatus::Held(_))
}

/// A group that runs out of its fencing block midway commits early; if that commit fails,
/// the operations before it are lost with it, so none of the group may be answered as
/// committed, and the connection must be ready for the next group.
#[test]
fn a_commit_that_fails_midway_fails_the_whole_group() {
    for fault in [Fault::CommitRolledBack, Fault::CommitLeftOpen] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let (store, faults) = store_near_a_block_end(&path, 2);
        let me = session(&store, "me");
        let ttl = Ttl::seconds(60).unwrap();
        faults.arm(fault);
        let mut outcomes = Vec::new();
        let group = store.group(soon(), || {
            for name in ["a", "b", "c", "d"] {
                outcomes.push(me.acquire(&lock(name), ttl, None).map(drop));
            }
        });
        // The third acquire needed a new block: the early commit of a and b failed.
        assert!(group.is_err(), "the group was answered as committed");
        assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
        assert!(outcomes[2..].iter().all(Result::is_err), "{outcomes:?}");
        for name in ["a", "b", "c", "d"] {
            assert!(!held_on_file(&path, name), "{name} is held");
        }
        // The connection is out of the failed transaction: the next group commits.
        store
            .group(soon(), || {
                me.acquire(&lock("e"), ttl, None).unwrap();
            })
            .unwrap();
        assert!(held_on_file(&path, "e"));
    }
}

/// The last commit of a group fails: every operation of it hears so through the committer.
#[test]
fn a_group_whose_commit_fails_answers_every_caller_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    let backend = SqliteBackend::open(&path).unwrap();
    let faults = backend.faults();
    let store = Store::builder().backend(backend).build();
    // A token handed out, so that a block is reserved and the group commits only at its end.
    session(&store, "me")
        .acquire(&lock("first"), Ttl::seconds(1).unwrap(), None)
        .unwrap();
    let committer = Committer::start(store, 64).unwrap();
    let (answers, heard) = mpsc::channel();
    // The committer is held until the others are queued, so they share a group.
    let release = hold(&committer);
    // One failing commit for the holding job's group, one for the group of the three behind it.
    faults.arm(Fault::CommitRolledBack);
    faults.arm(Fault::CommitRolledBack);
    for name in ["a", "b", "c"] {
        let answers = answers.clone();
        let queued = committer.submit(
            Caller::until(soon()),
            move |store| {
                let me = store.session(store.local_user(&Login::parse("me").unwrap())?);
                me.acquire(&lock(name), Ttl::seconds(60).unwrap(), None)
                    .map(drop)
            },
            move |outcome| answers.send((name, outcome)).unwrap(),
        );
        queued.unwrap();
    }
    release.send(()).unwrap();
    drop((answers, committer));
    let heard: Vec<_> = heard.iter().collect();
    assert_eq!(heard.len(), 3);
    for (name, outcome) in heard {
        assert!(
            matches!(outcome, Err(Error::Storage { .. })),
            "{name}: {outcome:?}"
        );
        assert!(!held_on_file(&path, name), "{name} is held");
    }
}

/// A `BEGIN` that fails fails its whole group at once: the operations after it do not try
/// again (each would wait out the busy timeout on a file another process holds).
#[test]
fn a_begin_that_fails_fails_the_group_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let backend = SqliteBackend::open(&path).unwrap();
    let faults = backend.faults();
    let store = Store::builder().backend(backend).build();
    let me = session(&store, "me");
    let ttl = Ttl::seconds(60).unwrap();
    faults.arm(Fault::BeginFails);
    let mut outcomes = Vec::new();
    let group = store.group(soon(), || {
        for name in ["a", "b"] {
            outcomes.push(me.acquire(&lock(name), ttl, None).map(drop));
        }
    });
    assert!(group.is_err());
    assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    assert!(!held_on_file(&path, "b"));
    me.acquire(&lock("c"), ttl, None).unwrap();
    assert!(held_on_file(&path, "c"));
}

/// Another process holds the file past the group's deadline: every operation of the group
/// fails as not run, by the deadline, and none runs once the file is free.
#[test]
fn a_group_gives_up_on_a_busy_file_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = Store::open(&path).unwrap();
    let me = session(&store, "me");
    let ttl = Ttl::seconds(60).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut outcomes = Vec::new();
    let started = Instant::now();
    let group = store.group(Instant::now() + Duration::from_millis(300), || {
        for name in ["a", "b", "c"] {
            outcomes.push(me.acquire(&lock(name), ttl, None).map(drop));
        }
    });
    // Each operation waiting out the 30 s busy timeout would take 90 s.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(group, Err(Error::Unavailable(_))), "{group:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(Error::Unavailable(_)))),
        "{outcomes:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    for name in ["a", "b", "c"] {
        assert!(!held_on_file(&path, name));
    }
}

/// The committer runs no operation whose caller's deadline has passed or who has gone, and
/// refuses work past its queue's bound.
#[test]
fn the_committer_skips_callers_that_gave_up_and_bounds_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("q.db")).unwrap();
    let committer = Committer::start(store, 2).unwrap();
    let release = hold(&committer);
    let (answers, heard) = mpsc::channel();
    let (ran, runs) = mpsc::channel();
    let submit = move |who: &'static str, caller: Caller| {
        let (answers, ran) = (answers.clone(), ran.clone());
        committer.submit(
            caller,
            move |_| {
                ran.send(who).unwrap();
                Ok(())
            },
            move |outcome| answers.send((who, outcome)).unwrap(),
        )
    };
    let late = submit("late", Caller::until(Instant::now()));
    late.unwrap();
    let present = Arc::new(());
    let gone = submit("gone", Caller::until(soon()).present_while(&present));
    gone.unwrap();
    drop(present);
    // Two are queued behind the running one: the queue is full.
    let refused = submit("refused", Caller::until(soon()));
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    release.send(()).unwrap();
    drop(submit);
    assert_eq!(
        runs.iter().count(),
        0,
        "a job ran for a caller that gave up"
    );
    let mut heard: Vec<_> = heard.iter().collect();
    heard.sort_by_key(|(who, _)| *who);
    assert_eq!(heard.len(), 2);
    for (who, outcome) in heard {
        assert!(
            matches!(outcome, Err(Error::Unavailable(_))),
            "{who}: {outcome:?}"
        );
    }
}
