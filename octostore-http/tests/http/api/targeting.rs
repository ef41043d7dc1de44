//! A flag's targeting over HTTP: rules, segments, variants, prerequisites, evaluation for a
//! context; and OFREP, OpenFeature's remote evaluation, with its own error shapes.

use reqwest::Method;
use serde_json::{json, Value};

use super::{Api, Caller};

fn evaluate(caller: &Caller<'_>, flag: &str, context: Value) -> Value {
    caller
        .post(
            &format!("/flags/{flag}/evaluate"),
            &json!({ "context": context }),
        )
        .ok()
}

fn ofrep(caller: &Caller<'_>, flag: &str, context: Value) -> super::Reply {
    caller.post(
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        &json!({ "context": context }),
    )
}

#[test]
fn rules_turn_a_flag_on_for_the_contexts_they_match() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    let flag = alice
        .post(
            "/flags/beta/rules",
            &json!({ "constraints": [
                { "property": "plan", "operator": "IN", "values": ["pro", "team"] },
                { "property": "app.version", "operator": "SEMVER_GT", "value": "2.0.0" },
            ]}),
        )
        .ok();
    assert_eq!(
        flag["rules"][0]["constraints"][1]["values"],
        json!(["2.0.0"])
    );
    assert_eq!(alice.get("/flags/beta/targeting").ok(), flag);

    let on = evaluate(
        &alice,
        "beta",
        json!({ "targetingKey": "u1", "plan": "pro", "app.version": "2.1.0" }),
    );
    assert_eq!(on["enabled"], true, "{on}");
    assert_eq!(on["value"], true);
    assert_eq!(on["value_type"], "boolean");
    assert_eq!(on["reason"], "TARGETING_MATCH");
    let old = evaluate(
        &alice,
        "beta",
        json!({ "plan": "pro", "app.version": "1.9.0" }),
    );
    assert_eq!(
        (old["enabled"].clone(), old["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );
    // A property the context lacks fails its constraint.
    let missing = evaluate(&alice, "beta", json!({ "plan": "pro" }));
    assert_eq!(missing["enabled"], false);

    // The seed's evaluation of the same flag is a context of the subject alone: no match.
    assert_eq!(alice.get("/flags/beta?subject=u1").ok()["enabled"], false);

    // Rules are removed by index; with none left, the flag is on for everyone again.
    let flag = alice.delete("/flags/beta/rules?index=0").ok();
    assert!(flag.get("rules").is_none(), "{flag}");
    assert_eq!(evaluate(&alice, "beta", json!({}))["reason"], "STATIC");
    let gone = alice.delete("/flags/beta/rules?index=0").error(404);
    assert_eq!(gone["resource"], "flag_rule", "{gone}");
}

#[test]
fn bad_rules_are_refused_naming_what_is_wrong() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    let rule = |constraint: Value| {
        alice.post("/flags/beta/rules", &json!({ "constraints": [constraint] }))
    };
    let body = rule(json!({ "property": "plan", "operator": "LIKE", "values": ["x"] }))
        .invalid("operator");
    assert!(
        body["details"].as_str().unwrap().contains("SEMVER_GT"),
        "{body}"
    );
    rule(json!({ "property": "v", "operator": "SEMVER_GT", "value": "two" })).invalid("values");
    rule(json!({ "property": "n", "operator": "NUM_GT", "values": ["1", "2"] })).invalid("values");
    rule(json!({ "property": "bad name", "operator": "IN", "values": ["x"] })).invalid("property");
    rule(json!({ "property": "n", "operator": "NUM_GT", "value": "1", "case_insensitive": true }))
        .invalid("case_insensitive");
    alice.put("/segments/s", &json!({ "constraints": [] })).ok();
    alice
        .post("/flags/beta/rules", &json!({ "segments": ["s", "s"] }))
        .invalid("segments");
    alice
        .post("/flags/beta/rules", &json!({ "percentage": 101 }))
        .invalid("percentage");
    alice
        .post("/flags/beta/rules", &json!({ "segments": ["nope"] }))
        .error(404);
    alice
        .post("/flags/nope/rules", &json!({ "constraints": [] }))
        .error(404);
    // Nothing of it was stored.
    assert!(alice
        .get("/flags/beta/targeting")
        .ok()
        .get("rules")
        .is_none());
}

#[test]
fn segments_are_shared_by_rules_and_kept_while_used() {
    let api = Api::start();
    let alice = api.user("alice");
    let segment = alice
        .put(
            "/segments/staff",
            &json!({
                "description": "our people",
                "constraints": [{ "property": "email", "operator": "STR_ENDS_WITH",
                                  "values": ["@acme.com"], "case_insensitive": true }],
            }),
        )
        .ok();
    assert_eq!(segment["name"], "staff");
    assert_eq!(alice.get("/segments/staff").ok(), segment);
    assert_eq!(alice.get("/segments").ok()["segments"], json!([segment]));

    alice.set_flag("beta", json!({ "enabled": true })).ok();
    alice
        .post("/flags/beta/rules", &json!({ "segments": ["staff"] }))
        .ok();
    let staff = evaluate(&alice, "beta", json!({ "email": "Ann@ACME.com" }));
    assert_eq!(staff["enabled"], true, "{staff}");
    assert_eq!(
        evaluate(&alice, "beta", json!({ "email": "ann@x.io" }))["enabled"],
        false
    );

    // A change to the segment changes what beta answers: the change log says beta changed.
    let since = alice.get("/events").ok()["next"].clone();
    alice
        .put("/segments/staff", &json!({ "constraints": [] }))
        .ok();
    let events = alice.get(&format!("/events?since={since}")).ok();
    assert_eq!(events["events"][0]["name"], "beta", "{events}");
    assert_eq!(events["events"][0]["action"], "set", "{events}");

    let refused = alice.delete("/segments/staff").error(409);
    assert!(
        refused["error"].as_str().unwrap().contains("beta"),
        "{refused}"
    );
    alice.delete("/flags/beta/rules?index=0").ok();
    assert_eq!(alice.delete("/segments/staff").ok()["deleted"], true);
    alice.get("/segments/staff").error(404);
    // Another user's segments are their own.
    api.user("bob").get("/segments").ok();
    assert_eq!(api.user("bob").get("/segments").ok()["segments"], json!([]));
}

#[test]
fn variants_answer_their_payloads_with_their_json_types() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("limits", json!({ "enabled": true })).ok();
    let set = alice
        .put(
            "/flags/limits/variants",
            &json!({ "variants": [
                { "name": "small", "weight": 1, "payload": { "type": "number", "value": 25 } },
                { "name": "large", "weight": 1, "payload": { "type": "number", "value": 2.5 } },
            ]}),
        )
        .ok();
    assert_eq!(set["variants"][1]["payload"]["value"], json!(2.5));
    let mut seen = Vec::new();
    for i in 0..40 {
        let answer = evaluate(
            &alice,
            "limits",
            json!({ "targetingKey": format!("user-{i}") }),
        );
        assert_eq!(answer["reason"], "SPLIT", "{answer}");
        let expected = if answer["variant"] == "small" {
            json!(25)
        } else {
            json!(2.5)
        };
        // An integer stays an integer (OpenFeature's integer and float differ).
        assert_eq!(
            answer["value"].to_string(),
            expected.to_string(),
            "{answer}"
        );
        seen.push(answer["variant"].as_str().unwrap().to_owned());
    }
    assert!(seen.iter().any(|v| v == "small") && seen.iter().any(|v| v == "large"));

    // A split needs a subject.
    let body = alice
        .post("/flags/limits/evaluate", &json!({ "context": {} }))
        .error(422);
    assert_eq!(body["code"], "subject_required", "{body}");
    assert_eq!(body["name"], "limits");

    // Mixed payload types, duplicate names and no weight are refused.
    let variants = |v: Value| alice.put("/flags/limits/variants", &json!({ "variants": v }));
    variants(
        json!([{ "name": "a", "weight": 1, "payload": { "type": "string", "value": "x" } },
                    { "name": "b", "weight": 1, "payload": { "type": "boolean", "value": true } }]),
    )
    .invalid("variants");
    variants(json!([{ "name": "a", "weight": 1 }, { "name": "a", "weight": 1 }]))
        .invalid("variants");
    variants(json!([{ "name": "a", "weight": 0 }])).invalid("variants");
    variants(json!([{ "name": "a", "weight": "heavy" }])).invalid("variants");
    // Off, a flag with payloads answers no value: the caller's default stands.
    alice.patch_flag("limits", json!({ "enabled": false })).ok();
    let off = evaluate(&alice, "limits", json!({ "targetingKey": "u" }));
    assert!(off.get("value").is_none(), "{off}");
    assert_eq!(off["reason"], "DISABLED");
}

#[test]
fn prerequisites_are_kill_switches_and_never_cycle() {
    let api = Api::start();
    let alice = api.user("alice");
    for flag in ["payments", "checkout", "checkout-v2"] {
        alice.set_flag(flag, json!({ "enabled": true })).ok();
    }
    let requires = |flag: &str, parents: Value| {
        alice.put(
            &format!("/flags/{flag}/prerequisites"),
            &json!({ "prerequisites": parents }),
        )
    };
    requires("checkout", json!([{ "flag": "payments" }])).ok();
    requires("checkout-v2", json!([{ "flag": "checkout" }])).ok();
    assert_eq!(evaluate(&alice, "checkout-v2", json!({}))["enabled"], true);

    alice
        .patch_flag("payments", json!({ "enabled": false }))
        .ok();
    let off = evaluate(&alice, "checkout-v2", json!({}));
    assert_eq!(off["reason"], "PREREQUISITE_FAILED", "{off}");
    assert_eq!(off["enabled"], false);

    // payments → checkout → checkout-v2 → payments would be a cycle.
    let cycle = requires("payments", json!([{ "flag": "checkout-v2" }])).invalid("prerequisites");
    assert!(
        cycle["details"].as_str().unwrap().contains("requires"),
        "{cycle}"
    );
    requires("payments", json!([{ "flag": "payments" }])).invalid("prerequisites");
    requires("payments", json!([{ "flag": "nope" }])).error(404);
    // A required flag is not deleted from under its dependents.
    alice.delete("/flags/payments").error(409);
}

#[test]
fn a_seed_flag_keeps_its_answers_and_its_targeting_survives_a_set() {
    let api = Api::start();
    let alice = api.user("alice");
    let seed = alice
        .set_flag("rollout", json!({ "enabled": true, "percentage": 40 }))
        .ok();
    for key in ["rules", "variants", "prerequisites"] {
        assert!(
            seed.get(key).is_none(),
            "a seed flag's answer is as before: {seed}"
        );
    }
    alice
        .post(
            "/flags/rollout/rules",
            &json!({ "constraints": [{ "property": "plan", "operator": "IN", "values": ["pro"] }] }),
        )
        .ok();
    let set = alice
        .set_flag("rollout", json!({ "enabled": true, "percentage": 100 }))
        .ok();
    assert_eq!(set["rules"].as_array().map(Vec::len), Some(1), "{set}");
}

#[test]
fn ofrep_answers_as_openfeature_providers_expect() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    alice
        .post(
            "/flags/beta/rules",
            &json!({ "constraints": [{ "property": "plan", "operator": "IN", "values": ["pro"] }] }),
        )
        .ok();
    let on = ofrep(
        &alice,
        "beta",
        json!({ "targetingKey": "u1", "plan": "pro" }),
    )
    .ok();
    assert_eq!(
        on,
        json!({ "key": "beta", "value": true, "reason": "TARGETING_MATCH", "variant": null,
                "metadata": { "reason": "TARGETING_MATCH", "enabled": true } })
    );

    let missing = ofrep(&alice, "nope", json!({})).expect(404).json();
    assert_eq!(missing["errorCode"], "FLAG_NOT_FOUND", "{missing}");
    assert_eq!(missing["key"], "nope");
    let context = ofrep(&alice, "beta", json!({ "plan": ["pro"] }))
        .expect(400)
        .json();
    assert_eq!(context["errorCode"], "INVALID_CONTEXT", "{context}");
    let parse = alice
        .raw(Method::POST, "/ofrep/v1/evaluate/flags/beta", "{not json")
        .expect(400)
        .json();
    assert_eq!(parse["errorCode"], "PARSE_ERROR", "{parse}");
    alice
        .set_flag("half", json!({ "enabled": true, "percentage": 50 }))
        .ok();
    let key = ofrep(&alice, "half", json!({})).expect(400).json();
    assert_eq!(key["errorCode"], "TARGETING_KEY_MISSING", "{key}");
    api.with_token("not-a-token")
        .post("/ofrep/v1/evaluate/flags/beta", &json!({}))
        .unauthorized();

    // Bulk: every flag, a failure in its entry; an ETag that a same answer matches.
    let bulk = alice.post(
        "/ofrep/v1/evaluate/flags",
        &json!({ "context": { "plan": "pro" } }),
    );
    let body = bulk.ok();
    let flags = body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 2, "{body}");
    assert_eq!(flags[0]["key"], "beta");
    assert_eq!(flags[1]["errorCode"], "TARGETING_KEY_MISSING");
    let etag = bulk.header("etag").expect("an ETag").to_owned();
    let again = alice.with_header("if-none-match", &etag).post(
        "/ofrep/v1/evaluate/flags",
        &json!({ "context": { "plan": "pro" } }),
    );
    again.expect(304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // A change to a flag changes the answer, and its ETag.
    alice.patch_flag("beta", json!({ "enabled": false })).ok();
    let changed = alice.with_header("if-none-match", &etag).post(
        "/ofrep/v1/evaluate/flags",
        &json!({ "context": { "plan": "pro" } }),
    );
    changed.ok();
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}
