//! Config writes beyond the seed: who put each version, compare-and-set puts
//! (`put_config_if`), rollbacks, diffs.

use octostore_core::json_patch;
use octostore_core::{Api, ConfigKey, Description, Error, Login, Resource, Settings};
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

fn a_rollback_puts_a_kept_version_again_as_the_next(open: Open) {
    let h = open(Settings {
        config_history: 3,
        ..Settings::default()
    });
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let k = key("app");
    let described = Some(Description::new("first").unwrap());
    alice.put_config(&k, json!({"n": 1}), described).unwrap();
    alice.put_config(&k, json!({"n": 2}), None).unwrap();
    alice
        .put_config(&k, json!({"n": 3}), Some(Description::new("").unwrap()))
        .unwrap();
    h.advance_secs(7);
    let back = alice.rollback_config(&k, 1, Some(3)).unwrap();
    assert_eq!(back.version, 4);
    assert_eq!(back.value, json!({"n": 1}));
    assert_eq!(back.description.as_deref(), Some("first"));
    assert_eq!(
        (back.updated_at, back.updated_by.clone()),
        (h.store.now(), login("alice"))
    );
    assert_eq!(alice.get_config(&k, None).unwrap(), back);
    // Back to a version without a description clears it.
    let back = alice.rollback_config(&k, 3, None).unwrap();
    assert_eq!((back.version, back.description), (5, None));
    let values: Vec<_> = (alice.config_history(&k).unwrap().into_iter())
        .map(|v| (v.version, v.value))
        .collect();
    assert_eq!(
        values,
        [
            (3, json!({"n": 3})),
            (4, json!({"n": 1})),
            (5, json!({"n": 3}))
        ],
        "the history keeps the rollbacks, pruned to the cap"
    );
    // Pruned, future, zero: not found; nothing written.
    for version in [1, 2, 6, 0, u64::MAX] {
        let got = alice.rollback_config(&k, version, None);
        assert!(
            matches!(
                &got,
                Err(Error::NotFound {
                    what: Resource::ConfigVersion,
                    ..
                })
            ),
            "version {version}: {got:?}"
        );
    }
    let stale = alice.rollback_config(&k, 4, Some(4));
    assert!(
        matches!(stale, Err(Error::VersionMismatch { current: 5, .. })),
        "{stale:?}"
    );
    assert_eq!(alice.get_config(&k, None).unwrap().version, 5);
    let theirs = bob.rollback_config(&k, 4, None);
    assert!(
        matches!(
            &theirs,
            Err(Error::NotFound {
                what: Resource::Config,
                ..
            })
        ),
        "{theirs:?}"
    );
}

fn a_diff_is_the_json_patch_between_two_kept_versions(open: Open) {
    let h = open(Settings {
        config_history: 3,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let k = key("db");
    let first = json!({"pool": 5, "hosts": ["a", "b"], "tls": true});
    let second = json!({"pool": 8, "hosts": ["a"], "timeout": {"ms": 50}, "tls": true});
    alice.put_config(&k, json!("pruned"), None).unwrap();
    alice.put_config(&k, first.clone(), None).unwrap();
    alice.put_config(&k, second.clone(), None).unwrap();
    alice.put_config(&k, json!(null), None).unwrap();
    for (from, to, a, b) in [
        (2, 3, &first, &second),
        (3, 2, &second, &first),
        (2, 2, &first, &first),
    ] {
        let diff = alice.diff_config(&k, from, to).unwrap();
        assert_eq!(
            (diff.key.clone(), diff.from, diff.to),
            (k.clone(), from, to)
        );
        let mut patched = a.clone();
        json_patch::patch(&mut patched, &diff.patch).unwrap();
        assert_eq!(&patched, b, "{from} -> {to}: {:?}", diff.patch);
    }
    assert!(alice.diff_config(&k, 2, 2).unwrap().patch.0.is_empty());
    let whole = serde_json::to_value(alice.diff_config(&k, 3, 4).unwrap().patch).unwrap();
    assert_eq!(whole, json!([{"op": "replace", "path": "", "value": null}]));
    for (from, to) in [(1, 2), (2, 5), (0, 2), (u64::MAX, 3)] {
        let got = alice.diff_config(&k, from, to);
        assert!(
            matches!(
                &got,
                Err(Error::NotFound {
                    what: Resource::ConfigVersion,
                    ..
                })
            ),
            "{from} -> {to}: {got:?}"
        );
    }
    let theirs = h.user("bob").diff_config(&k, 2, 3);
    assert!(
        matches!(
            &theirs,
            Err(Error::NotFound {
                what: Resource::Config,
                ..
            })
        ),
        "{theirs:?}"
    );
}

each_backend!(
    a_diff_is_the_json_patch_between_two_kept_versions,
    a_rollback_puts_a_kept_version_again_as_the_next,
    every_version_records_who_put_it_and_when,
    a_put_expecting_the_latest_version_writes_the_next,
    a_put_expecting_another_version_writes_nothing,
    a_deleted_key_is_absent_to_a_compare_and_set,
);
