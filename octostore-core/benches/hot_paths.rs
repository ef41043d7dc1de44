//! The hot paths of the core on the memory backend, one thread, on the system clock: what
//! the "well under 1 µs" target of an operation in memory is measured against. Everything an
//! operation takes (names, policies, values) is built before the timed loop.
//!
//! The rate-limit group also times `governor`'s keyed limiter over the same keys, so the two
//! figures come from the same machine in the same run. Both rotate over [`KEYS`] names, so the
//! allowed path stays allowed (each name sees a small share of the checks) and the comparison
//! pays the same key-lookup costs on both sides. It also times one read of the wall clock,
//! which every timed operation makes and governor (reading the TSC) does not.

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use octostore_core::{
    evaluate_flag, Api, Clock, ConfigKey, Constraint, Definitions, EvaluationContext, Flag,
    FlagName, LimitName, LockName, Login, Operator, Payload, Percentage, PropertyName,
    PropertyValue, Quotas, RatePolicy, Rule, Segment, SegmentName, Session, Settings, Store,
    Subject, SystemClock, Targeting, Ttl, Variant, VariantName,
};
use serde_json::json;

/// Distinct names each rotating benchmark cycles through.
const KEYS: usize = 4096;

/// A user's session on a fresh memory store whose quotas fit [`KEYS`] names.
fn session() -> Session {
    let settings = Settings {
        quotas: Quotas {
            locks: KEYS,
            limits: KEYS,
            flags: KEYS,
            configs: KEYS,
        },
        ..Settings::default()
    };
    let store = Store::builder().settings(settings).build();
    let login = Login::parse("bench").expect("a valid login");
    store.session(store.create_user(&login).expect("a new user"))
}

/// `KEYS` names made by `parse` from `prefix-0`, `prefix-1`...
fn names<T>(prefix: &str, parse: impl Fn(&str) -> octostore_core::Result<T>) -> Vec<T> {
    (0..KEYS)
        .map(|i| parse(&format!("{prefix}-{i}")).expect("a valid name"))
        .collect()
}

fn locks(c: &mut Criterion) {
    let me = session();
    let ttl = Ttl::seconds(30).expect("a valid ttl");
    let mut group = c.benchmark_group("lock");

    let distinct = names("job", LockName::parse);
    let mut next = distinct.iter().cycle();
    group.bench_function("acquire_release_distinct_names", |b| {
        b.iter(|| {
            let name = next.next().expect("an endless cycle");
            let grant = me.acquire(name, ttl, None).expect("a free lock");
            me.release(name, grant.lease.lease_id).expect("our lease");
        })
    });

    let name = LockName::parse("deploy").expect("a valid name");
    group.bench_function("acquire_release_one_name", |b| {
        b.iter(|| {
            let grant = me.acquire(&name, ttl, None).expect("a free lock");
            me.release(&name, grant.lease.lease_id).expect("our lease");
        })
    });

    let held = LockName::parse("leader").expect("a valid name");
    let lease = me.acquire(&held, Ttl::seconds(3600).expect("a valid ttl"), None);
    let lease_id = lease.expect("a free lock").lease.lease_id;
    group.bench_function("renew", |b| {
        b.iter(|| me.renew(&held, lease_id, ttl).expect("our lease"))
    });
    group.bench_function("status_held", |b| {
        b.iter(|| me.lock_status(black_box(&held)).expect("a status"))
    });
    group.finish();
}

fn rate_limits(c: &mut Criterion) {
    let me = session();
    let limit_names = names("api", LimitName::parse);
    let keys: Vec<String> = limit_names.iter().map(|n| n.to_string()).collect();
    let mut group = c.benchmark_group("rate_limit");

    // 10 000 per second per name: each name gets a 1/KEYS share of the checks, far fewer.
    let generous = RatePolicy::new(10_000, 1).expect("a valid policy");
    let mut next = limit_names.iter().cycle();
    group.bench_function("octostore_check_allowed", |b| {
        b.iter(|| {
            let name = next.next().expect("an endless cycle");
            assert!(me.check(name, generous).expect("a decision").allowed);
        })
    });

    // One per day, on another store: every check after each name's first is denied.
    let scarce = session();
    let strict = RatePolicy::new(1, 86_400).expect("a valid policy");
    for name in &limit_names {
        scarce.check(name, strict).expect("a decision");
    }
    let mut next = limit_names.iter().cycle();
    group.bench_function("octostore_check_denied", |b| {
        b.iter(|| {
            let name = next.next().expect("an endless cycle");
            assert!(!scarce.check(name, strict).expect("a decision").allowed);
        })
    });

    let quota = Quota::per_second(NonZeroU32::MAX);
    let keyed: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    let mut next = keys.iter().cycle();
    group.bench_function("governor_keyed_check_key", |b| {
        b.iter(|| {
            let key = next.next().expect("an endless cycle");
            assert!(keyed.check_key(key).is_ok());
        })
    });

    // The same, answering the remaining capacity as every one of our checks does.
    let informed = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
    let mut next = keys.iter().cycle();
    group.bench_function("governor_keyed_with_state_information", |b| {
        b.iter(|| {
            let key = next.next().expect("an endless cycle");
            let snapshot = informed.check_key(key).expect("allowed");
            black_box(snapshot.remaining_burst_capacity());
        })
    });

    // governor's mutex-and-HashMap store: the same shape as our memory backend.
    let hashmap = RateLimiter::hashmap(quota);
    let mut next = keys.iter().cycle();
    group.bench_function("governor_hashmap_check_key", |b| {
        b.iter(|| {
            let key = next.next().expect("an endless cycle");
            assert!(hashmap.check_key(key).is_ok());
        })
    });

    // What each of our checks pays to read the wall clock.
    group.bench_function("system_clock_timestamp", |b| {
        b.iter(|| black_box(SystemClock).timestamp())
    });
    group.finish();
}

fn flags(c: &mut Criterion) {
    let me = session();
    let name = FlagName::parse("new-checkout").expect("a valid name");
    let percentage = Percentage::new(50).expect("a valid percentage");
    me.set_flag(&name, true, Some(percentage)).expect("a flag");
    let subject = Subject::parse("user-42").expect("a valid subject");
    let mut group = c.benchmark_group("flag");
    group.bench_function("evaluate_percentage", |b| {
        b.iter(|| {
            me.evaluate_flag(&name, Some(black_box(&subject)))
                .expect("a flag")
        })
    });
    group.finish();
}

fn configs(c: &mut Criterion) {
    let me = session();
    let key = ConfigKey::parse("db.pool").expect("a valid key");
    let value = json!({ "size": 10 });
    me.put_config(&key, value.clone(), None).expect("a put");
    let mut group = c.benchmark_group("config");
    group.bench_function("get_latest", |b| {
        b.iter(|| me.get_config(black_box(&key), None).expect("a version"))
    });
    // Each put prunes the oldest version once the history is full, as in steady use.
    group.bench_function("put", |b| {
        b.iter(|| me.put_config(&key, value.clone(), None).expect("a put"))
    });
    // A service's settings under a schema of the size people write (types, bounds, an enum,
    // a pattern, required fields, nested objects and an array of them): what checking a put
    // against it costs, the compiled schema remembered by the store.
    let checked = ConfigKey::parse("svc.settings").expect("a valid key");
    let settings = service_settings();
    me.set_config_schema(&checked, service_schema(), false)
        .expect("a schema");
    group.bench_function("put_with_schema", |b| {
        b.iter(|| {
            me.put_config(&checked, settings.clone(), None)
                .expect("a put")
        })
    });
    group.bench_function("put_same_value_no_schema", |b| {
        let unchecked = ConfigKey::parse("svc.unchecked").expect("a valid key");
        b.iter(|| {
            me.put_config(&unchecked, settings.clone(), None)
                .expect("a put")
        })
    });
    group.finish();
}

/// A realistic service configuration (about 500 bytes of JSON), as `bench/wrk` puts it.
fn service_settings() -> serde_json::Value {
    serde_json::from_str(include_str!("../../bench/wrk/service.json")).expect("JSON")
}

/// The schema of [`service_settings`] (about 1.4 KiB of JSON), as `bench/config_put.sh` sets
/// it.
fn service_schema() -> serde_json::Value {
    serde_json::from_str(include_str!("../../bench/wrk/service.schema.json")).expect("JSON")
}

/// Definitions with no flag and no segment: a flag evaluated alone.
struct Nothing;

impl Definitions for Nothing {
    fn flag(&mut self, _: &FlagName) -> octostore_core::Result<Option<Flag>> {
        Ok(None)
    }
    fn segment(&mut self, _: &SegmentName) -> octostore_core::Result<Option<Segment>> {
        Ok(None)
    }
}

/// The evaluator alone (no store, no transaction): a flag of one rule of five constraints of
/// mixed operators (IN of 10 values, STR_STARTS_WITH, NUM_GTE, SEMVER_GT, DATE_BEFORE) and a
/// split between four variants with payloads, for a context that meets every constraint
/// (the IN on its last value).
fn flag_evaluation(c: &mut Criterion) {
    let property = |p: &str| PropertyName::parse(p).expect("a valid property");
    let constraint = |p: &str, operator, values: &[&str]| {
        let values = values.iter().map(|v| v.to_string()).collect();
        Constraint::new(property(p), operator, values, false, false).expect("a constraint")
    };
    let countries = ["us", "ca", "mx", "gb", "fr", "de", "es", "it", "nl", "se"];
    let rule = Rule::new(
        vec![
            constraint("country", Operator::In, &countries),
            constraint("plan", Operator::StrStartsWith, &["ent"]),
            constraint("seats", Operator::NumGte, &["10"]),
            constraint("appVersion", Operator::SemverGt, &["2.3.0"]),
            constraint(
                "signupDate",
                Operator::DateBefore,
                &["2026-01-01T00:00:00Z"],
            ),
        ],
        vec![],
        None,
    )
    .expect("a rule");
    let variants = ["control", "blue", "green", "red"]
        .iter()
        .map(|v| Variant {
            name: VariantName::parse(v).expect("a valid variant"),
            weight: 25,
            payload: Some(Payload::String(format!("theme-{v}"))),
        })
        .collect();
    let now = SystemClock.now();
    let flag = Flag {
        name: FlagName::parse("new-checkout").expect("a valid name"),
        enabled: true,
        percentage: None,
        targeting: std::sync::Arc::new(Targeting {
            rules: vec![rule],
            variants,
            prerequisites: vec![],
        }),
        created_at: now,
        updated_at: now,
    };
    let text = |t: &str| PropertyValue::String(t.into());
    let context = EvaluationContext::of(Subject::parse("user-42").expect("a valid subject"));
    let context = [
        ("country", text("se")),
        ("plan", text("enterprise")),
        ("seats", PropertyValue::Number(25.0)),
        ("appVersion", text("2.10.1")),
        ("signupDate", text("2025-06-30T12:00:00Z")),
    ]
    .into_iter()
    .try_fold(context, |c, (p, v)| c.with(property(p), v))
    .expect("a context");
    let answer = evaluate_flag(&flag, &context, now, &mut Nothing).expect("an answer");
    assert!(answer.enabled && answer.variant.is_some(), "{answer:?}");
    let mut group = c.benchmark_group("flag");
    group.bench_function("evaluate_5_constraints_4_variants_pure", |b| {
        b.iter(|| {
            evaluate_flag(black_box(&flag), black_box(&context), now, &mut Nothing)
                .expect("an answer")
        })
    });
    group.finish();
}

criterion_group!(benches, locks, rate_limits, flags, flag_evaluation, configs);
criterion_main!(benches);
