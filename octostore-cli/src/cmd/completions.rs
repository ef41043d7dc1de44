//! `octostore completions SHELL`.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;

pub fn run(shell: Shell) -> ExitCode {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "octostore",
        &mut std::io::stdout(),
    );
    ExitCode::SUCCESS
}
