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
    Api, Clock, ConfigKey, FlagName, LimitName, LockName, Login, Percentage, Quotas, RatePolicy,
    Session, Settings, Store, Subject, SystemClock, Ttl,
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

criterion_group!(benches, locks, rate_limits, flags, configs);
criterion_main!(benches);
