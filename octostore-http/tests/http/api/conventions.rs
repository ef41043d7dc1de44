//! The conventions that hold for every operation: 401 with `WWW-Authenticate`, JSON 404 for
//! unknown paths, 405 with `Allow`, 422 naming the field for any problem with a body, 429 for
//! quotas, and no 5xx for odd requests. (413 for bodies over the cap is in `body_cap`.)

use std::collections::BTreeSet;

use octostore_core::{Quotas, Settings};
use octostore_http::operation::{Access, Body, Operation};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{text, Api, Caller, Reply};

/// Every operation that needs a token, from the API's table: method, path (with its required
/// query), and a valid body if it reads one.
fn protected_operations() -> Vec<(Method, String, Option<Value>)> {
    let lease = json!({ "lease_id": Uuid::new_v4(), "ttl_seconds": 10 });
    Operation::ALL
        .iter()
        .filter(|op| op.access() == Access::Token)
        .map(|op| {
            let body = match op {
                Operation::AcquireLock => Some(json!({ "ttl_seconds": 10 })),
                Operation::ReleaseLock | Operation::RenewLock => Some(lease.clone()),
                Operation::CheckLimit => Some(json!({ "max_requests": 5, "window_seconds": 60 })),
                Operation::SetFlag | Operation::PatchFlag => Some(json!({ "enabled": true })),
                Operation::PutConfig => Some(json!({ "value": 1 })),
                Operation::RollbackConfig => Some(json!({ "version": 1 })),
                Operation::PutConfigSchema => Some(json!({ "schema": true })),
                Operation::AddFlagRule | Operation::SetSegment => {
                    Some(json!({ "constraints": [] }))
                }
                Operation::SetFlagVariants => Some(json!({ "variants": [] })),
                Operation::SetFlagPrerequisites => Some(json!({ "prerequisites": [] })),
                Operation::EvaluateFlagInContext
                | Operation::OfrepEvaluateFlag
                | Operation::OfrepEvaluateFlags => Some(json!({ "context": {} })),
                _ if op.body() == Body::Json => panic!("no valid body for {op:?}"),
                _ => None,
            };
            let mut path = op.path_with("n");
            // Their required queries.
            match op {
                Operation::DiffConfig => path.push_str("?from=1&to=1"),
                Operation::RemoveFlagRule => path.push_str("?index=0"),
                _ => {}
            }
            (op.method(), path, body)
        })
        .collect()
}

/// Every operation that reads a JSON body, with a valid body.
pub(super) fn body_operations() -> Vec<(Method, String, Value)> {
    protected_operations()
        .into_iter()
        .filter_map(|(method, path, body)| Some((method, path, body?)))
        .collect()
}

/// Whether the path is OFREP's, whose failures are its own shapes (400 `PARSE_ERROR` for a
/// body that is not JSON, not 422).
fn is_ofrep(path: &str) -> bool {
    path.starts_with("/ofrep/")
}

fn call(caller: &Caller<'_>, method: &Method, path: &str, body: Option<&Value>) -> Reply {
    match body {
        Some(body) => caller.raw(method.clone(), path, body.to_string()),
        None => caller.send(method.clone(), path, None, None),
    }
}

#[test]
fn every_protected_operation_without_a_valid_token_is_401_with_a_bearer_challenge() {
    let api = Api::start();
    let rotated_away = api.server.token("alice");
    api.with_token(&rotated_away)
        .post("/auth/token/rotate", &json!({}))
        .ok();
    let alice_token = api.server.token("alice");
    let callers = [
        api.anonymous(),
        api.with_authorization(&format!("Basic {alice_token}")),
        api.with_authorization("Bearer"),
        api.with_authorization("Bearer "),
        api.with_authorization(&format!("Token {alice_token}")),
        api.with_authorization(&alice_token),
        api.with_token("octo_not-a-token"),
        api.with_token(&format!("{alice_token}x")),
        api.with_token(&rotated_away),
    ];
    for (method, path, body) in protected_operations() {
        let path = path.as_str();
        for caller in &callers {
            let reply = call(caller, &method, path, body.as_ref());
            assert_eq!(reply.status, 401, "{method} {path}: {reply:?}");
            reply.unauthorized();
        }
    }
    // Nothing was done on anyone's behalf.
    let alice = api.with_token(&alice_token);
    assert_eq!(alice.get("/locks/l").ok()["status"], "available");
    alice.get("/limits/r").error(404);
    alice.get("/flags/f").error(404);
    alice.get("/config/c").error(404);
}

#[test]
fn a_bad_token_is_401_before_a_bad_body_or_name_is_422() {
    let api = Api::start();
    let caller = api.with_token("octo_not-a-token");
    for (method, path, body) in body_operations() {
        let path = path.as_str();
        // The name segment (`n`) made unparsable: a stray '%'.
        let segments: Vec<&str> = path.split('/').collect();
        let named = segments.contains(&"n");
        let bad_name = segments
            .iter()
            .map(|s| if *s == "n" { "%zz" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let mut cases = vec![
            (path, "not json".to_owned()),
            (path, "{}".to_owned()),
            (path, "[]".to_owned()),
        ];
        if named {
            cases.push((bad_name.as_str(), body.to_string()));
        }
        for (path, body) in cases {
            let reply = caller.raw(method.clone(), path, body.clone());
            assert_eq!(reply.status, 401, "{method} {path} {body}: {reply:?}");
            reply.unauthorized();
        }
    }
    for path in ["/config/c?version=x", "/config/%zz", "/flags/%zz?subject=s"] {
        let reply = caller.send(Method::GET, path, None, None);
        assert_eq!(reply.status, 401, "GET {path}: {reply:?}");
        reply.unauthorized();
    }
}

#[test]
fn every_protected_operation_with_a_valid_token_is_answered() {
    let api = Api::start();
    // The bearer scheme is case-insensitive.
    let token = api.server.token("alice");
    for alice in [
        api.with_token(&token),
        api.with_authorization(&format!("bearer {token}")),
    ] {
        for (method, path, body) in protected_operations() {
            let path = path.as_str();
            if path == "/auth/token/rotate" {
                continue;
            }
            let reply = call(&alice, &method, path, body.as_ref());
            assert!(
                [200, 404].contains(&reply.status.as_u16()),
                "{method} {path}: {reply:?}"
            );
            reply.json();
        }
    }
}

#[test]
fn unknown_paths_are_404_json() {
    let api = Api::start();
    let alice = api.user("alice");
    for path in [
        "/",
        "/nope",
        "/v1/locks",
        "/locks/a/steal",
        "/locks/a/acquire/now",
        "/limits/a/check/again",
        "/flags/a/history",
        "/config/a/b",
        "/config/a/history/1",
        "/health/deep",
    ] {
        for caller in [&alice, &api.anonymous()] {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let reply = caller.send(method.clone(), path, None, None);
                assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
                reply.error(404);
            }
        }
    }
}

#[test]
fn a_method_a_path_does_not_have_is_405_with_allow() {
    let api = Api::start();
    let alice = api.user("alice");
    let cases: [(Method, &str, &[&str]); 16] = [
        (Method::POST, "/health", &["GET"]),
        (Method::DELETE, "/metrics", &["GET"]),
        (Method::PUT, "/openapi.yaml", &["GET"]),
        (Method::GET, "/auth/token/rotate", &["POST"]),
        (Method::POST, "/auth/github", &["GET"]),
        (Method::GET, "/locks/l/acquire", &["POST"]),
        (Method::PUT, "/locks/l/release", &["POST"]),
        (Method::DELETE, "/locks/l/renew", &["POST"]),
        (Method::DELETE, "/locks/l", &["GET"]),
        (Method::POST, "/locks", &["GET"]),
        (Method::GET, "/limits/r/check", &["POST"]),
        (Method::PUT, "/limits/r", &["GET", "DELETE"]),
        (Method::DELETE, "/limits", &["GET"]),
        (Method::POST, "/flags/f", &["PUT", "GET", "DELETE", "PATCH"]),
        (Method::PATCH, "/config/c", &["PUT", "GET", "DELETE"]),
        (Method::PUT, "/config/c/history", &["GET"]),
    ];
    for (method, path, allowed) in cases {
        for caller in [&alice, &api.anonymous()] {
            let reply = caller.raw(method.clone(), path, "{}");
            assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
            reply.error(405);
            let allow: BTreeSet<String> = reply
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            let expected: BTreeSet<String> = allowed.iter().map(|m| m.to_string()).collect();
            assert_eq!(allow, expected, "{method} {path}");
        }
    }
    for path in ["/flags", "/config"] {
        assert_eq!(
            alice.raw(Method::PUT, path, "{}").header("allow"),
            Some("GET")
        );
    }
}

#[test]
fn bodies_that_are_not_a_json_object_are_422_naming_the_body() {
    let api = Api::start();
    let alice = api.user("alice");
    let bad_bodies: [&[u8]; 11] = [
        b"",
        b"{",
        b"{\"ttl_seconds\": ",
        b"{'value': 1}",
        b"{\"a\":1,}",
        b"not json",
        b"[]",
        b"\"text\"",
        b"42",
        b"null",
        b"{\"value\": \"\xff\xfe\"}",
    ];
    for (method, path, _) in body_operations() {
        let path = path.as_str();
        for bad in bad_bodies {
            let reply = alice.raw(method.clone(), path, bad.to_vec());
            let chunked = alice.chunked(method.clone(), path, bad.to_vec());
            if is_ofrep(path) {
                for reply in [reply, chunked] {
                    let body = reply.expect(400).json();
                    assert_eq!(body["errorCode"], "PARSE_ERROR", "{path} {bad:?}: {body}");
                }
                continue;
            }
            assert_eq!(reply.status, 422, "{method} {path} {bad:?}: {reply:?}");
            reply.invalid("body");
            chunked.invalid("body");
        }
    }
    alice.get("/config/c").error(404);
    alice.get("/flags/f").error(404);
}

#[test]
fn every_body_field_missing_or_null_is_422_naming_it() {
    let api = Api::start();
    let alice = api.user("alice");
    let required = [
        (
            "/locks/l/acquire",
            Method::POST,
            json!({ "ttl_seconds": 5 }),
        ),
        (
            "/locks/l/release",
            Method::POST,
            json!({ "lease_id": Uuid::new_v4() }),
        ),
        (
            "/locks/l/renew",
            Method::POST,
            json!({ "lease_id": Uuid::new_v4(), "ttl_seconds": 5 }),
        ),
        (
            "/limits/r/check",
            Method::POST,
            json!({ "max_requests": 5, "window_seconds": 60 }),
        ),
        ("/flags/f", Method::PUT, json!({ "enabled": true })),
        ("/config/c", Method::PUT, json!({ "value": 1 })),
    ];
    for (path, method, body) in required {
        for field in body.as_object().unwrap().keys() {
            let mut missing = body.clone();
            missing.as_object_mut().unwrap().remove(field);
            alice
                .raw(method.clone(), path, missing.to_string())
                .invalid(field);
            if field != "value" {
                let mut null = body.clone();
                null[field] = Value::Null;
                alice
                    .raw(method.clone(), path, null.to_string())
                    .invalid(field);
            }
        }
    }
}

fn small_quotas() -> Api {
    Api::with(Settings {
        quotas: Quotas {
            locks: 2,
            limits: 2,
            flags: 2,
            configs: 2,
        },
        ..Settings::default()
    })
}

#[track_caller]
fn quota_exceeded(reply: &Reply) {
    let body = reply.error(429);
    let message = format!("{} {}", body["error"], body["details"]);
    assert!(message.contains('2'), "the quota is named: {body}");
}

#[test]
fn live_locks_are_limited_per_user_with_429() {
    let api = small_quotas();
    let alice = api.user("alice");
    let bob = api.user("bob");
    let a = alice.acquire("a", 10).ok();
    alice.acquire("b", 100).ok();
    quota_exceeded(&alice.acquire("c", 10));
    assert_eq!(alice.get("/locks/c").ok()["status"], "available");
    // Holding is not acquiring more; other users have their own quota.
    assert_eq!(alice.acquire("a", 10).ok()["status"], "held");
    assert_eq!(bob.acquire("c", 10).ok()["status"], "acquired");
    // Releasing makes room, and so does expiry.
    alice.release("a", text(&a["lease_id"])).ok();
    alice.acquire("d", 10).ok();
    quota_exceeded(&alice.acquire("e", 10));
    api.advance_secs(10);
    alice.acquire("e", 10).ok();
}

#[test]
fn rate_limits_are_limited_per_user_with_429() {
    let api = small_quotas();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.check("a", 5, 60).ok();
    alice.check("b", 5, 60).ok();
    quota_exceeded(&alice.check("c", 5, 60));
    alice.get("/limits/c").error(404);
    assert_eq!(alice.check("a", 5, 60).ok()["remaining"], 3);
    bob.check("c", 5, 60).ok();
    alice.delete("/limits/a").ok();
    alice.check("c", 5, 60).ok();
    quota_exceeded(&alice.check("d", 5, 60));
    // Limits that counted nothing for a whole window make room.
    api.advance_secs(61);
    alice.check("d", 5, 60).ok();
}

#[test]
fn flags_are_limited_per_user_with_429() {
    let api = small_quotas();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.set_flag("a", json!({ "enabled": true })).ok();
    alice.set_flag("b", json!({ "enabled": true })).ok();
    quota_exceeded(&alice.set_flag("c", json!({ "enabled": true })));
    alice.get("/flags/c").error(404);
    alice.set_flag("a", json!({ "enabled": false })).ok();
    bob.set_flag("c", json!({ "enabled": true })).ok();
    alice.delete("/flags/a").ok();
    alice.set_flag("c", json!({ "enabled": true })).ok();
}

#[test]
fn config_keys_are_limited_per_user_with_429() {
    let api = small_quotas();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.put_config("a", json!({ "value": 1 })).ok();
    alice.put_config("b", json!({ "value": 1 })).ok();
    quota_exceeded(&alice.put_config("c", json!({ "value": 1 })));
    alice.get("/config/c").error(404);
    assert_eq!(
        alice.put_config("a", json!({ "value": 2 })).ok()["version"],
        2
    );
    bob.put_config("c", json!({ "value": 1 })).ok();
    alice.delete("/config/a").ok();
    alice.put_config("c", json!({ "value": 1 })).ok();
}

#[test]
fn deeply_nested_json_is_422_not_a_crash() {
    let api = Api::start();
    let alice = api.user("alice");
    let depth = 50_000;
    let deep = format!("{{\"value\": {}{}}}", "[".repeat(depth), "]".repeat(depth));
    alice.raw(Method::PUT, "/config/c", deep).invalid("body");
    let fine = format!("{{\"value\": {}{}}}", "[".repeat(100), "]".repeat(100));
    assert_eq!(alice.raw(Method::PUT, "/config/c", fine).ok()["version"], 1);
    api.anonymous().get("/health").expect(200);
}

#[test]
fn odd_requests_never_cause_a_5xx() {
    let api = Api::start();
    let alice = api.user("alice");
    let paths = [
        "/locks/%ZZ",
        "/locks/%",
        "/limits/%E2%82",
        "/flags/%F0%9F",
        "/config/%C0%AF",
        "/flags/f?subject=%FF",
        "/config/c?version=%FF",
        "/flags/f?subject",
        "/config/c?version",
        "/config/c?version=1&version=2",
        "/locks//acquire",
        "//locks",
    ];
    for path in paths {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            let reply = alice.raw(method.clone(), path, "{}");
            assert!(
                reply.status.is_client_error() || reply.status.is_success(),
                "{method} {path}: {reply:?}"
            );
            reply.json();
        }
    }
}
