//! What the real server writes to stderr at `RUST_LOG=trace` with `--access-log` (its own
//! events and access lines, warp's and hyper's, and the `log` records of its dependencies,
//! which its subscriber takes in): no token and no lease id, in any form, whatever the calls
//! and their failures.

use octostore_core::{
    Api, ClientId, ConfigKey, Error, FlagName, LimitName, LockName, RatePolicy, Ttl,
};
use serde_json::json;

use crate::server::{postgres_url, Server, Storage};

/// Every call that carries a token or a lease id, and failures that repeat them; the
/// secrets the server saw.
fn drive(server: &Server, storage: &Storage) -> Vec<String> {
    let mut secrets = Vec::new();
    let first = storage.token("alice");
    secrets.push(first.clone());
    let api = server.client(&first);
    secrets.push(api.rotate_token().unwrap());
    let lock = LockName::parse("deploy").unwrap();
    let ttl = Ttl::seconds(60).unwrap();
    let me = ClientId::parse("logs").unwrap();
    let grant = api.acquire(&lock, ttl, Some(&me)).unwrap();
    secrets.push(grant.lease.lease_id.to_string());
    api.renew(&lock, grant.lease.lease_id, ttl).unwrap();
    api.lock_status(&lock).unwrap();
    let stranger = octostore_core::LeaseId(uuid::Uuid::new_v4());
    secrets.push(stranger.to_string());
    assert!(matches!(
        api.release(&lock, stranger),
        Err(Error::NotFound { .. })
    ));
    api.release(&lock, grant.lease.lease_id).unwrap();
    api.put_config(
        &ConfigKey::parse("db.pool").unwrap(),
        json!({ "size": 10 }),
        None,
    )
    .unwrap();
    api.set_flag(&FlagName::parse("new-ui").unwrap(), true, None)
        .unwrap();
    api.check(
        &LimitName::parse("emails").unwrap(),
        RatePolicy::new(10, 60).unwrap(),
    )
    .unwrap();
    // The rotated-away token, and a well-formed one that never existed.
    let bogus = format!("octo_{}", "5eed".repeat(16));
    secrets.push(bogus.clone());
    for token in [&first, &bogus] {
        assert!(matches!(
            server.client(token).locks(),
            Err(Error::Unauthorized)
        ));
    }
    secrets
}

/// The forms a secret could take in a log line: as sent; a token's hex digits in either
/// case; a lease id without hyphens and as the bytes a database driver would print.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if let Some(hex) = secret.strip_prefix("octo_") {
        forms.push(hex.to_owned());
        forms.push(hex.to_ascii_uppercase());
    }
    if let Ok(uuid) = uuid::Uuid::parse_str(secret) {
        forms.push(uuid.simple().to_string());
        forms.push(format!("{:?}", uuid.as_bytes()));
    }
    forms
}

fn assert_logs_hold_no_secret(storage: Storage) {
    let server = Server::start(&storage, "trace", true);
    let secrets = drive(&server, &storage);
    let log = server.kill();
    assert!(
        log.iter().any(|l| l.contains("TRACE"))
            && log.iter().any(|l| l.contains("request{"))
            && log.iter().any(|l| l.contains("octostore::access")),
        "the server did not log at TRACE level with its access log:\n{}",
        log.join("\n")
    );
    for line in &log {
        for secret in &secrets {
            for form in forms(secret) {
                assert!(!line.contains(&form), "a secret is logged: {line}");
            }
        }
    }
}

#[test]
fn the_server_logs_no_token_or_lease_id_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    assert_logs_hold_no_secret(Storage::File(dir.path().join("octostore.db")));
}

#[test]
fn the_server_logs_no_token_or_lease_id_at_trace_level_on_postgres() {
    let Some(url) = postgres_url("the PostgreSQL log test") else {
        return;
    };
    assert_logs_hold_no_secret(Storage::postgres(&url));
}
