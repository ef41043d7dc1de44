//! Locks against a model: who holds each lock, with which lease and until when, and the
//! fencing tokens of every acquisition in order.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use octostore_core::{
    AcquireStatus, Api, ClientId, Error, FencingToken, Lease, LeaseId, LockName, LockStatus, Login,
    Quotas, Resource, Session, Settings, Ttl,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

use super::{config, regressions, step_ms, unexpected, within, USERS};
use crate::support::{backends, Harness, Open};

const LOCKS: [&str; 3] = ["build", "deploy", "migrate"];
const CLIENTS: [&str; 2] = ["host-a:1", "host-b.2"];
/// Live leases per user: fewer than the locks, so acquisitions hit the quota.
const QUOTA: usize = 2;

/// Which lease id a release or renew presents.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The latest lease granted on this lock (live or not), else as `Known(0)`.
    Current,
    /// One of the lease ids granted so far, on any lock.
    Known(usize),
    /// An id the store never granted.
    Unknown(u128),
}

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        user: usize,
        lock: usize,
        client: Option<usize>,
        ttl: i64,
    },
    Release {
        user: usize,
        lock: usize,
        lease: Pick,
    },
    Renew {
        user: usize,
        lock: usize,
        lease: Pick,
        ttl: i64,
    },
    Status {
        user: usize,
        lock: usize,
    },
    List {
        user: usize,
    },
    Sweep,
    Advance {
        ms: i64,
    },
    /// Moves the clock to `early_ms` before the expiry of the lock's latest lease, if later.
    AdvanceToExpiry {
        lock: usize,
        early_ms: i64,
    },
}

fn ttl() -> impl Strategy<Value = i64> {
    prop_oneof![6 => 1..=20i64, 1 => Just(3600i64)]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => Just(Pick::Current),
        2 => (0..64usize).prop_map(Pick::Known),
        1 => any::<u128>().prop_map(Pick::Unknown),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let lock = 0..LOCKS.len();
    prop_oneof![
        8 => (user.clone(), lock.clone(), prop::option::of(0..CLIENTS.len()), ttl())
            .prop_map(|(user, lock, client, ttl)| Op::Acquire { user, lock, client, ttl }),
        4 => (user.clone(), lock.clone(), pick())
            .prop_map(|(user, lock, lease)| Op::Release { user, lock, lease }),
        3 => (user.clone(), lock.clone(), pick(), ttl())
            .prop_map(|(user, lock, lease, ttl)| Op::Renew { user, lock, lease, ttl }),
        2 => (user.clone(), lock.clone()).prop_map(|(user, lock)| Op::Status { user, lock }),
        2 => user.prop_map(|user| Op::List { user }),
        1 => Just(Op::Sweep),
        5 => step_ms().prop_map(|ms| Op::Advance { ms }),
        2 => (lock, 0..=1i64).prop_map(|(lock, early_ms)| Op::AdvanceToExpiry { lock, early_ms }),
    ]
}

/// The model's record of a lock's latest lease (kept after it expires, as the store does,
/// until it is released, replaced or swept).
#[derive(Debug, Clone)]
struct Held {
    user: usize,
    client: Option<usize>,
    lease_id: LeaseId,
    token: FencingToken,
    expires_at: DateTime<Utc>,
}

struct Model {
    now: DateTime<Utc>,
    leases: HashMap<usize, Held>,
    /// The token of the latest acquisition, of any lock.
    last_token: Option<FencingToken>,
    /// Every lease id granted, in order.
    granted: Vec<LeaseId>,
}

impl Model {
    fn live(&self, lock: usize) -> Option<&Held> {
        self.leases.get(&lock).filter(|h| self.now < h.expires_at)
    }

    fn lease_id(&self, lock: usize, pick: Pick) -> LeaseId {
        let known = |i: usize| {
            self.granted
                .get(i % self.granted.len().max(1))
                .copied()
                .unwrap_or(LeaseId(Uuid::nil()))
        };
        match pick {
            Pick::Current => self.leases.get(&lock).map_or(known(0), |h| h.lease_id),
            Pick::Known(i) => known(i),
            Pick::Unknown(n) => LeaseId(Uuid::from_u128(n)),
        }
    }
}

/// The store side: a harness and the sessions and names the ops refer to by index.
struct World {
    h: Harness,
    users: Vec<Session>,
    locks: Vec<LockName>,
    clients: Vec<ClientId>,
}

impl World {
    fn new(open: Open) -> Self {
        let h = open(Settings {
            quotas: Quotas {
                locks: QUOTA,
                ..Quotas::default()
            },
            ..Settings::default()
        });
        let users = USERS.iter().map(|u| h.user(u)).collect();
        Self {
            h,
            users,
            locks: LOCKS.iter().map(|l| LockName::parse(l).unwrap()).collect(),
            clients: CLIENTS
                .iter()
                .map(|c| ClientId::parse(c).unwrap())
                .collect(),
        }
    }

    /// The lease the store should show for the model's record of `lock`.
    fn lease(&self, lock: usize, held: &Held) -> Lease {
        Lease {
            name: self.locks[lock].clone(),
            holder: self.users[held.user].user().login.clone(),
            client_id: held.client.map(|c| self.clients[c].clone()),
            lease_id: held.lease_id,
            fencing_token: held.token,
            expires_at: held.expires_at,
        }
    }
}

fn is_lock_not_found<T: std::fmt::Debug>(got: &Result<T, Error>) -> bool {
    matches!(
        got,
        Err(Error::NotFound {
            what: Resource::Lock,
            ..
        })
    )
}

fn step(w: &World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Acquire {
            user,
            lock,
            client,
            ttl,
        } => {
            let got = w.users[user].acquire(
                &w.locks[lock],
                Ttl::seconds(ttl).unwrap(),
                client.map(|c| &w.clients[c]),
            );
            match m.live(lock) {
                Some(held) if held.user == user && held.client == client => {
                    let grant = got.map_err(unexpected)?;
                    prop_assert_eq!(grant.status, AcquireStatus::Held);
                    prop_assert_eq!(grant.lease, w.lease(lock, held));
                }
                Some(held) => match got {
                    Err(Error::LockHeld {
                        name,
                        holder,
                        expires_at,
                    }) => {
                        prop_assert_eq!(name, w.locks[lock].clone());
                        prop_assert_eq!(holder, Login::parse(USERS[held.user]).unwrap());
                        prop_assert_eq!(expires_at, held.expires_at);
                    }
                    other => prop_assert!(false, "expected LockHeld, got {:?}", other),
                },
                None => {
                    // The quota counts live leases. Dead ones stay stored (and swept) until
                    // the owner's stored leases reach the quota, when its dead ones are
                    // deleted to make room.
                    let now = m.now;
                    if m.leases.values().filter(|h| h.user == user).count() >= QUOTA {
                        m.leases.retain(|_, h| h.user != user || now < h.expires_at);
                    }
                    if m.leases.values().filter(|h| h.user == user).count() >= QUOTA {
                        prop_assert!(
                            matches!(
                                got,
                                Err(Error::QuotaExceeded {
                                    what: Resource::Lock,
                                    limit: QUOTA
                                })
                            ),
                            "expected QuotaExceeded, got {:?}",
                            got
                        );
                        return Ok(());
                    }
                    let grant = got.map_err(unexpected)?;
                    prop_assert_eq!(grant.status, AcquireStatus::Acquired);
                    let token = grant.lease.fencing_token;
                    if let Some(last) = m.last_token {
                        prop_assert!(token > last, "token {} after {}", token, last);
                    }
                    prop_assert!(
                        !m.granted.contains(&grant.lease.lease_id),
                        "lease id {} granted twice",
                        grant.lease.lease_id
                    );
                    let held = Held {
                        user,
                        client,
                        lease_id: grant.lease.lease_id,
                        token,
                        expires_at: m.now + Duration::seconds(ttl),
                    };
                    prop_assert_eq!(grant.lease, w.lease(lock, &held));
                    m.last_token = Some(token);
                    m.granted.push(held.lease_id);
                    m.leases.insert(lock, held);
                }
            }
        }
        Op::Release { user, lock, lease } => {
            let lease_id = m.lease_id(lock, lease);
            let got = w.users[user].release(&w.locks[lock], lease_id);
            match m.live(lock) {
                Some(held) if held.user == user && held.lease_id == lease_id => {
                    prop_assert!(got.is_ok(), "release: {:?}", got);
                    m.leases.remove(&lock);
                }
                _ => prop_assert!(is_lock_not_found(&got), "expected NotFound, got {:?}", got),
            }
        }
        Op::Renew {
            user,
            lock,
            lease,
            ttl,
        } => {
            let lease_id = m.lease_id(lock, lease);
            let got = w.users[user].renew(&w.locks[lock], lease_id, Ttl::seconds(ttl).unwrap());
            let now = m.now;
            match m.leases.get_mut(&lock) {
                Some(held)
                    if now < held.expires_at && held.user == user && held.lease_id == lease_id =>
                {
                    held.expires_at = now + Duration::seconds(ttl);
                    let renewed = got.map_err(unexpected)?;
                    prop_assert_eq!(renewed, w.lease(lock, held));
                }
                _ => prop_assert!(is_lock_not_found(&got), "expected NotFound, got {:?}", got),
            }
        }
        Op::Status { user, lock } => {
            let got = w.users[user]
                .lock_status(&w.locks[lock])
                .map_err(unexpected)?;
            let want = match m.live(lock) {
                Some(held) => LockStatus::Held(w.lease(lock, held)),
                None => LockStatus::Available,
            };
            prop_assert_eq!(got, want);
        }
        Op::List { user } => {
            let got = w.users[user].locks().map_err(unexpected)?;
            let mut want: Vec<Lease> = (0..LOCKS.len())
                .filter_map(|lock| m.live(lock).map(|held| (lock, held)))
                .filter(|(_, held)| held.user == user)
                .map(|(lock, held)| w.lease(lock, held))
                .collect();
            want.sort_by(|a, b| a.name.cmp(&b.name));
            prop_assert_eq!(got, want);
        }
        Op::Sweep => {
            let swept = w.h.store.sweep().map_err(unexpected)?;
            let now = m.now;
            let before = m.leases.len();
            m.leases.retain(|_, held| now < held.expires_at);
            prop_assert_eq!(swept.leases, before - m.leases.len());
            prop_assert_eq!(swept.limits, 0);
        }
        Op::Advance { ms } => advance(w, m, Duration::milliseconds(ms))?,
        Op::AdvanceToExpiry { lock, early_ms } => {
            if let Some(held) = m.leases.get(&lock) {
                let by = held.expires_at - Duration::milliseconds(early_ms) - m.now;
                if by > Duration::zero() {
                    advance(w, m, by)?;
                }
            }
        }
    }
    Ok(())
}

fn advance(w: &World, m: &mut Model, by: Duration) -> Result<(), TestCaseError> {
    w.h.clock.advance(by);
    m.now += by;
    prop_assert_eq!(w.h.store.now(), m.now);
    Ok(())
}

fn run(open: Open, ops: &[Op]) -> Result<(), TestCaseError> {
    let w = World::new(open);
    let mut m = Model {
        now: w.h.store.now(),
        leases: HashMap::new(),
        last_token: None,
        granted: Vec::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format_args!("step {i} ({op:?})")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96, regressions!("locks")))]

    /// Acquire (with and without client id), release, renew, status, list and sweep by three
    /// users on three locks (a quota of two live leases each), with the clock moving by ms to
    /// minutes, agree with the model on every backend; fencing tokens grow strictly with
    /// every acquisition.
    #[test]
    fn locks_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        for (backend, open) in backends() {
            run(open, &ops).map_err(within(backend))?;
        }
    }
}
