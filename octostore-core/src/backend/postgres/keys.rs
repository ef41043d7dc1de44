//! The locks of the keys an operation decides on ([`Backend::transact_on`]): advisory locks
//! of the session, taken before its transaction begins and released once it has ended. The
//! transaction's snapshot is taken after they are held, so it sees every write of the last
//! operation on the same keys, and it runs at `REPEATABLE READ`: no predicate locks, so
//! operations on different keys never abort each other, while two writes of one row still
//! do (the later fails to serialize and is tried again).
//!
//! An operation that often only reads (an acquire of a lock another holds) first tries the
//! locks without waiting, and, if another operation holds one, runs as a read of its
//! snapshot: once it would write, it is run again, waiting for its keys.
//!
//! A key's lock is the 64-bit advisory lock named by the first 8 bytes of a SHA-256 of the
//! schema, the key's kind and the key. An owner's quota is locked shared by the operations
//! that may add to it, so they run side by side, and each counts the owner's records as if
//! every other connection the database allows could be adding one it cannot see; one that
//! must read all of the owner's records instead takes the quota exclusive, on its next try.
//!
//! [`Backend::transact_on`]: crate::backend::Backend::transact_on

use sha2::{Digest, Sha256};

use crate::backend::{Key, Keys};

/// Ends a transaction on keys and releases the keys' locks.
pub(super) const COMMIT_AND_UNLOCK: &str = "COMMIT; SELECT pg_advisory_unlock_all()";
pub(super) const ROLLBACK_AND_UNLOCK: &str = "ROLLBACK; SELECT pg_advisory_unlock_all()";

/// How one try of an operation takes its keys' locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Locking {
    /// How it holds the owners' quotas it declares.
    pub quota: QuotaLock,
    /// Whether it waits for the locks, or only tries them.
    pub wait: bool,
}

impl Locking {
    /// The first try of an operation on `keys`.
    pub(super) fn first(keys: &Keys) -> Self {
        Self {
            quota: QuotaLock::Shared,
            wait: !keys.often_only_reads,
        }
    }
}

/// How a transaction holds the owners' quotas it declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QuotaLock {
    /// Beside the others of the owner's operations: a count answers as many more as the
    /// transactions the database lets run beside this one.
    Shared,
    /// Alone: counts are exact.
    Exclusive,
}

/// The statement that takes the locks of `keys` in this schema (`schema`: its hash), each
/// exclusive but an owner's quota held as `locking` says, in the order of their numbers, so
/// that two operations never each wait for the other. Trying them, it answers one row of
/// whether it took each.
pub(super) fn lock_statement(schema: i32, keys: &[Key], locking: Locking) -> String {
    let mut locks: Vec<(i64, bool)> = keys
        .iter()
        .map(|key| {
            let shared = matches!((key, locking.quota), (Key::Quota(_), QuotaLock::Shared));
            (number(schema, key), shared)
        })
        .collect();
    locks.sort_unstable();
    locks.dedup_by_key(|(number, _)| *number);
    let how = if locking.wait { "" } else { "try_" };
    let calls: Vec<String> = locks
        .iter()
        .map(|(number, shared)| match shared {
            true => format!("pg_{how}advisory_lock_shared({number})"),
            false => format!("pg_{how}advisory_lock({number})"),
        })
        .collect();
    format!("SELECT {}", calls.join(", "))
}

/// The simple query that takes the locks (`locks`, a [`lock_statement`]), then begins the
/// transaction (`begin`, which must take its snapshot after). The locks are taken in a
/// transaction of their own, which must end before one with an isolation level begins; an
/// explicit one, as ending the query's implicit one would make the database warn, and log
/// the warning, every time.
pub(super) fn begin_after(locks: &str, begin: &str) -> String {
    format!("BEGIN; {locks}; COMMIT; {begin}")
}

/// The advisory lock's number of `key` in the schema.
fn number(schema: i32, key: &Key) -> i64 {
    let mut hash = Sha256::new();
    hash.update(schema.to_be_bytes());
    match key {
        Key::Lock(name) => {
            hash.update(b"lock\0");
            hash.update(name.as_str());
        }
        Key::Limit(owner, name) => {
            hash.update(b"limit\0");
            hash.update(owner.0.as_bytes());
            hash.update(name.as_str());
        }
        Key::Quota(owner) => {
            hash.update(b"quota\0");
            hash.update(owner.0.as_bytes());
        }
        Key::Configs(owner) => {
            hash.update(b"configs\0");
            hash.update(owner.0.as_bytes());
        }
    }
    let digest = hash.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::identity::UserId;
    use crate::values::names::{LimitName, LockName};

    fn waiting(quota: QuotaLock) -> Locking {
        Locking { quota, wait: true }
    }

    #[test]
    fn each_key_is_locked_once_in_number_order_and_the_quota_as_told() {
        let owner = UserId(uuid::Uuid::from_u128(7));
        let lock = LockName::parse("deploy").unwrap();
        let limit = LimitName::parse("deploy").unwrap();
        let keys = [
            Key::Quota(owner),
            Key::Lock(&lock),
            Key::Limit(owner, &limit),
        ];
        let shared = lock_statement(1, &keys, waiting(QuotaLock::Shared));
        let mut numbers: Vec<i64> = keys.iter().map(|key| number(1, key)).collect();
        numbers.sort_unstable();
        let quota = number(1, &Key::Quota(owner));
        let expected: Vec<String> = (numbers.iter())
            .map(|n| match *n == quota {
                true => format!("pg_advisory_lock_shared({n})"),
                false => format!("pg_advisory_lock({n})"),
            })
            .collect();
        assert_eq!(shared, format!("SELECT {}", expected.join(", ")));
        let exclusive = lock_statement(1, &keys, waiting(QuotaLock::Exclusive));
        assert!(!exclusive.contains("shared"), "{exclusive}");
        let twice = lock_statement(
            1,
            &[Key::Lock(&lock), Key::Lock(&lock)],
            waiting(QuotaLock::Exclusive),
        );
        assert_eq!(
            twice,
            format!("SELECT pg_advisory_lock({})", number(1, &Key::Lock(&lock)))
        );
    }

    /// The transaction begun after the locks sees what the last holder committed before it
    /// let them go, and the database says nothing about how it began (run when
    /// `OCTOSTORE_TEST_POSTGRES_URL` names a database).
    #[test]
    fn the_snapshot_is_taken_once_the_locks_are_held_and_nothing_is_warned() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::Arc;

        let Ok(url) = std::env::var("OCTOSTORE_TEST_POSTGRES_URL") else {
            eprintln!("OCTOSTORE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        let table = format!("octostore_keys_{}", std::process::id());
        let mut holder = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        holder
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (n INTEGER)"
            ))
            .unwrap();
        let lock = LockName::parse("k").unwrap();
        let keys = [Key::Lock(&lock)];
        let locks = lock_statement(7, &keys, waiting(QuotaLock::Exclusive));
        holder.batch_execute(&locks).unwrap();

        let notices = Arc::new(AtomicUsize::new(0));
        let mut config: postgres::Config = url.parse().unwrap();
        let counted = notices.clone();
        config.notice_callback(move |_| {
            counted.fetch_add(1, SeqCst);
        });
        let mut waiter = config.connect(postgres::NoTls).unwrap();
        let begin = begin_after(
            &locks,
            &format!(
                "START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM {table}"
            ),
        );
        std::thread::scope(|s| {
            let waiting = s.spawn(|| waiter.simple_query(&begin).unwrap());
            let mut watcher = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let blocked =
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
            while watcher.query_one(blocked, &[]).unwrap().get::<_, i64>(0) == 0 {
                assert!(
                    !waiting.is_finished(),
                    "the begin did not wait for the lock"
                );
                std::thread::yield_now();
            }
            holder
                .batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)"))
                .unwrap();
            holder.batch_execute(COMMIT_AND_UNLOCK).unwrap();
            let answered = waiting.join().unwrap();
            let counts: Vec<&str> = (answered.iter())
                .filter_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row)
                        if row.columns()[0].name() == "count" =>
                    {
                        row.get(0)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(counts, ["1"], "the snapshot missed the holder's commit");
        });
        waiter.batch_execute(ROLLBACK_AND_UNLOCK).unwrap();
        assert_eq!(notices.load(SeqCst), 0, "the database warned");
        holder
            .batch_execute(&format!("DROP TABLE {table}"))
            .unwrap();
    }

    #[test]
    fn a_lock_and_a_limit_of_one_name_and_two_schemas_take_different_locks() {
        let owner = UserId(uuid::Uuid::from_u128(7));
        let lock = LockName::parse("a").unwrap();
        let limit = LimitName::parse("a").unwrap();
        let numbers = [
            number(1, &Key::Lock(&lock)),
            number(2, &Key::Lock(&lock)),
            number(1, &Key::Limit(owner, &limit)),
            number(1, &Key::Quota(owner)),
        ];
        for (i, a) in numbers.iter().enumerate() {
            assert!(!numbers[i + 1..].contains(a), "{numbers:?}");
        }
    }
}
