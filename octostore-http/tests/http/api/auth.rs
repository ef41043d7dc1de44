//! `/auth`: token rotation, tokens stored only as SHA-256 hashes, and GitHub sign-in when it
//! is not configured (the flow itself is in `oauth.rs`).

use std::sync::Arc;

use octostore_core::{ManualClock, SqliteBackend, Store, TokenHash};
use serde_json::json;

use super::{text, Api};

#[test]
fn rotation_returns_a_new_token_and_the_old_one_fails_at_once() {
    let api = Api::start();
    let old = api.server.token("alice");
    let alice = api.with_token(&old);
    alice.set_flag("mine", json!({ "enabled": true })).ok();

    let rotated = alice.post("/auth/token/rotate", &json!({})).ok();
    let new = text(&rotated["token"]).to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("octo_"), "a recognizable prefix: {new}");
    // At least 256 random bits, hex-encoded.
    assert!(new.len() >= "octo_".len() + 64, "{new}");

    alice.get("/flags").unauthorized();
    alice.post("/auth/token/rotate", &json!({})).unauthorized();
    // The new token is the same user.
    let renewed = api.with_token(&new);
    assert_eq!(renewed.get("/flags").ok()["flags"][0]["name"], "mine");
    // And it can be rotated in turn.
    let next = text(&renewed.post("/auth/token/rotate", &json!({})).ok()["token"]).to_owned();
    renewed.get("/flags").unauthorized();
    api.with_token(&next).get("/flags").ok();
}

#[test]
fn rotation_replaces_only_the_presented_token() {
    let api = Api::start();
    let laptop = api.server.token("alice");
    let ci = api.server.token("alice");
    api.with_token(&laptop)
        .post("/auth/token/rotate", &json!({}))
        .ok();
    api.with_token(&laptop).get("/locks").unauthorized();
    api.with_token(&ci).get("/locks").ok();
}

#[test]
fn rotation_needs_a_valid_token() {
    let api = Api::start();
    api.anonymous()
        .post("/auth/token/rotate", &json!({}))
        .unauthorized();
    api.with_token("octo_0000000000000000000000000000000000000000000000000000000000000000")
        .post("/auth/token/rotate", &json!({}))
        .unauthorized();
    // Rotation takes no body; none at all is fine.
    let alice = api.user("alice");
    let reply = alice.send(reqwest::Method::POST, "/auth/token/rotate", None, None);
    assert!(text(&reply.ok()["token"]).starts_with("octo_"));
}

#[test]
fn github_sign_in_without_settings_is_a_404_saying_so() {
    let api = Api::start();
    for path in ["/auth/github", "/auth/github/callback?code=x&state=y"] {
        let reply = api.anonymous().get(path);
        let body = reply.error(404);
        assert_eq!(body["code"], "sign_in_not_configured", "{path}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("GitHub sign-in is not configured"),
            "{error}"
        );
        assert!(reply.header("location").is_none());
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("a hex secret"))
        .collect()
}

#[test]
fn tokens_are_stored_only_as_sha256_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(SqliteBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    let api = Api::serve(store, clock);

    // Tokens made by the store, and one made by the server (rotation); each one used.
    let alice = api.server.token("alice");
    let bob = api.server.token("bob");
    let alice_ci = api.server.token("alice");
    let rotated = text(
        &api.with_token(&alice_ci)
            .post("/auth/token/rotate", &json!({}))
            .ok()["token"],
    )
    .to_owned();
    let live = [alice.clone(), bob.clone(), rotated.clone()];
    let all = [alice, bob, alice_ci, rotated];
    for (i, token) in live.iter().enumerate() {
        let caller = api.with_token(token);
        caller.acquire(&format!("lock-{i}"), 60).ok();
        caller.set_flag("f", json!({ "enabled": true })).ok();
        caller.put_config("k", json!({ "value": token.len() })).ok();
    }

    let mut bytes = std::fs::read(&path).unwrap();
    let wal = path.with_file_name("octostore.db-wal");
    if wal.exists() {
        bytes.extend(std::fs::read(&wal).unwrap());
    }
    assert!(contains(&bytes, b"alice"), "the store wrote to these files");
    for token in &all {
        let secret = token.strip_prefix("octo_").unwrap();
        assert!(
            !contains(&bytes, token.as_bytes()),
            "a token is stored in plain text"
        );
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "a token's secret is stored in plain text"
        );
        assert!(
            !contains(&bytes, secret.to_ascii_uppercase().as_bytes()),
            "a token's secret is stored in plain text"
        );
        let raw = unhex(secret);
        assert!(!contains(&bytes, &raw), "a token's random bytes are stored");
    }
    for token in &live {
        let hash = TokenHash::of(token).0;
        let hex_hash = hex(&hash);
        assert!(
            contains(&bytes, &hash) || contains(&bytes, hex_hash.as_bytes()),
            "the SHA-256 of a live token is stored"
        );
    }
}
