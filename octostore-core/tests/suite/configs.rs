//! The config store: versions, history and its pages, pruning, descriptions, size cap, the
//! per-user byte cap, delete, list.

use octostore_core::{Api, ConfigKey, Description, Error, HistoryPage, Quotas, Resource, Settings};
use serde_json::json;

use crate::support::{each_backend, Open};

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn desc(s: &str) -> Option<Description> {
    Some(Description::new(s).unwrap())
}

fn versions_count_up_and_each_is_kept(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("db.url");
    let v1 = alice
        .put_config(&k, json!("postgres://a"), desc("primary"))
        .unwrap();
    assert_eq!((v1.version, v1.created_at), (1, h.store.now()));
    assert_eq!(v1.updated_at, v1.created_at);
    h.advance_secs(10);
    let v2 = alice
        .put_config(&k, json!({"url": "postgres://b", "pool": 5}), None)
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.created_at, v1.created_at,
        "created_at is the key's creation"
    );
    assert_eq!(v2.updated_at, h.store.now());
    assert_eq!(v2.description.as_deref(), Some("primary"), "carried over");

    let latest = alice.get_config(&k, None).unwrap();
    assert_eq!(latest, v2);
    let first = alice.get_config(&k, Some(1)).unwrap();
    assert_eq!(first.value, json!("postgres://a"));
    assert_eq!(first.updated_at, v1.updated_at);

    let history = alice.config_history(&k).unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(history[1].value, v2.value);
    assert_eq!(history[0].created_at, v1.updated_at);
}

fn missing_versions_are_not_found(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("k");
    assert!(matches!(
        alice.get_config(&k, None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        alice.config_history(&k),
        Err(Error::NotFound { .. })
    ));
    alice.put_config(&k, json!(1), None).unwrap();
    for v in [0, -1, 2, i64::MAX, i64::MIN] {
        assert!(
            matches!(alice.get_config(&k, Some(v)), Err(Error::NotFound { .. })),
            "version {v}"
        );
    }
}

fn history_is_pruned_to_the_cap(open: Open) {
    let h = open(Settings {
        config_history: 3,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let k = key("pruned");
    for i in 1..=5 {
        alice.put_config(&k, json!(i), None).unwrap();
    }
    let kept: Vec<_> = alice
        .config_history(&k)
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [3, 4, 5]);
    assert!(matches!(
        alice.get_config(&k, Some(2)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(alice.get_config(&k, Some(3)).unwrap().value, json!(3));
}

fn an_empty_description_clears_it(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("d");
    alice.put_config(&k, json!(1), desc("first")).unwrap();
    let cleared = alice.put_config(&k, json!(2), desc("")).unwrap();
    assert_eq!(cleared.description, None);
    let still = alice.put_config(&k, json!(3), None).unwrap();
    assert_eq!(still.description, None);
    let history = alice.config_history(&k).unwrap();
    assert_eq!(history[0].description.as_deref(), Some("first"));
}

/// Numbers come back bit for bit, however a backend keeps them (SQLite and PostgreSQL as
/// JSON text): a float that reads back as its neighbour was a fuzzing finding.
fn values_come_back_exactly(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("numbers");
    let value = json!([
        -1.1724272524452395e-117,
        0.1,
        1e308,
        5e-324,
        u64::MAX,
        i64::MIN,
        {"nested": [2.2250738585072014e-308]}
    ]);
    alice.put_config(&k, value.clone(), None).unwrap();
    assert_eq!(alice.get_config(&k, None).unwrap().value, value);
    assert_eq!(alice.config_history(&k).unwrap()[0].value, value);
}

fn values_over_the_cap_are_refused_and_nothing_changes(open: Open) {
    let h = open(Settings {
        config_value_max_bytes: 16,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let k = key("big");
    alice.put_config(&k, json!("0123456789abcd"), None).unwrap(); // 16 bytes with quotes
    match alice.put_config(&k, json!("0123456789abcde"), None) {
        Err(Error::TooLarge {
            size: 17,
            limit: 16,
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(alice.get_config(&k, None).unwrap().version, 1);
}

fn delete_removes_history_and_versions_restart(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("restart");
    alice.put_config(&k, json!(1), None).unwrap();
    alice.put_config(&k, json!(2), None).unwrap();
    alice.delete_config(&k).unwrap();
    assert!(matches!(
        alice.get_config(&k, None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        alice.config_history(&k),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        alice.delete_config(&k),
        Err(Error::NotFound { .. })
    ));
    let again = alice.put_config(&k, json!(3), None).unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(alice.config_history(&k).unwrap().len(), 1);
}

fn configs_are_private_and_listed_by_key(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    alice
        .put_config(&key("b.key"), json!(true), desc("b"))
        .unwrap();
    alice.put_config(&key("a.key"), json!(null), None).unwrap();
    h.advance_secs(1);
    let a2 = alice
        .put_config(&key("a.key"), json!([1, 2]), None)
        .unwrap();
    assert!(matches!(
        bob.get_config(&key("a.key"), None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        bob.delete_config(&key("a.key")),
        Err(Error::NotFound { .. })
    ));
    assert!(bob.configs().unwrap().is_empty());
    let listed = alice.configs().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].key, key("a.key"));
    assert_eq!(listed[0].version, 2);
    assert_eq!(listed[0].updated_at, a2.updated_at);
    assert_eq!(listed[0].created_at, a2.created_at);
    assert_eq!(listed[1].description.as_deref(), Some("b"));
}

fn the_config_quota_counts_keys(open: Open) {
    let h = open(Settings {
        quotas: Quotas {
            configs: 1,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let alice = h.user("alice");
    alice.put_config(&key("one"), json!(1), None).unwrap();
    alice.put_config(&key("one"), json!(2), None).unwrap();
    assert!(matches!(
        alice.put_config(&key("two"), json!(1), None),
        Err(Error::QuotaExceeded { limit: 1, .. })
    ));
}

/// The versions of every page from the first, following `next`, and each page's size.
fn paged(alice: &impl Api, k: &ConfigKey, limit: u64) -> (Vec<u64>, Vec<usize>) {
    let (mut versions, mut sizes) = (Vec::new(), Vec::new());
    let mut page = Some(HistoryPage::new(None, Some(limit)).unwrap());
    while let Some(next) = page {
        let read = alice.config_history_page(k, next).unwrap();
        sizes.push(read.versions.len());
        versions.extend(read.versions.iter().map(|v| v.version));
        page = read.next;
    }
    (versions, sizes)
}

fn history_pages_cover_the_kept_versions_once_in_order(open: Open) {
    let h = open(Settings {
        config_history: 7,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let k = key("paged");
    for i in 1..=10 {
        alice.put_config(&k, json!(i), None).unwrap();
    }
    // Versions 4 to 10 are kept.
    assert_eq!(paged(&alice, &k, 3), ((4..=10).collect(), vec![3, 3, 1]));
    assert_eq!(paged(&alice, &k, 7), ((4..=10).collect(), vec![7]));
    assert_eq!(paged(&alice, &k, 100), ((4..=10).collect(), vec![7]));
    let page = alice
        .config_history_page(&k, HistoryPage::new(Some(5), Some(2)).unwrap())
        .unwrap();
    assert_eq!(
        page.versions
            .iter()
            .map(|v| v.value.clone())
            .collect::<Vec<_>>(),
        [json!(6), json!(7)]
    );
    assert_eq!(page.next, Some(HistoryPage::new(Some(7), Some(2)).unwrap()));
    for after in [10, i64::MAX as u64] {
        let past_the_end = alice
            .config_history_page(&k, HistoryPage::new(Some(after), None).unwrap())
            .unwrap();
        assert_eq!((past_the_end.versions.len(), past_the_end.next), (0, None));
    }
    assert_eq!(alice.config_history(&k).unwrap().len(), 7);
    assert!(matches!(
        alice.config_history_page(&key("nope"), HistoryPage::default()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_page_holds_at_most_its_limit() {
    for bad in [0, HistoryPage::MAX_LIMIT as u64 + 1, u64::MAX] {
        assert!(matches!(
            HistoryPage::new(None, Some(bad)),
            Err(Error::Invalid { field: "limit", .. })
        ));
    }
    assert_eq!(HistoryPage::default().limit(), HistoryPage::MAX_LIMIT);
    // Versions are stored as signed 64-bit integers: past the largest, no version can be.
    for bad in [i64::MAX as u64 + 1, u64::MAX] {
        assert!(matches!(
            HistoryPage::new(Some(bad), None),
            Err(Error::Invalid { field: "after", .. })
        ));
    }
}

/// A value of `n` bytes as compact JSON: a string of `n - 2` characters and its quotes.
fn value_of(n: usize) -> serde_json::Value {
    json!("x".repeat(n - 2))
}

fn a_put_past_the_byte_cap_is_refused_and_nothing_is_lost(open: Open) {
    let h = open(Settings {
        config_bytes_per_user: 1_000,
        ..Settings::default()
    });
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    alice.put_config(&key("a"), value_of(400), None).unwrap();
    alice
        .put_config(&key("a"), value_of(300), desc("0123456789"))
        .unwrap(); // 310
    alice.put_config(&key("b"), value_of(290), None).unwrap(); // 1 000 in all
    match alice.put_config(&key("b"), value_of(2), None) {
        Err(Error::QuotaExceeded {
            what: Resource::ConfigBytes,
            limit: 1_000,
        }) => {}
        other => panic!("expected the byte quota, got {other:?}"),
    }
    assert!(alice.put_config(&key("c"), value_of(2), None).is_err());
    assert_eq!(alice.config_history(&key("a")).unwrap().len(), 2);
    assert_eq!(alice.get_config(&key("b"), None).unwrap().version, 1);
    assert!(matches!(
        alice.get_config(&key("c"), None),
        Err(Error::NotFound { .. })
    ));
    // The cap is per user.
    bob.put_config(&key("a"), value_of(1_000), None).unwrap();

    // Deleting a key frees all its versions' bytes.
    alice.delete_config(&key("a")).unwrap();
    alice.put_config(&key("c"), value_of(710), None).unwrap();
    assert!(alice.put_config(&key("c"), value_of(2), None).is_err());
}

fn pruning_frees_the_bytes_of_the_pruned_versions(open: Open) {
    let h = open(Settings {
        config_history: 2,
        config_bytes_per_user: 1_000,
        ..Settings::default()
    });
    let alice = h.user("alice");
    let k = key("pruned");
    alice.put_config(&k, value_of(500), None).unwrap();
    alice.put_config(&k, value_of(500), None).unwrap();
    // Each put from here prunes a version of 500 bytes as it adds one.
    for _ in 0..5 {
        alice.put_config(&k, value_of(500), None).unwrap();
    }
    alice.put_config(&k, value_of(400), None).unwrap();
    alice.put_config(&k, value_of(600), None).unwrap(); // prunes the last 500
    assert!(alice.put_config(&k, value_of(401), None).is_err()); // 600 + 401
    alice.put_config(&k, value_of(400), None).unwrap();
    let kept: Vec<_> = alice.config_history(&k).unwrap();
    assert_eq!(kept.iter().map(|v| v.version).collect::<Vec<_>>(), [9, 10]);
}

each_backend!(
    history_pages_cover_the_kept_versions_once_in_order,
    a_put_past_the_byte_cap_is_refused_and_nothing_is_lost,
    pruning_frees_the_bytes_of_the_pruned_versions,
    versions_count_up_and_each_is_kept,
    missing_versions_are_not_found,
    history_is_pruned_to_the_cap,
    an_empty_description_clears_it,
    values_come_back_exactly,
    values_over_the_cap_are_refused_and_nothing_changes,
    delete_removes_history_and_versions_restart,
    configs_are_private_and_listed_by_key,
    the_config_quota_counts_keys,
);
