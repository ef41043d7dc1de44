//! The PostgreSQL schema and its migrations, applied when a node connects.
//!
//! The version lives in the one-row table `octostore_schema`. Every node that connects takes
//! a transaction-scoped advisory lock ([`MIGRATION_LOCK`]) before reading it, so nodes
//! starting together apply each migration exactly once, one after the other; the lock goes
//! with the transaction, so a node killed mid-migration leaves nothing behind. A schema newer
//! than this binary is refused, never touched.

use postgres::Client;

use super::storage;
use crate::backend::rows::corrupt;
use crate::values::error::{Error, Result};

/// The advisory lock key that serializes migrations: "octostor" in ASCII.
const MIGRATION_LOCK: i64 = 0x6f63_746f_7374_6f72;

/// Migration `i` takes the schema from version `i` to `i + 1`. Columns match the SQLite
/// backend's, so both decode rows with `backend::rows`. The sequence `fencing_tokens` keeps
/// the default `CACHE 1`: with a cache, each connection would hand out a block of its own,
/// and a lock's next grant could get a smaller token than the one before. The second counts
/// the bytes of each config version (its value as stored, compact JSON, and its description)
/// and each owner's total. The third makes the change log: `events`, keyed by their index,
/// which the one row of `event_index` handed out in commit order until the seventh (a
/// sequence would not: its values are taken before the commit). The fourth makes the
/// queues of lock waiters: `lock_waiters` by ticket (which the one row of `waiter_tickets`
/// hands out), and `nodes`, each waiting process's heartbeat. The fifth records who put each
/// config version (`created_by`, a login), the versions already stored taken as their
/// owner's: a user's configs are private to them; and marks a deleted key kept for an
/// undelete (`deleted_at`), indexed for the sweep that forgets them; and makes
/// `config_schemas`, a key's JSON Schema with its digest (read alone by every put). The sixth
/// gives a flag its targeting (`targeting`, JSON: rules, variants, prerequisites; NULL for
/// none) and makes `flag_segments`, the constraints rules share (`constraints`, JSON). The
/// seventh stops handing out event indexes from one row, which made every change wait for
/// the commit of the one before: an event's index is now its transaction's id (see
/// `tx.rs`), above `event_log.base` (one more than the last index of the old row, so indexes
/// keep growing), and `event_log.pruned_through` is the newest index pruned. Dropping
/// `event_index` makes the changes of a node still running an older octostore fail, rather
/// than log events below the new ones, which readers past them would never see. The eighth
/// counts the changes of users and tokens (`identity_changes.version`, moved by triggers on
/// both tables, in the changing transaction), which a node reads before it trusts a token
/// it has seen before (`Backend::outside_writes`).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id BYTEA PRIMARY KEY,
    login TEXT NOT NULL,
    login_folded TEXT NOT NULL UNIQUE,
    avatar_url TEXT,
    github_id BIGINT UNIQUE
);
CREATE TABLE tokens (
    hash BYTEA PRIMARY KEY,
    id BYTEA NOT NULL UNIQUE,
    user_id BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user_id);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner BYTEA NOT NULL,
    client_id TEXT,
    lease_id BYTEA NOT NULL,
    fencing_token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);
CREATE SEQUENCE fencing_tokens AS BIGINT MINVALUE 1 NO CYCLE;
CREATE TABLE limits (
    owner BYTEA NOT NULL,
    name TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE TABLE flags (
    owner BYTEA NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    percentage BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE TABLE config_heads (
    owner BYTEA NOT NULL,
    key TEXT NOT NULL,
    latest BIGINT NOT NULL,
    oldest BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE config_versions (
    owner BYTEA NOT NULL,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    value TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, key, version)
);
"#,
    r#"
ALTER TABLE config_versions ADD COLUMN bytes BIGINT;
UPDATE config_versions
SET bytes = octet_length(value) + COALESCE(octet_length(description), 0);
ALTER TABLE config_versions ALTER COLUMN bytes SET NOT NULL;
CREATE TABLE config_bytes (
    owner BYTEA PRIMARY KEY,
    bytes BIGINT NOT NULL
);
INSERT INTO config_bytes (owner, bytes)
SELECT owner, SUM(bytes) FROM config_versions GROUP BY owner;
"#,
    r#"
CREATE TABLE events (
    idx BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    owner BYTEA NOT NULL,
    kind BIGINT NOT NULL,
    change BIGINT NOT NULL,
    name TEXT NOT NULL,
    enabled BIGINT,
    percentage BIGINT,
    number BIGINT,
    holder TEXT,
    expires_at BIGINT
);
CREATE TABLE event_index (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last BIGINT NOT NULL
);
INSERT INTO event_index (id, last) VALUES (0, 0);
"#,
    r#"
CREATE TABLE lock_waiters (
    ticket BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    owner BYTEA NOT NULL,
    node BYTEA NOT NULL
);
CREATE INDEX lock_waiters_by_name ON lock_waiters (name, ticket);
CREATE TABLE waiter_tickets (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last BIGINT NOT NULL
);
INSERT INTO waiter_tickets (id, last) VALUES (0, 0);
CREATE TABLE nodes (
    node BYTEA PRIMARY KEY,
    alive_until BIGINT NOT NULL
);
"#,
    r#"
ALTER TABLE config_versions ADD COLUMN created_by TEXT;
UPDATE config_versions
SET created_by = (SELECT login FROM users WHERE users.id = config_versions.owner);
ALTER TABLE config_heads ADD COLUMN deleted_at BIGINT;
CREATE INDEX config_heads_deleted ON config_heads (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE config_schemas (
    owner BYTEA NOT NULL,
    key TEXT NOT NULL,
    digest BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT,
    schema TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
"#,
    r#"
ALTER TABLE flags ADD COLUMN targeting TEXT;
CREATE TABLE flag_segments (
    owner BYTEA NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    constraints TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);
"#,
    r#"
CREATE TABLE event_log (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    base BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_log (id, base, pruned_through)
SELECT 0, last + 1, COALESCE((SELECT MIN(idx) - 1 FROM events), last) FROM event_index;
DROP TABLE event_index;
"#,
    r#"
CREATE TABLE identity_changes (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    version BIGINT NOT NULL
);
INSERT INTO identity_changes (id, version) VALUES (0, 0);
CREATE FUNCTION identity_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE identity_changes SET version = version + 1 WHERE id = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION identity_changed();
CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens
FOR EACH STATEMENT EXECUTE FUNCTION identity_changed();
"#,
];

/// The schema version this binary writes.
pub const CURRENT_VERSION: i32 = MIGRATIONS.len() as i32;

/// Creates `schema` (if given) and brings OctoStore's tables in it, or in the connection's
/// search path, up to [`CURRENT_VERSION`], in one transaction.
pub(super) fn migrate(client: &mut Client, schema: Option<&str>) -> Result<()> {
    // Read committed: each statement after the lock sees what the previous holder committed.
    let mut tx = client.transaction().map_err(storage)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(storage)?;
    if let Some(schema) = schema {
        // The name is checked to be a plain lowercase identifier (see `SchemaName`).
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .map_err(storage)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS octostore_schema (
             id INTEGER PRIMARY KEY CHECK (id = 0),
             version INTEGER NOT NULL
         );
         INSERT INTO octostore_schema (id, version) VALUES (0, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .map_err(storage)?;
    let found: i32 = tx
        .query_one("SELECT version FROM octostore_schema WHERE id = 0", &[])
        .map_err(storage)?
        .get(0);
    if found > CURRENT_VERSION {
        return Err(Error::storage(format!(
            "the database's schema version is {found}, newer than the {CURRENT_VERSION} this \
             octostore knows: upgrade octostore to use it"
        )));
    }
    let applied = usize::try_from(found).map_err(|_| corrupt("schema version"))?;
    for migration in &MIGRATIONS[applied..] {
        tx.batch_execute(migration).map_err(storage)?;
    }
    tx.execute(
        "UPDATE octostore_schema SET version = $1 WHERE id = 0",
        &[&CURRENT_VERSION],
    )
    .map_err(storage)?;
    tx.commit().map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh schema named after `prefix`, as an octostore of schema `version` left it
    /// (the first `version` migrations run), and a client whose search path is it; `None`
    /// when `OCTOSTORE_TEST_POSTGRES_URL` names no database.
    fn schema_at_version(prefix: &str, version: usize) -> Option<(Client, String)> {
        let Ok(url) = std::env::var("OCTOSTORE_TEST_POSTGRES_URL") else {
            eprintln!("OCTOSTORE_TEST_POSTGRES_URL unset: skipped");
            return None;
        };
        let schema = format!("{prefix}_{}", std::process::id());
        let mut client = Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                 SET search_path = {schema};
                 CREATE TABLE octostore_schema (id INTEGER PRIMARY KEY, version INTEGER);
                 INSERT INTO octostore_schema VALUES (0, {version});"
            ))
            .unwrap();
        for migration in &MIGRATIONS[..version] {
            client.batch_execute(migration).unwrap();
        }
        Some((client, schema))
    }

    /// A database of schema 1 with configs keeps them, each version now counting its bytes
    /// and each owner its total (run when `OCTOSTORE_TEST_POSTGRES_URL` names a database).
    #[test]
    fn config_bytes_are_counted_for_the_versions_already_stored() {
        let Some((mut client, schema)) = schema_at_version("octostore_migration", 1) else {
            return;
        };
        client
            .batch_execute(
                "INSERT INTO config_versions VALUES ('\\x01', 'a', 1, '\"é\"', 'two', 0);
                 INSERT INTO config_versions VALUES ('\\x01', 'a', 2, '[1,2]', NULL, 0);
                 INSERT INTO config_versions VALUES ('\\x02', 'b', 1, '{}', NULL, 0);",
            )
            .unwrap();
        let migrated = migrate(&mut client, Some(&schema));
        let mut bytes = |sql: &str| -> i64 { client.query_one(sql, &[]).unwrap().get(0) };
        let counted = [
            bytes("SELECT bytes FROM config_versions WHERE version = 1 AND key = 'a'"),
            bytes("SELECT bytes FROM config_bytes WHERE owner = '\\x01'"),
            bytes("SELECT bytes FROM config_bytes WHERE owner = '\\x02'"),
        ];
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        assert!(migrated.is_ok());
        // `"é"` is 4 bytes of UTF-8 (3 characters), `two` 3.
        assert_eq!(counted, [7, 12, 2]);
    }

    /// A database of schema 4 with configs keeps them, each version now put by its owner's
    /// login (unknown for an owner the database has no user for).
    #[test]
    fn stored_config_versions_are_taken_as_their_owners() {
        let Some((mut client, schema)) = schema_at_version("octostore_migration5", 4) else {
            return;
        };
        client
            .batch_execute(
                "INSERT INTO users VALUES ('\\x01', 'Alice', 'alice', NULL, NULL);
                 INSERT INTO config_versions VALUES ('\\x01', 'a', 1, '[1]', NULL, 0, 3);
                 INSERT INTO config_versions VALUES ('\\x02', 'b', 1, '{}', NULL, 0, 2);",
            )
            .unwrap();
        let migrated = migrate(&mut client, Some(&schema));
        let mut by = |key: &str| -> Option<String> {
            client
                .query_one(
                    "SELECT created_by FROM config_versions WHERE key = $1",
                    &[&key],
                )
                .unwrap()
                .get(0)
        };
        let writers = [by("a"), by("b")];
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        assert!(migrated.is_ok(), "{migrated:?}");
        assert_eq!(writers, [Some("Alice".to_owned()), None]);
    }

    /// A database of schema 6 with events keeps them: the next index is above every one of
    /// them (`base`), a reader is told to resync from where it was before (`pruned_through`,
    /// one below the oldest kept: event 1 was pruned here), and the old counter row is gone.
    #[test]
    fn stored_events_keep_their_indexes_and_new_ones_come_after() {
        let Some((mut client, schema)) = schema_at_version("octostore_migration7", 6) else {
            return;
        };
        client
            .batch_execute(
                "INSERT INTO events VALUES (2, 0, '\\x01', 1, 1, 'a', NULL, NULL, NULL, NULL, NULL);
                 INSERT INTO events VALUES (3, 0, '\\x01', 1, 1, 'b', NULL, NULL, NULL, NULL, NULL);
                 UPDATE event_index SET last = 3;",
            )
            .unwrap();
        let migrated = migrate(&mut client, Some(&schema));
        let log: (i64, i64) = client
            .query_one("SELECT base, pruned_through FROM event_log", &[])
            .map(|row| (row.get(0), row.get(1)))
            .unwrap();
        let counter_gone = client
            .query_opt(
                "SELECT 1 FROM pg_tables WHERE tablename = 'event_index' AND schemaname = $1",
                &[&schema],
            )
            .unwrap()
            .is_none();
        let kept: i64 = client
            .query_one("SELECT COUNT(*) FROM events", &[])
            .unwrap()
            .get(0);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        assert!(migrated.is_ok(), "{migrated:?}");
        assert_eq!(log, (4, 1));
        assert!(counter_gone);
        assert_eq!(kept, 2);
    }
}
