//! One module per command.

pub mod serve;
pub mod token;

use octostore_core::{Durability, Result, SqliteBackend, Store, StoreBuilder};

use crate::args::StoreArgs;

/// A store builder over the embedded SQLite file.
pub fn embedded(args: &StoreArgs) -> Result<StoreBuilder> {
    let durability = if args.sync_every_commit {
        Durability::PowerLoss
    } else {
        Durability::ProcessCrash
    };
    Ok(Store::builder().backend(SqliteBackend::open_with(&args.db, durability)?))
}
