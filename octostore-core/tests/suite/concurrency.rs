//! Threads racing on one store: exclusion and exact counts under real concurrency.
//!
//! Each test runs once per backend of `support::backends()`, with threads sharing one
//! `Store` (through sessions cloned from it). The clock never moves and nothing sleeps: the
//! only source of nondeterminism is the interleaving, and the assertions hold under any.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;

use octostore_core::{
    AcquireStatus, Api, ClientId, ConfigKey, Error, LimitName, LockName, LockStatus, Quotas,
    RatePolicy, Session, Settings, Ttl,
};
use serde_json::json;

use crate::support::backends;

const THREADS: usize = 8;

/// Sets the flag if the thread that owns it panics, so the other threads stop instead of
/// waiting forever for a lock the panicking thread will never release.
struct StopOthersOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOthersOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, SeqCst);
        }
    }
}

/// Joins every thread, re-raising the first panic.
fn join_all<T>(handles: Vec<thread::ScopedJoinHandle<'_, T>>) -> Vec<T> {
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        .collect()
}

/// Eight threads race for one lock, each until it has held it `TURNS` times: four users,
/// each once without a client id and once with its own, so every (user, client id) pair is
/// distinct and every pair must exclude every other. At most one thread is ever inside, and
/// the fencing tokens, in the order the holders got in, are strictly increasing.
#[test]
fn threads_racing_for_one_lock_take_turns_with_increasing_fencing_tokens() {
    const TURNS: usize = 25;
    const MAX_ATTEMPTS: u64 = 1_000_000;

    for (backend, open) in backends() {
        let h = open(Settings::default());
        let name = LockName::parse("contended").unwrap();
        let ttl = Ttl::seconds(3600).unwrap();
        let racers: Vec<(Session, Option<ClientId>)> = (0..THREADS)
            .map(|i| {
                let session = h.user(&format!("racer{}", i % 4));
                let client = (i >= 4).then(|| ClientId::parse(&format!("host-{i}:7")).unwrap());
                (session, client)
            })
            .collect();

        let inside = AtomicUsize::new(0);
        let sequence = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(THREADS);
        let turns: Vec<Vec<(u64, u64)>> = thread::scope(|s| {
            let handles = racers
                .iter()
                .map(|(session, client)| {
                    let (inside, sequence, stop, barrier, name) =
                        (&inside, &sequence, &stop, &barrier, &name);
                    s.spawn(move || {
                        let _guard = StopOthersOnPanic(stop);
                        // (sequence number taken while holding the lock, fencing token)
                        let mut mine = Vec::with_capacity(TURNS);
                        let mut attempts = 0;
                        barrier.wait();
                        while mine.len() < TURNS && !stop.load(SeqCst) {
                            attempts += 1;
                            assert!(attempts <= MAX_ATTEMPTS, "[{backend}] starved");
                            let grant = match session.acquire(name, ttl, client.as_ref()) {
                                Ok(grant) => grant,
                                Err(Error::LockHeld { .. }) => {
                                    thread::yield_now();
                                    continue;
                                }
                                Err(e) => panic!("[{backend}] acquire: {e:?}"),
                            };
                            let others = inside.fetch_add(1, SeqCst);
                            assert_eq!(others, 0, "[{backend}] two holders at once");
                            assert_eq!(grant.status, AcquireStatus::Acquired, "[{backend}]");
                            mine.push((sequence.fetch_add(1, SeqCst), grant.lease.fencing_token.0));
                            match session.lock_status(name) {
                                Ok(LockStatus::Held(lease)) => {
                                    assert_eq!(lease, grant.lease, "[{backend}]")
                                }
                                other => panic!("[{backend}] status while held: {other:?}"),
                            }
                            assert_eq!(inside.fetch_sub(1, SeqCst), 1, "[{backend}]");
                            session
                                .release(name, grant.lease.lease_id)
                                .unwrap_or_else(|e| panic!("[{backend}] release: {e:?}"));
                        }
                        mine
                    })
                })
                .collect();
            join_all(handles)
        });

        let mut all: Vec<(u64, u64)> = turns.into_iter().flatten().collect();
        assert_eq!(all.len(), THREADS * TURNS, "[{backend}]");
        all.sort_unstable();
        for (i, &(seq, _)) in all.iter().enumerate() {
            assert_eq!(seq, i as u64, "[{backend}] sequence numbers are 0..n");
        }
        for pair in all.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "[{backend}] fencing token {} (turn {}) not above {} (turn {})",
                pair[1].1,
                pair[1].0,
                pair[0].1,
                pair[0].0
            );
        }
        let distinct: HashSet<u64> = all.iter().map(|&(_, token)| token).collect();
        assert_eq!(distinct.len(), all.len(), "[{backend}]");
        assert_eq!(
            racers[0].0.lock_status(&name).unwrap(),
            LockStatus::Available,
            "[{backend}]"
        );
    }
}

/// Eight threads of one user check one limit of 1000 per day, 250 times each, while the
/// clock stands still: exactly 1000 checks are allowed, each seeing a different `remaining`,
/// and every denial says that nothing remains.
#[test]
fn threads_racing_on_one_limit_get_exactly_max_admissions() {
    const CHECKS: usize = 250;
    const MAX: u32 = 1000;

    for (backend, open) in backends() {
        let h = open(Settings::default());
        let user = h.user("bursty").user().clone();
        let name = LimitName::parse("shared quota").unwrap();
        let policy = RatePolicy::new(MAX.into(), 86_400).unwrap();
        let barrier = Barrier::new(THREADS);
        // Per thread: the `remaining` of each allowed check.
        let allowed: Vec<Vec<u32>> = thread::scope(|s| {
            let handles = (0..THREADS)
                .map(|_| {
                    let session = h.store.session(user.clone());
                    let (barrier, name) = (&barrier, &name);
                    s.spawn(move || {
                        barrier.wait();
                        let mut remaining = Vec::new();
                        for _ in 0..CHECKS {
                            let d = session
                                .check(name, policy)
                                .unwrap_or_else(|e| panic!("[{backend}] check: {e:?}"));
                            if d.allowed {
                                remaining.push(d.remaining);
                            } else {
                                assert_eq!(d.remaining, 0, "[{backend}] {d:?}");
                                assert!(d.retry_after_seconds.is_some(), "[{backend}] {d:?}");
                            }
                        }
                        remaining
                    })
                })
                .collect();
            join_all(handles)
        });

        let mut remaining: Vec<u32> = allowed.into_iter().flatten().collect();
        assert_eq!(remaining.len(), MAX as usize, "[{backend}] allowed checks");
        remaining.sort_unstable();
        assert!(
            remaining.iter().copied().eq(0..MAX),
            "[{backend}] each admission saw its own remaining"
        );
        let status = h.store.session(user).limit_status(&name).unwrap();
        assert!(
            !status.allowed && status.remaining == 0,
            "[{backend}] {status:?}"
        );
    }
}

/// Eight threads of one user race to fill quotas of 100 leases and 100 limits: first 12
/// locks and 12 limits each, all granted; then, together, one more of each, of which
/// exactly 4 are granted and the others told the quota is reached. (On PostgreSQL, where
/// such operations of one owner run side by side, each counts the owner's records as if
/// every other connection were adding one, and those near the quota run alone.)
#[test]
fn threads_racing_for_an_owners_last_leases_and_limits_stay_within_the_quotas() {
    const FIRST: usize = 12;
    const QUOTA: usize = 100;

    for (backend, open) in backends() {
        let h = open(Settings {
            quotas: Quotas {
                locks: QUOTA,
                limits: QUOTA,
                ..Quotas::default()
            },
            ..Settings::default()
        });
        let user = h.user("hoarder").user().clone();
        let ttl = Ttl::seconds(3600).unwrap();
        let policy = RatePolicy::new(10, 60).unwrap();
        let barrier = Barrier::new(THREADS);
        let last: Vec<(bool, bool)> = thread::scope(|s| {
            let handles = (0..THREADS)
                .map(|t| {
                    let session = h.store.session(user.clone());
                    let barrier = &barrier;
                    s.spawn(move || {
                        let take = |i: usize| {
                            let name = format!("t{t}-{i}");
                            let lock = LockName::parse(&name).unwrap();
                            let locked = match session.acquire(&lock, ttl, None) {
                                Ok(_) => true,
                                Err(Error::QuotaExceeded { .. }) => false,
                                Err(e) => panic!("[{backend}] acquire: {e:?}"),
                            };
                            let limit = LimitName::parse(&name).unwrap();
                            let limited = match session.check(&limit, policy) {
                                Ok(_) => true,
                                Err(Error::QuotaExceeded { .. }) => false,
                                Err(e) => panic!("[{backend}] check: {e:?}"),
                            };
                            (locked, limited)
                        };
                        barrier.wait();
                        for i in 0..FIRST {
                            assert_eq!(take(i), (true, true), "[{backend}] below the quotas");
                        }
                        barrier.wait();
                        take(FIRST)
                    })
                })
                .collect();
            join_all(handles)
        });
        let locks = last.iter().filter(|(locked, _)| *locked).count();
        let limits = last.iter().filter(|(_, limited)| *limited).count();
        let room = QUOTA - THREADS * FIRST;
        assert_eq!((locks, limits), (room, room), "[{backend}] {last:?}");
        let session = h.store.session(user);
        assert_eq!(session.locks().unwrap().len(), QUOTA, "[{backend}]");
        assert_eq!(session.limits().unwrap().len(), QUOTA, "[{backend}]");
    }
}

/// Writers racing with compare-and-set on one key: each reads the latest version and puts
/// the next only over it, trying again when another won. No write is lost: every version
/// is exactly one writer's put, each writer's values appear in its own order, and the
/// history holds all of them, one after the other.
#[test]
fn writers_racing_with_compare_and_set_lose_no_write() {
    const PUTS: usize = 25;

    for (backend, open) in backends() {
        let h = open(Settings::default());
        let user = h.user("writer").user().clone();
        let key = ConfigKey::parse("counter").unwrap();
        let barrier = Barrier::new(THREADS);
        let mismatches = AtomicUsize::new(0);
        thread::scope(|s| {
            let handles = (0..THREADS)
                .map(|t| {
                    let session = h.store.session(user.clone());
                    let (barrier, key, mismatches) = (&barrier, &key, &mismatches);
                    s.spawn(move || {
                        barrier.wait();
                        for i in 0..PUTS {
                            loop {
                                let latest = match session.get_config(key, None) {
                                    Ok(entry) => entry.version,
                                    Err(Error::NotFound { .. }) => 0,
                                    Err(e) => panic!("[{backend}] get: {e:?}"),
                                };
                                let value = json!({ "writer": t, "put": i, "over": latest });
                                match session.put_config_if(key, value, None, Some(latest)) {
                                    Ok(entry) => {
                                        assert_eq!(entry.version, latest + 1, "[{backend}]");
                                        break;
                                    }
                                    Err(Error::VersionMismatch { current, .. }) => {
                                        assert_ne!(current, latest, "[{backend}]");
                                        mismatches.fetch_add(1, SeqCst);
                                    }
                                    Err(e) => panic!("[{backend}] put: {e:?}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            join_all(handles)
        });
        let history = h.store.session(user).config_history(&key).unwrap();
        assert_eq!(
            history.len(),
            THREADS * PUTS,
            "[{backend}] every write kept"
        );
        let mut next = [0u64; THREADS];
        for (n, v) in history.iter().enumerate() {
            assert_eq!(v.version, n as u64 + 1, "[{backend}]");
            assert_eq!(
                v.value["over"],
                json!(n),
                "[{backend}] put over the one before"
            );
            let writer = v.value["writer"].as_u64().unwrap() as usize;
            assert_eq!(v.value["put"], json!(next[writer]), "[{backend}] in order");
            next[writer] += 1;
        }
        assert_eq!(next, [PUTS as u64; THREADS], "[{backend}]");
        eprintln!(
            "[{backend}] {} compare-and-set puts lost a race and were tried again",
            mismatches.load(SeqCst)
        );
    }
}
