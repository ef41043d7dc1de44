//! Tokens: created on the local file, used against a server, rotated, listed, revoked.

use crate::support::{octostore, Env};

#[test]
fn a_token_created_locally_works_against_the_server() {
    let env = Env::remote();
    // Env::remote did `TOKEN=$(octostore token create alice)`; use it through the env var.
    let token = std::fs::read_to_string(env.path("token")).unwrap();
    let mut command = env.command(&["lock", "list", "--json"]);
    command
        .env_remove("OCTOSTORE_TOKEN_FILE")
        .env("OCTOSTORE_TOKEN", &token);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");

    let mut bad = env.command(&["lock", "list"]);
    bad.env_remove("OCTOSTORE_TOKEN_FILE")
        .env("OCTOSTORE_TOKEN", "octo_wrong");
    assert_eq!(bad.output().unwrap().status.code(), Some(4));
}

#[test]
fn a_memory_server_writes_the_token_it_was_asked_for_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::remote_in_memory();
    let mode = std::fs::metadata(env.path("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let grant = env
        .run(&["lock", "acquire", "deploy", "--ttl", "60", "--json"])
        .expect(0)
        .json();
    assert_eq!(grant["holder"], "alice");

    let refused = octostore()
        .args([
            "serve",
            "--memory",
            "--bind",
            "127.0.0.1:0",
            "--write-token",
            "alice",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("LOGIN=FILE"));
}

#[test]
fn rotation_replaces_the_token() {
    let env = Env::remote();
    let old = std::fs::read_to_string(env.path("token")).unwrap();
    let new = env.run(&["token", "rotate"]).expect(0).stdout;
    assert!(new.trim().starts_with("octo_"));
    env.run(&["lock", "list"]).expect(4); // the token file still holds the old token
    std::fs::write(env.path("token"), new.trim()).unwrap();
    env.run(&["lock", "list"]).expect(0);
    assert_ne!(old.trim(), new.trim());
}

#[test]
fn local_tokens_are_listed_and_revoked() {
    let env = Env::local();
    let token = env.run(&["token", "create", "carol"]).expect(0).stdout;
    assert!(token.trim().starts_with("octo_"));
    let listed = env.run(&["token", "list", "carol"]).expect(0).stdout;
    let id = listed.split_whitespace().next().unwrap().to_owned();
    env.run(&["token", "revoke", &id, "--of", "carol"])
        .expect(0);
    assert!(env
        .run(&["token", "list", "carol"])
        .expect(0)
        .stdout
        .is_empty());
    env.run(&["token", "list", "nobody"]).expect(3);
}

#[test]
fn an_unreachable_server_is_exit_code_5() {
    let env = Env::local();
    let mut command = octostore();
    command
        .args(["lock", "list", "--server", "http://127.0.0.1:9"])
        .env("OCTOSTORE_TOKEN", "octo_x");
    assert_eq!(command.output().unwrap().status.code(), Some(5));
    drop(env);
}
