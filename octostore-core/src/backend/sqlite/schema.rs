//! The SQLite schema and its migrations, applied at open.
//!
//! The schema version is SQLite's `user_version`. Each migration moves it up by one inside the
//! same `BEGIN IMMEDIATE` transaction that re-reads it, so processes opening the file at once
//! apply each migration exactly once. A file newer than this binary is refused, never touched.

use rusqlite::{Connection, TransactionBehavior};

use super::Attempt;
use crate::error::Error;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE users (
    id BLOB PRIMARY KEY,
    login TEXT NOT NULL,
    login_folded TEXT NOT NULL UNIQUE,
    avatar_url TEXT,
    github_id INTEGER UNIQUE
);
CREATE TABLE tokens (
    hash BLOB PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    user_id BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user_id);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner BLOB NOT NULL,
    client_id TEXT,
    lease_id BLOB NOT NULL,
    fencing_token INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX leases_by_owner ON leases (owner);
CREATE TABLE fencing (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last_issued INTEGER NOT NULL,
    reserved_through INTEGER NOT NULL
);
INSERT INTO fencing (id, last_issued, reserved_through) VALUES (0, 0, 0);
CREATE TABLE limits (
    owner BLOB NOT NULL,
    name TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (owner, name)
) WITHOUT ROWID;
CREATE TABLE flags (
    owner BLOB NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    percentage INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner, name)
) WITHOUT ROWID;
CREATE TABLE config_heads (
    owner BLOB NOT NULL,
    key TEXT NOT NULL,
    latest INTEGER NOT NULL,
    oldest INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
CREATE TABLE config_versions (
    owner BLOB NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, key, version)
) WITHOUT ROWID;
"#];

/// The schema version this binary writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the file's schema up to [`CURRENT_VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Attempt> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = version(&tx)?;
        if found > CURRENT_VERSION {
            return Err(Attempt::Failed(Error::Storage(format!(
                "the database's schema version is {found}, newer than the {CURRENT_VERSION} \
                 this octostore knows: upgrade octostore to open it"
            ))));
        }
        let Some(migration) = MIGRATIONS.get(found as usize) else {
            return Ok(());
        };
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}
