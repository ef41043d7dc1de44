//! `octostore token ...`: tokens of local users, on the embedded store.

use std::process::ExitCode;

use octostore_core::{Login, Result};

use crate::args::{StoreArgs, TokenCommand};

pub fn run(store: &StoreArgs, command: TokenCommand) -> Result<ExitCode> {
    let store = super::embedded(store)?.build();
    match command {
        TokenCommand::Create { login } => {
            let user = store.local_user(&Login::parse(&login)?)?;
            println!("{}", store.issue_token(user.id)?.expose());
        }
    }
    Ok(ExitCode::SUCCESS)
}
