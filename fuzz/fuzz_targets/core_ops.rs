//! Sequences of operations on locks, rate limits, flags and configs through `octostore_core`
//! on the memory backend (and, with `OCTOSTORE_FUZZ_SQLITE=1`, on a SQLite file too) with a
//! `ManualClock`, each answer checked against a small reference model kept here:
//!
//! - locks: exclusion, the holder, expiry exactly at `expires_at`, release and renew only by
//!   the live lease's owner and id, the per-user quota, fencing tokens strictly increasing;
//! - rate limits: never more than `max_requests` admissions in any `(t - window, t]` (an exact
//!   log of the store's admissions), an empty window always admits, `remaining` never above
//!   the exact log's, waiting `retry_after_seconds` is enough, idle limits forgotten at the
//!   quota and by a sweep;
//! - flags: evaluation by an independent MurmurHash3 bucket, deterministic, monotonic in the
//!   percentage;
//! - configs: versions 1, 2, 3... per key, the kept history exactly (pruned to the setting),
//!   descriptions carried over or cleared, the size cap, the quota.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use octostore_core::{
    AcquireStatus, Api, Clock, ConfigKey, Description, Error, FlagName, LeaseId, LimitName,
    LockName, LockStatus, Login, ManualClock, Percentage, Quotas, RatePolicy, Resource, Session,
    Settings, Store, Subject, Timestamp, Ttl,
};
use serde_json::{json, Value};

const USERS: [&str; 2] = ["alice", "Bob.2"];
const LOCKS: [&str; 3] = ["a", "lock-b", "C_3"];
const LIMITS: [&str; 3] = ["api", "emails to send", "ü/min"];
const FLAGS: [&str; 3] = ["f", "new-checkout", "X_1"];
const KEYS: [&str; 3] = ["k", "db.pool", "a-b_c"];
const CLIENTS: [&str; 2] = ["w1", "host:9"];
/// Fewer than the names of each kind, so the quotas are reached.
const QUOTA: usize = 2;
const HISTORY: usize = 3;
const VALUE_MAX_BYTES: usize = 48;
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pick {
    /// The lock's live (or latest) lease in the model.
    Current,
    /// An earlier lease of the lock.
    Stale(u8),
    /// A lease id nobody was given.
    Unknown,
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<i16>),
    Object(String, i32),
}

#[derive(Arbitrary, Debug, Clone)]
enum Desc {
    Keep,
    Clear,
    Text(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Acquire {
        user: u8,
        lock: u8,
        client: Option<u8>,
        ttl: u8,
    },
    Release {
        user: u8,
        lock: u8,
        pick: Pick,
    },
    Renew {
        user: u8,
        lock: u8,
        pick: Pick,
        ttl: u8,
    },
    LockStatus {
        lock: u8,
    },
    Locks {
        user: u8,
    },
    Check {
        user: u8,
        limit: u8,
        /// When denied, wait `retry_after_seconds` and check again: it must pass.
        retry: bool,
    },
    LimitStatus {
        user: u8,
        limit: u8,
    },
    ResetLimit {
        user: u8,
        limit: u8,
    },
    Limits {
        user: u8,
    },
    SetFlag {
        user: u8,
        flag: u8,
        enabled: bool,
        percentage: Option<u8>,
    },
    Evaluate {
        user: u8,
        flag: u8,
        subject: Option<String>,
    },
    /// The flag set to rising percentages, one subject evaluated at each.
    Rollout {
        user: u8,
        flag: u8,
        subject: String,
        percentages: [u8; 4],
    },
    DeleteFlag {
        user: u8,
        flag: u8,
    },
    Flags {
        user: u8,
    },
    Put {
        user: u8,
        key: u8,
        value: Val,
        desc: Desc,
    },
    Get {
        user: u8,
        key: u8,
        version: Option<i8>,
    },
    History {
        user: u8,
        key: u8,
    },
    DeleteConfig {
        user: u8,
        key: u8,
    },
    Configs {
        user: u8,
    },
    Sweep,
    AdvanceMs(u16),
    AdvanceSecs(u8),
    /// The clock steps back (an NTP correction).
    BackMs(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Per limit name, for the whole sequence: (max_requests 1..=6, window 1..=10 s).
    policies: [(u8, u8); 3],
    ops: Vec<Op>,
}

fn pick<T: Copy>(items: &[T], i: u8) -> (usize, T) {
    let i = usize::from(i) % items.len();
    (i, items[i])
}

fn nanos(t: DateTime<Utc>) -> i64 {
    Timestamp::from(t).nanos()
}

fn is_not_found<T: std::fmt::Debug>(got: &Result<T, Error>, resource: Resource) -> bool {
    matches!(got, Err(Error::NotFound { what, .. }) if *what == resource)
}

fn is_quota<T: std::fmt::Debug>(got: &Result<T, Error>, resource: Resource) -> bool {
    matches!(got, Err(Error::QuotaExceeded { what, limit }) if *what == resource && *limit == QUOTA)
}

/// Whether the flag is on for `subject`, as the contract defines it.
fn flag_on(flag: &str, subject: &str, enabled: bool, percentage: Option<u8>) -> bool {
    // The murmur3 crate, not the store's own MurmurHash3: an independent reference.
    let key = format!("{flag}:{subject}");
    let hash = murmur3::murmur3_32(&mut key.as_bytes(), 0).expect("reading a slice");
    let bucket = hash % 100 + 1;
    enabled && percentage.is_none_or(|p| bucket <= u32::from(p))
}

struct Held {
    owner: usize,
    client: Option<usize>,
    lease_id: LeaseId,
    token: u64,
    expires: i64,
}

struct FlagModel {
    enabled: bool,
    percentage: Option<u8>,
    created: i64,
    updated: i64,
}

struct VersionModel {
    version: u64,
    value: Value,
    description: Option<String>,
    created: i64,
}

struct KeyModel {
    created: i64,
    latest: u64,
    /// The kept versions, oldest first.
    versions: Vec<VersionModel>,
}

struct Model {
    now: i64,
    policies: [RatePolicy; 3],
    /// The lease record each lock has, live or dead, until it is released or deleted (by a
    /// sweep, or its owner's quota). A dead lease whose record is kept is live again if the
    /// clock steps back before its expiry, one that was deleted is not: the model follows
    /// the store there (see fuzz/README.md).
    locks: [Option<Held>; 3],
    /// Every lease id each lock has had.
    past_leases: [Vec<LeaseId>; 3],
    last_token: u64,
    /// By (user, limit): the instants of the store's admissions, oldest first, while the
    /// limit exists.
    limits: BTreeMap<(usize, usize), Vec<i64>>,
    flags: BTreeMap<(usize, usize), FlagModel>,
    configs: BTreeMap<(usize, usize), KeyModel>,
}

impl Model {
    fn live(&self, lock: usize) -> Option<&Held> {
        self.locks[lock].as_ref().filter(|h| self.now < h.expires)
    }

    fn window(&self, limit: usize) -> i64 {
        i64::from(self.policies[limit].window_seconds()) * 1_000_000_000
    }

    /// The instant a limit is judged at: now, or its latest admission if the clock went back.
    fn judged_at(&self, log: &[i64]) -> i64 {
        log.last().map_or(self.now, |&last| self.now.max(last))
    }

    /// The admissions of the limit's exact log inside `(t - window, t]` at its judging instant.
    fn inside(&self, user: usize, limit: usize) -> usize {
        self.limits.get(&(user, limit)).map_or(0, |log| {
            let t = self.judged_at(log);
            let since = t - self.window(limit);
            log.iter().filter(|&&a| since < a && a <= t).count()
        })
    }

    fn idle(&self, user: usize, limit: usize) -> bool {
        self.inside(user, limit) == 0
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: Store,
    users: Vec<Session>,
    locks: Vec<LockName>,
    limits: Vec<LimitName>,
    flags: Vec<FlagName>,
    keys: Vec<ConfigKey>,
    /// Keeps a SQLite file's directory alive while its store is used.
    _dir: Option<tempfile::TempDir>,
}

fn settings() -> Settings {
    Settings {
        quotas: Quotas {
            locks: QUOTA,
            limits: QUOTA,
            flags: QUOTA,
            configs: QUOTA,
        },
        config_history: HISTORY,
        config_value_max_bytes: VALUE_MAX_BYTES,
        // The model keeps no byte count: the cap is out of its reach (the suite tests it).
        config_bytes_per_user: u64::MAX,
        ..Settings::default()
    }
}

fn world(sqlite: bool) -> World {
    let clock = Arc::new(ManualClock::default());
    let builder = Store::builder().clock(clock.clone()).settings(settings());
    let (store, dir) = if sqlite {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory");
        let backend = octostore_core::SqliteBackend::open(dir.path().join("fuzz.db"))
            .expect("a SQLite store");
        (builder.backend(backend).build(), Some(dir))
    } else {
        (builder.build(), None)
    };
    let users = USERS
        .iter()
        .map(|login| store.session(store.create_user(&Login::parse(login).unwrap()).unwrap()))
        .collect();
    World {
        clock,
        store,
        users,
        locks: LOCKS.iter().map(|n| LockName::parse(n).unwrap()).collect(),
        limits: LIMITS
            .iter()
            .map(|n| LimitName::parse(n).unwrap())
            .collect(),
        flags: FLAGS.iter().map(|n| FlagName::parse(n).unwrap()).collect(),
        keys: KEYS.iter().map(|n| ConfigKey::parse(n).unwrap()).collect(),
        _dir: dir,
    }
}

fn ttl(t: u8) -> Ttl {
    // Mostly short, so leases expire within a sequence; sometimes the longest.
    Ttl::seconds(if t == u8::MAX {
        3600
    } else {
        1 + i64::from(t % 30)
    })
    .unwrap()
}

fn lease_id(m: &Model, lock: usize, pick: Pick) -> LeaseId {
    match pick {
        Pick::Current => m.locks[lock]
            .as_ref()
            .map_or(LeaseId(uuid::Uuid::nil()), |h| h.lease_id),
        Pick::Stale(i) => {
            let past = &m.past_leases[lock];
            if past.is_empty() {
                LeaseId(uuid::Uuid::from_u128(u128::from(i)))
            } else {
                past[usize::from(i) % past.len()]
            }
        }
        Pick::Unknown => LeaseId(uuid::Uuid::from_u128(0x5eed)),
    }
}

fn value(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => json!(b),
        Val::Int(i) => json!(i),
        Val::Float(f) => json!(f),
        Val::Str(s) => json!(s),
        Val::List(items) => json!(items),
        Val::Object(k, v) => json!({ k: v }),
    }
}

fn advance(w: &World, m: &mut Model, by: Duration) {
    w.clock.advance(by);
    m.now = nanos(w.clock.now());
}

fn step(w: &World, m: &mut Model, op: &Op) {
    match op {
        Op::Acquire {
            user,
            lock,
            client,
            ttl: t,
        } => {
            let (u, _) = pick(&USERS, *user);
            let (l, _) = pick(&LOCKS, *lock);
            let client = client.map(|c| pick(&CLIENTS, c).0);
            let client_id = client.map(|c| octostore_core::ClientId::parse(CLIENTS[c]).unwrap());
            let got = w.users[u].acquire(&w.locks[l], ttl(*t), client_id.as_ref());
            match m.live(l) {
                Some(h) if h.owner == u && h.client == client => {
                    let grant = got.expect("the holder acquiring again gets its lease");
                    assert_eq!(grant.status, AcquireStatus::Held);
                    assert_eq!(grant.lease.lease_id, h.lease_id);
                    assert_eq!(grant.lease.fencing_token.0, h.token);
                    assert_eq!(nanos(grant.lease.expires_at), h.expires);
                }
                Some(h) => match got {
                    Err(Error::LockHeld {
                        holder, expires_at, ..
                    }) => {
                        assert_eq!(holder.as_str(), USERS[h.owner]);
                        assert_eq!(nanos(expires_at), h.expires);
                    }
                    other => panic!("acquired a held lock: {other:?}"),
                },
                None => {
                    // At the quota (counting the records, dead or alive), the owner's dead
                    // leases are deleted first; then only live ones count.
                    let own =
                        |m: &Model, i: usize| m.locks[i].as_ref().is_some_and(|h| h.owner == u);
                    if (0..LOCKS.len()).filter(|&i| own(m, i)).count() >= QUOTA {
                        for i in 0..LOCKS.len() {
                            if own(m, i) && m.live(i).is_none() {
                                m.locks[i] = None;
                            }
                        }
                    }
                    let live_own = (0..LOCKS.len())
                        .filter(|&i| m.live(i).is_some_and(|h| h.owner == u))
                        .count();
                    if live_own >= QUOTA {
                        assert!(is_quota(&got, Resource::Lock), "{got:?}");
                        return;
                    }
                    let grant = got.expect("a free lock is acquired");
                    assert_eq!(grant.status, AcquireStatus::Acquired);
                    assert_eq!(grant.lease.holder.as_str(), USERS[u]);
                    assert_eq!(grant.lease.name, w.locks[l]);
                    let token = grant.lease.fencing_token.0;
                    assert!(
                        token > m.last_token,
                        "fencing token {token} after {}",
                        m.last_token
                    );
                    m.last_token = token;
                    let expires = m.now + i64::from(ttl(*t).as_secs()) * 1_000_000_000;
                    assert_eq!(nanos(grant.lease.expires_at), expires);
                    assert!(!m.past_leases[l].contains(&grant.lease.lease_id));
                    m.past_leases[l].push(grant.lease.lease_id);
                    m.locks[l] = Some(Held {
                        owner: u,
                        client,
                        lease_id: grant.lease.lease_id,
                        token,
                        expires,
                    });
                }
            }
        }
        Op::Release {
            user,
            lock,
            pick: p,
        }
        | Op::Renew {
            user,
            lock,
            pick: p,
            ..
        } => {
            let (u, _) = pick(&USERS, *user);
            let (l, _) = pick(&LOCKS, *lock);
            let id = lease_id(m, l, *p);
            let mine = m.live(l).is_some_and(|h| h.owner == u && h.lease_id == id);
            if let Op::Renew { ttl: t, .. } = op {
                let got = w.users[u].renew(&w.locks[l], id, ttl(*t));
                if !mine {
                    assert!(is_not_found(&got, Resource::Lock), "renewed: {got:?}");
                    return;
                }
                let lease = got.expect("the owner renews its live lease");
                let held = m.locks[l].as_mut().unwrap();
                held.expires = m.now + i64::from(ttl(*t).as_secs()) * 1_000_000_000;
                assert_eq!(nanos(lease.expires_at), held.expires);
                assert_eq!(
                    lease.fencing_token.0, held.token,
                    "a renewal keeps the token"
                );
                assert_eq!(lease.lease_id, id);
            } else {
                let got = w.users[u].release(&w.locks[l], id);
                if !mine {
                    assert!(is_not_found(&got, Resource::Lock), "released: {got:?}");
                    return;
                }
                got.expect("the owner releases its live lease");
                m.locks[l] = None;
            }
        }
        Op::LockStatus { lock } => {
            let (l, _) = pick(&LOCKS, *lock);
            let got = w.users[0].lock_status(&w.locks[l]).expect("a lock status");
            match (m.live(l), got) {
                (None, LockStatus::Available) => {}
                (Some(h), LockStatus::Held(lease)) => {
                    assert_eq!(lease.holder.as_str(), USERS[h.owner]);
                    assert_eq!(lease.lease_id, h.lease_id);
                    assert_eq!(lease.fencing_token.0, h.token);
                    assert_eq!(nanos(lease.expires_at), h.expires);
                    assert_eq!(
                        lease.client_id.map(|c| c.to_string()),
                        h.client.map(|c| CLIENTS[c].to_owned())
                    );
                }
                (expected, got) => panic!(
                    "lock {l}: model {:?}, store {got:?}",
                    expected.map(|h| h.token)
                ),
            }
        }
        Op::Locks { user } => {
            let (u, _) = pick(&USERS, *user);
            let got: Vec<(String, u64)> = (w.users[u].locks().expect("a lock list"))
                .into_iter()
                .map(|l| (l.name.to_string(), l.fencing_token.0))
                .collect();
            let mut expected: Vec<(String, u64)> = (0..LOCKS.len())
                .filter_map(|i| {
                    m.live(i)
                        .filter(|h| h.owner == u)
                        .map(|h| (LOCKS[i].to_owned(), h.token))
                })
                .collect();
            expected.sort();
            assert_eq!(got, expected);
        }
        Op::Check { user, limit, retry } => {
            let (u, _) = pick(&USERS, *user);
            let (l, _) = pick(&LIMITS, *limit);
            let denied = check(w, m, u, l);
            if let (Some(wait), true) = (denied, *retry) {
                advance(w, m, Duration::seconds(wait as i64));
                assert_eq!(check(w, m, u, l), None, "denied after waiting {wait} s");
            }
        }
        Op::LimitStatus { user, limit } => {
            let (u, _) = pick(&USERS, *user);
            let (l, _) = pick(&LIMITS, *limit);
            let got = w.users[u].limit_status(&w.limits[l]);
            if !m.limits.contains_key(&(u, l)) {
                assert!(is_not_found(&got, Resource::Limit), "{got:?}");
                return;
            }
            let d = got.expect("the status of a limit");
            let max = m.policies[l].max_requests() as usize;
            let inside = m.inside(u, l);
            if inside >= max {
                assert!(!d.allowed, "status allows a full window");
            }
            if inside == 0 {
                assert!(d.allowed, "status denies an empty window");
            }
            assert!(d.remaining as usize <= max - inside.min(max));
            assert!(nanos(d.reset_at) >= m.now);
        }
        Op::ResetLimit { user, limit } => {
            let (u, _) = pick(&USERS, *user);
            let (l, _) = pick(&LIMITS, *limit);
            let got = w.users[u].reset_limit(&w.limits[l]);
            if m.limits.remove(&(u, l)).is_some() {
                got.expect("a reset of an existing limit");
            } else {
                assert!(is_not_found(&got, Resource::Limit), "{got:?}");
            }
        }
        Op::Limits { user } => {
            let (u, _) = pick(&USERS, *user);
            let got = w.users[u].limits().expect("a limit list");
            let expected: Vec<usize> = (0..LIMITS.len())
                .filter(|&l| m.limits.contains_key(&(u, l)))
                .collect();
            let mut names: Vec<&str> = expected.iter().map(|&l| LIMITS[l]).collect();
            names.sort();
            let got_names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(got_names, names);
            for summary in &got {
                let l = LIMITS
                    .iter()
                    .position(|n| *n == summary.name.as_str())
                    .unwrap();
                let max = m.policies[l].max_requests();
                assert_eq!(summary.policy, m.policies[l]);
                assert!(
                    summary.current_count as usize >= m.inside(u, l),
                    "under-counted"
                );
                assert!(
                    summary.current_count <= max,
                    "counted {} of {max}",
                    summary.current_count
                );
            }
        }
        Op::SetFlag {
            user,
            flag,
            enabled,
            percentage,
        } => {
            let (u, _) = pick(&USERS, *user);
            let (f, _) = pick(&FLAGS, *flag);
            let pct = percentage.map(|p| p % 101);
            set_flag(w, m, u, f, *enabled, pct);
        }
        Op::Evaluate {
            user,
            flag,
            subject,
        } => {
            let (u, _) = pick(&USERS, *user);
            let (f, _) = pick(&FLAGS, *flag);
            let subject = subject.as_deref().and_then(|s| Subject::parse(s).ok());
            evaluate(w, m, u, f, subject.as_ref());
        }
        Op::Rollout {
            user,
            flag,
            subject,
            percentages,
        } => {
            let (u, _) = pick(&USERS, *user);
            let (f, _) = pick(&FLAGS, *flag);
            let Ok(subject) = Subject::parse(subject) else {
                return;
            };
            let mut pcts = percentages.map(|p| p % 101);
            pcts.sort_unstable();
            let mut was_on = false;
            for p in pcts {
                if !set_flag(w, m, u, f, true, Some(p)) {
                    return;
                }
                let on = evaluate(w, m, u, f, Some(&subject));
                assert!(
                    on || !was_on,
                    "raising the percentage to {p} turned {subject:?} off"
                );
                was_on = on;
            }
        }
        Op::DeleteFlag { user, flag } => {
            let (u, _) = pick(&USERS, *user);
            let (f, _) = pick(&FLAGS, *flag);
            let got = w.users[u].delete_flag(&w.flags[f]);
            if m.flags.remove(&(u, f)).is_some() {
                got.expect("a delete of an existing flag");
            } else {
                assert!(is_not_found(&got, Resource::Flag), "{got:?}");
            }
        }
        Op::Flags { user } => {
            let (u, _) = pick(&USERS, *user);
            let got: Vec<(String, bool, Option<u8>, i64, i64)> =
                (w.users[u].flags().expect("a flag list"))
                    .into_iter()
                    .map(|f| {
                        let (c, up) = (nanos(f.created_at), nanos(f.updated_at));
                        (
                            f.name.to_string(),
                            f.enabled,
                            f.percentage.map(Percentage::get),
                            c,
                            up,
                        )
                    })
                    .collect();
            let mut expected: Vec<_> = (m.flags.iter())
                .filter(|((owner, _), _)| *owner == u)
                .map(|((_, f), v)| {
                    (
                        FLAGS[*f].to_owned(),
                        v.enabled,
                        v.percentage,
                        v.created,
                        v.updated,
                    )
                })
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, expected);
        }
        Op::Put {
            user,
            key,
            value: v,
            desc,
        } => {
            let (u, _) = pick(&USERS, *user);
            let (k, _) = pick(&KEYS, *key);
            put(w, m, u, k, value(v), desc);
        }
        Op::Get { user, key, version } => {
            let (u, _) = pick(&USERS, *user);
            let (k, _) = pick(&KEYS, *key);
            let got = w.users[u].get_config(&w.keys[k], version.map(i64::from));
            let Some(model) = m.configs.get(&(u, k)) else {
                assert!(is_not_found(&got, Resource::Config), "{got:?}");
                return;
            };
            let wanted = match version {
                None => model.versions.last(),
                Some(v) => model
                    .versions
                    .iter()
                    .find(|x| i64::try_from(x.version) == Ok(i64::from(*v))),
            };
            let Some(wanted) = wanted else {
                assert!(is_not_found(&got, Resource::ConfigVersion), "{got:?}");
                return;
            };
            let entry = got.expect("a kept version");
            assert_eq!(entry.version, wanted.version);
            assert_eq!(entry.value, wanted.value);
            assert_eq!(entry.description, wanted.description);
            assert_eq!(nanos(entry.created_at), model.created);
            assert_eq!(nanos(entry.updated_at), wanted.created);
        }
        Op::History { user, key } => {
            let (u, _) = pick(&USERS, *user);
            let (k, _) = pick(&KEYS, *key);
            let got = w.users[u].config_history(&w.keys[k]);
            let Some(model) = m.configs.get(&(u, k)) else {
                assert!(is_not_found(&got, Resource::Config), "{got:?}");
                return;
            };
            let got: Vec<_> = (got.expect("a history").into_iter())
                .map(|v| (v.version, v.value, v.description, nanos(v.created_at)))
                .collect();
            let expected: Vec<_> = (model.versions.iter())
                .map(|v| (v.version, v.value.clone(), v.description.clone(), v.created))
                .collect();
            assert_eq!(got, expected);
        }
        Op::DeleteConfig { user, key } => {
            let (u, _) = pick(&USERS, *user);
            let (k, _) = pick(&KEYS, *key);
            let got = w.users[u].delete_config(&w.keys[k]);
            if m.configs.remove(&(u, k)).is_some() {
                got.expect("a delete of an existing key");
            } else {
                assert!(is_not_found(&got, Resource::Config), "{got:?}");
            }
        }
        Op::Configs { user } => {
            let (u, _) = pick(&USERS, *user);
            let got: Vec<_> = (w.users[u].configs().expect("a config list").into_iter())
                .map(|c| {
                    (
                        c.key.to_string(),
                        c.version,
                        c.description,
                        nanos(c.created_at),
                        nanos(c.updated_at),
                    )
                })
                .collect();
            let mut expected: Vec<_> = (m.configs.iter())
                .filter(|((owner, _), _)| *owner == u)
                .map(|((_, k), v)| {
                    let latest = v.versions.last().unwrap();
                    (
                        KEYS[*k].to_owned(),
                        v.latest,
                        latest.description.clone(),
                        v.created,
                        latest.created,
                    )
                })
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, expected);
        }
        Op::Sweep => {
            w.store.sweep().expect("a sweep");
            for l in 0..LOCKS.len() {
                if m.live(l).is_none() {
                    m.locks[l] = None;
                }
            }
            let idle: Vec<_> = m
                .limits
                .keys()
                .copied()
                .filter(|&(u, l)| m.idle(u, l))
                .collect();
            for key in idle {
                m.limits.remove(&key);
            }
        }
        Op::AdvanceMs(ms) => advance(w, m, Duration::milliseconds((*ms).into())),
        Op::AdvanceSecs(s) => advance(w, m, Duration::seconds((*s).into())),
        Op::BackMs(ms) => advance(w, m, Duration::milliseconds(-i64::from(*ms % 5000))),
    }
}

/// One check; the seconds to wait when denied.
fn check(w: &World, m: &mut Model, u: usize, l: usize) -> Option<u64> {
    let got = w.users[u].check(&w.limits[l], m.policies[l]);
    if !m.limits.contains_key(&(u, l)) {
        let existing: Vec<usize> = (0..LIMITS.len())
            .filter(|&i| m.limits.contains_key(&(u, i)))
            .collect();
        if existing.len() >= QUOTA {
            // At the quota, the owner's idle limits are forgotten first.
            for i in existing {
                if m.idle(u, i) {
                    m.limits.remove(&(u, i));
                }
            }
            let active = (0..LIMITS.len())
                .filter(|&i| m.limits.contains_key(&(u, i)))
                .count();
            if active >= QUOTA {
                assert!(is_quota(&got, Resource::Limit), "{got:?}");
                return None;
            }
        }
        m.limits.insert((u, l), Vec::new());
    }
    let d = got.expect("a check of a limit under the quota");
    let max = m.policies[l].max_requests() as usize;
    let inside = m.inside(u, l);
    let log = &m.limits[&(u, l)];
    let t = m.judged_at(log);
    if inside >= max {
        assert!(!d.allowed, "admitted a check beyond {max} in the window");
    }
    if inside == 0 {
        assert!(d.allowed, "denied a check in an empty window");
    }
    let counted = inside + usize::from(d.allowed);
    assert!(
        d.remaining as usize <= max - counted,
        "remaining {} with {counted} of {max}",
        d.remaining
    );
    assert!(nanos(d.reset_at) >= m.now, "reset_at before now");
    assert_eq!(d.allowed, d.retry_after_seconds.is_none());
    if d.allowed {
        m.limits.get_mut(&(u, l)).unwrap().push(t);
        None
    } else {
        let wait = d.retry_after_seconds.unwrap();
        assert!(wait >= 1);
        Some(wait)
    }
}

/// Sets a flag; whether it was set (false at the quota).
fn set_flag(w: &World, m: &mut Model, u: usize, f: usize, enabled: bool, pct: Option<u8>) -> bool {
    let percentage = pct.map(|p| Percentage::new(p.into()).unwrap());
    let got = w.users[u].set_flag(&w.flags[f], enabled, percentage);
    let count = m.flags.keys().filter(|(owner, _)| *owner == u).count();
    let created = match m.flags.get(&(u, f)) {
        Some(existing) => existing.created,
        None if count >= QUOTA => {
            assert!(is_quota(&got, Resource::Flag), "{got:?}");
            return false;
        }
        None => m.now,
    };
    let flag = got.expect("a flag set under the quota");
    assert_eq!(flag.enabled, enabled);
    assert_eq!(flag.percentage.map(Percentage::get), pct);
    assert_eq!(nanos(flag.created_at), created);
    assert_eq!(nanos(flag.updated_at), m.now);
    m.flags.insert(
        (u, f),
        FlagModel {
            enabled,
            percentage: pct,
            created,
            updated: m.now,
        },
    );
    true
}

/// Evaluates a flag, twice (the answer must not change); its answer.
fn evaluate(w: &World, m: &Model, u: usize, f: usize, subject: Option<&Subject>) -> bool {
    let got = w.users[u].evaluate_flag(&w.flags[f], subject);
    let Some(model) = m.flags.get(&(u, f)) else {
        assert!(is_not_found(&got, Resource::Flag), "{got:?}");
        return false;
    };
    let text = subject.map_or(USERS[u], Subject::as_str);
    let on = got.expect("an evaluation of an existing flag");
    assert_eq!(
        on,
        flag_on(FLAGS[f], text, model.enabled, model.percentage),
        "flag {} for {text:?}",
        FLAGS[f]
    );
    let again = w.users[u].evaluate_flag(&w.flags[f], subject).unwrap();
    assert_eq!(on, again, "the same subject got two answers");
    if let Some(subject) = subject {
        let bucket = octostore_core::flag_bucket(&w.flags[f], subject);
        assert!((1..=100).contains(&bucket));
    }
    on
}

fn put(w: &World, m: &mut Model, u: usize, k: usize, value: Value, desc: &Desc) {
    let description = match desc {
        Desc::Keep => None,
        Desc::Clear => Some(Description::new("").unwrap()),
        Desc::Text(text) => match Description::new(text.as_str()) {
            Ok(d) => Some(d),
            Err(_) => return,
        },
    };
    let given = description.as_ref().map(|d| d.as_str().to_owned());
    let got = w.users[u].put_config(&w.keys[k], value.clone(), description);
    let size = serde_json::to_vec(&value).unwrap().len();
    if size > VALUE_MAX_BYTES {
        assert!(
            matches!(got, Err(Error::TooLarge { field: "value", .. })),
            "{got:?}"
        );
        return;
    }
    let count = m.configs.keys().filter(|(owner, _)| *owner == u).count();
    if !m.configs.contains_key(&(u, k)) && count >= QUOTA {
        assert!(is_quota(&got, Resource::Config), "{got:?}");
        return;
    }
    let stored = value.clone();
    let now = m.now;
    let model = m.configs.entry((u, k)).or_insert(KeyModel {
        created: now,
        latest: 0,
        versions: Vec::new(),
    });
    let description = match given {
        Some(d) => Some(d),
        None => model.versions.last().and_then(|v| v.description.clone()),
    }
    .filter(|d| !d.is_empty());
    model.latest += 1;
    model.versions.push(VersionModel {
        version: model.latest,
        value: stored,
        description: description.clone(),
        created: now,
    });
    if model.versions.len() > HISTORY {
        model.versions.remove(0);
    }
    let entry = got.expect("a put under the caps");
    assert_eq!(entry.version, model.latest, "versions count up by one");
    assert_eq!(entry.value, value);
    assert_eq!(entry.description, description);
    assert_eq!(nanos(entry.created_at), model.created);
    assert_eq!(nanos(entry.updated_at), now);
}

fn run(input: &Input, sqlite: bool) {
    let w = world(sqlite);
    let policies = input.policies.map(|(max, window)| {
        RatePolicy::new(1 + i64::from(max % 6), 1 + i64::from(window % 10)).unwrap()
    });
    let mut m = Model {
        now: nanos(w.clock.now()),
        policies,
        locks: [None, None, None],
        past_leases: [Vec::new(), Vec::new(), Vec::new()],
        last_token: 0,
        limits: BTreeMap::new(),
        flags: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    // `OCTOSTORE_FUZZ_TRACE=1` prints each operation and the clock, to follow a reproducer.
    let trace = std::env::var_os("OCTOSTORE_FUZZ_TRACE").is_some_and(|v| v == "1");
    for op in input.ops.iter().take(MAX_OPS) {
        if trace {
            eprintln!("at {} ns: {op:?}", m.now);
        }
        step(&w, &mut m, op);
    }
}

fuzz_target!(|input: Input| {
    run(&input, false);
    if std::env::var_os("OCTOSTORE_FUZZ_SQLITE").is_some_and(|v| v == "1") {
        run(&input, true);
    }
});
