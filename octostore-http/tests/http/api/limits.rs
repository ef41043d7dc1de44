//! `/limits`: check, status, reset, list; a sliding window with `Retry-After`.

use chrono::Duration;
use serde_json::json;

use super::{encode, int, text, time, Api, Reply};

/// Asserts a denied check: `retry_after_seconds` = ceil(reset_at − now), at least 1, and the
/// `Retry-After` header says the same. Returns it.
#[track_caller]
fn denied(api: &Api, reply: &Reply) -> i64 {
    let body = reply.ok();
    assert_eq!(body["allowed"], false, "{body}");
    assert_eq!(body["remaining"], 0, "{body}");
    let retry_after = int(&body["retry_after_seconds"]);
    assert!(retry_after >= 1, "{body}");
    let wait = time(&body["reset_at"]) - api.now();
    let ceil = (wait.num_milliseconds() + 999).div_euclid(1000).max(1);
    assert_eq!(
        retry_after, ceil,
        "retry_after_seconds = ceil(reset_at - now): {body}"
    );
    assert_eq!(
        reply.header("retry-after"),
        Some(retry_after.to_string().as_str()),
        "Retry-After equals retry_after_seconds"
    );
    retry_after
}

/// Asserts an allowed check with `remaining` left, and no retry advice.
#[track_caller]
fn allowed(reply: &Reply, remaining: i64) -> serde_json::Value {
    let body = reply.ok();
    assert_eq!(body["allowed"], true, "{body}");
    assert_eq!(body["remaining"], remaining, "{body}");
    assert!(body.get("retry_after_seconds").is_none(), "{body}");
    assert!(reply.header("retry-after").is_none(), "{reply:?}");
    body
}

#[test]
fn checks_count_down_then_deny_until_retry_after_has_passed() {
    let api = Api::start();
    let alice = api.user("alice");
    let first = allowed(&alice.check("api", 3, 60), 2);
    assert!(time(&first["reset_at"]) > api.now());
    assert!(time(&first["reset_at"]) <= api.now() + Duration::seconds(60));
    allowed(&alice.check("api", 3, 60), 1);
    allowed(&alice.check("api", 3, 60), 0);

    let retry_after = denied(&api, &alice.check("api", 3, 60));
    assert!(retry_after <= 60);
    // A denied check consumes nothing: still denied, and no later.
    assert_eq!(denied(&api, &alice.check("api", 3, 60)), retry_after);

    // One second short of the advice, all three admissions are still in the window.
    api.advance_secs(retry_after - 1);
    denied(&api, &alice.check("api", 3, 60));
    api.advance_secs(1);
    let again = alice.check("api", 3, 60).ok();
    assert_eq!(
        again["allowed"], true,
        "waiting retry_after_seconds is enough: {again}"
    );
}

#[test]
fn retry_after_is_exact_when_admissions_are_spread_out() {
    let api = Api::start();
    let alice = api.user("alice");
    api.advance(Duration::milliseconds(300));
    allowed(&alice.check("spread", 2, 10), 1);
    api.advance(Duration::milliseconds(5_400));
    allowed(&alice.check("spread", 2, 10), 0);
    api.advance(Duration::milliseconds(500));
    // The first admission (at 0.3 s) leaves the window at 10.3 s: 4.1 s from now.
    let retry_after = denied(&api, &alice.check("spread", 2, 10));
    assert_eq!(retry_after, 5);
    // A second short, both admissions are still within the last 10 s.
    api.advance_secs(retry_after - 1);
    denied(&api, &alice.check("spread", 2, 10));
    api.advance_secs(1);
    assert_eq!(alice.check("spread", 2, 10).ok()["allowed"], true);
}

#[test]
fn the_window_slides_rather_than_resetting() {
    let api = Api::start();
    let alice = api.user("alice");
    allowed(&alice.check("slide", 2, 10), 1);
    api.advance_secs(9);
    allowed(&alice.check("slide", 2, 10), 0);
    // A fixed window would reset at 10 s and admit both of these; a sliding one holds the
    // admission at 9 s for another 9 s, so at most one fits in (0.1 s, 10.1 s].
    api.advance_secs(1);
    let at_10 = alice.check("slide", 2, 10).ok()["allowed"] == true;
    api.advance(Duration::milliseconds(100));
    let at_10_1 = alice.check("slide", 2, 10).ok()["allowed"] == true;
    assert!(!(at_10 && at_10_1), "three admissions within 10 s");
}

#[test]
fn status_does_not_consume() {
    let api = Api::start();
    let alice = api.user("alice");
    allowed(&alice.check("api", 2, 60), 1);
    for _ in 0..3 {
        let status = alice.get("/limits/api").ok();
        assert_eq!(status["allowed"], true);
        assert_eq!(status["remaining"], 1);
        assert!(time(&status["reset_at"]) > api.now());
    }
    allowed(&alice.check("api", 2, 60), 0);
    let status = alice.get("/limits/api").ok();
    assert_eq!(status["allowed"], false);
    assert_eq!(status["remaining"], 0);
    assert!(int(&status["retry_after_seconds"]) >= 1);
    assert_eq!(alice.get("/limits/api").ok()["remaining"], 0);
}

#[test]
fn status_of_an_unknown_limit_is_404() {
    let api = Api::start();
    api.user("alice").get("/limits/never-checked").error(404);
}

#[test]
fn delete_forgets_the_limit() {
    let api = Api::start();
    let alice = api.user("alice");
    allowed(&alice.check("api", 1, 60), 0);
    denied(&api, &alice.check("api", 1, 60));

    assert_eq!(alice.delete("/limits/api").ok()["reset"], true);
    alice.get("/limits/api").error(404);
    alice.delete("/limits/api").error(404);
    assert_eq!(alice.get("/limits").ok()["limits"], json!([]));
    // Counting starts afresh.
    allowed(&alice.check("api", 1, 60), 0);
}

#[test]
fn the_parameters_of_the_latest_check_apply() {
    let api = Api::start();
    let alice = api.user("alice");
    allowed(&alice.check("api", 2, 60), 1);
    allowed(&alice.check("api", 2, 60), 0);
    denied(&api, &alice.check("api", 2, 60));
    // Raising the maximum admits more at once; the two admissions still count.
    allowed(&alice.check("api", 5, 60), 2);
    let listed = alice.get("/limits").ok();
    assert_eq!(listed["limits"][0]["max_requests"], 5);
    // Lowering it denies.
    denied(&api, &alice.check("api", 1, 60));
    let status = alice.get("/limits/api").ok();
    assert_eq!(status["allowed"], false);
}

#[test]
fn list_shows_each_limit_with_its_policy_and_count() {
    let api = Api::start();
    let alice = api.user("alice");
    assert_eq!(alice.get("/limits").ok()["limits"], json!([]));
    alice.check("b-limit", 5, 30).ok();
    alice.check("b-limit", 5, 30).ok();
    alice.check("a-limit", 1, 86400).ok();
    alice.check("a-limit", 1, 86400).ok();

    let list = alice.get("/limits").ok();
    let limits = list["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 2);
    let find = |name: &str| {
        limits
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list}"))
    };
    let b = find("b-limit");
    assert_eq!(b["max_requests"], 5);
    assert_eq!(b["window_seconds"], 30);
    assert_eq!(b["current_count"], 2);
    assert_eq!(b["remaining"], 3);
    assert_eq!(b["allowed"], true);
    assert!(time(&b["reset_at"]) > api.now());
    let a = find("a-limit");
    assert_eq!(a["max_requests"], 1);
    assert_eq!(a["window_seconds"], 86400);
    assert_eq!(a["current_count"], 1);
    assert_eq!(a["remaining"], 0);
    assert_eq!(a["allowed"], false);
}

#[test]
fn max_requests_is_1_to_10000_and_window_seconds_1_to_86400() {
    let api = Api::start();
    let alice = api.user("alice");
    for max in [0, 10001, -1] {
        alice.check("bounds", max, 60).invalid("max_requests");
    }
    for window in [0, 86401, -1] {
        alice.check("bounds", 10, window).invalid("window_seconds");
    }
    alice.get("/limits/bounds").error(404);

    allowed(&alice.check("min-max", 1, 60), 0);
    allowed(&alice.check("max-max", 10000, 60), 9999);
    allowed(&alice.check("min-window", 10, 1), 9);
    allowed(&alice.check("max-window", 10, 86400), 9);

    // A one-second window frees within a second.
    allowed(&alice.check("tiny", 1, 1), 0);
    let retry_after = denied(&api, &alice.check("tiny", 1, 1));
    assert_eq!(retry_after, 1);
    api.advance_secs(1);
    allowed(&alice.check("tiny", 1, 1), 0);
}

#[test]
fn check_bodies_with_a_wrong_field_are_422_naming_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let cases = [
        (json!({ "window_seconds": 60 }), "max_requests"),
        (
            json!({ "max_requests": null, "window_seconds": 60 }),
            "max_requests",
        ),
        (
            json!({ "max_requests": "5", "window_seconds": 60 }),
            "max_requests",
        ),
        (
            json!({ "max_requests": 2.5, "window_seconds": 60 }),
            "max_requests",
        ),
        (json!({ "max_requests": 5 }), "window_seconds"),
        (
            json!({ "max_requests": 5, "window_seconds": null }),
            "window_seconds",
        ),
        (
            json!({ "max_requests": 5, "window_seconds": [60] }),
            "window_seconds",
        ),
        (
            json!({ "max_requests": 5, "window_seconds": false }),
            "window_seconds",
        ),
    ];
    for (body, field) in cases {
        alice.post("/limits/api/check", &body).invalid(field);
    }
    alice.get("/limits/api").error(404);
    // Unknown fields are ignored.
    let reply = alice.post(
        "/limits/api/check",
        &json!({ "max_requests": 5, "window_seconds": 60, "burst": 3 }),
    );
    allowed(&reply, 4);
}

#[test]
fn limit_names_are_any_1_to_100_printable_characters_percent_encoded() {
    let api = Api::start();
    let alice = api.user("alice");
    // A space and a slash are fine once percent-encoded.
    allowed(&alice.check("a%20b", 5, 60), 4);
    allowed(&alice.check("a%2Fb", 5, 60), 4);
    assert_eq!(alice.get("/limits/a%20b").ok()["remaining"], 4);
    // 100 characters of two bytes each: the bound counts characters.
    let longest = "é".repeat(100);
    allowed(&alice.check(&encode(&longest), 5, 60), 4);
    let mut names: Vec<String> = alice.get("/limits").ok()["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| text(&l["name"]).to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a b", "a/b", longest.as_str()]);
    assert_eq!(alice.delete("/limits/a%2Fb").ok()["reset"], true);
    alice.get("/limits/a%2Fb").error(404);

    let too_long = encode(&"é".repeat(101));
    for bad in [too_long.as_str(), "tab%09here", "%00", "%FF", "%7F"] {
        alice.check(bad, 5, 60).invalid("name");
        alice.get(&format!("/limits/{bad}")).invalid("name");
        alice.delete(&format!("/limits/{bad}")).invalid("name");
    }
    assert_eq!(
        alice.get("/limits").ok()["limits"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
