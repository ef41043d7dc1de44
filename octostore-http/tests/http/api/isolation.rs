//! Two users on one server: limits, flags and configs are private to their user; locks share
//! one namespace, where others see the holder but cannot release or renew the lease.

use serde_json::json;

use super::{text, Api};

#[test]
fn bob_sees_alices_lock_held_by_her_but_cannot_release_or_renew_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let lease = alice.acquire("shared", 60).ok();

    let seen = bob.get("/locks/shared").ok();
    assert_eq!(seen["status"], "held");
    assert_eq!(seen["holder"], "alice");
    assert_eq!(seen["expires_at"], lease["expires_at"]);
    assert_eq!(bob.get("/locks").ok()["total"], 0);

    // Even knowing the lease id, bob is not its holder.
    let lease_id = text(&lease["lease_id"]);
    bob.release("shared", lease_id).error(404);
    bob.renew("shared", lease_id, 3600).error(404);
    assert_eq!(
        bob.acquire("shared", 60).error(409)["lock"]["holder"],
        "alice"
    );

    let after = alice.get("/locks/shared").ok();
    assert_eq!(after["lease_id"], lease["lease_id"]);
    assert_eq!(after["expires_at"], lease["expires_at"]);
    assert_eq!(after["fencing_token"], lease["fencing_token"]);
    assert_eq!(alice.release("shared", lease_id).ok()["status"], "released");
}

#[test]
fn rate_limits_are_private() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.check("api", 2, 60).ok();
    alice.check("api", 2, 60).ok();

    bob.get("/limits/api").error(404);
    bob.delete("/limits/api").error(404);
    assert_eq!(bob.get("/limits").ok()["limits"], json!([]));
    // Bob's check of the same name is his own limit, and leaves alice's alone.
    let bobs = bob.check("api", 10, 60).ok();
    assert_eq!(bobs["allowed"], true);
    assert_eq!(bobs["remaining"], 9);

    let alices = alice.get("/limits/api").ok();
    assert_eq!(alices["allowed"], false);
    assert_eq!(alices["remaining"], 0);
    let listed = alice.get("/limits").ok();
    assert_eq!(listed["limits"][0]["max_requests"], 2);
    assert_eq!(listed["limits"][0]["current_count"], 2);
    // Resetting his does not reset hers.
    bob.delete("/limits/api").ok();
    assert_eq!(alice.get("/limits/api").ok()["remaining"], 0);
}

#[test]
fn flags_are_private() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let hers = alice
        .set_flag("beta", json!({ "enabled": true, "percentage": 40 }))
        .ok();

    bob.get("/flags/beta").error(404);
    bob.get("/flags/beta?subject=alice").error(404);
    bob.delete("/flags/beta").error(404);
    assert_eq!(bob.get("/flags").ok()["flags"], json!([]));
    api.advance_secs(10);
    let his = bob.set_flag("beta", json!({ "enabled": false })).ok();
    assert_ne!(his["created_at"], hers["created_at"], "his is a new flag");
    bob.delete("/flags/beta").ok();

    let list = alice.get("/flags").ok();
    assert_eq!(list["flags"], json!([hers]));
}

#[test]
fn configs_are_private() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice
        .put_config(
            "db.url",
            json!({ "value": "alice-db", "description": "hers" }),
        )
        .ok();
    alice
        .put_config("db.url", json!({ "value": "alice-db-2" }))
        .ok();

    bob.get("/config/db.url").error(404);
    bob.get("/config/db.url?version=1").error(404);
    bob.get("/config/db.url/history").error(404);
    bob.delete("/config/db.url").error(404);
    assert_eq!(bob.get("/config").ok()["configs"], json!([]));
    let his = bob.put_config("db.url", json!({ "value": "bob-db" })).ok();
    assert_eq!(his["version"], 1, "his is a new key");
    assert!(his.get("description").is_none(), "{his}");
    bob.delete("/config/db.url").ok();

    let latest = alice.get("/config/db.url").ok();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["value"], "alice-db-2");
    assert_eq!(
        alice.get("/config/db.url/history").ok()["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn logins_differing_only_in_case_are_one_user() {
    let api = Api::start();
    let alice = api.user("alice");
    let alice_upper = api.user("ALICE");
    alice.set_flag("mine", json!({ "enabled": true })).ok();
    assert_eq!(alice_upper.get("/flags/mine").ok()["enabled"], true);
}
