//! What a failed command says: in the command line's terms (its flags, not the API's fields),
//! the same on a local file and against a server, and with what to do where there is a fix.

use crate::support::{octostore, Env, Run};

/// A value out of bounds is said by the flag that gave it.
fn errors_name_the_flags(env: &Env) {
    for (args, said) in [
        (
            &["limit", "check", "l", "--max", "0", "--window", "10"][..],
            "invalid --max: must be between 1 and 10000, got 0",
        ),
        (
            &["limit", "check", "l", "--max", "5", "--window", "999999"],
            "invalid --window: must be between 1 and 86400 seconds, got 999999",
        ),
        (
            &["flag", "set", "f", "--enable", "--percentage", "200"],
            "invalid --percentage: must be between 0 and 100, got 200",
        ),
        (
            &["config", "history", "k", "--limit", "0"],
            "invalid --limit: must be 1 to 100, got 0",
        ),
        (
            &["lock", "acquire", "x", "--ttl", "5", "--client-id", "a b"],
            "invalid --client-id: may contain only",
        ),
        (
            &["flag", "get", "f", "--subject", ""],
            "invalid --subject: must be 1 to 256 characters long",
        ),
    ] {
        let run = env.run(args).expect(2);
        assert!(
            run.stderr.starts_with(&format!("octostore: {said}")),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn errors_name_the_flags_on_a_local_file() {
    errors_name_the_flags(&Env::local());
}

#[test]
fn errors_name_the_flags_against_a_server() {
    errors_name_the_flags(&Env::remote());
}

#[test]
fn text_that_is_not_json_is_shown_quoted() {
    let env = Env::local();
    let run = env.run(&["config", "set", "k", "it's"]).expect(2);
    assert_eq!(
        run.stderr.trim_end(),
        r#"octostore: invalid value: not JSON (expected value at line 1 column 1); to store the text, quote it as a JSON string: octostore config set k '"it'\''s"'"#
    );
    // The suggestion works, and stores the text.
    env.run(&["config", "set", "k", r#""it's""#]).expect(0);
    let got = env.run(&["config", "get", "k"]).expect(0);
    assert_eq!(got.stdout.trim(), r#""it's""#);
    // Broken JSON meant as JSON is not said to be text.
    let run = env.run(&["config", "set", "k", "{a:1}"]).expect(2);
    assert!(
        run.stderr.contains("not JSON (key must be a string"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("quote it"), "{}", run.stderr);
}

/// Releasing or renewing a lease that does not hold the lock says who does instead: another
/// lease, or nobody; the same words on a file and from a server.
fn a_lease_not_held_says_who_holds_the_lock(env: &Env) -> Vec<String> {
    let wrong = "00000000-0000-4000-8000-000000000000";
    let lease = env
        .run(&["lock", "acquire", "held", "--ttl", "60", "--json"])
        .expect(0)
        .json()["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut said = Vec::new();
    for args in [
        &["lock", "release", "held", "--lease", wrong][..],
        &["lock", "renew", "held", "--lease", wrong, "--ttl", "5"],
        &["lock", "release", "free", "--lease", &lease],
        &["lock", "renew", "free", "--lease", &lease, "--ttl", "5"],
    ] {
        said.push(env.run(args).expect(3).stderr);
    }
    assert_eq!(
        said,
        [
            "octostore: lock held is held by another lease\n",
            "octostore: lock held is held by another lease\n",
            "octostore: lock free is not held (its lease expired or was released)\n",
            "octostore: lock free is not held (its lease expired or was released)\n",
        ]
    );
    env.run(&["lock", "release", "held", "--lease", &lease])
        .expect(0);
    said
}

#[test]
fn a_lease_not_held_says_who_holds_the_lock_on_a_file_and_from_a_server() {
    assert_eq!(
        a_lease_not_held_says_who_holds_the_lock(&Env::local()),
        a_lease_not_held_says_who_holds_the_lock(&Env::remote())
    );
}

#[test]
fn a_server_without_a_token_says_how_to_give_one() {
    let run = Run::of(
        octostore()
            .args(["lock", "list", "--server", "http://127.0.0.1:9/"])
            .output()
            .unwrap(),
    )
    .expect(4);
    assert_eq!(
        run.stderr.trim_end(),
        "octostore: no token for http://127.0.0.1:9: pass --token-file FILE or set \
         OCTOSTORE_TOKEN; create one with `octostore token create LOGIN` on the server's store \
         (its --db or --database-url), or sign in at http://127.0.0.1:9/auth/github if the \
         server has GitHub sign-in"
    );
}

#[test]
fn a_refused_token_is_said_with_how_to_get_a_new_one() {
    let env = Env::remote();
    let stale = env.path("stale");
    std::fs::write(&stale, "octo_not_a_token").unwrap();
    let run = Run::of(
        env.command(&["lock", "list"])
            .env("OCTOSTORE_TOKEN_FILE", &stale)
            .output()
            .unwrap(),
    )
    .expect(4);
    let said = format!(
        "octostore: {} refused the token from {} (unknown, revoked or rotated away): create a \
         new one with `octostore token create LOGIN`",
        env.url(),
        stale.display()
    );
    assert!(run.stderr.starts_with(&said), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{}/auth/github", env.url())),
        "{}",
        run.stderr
    );
}

/// The database's TLS settings are checked before connecting, each named by its flag.
#[test]
fn database_tls_settings_are_named_by_their_flags() {
    let missing_ca = "/nonexistent/ca.pem";
    for (args, said) in [
        (
            &["--database-ca-file", missing_ca][..],
            "invalid --database-ca-file: needs --database-url".to_owned(),
        ),
        (
            &[
                "--database-url",
                "postgres://postgres@127.0.0.1:1/x?sslmode=verify-full",
                "--database-ca-file",
                missing_ca,
            ],
            format!("invalid --database-ca-file: cannot read the CA file {missing_ca}"),
        ),
        (
            &[
                "--database-url",
                "postgres://postgres@127.0.0.1:1/x?sslmode=verify_full",
            ],
            "invalid --database-url: unknown sslmode \"verify_full\"".to_owned(),
        ),
    ] {
        let run = Run::of(
            octostore()
                .args(args)
                .args(["lock", "list"])
                .output()
                .unwrap(),
        )
        .expect(2);
        assert!(
            run.stderr.starts_with(&format!("octostore: {said}")),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// The pool's size is for a database: refused alone, and out of its range, by its flag.
#[test]
fn the_database_pool_size_needs_a_database_and_a_sane_size() {
    let alone = Run::of(
        octostore()
            .args(["--database-pool-size", "4", "lock", "list"])
            .output()
            .unwrap(),
    )
    .expect(2);
    assert!(
        alone
            .stderr
            .starts_with("octostore: invalid --database-pool-size: needs --database-url"),
        "{}",
        alone.stderr
    );
    let zero = Run::of(
        octostore()
            .args(["--database-pool-size", "0", "lock", "list"])
            .output()
            .unwrap(),
    )
    .expect(2);
    assert!(
        zero.stderr.contains("--database-pool-size"),
        "{}",
        zero.stderr
    );
    assert!(zero.stderr.contains("not in 1..=1000"), "{}", zero.stderr);
}
