//! Configs against a model: each user's keys with their kept versions, under a history cap
//! of 3 so that pruning happens all the time; puts with and without compare-and-set,
//! rollbacks, soft deletes kept for a retention of 30 s, undeletes and purges.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use octostore_core::{
    Api, ConfigEntry, ConfigKey, ConfigSummary, ConfigVersion, Description, Error, Login, Quotas,
    Resource, Session, Settings,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use super::{config, regressions, step_ms, unexpected, within, USERS};
use crate::support::{backends, Harness, Open};

const KEYS: [&str; 3] = ["app.name", "db.pool_size", "feature_x-y"];
const HISTORY: usize = 3;
/// Keys per user: fewer than the keys, so creations hit the quota.
const QUOTA: usize = 2;
/// How long a deleted key is kept for an undelete.
const RETENTION_SECS: i64 = 30;

/// What a put or rollback expects of the key's latest version.
#[derive(Debug, Clone)]
enum Expect {
    /// Nothing: the seed's put.
    Nothing,
    /// The version the model has (0 for no key): the compare-and-set succeeds.
    Latest,
    /// This version, which may or may not be the latest.
    Version(u64),
}

#[derive(Debug, Clone)]
enum Desc {
    /// Keep the previous version's description.
    Keep,
    /// Clear it.
    Empty,
    Text(u8),
    /// A rollback's: exactly this one.
    Exactly(Option<String>),
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        user: usize,
        key: usize,
        value: u8,
        desc: Desc,
        expect: Expect,
    },
    Rollback {
        user: usize,
        key: usize,
        version: u64,
        expect: Expect,
    },
    Undelete {
        user: usize,
        key: usize,
    },
    Purge {
        user: usize,
        key: usize,
    },
    ListDeleted {
        user: usize,
    },
    Get {
        user: usize,
        key: usize,
        version: Option<i64>,
    },
    History {
        user: usize,
        key: usize,
    },
    Delete {
        user: usize,
        key: usize,
    },
    List {
        user: usize,
    },
    Advance {
        ms: i64,
    },
}

/// A JSON value of every kind, from a seed.
fn value(n: u8) -> Value {
    match n % 6 {
        0 => json!(n),
        1 => json!(format!("v{n}")),
        2 => json!({ "n": n, "list": [n, null, true], "nested": { "x": -1.5 } }),
        3 => json!([n, "two", [3]]),
        4 => Value::Null,
        _ => json!(n > 127),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let key = 0..KEYS.len();
    let desc = prop_oneof![
        3 => Just(Desc::Keep),
        1 => Just(Desc::Empty),
        2 => any::<u8>().prop_map(Desc::Text),
    ];
    let version = prop_oneof![
        2 => Just(None),
        6 => (-2..=9i64).prop_map(Some),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 1 << 40]).prop_map(Some),
    ];
    let expect = || {
        prop_oneof![
            3 => Just(Expect::Nothing),
            2 => Just(Expect::Latest),
            1 => (0..6u64).prop_map(Expect::Version),
        ]
    };
    prop_oneof![
        6 => (user.clone(), key.clone(), any::<u8>(), desc, expect())
            .prop_map(|(user, key, value, desc, expect)| Op::Put { user, key, value, desc, expect }),
        2 => (user.clone(), key.clone(), 0..7u64, expect())
            .prop_map(|(user, key, version, expect)| Op::Rollback { user, key, version, expect }),
        2 => (user.clone(), key.clone()).prop_map(|(user, key)| Op::Undelete { user, key }),
        1 => (user.clone(), key.clone()).prop_map(|(user, key)| Op::Purge { user, key }),
        1 => user.clone().prop_map(|user| Op::ListDeleted { user }),
        5 => (user.clone(), key.clone(), version)
            .prop_map(|(user, key, version)| Op::Get { user, key, version }),
        2 => (user.clone(), key.clone()).prop_map(|(user, key)| Op::History { user, key }),
        2 => (user.clone(), key).prop_map(|(user, key)| Op::Delete { user, key }),
        2 => user.prop_map(|user| Op::List { user }),
        3 => step_ms().prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct ModelVersion {
    version: u64,
    value: Value,
    description: Option<String>,
    created_at: DateTime<Utc>,
    /// The user who put it.
    created_by: usize,
}

#[derive(Debug, Clone)]
struct ModelKey {
    created_at: DateTime<Utc>,
    /// The kept versions, oldest first; never empty.
    versions: Vec<ModelVersion>,
}

impl ModelKey {
    fn latest(&self) -> &ModelVersion {
        self.versions.last().unwrap()
    }
}

struct Model {
    now: DateTime<Utc>,
    /// By (user, key).
    keys: HashMap<(usize, usize), ModelKey>,
    /// The deleted keys not purged, by (user, key), with when they were deleted (kept for an
    /// undelete until `RETENTION_SECS` after).
    deleted: HashMap<(usize, usize), (DateTime<Utc>, ModelKey)>,
}

impl Model {
    fn latest(&self, user: usize, key: usize) -> u64 {
        self.keys
            .get(&(user, key))
            .map_or(0, |k| k.latest().version)
    }

    /// The version a put or rollback expects, if any.
    fn expected(&self, user: usize, key: usize, expect: &Expect) -> Option<u64> {
        match *expect {
            Expect::Nothing => None,
            Expect::Latest => Some(self.latest(user, key)),
            Expect::Version(v) => Some(v),
        }
    }

    fn live_keys_of(&self, user: usize) -> usize {
        self.keys.keys().filter(|(owner, _)| *owner == user).count()
    }

    fn kept(&self, deleted_at: DateTime<Utc>) -> bool {
        self.now < deleted_at + Duration::seconds(RETENTION_SECS)
    }

    /// Stores `value` with `desc` as the key's next version (the key made if new, a deleted
    /// one purged first), pruning to the cap.
    fn put(&mut self, user: usize, key: usize, value: Value, desc: &Desc) -> ModelKey {
        let now = self.now;
        if !self.keys.contains_key(&(user, key)) {
            self.deleted.remove(&(user, key));
        }
        let k = self.keys.entry((user, key)).or_insert_with(|| ModelKey {
            created_at: now,
            versions: Vec::new(),
        });
        let previous = k.versions.last();
        let description = match desc {
            Desc::Keep => previous.and_then(|v| v.description.clone()),
            Desc::Empty => None,
            Desc::Text(n) => Some(format!("about {n}")),
            Desc::Exactly(d) => d.clone(),
        };
        k.versions.push(ModelVersion {
            version: previous.map_or(1, |v| v.version + 1),
            value,
            description,
            created_at: now,
            created_by: user,
        });
        if k.versions.len() > HISTORY {
            k.versions.remove(0);
        }
        k.clone()
    }
}

/// A failed compare-and-set, if the model says the put or rollback fails one.
fn mismatch(m: &Model, user: usize, key: usize, expect: &Expect) -> Option<(u64, u64)> {
    let expected = m.expected(user, key, expect)?;
    let current = m.latest(user, key);
    (expected != current).then_some((expected, current))
}

fn is_mismatch<T>(got: &Result<T, Error>, (expected, current): (u64, u64)) -> bool {
    matches!(got, Err(Error::VersionMismatch { expected: e, current: c, .. }) if (*e, *c) == (expected, current))
}

struct World {
    h: Harness,
    users: Vec<Session>,
    keys: Vec<ConfigKey>,
}

impl World {
    fn entry(&self, key: usize, k: &ModelKey, v: &ModelVersion) -> ConfigEntry {
        ConfigEntry {
            key: self.keys[key].clone(),
            value: v.value.clone(),
            description: v.description.clone(),
            version: v.version,
            created_at: k.created_at,
            updated_at: v.created_at,
            updated_by: Some(self.login(v.created_by)),
        }
    }

    fn version(&self, v: &ModelVersion) -> ConfigVersion {
        ConfigVersion {
            version: v.version,
            value: v.value.clone(),
            description: v.description.clone(),
            created_at: v.created_at,
            created_by: Some(self.login(v.created_by)),
        }
    }

    fn login(&self, user: usize) -> Login {
        self.users[user].user().login.clone()
    }
}

fn is_not_found<T>(got: &Result<T, Error>, resource: Resource) -> bool {
    matches!(got, Err(Error::NotFound { what, .. }) if *what == resource)
}

fn step(w: &World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Put {
            user,
            key,
            value: seed,
            ref desc,
            ref expect,
        } => {
            let description = match desc {
                Desc::Keep => None,
                Desc::Empty => Some(Description::new("").unwrap()),
                Desc::Text(n) => Some(Description::new(format!("about {n}")).unwrap()),
                Desc::Exactly(_) => unreachable!("only a rollback's"),
            };
            let expected = m.expected(user, key, expect);
            let got = w.users[user].put_config_if(&w.keys[key], value(seed), description, expected);
            if let Some(failed) = mismatch(m, user, key, expect) {
                prop_assert!(
                    is_mismatch(&got, failed),
                    "expected {:?}, got {:?}",
                    failed,
                    got
                );
                return Ok(());
            }
            let owned = m.live_keys_of(user);
            if !m.keys.contains_key(&(user, key)) && owned >= QUOTA {
                prop_assert!(
                    matches!(
                        got,
                        Err(Error::QuotaExceeded {
                            what: Resource::Config,
                            limit: QUOTA
                        })
                    ),
                    "expected QuotaExceeded, got {:?}",
                    got
                );
                return Ok(());
            }
            let got = got.map_err(unexpected)?;
            let k = m.put(user, key, value(seed), desc);
            prop_assert_eq!(got, w.entry(key, &k, k.latest()));
        }
        Op::Rollback {
            user,
            key,
            version,
            ref expect,
        } => {
            let expected = m.expected(user, key, expect);
            let got = w.users[user].rollback_config(&w.keys[key], version, expected);
            let Some(k) = m.keys.get(&(user, key)) else {
                prop_assert!(
                    is_not_found(&got, Resource::Config),
                    "expected NotFound, got {:?}",
                    got
                );
                return Ok(());
            };
            if let Some(failed) = mismatch(m, user, key, expect) {
                prop_assert!(
                    is_mismatch(&got, failed),
                    "expected {:?}, got {:?}",
                    failed,
                    got
                );
                return Ok(());
            }
            let Some(old) = k.versions.iter().find(|v| v.version == version).cloned() else {
                prop_assert!(
                    is_not_found(&got, Resource::ConfigVersion),
                    "expected version NotFound, got {:?}",
                    got
                );
                return Ok(());
            };
            let got = got.map_err(unexpected)?;
            let k = m.put(user, key, old.value, &Desc::Exactly(old.description));
            prop_assert_eq!(got, w.entry(key, &k, k.latest()));
        }
        Op::Undelete { user, key } => {
            let got = w.users[user].undelete_config(&w.keys[key]);
            if m.keys.contains_key(&(user, key)) {
                prop_assert!(
                    matches!(got, Err(Error::Conflict(_))),
                    "expected Conflict, got {:?}",
                    got
                );
                return Ok(());
            }
            match m.deleted.get(&(user, key)) {
                Some((at, _)) if m.kept(*at) => {
                    if m.live_keys_of(user) >= QUOTA {
                        prop_assert!(
                            matches!(
                                got,
                                Err(Error::QuotaExceeded {
                                    what: Resource::Config,
                                    ..
                                })
                            ),
                            "expected QuotaExceeded, got {:?}",
                            got
                        );
                        return Ok(());
                    }
                    let (_, k) = m.deleted.remove(&(user, key)).unwrap();
                    prop_assert_eq!(got.map_err(unexpected)?, w.entry(key, &k, k.latest()));
                    m.keys.insert((user, key), k);
                }
                _ => prop_assert!(
                    is_not_found(&got, Resource::DeletedConfig),
                    "expected deleted NotFound, got {:?}",
                    got
                ),
            }
        }
        Op::Purge { user, key } => {
            let got = w.users[user].purge_config(&w.keys[key]);
            let live = m.keys.remove(&(user, key)).is_some();
            let deleted = m.deleted.remove(&(user, key)).is_some();
            if live || deleted {
                prop_assert!(got.is_ok(), "purge: {:?}", got);
            } else {
                prop_assert!(
                    is_not_found(&got, Resource::Config),
                    "expected NotFound, got {:?}",
                    got
                );
            }
        }
        Op::ListDeleted { user } => {
            let got = w.users[user].deleted_configs().map_err(unexpected)?;
            let mut want: Vec<ConfigSummary> = (m.deleted.iter())
                .filter(|((owner, _), (at, _))| *owner == user && m.kept(*at))
                .map(|(&(_, key), (at, k))| ConfigSummary {
                    key: w.keys[key].clone(),
                    description: k.latest().description.clone(),
                    version: k.latest().version,
                    created_at: k.created_at,
                    updated_at: k.latest().created_at,
                    deleted_at: Some(*at),
                })
                .collect();
            want.sort_by(|a, b| a.key.cmp(&b.key));
            prop_assert_eq!(got, want);
        }
        Op::Get { user, key, version } => {
            let got = w.users[user].get_config(&w.keys[key], version);
            match (m.keys.get(&(user, key)), version) {
                (None, _) => prop_assert!(
                    is_not_found(&got, Resource::Config),
                    "expected NotFound, got {:?}",
                    got
                ),
                (Some(k), None) => {
                    prop_assert_eq!(got.map_err(unexpected)?, w.entry(key, k, k.latest()));
                }
                (Some(k), Some(wanted)) => {
                    match k
                        .versions
                        .iter()
                        .find(|v| i128::from(v.version) == i128::from(wanted))
                    {
                        Some(v) => prop_assert_eq!(got.map_err(unexpected)?, w.entry(key, k, v)),
                        None => prop_assert!(
                            is_not_found(&got, Resource::ConfigVersion),
                            "expected version NotFound, got {:?}",
                            got
                        ),
                    }
                }
            }
        }
        Op::History { user, key } => {
            let got = w.users[user].config_history(&w.keys[key]);
            match m.keys.get(&(user, key)) {
                Some(k) => {
                    let want: Vec<ConfigVersion> =
                        k.versions.iter().map(|v| w.version(v)).collect();
                    prop_assert_eq!(got.map_err(unexpected)?, want);
                }
                None => prop_assert!(
                    is_not_found(&got, Resource::Config),
                    "expected NotFound, got {:?}",
                    got
                ),
            }
        }
        Op::Delete { user, key } => {
            let got = w.users[user].delete_config(&w.keys[key]);
            match m.keys.remove(&(user, key)) {
                Some(k) => {
                    prop_assert!(got.is_ok(), "delete: {:?}", got);
                    m.deleted.insert((user, key), (m.now, k));
                }
                None => prop_assert!(
                    is_not_found(&got, Resource::Config),
                    "expected NotFound, got {:?}",
                    got
                ),
            }
        }
        Op::List { user } => {
            let got = w.users[user].configs().map_err(unexpected)?;
            let mut want: Vec<ConfigSummary> = m
                .keys
                .iter()
                .filter(|((owner, _), _)| *owner == user)
                .map(|(&(_, key), k)| ConfigSummary {
                    key: w.keys[key].clone(),
                    description: k.latest().description.clone(),
                    version: k.latest().version,
                    created_at: k.created_at,
                    updated_at: k.latest().created_at,
                    deleted_at: None,
                })
                .collect();
            want.sort_by(|a, b| a.key.cmp(&b.key));
            prop_assert_eq!(got, want);
        }
        Op::Advance { ms } => {
            w.h.advance_ms(ms);
            m.now += Duration::milliseconds(ms);
            prop_assert_eq!(w.h.store.now(), m.now);
        }
    }
    Ok(())
}

fn run(open: Open, ops: &[Op]) -> Result<(), TestCaseError> {
    let h = open(Settings {
        config_history: HISTORY,
        config_retention: StdDuration::from_secs(RETENTION_SECS as u64),
        quotas: Quotas {
            configs: QUOTA,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let w = World {
        users: USERS.iter().map(|u| h.user(u)).collect(),
        keys: KEYS.iter().map(|k| ConfigKey::parse(k).unwrap()).collect(),
        h,
    };
    let mut m = Model {
        now: w.h.store.now(),
        keys: HashMap::new(),
        deleted: HashMap::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format_args!("step {i} ({op:?})")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96, regressions!("configs")))]

    /// Put (keeping, clearing or replacing the description; with or without a
    /// compare-and-set, of the latest version or of any), rollback (to kept, pruned, future
    /// and zero versions; with or without a compare-and-set), get (latest, and versions 0,
    /// negative, kept, pruned and future), history, delete (kept for an undelete), undelete
    /// (within and past the retention, over the quota, of a live key), purge and list (of
    /// live and of deleted keys) by three users on three keys (a quota of two each) with a
    /// history cap of 3 agree with the model on every backend.
    #[test]
    fn configs_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        for (backend, open) in backends() {
            run(open, &ops).map_err(within(backend))?;
        }
    }
}
