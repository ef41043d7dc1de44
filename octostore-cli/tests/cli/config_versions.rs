//! `octostore config` beyond the seed: `set --if-version` (exit 1 when the key is at another
//! version), who put each version in `history`, `rollback`, `diff`, `delete` kept for
//! `undelete` (or `--purge`d), `list --deleted`, `schema set|get|delete`; on a local file and
//! against a server.

use crate::support::Env;

fn compare_and_set(env: &Env) {
    env.run(&["config", "set", "k", "1", "--if-version", "0"])
        .expect(0);
    let lost = env
        .run(&["config", "set", "k", "2", "--if-version", "0"])
        .expect(1);
    assert!(
        lost.stderr.contains("already exists, at version 1"),
        "{}",
        lost.stderr
    );
    env.run(&["config", "set", "k", "2", "--if-version", "2"])
        .expect(1);
    let put = env
        .run(&["config", "set", "k", "2", "--if-version", "1", "--json"])
        .expect(0)
        .json();
    assert_eq!(put["version"], 2);
    assert_eq!(
        env.run(&["config", "get", "k"]).expect(0).stdout.trim(),
        "2"
    );
    let history = env.run(&["config", "history", "k"]).expect(0).stdout;
    let writers: Vec<&str> = history
        .lines()
        .map(|line| line.split(' ').nth(2).unwrap())
        .collect();
    let me = env.run(&["config", "get", "k", "--json"]).expect(0).json();
    assert_eq!(
        writers,
        [me["updated_by"].as_str().unwrap(); 2],
        "{history}"
    );
    env.run(&["config", "set", "k", "3", "--if-version", "-1"])
        .expect(2);
}

fn rollback(env: &Env) {
    env.run(&["config", "set", "k", r#"{"good":true}"#])
        .expect(0);
    env.run(&["config", "set", "k", r#"{"good":false}"#])
        .expect(0);
    let back = env.run(&["config", "rollback", "k", "1"]).expect(0);
    assert_eq!(back.stdout.trim(), "k version=3");
    assert_eq!(
        env.run(&["config", "get", "k"]).expect(0).stdout.trim(),
        r#"{"good":true}"#
    );
    env.run(&["config", "rollback", "k", "2", "--if-version", "2"])
        .expect(1);
    env.run(&["config", "rollback", "k", "9"]).expect(3);
    env.run(&["config", "rollback", "nope", "1"]).expect(3);
    env.run(&["config", "rollback", "k", "0"]).expect(3);
}

fn diff(env: &Env) {
    env.run(&["config", "set", "k", r#"{"a":1,"b":2}"#])
        .expect(0);
    env.run(&["config", "set", "k", r#"{"a":1,"b":3}"#])
        .expect(0);
    let diff = env.run(&["config", "diff", "k", "1", "2"]).expect(0);
    assert_eq!(
        diff.stdout.trim(),
        r#"{"op":"replace","path":"/b","value":3}"#
    );
    let json = env
        .run(&["config", "diff", "k", "2", "1", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        json,
        serde_json::json!([{"op": "replace", "path": "/b", "value": 2}])
    );
    env.run(&["config", "diff", "k", "1", "3"]).expect(3);
}

fn deletes(env: &Env) {
    env.run(&["config", "set", "k", "1"]).expect(0);
    env.run(&["config", "set", "k", "2"]).expect(0);
    env.run(&["config", "delete", "k"]).expect(0);
    env.run(&["config", "get", "k"]).expect(3);
    env.run(&["config", "history", "k"]).expect(3);
    assert_eq!(env.run(&["config", "list"]).expect(0).stdout.trim(), "");
    let deleted = env.run(&["config", "list", "--deleted"]).expect(0).stdout;
    assert!(deleted.starts_with("k version=2 "), "{deleted}");
    assert!(deleted.contains(" deleted_at="), "{deleted}");
    let back = env.run(&["config", "undelete", "k"]).expect(0);
    assert_eq!(back.stdout.trim(), "k version=2");
    assert_eq!(
        env.run(&["config", "get", "k"]).expect(0).stdout.trim(),
        "2"
    );
    env.run(&["config", "undelete", "k"]).expect(2);
    env.run(&["config", "delete", "k", "--purge"]).expect(0);
    env.run(&["config", "undelete", "k"]).expect(3);
    env.run(&["config", "delete", "k", "--purge"]).expect(3);
}

fn schemas(env: &Env) {
    let schema = r#"{"type":"object","properties":{"port":{"maximum":65535}}}"#;
    env.run(&["config", "schema", "set", "svc", schema])
        .expect(0);
    let got = env
        .run(&["config", "schema", "get", "svc"])
        .expect(0)
        .stdout;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
        serde_json::from_str::<serde_json::Value>(schema).unwrap()
    );
    let refused = env
        .run(&["config", "set", "svc", r#"{"port":70000}"#])
        .expect(2);
    assert!(
        refused.stderr.contains("/port") && refused.stderr.contains("/properties/port/maximum"),
        "{}",
        refused.stderr
    );
    env.run(&["config", "set", "svc", r#"{"port":80}"#])
        .expect(0);
    let file = env.path("schema.json");
    std::fs::write(&file, r#"{"type":"string"}"#).unwrap();
    let from_file = format!("@{}", file.display());
    env.run(&["config", "schema", "set", "svc", &from_file])
        .expect(2);
    env.run(&["config", "schema", "set", "svc", &from_file, "--force"])
        .expect(0);
    env.run(&["config", "schema", "set", "svc", r#"{"type":5}"#])
        .expect(2);
    env.run(&["config", "schema", "delete", "svc"]).expect(0);
    env.run(&["config", "schema", "get", "svc"]).expect(3);
    env.run(&["config", "schema", "delete", "svc"]).expect(3);
}

#[test]
fn schemas_on_a_local_file() {
    schemas(&Env::local());
}

#[test]
fn schemas_against_a_server() {
    schemas(&Env::remote());
}

#[test]
fn deletes_on_a_local_file() {
    deletes(&Env::local());
}

#[test]
fn deletes_against_a_server() {
    deletes(&Env::remote());
}

#[test]
fn diff_on_a_local_file() {
    diff(&Env::local());
}

#[test]
fn diff_against_a_server() {
    diff(&Env::remote());
}

#[test]
fn rollback_on_a_local_file() {
    rollback(&Env::local());
}

#[test]
fn rollback_against_a_server() {
    rollback(&Env::remote());
}

#[test]
fn compare_and_set_on_a_local_file() {
    compare_and_set(&Env::local());
}

#[test]
fn compare_and_set_against_a_server() {
    compare_and_set(&Env::remote());
}
