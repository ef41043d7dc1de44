//! Configs against a model: each user's keys with their kept versions, under a history cap
//! of 3 so that pruning happens all the time.

use std::collections::HashMap;

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

#[derive(Debug, Clone)]
enum Desc {
    /// Keep the previous version's description.
    Keep,
    /// Clear it.
    Empty,
    Text(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        user: usize,
        key: usize,
        value: u8,
        desc: Desc,
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
    prop_oneof![
        6 => (user.clone(), key.clone(), any::<u8>(), desc)
            .prop_map(|(user, key, value, desc)| Op::Put { user, key, value, desc }),
        5 => (user.clone(), key.clone(), version)
            .prop_map(|(user, key, version)| Op::Get { user, key, version }),
        2 => (user.clone(), key.clone()).prop_map(|(user, key)| Op::History { user, key }),
        1 => (user.clone(), key).prop_map(|(user, key)| Op::Delete { user, key }),
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
        } => {
            let description = match desc {
                Desc::Keep => None,
                Desc::Empty => Some(Description::new("").unwrap()),
                Desc::Text(n) => Some(Description::new(format!("about {n}")).unwrap()),
            };
            let got = w.users[user].put_config(&w.keys[key], value(seed), description);
            let owned = m.keys.keys().filter(|(owner, _)| *owner == user).count();
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
            let now = m.now;
            let k = m.keys.entry((user, key)).or_insert_with(|| ModelKey {
                created_at: now,
                versions: Vec::new(),
            });
            let previous = k.versions.last();
            let description = match desc {
                Desc::Keep => previous.and_then(|v| v.description.clone()),
                Desc::Empty => None,
                Desc::Text(n) => Some(format!("about {n}")),
            };
            k.versions.push(ModelVersion {
                version: previous.map_or(1, |v| v.version + 1),
                value: value(seed),
                description,
                created_at: now,
                created_by: user,
            });
            if k.versions.len() > HISTORY {
                k.versions.remove(0);
            }
            prop_assert_eq!(got, w.entry(key, k, k.latest()));
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
                Some(_) => prop_assert!(got.is_ok(), "delete: {:?}", got),
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
    };
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format_args!("step {i} ({op:?})")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96, regressions!("configs")))]

    /// Put (keeping, clearing or replacing the description), get (latest, and versions
    /// 0, negative, kept, pruned and future), history, delete and list by three users on
    /// three keys (a quota of two each) with a history cap of 3 agree with the model on
    /// every backend.
    #[test]
    fn configs_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        for (backend, open) in backends() {
            run(open, &ops).map_err(within(backend))?;
        }
    }
}
