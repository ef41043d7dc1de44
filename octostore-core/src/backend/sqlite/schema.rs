//! The SQLite schema and its migrations, applied at open.
//!
//! The schema version is SQLite's `user_version`. Each migration moves it up by one inside the
//! same `BEGIN IMMEDIATE` transaction that re-reads it, so processes opening the file at once
//! apply each migration exactly once. A file newer than this binary is refused, never touched.

use rusqlite::{Connection, TransactionBehavior};

use super::Attempt;
use crate::values::error::Error;

/// Migration `i` takes the schema from version `i` to `i + 1`. The second counts the bytes
/// of each config version (its value as stored, compact JSON, and its description) and each
/// owner's total, and moves `value` to the end of the row, so that reading the columns
/// before it (a list's descriptions, a prune's bytes) leaves a large value's overflow pages
/// unread. The third makes the change log: `events`, keyed by their index, which the one row
/// of `event_index` hands out (see `sql.rs`'s `append_event`); `kind` is the event's kind
/// as a bit (lock 1, limit 2, flag 4, config 8), for filters. The fourth makes the queues of
/// lock waiters: `lock_waiters` by ticket (which the one row of `waiter_tickets` hands out),
/// and `nodes`, each waiting process's heartbeat. The fifth records who put each config
/// version (`created_by`, a login), the versions already stored taken as their owner's: a
/// user's configs are private to them. It is added after `value`, which only a read of the
/// whole version (which reads the value anyway) reads it with. It also marks a deleted key
/// kept for an undelete (`deleted_at`), indexed for the sweep that forgets them, and makes
/// `config_schemas`, a key's JSON Schema with its digest (read alone by every put). The sixth
/// gives a flag its targeting (`targeting`, JSON: rules, variants, prerequisites; NULL for
/// none) and makes `flag_segments`, the constraints rules share (`constraints`, JSON).
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
CREATE TABLE config_versions_counted (
    owner BLOB NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (owner, key, version)
) WITHOUT ROWID;
INSERT INTO config_versions_counted
    (owner, key, version, bytes, description, created_at, value)
SELECT owner, key, version,
       length(CAST(value AS BLOB)) + COALESCE(length(CAST(description AS BLOB)), 0),
       description, created_at, value
FROM config_versions;
DROP TABLE config_versions;
ALTER TABLE config_versions_counted RENAME TO config_versions;
CREATE TABLE config_bytes (
    owner BLOB PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO config_bytes (owner, bytes)
SELECT owner, SUM(bytes) FROM config_versions GROUP BY owner;
"#,
    r#"
CREATE TABLE events (
    idx INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    owner BLOB NOT NULL,
    kind INTEGER NOT NULL,
    change INTEGER NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER,
    percentage INTEGER,
    number INTEGER,
    holder TEXT,
    expires_at INTEGER
);
CREATE TABLE event_index (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last INTEGER NOT NULL
);
INSERT INTO event_index (id, last) VALUES (0, 0);
"#,
    r#"
CREATE TABLE lock_waiters (
    ticket INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    owner BLOB NOT NULL,
    node BLOB NOT NULL
);
CREATE INDEX lock_waiters_by_name ON lock_waiters (name, ticket);
CREATE TABLE waiter_tickets (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last INTEGER NOT NULL
);
INSERT INTO waiter_tickets (id, last) VALUES (0, 0);
CREATE TABLE nodes (
    node BLOB PRIMARY KEY,
    alive_until INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE config_versions ADD COLUMN created_by TEXT;
UPDATE config_versions
SET created_by = (SELECT login FROM users WHERE users.id = config_versions.owner);
ALTER TABLE config_heads ADD COLUMN deleted_at INTEGER;
CREATE INDEX config_heads_deleted ON config_heads (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE config_schemas (
    owner BLOB NOT NULL,
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT,
    schema TEXT NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE flags ADD COLUMN targeting TEXT;
CREATE TABLE flag_segments (
    owner BLOB NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    constraints TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner, name)
) WITHOUT ROWID;
"#,
];

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
            return Err(Attempt::Failed(Error::storage(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of schema 1 with configs keeps them, each version now counting its bytes and
    /// each owner its total.
    #[test]
    fn config_bytes_are_counted_for_the_versions_already_stored() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO config_versions VALUES (x'01', 'a', 1, '\"é\"', 'two', 0);
             INSERT INTO config_versions VALUES (x'01', 'a', 2, '[1,2]', NULL, 0);
             INSERT INTO config_versions VALUES (x'02', 'b', 1, '{}', NULL, 0);",
        )
        .unwrap();
        assert!(migrate(&mut conn).is_ok());
        let bytes = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        // `"é"` is 4 bytes of UTF-8 (3 characters), `two` 3.
        assert_eq!(
            bytes("SELECT bytes FROM config_versions WHERE version = 1 AND key = 'a'"),
            7
        );
        assert_eq!(
            bytes("SELECT bytes FROM config_bytes WHERE owner = x'01'"),
            12
        );
        assert_eq!(
            bytes("SELECT bytes FROM config_bytes WHERE owner = x'02'"),
            2
        );
        assert_eq!(bytes("SELECT COUNT(*) FROM config_versions"), 3);
        let value: String = conn
            .query_row(
                "SELECT value FROM config_versions WHERE key = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(value, "{}");
    }

    /// A file of schema 4 with configs keeps them, each version now put by its owner's login
    /// (unknown for an owner the file has no user for).
    #[test]
    fn stored_config_versions_are_taken_as_their_owners() {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..4] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO users VALUES (x'01', 'Alice', 'alice', NULL, NULL);
             INSERT INTO config_versions VALUES (x'01', 'a', 1, 3, NULL, 0, '[1]');
             INSERT INTO config_versions VALUES (x'02', 'b', 1, 2, NULL, 0, '{}');",
        )
        .unwrap();
        assert!(migrate(&mut conn).is_ok());
        let by = |key: &str| -> Option<String> {
            conn.query_row(
                "SELECT created_by FROM config_versions WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(by("a").as_deref(), Some("Alice"));
        assert_eq!(by("b"), None);
    }
}
