//! `/health`, `/ready`, `/metrics` and `/openapi.yaml`: public. (`/ready` on a store that
//! does not answer: `busy_store`.)

use super::{text, Api};

#[test]
fn health_is_ok_in_plain_text_without_a_token() {
    let api = Api::start();
    let reply = api.anonymous().get("/health");
    reply.expect(200);
    assert_eq!(reply.body, "OK");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

#[test]
fn ready_is_json_without_a_token_while_the_store_answers() {
    let api = Api::start();
    let reply = api.anonymous().get("/ready");
    assert_eq!(reply.ok(), serde_json::json!({ "status": "ready" }));
}

#[test]
fn metrics_count_requests_by_route_and_show_live_locks() {
    let api = Api::start();
    let alice = api.user("alice");
    let lease = alice.acquire("secret-project-x", 10).ok();
    alice.acquire("other-lock", 100).ok();
    alice.get("/locks/secret-project-x").ok();
    api.anonymous().get("/no-such-path").error(404);

    let reply = api.anonymous().get("/metrics");
    reply.expect(200);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let metrics = &reply.body;
    assert!(
        metrics.contains("octostore_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("octostore_live_locks 2"), "{metrics}");
    let acquires = metrics
        .lines()
        .find(|l| {
            l.starts_with("octostore_http_requests_total{")
                && l.contains(r#"route="/locks/{name}/acquire""#)
                && l.contains(r#"method="POST""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no acquire counter: {metrics}"));
    assert!(acquires.ends_with(" 2"), "{acquires}");
    // Routes are labelled by template, never by the names callers chose.
    assert!(!metrics.contains("secret-project-x"), "{metrics}");

    alice
        .release("secret-project-x", text(&lease["lease_id"]))
        .ok();
    // Within a second of the last count, scrapes show it again: the count reads every lease.
    let metrics = api.anonymous().get("/metrics").body;
    assert!(metrics.contains("octostore_live_locks 2"), "{metrics}");
    api.advance(chrono::Duration::milliseconds(1_000));
    let metrics = api.anonymous().get("/metrics").body;
    assert!(metrics.contains("octostore_live_locks 1"), "{metrics}");
    // An expired lease is not live, swept or not.
    api.advance_secs(100);
    let metrics = api.anonymous().get("/metrics").body;
    assert!(metrics.contains("octostore_live_locks 0"), "{metrics}");
}

#[test]
fn metrics_count_the_decisions_of_each_primitive() {
    let api = Api::start();
    let alice = api.user("alice");
    let bob = api.user("bob");
    alice.acquire("deploy", 30).ok();
    bob.acquire("deploy", 30).error(409);
    bob.acquire("deploy", 30).error(409);
    for _ in 0..3 {
        alice.check("emails", 2, 60).ok();
    }
    alice
        .set_flag("new-ui", serde_json::json!({ "enabled": true }))
        .ok();
    alice.get("/flags/new-ui").ok();
    alice
        .set_flag("old-ui", serde_json::json!({ "enabled": false }))
        .ok();
    alice.get("/flags/old-ui").ok();
    alice.get("/flags/old-ui?subject=u1").ok();

    let metrics = api.anonymous().get("/metrics").body;
    for (primitive, outcome, count) in [
        ("lock", "granted", 1),
        ("lock", "conflicted", 2),
        ("rate_limit", "allowed", 2),
        ("rate_limit", "denied", 1),
        ("flag", "on", 1),
        ("flag", "off", 2),
    ] {
        let line = format!(
            r#"octostore_decisions_total{{outcome="{outcome}",primitive="{primitive}"}} {count}"#
        );
        assert!(metrics.contains(&line), "missing {line}:\n{metrics}");
    }
    for present in [
        "octostore_build_info{version=",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(metrics.contains(present), "missing {present}:\n{metrics}");
    }
}

#[test]
fn the_served_contract_is_the_openapi_yaml_file() {
    let api = Api::start();
    let reply = api.anonymous().get("/openapi.yaml");
    reply.expect(200);
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("octostore-http/openapi.yaml");
    assert!(
        reply.body == file,
        "GET /openapi.yaml differs from openapi.yaml"
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.contains("yaml"), "{content_type}");
    // Its own description of this answer fits it, read as YAML (as schema checkers read it).
    let document: serde_json::Value = serde_norway::from_str(&reply.body).unwrap();
    let schema = &document["paths"]["/openapi.yaml"]["get"]["responses"]["200"]["content"]
        ["application/yaml"]["schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    for key in schema["required"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        assert!(document.get(key).is_some(), "no {key} in the document");
    }
}
