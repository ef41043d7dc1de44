//! Soft deletes of config keys: a deleted key reads as absent everywhere, an undelete within
//! the retention brings it back, a purge (or a put, or the sweep past the retention) erases
//! it; its bytes count until then, its name does not.

use std::time::Duration;

use octostore_core::{Api, ConfigKey, Error, EventFilter, Quotas, Resource, Session, Settings};
use serde_json::json;

use crate::support::{each_backend, Open};

const DAY: i64 = 24 * 60 * 60;

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn retained(days: u64) -> Settings {
    Settings {
        config_retention: Duration::from_secs(days * DAY as u64),
        ..Settings::default()
    }
}

fn not_found<T: std::fmt::Debug>(got: Result<T, Error>, what: Resource) {
    assert!(
        matches!(&got, Err(Error::NotFound { what: w, .. }) if *w == what),
        "expected {what:?} not found, got {got:?}"
    );
}

/// The key reads as absent through every read and write that needs it to exist.
fn absent(alice: &Session, k: &ConfigKey) {
    not_found(alice.get_config(k, None), Resource::Config);
    not_found(alice.get_config(k, Some(1)), Resource::Config);
    not_found(alice.config_history(k), Resource::Config);
    not_found(alice.diff_config(k, 1, 1), Resource::Config);
    not_found(alice.rollback_config(k, 1, None), Resource::Config);
    not_found(alice.delete_config(k), Resource::Config);
    assert!(alice.configs().unwrap().iter().all(|c| c.key != *k));
}

fn a_deleted_key_reads_as_absent_until_undeleted(open: Open) {
    let h = open(retained(7));
    let alice = h.user("alice");
    let k = key("app");
    alice.put_config(&k, json!(1), None).unwrap();
    let latest = alice.put_config(&k, json!(2), None).unwrap();
    let seen = alice.events(0, &EventFilter::default(), 100).unwrap().next;
    h.advance_secs(60);
    alice.delete_config(&k).unwrap();
    absent(&alice, &k);
    let deleted = alice.deleted_configs().unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!((deleted[0].key.clone(), deleted[0].version), (k.clone(), 2));
    assert_eq!(deleted[0].deleted_at, Some(h.store.now()));
    assert!(h.user("bob").deleted_configs().unwrap().is_empty());
    not_found(h.user("bob").undelete_config(&k), Resource::DeletedConfig);

    h.advance_secs(7 * DAY - 1);
    let back = alice.undelete_config(&k).unwrap();
    assert_eq!(back, latest, "as it was");
    let history = alice.config_history(&k).unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(alice.deleted_configs().unwrap().is_empty());
    let actions: Vec<_> = (alice
        .events(seen, &EventFilter::default(), 100)
        .unwrap()
        .events)
        .iter()
        .map(|e| e.change.action())
        .collect();
    assert_eq!(
        actions,
        ["deleted", "put"],
        "an undelete is a change like a put"
    );
    let again = alice.undelete_config(&k);
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
}

fn a_put_after_a_delete_starts_again_and_purges_what_was_kept(open: Open) {
    let h = open(retained(7));
    let alice = h.user("alice");
    let k = key("app");
    alice.put_config(&k, json!(1), None).unwrap();
    alice.put_config(&k, json!(2), None).unwrap();
    alice.delete_config(&k).unwrap();
    let fresh = alice
        .put_config_if(&k, json!("new"), None, Some(0))
        .unwrap();
    assert_eq!(fresh.version, 1);
    assert_eq!(fresh.created_at, h.store.now());
    let history = alice.config_history(&k).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].value, json!("new"));
    assert!(alice.deleted_configs().unwrap().is_empty());
    assert!(matches!(alice.undelete_config(&k), Err(Error::Conflict(_))));
}

fn past_the_retention_a_deleted_key_is_gone_and_the_sweep_forgets_it(open: Open) {
    let h = open(Settings {
        config_bytes_per_user: 100,
        ..retained(1)
    });
    let alice = h.user("alice");
    let k = key("app");
    alice.put_config(&k, json!("x".repeat(60)), None).unwrap();
    alice.delete_config(&k).unwrap();
    h.advance_secs(DAY);
    not_found(alice.undelete_config(&k), Resource::DeletedConfig);
    assert!(alice.deleted_configs().unwrap().is_empty());
    assert_eq!(h.store.sweep().unwrap().configs, 1);
    assert_eq!(h.store.sweep().unwrap().configs, 0);
    // Its bytes are free: 62 more would not fit beside them.
    alice
        .put_config(&key("other"), json!("y".repeat(60)), None)
        .unwrap();
    not_found(alice.undelete_config(&k), Resource::DeletedConfig);
}

fn a_purge_erases_a_key_at_once_live_or_deleted(open: Open) {
    let h = open(retained(7));
    let alice = h.user("alice");
    let (a, b) = (key("a"), key("b"));
    alice.put_config(&a, json!(1), None).unwrap();
    alice.put_config(&b, json!(1), None).unwrap();
    alice.purge_config(&a).unwrap();
    absent(&alice, &a);
    not_found(alice.undelete_config(&a), Resource::DeletedConfig);
    alice.delete_config(&b).unwrap();
    alice.purge_config(&b).unwrap();
    not_found(alice.undelete_config(&b), Resource::DeletedConfig);
    not_found(alice.purge_config(&b), Resource::Config);
    assert!(alice.deleted_configs().unwrap().is_empty());
}

fn with_no_retention_a_delete_erases_at_once(open: Open) {
    let h = open(retained(0));
    let alice = h.user("alice");
    let k = key("app");
    alice.put_config(&k, json!(1), None).unwrap();
    alice.delete_config(&k).unwrap();
    absent(&alice, &k);
    not_found(alice.undelete_config(&k), Resource::DeletedConfig);
    assert!(alice.deleted_configs().unwrap().is_empty());
}

fn deleted_keys_count_their_bytes_until_a_put_needs_the_room(open: Open) {
    let h = open(Settings {
        config_bytes_per_user: 200,
        ..retained(7)
    });
    let alice = h.user("alice");
    let value = |n: usize| json!("x".repeat(n - 2));
    alice.put_config(&key("old"), value(60), None).unwrap();
    h.advance_secs(1);
    alice.put_config(&key("newer"), value(60), None).unwrap();
    alice.put_config(&key("live"), value(60), None).unwrap();
    alice.delete_config(&key("old")).unwrap();
    h.advance_secs(1);
    alice.delete_config(&key("newer")).unwrap();
    // 180 kept; 80 more needs 60 freed: the oldest deleted goes, the newer stays.
    alice.put_config(&key("live"), value(80), None).unwrap();
    not_found(alice.undelete_config(&key("old")), Resource::DeletedConfig);
    assert_eq!(alice.undelete_config(&key("newer")).unwrap().version, 1);
    // Nothing deleted left to purge: refused, and nothing lost.
    let refused = alice.put_config(&key("more"), value(60), None);
    assert!(
        matches!(
            refused,
            Err(Error::QuotaExceeded {
                what: Resource::ConfigBytes,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(alice.config_history(&key("live")).unwrap().len(), 2);
}

fn deleted_keys_leave_their_names_free_but_an_undelete_needs_room(open: Open) {
    let h = open(Settings {
        quotas: Quotas {
            configs: 1,
            ..Quotas::default()
        },
        ..retained(7)
    });
    let alice = h.user("alice");
    alice.put_config(&key("a"), json!(1), None).unwrap();
    alice.delete_config(&key("a")).unwrap();
    alice.put_config(&key("b"), json!(1), None).unwrap();
    let refused = alice.undelete_config(&key("a"));
    assert!(
        matches!(
            refused,
            Err(Error::QuotaExceeded {
                what: Resource::Config,
                limit: 1
            })
        ),
        "{refused:?}"
    );
    alice.delete_config(&key("b")).unwrap();
    assert_eq!(alice.undelete_config(&key("a")).unwrap().value, json!(1));
}

each_backend!(
    a_deleted_key_reads_as_absent_until_undeleted,
    a_put_after_a_delete_starts_again_and_purges_what_was_kept,
    past_the_retention_a_deleted_key_is_gone_and_the_sweep_forgets_it,
    a_purge_erases_a_key_at_once_live_or_deleted,
    with_no_retention_a_delete_erases_at_once,
    deleted_keys_count_their_bytes_until_a_put_needs_the_room,
    deleted_keys_leave_their_names_free_but_an_undelete_needs_room,
);
