//! `octostore`: a thin binary over `octostore-core` and `octostore-http`. Parsing lives in
//! `args.rs`, each command in `cmd/`, and the mapping from errors to exit codes here.

mod args;
mod cmd;

use std::process::ExitCode;

use clap::Parser;
use octostore_core::Error;

use crate::args::{Cli, Command};

/// The exit code of each kind of error (see `args::EXIT_CODES`).
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::LockHeld { .. } => 1,
        Error::Invalid { .. }
        | Error::Conflict(_)
        | Error::QuotaExceeded { .. }
        | Error::TooLarge { .. } => 2,
        Error::NotFound { .. } => 3,
        Error::Unauthorized => 4,
        Error::Storage(_) => 5,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(&cli.store, args),
        Command::Token(command) => cmd::token::run(&cli.store, command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("octostore: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}
