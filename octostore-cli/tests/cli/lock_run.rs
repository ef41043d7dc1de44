//! `lock run`: exclusion between processes, the lease in the environment, lease loss.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{alive, finish, wait_for_file, Env, Proxy};

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

/// The command starts with SIGPIPE's default disposition (`yes | head -1` in it ends), though
/// `octostore` itself ignores the signal (std's default, kept: see `cmd::out_bytes`).
#[test]
fn the_command_does_not_inherit_an_ignored_sigpipe() {
    let env = Env::local();
    let run = env
        .run(&[
            "lock",
            "run",
            "piped",
            "--ttl",
            "30",
            "--",
            "grep",
            "SigIgn",
            "/proc/self/status",
        ])
        .expect(0);
    let mask = run.stdout.trim().trim_start_matches("SigIgn:").trim();
    let ignored = u64::from_str_radix(mask, 16).unwrap();
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{}", run.stdout);
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

/// `sh -c` running a grandchild and sleeping; both pids end up in files.
struct Family {
    command: PathBuf,
    grandchild: PathBuf,
}

impl Family {
    fn in_env(env: &Env) -> Self {
        Self {
            command: env.path("command.pid"),
            grandchild: env.path("grandchild.pid"),
        }
    }

    /// The script: a grandchild in the background, then the command's own sleep; both deaf
    /// to SIGTERM, so that only SIGKILL ends them.
    fn script(&self) -> String {
        format!(
            "trap '' TERM; sleep 1000 & echo $! > {}; echo $$ > {}; sleep 1000",
            self.grandchild.display(),
            self.command.display()
        )
    }

    /// `lock run demo --ttl 3` of the script, its stderr captured.
    fn run_demo(&self, env: &Env) -> Command {
        let script = self.script();
        let mut command = env.command(&[
            "lock", "run", "demo", "--ttl", "3", "--", "sh", "-c", &script,
        ]);
        command.stderr(Stdio::piped());
        command
    }

    /// The pids, once both are written.
    fn pids(&self) -> [i32; 2] {
        [&self.command, &self.grandchild].map(|path| wait_for_file(path).trim().parse().unwrap())
    }
}

/// `run` ends with exit code 6, saying that the lease on `demo` was lost.
fn expect_lost(run: Child) {
    let run = finish(run).expect(6);
    assert!(
        run.stderr.contains("lost the lease on demo"),
        "{}",
        run.stderr
    );
}

impl Drop for Family {
    /// Ends whichever of them a failed test left running.
    fn drop(&mut self) {
        for path in [&self.command, &self.grandchild] {
            if let Ok(pid) = std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                if alive(pid) {
                    // SAFETY: kill(2) on a process this test started.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

#[test]
fn a_server_gone_silent_ends_the_group_before_another_client_can_acquire() {
    let env = Env::remote();
    let proxy = Proxy::to(env.url());
    let family = Family::in_env(&env);
    let run = family
        .run_demo(&env)
        .env("OCTOSTORE_URL", proxy.url())
        .spawn()
        .unwrap();
    let pids = family.pids();
    proxy.go_silent();
    // Another client, straight to the server, tries until the lease has ended there.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let other = env.run(&[
            "lock",
            "acquire",
            "demo",
            "--ttl",
            "60",
            "--client-id",
            "other",
        ]);
        if other.code == 0 {
            break;
        }
        assert_eq!(other.code, 1, "{}", other.stderr);
        assert!(Instant::now() < until, "the lease never ended");
    }
    for pid in pids {
        assert!(
            !alive(pid),
            "process {pid} still runs as another holds the lock"
        );
    }
    expect_lost(run);
}

#[test]
fn a_file_held_by_another_writer_ends_the_group_by_the_lease_end() {
    let env = Env::local();
    let family = Family::in_env(&env);
    let ttl = Duration::from_secs(3);
    let run = family.run_demo(&env).spawn().unwrap();
    let pids = family.pids();
    // Another process's writer holds the file: every renewal from now on waits for it.
    let writer = rusqlite::Connection::open(env.db()).unwrap();
    writer.busy_timeout(Duration::from_secs(10)).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Renewals confirmed so far were sent before now: the lease ends within a TTL.
    let held = Instant::now();
    let until = held + Duration::from_secs(20);
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(Instant::now() < until, "the command was never stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    let ended = Instant::now();
    assert!(
        ended < held + ttl,
        "the command ran {:?} after the lease's end",
        ended - (held + ttl)
    );
    writer.execute_batch("ROLLBACK").unwrap();
    expect_lost(run);
}

#[test]
fn what_the_command_leaves_running_is_ended_before_the_lock_is_released() {
    let env = Env::local();
    let family = Family::in_env(&env);
    let script = format!("sleep 1000 & echo $! > {}", family.grandchild.display());
    // Not captured: the grandchild would hold the pipes open.
    let status = env
        .command(&[
            "lock", "run", "tidy", "--ttl", "30", "--", "sh", "-c", &script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i32 = wait_for_file(&family.grandchild).trim().parse().unwrap();
    assert!(!alive(pid), "the grandchild outlived lock run");
}

#[test]
fn the_token_stays_out_of_the_commands_environment_unless_passed() {
    let env = Env::remote();
    let seen = env.path("seen");
    let script = format!(
        "echo ${{OCTOSTORE_TOKEN_FILE:-none}} ${{OCTOSTORE_TOKEN:-none}} > {}",
        seen.display()
    );
    let mut run = env.command(&[
        "lock", "run", "env", "--ttl", "30", "--", "sh", "-c", &script,
    ]);
    run.env("OCTOSTORE_TOKEN", "octo_unused");
    assert!(run.status().unwrap().success());
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "none none");
    let mut run = env.command(&[
        "lock",
        "run",
        "env",
        "--ttl",
        "30",
        "--pass-token",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    run.env("OCTOSTORE_TOKEN", "octo_unused");
    assert!(run.status().unwrap().success());
    let token_file = env.path("token").display().to_string();
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        format!("{token_file} octo_unused")
    );
}

#[test]
fn a_renewal_in_flight_as_the_command_ends_and_never_confirmed_is_a_lost_lease() {
    let env = Env::remote();
    let proxy = Proxy::to(env.url());
    let (started, silent) = (env.path("started"), env.path("silent"));
    // Renewals every 2 s, SIGTERM only 0.5 s before the lease's end: the command ends by
    // itself 2.5 s after the proxy went silent, with a renewal sent into the silence.
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.01; done; sleep 2.5",
        started.display(),
        silent.display()
    );
    let run = env
        .command(&[
            "lock",
            "run",
            "quiet",
            "--ttl",
            "6",
            "--term-grace",
            "500ms",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("OCTOSTORE_URL", proxy.url())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !started.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    proxy.go_silent();
    std::fs::write(&silent, "").unwrap();
    let run = finish(run).expect(6);
    assert!(
        run.stderr
            .contains("its renewal had no answer by the lease's end"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_command_reads_the_terminal_lock_run_was_started_from() {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;

    let env = Env::local();
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0);
    // SAFETY: the descriptors were just opened and are owned here.
    let (mut master, terminal) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let seen = env.path("seen");
    let script = format!("read line; echo $line > {}", seen.display());
    let mut command = env.command(&[
        "lock", "run", "tty", "--ttl", "30", "--", "sh", "-c", &script,
    ]);
    command
        .stdin(terminal)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid and ioctl are async-signal-safe. lock run leads a session whose
    // controlling terminal is the pty, in its foreground, as a shell's job would be.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = command.spawn().unwrap();
    master.write_all(b"typed\n").unwrap();
    finish(run).expect(0);
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "typed");
}
