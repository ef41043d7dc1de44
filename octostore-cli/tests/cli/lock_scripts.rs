//! The lock commands as scripts written for `flock`, `etcdctl lock` and `consul lock` use them:
//! durations for TTLs.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::Env;

/// A lease's `expires_at`.
fn expires_at(lease: &Value) -> SystemTime {
    humantime::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap()
}

/// Runs `args` (which print a lease as JSON) and asserts that the lease ends `ttl` after the
/// command ran (within a second either side, for the rounding of the instants).
fn expect_lease_for(env: &Env, args: &[&str], ttl: Duration) -> Value {
    let before = SystemTime::now();
    let lease = env.run(args).expect(0).json();
    let after = SystemTime::now();
    let ends = expires_at(&lease);
    let slack = Duration::from_secs(1);
    assert!(
        before + ttl - slack <= ends && ends <= after + ttl + slack,
        "{args:?}: {lease}"
    );
    lease
}

#[test]
fn every_ttl_is_a_duration_of_whole_seconds_from_1s_to_1h() {
    let env = Env::local();
    let acquire = ["lock", "acquire", "ttl", "--ttl", "5m", "--json"];
    let lease = expect_lease_for(&env, &acquire, Duration::from_secs(300));
    let id = lease["lease_id"].as_str().unwrap();
    let renew = [
        "lock", "renew", "ttl", "--lease", id, "--ttl", "1h", "--json",
    ];
    expect_lease_for(&env, &renew, Duration::from_secs(3600));
    let renew = [
        "lock", "renew", "ttl", "--lease", id, "--ttl", "90", "--json",
    ];
    expect_lease_for(&env, &renew, Duration::from_secs(90));
    env.run(&["lock", "run", "ttl-run", "--ttl", "2m", "--", "true"])
        .expect(0);
    for bad in ["1500ms", "1.5s", "0", "0s", "61m", "3601", "soon"] {
        for args in [
            vec!["lock", "acquire", "other", "--ttl", bad],
            vec!["lock", "renew", "ttl", "--lease", id, "--ttl", bad],
            vec!["lock", "run", "other", "--ttl", bad, "--", "true"],
        ] {
            let run = env.run(&args).expect(2);
            assert!(
                run.stderr.contains(&format!(
                    "invalid value '{bad}' for '--ttl <DURATION>': must be whole seconds, 1s to 1h"
                )),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
}
