//! `/config` writes beyond the seed: who put each version, `ETag`, compare-and-set puts by
//! `If-Match`, `If-None-Match` and the body's `if_version`, rollbacks; and diffs.

use serde_json::json;

use super::Api;

#[test]
fn versions_name_who_put_them_and_answer_their_etag() {
    let api = Api::start();
    let alice = api.user("alice");
    let put = alice.put_config("k", json!({ "value": 1 }));
    assert_eq!(put.header("etag"), Some("\"1\""));
    assert_eq!(put.ok()["updated_by"], "alice");
    alice.put_config("k", json!({ "value": 2 })).ok();
    let got = alice.get("/config/k");
    assert_eq!(got.header("etag"), Some("\"2\""));
    assert_eq!(got.ok()["updated_by"], "alice");
    assert_eq!(
        alice.get("/config/k?version=1").header("etag"),
        Some("\"1\"")
    );
    let history = alice.get("/config/k/history").ok();
    assert_eq!(history["versions"][0]["created_by"], "alice");
    assert_eq!(history["versions"][1]["created_by"], "alice");
}

#[test]
fn if_match_puts_only_over_the_version_it_names() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("k", json!({ "value": "one" })).ok();
    let stale = alice
        .with_header("If-Match", "\"2\"")
        .put_config("k", json!({ "value": "lost" }))
        .error(412);
    assert_eq!(stale["code"], "version_mismatch");
    assert_eq!(stale["name"], "k");
    assert_eq!(stale["resource"], "config");
    assert_eq!(
        (
            stale["expected_version"].clone(),
            stale["current_version"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(
        alice.get("/config/k").ok()["value"],
        "one",
        "nothing written"
    );
    let fresh = alice
        .with_header("If-Match", "\"1\"")
        .put_config("k", json!({ "value": "two" }));
    assert_eq!(fresh.header("etag"), Some("\"2\""));
    assert_eq!(fresh.ok()["version"], 2);
    // The body's field, for clients that cannot set headers.
    let stale = alice
        .put_config("k", json!({ "value": "lost", "if_version": 1 }))
        .error(412);
    assert_eq!(stale["current_version"], 2);
    alice
        .put_config("k", json!({ "value": "three", "if_version": 2 }))
        .ok();
    assert_eq!(
        alice.get("/config/k/history").ok()["versions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn if_none_match_creates_only() {
    let api = Api::start();
    let alice = api.user("alice");
    let create = alice.with_header("If-None-Match", "*");
    assert_eq!(
        create.put_config("k", json!({ "value": 1 })).ok()["version"],
        1
    );
    let again = create.put_config("k", json!({ "value": 2 })).error(412);
    assert_eq!(
        (
            again["expected_version"].clone(),
            again["current_version"].clone()
        ),
        (json!(0), json!(1))
    );
    let body = alice
        .put_config("k", json!({ "value": 2, "if_version": 0 }))
        .error(412);
    assert_eq!(body["current_version"], 1);
    // Another user's key of the same name is another key.
    let bob = api.user("bob").with_header("If-None-Match", "*");
    bob.put_config("k", json!({ "value": 1 })).ok();
    // A missing key expected at a version.
    let missing = alice
        .with_header("If-Match", "\"1\"")
        .put_config("nope", json!({ "value": 1 }))
        .error(412);
    assert_eq!(missing["current_version"], 0);
    alice.get("/config/nope").error(404);
}

#[test]
fn malformed_preconditions_are_refused_naming_them() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("k", json!({ "value": 1 })).ok();
    for etag in [
        "1",
        "\"\"",
        "\"0\"",
        "\"-1\"",
        "W/\"1\"",
        "*",
        "\"1\", \"2\"",
        "\"99999999999999999999\"",
    ] {
        alice
            .with_header("If-Match", etag)
            .put_config("k", json!({ "value": 2 }))
            .invalid("If-Match");
    }
    for value in ["\"1\"", "**"] {
        alice
            .with_header("If-None-Match", value)
            .put_config("k", json!({ "value": 2 }))
            .invalid("If-None-Match");
    }
    for version in [json!(-1), json!("1"), json!(1.5), json!(null)] {
        alice
            .put_config("k", json!({ "value": 2, "if_version": version }))
            .invalid("if_version");
    }
    // Two that disagree.
    alice
        .with_header("If-Match", "\"1\"")
        .put_config("k", json!({ "value": 2, "if_version": 2 }))
        .invalid("if_version");
    alice
        .with_header("If-Match", "\"1\"")
        .with_header("If-None-Match", "*")
        .put_config("k", json!({ "value": 2 }))
        .invalid("If-None-Match");
    // Two that agree.
    alice
        .with_header("If-Match", "\"1\"")
        .put_config("k", json!({ "value": 2, "if_version": 1 }))
        .ok();
    assert_eq!(
        alice.get("/config/k/history").ok()["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_rollback_puts_a_kept_version_again() {
    let api = Api::start();
    let alice = api.user("alice");
    alice
        .put_config("k", json!({ "value": "good", "description": "known good" }))
        .ok();
    alice.put_config("k", json!({ "value": "bad" })).ok();
    let back = alice.post("/config/k/rollback", &json!({ "version": 1 }));
    assert_eq!(back.header("etag"), Some("\"3\""));
    let back = back.ok();
    assert_eq!(
        (back["version"].clone(), back["value"].clone()),
        (json!(3), json!("good"))
    );
    assert_eq!(back["description"], "known good");
    assert_eq!(alice.get("/config/k").ok(), back);
    let stale = alice
        .with_header("If-Match", "\"2\"")
        .post("/config/k/rollback", &json!({ "version": 2 }))
        .error(412);
    assert_eq!(stale["current_version"], 3);
    alice
        .post(
            "/config/k/rollback",
            &json!({ "version": 2, "if_version": 3 }),
        )
        .ok();
    let missing = alice
        .post("/config/k/rollback", &json!({ "version": 9 }))
        .error(404);
    assert_eq!(
        (missing["resource"].clone(), missing["name"].clone()),
        (json!("config_version"), json!("k@9"))
    );
    alice
        .post("/config/nope/rollback", &json!({ "version": 1 }))
        .error(404);
    alice
        .post("/config/k/rollback", &json!({ "version": 0 }))
        .error(404);
    for version in [json!(-1), json!("1"), json!(null)] {
        alice
            .post("/config/k/rollback", &json!({ "version": version }))
            .invalid("version");
    }
    alice
        .post("/config/k/rollback", &json!({}))
        .invalid("version");
    assert_eq!(
        alice.get("/config/k/history").ok()["versions"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn a_diff_answers_the_json_patch_between_two_versions() {
    let api = Api::start();
    let alice = api.user("alice");
    alice
        .put_config("k", json!({ "value": { "pool": 5, "hosts": ["a"] } }))
        .ok();
    alice
        .put_config("k", json!({ "value": { "pool": 8, "hosts": ["a", "b"] } }))
        .ok();
    let patch = alice.get("/config/k/diff?from=1&to=2").ok();
    let mut ops = patch.as_array().unwrap().clone();
    ops.sort_by_key(|op| op["path"].as_str().unwrap().to_owned());
    assert_eq!(
        ops,
        [
            json!({ "op": "add", "path": "/hosts/1", "value": "b" }),
            json!({ "op": "replace", "path": "/pool", "value": 8 }),
        ]
    );
    assert_eq!(alice.get("/config/k/diff?from=2&to=2").ok(), json!([]));
    for path in [
        "/config/k/diff?from=1&to=3",
        "/config/k/diff?from=0&to=1",
        "/config/nope/diff?from=1&to=1",
    ] {
        alice.get(path).error(404);
    }
    alice.get("/config/k/diff?to=1").invalid("from");
    alice.get("/config/k/diff?from=1").invalid("to");
    alice.get("/config/k/diff?from=-1&to=1").invalid("from");
    alice.get("/config/k/diff?from=1&to=x").invalid("to");
    api.user("bob").get("/config/k/diff?from=1&to=2").error(404);
}

#[test]
fn a_deleted_key_is_absent_until_undeleted_and_a_purge_erases_it() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("k", json!({ "value": 1 })).ok();
    alice.put_config("k", json!({ "value": 2 })).ok();
    assert_eq!(alice.delete("/config/k").ok()["deleted"], true);
    for path in [
        "/config/k",
        "/config/k?version=1",
        "/config/k/history",
        "/config/k/diff?from=1&to=2",
    ] {
        alice.get(path).error(404);
    }
    alice.delete("/config/k").error(404);
    assert_eq!(alice.get("/config").ok()["configs"], json!([]));
    let deleted = alice.get("/config?deleted=true").ok();
    assert_eq!(deleted["configs"][0]["key"], "k");
    assert_eq!(deleted["configs"][0]["version"], 2);
    assert!(deleted["configs"][0]["deleted_at"].is_string(), "{deleted}");
    let back = alice.post("/config/k/undelete", &json!({}));
    assert_eq!(back.header("etag"), Some("\"2\""));
    assert_eq!(back.ok()["value"], 2);
    assert_eq!(
        alice.get("/config/k/history").ok()["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let live = alice.post("/config/k/undelete", &json!({})).error(409);
    assert_eq!(live["code"], "conflict");
    assert_eq!(alice.delete("/config/k?purge=true").ok()["deleted"], true);
    let gone = alice.post("/config/k/undelete", &json!({})).error(404);
    assert_eq!(gone["resource"], "deleted_config");
    alice.delete("/config/k?purge=yes").invalid("purge");
    alice.get("/config?deleted=1").invalid("deleted");
    alice
        .post("/config/bad%20key/undelete", &json!({}))
        .invalid("key");
}

#[test]
fn a_schema_checks_every_put_naming_where_and_which_rule() {
    let api = Api::start();
    let alice = api.user("alice");
    let schema = json!({
        "type": "object",
        "properties": { "port": { "type": "integer", "maximum": 65535 } },
        "required": ["port"]
    });
    let set = alice
        .put("/config/svc/schema", &json!({ "schema": schema }))
        .ok();
    assert_eq!(
        (set["key"].clone(), set["schema"].clone()),
        (json!("svc"), schema.clone())
    );
    assert_eq!(set["updated_by"], "alice");
    assert_eq!(alice.get("/config/svc/schema").ok(), set);
    let refused = alice
        .put_config("svc", json!({ "value": { "port": 70000 } }))
        .error(422);
    assert_eq!(refused["code"], "schema_violation");
    assert_eq!(
        (refused["pointer"].clone(), refused["rule"].clone()),
        (json!("/port"), json!("/properties/port/maximum"))
    );
    assert_eq!(refused["name"], "svc");
    assert!(
        refused["error"].as_str().unwrap().contains("/port"),
        "{refused}"
    );
    alice.get("/config/svc").error(404);
    alice
        .put_config("svc", json!({ "value": { "port": 80 } }))
        .ok();
    // A schema the latest value breaks: refused unless forced.
    let stricter = json!({ "type": "object", "properties": { "port": { "minimum": 1024 } } });
    let refused = alice
        .put("/config/svc/schema", &json!({ "schema": stricter }))
        .error(422);
    assert_eq!(refused["pointer"], "/port");
    alice
        .put(
            "/config/svc/schema",
            &json!({ "schema": stricter, "force": true }),
        )
        .ok();
    alice
        .put("/config/svc/schema", &json!({ "schema": { "type": 5 } }))
        .invalid("schema");
    alice
        .put("/config/svc/schema", &json!({}))
        .invalid("schema");
    alice
        .put(
            "/config/svc/schema",
            &json!({ "schema": true, "force": "yes" }),
        )
        .invalid("force");
    let big = json!({ "schema": { "description": "x".repeat(70 * 1024) } });
    assert_eq!(
        alice.put("/config/svc/schema", &big).error(413)["field"],
        "schema"
    );
    assert_eq!(alice.delete("/config/svc/schema").ok()["deleted"], true);
    alice.delete("/config/svc/schema").error(404);
    let missing = alice.get("/config/svc/schema").error(404);
    assert_eq!(missing["resource"], "config_schema");
    alice.put_config("svc", json!({ "value": "anything" })).ok();
    api.user("bob").get("/config/svc/schema").error(404);
}
