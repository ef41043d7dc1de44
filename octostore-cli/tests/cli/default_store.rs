//! The store commands open without `--db`: one file per user, whatever the directory.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::support::{octostore, Run};

/// The binary, in `dir`, with `state` as its `XDG_STATE_HOME` and no store named.
fn in_dir(dir: &std::path::Path, state: &std::path::Path, args: &[&str]) -> Command {
    let mut command = octostore();
    command
        .args(args)
        .current_dir(dir)
        .env("XDG_STATE_HOME", state)
        .env("OCTOSTORE_USER", "alice");
    command
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn commands_in_two_directories_share_one_store_made_for_its_owner_only() {
    let root = tempfile::tempdir().unwrap();
    let (d1, d2, state) = (
        root.path().join("d1"),
        root.path().join("d2"),
        root.path().join("state"),
    );
    std::fs::create_dir(&d1).unwrap();
    std::fs::create_dir(&d2).unwrap();
    let acquire = ["lock", "acquire", "shared", "--ttl", "60"];
    Run::of(in_dir(&d1, &state, &acquire).output().unwrap()).expect(0);
    let second = Run::of(in_dir(&d2, &state, &acquire).output().unwrap()).expect(1);
    assert!(second.stderr.contains("held"), "{}", second.stderr);
    let status = Run::of(
        in_dir(&d2, &state, &["lock", "status", "shared", "--json"])
            .output()
            .unwrap(),
    )
    .expect(0)
    .json();
    assert_eq!(status["holder"], "alice", "{status}");

    let dir = state.join("octostore");
    let file = dir.join("octostore.db");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&file), 0o600);
    for cwd in [&d1, &d2] {
        assert_eq!(
            std::fs::read_dir(cwd).unwrap().count(),
            0,
            "{}",
            cwd.display()
        );
    }
    // --help says which file it is.
    let help = Run::of(in_dir(&d1, &state, &["--help"]).output().unwrap()).expect(0);
    assert!(
        help.stdout
            .contains(&format!("[default: {}]", file.display())),
        "{}",
        help.stdout
    );
}

#[test]
fn token_and_serve_use_the_default_store_and_serve_names_it() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let file = state.join("octostore").join("octostore.db");
    Run::of(
        in_dir(root.path(), &state, &["token", "create", "alice"])
            .output()
            .unwrap(),
    )
    .expect(0);
    let mut server = in_dir(root.path(), &state, &["serve", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let listening = lines
        .map_while(Result::ok)
        .find(|line| line.contains("listening"));
    let _ = server.kill();
    let _ = server.wait();
    let listening = listening.expect("the server did not start");
    assert!(
        listening.contains(&format!("store sqlite {} (", file.display())),
        "{listening}"
    );
    // The token was issued on the file the server opened.
    let list = Run::of(
        in_dir(root.path(), &state, &["token", "list", "alice"])
            .output()
            .unwrap(),
    )
    .expect(0);
    assert_eq!(list.stdout.lines().count(), 1, "{}", list.stdout);
}

#[test]
fn without_home_or_state_directory_a_user_is_told_to_pass_db() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root's default is /var/lib/octostore (see store_path's unit tests)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let run = Run::of(
        octostore()
            .args(["lock", "list"])
            .current_dir(root.path())
            .env_remove("HOME")
            .env_remove("XDG_STATE_HOME")
            .output()
            .unwrap(),
    )
    .expect(2);
    assert!(run.stderr.contains("pass --db"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}
