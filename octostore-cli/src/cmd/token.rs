//! `octostore token ...`: local users' tokens on the local file; `rotate` on a server.

use std::process::ExitCode;

use octostore_core::{Error, Login, Resource, Result, Store, User};

use super::out;
use crate::args::{Global, TokenCommand};
use crate::failure::Failure;
use crate::target::{embedded, local_login, Target};

pub fn run(global: &Global, command: TokenCommand) -> Result<ExitCode, Failure> {
    match command {
        TokenCommand::Create { login } => {
            let store = embedded(&global.store)?.build();
            let user = store.local_user(&Login::parse(&login)?)?;
            out(store.issue_token(user.id)?.expose());
        }
        TokenCommand::List { login } => {
            let store = embedded(&global.store)?.build();
            for token in store.tokens(existing_user(&store, global, login)?.id)? {
                out(&format!(
                    "{} created_at={}",
                    token.id,
                    token.created_at.to_rfc3339()
                ));
            }
        }
        TokenCommand::Revoke { id, login } => {
            let store = embedded(&global.store)?.build();
            store.revoke_token(existing_user(&store, global, login)?.id, id)?;
        }
        TokenCommand::Rotate => {
            let Target::Remote(client) = Target::open(global)? else {
                return Err(Error::invalid(
                    "server",
                    "missing: token rotate replaces a server's token",
                )
                .into());
            };
            let token = client.rotate_token()?;
            // Printed first, so that a token the file cannot take is still said; a closed
            // stdout ends the process only once the file holds the token.
            let printed = super::try_out(format!("{token}\n").as_bytes());
            if let Some(path) = &global.token_file {
                crate::secret_file::write(path, &format!("{token}\n")).map_err(|e| {
                    Error::invalid(
                        "token_file",
                        format!("cannot write the new token to {}: {e}", path.display()),
                    )
                })?;
            }
            if let Err(e) = printed {
                super::end_on(&e);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The user `login` names (default: the local user), which must exist.
fn existing_user(store: &Store, global: &Global, login: Option<String>) -> Result<User> {
    let login = Login::parse(&login.unwrap_or_else(|| local_login(global)))?;
    store
        .user_by_login(&login)?
        .ok_or_else(|| Error::not_found(Resource::User, login))
}
