//! `octostore`: a thin binary over `octostore-core` and `octostore-http`. The command line is
//! declared in `args.rs`, each command group lives in `cmd/`, `target.rs` picks the local file
//! or a remote server, `store_path.rs` where the default store file is, `secret_file.rs`
//! writes token and lease files (`lease_file.rs`: what a lease file holds), `failure.rs` says
//! why a command failed, and the mapping from failures to exit codes is here.

mod args;
mod cmd;
mod failure;
mod lease_file;
mod secret_file;
mod store_path;
mod target;

use std::process::ExitCode;

use clap::Parser;
use octostore_core::values::error::Chain;
use octostore_core::Error;

use crate::args::{Cli, Command};
use crate::failure::Failure;

/// The server allocates and frees a few buffers per request (hyper's read buffer among them,
/// 8 KiB each): mimalloc takes 4–10 % less of the server's CPU a request than glibc's malloc
/// (BENCHMARKS.md, "What made it fast").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit code of each kind of failure (see `args::EXIT_CODES`).
fn exit_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Api(err) => match err {
            Error::LockHeld { .. } | Error::VersionMismatch { .. } => 1,
            Error::Invalid { .. }
            | Error::SchemaViolation { .. }
            | Error::SubjectRequired { .. }
            | Error::Conflict(_)
            | Error::QuotaExceeded { .. }
            | Error::TooLarge { .. } => 2,
            Error::NotFound { .. } => 3,
            Error::Unauthorized => 4,
            Error::Storage { .. } | Error::Unavailable(_) | Error::Remote { .. } => 5,
            // A kind the core adds later: a failure, until it is given a code of its own.
            _ => 5,
        },
        Failure::NoToken { .. } | Failure::TokenRefused { .. } => 4,
        Failure::Unreachable { .. } => 5,
        Failure::Held { exit_code, .. } => *exit_code,
        Failure::Bind { .. } | Failure::Runtime(_) | Failure::Command { .. } => 7,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = &cli.global;
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(&global.store, *args),
        Command::Token(command) => cmd::token::run(global, command),
        Command::Lock(command) => cmd::lock::run(global, command),
        Command::Limit(command) => cmd::limit::run(global, command),
        Command::Flag(command) => cmd::flag::run(global, command),
        Command::Config(command) => cmd::config::run(global, command),
        Command::Events {
            since,
            kind,
            prefix,
        } => cmd::events::run(global, since, &kind, prefix.as_deref()),
        Command::Watch {
            since,
            kind,
            prefix,
        } => cmd::watch::run(global, since, &kind, prefix.as_deref()),
        Command::Completions { shell } => Ok(cmd::completions::run(shell)),
        Command::Man => Ok(cmd::man::run()),
    };
    result.unwrap_or_else(|failure| {
        let failure = failure.at(global);
        eprintln!("octostore: {}", Chain(&failure));
        ExitCode::from(exit_code(&failure))
    })
}
