//! `lock run`: exclusion between processes, the lease in the environment, lease loss.

use std::process::Stdio;

use crate::support::{wait_for_file, Env};

/// Two `lock run`s on one lock, same user: their commands never overlap, and the second
/// holder sees a larger fencing token.
fn two_runs_take_turns(env: &Env) {
    let log = env.path("turns.log");
    let script = format!(
        "echo start $OCTOSTORE_FENCING_TOKEN >> {log}; sleep 0.3; echo end $OCTOSTORE_FENCING_TOKEN >> {log}",
        log = log.display()
    );
    let runs: Vec<_> = (0..2)
        .map(|_| {
            env.command(&[
                "lock", "run", "job", "--ttl", "30", "--wait", "20s", "--", "sh", "-c", &script,
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert_eq!(
        (lines[0][0], lines[1][0]),
        ("start", "end"),
        "overlap: {log}"
    );
    assert_eq!(
        (lines[2][0], lines[3][0]),
        ("start", "end"),
        "overlap: {log}"
    );
    assert_eq!(lines[0][1], lines[1][1]);
    assert_eq!(lines[2][1], lines[3][1]);
    let first: u64 = lines[0][1].parse().unwrap();
    let second: u64 = lines[2][1].parse().unwrap();
    assert!(second > first, "{log}");
    // Both released the lock on exit.
    let status = env
        .run(&["lock", "status", "job", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["status"], "available");
}

#[test]
fn two_runs_take_turns_on_a_local_file() {
    two_runs_take_turns(&Env::local());
}

#[test]
fn two_runs_take_turns_against_a_server() {
    two_runs_take_turns(&Env::remote());
}

#[test]
fn the_command_sees_the_lease_and_its_exit_code_is_passed_on() {
    let env = Env::local();
    let out = env.path("env.txt");
    let script = format!(
        "echo $OCTOSTORE_LOCK $OCTOSTORE_LEASE_ID $OCTOSTORE_FENCING_TOKEN > {}; exit 7",
        out.display()
    );
    env.run(&[
        "lock", "run", "envy", "--ttl", "30", "--", "sh", "-c", &script,
    ])
    .expect(7);
    let seen = std::fs::read_to_string(&out).unwrap();
    let parts: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(parts[0], "envy");
    assert_eq!(parts[1].len(), 36, "a lease id: {seen}");
    assert!(parts[2].parse::<u64>().is_ok());
    env.run(&[
        "lock",
        "run",
        "envy",
        "--ttl",
        "30",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ])
    .expect(128 + 9);
}

#[test]
fn a_held_lock_without_wait_is_exit_code_1_and_runs_nothing() {
    let env = Env::local();
    env.run(&["lock", "acquire", "busy", "--ttl", "60"])
        .expect(0);
    let marker = env.path("ran");
    let script = format!("touch {}", marker.display());
    env.run(&[
        "lock", "run", "busy", "--ttl", "60", "--", "sh", "-c", &script,
    ])
    .expect(1);
    assert!(!marker.exists());
}

#[test]
fn a_lost_lease_kills_the_command_and_exits_6() {
    let env = Env::local();
    let lease_file = env.path("lease");
    let script = format!(
        "echo $OCTOSTORE_LEASE_ID > {}; exec sleep 60",
        lease_file.display()
    );
    let run = env
        .command(&[
            "lock", "run", "fragile", "--ttl", "3", "--", "sh", "-c", &script,
        ])
        .spawn()
        .unwrap();
    let lease = wait_for_file(&lease_file);
    // Someone with the lease id releases it behind the runner's back: the next renewal fails.
    env.run(&["lock", "release", "fragile", "--lease", lease.trim()])
        .expect(0);
    let status = run.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(6));
}

#[test]
fn signals_reach_the_command_and_the_lock_is_released() {
    let env = Env::local();
    let ready = env.path("ready");
    let script = format!(
        "trap 'exit 42' TERM; echo up > {}; while true; do sleep 0.05; done",
        ready.display()
    );
    let run = env
        .command(&[
            "lock", "run", "sig", "--ttl", "30", "--", "sh", "-c", &script,
        ])
        .spawn()
        .unwrap();
    wait_for_file(&ready);
    // SAFETY: sending SIGTERM to our own child process.
    unsafe {
        libc::kill(run.id() as libc::pid_t, libc::SIGTERM);
    }
    assert_eq!(run.wait_with_output().unwrap().status.code(), Some(42));
    let status = env
        .run(&["lock", "status", "sig", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["status"], "available");
}
