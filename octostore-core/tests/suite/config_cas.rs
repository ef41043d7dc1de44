//! Config versions beyond the seed: who put each one, and compare-and-set puts
//! (`put_config_if`).

use octostore_core::{Api, ConfigKey, Error, Login, Settings};
use serde_json::json;

use crate::support::{each_backend, Open};

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn login(s: &str) -> Option<Login> {
    Some(Login::parse(s).unwrap())
}

fn every_version_records_who_put_it_and_when(open: Open) {
    let h = open(Settings::default());
    let (alice, bob) = (h.user("alice"), h.user("Bob"));
    let k = key("app.size");
    let first = alice.put_config(&k, json!(1), None).unwrap();
    assert_eq!(
        (first.updated_by, first.updated_at),
        (login("alice"), h.store.now())
    );
    h.advance_secs(5);
    alice.put_config(&k, json!(2), None).unwrap();
    bob.put_config(&k, json!("bob's"), None).unwrap();
    let got = alice.get_config(&k, None).unwrap();
    assert_eq!(
        (got.updated_by, got.updated_at),
        (login("alice"), h.store.now())
    );
    assert_eq!(
        alice.get_config(&k, Some(1)).unwrap().updated_by,
        login("alice")
    );
    let history = alice.config_history(&k).unwrap();
    let stamps: Vec<_> = history
        .iter()
        .map(|v| (v.created_by.clone(), v.created_at))
        .collect();
    let start = h.store.now() - chrono::Duration::seconds(5);
    assert_eq!(
        stamps,
        [(login("alice"), start), (login("alice"), h.store.now())]
    );
    let theirs = bob.config_history(&k).unwrap();
    assert_eq!(
        theirs[0].created_by,
        login("Bob"),
        "as the login is spelled"
    );
}

fn a_put_expecting_the_latest_version_writes_the_next(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("cas");
    let v1 = alice.put_config_if(&k, json!(1), None, Some(0)).unwrap();
    assert_eq!(v1.version, 1);
    let v2 = alice.put_config_if(&k, json!(2), None, Some(1)).unwrap();
    assert_eq!((v2.version, v2.value), (2, json!(2)));
    let unconditional = alice.put_config_if(&k, json!(3), None, None).unwrap();
    assert_eq!(unconditional.version, 3);
}

fn a_put_expecting_another_version_writes_nothing(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("cas");
    let absent = alice.put_config_if(&k, json!(1), None, Some(1));
    assert!(
        matches!(&absent, Err(Error::VersionMismatch { expected: 1, current: 0, key }) if *key == k),
        "{absent:?}"
    );
    assert!(matches!(
        alice.get_config(&k, None),
        Err(Error::NotFound { .. })
    ));
    assert!(alice.configs().unwrap().is_empty(), "no key was made");

    alice.put_config(&k, json!("kept"), None).unwrap();
    alice.put_config(&k, json!("kept 2"), None).unwrap();
    for (expected, current) in [(0, 2), (1, 2), (3, 2), (u64::MAX, 2)] {
        let got = alice.put_config_if(&k, json!("lost"), None, Some(expected));
        assert!(
            matches!(got, Err(Error::VersionMismatch { expected: e, current: c, .. }) if (e, c) == (expected, current)),
            "expecting {expected}"
        );
    }
    let history = alice.config_history(&k).unwrap();
    assert_eq!(history.len(), 2, "nothing written");
    assert_eq!(alice.get_config(&k, None).unwrap().value, json!("kept 2"));
    // Another user's key of the same name is not this one.
    let bob = h.user("bob");
    assert_eq!(
        bob.put_config_if(&k, json!(1), None, Some(0))
            .unwrap()
            .version,
        1
    );
}

fn a_deleted_key_is_absent_to_a_compare_and_set(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("cas");
    alice.put_config(&k, json!(1), None).unwrap();
    alice.delete_config(&k).unwrap();
    let got = alice.put_config_if(&k, json!(2), None, Some(1));
    assert!(
        matches!(got, Err(Error::VersionMismatch { current: 0, .. })),
        "{got:?}"
    );
    assert_eq!(
        alice
            .put_config_if(&k, json!(2), None, Some(0))
            .unwrap()
            .version,
        1
    );
}

each_backend!(
    every_version_records_who_put_it_and_when,
    a_put_expecting_the_latest_version_writes_the_next,
    a_put_expecting_another_version_writes_nothing,
    a_deleted_key_is_absent_to_a_compare_and_set,
);
