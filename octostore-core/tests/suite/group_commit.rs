//! Group commit on the SQLite file: operations grouped into one transaction keep their own
//! outcomes, and a caller of the committer hears of its operation only once it is durable.

use std::sync::mpsc;

use octostore_core::{
    Api, Backend, Committer, ConfigKey, Error, FencingToken, LockName, LockStatus, Login, Session,
    SqliteBackend, Store, SystemClock, Ttl,
};

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
        .group(|| {
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
        .group(|| {
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
    let committer = Committer::start(store.clone()).unwrap();
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
                    committer.submit(
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
    let committer = Committer::start(store).unwrap();
    let (tx, rx) = mpsc::channel();
    let answered = tx.clone();
    committer.submit(
        |_| -> octostore_core::Result<()> { panic!("a bug in an operation") },
        move |_| answered.send("the panicking job").unwrap(),
    );
    committer.submit(
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
        .group(&clock, &mut || {
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
