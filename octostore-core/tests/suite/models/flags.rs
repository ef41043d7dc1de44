//! Feature flags against a model: each user's flags with their creation and update instants,
//! and evaluation by the bucket of the suite's reference MurmurHash3 (`crate::flags`).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use octostore_core::{
    Api, Error, Flag, FlagName, Percentage, Quotas, Resource, Session, Settings, Subject,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{config, regressions, step_ms, unexpected, within, USERS};
use crate::flags::reference_murmur3_32;
use crate::support::{backends, Harness, Open};

const FLAGS: [&str; 3] = ["beta", "dark-mode", "new_checkout"];
/// Flags per user: fewer than the names, so creations hit the quota.
const QUOTA: usize = 2;
const SUBJECTS: [&str; 5] = ["user-1", "user-42", "tenant 7", "émilie", "alice"];

/// The documented bucket: `murmur3_32("<flag>:<subject>", 0) % 100 + 1`, from the suite's
/// reference MurmurHash3.
fn bucket(flag: &str, subject: &str) -> u32 {
    reference_murmur3_32(format!("{flag}:{subject}").as_bytes(), 0) % 100 + 1
}

#[derive(Debug, Clone)]
enum Op {
    Set {
        user: usize,
        flag: usize,
        enabled: bool,
        percentage: Option<u8>,
    },
    /// Turn on or off, keeping the percentage; never creates.
    SetEnabled {
        user: usize,
        flag: usize,
        enabled: bool,
    },
    Evaluate {
        user: usize,
        flag: usize,
        subject: Option<usize>,
    },
    Delete {
        user: usize,
        flag: usize,
    },
    List {
        user: usize,
    },
    Advance {
        ms: i64,
    },
}

fn percentage() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        1 => Just(None),
        2 => (0..=100u8).prop_map(Some),
        1 => prop::sample::select(vec![0u8, 1, 99, 100]).prop_map(Some),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let flag = 0..FLAGS.len();
    prop_oneof![
        4 => (user.clone(), flag.clone(), any::<bool>(), percentage()).prop_map(
            |(user, flag, enabled, percentage)| Op::Set { user, flag, enabled, percentage }
        ),
        3 => (user.clone(), flag.clone(), any::<bool>())
            .prop_map(|(user, flag, enabled)| Op::SetEnabled { user, flag, enabled }),
        6 => (user.clone(), flag.clone(), prop::option::of(0..SUBJECTS.len()))
            .prop_map(|(user, flag, subject)| Op::Evaluate { user, flag, subject }),
        2 => (user.clone(), flag).prop_map(|(user, flag)| Op::Delete { user, flag }),
        2 => user.prop_map(|user| Op::List { user }),
        3 => step_ms().prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct ModelFlag {
    enabled: bool,
    percentage: Option<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Model {
    now: DateTime<Utc>,
    /// By (user, flag).
    flags: HashMap<(usize, usize), ModelFlag>,
}

struct World {
    h: Harness,
    users: Vec<Session>,
    flags: Vec<FlagName>,
    subjects: Vec<Subject>,
}

impl World {
    fn flag(&self, flag: usize, f: &ModelFlag) -> Flag {
        Flag {
            name: self.flags[flag].clone(),
            enabled: f.enabled,
            percentage: f.percentage.map(|p| Percentage::new(p.into()).unwrap()),
            targeting: Default::default(),
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

fn is_flag_not_found<T>(got: &Result<T, Error>) -> bool {
    matches!(
        got,
        Err(Error::NotFound {
            what: Resource::Flag,
            ..
        })
    )
}

fn step(w: &World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Set {
            user,
            flag,
            enabled,
            percentage,
        } => {
            let got = w.users[user].set_flag(
                &w.flags[flag],
                enabled,
                percentage.map(|p| Percentage::new(p.into()).unwrap()),
            );
            let owned = m.flags.keys().filter(|(owner, _)| *owner == user).count();
            if !m.flags.contains_key(&(user, flag)) && owned >= QUOTA {
                prop_assert!(
                    matches!(
                        got,
                        Err(Error::QuotaExceeded {
                            what: Resource::Flag,
                            limit: QUOTA
                        })
                    ),
                    "expected QuotaExceeded, got {:?}",
                    got
                );
                return Ok(());
            }
            let got = got.map_err(unexpected)?;
            let created_at = m.flags.get(&(user, flag)).map_or(m.now, |f| f.created_at);
            let f = ModelFlag {
                enabled,
                percentage,
                created_at,
                updated_at: m.now,
            };
            prop_assert_eq!(got, w.flag(flag, &f));
            m.flags.insert((user, flag), f);
        }
        Op::SetEnabled {
            user,
            flag,
            enabled,
        } => {
            let got = w.users[user].set_flag_enabled(&w.flags[flag], enabled);
            match m.flags.get_mut(&(user, flag)) {
                Some(f) => {
                    f.enabled = enabled;
                    f.updated_at = m.now;
                    prop_assert_eq!(got.map_err(unexpected)?, w.flag(flag, f));
                }
                None => prop_assert!(is_flag_not_found(&got), "expected NotFound, got {:?}", got),
            }
        }
        Op::Evaluate {
            user,
            flag,
            subject,
        } => {
            let got = w.users[user].evaluate_flag(&w.flags[flag], subject.map(|s| &w.subjects[s]));
            match m.flags.get(&(user, flag)) {
                Some(f) => {
                    let subject = subject.map_or(USERS[user], |s| SUBJECTS[s]);
                    let want = f.enabled
                        && f.percentage
                            .is_none_or(|p| bucket(FLAGS[flag], subject) <= u32::from(p));
                    prop_assert_eq!(got.map_err(unexpected)?, want, "subject {}", subject);
                }
                None => prop_assert!(is_flag_not_found(&got), "expected NotFound, got {:?}", got),
            }
        }
        Op::Delete { user, flag } => {
            let got = w.users[user].delete_flag(&w.flags[flag]);
            match m.flags.remove(&(user, flag)) {
                Some(_) => prop_assert!(got.is_ok(), "delete: {:?}", got),
                None => prop_assert!(is_flag_not_found(&got), "expected NotFound, got {:?}", got),
            }
        }
        Op::List { user } => {
            let got = w.users[user].flags().map_err(unexpected)?;
            let mut want: Vec<Flag> = m
                .flags
                .iter()
                .filter(|((owner, _), _)| *owner == user)
                .map(|(&(_, flag), f)| w.flag(flag, f))
                .collect();
            want.sort_by(|a, b| a.name.cmp(&b.name));
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
        quotas: Quotas {
            flags: QUOTA,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let w = World {
        users: USERS.iter().map(|u| h.user(u)).collect(),
        flags: FLAGS.iter().map(|f| FlagName::parse(f).unwrap()).collect(),
        subjects: SUBJECTS
            .iter()
            .map(|s| Subject::parse(s).unwrap())
            .collect(),
        h,
    };
    let mut m = Model {
        now: w.h.store.now(),
        flags: HashMap::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        step(&w, &mut m, op).map_err(within(format_args!("step {i} ({op:?})")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96, regressions!("flags")))]

    /// Set, turn on or off (keeping the percentage), evaluate (for given subjects and for the
    /// caller's login), delete and list by
    /// three users on three flags (a quota of two each), with the clock moving, agree with the model on every backend:
    /// `created_at` survives every set until a delete, `updated_at` is the latest set, and
    /// evaluation follows the documented bucket.
    #[test]
    fn flags_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        for (backend, open) in backends() {
            run(open, &ops).map_err(within(backend))?;
        }
    }
}
