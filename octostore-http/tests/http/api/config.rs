//! `/config`: put, get (`?version=`), history and its pages, delete, list; versions, the value
//! cap and the per-user byte cap.

use octostore_core::Settings;
use serde_json::{json, Value};

use super::{int, text, time, Api};

#[test]
fn puts_make_versions_and_get_answers_any_of_them() {
    let api = Api::start();
    let alice = api.user("alice");
    let t1 = api.now();
    let v1 = alice
        .put_config(
            "app.db.url",
            json!({ "value": { "host": "db1", "port": 5432 }, "description": "primary" }),
        )
        .ok();
    assert_eq!(v1["key"], "app.db.url");
    assert_eq!(v1["value"], json!({ "host": "db1", "port": 5432 }));
    assert_eq!(v1["description"], "primary");
    assert_eq!(v1["version"], 1);
    assert_eq!(time(&v1["created_at"]), t1);
    assert_eq!(time(&v1["updated_at"]), t1);

    api.advance_secs(60);
    let t2 = api.now();
    let v2 = alice
        .put_config("app.db.url", json!({ "value": "postgres://db2" }))
        .ok();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["value"], "postgres://db2");
    assert_eq!(
        time(&v2["created_at"]),
        t1,
        "created_at is the key's creation"
    );
    assert_eq!(time(&v2["updated_at"]), t2);

    api.advance_secs(60);
    let t3 = api.now();
    let v3 = alice
        .put_config(
            "app.db.url",
            json!({ "value": [1, 2.5, null, true], "description": "" }),
        )
        .ok();
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["value"], json!([1, 2.5, null, true]));
    assert!(v3.get("description").is_none(), "{v3}");

    // The latest, and each version by number.
    assert_eq!(alice.get("/config/app.db.url").ok(), v3);
    assert_eq!(alice.get("/config/app.db.url?version=3").ok(), v3);
    assert_eq!(
        alice.get("/config/app.db.url?version=2").ok()["value"],
        v2["value"]
    );
    let first = alice.get("/config/app.db.url?version=1").ok();
    assert_eq!(first["version"], 1);
    assert_eq!(first["value"], v1["value"]);
    assert_eq!(first["description"], "primary");
    assert_eq!(time(&first["updated_at"]), t1);

    // History, ascending, each version with its own created_at.
    let history = alice.get("/config/app.db.url/history").ok();
    let versions = history["versions"].as_array().unwrap();
    let numbers: Vec<i64> = versions.iter().map(|v| int(&v["version"])).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(versions[0]["value"], v1["value"]);
    assert_eq!(versions[0]["description"], "primary");
    assert_eq!(versions[1]["value"], v2["value"]);
    assert_eq!(versions[2]["value"], v3["value"]);
    let times: Vec<_> = versions.iter().map(|v| time(&v["created_at"])).collect();
    assert_eq!(times, [t1, t2, t3]);
}

#[test]
fn any_json_value_is_stored_as_sent() {
    let api = Api::start();
    let alice = api.user("alice");
    for (i, value) in [
        json!(null),
        json!(false),
        json!(0),
        json!(-12.75),
        json!(""),
        json!("ünïcödé \" \\ \n"),
        json!([]),
        json!({}),
        json!({ "nested": { "deep": [{ "x": [1, { "y": null }] }] } }),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("k{i}");
        let put = alice.put_config(&key, json!({ "value": value })).ok();
        assert_eq!(put["value"], value);
        assert_eq!(alice.get(&format!("/config/{key}")).ok()["value"], value);
    }
}

#[test]
fn a_put_without_description_carries_the_previous_one_over() {
    let api = Api::start();
    let alice = api.user("alice");
    alice
        .put_config("k", json!({ "value": 1, "description": "the answer" }))
        .ok();
    let v2 = alice.put_config("k", json!({ "value": 2 })).ok();
    assert_eq!(v2["description"], "the answer");
    let listed = alice.get("/config").ok();
    assert_eq!(listed["configs"][0]["description"], "the answer");
}

#[test]
fn versions_that_do_not_exist_are_404_and_non_integers_422() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.get("/config/missing").error(404);
    alice.get("/config/missing?version=1").error(404);
    alice.get("/config/missing/history").error(404);
    alice.delete("/config/missing").error(404);

    alice.put_config("k", json!({ "value": 1 })).ok();
    alice.put_config("k", json!({ "value": 2 })).ok();
    for version in [
        "0",
        "-1",
        "3",
        "1000",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        alice
            .get(&format!("/config/k?version={version}"))
            .error(404);
    }
    for version in ["abc", "1.5", "", "1e2", "0x1", "9223372036854775808", "%20"] {
        alice
            .get(&format!("/config/k?version={version}"))
            .invalid("version");
    }
    assert_eq!(alice.get("/config/k?version=2").ok()["value"], 2);
}

#[test]
fn delete_removes_every_version_and_a_later_put_starts_at_1() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("k", json!({ "value": "a" })).ok();
    alice.put_config("k", json!({ "value": "b" })).ok();

    assert_eq!(alice.delete("/config/k").ok()["deleted"], true);
    alice.get("/config/k").error(404);
    alice.get("/config/k?version=1").error(404);
    alice.get("/config/k/history").error(404);
    alice.delete("/config/k").error(404);
    assert_eq!(alice.get("/config").ok()["configs"], json!([]));

    api.advance_secs(30);
    let again = alice.put_config("k", json!({ "value": "c" })).ok();
    assert_eq!(again["version"], 1);
    assert_eq!(time(&again["created_at"]), api.now());
    let history = alice.get("/config/k/history").ok();
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    assert_eq!(history["versions"][0]["value"], "c");
    alice.get("/config/k?version=2").error(404);
}

#[test]
fn list_shows_each_key_at_its_latest_version() {
    let api = Api::start();
    let alice = api.user("alice");
    assert_eq!(alice.get("/config").ok()["configs"], json!([]));
    alice
        .put_config("a.one", json!({ "value": 1, "description": "first" }))
        .ok();
    api.advance_secs(1);
    alice.put_config("a.one", json!({ "value": 2 })).ok();
    let b = alice.put_config("b-two", json!({ "value": true })).ok();

    let list = alice.get("/config").ok();
    let mut configs = list["configs"].as_array().unwrap().clone();
    configs.sort_by_key(|c| c["key"].as_str().unwrap().to_owned());
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[0]["key"], "a.one");
    assert_eq!(configs[0]["version"], 2);
    assert_eq!(configs[0]["description"], "first");
    assert!(time(&configs[0]["created_at"]) < time(&configs[0]["updated_at"]));
    assert!(
        configs[0].get("value").is_none(),
        "a list carries no values"
    );
    assert_eq!(configs[1]["key"], "b-two");
    assert_eq!(configs[1]["version"], 1);
    assert!(configs[1].get("description").is_none());
    assert_eq!(configs[1]["created_at"], b["created_at"]);
    assert_eq!(configs[1]["updated_at"], b["updated_at"]);
}

#[test]
fn old_versions_beyond_the_history_cap_are_pruned() {
    let api = Api::with(Settings {
        config_history: 2,
        ..Settings::default()
    });
    let alice = api.user("alice");
    for value in 1..=4 {
        alice.put_config("k", json!({ "value": value })).ok();
    }
    let history = alice.get("/config/k/history").ok();
    let numbers: Vec<i64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| int(&v["version"]))
        .collect();
    assert_eq!(numbers, [3, 4]);
    alice.get("/config/k?version=1").error(404);
    alice.get("/config/k?version=2").error(404);
    assert_eq!(alice.get("/config/k?version=3").ok()["value"], 3);
    assert_eq!(alice.get("/config/k").ok()["version"], 4);
}

#[test]
fn description_is_at_most_500_characters() {
    let api = Api::start();
    let alice = api.user("alice");
    let d500 = "d".repeat(500);
    let put = alice
        .put_config("k", json!({ "value": 1, "description": d500 }))
        .ok();
    assert_eq!(put["description"], d500.as_str());
    // Characters, not bytes.
    let wide = "é".repeat(500);
    let put = alice
        .put_config("k", json!({ "value": 2, "description": wide }))
        .ok();
    assert_eq!(put["description"], wide.as_str());

    for bad in [
        json!("d".repeat(501)),
        json!("é".repeat(501)),
        json!(5),
        json!(null),
    ] {
        alice
            .put_config("k", json!({ "value": 3, "description": bad }))
            .invalid("description");
    }
    assert_eq!(alice.get("/config/k").ok()["version"], 2);
}

#[test]
fn config_bodies_without_value_or_not_an_object_are_422() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.put_config("k", json!({})).invalid("value");
    alice
        .put_config("k", json!({ "description": "no value" }))
        .invalid("value");
    alice.put_config("k", json!([1])).invalid("body");
    alice.put_config("k", json!("value")).invalid("body");
    alice.get("/config/k").error(404);
    // Unknown fields are ignored.
    let put = alice.put_config("k", json!({ "value": 1, "ttl": 60 })).ok();
    assert_eq!(put["version"], 1);
}

/// A string value whose compact JSON text (with its quotes) is `bytes` long.
fn value_of_size(bytes: usize) -> Value {
    Value::String("v".repeat(bytes - 2))
}

#[test]
fn a_value_is_capped_at_64_kib_of_compact_json() {
    let api = Api::start();
    let alice = api.user("alice");
    let cap = 64 * 1024;

    let at_cap = alice
        .put_config("big", json!({ "value": value_of_size(cap) }))
        .ok();
    assert_eq!(at_cap["version"], 1);
    assert_eq!(at_cap["value"].as_str().unwrap().len(), cap - 2);

    let over = alice
        .put_config("big", json!({ "value": value_of_size(cap + 1) }))
        .error(413);
    let message = format!("{} {}", over["error"], over["details"]);
    assert!(
        message.contains(&cap.to_string()),
        "a clear message: {over}"
    );
    assert_eq!(alice.get("/config/big").ok()["version"], 1);

    // Whitespace does not count: a pretty-printed body far over 64 KiB whose value is
    // under 64 KiB as compact JSON is accepted.
    let value: Value = (0..5000).map(|i| json!(format!("{i:010}"))).collect();
    assert!(serde_json::to_string(&value).unwrap().len() <= cap);
    let body =
        serde_json::to_string_pretty(&json!({ "value": value, "description": "pretty" })).unwrap();
    assert!(body.len() > cap);
    let reply = alice.raw(reqwest::Method::PUT, "/config/pretty", body);
    assert_eq!(reply.ok()["value"], value);
}

#[test]
fn config_keys_are_1_to_100_of_letters_digits_dots_underscores_and_hyphens() {
    let api = Api::start();
    let alice = api.user("alice");
    let longest = "k".repeat(100);
    assert_eq!(
        alice.put_config(&longest, json!({ "value": 1 })).ok()["key"],
        longest.as_str()
    );
    for key in ["a.b.c", ".hidden", "x..y", "A-z_0.9"] {
        assert_eq!(
            alice.put_config(key, json!({ "value": 1 })).ok()["key"],
            key
        );
        assert_eq!(
            alice.get(&format!("/config/{key}/history")).ok()["versions"][0]["version"],
            1
        );
    }

    let too_long = "k".repeat(101);
    for bad in [too_long.as_str(), "a%2Fb", "a%20b", "a:b", "%C3%A9"] {
        alice.put_config(bad, json!({ "value": 1 })).invalid("key");
        alice.get(&format!("/config/{bad}")).invalid("key");
        alice.get(&format!("/config/{bad}/history")).invalid("key");
        alice.delete(&format!("/config/{bad}")).invalid("key");
    }
    assert_eq!(
        alice.get("/config").ok()["configs"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

/// The version numbers of a history answer.
fn numbers(history: &Value) -> Vec<i64> {
    history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| int(&v["version"]))
        .collect()
}

#[test]
fn history_comes_in_pages_each_linking_the_next() {
    let api = Api::start();
    let alice = api.user("alice");
    for value in 1..=5 {
        alice.put_config("paged", json!({ "value": value })).ok();
    }
    // A small history is one page, as without pages.
    let whole = alice.get("/config/paged/history");
    assert_eq!(numbers(&whole.ok()), [1, 2, 3, 4, 5]);
    assert_eq!(whole.header("link"), None);

    let (mut seen, mut links) = (Vec::new(), Vec::new());
    let mut path = Some("/config/paged/history?limit=2".to_owned());
    while let Some(next) = path {
        let page = alice.get(&next);
        seen.extend(numbers(&page.ok()));
        path = page.header("link").map(|link| {
            links.push(link.to_owned());
            // `<history?…>; rel="next"`, relative to the page's own URL.
            let target = link.split(['<', '>']).nth(1).unwrap();
            format!("/config/paged/{target}")
        });
    }
    assert_eq!(seen, [1, 2, 3, 4, 5], "every version once, in order");
    assert_eq!(
        links,
        [
            "<history?after=2&limit=2>; rel=\"next\"",
            "<history?after=4&limit=2>; rel=\"next\"",
        ]
    );
    let page = alice.get("/config/paged/history?after=3");
    assert_eq!(numbers(&page.ok()), [4, 5]);
    assert_eq!(page.header("link"), None);

    for bad in ["limit=0", "limit=101", "limit=x", "limit=-1"] {
        alice
            .get(&format!("/config/paged/history?{bad}"))
            .invalid("limit");
    }
    for bad in [
        "after=-1",
        "after=1.5",
        "after=",
        "after=9223372036854775808",
    ] {
        alice
            .get(&format!("/config/paged/history?{bad}"))
            .invalid("after");
    }
    alice.get("/config/nope/history?limit=2").error(404);
}

#[test]
fn a_put_past_the_byte_cap_is_429_and_nothing_is_lost() {
    let api = Api::with(Settings {
        config_bytes_per_user: 100,
        ..Settings::default()
    });
    let alice = api.user("alice");
    let sixty = "x".repeat(58); // 60 bytes as JSON, with its quotes
    alice.put_config("a", json!({ "value": sixty })).ok();
    let refused = alice.put_config("b", json!({ "value": sixty })).error(429);
    assert!(
        text(&refused["error"]).contains("bytes"),
        "the message names the byte cap: {refused}"
    );
    assert_eq!(refused["code"], "quota_exceeded");
    assert_eq!(refused["resource"], "config_bytes");
    assert_eq!(refused["limit"], 100);
    assert_eq!(alice.get("/config/a").ok()["value"], sixty.as_str());
    alice.get("/config/b").error(404);
    // Another user has a cap of its own; deleting frees the bytes.
    api.user("bob")
        .put_config("b", json!({ "value": sixty }))
        .ok();
    alice.delete("/config/a").ok();
    alice.put_config("b", json!({ "value": sixty })).ok();
}

/// A history page is read beside the SQLite writer: while another process holds the file's
/// write lock, and so the server's writer waits, the page is still answered.
#[test]
fn history_is_answered_while_the_file_is_locked_by_another_process() {
    use octostore_core::{Api as _, ConfigKey, Login, ManualClock, SqliteBackend, Store};
    use std::sync::{mpsc, Arc};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(SqliteBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    let api = Api::serve(store, clock);
    let token = api.server.token("alice");
    let alice = api.with_token(&token);
    for value in 1..=3 {
        alice.put_config("k", json!({ "value": value })).ok();
    }

    // Another process's group holds the write lock until told to commit.
    let other = Store::open(&path).unwrap();
    let me = other.session(other.local_user(&Login::parse("other").unwrap()).unwrap());
    // The server knows the token again after the other process's writes so far.
    alice.get("/config/k").ok();
    let (locked, holding) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        other
            .group(deadline, || {
                me.put_config(&ConfigKey::parse("x").unwrap(), json!(1), None)
                    .unwrap();
                locked.send(()).unwrap();
                released.recv().unwrap();
            })
            .unwrap();
    });
    holding.recv().unwrap();
    let quick = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let answer = quick
        .get(api.server.url("/config/k/history?limit=2"))
        .bearer_auth(&token)
        .send();
    release.send(()).unwrap();
    holder.join().unwrap();
    let answer = answer.expect("answered without waiting for the write lock");
    assert_eq!(answer.status(), 200);
    let history: Value = answer.json().unwrap();
    assert_eq!(numbers(&history), [1, 2]);
}
