//! Several OS processes on one SQLite file: they race, and they are killed mid-write.
//!
//! The children are this same test binary, re-run with `--ignored --exact` on one of the
//! `child_*` entry points and told what to do through environment variables. A child reports
//! each acknowledged operation as one `ACK ...` line on stdout, printed only after the
//! operation returned.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use octostore_core::{
    Api, ConfigKey, Durability, Error, FlagName, LimitName, LockName, LockStatus, Login,
    Percentage, RatePolicy, SqliteBackend, Store, Ttl,
};
use rand::Rng;
use serde_json::json;

const DB: &str = "OCTOSTORE_TEST_DB";
const DURABILITY: &str = "OCTOSTORE_TEST_DURABILITY";
const ROUNDS: &str = "OCTOSTORE_TEST_ROUNDS";
const LOG: &str = "OCTOSTORE_TEST_LOG";

fn spawn_child(entry: &str, envs: &[(&str, String)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            entry,
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child's acknowledgements, each split into words, until its stdout closes.
fn acks(child: &mut Child) -> impl Iterator<Item = Vec<String>> {
    let stdout: ChildStdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            // libtest may have begun the line with "test <name> ... ".
            let (_, rest) = line.split_once("ACK ")?;
            Some(rest.split(' ').map(str::to_owned).collect())
        })
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} unset: this is a child of another test"))
}

fn open(path: &str, durability: &str) -> Store {
    let durability = match durability {
        "power" => Durability::PowerLoss,
        _ => Durability::ProcessCrash,
    };
    Store::builder()
        .backend(SqliteBackend::open_with(path, durability).unwrap())
        .build()
}

// ---- racing processes ------------------------------------------------------------------

const RACERS: usize = 4;
const RACE_ROUNDS: usize = 25;
const RACE_LIMIT: u32 = 37;

#[test]
#[ignore = "a child process of processes_race_on_one_lock_and_one_limit"]
fn child_racer() {
    let store = open(&env(DB), "");
    let me = store.session(store.local_user(&Login::parse("racer").unwrap()).unwrap());
    let lock = LockName::parse("shared").unwrap();
    let limit = LimitName::parse("shared").unwrap();
    let policy = RatePolicy::new(RACE_LIMIT.into(), 3600).unwrap();
    let client = octostore_core::ClientId::parse(&format!("pid-{}", std::process::id())).unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(env(LOG))
        .unwrap();
    let mut held = 0;
    let mut allowed = 0;
    while held < RACE_ROUNDS {
        if me.check(&limit, policy).unwrap().allowed {
            allowed += 1;
        }
        match me.acquire(&lock, Ttl::seconds(60).unwrap(), Some(&client)) {
            Ok(grant) => {
                let token = grant.lease.fencing_token;
                // One write per line, in append mode: lines from processes never interleave.
                log.write_all(format!("enter {} {token}\n", std::process::id()).as_bytes())
                    .unwrap();
                log.write_all(format!("exit {} {token}\n", std::process::id()).as_bytes())
                    .unwrap();
                me.release(&lock, grant.lease.lease_id).unwrap();
                held += 1;
            }
            Err(Error::LockHeld { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    println!("ACK allowed {allowed}");
}

#[test]
fn processes_race_on_one_lock_and_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");
    let log = dir.path().join("critical-sections.log");
    std::fs::write(&log, "").unwrap();
    drop(SqliteBackend::open(&db).unwrap()); // create the schema before the race
    let envs = [
        (DB, db.display().to_string()),
        (LOG, log.display().to_string()),
    ];
    let mut children: Vec<Child> = (0..RACERS)
        .map(|_| spawn_child("processes::child_racer", &envs))
        .collect();
    let mut allowed = 0;
    for child in &mut children {
        let reported: Vec<Vec<String>> = acks(child).collect();
        assert!(child.wait().unwrap().success());
        allowed += reported[0][1].parse::<u32>().unwrap();
    }
    assert_eq!(
        allowed, RACE_LIMIT,
        "exactly max checks allowed across processes"
    );

    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2 * RACERS * RACE_ROUNDS);
    let mut last_token = 0u64;
    for pair in lines.chunks(2) {
        let (enter, exit) = (&pair[0], &pair[1]);
        assert_eq!(enter[0], "enter", "two holders at once: {pair:?}");
        assert_eq!(exit[0], "exit", "two holders at once: {pair:?}");
        assert_eq!(enter[1..], exit[1..], "another process entered: {pair:?}");
        let token: u64 = enter[2].parse().unwrap();
        assert!(
            token > last_token,
            "fencing tokens go up in acquisition order"
        );
        last_token = token;
    }
}

// ---- killed processes ------------------------------------------------------------------

/// The child's operations, in order, forever: acquire, put config, set flag, release.
#[test]
#[ignore = "a child process of kill_9_loses_no_acknowledged_write"]
fn child_writer() {
    let round = env(ROUNDS);
    let store = open(&env(DB), &env(DURABILITY));
    let me = store.session(store.local_user(&Login::parse("writer").unwrap()).unwrap());
    let lock = LockName::parse(&format!("lock-{round}")).unwrap();
    let key = ConfigKey::parse(&format!("key-{round}")).unwrap();
    let flag = FlagName::parse(&format!("flag-{round}")).unwrap();
    println!("ACK ready");
    for i in 0u64.. {
        let grant = me
            .acquire(&lock, Ttl::seconds(3600).unwrap(), None)
            .unwrap();
        println!(
            "ACK lock {} {}",
            grant.lease.fencing_token, grant.lease.lease_id
        );
        let entry = me.put_config(&key, json!({ "i": i }), None).unwrap();
        println!("ACK config {} {i}", entry.version);
        let percentage = Percentage::new((i % 101) as i64).unwrap();
        me.set_flag(&flag, i % 2 == 0, Some(percentage)).unwrap();
        println!("ACK flag {i}");
        me.release(&lock, grant.lease.lease_id).unwrap();
        println!("ACK release");
    }
}

/// Checks, after a kill, that the store holds every acknowledged write of the round and at
/// most the one operation that was in flight beyond it.
fn check_round(store: &Store, round: usize, acked: &[Vec<String>]) {
    let me = store.session(store.local_user(&Login::parse("writer").unwrap()).unwrap());
    let lock = LockName::parse(&format!("lock-{round}")).unwrap();
    let key = ConfigKey::parse(&format!("key-{round}")).unwrap();
    let flag = FlagName::parse(&format!("flag-{round}")).unwrap();

    let last_config = acked.iter().rev().find(|a| a[0] == "config");
    let stored_config = me.get_config(&key, None).ok();
    match (last_config, &stored_config) {
        (Some(ack), Some(stored)) => {
            let version: u64 = ack[1].parse().unwrap();
            assert!(
                stored.version == version || stored.version == version + 1,
                "acked version {version}, stored {}",
                stored.version
            );
            let kept = me.get_config(&key, Some(version as i64)).unwrap();
            assert_eq!(kept.value, json!({ "i": ack[2].parse::<u64>().unwrap() }));
        }
        (Some(ack), None) => panic!("acknowledged config version {} lost", ack[1]),
        (None, _) => {}
    }

    let last_flag = acked.iter().rev().find(|a| a[0] == "flag");
    let stored_flag = me.flags().unwrap().into_iter().find(|f| f.name == flag);
    if let Some(ack) = last_flag {
        let i: u64 = ack[1].parse().unwrap();
        let stored = stored_flag.expect("acknowledged flag lost");
        let percentage = u64::from(stored.percentage.unwrap().get());
        assert!(
            percentage == i % 101 || percentage == (i + 1) % 101,
            "flag {i} acknowledged, stored percentage {percentage}"
        );
    }

    // The last acknowledged lock operation decides what the lock may look like.
    let status = me.lock_status(&lock).unwrap();
    let last_lock_op = acked
        .iter()
        .rev()
        .find(|a| a[0] == "lock" || a[0] == "release");
    let last_ack = acked.last().map(|a| a[0].as_str());
    match (last_lock_op, status) {
        (Some(ack), LockStatus::Held(lease)) if ack[0] == "lock" => {
            assert_eq!(
                lease.lease_id.to_string(),
                ack[2],
                "the acknowledged lease is kept"
            );
        }
        (Some(ack), LockStatus::Available) if ack[0] == "lock" => {
            assert_eq!(
                last_ack,
                Some("flag"),
                "only an in-flight release may free the lock"
            );
        }
        (_, LockStatus::Held(lease)) => {
            assert!(
                last_ack.is_none() || last_ack == Some("ready") || last_ack == Some("release"),
                "only an in-flight acquire may take the lock"
            );
            let acked_max = acked
                .iter()
                .filter(|a| a[0] == "lock")
                .map(|a| a[1].parse::<u64>().unwrap())
                .max();
            assert!(Some(lease.fencing_token.0) > acked_max);
        }
        (_, LockStatus::Available) => {}
    }
}

fn kill_rounds(durability: &str, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut rng = rand::rng();
    let mut max_acked_token = 0u64;
    let mut acknowledged = 0;
    for round in 0..rounds {
        let envs = [
            (DB, db.display().to_string()),
            (DURABILITY, durability.to_owned()),
            (ROUNDS, round.to_string()),
        ];
        let mut child = spawn_child("processes::child_writer", &envs);
        let kill_after = rng.random_range(2..120);
        let mut acked = Vec::new();
        let mut lines = acks(&mut child);
        for ack in lines.by_ref() {
            acked.push(ack);
            if acked.len() == kill_after {
                break;
            }
        }
        // SIGKILL, then collect what the child acknowledged before it died.
        child.kill().unwrap();
        acked.extend(lines);
        child.wait().unwrap();
        acknowledged += acked.len();
        for ack in acked.iter().filter(|a| a[0] == "lock") {
            max_acked_token = max_acked_token.max(ack[1].parse().unwrap());
        }

        let store = open(db.to_str().unwrap(), durability);
        check_round(&store, round, &acked);
        let probe = store.session(store.local_user(&Login::parse("probe").unwrap()).unwrap());
        let grant = probe
            .acquire(
                &LockName::parse("probe").unwrap(),
                Ttl::seconds(1).unwrap(),
                None,
            )
            .unwrap();
        assert!(
            grant.lease.fencing_token.0 > max_acked_token,
            "fencing token {} issued again after a crash (max acknowledged {max_acked_token})",
            grant.lease.fencing_token
        );
        probe
            .release(&grant.lease.name, grant.lease.lease_id)
            .unwrap();
        max_acked_token = grant.lease.fencing_token.0;
    }
    assert!(acknowledged > rounds * 2, "the children did real work");
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    kill_rounds("process", 50);
}

#[test]
fn kill_9_loses_no_acknowledged_write_in_power_loss_mode() {
    kill_rounds("power", 10);
}
