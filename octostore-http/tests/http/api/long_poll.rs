//! Long polls: `GET /events?wait=` answers once an event its filter matches arrives (or the
//! wait is over, with an empty page), `GET /config/{key}?wait_for_version=&wait=` once the
//! key is past a version (or what it is then, 404 if nothing); a change made by another
//! request wakes them, on memory and on a file (through the committer). Assertions are on
//! what they answer, never on how fast: a lost wake-up shows as an empty or stale answer.

use std::sync::Arc;
use std::time::Duration;

use octostore_core::{
    Api as _, ConfigKey, EventFilter, EventKind, Kinds, ManualClock, SqliteBackend, Store,
};
use octostore_http::Client;
use serde_json::{json, Value};

use super::Api;

/// Each event of a page as `kind action name`.
fn said(page: &Value) -> Vec<String> {
    let events = page["events"].as_array().expect("an array of events");
    events
        .iter()
        .map(|e| format!("{} {} {}", e["kind"], e["action"], e["name"]).replace('"', ""))
        .collect()
}

/// Runs `poll` on a thread while `change` runs on this one; what `poll` answered.
fn while_polling<T: Send>(poll: impl FnOnce() -> T + Send, change: impl FnOnce()) -> T {
    std::thread::scope(|s| {
        let polling = s.spawn(poll);
        change();
        polling.join().unwrap()
    })
}

#[test]
fn a_long_poll_answers_with_the_event_its_filter_waits_for() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("seen", json!({ "enabled": true })).ok();
    let page = while_polling(
        || alice.get("/events?since=1&kind=config&wait=30s").ok(),
        || {
            alice.set_flag("unwatched", json!({ "enabled": true })).ok();
            alice.put_config("app.size", json!({ "value": 3 })).ok();
        },
    );
    assert_eq!(said(&page), ["config put app.size"]);
    assert_eq!(page["next"], 3);
}

#[test]
fn a_long_poll_on_a_file_is_woken_by_a_change_through_the_committer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(SqliteBackend::open(dir.path().join("octostore.db")).unwrap())
        .clock(clock.clone())
        .build();
    let api = Api::serve(store, clock);
    let alice = api.user("alice");
    let page = while_polling(
        || alice.get("/events?wait=30").ok(),
        || drop(alice.acquire("deploy", 30).ok()),
    );
    assert_eq!(said(&page), ["lock acquired deploy"]);
}

#[test]
fn a_long_poll_with_nothing_new_answers_an_empty_page_when_the_wait_ends() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    let page = alice.get("/events?since=1&wait=1s").ok();
    assert_eq!(page, json!({ "events": [], "next": 1, "resync": false }));
    // Something to answer already: at once, as without `wait`.
    let page = alice.get("/events?since=0&wait=5m").ok();
    assert_eq!(said(&page), ["flag set beta"]);
    let past = alice.get("/events?since=9&wait=5m").ok();
    assert_eq!(past["resync"], true);
}

#[test]
fn a_config_long_poll_answers_the_next_version() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("app.size", json!({ "value": 1 })).ok();
    let next = while_polling(
        || {
            alice
                .get("/config/app.size?wait_for_version=1&wait=30s")
                .ok()
        },
        || {
            alice.put_config("other", json!({ "value": 0 })).ok();
            alice.put_config("app.size", json!({ "value": 2 })).ok();
        },
    );
    assert_eq!(
        (next["version"].clone(), next["value"].clone()),
        (json!(2), json!(2))
    );
    // Already past: at once. Not past when the wait ends: the latest.
    let now = alice
        .get("/config/app.size?wait_for_version=0&wait=5m")
        .ok();
    assert_eq!(now["version"], 2);
    let then = alice.get("/config/app.size?wait_for_version=2&wait=1").ok();
    assert_eq!(then["version"], 2);
    // A key that does not exist yet: answered once it is put, 404 if it never is.
    let created = while_polling(
        || {
            alice
                .get("/config/new.key?wait_for_version=0&wait=30s")
                .ok()
        },
        || drop(alice.put_config("new.key", json!({ "value": "x" })).ok()),
    );
    assert_eq!(created["version"], 1);
    alice
        .get("/config/missing?wait_for_version=0&wait=1s")
        .error(404);
}

#[test]
fn the_client_waits_for_events_and_versions() {
    let api = Api::start();
    let token = api.server.token("alice");
    let client = Client::new(api.server.url(""), &token).unwrap();
    let key = ConfigKey::parse("app.size").unwrap();
    client.put_config(&key, json!(1), None).unwrap();
    let flags = EventFilter::new(Kinds::of([EventKind::Flag]), "").unwrap();
    let wait = Duration::from_secs(30);
    let (page, entry) = while_polling(
        || {
            let page = client.events_within(1, &flags, 10, wait).unwrap();
            (page, client.config_after(&key, 1, wait).unwrap())
        },
        || {
            let other = Client::new(api.server.url(""), &token).unwrap();
            let flag = octostore_core::FlagName::parse("beta").unwrap();
            other.set_flag(&flag, true, None).unwrap();
            other.put_config(&key, json!(2), None).unwrap();
        },
    );
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].change.name(), "beta");
    assert_eq!(entry.version, 2);
}

#[test]
fn bad_waits_are_422_naming_them_and_a_config_read_with_nothing_to_wait_for_is_at_once() {
    let api = Api::start();
    let alice = api.user("alice");
    for wait in ["-1", "+5", "1h", "s", "1.5s", "5%20"] {
        alice.get(&format!("/events?wait={wait}")).invalid("wait");
    }
    alice.put_config("k", json!({ "value": 1 })).ok();
    // Without wait_for_version there is nothing to wait for: the value at once.
    assert_eq!(alice.get("/config/k?wait=300s").ok()["value"], 1);
    // A version read never changes: it is answered at once, whatever the wait asks.
    let read = alice
        .get("/config/k?version=1&wait_for_version=1&wait=300s")
        .ok();
    assert_eq!(read["version"], 1);
    alice
        .get("/config/k?wait_for_version=x&wait=1s")
        .invalid("wait_for_version");
    api.anonymous().get("/events?wait=5s").unauthorized();
}
