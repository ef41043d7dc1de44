//! The lock commands as scripts written for `flock`, `etcdctl lock` and `consul lock` use them:
//! waiting for a held lock, its exit code and JSON, durations for TTLs, lease files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::{finish, Env};

/// `lock run` waits while another holds the lock, as `flock` does, and runs the command once
/// the holder lets go.
fn lock_run_waits_for_the_holder(env: &Env) {
    let held = env
        .run(&["lock", "acquire", "queue", "--ttl", "1h", "--json"])
        .expect(0)
        .json();
    let ran = env.path("ran");
    let mut run = env
        .command(&["lock", "run", "queue", "--ttl", "60", "--", "touch"])
        .arg(&ran)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Refused, it says so and waits.
    let mut said = String::new();
    BufReader::new(run.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert!(
        said.starts_with("octostore: lock queue is held by alice until ")
            && said.ends_with("; waiting\n"),
        "{said:?}"
    );
    assert!(!ran.exists());
    let lease = held["lease_id"].as_str().unwrap();
    env.run(&["lock", "release", "queue", "--lease", lease])
        .expect(0);
    finish(run).expect(0);
    assert!(ran.exists());
}

#[test]
fn lock_run_waits_for_the_holder_on_a_local_file() {
    lock_run_waits_for_the_holder(&Env::local());
}

#[test]
fn lock_run_waits_for_the_holder_against_a_server() {
    lock_run_waits_for_the_holder(&Env::remote());
}

/// `-n` gives up at once, `--wait` once it has waited that long (saying that it waits), and
/// `lock acquire` tries once by default; the two flags together are a usage error.
#[test]
fn no_wait_gives_up_at_once_and_wait_after_a_while() {
    let env = Env::local();
    env.run(&["lock", "acquire", "busy", "--ttl", "1h"])
        .expect(0);
    let ran = env.path("ran");
    let touch = ran.to_str().unwrap();
    for (flags, waits) in [
        (&["-n"][..], false),
        (&["--no-wait"], false),
        (&["--wait", "300ms"], true),
    ] {
        let run = ["lock", "run", "busy", "--ttl", "60"];
        let run = [&run[..], flags, &["--", "touch", touch]].concat();
        let acquire = [&["lock", "acquire", "busy", "--ttl", "60"][..], flags].concat();
        for args in [run, acquire] {
            let refused = env.run(&args).expect(1);
            assert!(
                refused.stderr.contains("lock busy is held by alice"),
                "{args:?}: {}",
                refused.stderr
            );
            assert_eq!(
                refused.stderr.contains("; waiting"),
                waits,
                "{args:?}: {}",
                refused.stderr
            );
        }
    }
    assert!(!ran.exists());
    let once = env
        .run(&["lock", "acquire", "busy", "--ttl", "60"])
        .expect(1);
    assert!(!once.stderr.contains("waiting"), "{}", once.stderr);
    for args in [
        vec![
            "lock", "acquire", "busy", "--ttl", "60", "-n", "--wait", "1s",
        ],
        vec![
            "lock", "run", "busy", "--ttl", "60", "-n", "--wait", "1s", "--", "true",
        ],
    ] {
        let run = env.run(&args).expect(2);
        assert!(
            run.stderr.contains("cannot be used with"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// A lease's `expires_at`.
fn expires_at(lease: &Value) -> SystemTime {
    humantime::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap()
}

/// Runs `args` (which print a lease as JSON) and asserts that the lease ends `ttl` after the
/// command ran (within a second either side, for the rounding of the instants).
fn expect_lease_for(env: &Env, args: &[&str], ttl: Duration) -> Value {
    let before = SystemTime::now();
    let lease = env.run(args).expect(0).json();
    let after = SystemTime::now();
    let ends = expires_at(&lease);
    let slack = Duration::from_secs(1);
    assert!(
        before + ttl - slack <= ends && ends <= after + ttl + slack,
        "{args:?}: {lease}"
    );
    lease
}

#[test]
fn every_ttl_is_a_duration_of_whole_seconds_from_1s_to_1h() {
    let env = Env::local();
    let acquire = ["lock", "acquire", "ttl", "--ttl", "5m", "--json"];
    let lease = expect_lease_for(&env, &acquire, Duration::from_secs(300));
    let id = lease["lease_id"].as_str().unwrap();
    let renew = [
        "lock", "renew", "ttl", "--lease", id, "--ttl", "1h", "--json",
    ];
    expect_lease_for(&env, &renew, Duration::from_secs(3600));
    let renew = [
        "lock", "renew", "ttl", "--lease", id, "--ttl", "90", "--json",
    ];
    expect_lease_for(&env, &renew, Duration::from_secs(90));
    env.run(&["lock", "run", "ttl-run", "--ttl", "2m", "--", "true"])
        .expect(0);
    for bad in ["1500ms", "1.5s", "0", "0s", "61m", "3601", "soon"] {
        for args in [
            vec!["lock", "acquire", "other", "--ttl", bad],
            vec!["lock", "renew", "ttl", "--lease", id, "--ttl", bad],
            vec!["lock", "run", "other", "--ttl", bad, "--", "true"],
        ] {
            let run = env.run(&args).expect(2);
            assert!(
                run.stderr.contains(&format!(
                    "invalid value '{bad}' for '--ttl <DURATION>': must be whole seconds, 1s to 1h"
                )),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
}

/// `--conflict-exit-code` (`flock -E`) tells a lock held by another from the command's own
/// exit 1.
#[test]
fn a_held_lock_exits_with_the_conflict_exit_code() {
    let env = Env::local();
    env.run(&["lock", "acquire", "taken", "--ttl", "1h"])
        .expect(0);
    let code = "--conflict-exit-code=75";
    for args in [
        vec!["lock", "acquire", "taken", "--ttl", "60", code],
        vec![
            "lock", "acquire", "taken", "--ttl", "60", "--wait", "200ms", code,
        ],
        vec![
            "lock", "run", "taken", "--ttl", "60", "-n", code, "--", "true",
        ],
        vec![
            "lock", "run", "taken", "--ttl", "60", "--wait", "200ms", code, "--", "true",
        ],
    ] {
        let run = env.run(&args).expect(75);
        assert!(
            run.stderr.contains("lock taken is held by alice"),
            "{args:?}: {}",
            run.stderr
        );
    }
    env.run(&[
        "lock",
        "run",
        "free",
        "--ttl",
        "60",
        "--conflict-exit-code",
        "75",
        "--",
        "false",
    ])
    .expect(1);
    for bad in ["256", "-1", "one"] {
        let flag = format!("--conflict-exit-code={bad}");
        let run = env
            .run(&["lock", "acquire", "free", "--ttl", "60", &flag])
            .expect(2);
        assert!(
            run.stderr.contains("--conflict-exit-code <N>"),
            "{bad}: {}",
            run.stderr
        );
    }
}

/// With `--json`, `lock acquire` and `lock run` refused a lock print the API's 409 answer on
/// stdout (and still exit with the conflict code); the answer, checked against the holder's
/// lease.
fn held_lock_as_json(env: &Env) -> Value {
    let lease = env
        .run(&["lock", "acquire", "busy", "--ttl", "1h", "--json"])
        .expect(0)
        .json();
    let acquire = env
        .run(&["lock", "acquire", "busy", "--ttl", "60", "--json"])
        .expect(1);
    assert!(
        acquire.stderr.contains("lock busy is held by alice"),
        "{}",
        acquire.stderr
    );
    let conflict = acquire.json();
    let run = env.run(&[
        "lock",
        "run",
        "busy",
        "--ttl",
        "60",
        "-n",
        "--json",
        "--conflict-exit-code",
        "9",
        "--",
        "true",
    ]);
    assert_eq!(run.expect(9).json(), conflict);
    assert_eq!(
        conflict,
        serde_json::json!({
            "error": "Lock already held",
            "code": "lock_held",
            "lock": {"name": "busy", "holder": "alice", "expires_at": lease["expires_at"]},
        })
    );
    conflict
}

#[test]
fn a_held_lock_as_json_on_a_local_file() {
    held_lock_as_json(&Env::local());
}

#[test]
fn a_held_lock_as_json_is_the_servers_409_answer() {
    let env = Env::remote();
    let conflict = held_lock_as_json(&env);
    let (status, answer) = acquire_by_hand(&env, "busy");
    assert_eq!(status, "HTTP/1.1 409 Conflict");
    assert_eq!(answer, conflict);
}

/// The server's answer to `POST /locks/{name}/acquire` as `alice`, sent by hand: its status
/// line and JSON body.
fn acquire_by_hand(env: &Env, name: &str) -> (String, Value) {
    let token = std::fs::read_to_string(env.path("token")).unwrap();
    let addr = env.url().trim_start_matches("http://");
    let body = r#"{"ttl_seconds":60,"client_id":"by-hand"}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /locks/{name}/acquire HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, serde_json::from_str(body).unwrap())
}

/// The lease `path` holds, as JSON.
fn lease_in(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A script takes, renews and releases a lock through a lease file, parsing no output.
fn a_lease_file_carries_the_lease(env: &Env) {
    let path = env.path("deploy.lease");
    let file = path.to_str().unwrap();
    let acquired = env
        .run(&[
            "lock",
            "acquire",
            "deploy",
            "--ttl",
            "5m",
            "--lease-file",
            file,
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(lease_in(&path), acquired);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let renewed = env
        .run(&[
            "lock",
            "renew",
            "deploy",
            "--lease-file",
            file,
            "--ttl",
            "1h",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(renewed["lease_id"], acquired["lease_id"]);
    assert_ne!(renewed["expires_at"], acquired["expires_at"]);
    assert_eq!(lease_in(&path), renewed, "the file holds the renewed lease");
    // Refused, the file and the lease both kept: another lock's name, or two leases.
    let other = env
        .run(&["lock", "release", "other", "--lease-file", file])
        .expect(2);
    assert!(
        other
            .stderr
            .contains(&format!("{file} holds a lease on lock deploy, not other")),
        "{}",
        other.stderr
    );
    let id = acquired["lease_id"].as_str().unwrap();
    let both = [
        "lock",
        "release",
        "deploy",
        "--lease",
        id,
        "--lease-file",
        file,
    ];
    let both = env.run(&both).expect(2);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    env.run(&["lock", "release", "deploy"]).expect(2);
    assert_eq!(lease_in(&path), renewed);
    let released = env
        .run(&["lock", "release", "deploy", "--lease-file", file])
        .expect(0);
    assert_eq!(released.stdout.trim(), "released deploy");
    assert!(!path.exists(), "the file goes with the lease");
    let status = env.run(&["lock", "status", "deploy", "--json"]).expect(0);
    assert_eq!(status.json()["status"], "available");
    // A lease already gone: the file goes too, saying so, and the release is not found (3).
    // The lock's name may come from the file alone.
    let acquired = env
        .run(&[
            "lock",
            "acquire",
            "deploy",
            "--ttl",
            "5m",
            "--lease-file",
            file,
            "--json",
        ])
        .expect(0)
        .json();
    let id = acquired["lease_id"].as_str().unwrap();
    env.run(&["lock", "release", "deploy", "--lease", id])
        .expect(0);
    let gone = env
        .run(&["lock", "release", "--lease-file", file])
        .expect(3);
    assert!(
        gone.stderr.contains(&format!(
            "the lease in {file} was already gone (expired or released); removing the file"
        )),
        "{}",
        gone.stderr
    );
    assert!(!path.exists());
    let missing = env
        .run(&["lock", "release", "--lease-file", file])
        .expect(2);
    assert!(
        missing.stderr.contains(&format!("cannot read {file}")),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_lease_file_carries_the_lease_on_a_local_file() {
    a_lease_file_carries_the_lease(&Env::local());
}

#[test]
fn a_lease_file_carries_the_lease_against_a_server() {
    a_lease_file_carries_the_lease(&Env::remote());
}

/// A lease file that cannot be written is an error, and the lease it would have named is
/// given back rather than left holding the lock for its TTL.
#[test]
fn an_unwritable_lease_file_gives_the_lock_back() {
    let env = Env::local();
    let path = env.path("missing").join("deploy.lease");
    let file = path.to_str().unwrap();
    let run = env
        .run(&[
            "lock",
            "acquire",
            "deploy",
            "--ttl",
            "1h",
            "--lease-file",
            file,
        ])
        .expect(2);
    assert!(
        run.stderr
            .contains("released deploy: its lease could not be written")
            && run
                .stderr
                .contains(&format!("cannot write the lease to {file}")),
        "{}",
        run.stderr
    );
    let status = env.run(&["lock", "status", "deploy", "--json"]).expect(0);
    assert_eq!(status.json()["status"], "available");
}

#[test]
fn lock_run_help_says_that_it_waits_and_how_not_to() {
    let help = crate::support::octostore()
        .args(["lock", "run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for said in [
        "it waits, without bound",
        "-n, --no-wait",
        "--wait <DURATION>",
        "Waiting retries the acquire",
        "--conflict-exit-code <N>",
    ] {
        assert!(help.contains(said), "{said:?} in {help}");
    }
}
