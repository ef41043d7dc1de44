//! Every command, on a local file and against a server: the same stdout, JSON and exit codes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::{finish, Env, Run};

/// Runs every command once and checks what it prints and how it exits.
fn every_command(env: &Env) {
    // Locks.
    let acquired = env
        .run(&["lock", "acquire", "deploy", "--ttl", "60", "--json"])
        .expect(0)
        .json();
    assert_eq!(acquired["status"], "acquired");
    assert_eq!(acquired["holder"], "alice");
    let lease = acquired["lease_id"].as_str().unwrap().to_owned();
    let token = acquired["fencing_token"].as_u64().unwrap();
    let held = env
        .run(&["lock", "acquire", "deploy", "--ttl", "60"])
        .expect(1);
    assert!(held.stderr.contains("held by alice"), "{}", held.stderr);
    assert!(held.stdout.is_empty(), "nothing but the answer on stdout");
    let status = env.run(&["lock", "status", "deploy"]).expect(0);
    assert!(
        status.stdout.starts_with("held deploy lease_id="),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(&format!("fencing_token={token}")));
    let renewed = env
        .run(&[
            "lock", "renew", "deploy", "--lease", &lease, "--ttl", "120", "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(renewed["fencing_token"], token);
    let list = env.run(&["lock", "list", "--json"]).expect(0).json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["locks"][0]["name"], "deploy");
    assert_eq!(
        env.run(&["lock", "list"]).expect(0).stdout.lines().count(),
        1
    );
    let all = env
        .run(&["lock", "list", "--all", "--json"])
        .expect(0)
        .json();
    assert_eq!(all["total"], 1);
    assert_eq!(all["locks"][0]["holder"], "alice");
    env.run(&["lock", "release", "deploy", "--lease", &lease])
        .expect(0);
    env.run(&["lock", "release", "deploy", "--lease", &lease])
        .expect(3);
    let free = env
        .run(&["lock", "status", "deploy", "--json"])
        .expect(0)
        .json();
    assert_eq!(free["status"], "available");
    assert_eq!(
        env.run(&["lock", "status", "deploy"])
            .expect(0)
            .stdout
            .trim(),
        "available deploy"
    );
    env.run(&["lock", "acquire", "bad name", "--ttl", "60"])
        .expect(2);
    env.run(&["lock", "acquire", "deploy", "--ttl", "0"])
        .expect(2);
    let again = env
        .run(&["lock", "acquire", "deploy", "--ttl", "60", "--json"])
        .expect(0)
        .json();
    assert!(
        again["fencing_token"].as_u64().unwrap() > token,
        "fencing tokens grow"
    );

    // Rate limits.
    for remaining in ["1", "0"] {
        let allowed = env
            .run(&["limit", "check", "api", "--max", "2", "--window", "60"])
            .expect(0);
        assert!(allowed
            .stdout
            .starts_with(&format!("allowed remaining={remaining} ")));
    }
    let denied = env
        .run(&[
            "limit", "check", "api", "--max", "2", "--window", "60", "--json",
        ])
        .expect(1)
        .json();
    assert_eq!(denied["allowed"], false);
    assert!(denied["retry_after_seconds"].as_u64().unwrap() >= 59);
    assert_eq!(
        env.run(&["limit", "status", "api", "--json"])
            .expect(1)
            .json()["remaining"],
        0
    );
    let limits = env.run(&["limit", "list", "--json"]).expect(0).json();
    assert_eq!(limits["limits"][0]["current_count"], 2);
    env.run(&["limit", "reset", "api"]).expect(0);
    env.run(&["limit", "status", "api"]).expect(3);
    env.run(&["limit", "check", "api", "--max", "0", "--window", "60"])
        .expect(2);

    // Flags.
    let set = env
        .run(&[
            "flag",
            "set",
            "beta",
            "--enable",
            "--percentage",
            "100",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(set["percentage"], 100);
    assert_eq!(
        env.run(&["flag", "get", "beta"]).expect(0).stdout.trim(),
        "on"
    );
    env.run(&["flag", "set", "beta", "--disable"]).expect(0);
    assert_eq!(
        env.run(&["flag", "get", "beta", "--subject", "bob"])
            .expect(1)
            .stdout
            .trim(),
        "off"
    );
    assert_eq!(
        env.run(&["flag", "get", "beta", "--json"]).expect(1).json()["enabled"],
        false
    );
    assert_eq!(
        env.run(&["flag", "list"]).expect(0).stdout.trim(),
        "beta disabled"
    );
    env.run(&["flag", "set", "beta"]).expect(2);
    env.run(&["flag", "delete", "beta"]).expect(0);
    env.run(&["flag", "get", "beta"]).expect(3);

    // Config.
    let put = env
        .run(&[
            "config",
            "set",
            "app.replicas",
            "3",
            "--description",
            "pods",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(put["version"], 1);
    assert_eq!(
        env.run(&["config", "set", "app.replicas", r#"{"n":5}"#])
            .expect(0)
            .stdout
            .trim(),
        "app.replicas version=2"
    );
    assert_eq!(
        env.run(&["config", "get", "app.replicas"])
            .expect(0)
            .stdout
            .trim(),
        r#"{"n":5}"#
    );
    assert_eq!(
        env.run(&["config", "get", "app.replicas", "--version", "1"])
            .expect(0)
            .stdout
            .trim(),
        "3"
    );
    let got = env
        .run(&["config", "get", "app.replicas", "--json"])
        .expect(0)
        .json();
    assert_eq!(got["description"], "pods");
    env.run(&["config", "get", "app.replicas", "--version", "9"])
        .expect(3);
    assert_eq!(
        env.run(&["config", "history", "app.replicas"])
            .expect(0)
            .stdout
            .lines()
            .count(),
        2
    );
    let first = env
        .run(&["config", "history", "app.replicas", "--limit", "1"])
        .expect(0);
    assert!(first.stdout.starts_with("1 "), "{}", first.stdout);
    assert_eq!(first.stdout.lines().count(), 1);
    assert!(
        first.stderr.contains("--after 1 --limit 1"),
        "the next page: {}",
        first.stderr
    );
    let last = env
        .run(&[
            "config",
            "history",
            "app.replicas",
            "--after",
            "1",
            "--json",
        ])
        .expect(0);
    assert_eq!(last.json()["versions"][0]["version"], 2);
    assert_eq!(last.stderr, "", "no page after the last");
    env.run(&["config", "history", "app.replicas", "--limit", "0"])
        .expect(2);
    assert_eq!(
        env.run(&["config", "list", "--json"]).expect(0).json()["configs"][0]["version"],
        2
    );
    env.run(&["config", "set", "app.replicas", "not json"])
        .expect(2);
    env.run(&["config", "delete", "app.replicas"]).expect(0);
    env.run(&["config", "get", "app.replicas"]).expect(3);

    // The change log: every change above, one line each.
    let all = env.run(&["events", "--json"]).expect(0);
    let events: Vec<serde_json::Value> = (all.stdout.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let newest = events.last().unwrap()["index"].as_u64().unwrap();
    assert_eq!(
        (events[0]["kind"].clone(), events[0]["action"].clone()),
        ("lock".into(), "acquired".into())
    );
    assert_eq!(events.last().unwrap()["action"], "deleted");
    assert_eq!(
        all.stderr.trim(),
        format!("next: octostore events --since {newest}")
    );
    let configs = env
        .run(&[
            "events", "--kind", "config", "--prefix", "app.", "--since", "1",
        ])
        .expect(0);
    let lines: Vec<&str> = configs.stdout.lines().collect();
    assert!(lines.len() >= 3, "{}", configs.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" config ") && l.contains(" app.replicas")),
        "{}",
        configs.stdout
    );
    assert!(
        lines[0].contains(" config put app.replicas version=1"),
        "{}",
        configs.stdout
    );
    let bad = env.run(&["events", "--kind", "locks"]).expect(2);
    assert!(bad.stderr.contains("--kind"), "{}", bad.stderr);
    let past = env.run(&["events", "--since", "999999"]).expect(1);
    assert!(past.stdout.is_empty(), "{}", past.stdout);
    assert!(
        past.stderr.contains("resync") && past.stderr.contains(&format!("--since {newest}")),
        "{}",
        past.stderr
    );
}

#[test]
fn every_command_on_a_local_file() {
    every_command(&Env::local());
}

#[test]
fn every_command_against_a_server() {
    every_command(&Env::remote());
}

#[test]
fn lock_list_all_shows_every_users_leases_with_their_holders() {
    let env = Env::local();
    for (lock, user) in [("b-lock", "alice"), ("a-lock", "bob"), ("c-lock", "carol")] {
        (env.run(&["lock", "acquire", lock, "--ttl", "60", "--user", user])).expect(0);
    }
    let all = env
        .run(&["lock", "list", "--all", "--json"])
        .expect(0)
        .json();
    let listed: Vec<(&str, &str)> = (all["locks"].as_array().unwrap().iter())
        .map(|l| (l["name"].as_str().unwrap(), l["holder"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("a-lock", "bob"), ("b-lock", "alice"), ("c-lock", "carol")]
    );
    assert_eq!(all["total"], 3);
    assert!(all.get("next").is_none());
    let text = env.run(&["lock", "list", "--all"]).expect(0).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("a-lock ") && lines[0].ends_with(" holder=bob waiters=0"),
        "{text}"
    );
    let own = env.run(&["lock", "list", "--json"]).expect(0).json();
    assert_eq!(own["total"], 1, "without --all, the caller's own");
    assert_eq!(own["locks"][0]["name"], "b-lock");
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let env = Env::local();
    let mut before = crate::support::octostore();
    before
        .arg("--db")
        .arg(env.db())
        .args(["--json", "flag", "list"]);
    let before = before.output().unwrap();
    assert!(before.status.success());
    assert_eq!(
        String::from_utf8(before.stdout).unwrap().trim(),
        r#"{"flags":[]}"#
    );
}

#[test]
fn help_documents_the_exit_codes_and_completions_exist() {
    let help = crate::support::octostore().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("6  lock run: the lease was lost"), "{help}");
    assert!(help.contains("7  this machine refused"), "{help}");
    for shell in ["bash", "zsh", "fish"] {
        let script = crate::support::octostore()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(script.status.success());
        assert!(String::from_utf8(script.stdout)
            .unwrap()
            .contains("octostore"));
    }
}

#[test]
fn a_busy_port_is_said_with_its_cause_and_exit_code_7() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let run = Run::of(
        crate::support::octostore()
            .args(["serve", "--memory", "--bind", &bind])
            .output()
            .unwrap(),
    )
    .expect(7);
    // One line: what failed, then the system's reason.
    let said = format!("octostore: cannot listen on {bind}: ");
    assert!(
        run.stderr.lines().any(|line| line.starts_with(&said)
            && line.ends_with("Address already in use (os error 98)")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("storage failure"), "{}", run.stderr);
    drop(taken);
}

#[test]
fn huge_durations_and_ttls_are_usage_errors() {
    let env = Env::local();
    env.run(&["lock", "acquire", "held", "--ttl", "60"])
        .expect(0);
    let huge = "18446744073709551615";
    for (args, message) in [
        (
            vec!["lock", "acquire", "held", "--ttl", "60", "--wait", huge],
            "must be at most 30 days",
        ),
        (
            vec!["lock", "acquire", "x", "--ttl", "18446744073709551615"],
            "must be whole seconds, 1s to 1h",
        ),
        (
            vec!["lock", "acquire", "x", "--ttl", "3601"],
            "must be whole seconds, 1s to 1h",
        ),
        (
            vec![
                "lock",
                "renew",
                "x",
                "--lease",
                "00000000-0000-4000-8000-000000000000",
                "--ttl",
                "0",
            ],
            "must be whole seconds, 1s to 1h",
        ),
        (
            vec![
                "lock", "run", "x", "--ttl", "60", "--wait", "1000000d", "--", "true",
            ],
            "must be at most 30 days",
        ),
        (
            vec![
                "lock",
                "run",
                "x",
                "--ttl",
                "60",
                "--term-grace",
                huge,
                "--",
                "true",
            ],
            "must be at most 30 days",
        ),
        (
            vec![
                "lock",
                "run",
                "x",
                "--ttl",
                "60",
                "--term-grace",
                "31s",
                "--",
                "true",
            ],
            "at most half the TTL",
        ),
    ] {
        let run = env.run(&args).expect(2);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    // The address is taken, so a server that wrongly started would fail to listen (5).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    for flag in ["--header-timeout", "--body-timeout", "--idle-timeout"] {
        let run = env
            .run(&["serve", "--memory", "--bind", &bind, flag, huge])
            .expect(2);
        assert!(
            run.stderr.contains(flag) && run.stderr.contains("must be at most 30 days"),
            "{flag}: {}",
            run.stderr
        );
    }
}

/// `octostore … | head -1`: the reader goes away after a line while the command still writes.
/// The command ends quietly, as other Unix tools do: no panic, no backtrace, no exit 101.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let env = Env::local();
    for version in 0..40 {
        let value = format!(r#"{{"version":{version},"pad":"{}"}}"#, "x".repeat(4000));
        env.run(&["config", "set", "big", &value]).expect(0);
    }
    // Each prints far more than a pipe holds (64 KiB), so the writes go on after the close.
    for args in [&["completions", "bash"][..], &["config", "history", "big"]] {
        let mut child = env
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        // The reader (and with it the pipe's read end) is dropped here.
        let run = finish(child);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert_ne!(run.code, 101, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr, "", "{args:?}");
    }
}

/// The trap: a flag turned off and on again keeps its rollout (`flag set` replaces the whole
/// flag; `flag enable` and `flag disable` change only whether it is on).
fn disabling_a_flag_keeps_its_rollout(env: &Env) {
    env.run(&["flag", "set", "rollout", "--enable", "--percentage", "25"])
        .expect(0);
    let off = env.run(&["flag", "disable", "rollout"]).expect(0);
    assert_eq!(off.stdout.trim(), "rollout disabled percentage=25");
    assert_eq!(
        env.run(&["flag", "get", "rollout"]).expect(1).stdout.trim(),
        "off"
    );
    let on = env
        .run(&["flag", "enable", "rollout", "--json"])
        .expect(0)
        .json();
    assert_eq!(on["enabled"], true, "{on}");
    assert_eq!(on["percentage"], 25, "{on}");
    let list = env.run(&["flag", "list", "--json"]).expect(0).json();
    assert_eq!(list["flags"], serde_json::json!([on]));
    assert_eq!(
        env.run(&["flag", "list"]).expect(0).stdout.trim(),
        "rollout enabled percentage=25"
    );
    // A percentage of 25 still decides: not every subject sees the flag on.
    let on_for = (0..40)
        .filter(|i| {
            let subject = format!("user-{i}");
            let got = env.run(&["flag", "get", "rollout", "--subject", &subject]);
            got.code == 0
        })
        .count();
    assert!((2..25).contains(&on_for), "{on_for} of 40 subjects at 25%");
    // Neither creates a flag.
    env.run(&["flag", "enable", "ghost"]).expect(3);
    env.run(&["flag", "disable", "ghost"]).expect(3);
    env.run(&["flag", "get", "ghost"]).expect(3);
}

#[test]
fn disabling_a_flag_keeps_its_rollout_on_a_local_file() {
    disabling_a_flag_keeps_its_rollout(&Env::local());
}

#[test]
fn disabling_a_flag_keeps_its_rollout_against_a_server() {
    disabling_a_flag_keeps_its_rollout(&Env::remote());
}
