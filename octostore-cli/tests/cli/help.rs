//! Help a reader can use: each command's own options first, `lock run`'s environment and exit
//! codes.

use crate::support::{octostore, Run};

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
    for flag in ["--ttl <TTL>", "--wait <WAIT>", "--client-id <CLIENT_ID>"] {
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
