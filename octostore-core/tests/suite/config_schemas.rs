//! A config key's JSON Schema: every put and rollback checked against it (the failure named
//! by the value's JSON pointer and the schema's rule), a schema the latest value breaks
//! refused unless forced, bounds; and a pinned sample of the official JSON Schema Test
//! Suite's draft 2020-12 cases, run through puts.

use std::path::Path;

use octostore_core::{Api, ConfigKey, Error, Quotas, Resource, Settings};
use serde_json::{json, Value};

use crate::support::{each_backend, Open};

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn server_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "host": { "type": "string", "minLength": 1 },
            "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
            "tags": { "type": "array", "items": { "type": "string" } }
        },
        "required": ["host", "port"],
        "additionalProperties": false
    })
}

#[track_caller]
fn violation<T: std::fmt::Debug>(got: Result<T, Error>, at: &str, rule: &str) {
    match got {
        Err(Error::SchemaViolation {
            pointer, rule: r, ..
        }) if pointer == at && r == rule => {}
        other => panic!("expected a violation at {at:?} of {rule:?}, got {other:?}"),
    }
}

fn puts_are_checked_against_the_schema(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("server");
    let set = alice.set_config_schema(&k, server_schema(), false).unwrap();
    assert_eq!(set.schema, server_schema());
    assert_eq!(set.updated_at, h.store.now());
    assert_eq!(set.updated_by.as_ref().map(|l| l.as_str()), Some("alice"));
    assert_eq!(alice.config_schema(&k).unwrap(), set);
    let good = json!({ "host": "db", "port": 5432 });
    assert_eq!(alice.put_config(&k, good.clone(), None).unwrap().version, 1);
    violation(
        alice.put_config(&k, json!({ "host": "db", "port": 70000 }), None),
        "/port",
        "/properties/port/maximum",
    );
    violation(
        alice.put_config(
            &k,
            json!({ "host": "db", "port": 1, "tags": ["a", 2] }),
            None,
        ),
        "/tags/1",
        "/properties/tags/items/type",
    );
    violation(
        alice.put_config(&k, json!({ "host": "db" }), None),
        "",
        "/required",
    );
    violation(alice.put_config(&k, json!("db:5432"), None), "", "/type");
    assert_eq!(
        alice.config_history(&k).unwrap().len(),
        1,
        "nothing written"
    );
    // Another user's key of the same name is not checked.
    h.user("bob")
        .put_config(&k, json!("anything"), None)
        .unwrap();
    // Without the schema, anything goes again.
    alice.delete_config_schema(&k).unwrap();
    let missing = alice.config_schema(&k);
    assert!(
        matches!(
            missing,
            Err(Error::NotFound {
                what: Resource::ConfigSchema,
                ..
            })
        ),
        "{missing:?}"
    );
    assert!(matches!(
        alice.delete_config_schema(&k),
        Err(Error::NotFound { .. })
    ));
    alice.put_config(&k, json!("db:5432"), None).unwrap();
}

fn a_schema_the_latest_value_breaks_is_refused_unless_forced(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let k = key("server");
    alice
        .put_config(&k, json!({ "host": "db", "port": 0 }), None)
        .unwrap();
    violation(
        alice.set_config_schema(&k, server_schema(), false),
        "/port",
        "/properties/port/minimum",
    );
    assert!(alice.config_schema(&k).is_err(), "not set");
    alice.set_config_schema(&k, server_schema(), true).unwrap();
    // A rollback is a put: to a version the schema refuses, it is refused.
    alice
        .put_config(&k, json!({ "host": "db", "port": 1 }), None)
        .unwrap();
    violation(
        alice.rollback_config(&k, 1, None),
        "/port",
        "/properties/port/minimum",
    );
    assert_eq!(alice.get_config(&k, None).unwrap().version, 2);
    // A key may have a schema before its first value.
    let fresh = key("fresh");
    alice
        .set_config_schema(&fresh, json!({ "type": "boolean" }), false)
        .unwrap();
    violation(alice.put_config(&fresh, json!(1), None), "", "/type");
    alice.put_config(&fresh, json!(true), None).unwrap();
}

fn schemas_are_checked_and_bounded(open: Open) {
    let h = open(Settings {
        config_schema_max_bytes: 100,
        quotas: Quotas {
            configs: 2,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let alice = h.user("alice");
    for bad in [json!({ "type": 5 }), json!({ "minimum": "one" }), json!([])] {
        let got = alice.set_config_schema(&key("k"), bad.clone(), false);
        assert!(
            matches!(
                &got,
                Err(Error::Invalid {
                    field: "schema",
                    ..
                })
            ),
            "{bad}: {got:?}"
        );
    }
    // Nothing outside the schema is fetched.
    let remote = json!({ "$ref": "https://example.com/schema.json" });
    let got = alice.set_config_schema(&key("k"), remote, false);
    assert!(
        matches!(
            &got,
            Err(Error::Invalid {
                field: "schema",
                ..
            })
        ),
        "{got:?}"
    );
    let big = json!({ "description": "x".repeat(100) });
    let got = alice.set_config_schema(&key("k"), big, false);
    assert!(
        matches!(
            got,
            Err(Error::TooLarge {
                field: "schema",
                limit: 100,
                ..
            })
        ),
        "{got:?}"
    );
    alice
        .set_config_schema(&key("a"), json!(true), false)
        .unwrap();
    alice
        .set_config_schema(&key("b"), json!(true), false)
        .unwrap();
    alice
        .set_config_schema(&key("b"), json!(false), true)
        .unwrap();
    let got = alice.set_config_schema(&key("c"), json!(true), false);
    assert!(
        matches!(
            got,
            Err(Error::QuotaExceeded {
                what: Resource::ConfigSchema,
                limit: 2
            })
        ),
        "{got:?}"
    );
    violation(alice.put_config(&key("b"), json!(1), None), "", "");
}

/// The sample's groups whose schema the store refuses: not valid against the draft 2020-12
/// meta-schema (the suite's `items` given an array, as before 2020-12), which the suite lets
/// an implementation accept, and the store checks every schema against.
const REFUSED: [&str; 1] = ["prefixItems should properly handle null data"];

/// Every case of the pinned sample: the put succeeds exactly when the case is valid.
fn the_pinned_json_schema_test_suite_sample_passes(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/json-schema-test-suite/draft2020-12");
    let (mut cases, mut refused) = (0, 0);
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let groups: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (g, group) in groups.iter().enumerate() {
            let k = key(&format!("case-{g}"));
            match alice.set_config_schema(&k, group["schema"].clone(), true) {
                Ok(_) => {}
                Err(Error::Invalid {
                    field: "schema", ..
                }) if REFUSED.contains(&group["description"].as_str().unwrap()) => {
                    refused += 1;
                    continue;
                }
                Err(e) => panic!("{}: {}: {e:?}", path.display(), group["description"]),
            }
            for test in group["tests"].as_array().unwrap() {
                let got = alice.put_config(&k, test["data"].clone(), None);
                let valid = test["valid"].as_bool().unwrap();
                assert_eq!(
                    got.is_ok(),
                    valid,
                    "{}: {} / {}: {got:?}",
                    path.display(),
                    group["description"],
                    test["description"]
                );
                if !valid {
                    assert!(matches!(got, Err(Error::SchemaViolation { .. })), "{got:?}");
                }
                cases += 1;
            }
            alice.purge_config(&k).ok();
        }
    }
    assert_eq!(
        (cases, refused),
        (114, REFUSED.len()),
        "the sample's cases, every one run"
    );
}

each_backend!(
    puts_are_checked_against_the_schema,
    a_schema_the_latest_value_breaks_is_refused_unless_forced,
    schemas_are_checked_and_bounded,
    the_pinned_json_schema_test_suite_sample_passes,
);
