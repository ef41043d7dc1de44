//! `/events`: the change log's JSON, its pages, who sees what, and its parameters checked.

use serde_json::{json, Value};

use super::{time, Api};

/// Each event of a page as `kind action name`.
fn said(page: &Value) -> Vec<String> {
    let events = page["events"].as_array().expect("an array of events");
    events
        .iter()
        .map(|e| format!("{} {} {}", e["kind"], e["action"], e["name"]).replace('"', ""))
        .collect()
}

#[test]
fn events_carry_what_changed_and_page_by_index() {
    let api = Api::start();
    let alice = api.user("alice");
    let t0 = api.now();
    alice
        .set_flag("beta", json!({ "enabled": true, "percentage": 25 }))
        .ok();
    alice.put_config("app.size", json!({ "value": 3 })).ok();
    let lease = alice.acquire("deploy", 30).ok();
    alice.delete("/flags/beta").ok();

    let page = alice.get("/events").ok();
    assert_eq!(
        said(&page),
        [
            "flag set beta",
            "config put app.size",
            "lock acquired deploy",
            "flag deleted beta"
        ]
    );
    assert_eq!(
        (page["next"].clone(), page["resync"].clone()),
        (json!(4), json!(false))
    );
    let events = page["events"].as_array().unwrap();
    let flag = &events[0];
    assert_eq!(
        (flag["index"].clone(), flag["enabled"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(flag["percentage"], 25);
    assert_eq!(time(&flag["at"]), t0);
    assert!(
        flag.get("version").is_none() && flag.get("holder").is_none(),
        "{flag}"
    );
    assert_eq!(events[1]["version"], 1);
    let acquired = &events[2];
    assert_eq!(acquired["holder"], "alice");
    assert_eq!(acquired["fencing_token"], lease["fencing_token"]);
    assert_eq!(time(&acquired["expires_at"]), time(&lease["expires_at"]));
    assert!(events[3].get("enabled").is_none(), "{}", events[3]);

    // Pages of 2: the second from the first's `next`.
    let first = alice.get("/events?limit=2").ok();
    assert_eq!(said(&first), ["flag set beta", "config put app.size"]);
    let second = alice
        .get(&format!("/events?since={}&limit=2", first["next"]))
        .ok();
    assert_eq!(said(&second), ["lock acquired deploy", "flag deleted beta"]);
    // Filters.
    let flags = alice.get("/events?kind=flag,config&prefix=app").ok();
    assert_eq!(said(&flags), ["config put app.size"]);
    // An index past the log: resync, from the newest.
    let past = alice.get("/events?since=99").ok();
    assert_eq!(past, json!({ "events": [], "next": 4, "resync": true }));
}

#[test]
fn others_see_only_the_lock_events() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    alice.acquire("deploy", 30).ok();
    assert_eq!(said(&bob.get("/events").ok()), ["lock acquired deploy"]);
}

#[test]
fn bad_parameters_are_422_naming_them() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.get("/events?since=-1").invalid("since");
    alice.get("/events?since=x").invalid("since");
    alice.get("/events?kind=lock,locks").invalid("kind");
    alice.get("/events?kind=").invalid("kind");
    alice.get("/events?limit=0").invalid("limit");
    alice.get("/events?limit=1001").invalid("limit");
    let long = "a".repeat(129);
    alice
        .get(&format!("/events?prefix={long}"))
        .invalid("prefix");
    api.anonymous().get("/events").unauthorized();
}
