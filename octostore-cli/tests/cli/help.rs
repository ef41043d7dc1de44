//! Help a reader can use: each command's own options first, `lock run`'s environment and exit
//! codes, and a manual page.

use std::process::Stdio;

use crate::support::{finish, octostore, Run};

fn help(args: &[&str]) -> String {
    Run::of(octostore().args(args).arg("--help").output().unwrap())
        .expect(0)
        .stdout
}

/// Where `text` first appears in `help`.
fn at(help: &str, text: &str) -> usize {
    help.find(text)
        .unwrap_or_else(|| panic!("{text:?} is not in: {help}"))
}

#[test]
fn a_commands_own_options_come_before_the_global_ones() {
    let help = help(&["lock", "acquire"]);
    // The sections in order, each with its options.
    let own = &help[at(&help, "\nOptions:\n")..];
    let global = &own[at(own, "\nGlobal options:\n")..];
    let store = &global[at(global, "\nStore options:\n")..];
    let own = &own[..at(own, "\nGlobal options:\n")];
    let global = &global[..at(global, "\nStore options:\n")];
    for flag in [
        "--ttl <DURATION>",
        "--wait <DURATION>",
        "--client-id <CLIENT_ID>",
    ] {
        at(own, flag);
    }
    for flag in [
        "--server <SERVER>",
        "--token-file",
        "--user <USER>",
        "--json",
    ] {
        at(global, flag);
        assert!(!own.contains(flag), "{help}");
    }
    for flag in ["--db <FILE>", "--database-url <", "--sync-every-commit"] {
        at(store, flag);
        assert!(!own.contains(flag) && !global.contains(flag), "{help}");
    }
}

#[test]
fn lock_run_help_names_the_commands_environment_and_the_exit_codes() {
    let help = help(&["lock", "run"]);
    for text in [
        "OCTOSTORE_LOCK ",
        "OCTOSTORE_LEASE_ID ",
        "OCTOSTORE_FENCING_TOKEN ",
        "Exit codes of lock run:",
        "1 (or --conflict-exit-code)",
        "6    the lease was lost",
        "128+N if killed by signal N",
    ] {
        at(&help, text);
    }
}

#[test]
fn man_prints_one_roff_page_of_every_command() {
    let run = Run::of(octostore().arg("man").output().unwrap()).expect(0);
    assert!(run.stdout.starts_with(".ie"), "{}", &run.stdout[..200]);
    at(&run.stdout, "\n.TH octostore 1 ");
    // Every command has its section, with its own options (roff escapes each '-').
    at(&run.stdout, "\n.SH \"OCTOSTORE LOCK RUN\"\n");
    at(&run.stdout, "\n.SH \"OCTOSTORE CONFIG HISTORY\"\n");
    let lock_run = &run.stdout[at(&run.stdout, "OCTOSTORE LOCK RUN")..];
    let lock_run = &lock_run[..at(lock_run, "\n.SH \"OCTOSTORE LIMIT\"")];
    at(lock_run, "\\-\\-ttl");
    at(lock_run, "\\-\\-term\\-grace");
    at(lock_run, "OCTOSTORE_FENCING_TOKEN");
    // The global options only on the first page, described once.
    assert!(!lock_run.contains("\\-\\-server"), "{lock_run}");
    assert_eq!(
        run.stdout
            .matches("\\fB\\-\\-server\\fR \\fI<SERVER>")
            .count(),
        1
    );
    assert_eq!(run.stderr, "");
}

/// `octostore man | head`: stdout closed before the page is written is a quiet exit 0.
#[test]
fn man_into_a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = octostore()
        .arg("man")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = finish(child);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
}
