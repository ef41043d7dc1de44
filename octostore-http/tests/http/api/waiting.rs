//! `POST /locks/{name}/acquire` with `wait_seconds`: waiters granted in arrival order, a
//! closed connection leaving the queue, the holder's expiry letting the next one in, a wait
//! that ends in the usual 409, and the parameter's bounds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use octostore_core::{ManualClock, Store, SystemClock};
use serde_json::{json, Value};

use super::{text, Api, Caller};

/// `POST /locks/{name}/acquire` waiting up to `wait_seconds`.
fn acquire_waiting(caller: &Caller<'_>, name: &str, wait_seconds: i64) -> super::Reply {
    caller.post(
        &format!("/locks/{name}/acquire"),
        &json!({ "ttl_seconds": 30, "wait_seconds": wait_seconds }),
    )
}

/// How many acquires wait for `name`, as `GET /locks/{name}` says.
fn waiters(caller: &Caller<'_>, name: &str) -> Value {
    caller.get(&format!("/locks/{name}")).ok()["waiters"].clone()
}

/// Returns once `name` has `n` waiters. The server queues a waiter on its own time, so this
/// asks until it does (a condition, not a guess of how long it takes); ten seconds without
/// it is a failure, not a hang.
fn until_waiters(caller: &Caller<'_>, name: &str, n: usize) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while waiters(caller, name) != json!(n) {
        assert!(Instant::now() < give_up, "{name} never had {n} waiters");
        std::thread::yield_now();
    }
}

#[test]
fn waiters_are_granted_the_lock_in_arrival_order() {
    let api = Api::start();
    let (alice, bob, carol) = (api.user("alice"), api.user("bob"), api.user("carol"));
    let held = alice.acquire("deploy", 30).ok();
    assert_eq!(waiters(&alice, "deploy"), json!(0));

    std::thread::scope(|scope| {
        let bobs = scope.spawn(|| acquire_waiting(&bob, "deploy", 60));
        until_waiters(&alice, "deploy", 1);
        let carols = scope.spawn(|| acquire_waiting(&carol, "deploy", 60));
        until_waiters(&alice, "deploy", 2);
        // Someone who does not wait finds the lock held while others queue for it.
        alice.release("deploy", text(&held["lease_id"])).ok();
        let dave = api.user("dave").acquire("deploy", 30);
        assert_eq!(dave.error(409)["code"], "lock_held");

        let bobs = bobs.join().unwrap().ok();
        assert_eq!(
            (&bobs["status"], &bobs["holder"]),
            (&json!("acquired"), &json!("bob"))
        );
        assert!(bobs["fencing_token"].as_u64() > held["fencing_token"].as_u64());
        assert_eq!(waiters(&alice, "deploy"), json!(1), "carol still waits");
        bob.release("deploy", text(&bobs["lease_id"])).ok();
        let carols = carols.join().unwrap().ok();
        assert_eq!(carols["holder"], "carol");
        assert!(carols["fencing_token"].as_u64() > bobs["fencing_token"].as_u64());
    });
    assert_eq!(waiters(&alice, "deploy"), json!(0));
}

/// Sends `token`'s `POST /locks/{name}/acquire` waiting up to `wait_seconds` on a connection
/// of its own, and leaves the answer unread.
fn send_waiting(api: &Api, token: &str, name: &str, wait_seconds: u64) -> TcpStream {
    let body = json!({ "ttl_seconds": 30, "wait_seconds": wait_seconds }).to_string();
    let url = api.server.url("/");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /locks/{name}/acquire HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

#[test]
fn a_server_that_stops_ends_its_waits_with_a_503_that_took_nothing() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.acquire("deploy", 300).ok();
    let mut bob = send_waiting(&api, &api.server.token("bob"), "deploy", 20);
    until_waiters(&alice, "deploy", 1);
    drop(api);

    let mut answer = String::new();
    bob.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("store_busy"), "{answer}");
}

#[test]
fn a_waiter_whose_connection_closes_leaves_the_queue_and_never_gets_the_lease() {
    let api = Api::start();
    let alice = api.user("alice");
    let held = alice.acquire("deploy", 30).ok();

    let bob = send_waiting(&api, &api.server.token("bob"), "deploy", 300);
    until_waiters(&alice, "deploy", 1);
    drop(bob);
    until_waiters(&alice, "deploy", 0);

    alice.release("deploy", text(&held["lease_id"])).ok();
    let status = alice.get("/locks/deploy").ok();
    assert_eq!(status["status"], "available", "{status}");
}

#[test]
fn a_wait_that_ends_is_the_usual_409_and_leaves_the_queue() {
    let api = Api::start();
    let alice = api.user("alice");
    alice.acquire("deploy", 300).ok();
    let conflict = acquire_waiting(&api.user("bob"), "deploy", 1).error(409);
    assert_eq!(conflict["code"], "lock_held");
    assert_eq!(conflict["lock"]["holder"], "alice");
    assert_eq!(waiters(&alice, "deploy"), json!(0));
}

#[test]
fn the_holders_expiry_lets_the_waiter_in_without_a_release_or_a_sweep() {
    // Real time: the waiter is woken by the lease's own end, a second from now.
    let store = Store::builder().clock(Arc::new(SystemClock)).build();
    let api = Api::serve(store, Arc::new(ManualClock::default()));
    let alice = api.user("alice");
    let held = alice.acquire("deploy", 1).ok();
    let bobs = acquire_waiting(&api.user("bob"), "deploy", 60).ok();
    assert_eq!(
        (&bobs["status"], &bobs["holder"]),
        (&json!("acquired"), &json!("bob"))
    );
    assert!(bobs["fencing_token"].as_u64() > held["fencing_token"].as_u64());
}

#[test]
fn a_free_lock_is_granted_at_once_whatever_the_wait() {
    let api = Api::start();
    let lease = acquire_waiting(&api.user("alice"), "deploy", 300).ok();
    assert_eq!(lease["status"], "acquired");
}

#[test]
fn wait_seconds_is_a_whole_number_from_0_to_300() {
    let api = Api::start();
    let alice = api.user("alice");
    for bad in [json!(301), json!(-1), json!("10"), json!(1.5)] {
        alice
            .post(
                "/locks/deploy/acquire",
                &json!({ "ttl_seconds": 30, "wait_seconds": bad }),
            )
            .invalid("wait_seconds");
    }
    let status = alice.get("/locks/deploy").ok();
    assert_eq!(status["status"], "available", "nothing was acquired");
}
