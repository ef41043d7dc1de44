//! `/locks`: acquire, release, renew, status, list; leases, client ids, fencing tokens and
//! expiry exact to the clock.

use std::sync::Arc;

use chrono::Duration;
use octostore_core::{ManualClock, SqliteBackend, Store};
use serde_json::json;
use uuid::Uuid;

use super::{int, text, time, Api};

#[test]
fn acquire_grants_a_lease_that_status_and_list_show() {
    let api = Api::start();
    let alice = api.user("alice");
    let now = api.now();

    let lease = alice.acquire("deploy", 30).ok();
    assert_eq!(lease["status"], "acquired");
    assert_eq!(lease["name"], "deploy");
    assert_eq!(lease["holder"], "alice");
    let lease_id = Uuid::parse_str(text(&lease["lease_id"])).expect("lease_id is a UUID");
    assert_eq!(lease_id.get_version_num(), 4, "lease ids are UUIDv4");
    assert!(int(&lease["fencing_token"]) >= 1);
    assert_eq!(time(&lease["expires_at"]), now + Duration::seconds(30));
    assert!(
        lease.get("client_id").is_none(),
        "absent optional fields are omitted: {lease}"
    );

    let status = alice.get("/locks/deploy").ok();
    assert_eq!(status["status"], "held");
    for field in ["name", "lease_id", "fencing_token", "expires_at", "holder"] {
        assert_eq!(status[field], lease[field], "{field}");
    }

    let list = alice.get("/locks").ok();
    assert_eq!(list["total"], 1);
    let locks = list["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1);
    for field in ["name", "lease_id", "fencing_token", "expires_at"] {
        assert_eq!(locks[0][field], lease[field], "{field}");
    }
}

#[test]
fn status_of_a_free_lock_is_available() {
    let api = Api::start();
    let status = api.user("alice").get("/locks/nobody-holds-this").ok();
    assert_eq!(status["status"], "available");
    assert_eq!(status["name"], "nobody-holds-this");
    assert!(status.get("lease_id").is_none(), "{status}");
}

#[test]
fn acquiring_a_lock_you_hold_answers_held_with_the_same_lease() {
    let api = Api::start();
    let alice = api.user("alice");
    let first = alice.acquire("deploy", 30).ok();
    api.advance_secs(10);

    let again = alice.acquire("deploy", 600).ok();
    assert_eq!(again["status"], "held");
    for field in ["name", "lease_id", "fencing_token", "expires_at", "holder"] {
        assert_eq!(
            again[field], first[field],
            "the lease is unchanged: {field}"
        );
    }
    // Another token of the same user, without a client id either, is the same caller.
    let again = api.user("alice").acquire("deploy", 30).ok();
    assert_eq!(again["status"], "held");
    assert_eq!(again["lease_id"], first["lease_id"]);
}

#[test]
fn a_lock_held_by_another_user_is_a_409_lock_conflict() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let lease = alice.acquire("deploy", 30).ok();

    let conflict = bob.acquire("deploy", 30).error(409);
    assert!(conflict["error"].is_string());
    assert_eq!(conflict["lock"]["name"], "deploy");
    assert_eq!(conflict["lock"]["holder"], "alice");
    assert_eq!(
        time(&conflict["lock"]["expires_at"]),
        time(&lease["expires_at"])
    );
    // The conflict changed nothing.
    assert_eq!(
        alice.get("/locks/deploy").ok()["lease_id"],
        lease["lease_id"]
    );
    assert_eq!(bob.get("/locks").ok()["total"], 0);
}

#[test]
fn a_lease_belongs_to_the_user_and_client_id_together() {
    let api = Api::start();
    let alice = api.user("alice");
    let acquire = |client_id: Option<&str>| {
        let mut body = json!({ "ttl_seconds": 30 });
        if let Some(id) = client_id {
            body["client_id"] = json!(id);
        }
        alice.post("/locks/deploy/acquire", &body)
    };

    let lease = acquire(Some("worker-7:host-a")).ok();
    assert_eq!(lease["status"], "acquired");
    assert_eq!(lease["client_id"], "worker-7:host-a");

    let same = acquire(Some("worker-7:host-a")).ok();
    assert_eq!(same["status"], "held");
    assert_eq!(same["lease_id"], lease["lease_id"]);
    assert_eq!(same["fencing_token"], lease["fencing_token"]);

    // The same user from another process (another client id, or none) is excluded.
    for other in [Some("worker-8:host-b"), None] {
        let conflict = acquire(other).error(409);
        assert_eq!(conflict["lock"]["holder"], "alice", "{other:?}");
        assert_eq!(conflict["lock"]["name"], "deploy");
    }
    let listed = alice.get("/locks").ok();
    assert_eq!(listed["locks"][0]["client_id"], "worker-7:host-a");
    assert_eq!(
        alice.get("/locks/deploy").ok()["client_id"],
        "worker-7:host-a"
    );

    // The lease id alone identifies the lease: renew and release need no client id.
    let lease_id = text(&lease["lease_id"]);
    assert_eq!(alice.renew("deploy", lease_id, 60).ok()["status"], "held");
    assert_eq!(alice.release("deploy", lease_id).ok()["status"], "released");
    // Free again: a caller without a client id gets it.
    assert_eq!(acquire(None).ok()["status"], "acquired");
}

#[test]
fn client_id_is_validated_at_its_bounds() {
    let api = Api::start();
    let alice = api.user("alice");
    let longest = format!("a.b:c_d-{}", "x".repeat(120));
    assert_eq!(longest.len(), 128);
    let reply = alice.post(
        "/locks/one/acquire",
        &json!({ "ttl_seconds": 5, "client_id": longest }),
    );
    assert_eq!(reply.ok()["client_id"], longest.as_str());

    for bad in [
        json!(""),
        json!("x".repeat(129)),
        json!("has space"),
        json!("slash/y"),
        json!(7),
        json!(null),
    ] {
        alice
            .post(
                "/locks/two/acquire",
                &json!({ "ttl_seconds": 5, "client_id": bad }),
            )
            .invalid("client_id");
    }
    assert_eq!(alice.get("/locks/two").ok()["status"], "available");
}

#[test]
fn release_frees_the_lock_once() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let lease = alice.acquire("deploy", 30).ok();
    let lease_id = text(&lease["lease_id"]);

    let released = alice.release("deploy", lease_id).ok();
    assert_eq!(released["status"], "released");
    assert!(released["message"].is_string());
    assert_eq!(alice.get("/locks/deploy").ok()["status"], "available");
    assert_eq!(alice.get("/locks").ok()["total"], 0);

    // The lease is gone: releasing or renewing it again is 404.
    alice.release("deploy", lease_id).error(404);
    alice.renew("deploy", lease_id, 30).error(404);
    // Someone else may take the lock at once.
    assert_eq!(bob.acquire("deploy", 30).ok()["status"], "acquired");
}

#[test]
fn release_and_renew_with_a_wrong_lease_id_are_404_and_change_nothing() {
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("deploy", 30).ok();
    let stranger = Uuid::new_v4().to_string();

    alice.release("deploy", &stranger).error(404);
    alice.renew("deploy", &stranger, 600).error(404);
    // The right lease id on the wrong lock is no better.
    alice.acquire("other", 30).ok();
    alice.release("other", text(&lease["lease_id"])).error(404);
    alice
        .renew("other", text(&lease["lease_id"]), 600)
        .error(404);
    // Nor on a lock nobody holds.
    alice.release("free", text(&lease["lease_id"])).error(404);

    let status = alice.get("/locks/deploy").ok();
    assert_eq!(status["lease_id"], lease["lease_id"]);
    assert_eq!(status["expires_at"], lease["expires_at"]);
}

#[test]
fn renew_moves_expiry_to_now_plus_ttl_and_keeps_the_token() {
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("deploy", 30).ok();
    let lease_id = text(&lease["lease_id"]);
    api.advance_secs(20);

    let renewed = alice.renew("deploy", lease_id, 60).ok();
    assert_eq!(renewed["status"], "held");
    assert_eq!(renewed["name"], "deploy");
    assert_eq!(renewed["holder"], "alice");
    assert_eq!(renewed["lease_id"], lease["lease_id"]);
    assert_eq!(renewed["fencing_token"], lease["fencing_token"]);
    assert_eq!(
        time(&renewed["expires_at"]),
        api.now() + Duration::seconds(60)
    );
    assert_eq!(
        alice.get("/locks/deploy").ok()["expires_at"],
        renewed["expires_at"]
    );

    // A renewal may shorten the lease too.
    let shorter = alice.renew("deploy", lease_id, 1).ok();
    assert_eq!(
        time(&shorter["expires_at"]),
        api.now() + Duration::seconds(1)
    );
}

#[test]
fn fencing_tokens_strictly_increase_across_locks_and_reacquisitions() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let mut last = 0;
    let mut next = |reply: &super::Reply| {
        let lease = reply.ok();
        assert_eq!(lease["status"], "acquired", "{lease}");
        let token = int(&lease["fencing_token"]);
        assert!(token > last, "fencing token {token} after {last}");
        last = token;
        lease
    };
    let a = next(&alice.acquire("a", 30));
    next(&bob.acquire("b", 30));
    next(&alice.acquire("c", 30));
    alice.release("a", text(&a["lease_id"])).ok();
    let a = next(&bob.acquire("a", 30));
    bob.release("a", text(&a["lease_id"])).ok();
    next(&alice.acquire("a", 30));
    // An expired lease replaced by a new one also gets a greater token.
    api.advance_secs(30);
    next(&bob.acquire("b", 30));
    next(&bob.acquire("c", 30));
}

#[test]
fn a_lease_dies_exactly_at_expires_at() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let lease = alice.acquire("deploy", 30).ok();
    let expires_at = time(&lease["expires_at"]);
    let lease_id = text(&lease["lease_id"]);

    api.advance(expires_at - api.now() - Duration::milliseconds(1));
    assert_eq!(alice.get("/locks/deploy").ok()["status"], "held");
    assert_eq!(
        bob.acquire("deploy", 30).error(409)["lock"]["holder"],
        "alice"
    );
    assert_eq!(alice.get("/locks").ok()["total"], 1);

    api.advance(Duration::milliseconds(1));
    assert_eq!(api.now(), expires_at);
    assert_eq!(alice.get("/locks/deploy").ok()["status"], "available");
    assert_eq!(alice.get("/locks").ok()["total"], 0);
    alice.renew("deploy", lease_id, 30).error(404);
    alice.release("deploy", lease_id).error(404);

    let taken = bob.acquire("deploy", 30).ok();
    assert_eq!(taken["status"], "acquired");
    assert_eq!(taken["holder"], "bob");
    assert_ne!(taken["lease_id"], lease["lease_id"]);
    assert!(int(&taken["fencing_token"]) > int(&lease["fencing_token"]));
}

#[test]
fn an_expired_lease_of_your_own_is_replaced_by_a_new_one() {
    let api = Api::start();
    let alice = api.user("alice");
    let first = alice.acquire("deploy", 5).ok();
    api.advance_secs(5);
    let second = alice.acquire("deploy", 5).ok();
    assert_eq!(second["status"], "acquired");
    assert_ne!(second["lease_id"], first["lease_id"]);
    assert!(int(&second["fencing_token"]) > int(&first["fencing_token"]));
    // The dead lease's id names nothing any more.
    alice
        .renew("deploy", text(&first["lease_id"]), 60)
        .error(404);
    alice.release("deploy", text(&first["lease_id"])).error(404);
    assert_eq!(
        alice.get("/locks/deploy").ok()["lease_id"],
        second["lease_id"]
    );
}

#[test]
fn fencing_tokens_keep_increasing_across_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let clock = Arc::new(ManualClock::default());
    let open = || {
        Store::builder()
            .backend(SqliteBackend::open(&path).unwrap())
            .clock(clock.clone())
            .build()
    };
    let (last, token) = {
        let api = Api::serve(open(), clock.clone());
        let token = api.server.token("alice");
        let alice = api.with_token(&token);
        let mut last = 0;
        for name in ["a", "b", "c"] {
            let lease = alice.acquire(name, 60).ok();
            assert!(int(&lease["fencing_token"]) > last);
            last = int(&lease["fencing_token"]);
        }
        (last, token)
    };
    let api = Api::serve(open(), clock.clone());
    let alice = api.with_token(&token);
    // The leases survived the restart, and new ones get greater tokens.
    assert_eq!(alice.get("/locks").ok()["total"], 3);
    let lease = alice.acquire("d", 60).ok();
    assert!(int(&lease["fencing_token"]) > last, "{lease} after {last}");
}

#[test]
fn list_shows_only_the_callers_live_leases() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.acquire("short", 10).ok();
    alice.acquire("long", 100).ok();
    bob.acquire("bobs", 100).ok();

    let list = alice.get("/locks").ok();
    assert_eq!(list["total"], 2);
    let mut names: Vec<&str> = list["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| text(&l["name"]))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["long", "short"]);

    api.advance_secs(10);
    let list = alice.get("/locks").ok();
    assert_eq!(list["total"], 1);
    assert_eq!(list["locks"][0]["name"], "long");
}

/// The names and holders of a list of locks, in its order.
fn holders(list: &serde_json::Value) -> Vec<(String, String)> {
    (list["locks"].as_array().unwrap().iter())
        .map(|l| (text(&l["name"]).to_owned(), text(&l["holder"]).to_owned()))
        .collect()
}

#[test]
fn all_true_lists_every_users_live_leases_by_name() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.acquire("short", 10).ok();
    alice.acquire("long", 100).ok();
    let bobs = bob.acquire("bobs", 100).ok();

    let list = alice.get("/locks?all=true").ok();
    let pairs = |n: &str, h: &str| (n.to_owned(), h.to_owned());
    assert_eq!(
        holders(&list),
        [
            pairs("bobs", "bob"),
            pairs("long", "alice"),
            pairs("short", "alice")
        ]
    );
    assert_eq!(list["total"], 3);
    assert!(
        list.get("next").is_none(),
        "one page holds them all: {list}"
    );
    let listed_bobs = &list["locks"][0];
    for field in ["lease_id", "fencing_token", "expires_at"] {
        assert_eq!(listed_bobs[field], bobs[field], "{field}");
    }
    // Without `all`, the caller's own, as before; and no `next`.
    let own = bob.get("/locks").ok();
    assert_eq!(holders(&own), [pairs("bobs", "bob")]);
    assert!(own.get("next").is_none());
    assert_eq!(holders(&bob.get("/locks?all=false").ok()), holders(&own));

    api.advance_secs(10);
    let list = bob.get("/locks?all=true").ok();
    assert_eq!(
        holders(&list),
        [pairs("bobs", "bob"), pairs("long", "alice")],
        "a dead lease is left out"
    );
}

#[test]
fn all_true_pages_follow_next_over_every_lock_once() {
    let api = Api::start();
    let users = [api.user("alice"), api.user("bob")];
    for i in 0..5 {
        users[i % 2].acquire(&format!("lock-{i}"), 100).ok();
    }
    let mut listed = Vec::new();
    let mut path = "/locks?all=true&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = users[0].get(&path).ok();
        pages += 1;
        assert_eq!(page["total"], page["locks"].as_array().unwrap().len());
        listed.extend(holders(&page).into_iter().map(|(name, _)| name));
        match page.get("next") {
            Some(next) => path = format!("/locks?all=true&limit=2&after={}", text(next)),
            None => break,
        }
    }
    assert_eq!(listed, ["lock-0", "lock-1", "lock-2", "lock-3", "lock-4"]);
    assert_eq!(pages, 3);
    let after = users[1].get("/locks?all=true&after=lock-3").ok();
    assert_eq!(holders(&after), [("lock-4".into(), "alice".into())]);
}

#[test]
fn all_after_and_limit_are_checked_whenever_given() {
    let api = Api::start();
    let alice = api.user("alice");
    for bad in ["yes", "1", ""] {
        alice.get(&format!("/locks?all={bad}")).invalid("all");
    }
    for bad in ["0", "1001", "-1", "ten", "1.5"] {
        alice
            .get(&format!("/locks?all=true&limit={bad}"))
            .invalid("limit");
        alice.get(&format!("/locks?limit={bad}")).invalid("limit");
    }
    for bad in ["a%20b", "", &"x".repeat(129)] {
        alice
            .get(&format!("/locks?all=true&after={bad}"))
            .invalid("after");
    }
    alice.acquire("x", 100).ok();
    let most = alice.get("/locks?all=true&limit=1000").ok();
    assert_eq!(most["total"], 1);
    let one = alice.get("/locks?all=true&limit=1").ok();
    assert_eq!(one["next"], "x", "a full page has a next");
}

#[test]
fn ttl_seconds_is_1_to_3600_on_acquire_and_renew() {
    let api = Api::start();
    let alice = api.user("alice");
    for ttl in [0, 3601, -1, i64::MAX] {
        alice.acquire("bounds", ttl).invalid("ttl_seconds");
    }
    assert_eq!(alice.get("/locks/bounds").ok()["status"], "available");

    let now = api.now();
    let one = alice.acquire("one", 1).ok();
    assert_eq!(time(&one["expires_at"]), now + Duration::seconds(1));
    let hour = alice.acquire("hour", 3600).ok();
    assert_eq!(time(&hour["expires_at"]), now + Duration::seconds(3600));

    let lease_id = text(&hour["lease_id"]);
    for ttl in [0, 3601, -5] {
        alice.renew("hour", lease_id, ttl).invalid("ttl_seconds");
    }
    assert_eq!(
        alice.get("/locks/hour").ok()["expires_at"],
        hour["expires_at"]
    );
    alice.renew("hour", lease_id, 1).ok();
    let renewed = alice.renew("hour", lease_id, 3600).ok();
    assert_eq!(time(&renewed["expires_at"]), now + Duration::seconds(3600));
}

#[test]
fn lock_bodies_with_a_wrong_field_are_422_naming_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("deploy", 30).ok();
    let lease_id = text(&lease["lease_id"]).to_owned();

    for body in [
        json!({}),
        json!({ "ttl_seconds": null }),
        json!({ "ttl_seconds": "30" }),
        json!({ "ttl_seconds": 1.5 }),
        json!({ "ttl_seconds": true }),
        json!({ "ttl_seconds": 1e30 }),
    ] {
        alice
            .post("/locks/other/acquire", &body)
            .invalid("ttl_seconds");
    }
    for body in [
        json!({}),
        json!({ "lease_id": null }),
        json!({ "lease_id": "not-a-uuid" }),
        json!({ "lease_id": 42 }),
    ] {
        alice
            .post("/locks/deploy/release", &body)
            .invalid("lease_id");
        let mut renew = body.clone();
        renew["ttl_seconds"] = json!(30);
        alice
            .post("/locks/deploy/renew", &renew)
            .invalid("lease_id");
    }
    for body in [
        json!({ "lease_id": lease_id }),
        json!({ "lease_id": lease_id, "ttl_seconds": null }),
        json!({ "lease_id": lease_id, "ttl_seconds": "60" }),
    ] {
        alice
            .post("/locks/deploy/renew", &body)
            .invalid("ttl_seconds");
    }
    // Unknown fields are ignored.
    let reply = alice.post(
        "/locks/extra/acquire",
        &json!({ "ttl_seconds": 30, "colour": "blue" }),
    );
    assert_eq!(reply.ok()["status"], "acquired");
    // Nothing above disturbed the lease.
    assert_eq!(
        alice.get("/locks/deploy").ok()["expires_at"],
        lease["expires_at"]
    );
}

#[test]
fn lock_names_are_1_to_128_letters_digits_underscores_and_hyphens() {
    let api = Api::start();
    let alice = api.user("alice");
    let longest = "L".repeat(128);
    let lease = alice.acquire(&longest, 30).ok();
    assert_eq!(lease["name"], longest.as_str());
    assert_eq!(
        alice.get(&format!("/locks/{longest}")).ok()["status"],
        "held"
    );
    let lease_id = text(&lease["lease_id"]);
    alice.renew(&longest, lease_id, 30).ok();
    alice.release(&longest, lease_id).ok();
    assert_eq!(alice.acquire("Az09_-", 30).ok()["name"], "Az09_-");

    let too_long = "L".repeat(129);
    let uuid = Uuid::new_v4().to_string();
    for bad in [
        too_long.as_str(),
        "a.b",
        "a%20b",
        "a%2Fb",
        "%C3%A9",
        "a:b",
        "%00",
    ] {
        alice.acquire(bad, 30).invalid("name");
        alice.release(bad, &uuid).invalid("name");
        alice.renew(bad, &uuid, 30).invalid("name");
        alice.get(&format!("/locks/{bad}")).invalid("name");
    }
    assert_eq!(alice.get("/locks").ok()["total"], 1);
}

#[test]
fn percent_encoded_valid_lock_names_are_decoded() {
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("%61b%63", 30).ok();
    assert_eq!(lease["name"], "abc");
    assert_eq!(alice.get("/locks/abc").ok()["lease_id"], lease["lease_id"]);
}
