//! `/flags`: set, turn on or off (PATCH), evaluate (`?subject=`), delete, list; bucketing as
//! documented.

use octostore_core::{flag_bucket, FlagName, Subject};
use serde_json::json;

use super::{encode, time, Api, Caller};

fn bucket(flag: &str, subject: &str) -> u8 {
    flag_bucket(
        &FlagName::parse(flag).unwrap(),
        &Subject::parse(subject).unwrap(),
    )
}

/// `GET /flags/{flag}?subject=...` (or without a subject).
#[track_caller]
fn evaluate(caller: &Caller<'_>, flag: &str, subject: Option<&str>) -> bool {
    let path = match subject {
        Some(subject) => format!("/flags/{flag}?subject={}", encode(subject)),
        None => format!("/flags/{flag}"),
    };
    let body = caller.get(&path).ok();
    assert_eq!(body["name"], flag, "{body}");
    body["enabled"]
        .as_bool()
        .unwrap_or_else(|| panic!("`enabled` is not a boolean: {body}"))
}

#[test]
fn set_creates_and_replaces_keeping_created_at() {
    let api = Api::start();
    let alice = api.user("alice");
    let created = alice
        .set_flag("checkout", json!({ "enabled": true, "percentage": 30 }))
        .ok();
    assert_eq!(created["name"], "checkout");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["percentage"], 30);
    assert_eq!(time(&created["created_at"]), api.now());
    assert_eq!(time(&created["updated_at"]), api.now());

    api.advance_secs(90);
    let replaced = alice.set_flag("checkout", json!({ "enabled": false })).ok();
    assert_eq!(replaced["enabled"], false);
    assert!(
        replaced.get("percentage").is_none(),
        "omitting percentage clears it, and it is omitted, not null: {replaced}"
    );
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(time(&replaced["updated_at"]), api.now());

    api.advance_secs(5);
    let again = alice
        .set_flag("checkout", json!({ "enabled": true, "percentage": 0 }))
        .ok();
    assert_eq!(again["percentage"], 0);
    assert_eq!(again["created_at"], created["created_at"]);

    let list = alice.get("/flags").ok();
    let flags = list["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0], again);
}

#[test]
fn patch_turns_a_flag_off_and_on_keeping_its_percentage() {
    let api = Api::start();
    let alice = api.user("alice");
    let created = alice
        .set_flag("rollout", json!({ "enabled": true, "percentage": 25 }))
        .ok();

    api.advance_secs(30);
    let off = alice
        .patch_flag("rollout", json!({ "enabled": false }))
        .ok();
    assert_eq!(off["enabled"], false);
    assert_eq!(off["percentage"], 25, "{off}");
    assert_eq!(off["created_at"], created["created_at"]);
    assert_eq!(time(&off["updated_at"]), api.now());
    assert!(!evaluate(&alice, "rollout", Some("anyone")));

    api.advance_secs(30);
    // Unknown fields are ignored, as PUT ignores them.
    let on = alice
        .patch_flag("rollout", json!({ "enabled": true, "owner": "team-a" }))
        .ok();
    assert_eq!(on["enabled"], true);
    assert_eq!(
        on["percentage"], 25,
        "the rollout survives off and on: {on}"
    );
    assert_eq!(on["created_at"], created["created_at"]);
    assert_eq!(time(&on["updated_at"]), api.now());
    assert!(on.get("owner").is_none());
    assert_eq!(alice.get("/flags").ok()["flags"], json!([on]));
    // The rollout still decides: a subject above the percentage stays off.
    let (inside, outside) = {
        let subjects: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
        let inside = subjects
            .iter()
            .find(|s| bucket("rollout", s) <= 25)
            .unwrap()
            .clone();
        let outside = subjects
            .iter()
            .find(|s| bucket("rollout", s) > 25)
            .unwrap()
            .clone();
        (inside, outside)
    };
    assert!(evaluate(&alice, "rollout", Some(&inside)));
    assert!(!evaluate(&alice, "rollout", Some(&outside)));

    // A flag without a percentage stays without one.
    alice.set_flag("plain", json!({ "enabled": true })).ok();
    let plain = alice.patch_flag("plain", json!({ "enabled": false })).ok();
    assert!(plain.get("percentage").is_none(), "{plain}");
}

#[test]
fn patch_never_creates_a_flag() {
    let api = Api::start();
    let alice = api.user("alice");
    let body = alice
        .patch_flag("ghost", json!({ "enabled": true }))
        .error(404);
    assert_eq!(body["code"], "not_found", "{body}");
    alice.get("/flags/ghost").error(404);
    // Nor one another user owns.
    api.user("bob")
        .set_flag("bobs", json!({ "enabled": true, "percentage": 10 }))
        .ok();
    alice
        .patch_flag("bobs", json!({ "enabled": false }))
        .error(404);
    assert_eq!(alice.get("/flags").ok()["flags"], json!([]));
}

#[test]
fn patch_bodies_with_a_wrong_field_are_422_naming_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let flag = alice
        .set_flag("f", json!({ "enabled": true, "percentage": 40 }))
        .ok();
    let cases = [
        (json!({}), "enabled"),
        (json!({ "enabled": null }), "enabled"),
        (json!({ "enabled": "false" }), "enabled"),
        (json!({ "enabled": 0 }), "enabled"),
        (json!({ "percentage": 50 }), "enabled"),
        // A percentage would be dropped without a word: refused, PUT changes it.
        (json!({ "enabled": false, "percentage": 50 }), "percentage"),
        (
            json!({ "enabled": false, "percentage": null }),
            "percentage",
        ),
    ];
    for (body, field) in cases {
        alice.patch_flag("f", body).invalid(field);
    }
    // The body is checked before the flag is looked for.
    alice.patch_flag("ghost", json!({})).invalid("enabled");
    alice
        .patch_flag("a.b", json!({ "enabled": true }))
        .invalid("name");
    assert_eq!(alice.get("/flags").ok()["flags"], json!([flag]));
}

#[test]
fn patch_without_a_token_is_401() {
    let api = Api::start();
    let alice = api.user("alice");
    alice
        .set_flag("f", json!({ "enabled": true, "percentage": 40 }))
        .ok();
    api.anonymous()
        .patch_flag("f", json!({ "enabled": false }))
        .unauthorized();
    api.with_token("octo_not-a-token")
        .patch_flag("f", json!({ "enabled": false }))
        .unauthorized();
    assert_eq!(alice.get("/flags").ok()["flags"][0]["enabled"], true);
}

#[test]
fn list_shows_every_flag_of_the_caller() {
    let api = Api::start();
    let alice = api.user("alice");
    assert_eq!(alice.get("/flags").ok()["flags"], json!([]));
    let a = alice.set_flag("a", json!({ "enabled": true })).ok();
    let b = alice
        .set_flag("b", json!({ "enabled": false, "percentage": 50 }))
        .ok();
    let list = alice.get("/flags").ok();
    let mut flags = list["flags"].as_array().unwrap().clone();
    flags.sort_by_key(|f| f["name"].as_str().unwrap().to_owned());
    assert_eq!(flags, [a, b]);
    assert!(flags[0].get("percentage").is_none());
}

#[test]
fn delete_removes_the_flag_and_unknown_flags_are_404() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.get("/flags/ghost").error(404);
    alice.delete("/flags/ghost").error(404);

    alice.set_flag("temp", json!({ "enabled": true })).ok();
    assert!(evaluate(&alice, "temp", None));
    assert_eq!(alice.delete("/flags/temp").ok()["deleted"], true);
    alice.get("/flags/temp").error(404);
    alice.delete("/flags/temp").error(404);
    assert_eq!(alice.get("/flags").ok()["flags"], json!([]));

    // A new flag of the same name starts afresh.
    api.advance_secs(10);
    let reborn = alice.set_flag("temp", json!({ "enabled": true })).ok();
    assert_eq!(time(&reborn["created_at"]), api.now());
}

#[test]
fn evaluation_follows_enabled_and_the_documented_bucket() {
    let api = Api::start();
    let alice = api.user("alice");
    let subjects: Vec<String> = (0..150)
        .map(|i| format!("user-{i}"))
        .chain(["tenant 7/eu".into(), "ünïcödé".into(), "a&b=c".into()])
        .collect();

    alice.set_flag("plain", json!({ "enabled": true })).ok();
    alice
        .set_flag("off", json!({ "enabled": false, "percentage": 100 }))
        .ok();
    alice
        .set_flag("zero", json!({ "enabled": true, "percentage": 0 }))
        .ok();
    alice
        .set_flag("all", json!({ "enabled": true, "percentage": 100 }))
        .ok();
    alice
        .set_flag("half", json!({ "enabled": true, "percentage": 50 }))
        .ok();
    let mut in_half = 0;
    for subject in &subjects {
        assert!(evaluate(&alice, "plain", Some(subject)), "{subject}");
        assert!(!evaluate(&alice, "off", Some(subject)), "{subject}");
        assert!(!evaluate(&alice, "zero", Some(subject)), "{subject}");
        assert!(evaluate(&alice, "all", Some(subject)), "{subject}");
        let expected = bucket("half", subject) <= 50;
        assert_eq!(
            evaluate(&alice, "half", Some(subject)),
            expected,
            "{subject}"
        );
        in_half += usize::from(expected);
    }
    // The subjects are spread: the comparison above saw both answers.
    assert!(in_half > 0 && in_half < subjects.len(), "{in_half}");
}

#[test]
fn raising_the_percentage_only_adds_subjects() {
    let api = Api::start();
    let alice = api.user("alice");
    let subjects: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
    let mut previous: Vec<bool> = vec![false; subjects.len()];
    for percentage in [0, 10, 35, 70, 100] {
        alice
            .set_flag("ramp", json!({ "enabled": true, "percentage": percentage }))
            .ok();
        let now: Vec<bool> = subjects
            .iter()
            .map(|s| evaluate(&alice, "ramp", Some(s)))
            .collect();
        for (i, subject) in subjects.iter().enumerate() {
            assert!(!previous[i] || now[i], "{subject} dropped at {percentage}%");
            assert_eq!(now[i], i64::from(bucket("ramp", subject)) <= percentage);
        }
        previous = now;
    }
}

#[test]
fn the_default_subject_is_the_callers_login() {
    let api = Api::start();
    let alice = api.user("alice");
    // A flag on which alice's bucket is neither the first nor the last, so both a
    // percentage just below it and one at it are possible.
    let flag = (0..)
        .map(|i| format!("rollout-{i}"))
        .find(|f| (2..=99).contains(&bucket(f, "alice")))
        .unwrap();
    let alices = i64::from(bucket(&flag, "alice"));

    alice
        .set_flag(&flag, json!({ "enabled": true, "percentage": alices - 1 }))
        .ok();
    assert!(!evaluate(&alice, &flag, None));
    assert!(!evaluate(&alice, &flag, Some("alice")));
    alice
        .set_flag(&flag, json!({ "enabled": true, "percentage": alices }))
        .ok();
    assert!(evaluate(&alice, &flag, None));
    assert!(evaluate(&alice, &flag, Some("alice")));
}

#[test]
fn subject_is_1_to_256_printable_characters() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.set_flag("f", json!({ "enabled": true })).ok();
    assert!(evaluate(&alice, "f", Some(&"s".repeat(256))));
    assert!(evaluate(&alice, "f", Some(&"é".repeat(256))));
    for bad in [
        String::new(),
        "s".repeat(257),
        "tab\there".into(),
        "nul\0".into(),
    ] {
        alice
            .get(&format!("/flags/f?subject={}", encode(&bad)))
            .invalid("subject");
    }
}

#[test]
fn percentage_is_0_to_100() {
    let api = Api::start();
    let alice = api.user("alice");
    for percentage in [-1, 101, 1000] {
        alice
            .set_flag("p", json!({ "enabled": true, "percentage": percentage }))
            .invalid("percentage");
    }
    alice.get("/flags/p").error(404);
    for percentage in [0, 100] {
        let flag = alice
            .set_flag("p", json!({ "enabled": true, "percentage": percentage }))
            .ok();
        assert_eq!(flag["percentage"], percentage);
    }
}

#[test]
fn flag_bodies_with_a_wrong_field_are_422_naming_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let cases = [
        (json!({}), "enabled"),
        (json!({ "percentage": 50 }), "enabled"),
        (json!({ "enabled": null }), "enabled"),
        (json!({ "enabled": "true" }), "enabled"),
        (json!({ "enabled": 1 }), "enabled"),
        (json!({ "enabled": true, "percentage": null }), "percentage"),
        (json!({ "enabled": true, "percentage": "50" }), "percentage"),
        (json!({ "enabled": true, "percentage": 50.5 }), "percentage"),
    ];
    for (body, field) in cases {
        alice.set_flag("f", body).invalid(field);
    }
    alice.get("/flags/f").error(404);
    // Unknown fields are ignored.
    let flag = alice
        .set_flag("f", json!({ "enabled": true, "owner": "team-a" }))
        .ok();
    assert!(flag.get("owner").is_none());
}

#[test]
fn flag_names_are_1_to_100_letters_digits_underscores_and_hyphens() {
    let api = Api::start();
    let alice = api.user("alice");
    let longest = "F".repeat(100);
    assert_eq!(
        alice.set_flag(&longest, json!({ "enabled": true })).ok()["name"],
        longest.as_str()
    );
    assert!(evaluate(&alice, &longest, None));
    assert_eq!(
        alice.delete(&format!("/flags/{longest}")).ok()["deleted"],
        true
    );
    assert_eq!(
        alice.set_flag("%61-_9", json!({ "enabled": true })).ok()["name"],
        "a-_9"
    );

    let too_long = "F".repeat(101);
    for bad in [too_long.as_str(), "a.b", "a%20b", "a%2Fb", "%C3%A9"] {
        alice
            .set_flag(bad, json!({ "enabled": true }))
            .invalid("name");
        alice.get(&format!("/flags/{bad}")).invalid("name");
        alice.delete(&format!("/flags/{bad}")).invalid("name");
    }
    assert_eq!(
        alice.get("/flags").ok()["flags"].as_array().unwrap().len(),
        1
    );
}
