//! The change log against a model: a `Vec` of the events the operations of two users should
//! have appended (each change one event; a lease forgotten dead, one `expired` before what
//! forgot it), with the leases it needs to know when a lock is taken over. Every read, from
//! any index, by either user, with any filter, equals the model's slice.

use std::collections::{BTreeMap, HashSet};

use octostore_core::{
    AcquireStatus, Api, Change, ConfigKey, Event, EventFilter, EventKind, FlagName, Kinds, LeaseId,
    LimitName, LockName, RatePolicy, Session, Settings, Ttl,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

use super::{config, regressions, step_ms, unexpected, within, USERS};
use crate::support::{backends, Harness, Open};

const NAMES: [&str; 3] = ["a_one", "a_two", "b_one"];
const TTL_SECONDS: i64 = 5;
/// Two of the model's users.
const PLAYERS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    SetFlag {
        user: usize,
        name: usize,
        on: bool,
    },
    DeleteFlag {
        user: usize,
        name: usize,
    },
    PutConfig {
        user: usize,
        name: usize,
    },
    DeleteConfig {
        user: usize,
        name: usize,
    },
    Check {
        user: usize,
        name: usize,
    },
    ResetLimit {
        user: usize,
        name: usize,
    },
    Acquire {
        user: usize,
        name: usize,
    },
    Release {
        user: usize,
        name: usize,
    },
    Sweep,
    Advance {
        ms: i64,
    },
    Read {
        user: usize,
        since: usize,
        kinds: u8,
        prefix: usize,
        limit: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..PLAYERS;
    let name = 0..NAMES.len();
    let un = (user.clone(), name.clone());
    prop_oneof![
        3 => (user.clone(), name.clone(), any::<bool>())
            .prop_map(|(user, name, on)| Op::SetFlag { user, name, on }),
        1 => un.clone().prop_map(|(user, name)| Op::DeleteFlag { user, name }),
        2 => un.clone().prop_map(|(user, name)| Op::PutConfig { user, name }),
        1 => un.clone().prop_map(|(user, name)| Op::DeleteConfig { user, name }),
        2 => un.clone().prop_map(|(user, name)| Op::Check { user, name }),
        1 => un.clone().prop_map(|(user, name)| Op::ResetLimit { user, name }),
        3 => un.clone().prop_map(|(user, name)| Op::Acquire { user, name }),
        2 => un.prop_map(|(user, name)| Op::Release { user, name }),
        1 => Just(Op::Sweep),
        2 => step_ms().prop_map(|ms| Op::Advance { ms }),
        2 => (user, 0..64usize, 1..16u8, 0..3usize, 1..5usize).prop_map(
            |(user, since, kinds, prefix, limit)| Op::Read { user, since, kinds, prefix, limit }
        ),
    ]
}

/// An event as the model knows it: whose, and `kind action name` (with the holder of a
/// lease's event).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    owner: usize,
    kind: EventKind,
    said: String,
    /// Its index in the store, once a read has answered it (indexes increase, but need not
    /// be consecutive: PostgreSQL's are not).
    index: Option<u64>,
}

/// A lease: its owner, id and end, in ms of the model's clock.
struct Held {
    owner: usize,
    lease_id: LeaseId,
    expires_ms: i64,
}

#[derive(Default)]
struct Model {
    now_ms: i64,
    events: Vec<Expected>,
    flags: HashSet<(usize, usize)>,
    configs: HashSet<(usize, usize)>,
    limits: HashSet<(usize, usize)>,
    leases: BTreeMap<usize, Held>,
}

impl Model {
    fn push(&mut self, owner: usize, kind: EventKind, action: &str, name: usize) {
        let mut said = format!("{} {action} {}", kind.as_str(), NAMES[name]);
        if kind == EventKind::Lock {
            said.push_str(&format!(" by {}", USERS[owner]));
        }
        self.events.push(Expected {
            owner,
            kind,
            said,
            index: None,
        });
    }

    /// A dead lease on `name` forgotten: its `expired` event.
    fn forget_dead(&mut self, name: usize) {
        if let Some(held) = self.leases.remove(&name) {
            self.push(held.owner, EventKind::Lock, "expired", name);
        }
    }
}

/// An event as the store answers it, in the model's terms.
fn said(event: &Event) -> String {
    let c = &event.change;
    let mut said = format!("{} {} {}", c.kind().as_str(), c.action(), c.name());
    if let Change::LockAcquired(l)
    | Change::LockRenewed(l)
    | Change::LockReleased(l)
    | Change::LockExpired(l) = c
    {
        said.push_str(&format!(" by {}", l.holder));
    }
    said
}

struct World {
    h: Harness,
    users: Vec<Session>,
}

fn step(w: &World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let flag = |n: usize| FlagName::parse(NAMES[n]).unwrap();
    let key = |n: usize| ConfigKey::parse(NAMES[n]).unwrap();
    let limit = |n: usize| LimitName::parse(NAMES[n]).unwrap();
    let lock = |n: usize| LockName::parse(NAMES[n]).unwrap();
    match *op {
        Op::SetFlag { user, name, on } => {
            w.users[user]
                .set_flag(&flag(name), on, None)
                .map_err(unexpected)?;
            m.flags.insert((user, name));
            m.push(user, EventKind::Flag, "set", name);
        }
        Op::DeleteFlag { user, name } => {
            let deleted = w.users[user].delete_flag(&flag(name));
            prop_assert_eq!(
                deleted.is_ok(),
                m.flags.remove(&(user, name)),
                "{:?}",
                deleted
            );
            if deleted.is_ok() {
                m.push(user, EventKind::Flag, "deleted", name);
            }
        }
        Op::PutConfig { user, name } => {
            (w.users[user].put_config(&key(name), json!(name), None)).map_err(unexpected)?;
            m.configs.insert((user, name));
            m.push(user, EventKind::Config, "put", name);
        }
        Op::DeleteConfig { user, name } => {
            let deleted = w.users[user].delete_config(&key(name));
            prop_assert_eq!(
                deleted.is_ok(),
                m.configs.remove(&(user, name)),
                "{:?}",
                deleted
            );
            if deleted.is_ok() {
                m.push(user, EventKind::Config, "deleted", name);
            }
        }
        Op::Check { user, name } => {
            let policy = RatePolicy::new(1_000, 86_400).unwrap();
            w.users[user]
                .check(&limit(name), policy)
                .map_err(unexpected)?;
            m.limits.insert((user, name));
        }
        Op::ResetLimit { user, name } => {
            // A limit is forgotten by a reset only: the sweep keeps one that counted in its
            // day-long window, and the model's clock moves by two hours at most in a case.
            let reset = w.users[user].reset_limit(&limit(name));
            prop_assert_eq!(reset.is_ok(), m.limits.remove(&(user, name)), "{:?}", reset);
            if reset.is_ok() {
                m.push(user, EventKind::Limit, "reset", name);
            }
        }
        Op::Acquire { user, name } => {
            let ttl = Ttl::seconds(TTL_SECONDS).unwrap();
            let got = w.users[user].acquire(&lock(name), ttl, None);
            match m.leases.get(&name) {
                Some(held) if held.expires_ms > m.now_ms => {
                    if held.owner == user {
                        let grant = got.map_err(unexpected)?;
                        prop_assert_eq!(grant.status, AcquireStatus::Held);
                    } else {
                        prop_assert!(got.is_err(), "{:?}", got);
                    }
                }
                _ => {
                    let grant = got.map_err(unexpected)?;
                    prop_assert_eq!(grant.status, AcquireStatus::Acquired);
                    m.forget_dead(name);
                    let held = Held {
                        owner: user,
                        lease_id: grant.lease.lease_id,
                        expires_ms: m.now_ms + TTL_SECONDS * 1_000,
                    };
                    m.leases.insert(name, held);
                    m.push(user, EventKind::Lock, "acquired", name);
                }
            }
        }
        Op::Release { user, name } => {
            let own_live = (m.leases.get(&name))
                .filter(|h| h.owner == user && h.expires_ms > m.now_ms)
                .map(|h| h.lease_id);
            let lease_id = own_live.unwrap_or(LeaseId(uuid::Uuid::nil()));
            let released = w.users[user].release(&lock(name), lease_id);
            prop_assert_eq!(released.is_ok(), own_live.is_some(), "{:?}", released);
            if released.is_ok() {
                m.leases.remove(&name);
                m.push(user, EventKind::Lock, "released", name);
            }
        }
        Op::Sweep => {
            w.h.store.sweep().map_err(unexpected)?;
            let dead: Vec<usize> = (m.leases.iter())
                .filter(|(_, h)| h.expires_ms <= m.now_ms)
                .map(|(name, _)| *name)
                .collect();
            // In name order: NAMES are sorted.
            for name in dead {
                m.forget_dead(name);
            }
        }
        Op::Advance { ms } => {
            w.h.advance_ms(ms);
            m.now_ms += ms;
        }
        Op::Read {
            user,
            since,
            kinds,
            prefix,
            limit,
        } => {
            // From the newest event at or before the drawn one whose index a read has told.
            let drawn = since % (m.events.len() + 1);
            let since = (0..=drawn)
                .rev()
                .find(|&p| p == 0 || m.events[p - 1].index.is_some())
                .unwrap_or(0);
            let since_index = since
                .checked_sub(1)
                .map_or(0, |p| m.events[p].index.unwrap());
            let kinds = Kinds::of(
                EventKind::ALL
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, kind)| (kinds & (1 << i) != 0).then_some(kind)),
            );
            let prefix = ["", "a_", "b_one"][prefix];
            let filter = EventFilter::new(kinds, prefix).unwrap();
            let expected: Vec<(usize, String)> = (m.events.iter().enumerate())
                .skip(since)
                .filter(|(_, e)| e.owner == user || e.kind == EventKind::Lock)
                .filter(|(_, e)| kinds.contains(e.kind))
                .filter(|(_, e)| e.said.split(' ').nth(2).unwrap().starts_with(prefix))
                .map(|(i, e)| (i, e.said.clone()))
                .collect();
            let mut read = Vec::new();
            let mut from = since_index;
            loop {
                let page = (w.users[user].events(from, &filter, limit)).map_err(unexpected)?;
                prop_assert!(!page.resync, "resync from {}", from);
                let full = page.events.len() == limit;
                read.extend(page.events.iter().map(|e| (e.index, said(e))));
                if !full {
                    let last = read.last().map_or(from, |(index, _)| *index);
                    prop_assert!(page.next >= last, "next {} before {}", page.next, last);
                    break;
                }
                from = page.next;
            }
            let said_read: Vec<&String> = read.iter().map(|(_, said)| said).collect();
            let said_expected: Vec<&String> = expected.iter().map(|(_, said)| said).collect();
            prop_assert_eq!(
                said_read,
                said_expected,
                "read by {} from {}",
                USERS[user],
                since
            );
            let mut previous = since_index;
            for ((index, _), (position, _)) in read.iter().zip(&expected) {
                prop_assert!(*index > previous, "index {} after {}", index, previous);
                let known = m.events[*position].index.get_or_insert(*index);
                prop_assert_eq!(*known, *index, "event {} read twice", position);
                previous = *index;
            }
        }
    }
    Ok(())
}

fn run(open: Open, ops: &[Op]) -> Result<(), TestCaseError> {
    let h = open(Settings::default());
    let users = USERS[..PLAYERS].iter().map(|login| h.user(login)).collect();
    let w = World { h, users };
    let mut m = Model::default();
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format!("step {i} {op:?}")))?;
    }
    // Finally every user reads the whole log.
    for user in 0..PLAYERS {
        let read = Op::Read {
            user,
            since: 0,
            kinds: 15,
            prefix: 0,
            limit: 3,
        };
        step(&w, &mut m, &read).map_err(within("the final read"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(48, regressions!("events")))]

    /// Flags, configs, limit checks and resets, acquires, releases, sweeps and clock moves
    /// by two users append exactly the model's events, in its order; every read from any
    /// index, by either user, with any kinds and prefix, in pages of any size, is the
    /// model's slice of what that user may see.
    #[test]
    fn the_log_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        for (backend, open) in backends() {
            run(open, &ops).map_err(within(backend))?;
        }
    }
}
