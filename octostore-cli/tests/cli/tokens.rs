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
fn rotation_replaces_the_token_and_the_token_file_holds_the_new_one() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::remote();
    let old = std::fs::read_to_string(env.path("token")).unwrap();
    let new = env.run(&["token", "rotate"]).expect(0).stdout;
    assert!(new.trim().starts_with("octo_"));
    assert_ne!(old.trim(), new.trim());
    let in_file = std::fs::read_to_string(env.path("token")).unwrap();
    assert_eq!(in_file.trim(), new.trim());
    let mode = std::fs::metadata(env.path("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    env.run(&["lock", "list"]).expect(0);
    let mut with_old = env.command(&["lock", "list"]);
    with_old
        .env_remove("OCTOSTORE_TOKEN_FILE")
        .env("OCTOSTORE_TOKEN", old.trim());
    assert_eq!(with_old.output().unwrap().status.code(), Some(4));
}

/// `serve --write-token alice=FILE` on a taken address: the token is written, then the
/// server fails to listen (exit 7).
fn write_token_then_fail_to_listen(file: &std::path::Path) -> std::process::Output {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let write_token = format!("alice={}", file.display());
    octostore()
        .args([
            "serve",
            "--memory",
            "--bind",
            &bind,
            "--write-token",
            &write_token,
        ])
        .output()
        .unwrap()
}

#[test]
fn write_token_replaces_a_readable_file_by_one_its_owner_only_reads() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::local();
    let file = env.path("token");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = write_token_then_fail_to_listen(&file);
    // The busy port's code: the token was written, and only listening failed.
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("octo_"));
}

#[test]
fn write_token_refuses_a_symlink_and_leaves_its_target_alone() {
    let env = Env::local();
    let target = env.path("elsewhere");
    std::fs::write(&target, "precious").unwrap();
    let link = env.path("token");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = write_token_then_fail_to_listen(&link);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&link.display().to_string()) && stderr.contains("symlink"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
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
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    // Said as it is, naming the server, and not as a failure of a store it never reached.
    assert_eq!(
        stderr,
        "octostore: cannot reach http://127.0.0.1:9: connection refused\n"
    );
    drop(env);
}
