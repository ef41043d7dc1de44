//! `octostore completions SHELL`.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;

pub fn run(shell: Shell) -> ExitCode {
    // Into memory first: clap_complete panics if a write fails (a reader gone, as with
    // `| head`); `out_bytes` ends quietly instead.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "octostore", &mut script);
    super::out_bytes(&script);
    ExitCode::SUCCESS
}
