//! Where commands run: a store in this process (the local SQLite file, or the PostgreSQL
//! database of `--database-url`) acting as a local user, or a remote server with a bearer
//! token. Both are an `octostore_core::Api`, so every command is written once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use octostore_core::{
    Api, Durability, Error, Login, PostgresBackend, PostgresOptions, Result, Session,
    SqliteBackend, Store, StoreBuilder,
};
use octostore_http::Client;

use crate::args::{Global, StoreArgs};
use crate::failure::Failure;

/// The store or server a command talks to.
pub enum Target {
    /// The store in this process: the local file or the database.
    Embedded(Session),
    /// A server.
    Remote(Client),
}

impl Target {
    /// `--server` if given, else the store of [`embedded`].
    pub fn open(global: &Global) -> Result<Self, Failure> {
        match &global.server {
            Some(url) => {
                let token = token(global)?.ok_or_else(|| Failure::NoToken {
                    url: url.trim_end_matches('/').to_owned(),
                })?;
                Ok(Target::Remote(Client::new(url, &token)?))
            }
            None => {
                let store = embedded(&global.store)?.build();
                let user = store.local_user(&Login::parse(&local_login(global))?)?;
                Ok(Target::Embedded(store.session(user)))
            }
        }
    }

    /// The operations.
    pub fn api(&self) -> &(dyn Api + Sync) {
        match self {
            Target::Embedded(session) => session,
            Target::Remote(client) => client,
        }
    }

    /// The operations, for threads that may outlive the caller's wait for them.
    pub fn into_api(self) -> Arc<dyn Api + Send + Sync> {
        match self {
            Target::Embedded(session) => Arc::new(session),
            Target::Remote(client) => Arc::new(client),
        }
    }
}

/// A store builder over the database of `--database-url` if given, else the local file.
pub fn embedded(args: &StoreArgs) -> Result<StoreBuilder> {
    if let Some(url) = &args.database_url {
        let options = PostgresOptions {
            schema: args.database_schema.clone(),
            ca_file: args.database_ca_file.clone(),
            max_connections: (args.database_pool_size)
                .unwrap_or(PostgresOptions::default().max_connections),
            ..PostgresOptions::default()
        };
        return Ok(Store::builder().backend(PostgresBackend::connect_with(url, options)?));
    }
    let database_only = [
        ("database_schema", args.database_schema.is_some()),
        ("database_ca_file", args.database_ca_file.is_some()),
        ("database_pool_size", args.database_pool_size.is_some()),
    ];
    if let Some((field, _)) = database_only.into_iter().find(|(_, given)| *given) {
        return Err(Error::invalid(field, "needs --database-url"));
    }
    let durability = if args.sync_every_commit {
        Durability::PowerLoss
    } else {
        Durability::ProcessCrash
    };
    Ok(Store::builder().backend(SqliteBackend::open_with(&db_file(args)?, durability)?))
}

/// `--db` (or `OCTOSTORE_DB`), else this user's default file, its directory made if missing.
pub fn db_file(args: &StoreArgs) -> Result<PathBuf> {
    match &args.db {
        Some(path) => Ok(path.clone()),
        None => crate::store_path::open_default(),
    }
}

/// `--user`, else the OS user name.
pub fn local_login(global: &Global) -> String {
    global
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "local".to_owned())
}

/// The bearer token: `--token-file`/`OCTOSTORE_TOKEN_FILE`, else `OCTOSTORE_TOKEN`, if any.
/// Never a plain argument, which any user could read in `ps`.
fn token(global: &Global) -> Result<Option<String>> {
    if let Some(path) = &global.token_file {
        return read_token(path).map(Some);
    }
    match std::env::var("OCTOSTORE_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
        _ => Ok(None),
    }
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid("token_file", format!("cannot read {}: {e}", path.display()))
    })?;
    Ok(text.trim().to_owned())
}
