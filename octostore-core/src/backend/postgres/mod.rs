//! The PostgreSQL backend: several server nodes sharing one database.
//!
//! Every operation that writes is one `SERIALIZABLE` transaction, unless it declares the
//! keys it decides on ([`Backend::transact_on`]: a lock's acquire, release and renewal, a
//! rate limit's check, a config write): that one holds its keys' locks, then runs at
//! `REPEATABLE READ` ([`keys`]). One that only reads ([`Backend::read`]) is a
//! `REPEATABLE READ READ ONLY` one, one snapshot that never fails to serialize and never
//! waits. When two transactions would not serialize, PostgreSQL aborts one (SQLSTATE
//! 40001; 40P01 for a deadlock; 23505 for a key that a concurrent transaction inserted
//! first) and the backend runs the operation again on a fresh snapshot, after a random
//! pause that grows with each try, for up to [`RETRY_FOR`]; a process runs its retries one
//! at a time. The rules stay in Rust, above [`Tx`]: the database only makes each
//! read-modify-write atomic and isolated. On small tables, PostgreSQL's predicate locks
//! cover whole index pages, so concurrent `SERIALIZABLE` writers of one table often
//! conflict even on different keys: the price of serializability that holds whatever the
//! rules read, and why the hottest operations name their keys instead.
//!
//! Time: by default ([`TimeSource::Database`]) a transaction's [`Tx::now`] is the database's
//! `clock_timestamp()`, read in the transaction's first statement, so all nodes decide expiry
//! and windows by one clock, whatever their own clocks say, and a transaction that sees
//! another's writes runs at a later instant than it. [`TimeSource::StoreClock`] reads the
//! store's [`Clock`] instead, for tests that drive a manual clock.
//!
//! Fencing tokens come from the sequence `fencing_tokens`: each `nextval` returns more than
//! every earlier one on any node (the sequence keeps PostgreSQL's default `CACHE 1`), and
//! none is handed out twice, even by a transaction that rolled back. `nextval` runs before
//! the commit, so the tokens of two transactions acquiring different locks may commit in
//! either order: tokens strictly increase per lock (the next grant of a lock reads the row
//! the previous one wrote, so it begins after that commit) and never repeat, but do not
//! follow commit order across locks.
//!
//! Connections come from an r2d2 pool. Each keeps the statements it prepared, so a query is
//! one round trip; `r2d2_postgres` pools bare clients, which would prepare every statement
//! again (two round trips per query), hence the small [`r2d2::ManageConnection`] here.

mod keys;
mod notify;
mod pipeline;
mod schema;
mod tls;
mod tx;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Client, Statement};
use rand::Rng;

use super::{Backend, Concurrency, Key, Keys, Listener, Tx};
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::{Error, Result};
use pipeline::Sent;

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// How long an operation keeps trying after serialization failures before giving up.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// The longest pause between two tries of an operation.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for a pooled connection.
const POOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The database's clock, in nanoseconds since the epoch.
const DATABASE_TIME: &str = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint";

/// The first key of the advisory lock every writing transaction holds (see [`LogKeys`]):
/// "octs" in ASCII.
const WRITER_LOCK_CLASS: i32 = 0x6f63_7473;

/// What a transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access<'k> {
    /// Read and write: `SERIALIZABLE`, holding the writers' lock.
    Write,
    /// Read and write, deciding only on `keys` ([`Backend::transact_on`]): `REPEATABLE READ`,
    /// holding the writers' lock, begun once the keys' locks are held (see [`keys`]).
    WriteOn(Keys<'k>),
    /// Only read: `REPEATABLE READ READ ONLY`; with `after_horizon`, first reading the
    /// change log's [`Horizon`].
    Read { after_horizon: bool },
}

/// The change log's keys in this schema, read once when the backend connects.
#[derive(Debug, Clone)]
pub(super) struct LogKeys {
    /// Added to every event's index (`event_log.base`).
    base: i64,
    /// The second key of the advisory lock every writing transaction takes, shared, in its
    /// first statement, before it has an id: this schema's (a hash of its name). A reader of
    /// the log finds the ids of the transactions writing now by their lock ([`Horizon`]).
    writers: i32,
}

/// An id below every transaction id a writer running now holds or will take: every event of
/// a transaction below it is committed or never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Horizon(i64);

/// The horizon: the snapshot's `xmax` (no transaction at or above it had begun), lowered to
/// the id of each transaction holding the writers' lock. Read before the reading
/// transaction's snapshot is taken: a writer that held the lock and is gone by then has
/// committed or rolled back, and the snapshot sees it. Both are read in one statement, the
/// snapshot first (`xmax`, taken when the statement starts), then the locks, so a writer
/// that takes its id between them takes one at or above `xmax`. `pg_locks` names a
/// transaction by its 32-bit id: put back beside `xmax`, within 2^31 of it.
const HORIZON: &str = "SELECT LEAST(s.xmax, MIN(s.xmax + \
       ((x.transactionid::text::bigint - s.xmax % 4294967296 + 6442450944) % 4294967296 \
        - 2147483648))) \
     FROM (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax) s \
     LEFT JOIN pg_locks w ON w.locktype = 'advisory' AND w.classid = $1::bigint::oid \
       AND w.objid = $2::bigint::oid AND w.objsubid = 2 AND w.granted \
       AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     LEFT JOIN pg_locks x ON x.pid = w.pid AND x.locktype = 'transactionid' \
       AND x.mode = 'ExclusiveLock' AND x.granted \
     GROUP BY s.xmax";

/// Where transactions take their time from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// The database's clock: one clock for every node (the default).
    #[default]
    Database,
    /// The store's [`Clock`], as the other backends do: for tests with a manual clock, or a
    /// single node.
    StoreClock,
}

/// How to use the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The schema that holds OctoStore's tables, created if missing: a lowercase identifier
    /// (`[a-z_][a-z0-9_]*`, at most 63 characters). `None` (the default): the first schema
    /// of the connection's search path, usually `public`.
    pub schema: Option<String>,
    /// How many connections this process opens at most (default 16).
    pub max_connections: u32,
    /// Where transactions take their time from (default: the database).
    pub time: TimeSource,
    /// The PEM file of the CA that signed the server's certificate (libpq's `sslrootcert`,
    /// which the URL may give instead): with `sslmode=verify-full` or `verify-ca` the
    /// server's chain must lead to it, and with `require` or `prefer` too (which, without a
    /// CA, check no certificate). `None` (the default): the URL's `sslrootcert`, else
    /// Mozilla's roots for the `verify-` modes.
    pub ca_file: Option<PathBuf>,
    /// How long a transaction of this process may sit idle, between two of its statements,
    /// before the database ends it (PostgreSQL's `idle_in_transaction_session_timeout`;
    /// default 10 s). A node frozen or cut off mid-operation would otherwise keep its row
    /// locks, and hold back every reader of the change log, until the operating system gives
    /// up on its connection, hours later. No operation waits that long between statements.
    pub idle_in_transaction: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 16,
            time: TimeSource::Database,
            ca_file: None,
            idle_in_transaction: Duration::from_secs(10),
        }
    }
}

/// Stores everything in a PostgreSQL database that any number of nodes share.
pub struct PostgresBackend {
    pool: r2d2::Pool<Connector>,
    time: TimeSource,
    log: LogKeys,
    /// What opens a writing transaction, one that decides on keys (once their locks are
    /// held), and a reading one ([`Connection::begin`]).
    begin_write: String,
    begin_write_on: String,
    begin_read: String,
    /// Held by an operation running again after a conflict: this process's retries run one
    /// at a time, so they stop aborting each other (on this machine, with 16 threads on
    /// distinct locks: half the aborts, a third of the 99th-percentile latency).
    retry_turn: Mutex<()>,
    /// The channel this store's commits are announced on, and the connection settings of
    /// those who announce and listen.
    channel: String,
    connect_settings: tls::ConnectSettings,
    announcer: notify::Announcer,
}

/// A storage error caused by a PostgreSQL error.
fn storage(e: postgres::Error) -> Error {
    Error::storage_caused("postgres", e)
}

/// The server's message when there is one, else the error and its causes (the driver's own
/// message, such as "error connecting to server", leaves out why).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        cause = c.source();
    }
    text
}

/// One pooled connection and the statements it prepared, by their SQL.
pub(super) struct Connection {
    client: pipeline::Client,
    statements: HashMap<&'static str, Statement>,
    /// How many transactions besides this one's the database lets run at once, read when
    /// connected (a database restarted with another `max_connections` ends this connection):
    /// by how much an owner's counts may be too high beside others holding the owner's quota.
    others: usize,
    /// Left in an unknown state (a failed commit or rollback): the pool drops it.
    broken: bool,
}

impl Connection {
    /// The prepared statement for `sql`, prepared on first use.
    fn statement(&mut self, sql: &'static str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Opens a transaction (`begin`, a simple query whose last statement, if it answers a
    /// row, answers the database's clock). A connection whose opening failed midway may be
    /// left inside a transaction: the pool drops it.
    fn begin(&mut self, begin: &str, time: TimeSource) -> std::result::Result<Opened, Attempt> {
        let opened = self.begin_with(begin, time);
        self.broken = opened.is_err();
        opened
    }

    fn begin_with(
        &mut self,
        begin: &str,
        time: TimeSource,
    ) -> std::result::Result<Opened, Attempt> {
        let messages = (self.client.simple_query(Vec::new(), begin))
            .map_err(|sent| Attempt::before_commit(sent.into_error()))?;
        let rows: Vec<_> = (messages.iter())
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let first_all_true =
            (rows.first()).is_some_and(|row| (0..row.len()).all(|i| row.get(i) == Some("t")));
        let now = match time {
            TimeSource::StoreClock => None,
            TimeSource::Database => {
                let nanos = rows.last().and_then(|row| row.get(row.len() - 1));
                let nanos = nanos.and_then(|nanos| nanos.parse().ok()).ok_or_else(|| {
                    Attempt::Failed(Error::storage(
                        "postgres: the database did not tell the time",
                    ))
                })?;
                Some(Timestamp::from_nanos(nanos))
            }
        };
        Ok(Opened {
            now,
            first_all_true,
        })
    }
}

/// What opening a transaction told.
struct Opened {
    /// The database's time, with [`TimeSource::Database`].
    now: Option<Timestamp>,
    /// Whether every value of the first row answered was true: for a transaction begun by
    /// trying its keys' locks ([`keys::lock_statement`]), whether it took them all.
    first_all_true: bool,
}

/// Opens connections for the pool.
struct Connector {
    settings: tls::ConnectSettings,
}

impl r2d2::ManageConnection for Connector {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Connection, postgres::Error> {
        let mut client = self.settings.connect_pipelined()?;
        let others = max_connections(&mut client)?.saturating_sub(1);
        Ok(Connection {
            client,
            statements: HashMap::new(),
            others,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Connection) -> std::result::Result<(), postgres::Error> {
        (conn.client.simple_query(Vec::new(), ""))
            .map(drop)
            .map_err(Sent::into_error)
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// Why one try of a transaction did not commit.
enum Attempt {
    /// The database aborted it to keep transactions serializable, or the connection was
    /// lost before the commit was sent: nothing was written, try again.
    Retry(postgres::Error),
    /// It must hold the owners' quotas it declared alone: try again so, at once.
    QuotaAlone,
    /// It would write without its keys' locks, which it only tried: try again waiting for
    /// them, at once.
    KeysUntaken,
    Failed(Error),
}

impl Attempt {
    /// A failure before `COMMIT` was sent: nothing of the transaction persists.
    fn before_commit(e: postgres::Error) -> Self {
        if is_conflict(&e) || connection_lost(&e) {
            Attempt::Retry(e)
        } else {
            Attempt::Failed(storage(e))
        }
    }

    /// A failure of `COMMIT` itself: a conflict means the database rolled back, but on a lost
    /// connection the outcome is unknown, so the operation must not run again.
    fn at_commit(e: postgres::Error) -> Self {
        if is_conflict(&e) {
            Attempt::Retry(e)
        } else if connection_lost(&e) {
            Attempt::Failed(Error::storage_caused(
                "postgres: the connection was lost while committing; the operation may or may \
                 not have taken effect",
                e,
            ))
        } else {
            Attempt::Failed(storage(e))
        }
    }
}

/// Whether the database aborted the transaction because of a concurrent one: a
/// serialization failure, a deadlock, or a unique key that a concurrent transaction inserted
/// first (which PostgreSQL's manual advises retrying too, as a serialization failure in
/// disguise; the rules check every key before inserting it).
fn is_conflict(e: &postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
    })
}

/// Whether the connection is gone: closed, ended by the server (SQLSTATE class 08,
/// connection exception, or 57P, an administrator's or a restart's shutdown), or failed
/// under the client (an I/O error: a server that ends a connection may reset the socket
/// before the client reads why).
fn connection_lost(e: &postgres::Error) -> bool {
    let io = std::error::Error::source(e).is_some_and(|cause| cause.is::<std::io::Error>());
    e.is_closed()
        || io
        || e.code()
            .is_some_and(|code| code.code().starts_with("08") || code.code().starts_with("57P"))
}

/// Tries of one operation after conflicts: a random pause (full jitter) under a bound that
/// doubles with each try, up to [`MAX_PAUSE`], for at most [`RETRY_FOR`] in all.
struct Retries {
    deadline: Instant,
    bound: Duration,
    tries: u32,
}

impl Retries {
    fn new() -> Self {
        Self {
            deadline: Instant::now() + RETRY_FOR,
            bound: Duration::from_micros(500),
            tries: 1,
        }
    }

    /// Whether the operation has conflicted before.
    fn retrying(&self) -> bool {
        self.tries > 1
    }

    /// Waits before the next try, or fails once the time is up.
    fn wait(&mut self, cause: postgres::Error) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(Error::storage_caused(
                format!(
                    "postgres: the operation conflicted with concurrent ones {} times in {}s",
                    self.tries,
                    RETRY_FOR.as_secs(),
                ),
                cause,
            ));
        }
        std::thread::sleep(rand::rng().random_range(Duration::ZERO..=self.bound));
        self.bound = (self.bound * 2).min(MAX_PAUSE);
        self.tries += 1;
        Ok(())
    }
}

impl PostgresBackend {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`)
    /// with the default options, creating or migrating the schema. The URL's `sslmode` says
    /// how TLS is used, as libpq's: `disable`, `prefer` (the default), `require`,
    /// `verify-ca` or `verify-full` (with `sslrootcert=PATH`, the CA's PEM file).
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// Connects to the database at `url`, creating or migrating the schema; a schema written
    /// by a newer octostore is refused. Safe when several nodes start at once.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self> {
        let mut settings = tls::ConnectSettings::parse(url, options.ca_file.as_deref())?;
        let config = &mut settings.config;
        if config.get_application_name().is_none() {
            config.application_name("octostore");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
            add_server_option(config, &format!("search_path={schema}"));
        }
        let idle_ms = options
            .idle_in_transaction
            .as_millis()
            .clamp(1, i32::MAX as u128);
        add_server_option(
            config,
            &format!("idle_in_transaction_session_timeout={idle_ms}"),
        );
        let mut client = settings.connect().map_err(|e| settings.connect_error(e))?;
        schema::migrate(&mut client, options.schema.as_deref())?;
        let log = LogKeys::read(&mut client)?;
        drop(client);
        let channel = notify::channel(options.schema.as_deref());
        let announcer = notify::Announcer::new(settings.clone(), &channel);
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(POOL_TIMEOUT)
            .build_unchecked(Connector {
                settings: settings.clone(),
            });
        let [begin_write, begin_write_on, begin_read] = begin_statements(&log, options.time);
        Ok(Self {
            pool,
            time: options.time,
            log,
            begin_write,
            begin_write_on,
            begin_read,
            retry_turn: Mutex::new(()),
            channel,
            connect_settings: settings,
            announcer,
        })
    }

    /// Runs `op` in transactions of `access` until one commits, one fails for a reason
    /// other than a conflict, or conflicts go on for [`RETRY_FOR`]. An operation on keys
    /// first holds owners' quotas shared, and exclusive once it has found it needs them so.
    fn run(
        &self,
        clock: &dyn Clock,
        access: Access,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let mut retries = Retries::new();
        let mut locking = match access {
            Access::WriteOn(keys) => keys::Locking::first(&keys),
            _ => keys::Locking::first(&Keys::default()),
        };
        loop {
            let retry_turn = retries.retrying().then(|| self.retry_turn.lock());
            let mut conn = self
                .pool
                .get()
                .map_err(|e| Error::storage_caused("postgres: no connection", e))?;
            let outcome = self.attempt(&mut conn, clock, access, locking, op);
            drop((conn, retry_turn));
            locking.wait = true;
            match outcome {
                Ok(()) => return Ok(()),
                Err(Attempt::Retry(cause)) => retries.wait(cause)?,
                Err(Attempt::QuotaAlone) => locking.quota = keys::QuotaLock::Exclusive,
                Err(Attempt::KeysUntaken) => {}
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    fn attempt(
        &self,
        conn: &mut Connection,
        clock: &dyn Clock,
        access: Access,
        locking: keys::Locking,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> std::result::Result<(), Attempt> {
        let horizon = match access {
            Access::Read {
                after_horizon: true,
            } => Some(self.horizon(conn)?),
            _ => None,
        };
        let keyed_begin;
        let (begin, quota) = match access {
            Access::Write => (&self.begin_write, None),
            Access::WriteOn(keys) => {
                let locks = keys::lock_statement(self.log.writers, keys.keys, locking);
                keyed_begin = keys::begin_after(&locks, &self.begin_write_on);
                // Counts are padded only beside others holding the owner's quota.
                let quota = (keys.keys.iter())
                    .any(|key| matches!(key, Key::Quota(_)))
                    .then_some(locking.quota);
                (&keyed_begin, quota)
            }
            Access::Read { .. } => (&self.begin_read, None),
        };
        let opened = conn.begin(begin, self.time)?;
        let keyed = matches!(access, Access::WriteOn(_));
        let keys_held = !keyed || locking.wait || opened.first_all_true;
        let slack = match quota {
            Some(keys::QuotaLock::Shared) => conn.others,
            _ => 0,
        };
        let mut tx = tx::PostgresTx::new(conn, clock, opened.now, &self.log, horizon, quota);
        tx.pad_counts(slack);
        if !keys_held {
            tx.only_read();
        }
        let (outcome, failure) = match (op(&mut tx), tx.finish()) {
            (Ok(()), Ok(held)) => return Self::commit(conn, keyed, held),
            (outcome, finished) => (outcome, finished.err()),
        };
        let rollback = match keyed {
            true => keys::ROLLBACK_AND_UNLOCK,
            false => "ROLLBACK",
        };
        if conn.client.simple_query(Vec::new(), rollback).is_err() {
            conn.broken = true;
        }
        match (failure, outcome) {
            (Some(tx::Failure::Database(e)), _) => Err(Attempt::before_commit(e)),
            (Some(tx::Failure::QuotaAlone), _) => Err(Attempt::QuotaAlone),
            (Some(tx::Failure::KeysUntaken), _) => Err(Attempt::KeysUntaken),
            (None, Err(e)) => Err(Attempt::Failed(e)),
            (None, Ok(())) => unreachable!("a transaction without failure commits"),
        }
    }

    /// Commits, sending the writes held back first; a keyed transaction lets its keys go.
    fn commit(
        conn: &mut Connection,
        keyed: bool,
        held: Vec<pipeline::Held>,
    ) -> std::result::Result<(), Attempt> {
        let commit = match keyed {
            true => keys::COMMIT_AND_UNLOCK,
            false => "COMMIT",
        };
        match conn.client.simple_query(held, commit) {
            Ok(_) => Ok(()),
            // The commit ran in a failed transaction: it rolled back, and let the keys go.
            Err(Sent::Held(e)) => Err(Attempt::before_commit(e)),
            // A keyed transaction's failed batch may have left its keys locked: the
            // connection is dropped, and the session's locks with it.
            Err(Sent::Last(e)) => {
                conn.broken = keyed || !is_conflict(&e);
                Err(Attempt::at_commit(e))
            }
        }
    }

    /// The change log's horizon now, read outside any transaction.
    fn horizon(&self, conn: &mut Connection) -> std::result::Result<Horizon, Attempt> {
        let keys = [i64::from(WRITER_LOCK_CLASS), i64::from(self.log.writers)];
        let read = conn
            .statement(HORIZON)
            .and_then(|statement| conn.client.query_one(&statement, &[&keys[0], &keys[1]]))
            .and_then(|row| row.try_get(0));
        read.map(Horizon).map_err(|e| {
            conn.broken = true;
            Attempt::before_commit(e)
        })
    }
}

impl LogKeys {
    fn read(client: &mut Client) -> Result<Self> {
        let row = client
            .query_one(
                "SELECT base, hashtext(current_schema()) & 2147483647 FROM event_log WHERE id = 0",
                &[],
            )
            .map_err(storage)?;
        Ok(Self {
            base: row.try_get(0).map_err(storage)?,
            writers: row.try_get(1).map_err(storage)?,
        })
    }
}

/// The simple queries that open a writing transaction, one deciding on keys (after their
/// locks) and a reading one. A writing one takes the writers' lock before anything else
/// (see [`LogKeys`]); each reads the database's clock last, with [`TimeSource::Database`],
/// after its snapshot is taken, so the instant is later than the commit of every
/// transaction the snapshot sees.
fn begin_statements(log: &LogKeys, time: TimeSource) -> [String; 3] {
    let clock = match time {
        TimeSource::Database => format!(", {DATABASE_TIME}"),
        TimeSource::StoreClock => String::new(),
    };
    let writer = |isolation| {
        format!(
            "START TRANSACTION ISOLATION LEVEL {isolation}; \
             SELECT pg_advisory_xact_lock_shared({WRITER_LOCK_CLASS}, {}){clock}",
            log.writers
        )
    };
    let read = match time {
        TimeSource::Database => format!(
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT {DATABASE_TIME}"
        ),
        TimeSource::StoreClock => {
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY".into()
        }
    };
    [writer("SERIALIZABLE"), writer("REPEATABLE READ"), read]
}

/// How many connections the database accepts at once.
fn max_connections(client: &mut pipeline::Client) -> std::result::Result<usize, postgres::Error> {
    let row = client.query_one("SELECT current_setting('max_connections')::int", &[])?;
    let n: i32 = row.try_get(0)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Sets the server's `setting=value` for every connection, after those the URL gives.
fn add_server_option(config: &mut tokio_postgres::Config, setting: &str) {
    let option = format!("-c {setting}");
    let options = match config.get_options() {
        Some(given) => format!("{given} {option}"),
        None => option,
    };
    config.options(&options);
}

/// Checks that `schema` is a plain lowercase identifier, which needs no quoting in SQL or in
/// the connection's options.
fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if plain {
        Ok(())
    } else {
        Err(Error::invalid(
            "database_schema",
            "a schema name is 1 to 63 of [a-z0-9_], not starting with a digit",
        ))
    }
}

impl Backend for PostgresBackend {
    fn concurrency(&self) -> Concurrency {
        Concurrency::Parallel
    }

    fn announce(&self) {
        self.announcer.announce();
    }

    /// The count of changes to users and tokens, which every node's changes move (the
    /// table's triggers, in the changing transaction): read by itself, it sees every change
    /// committed before it, so a token revoked on any node is not trusted after.
    fn outside_writes(&self) -> Result<Option<u64>> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| Error::storage_caused("postgres: no connection", e))?;
        let sql = "SELECT version FROM identity_changes WHERE id = 0";
        let read = conn
            .statement(sql)
            .and_then(|statement| conn.client.query_one(&statement, &[]))
            .and_then(|row| row.try_get::<_, i64>(0));
        match read {
            Ok(version) => Ok(Some(version as u64)),
            Err(e) => {
                conn.broken = connection_lost(&e);
                Err(storage(e))
            }
        }
    }

    fn listen(&self) -> Option<Box<dyn Listener>> {
        Some(Box::new(notify::PgListener::new(
            self.connect_settings.clone(),
            self.channel.clone(),
        )))
    }

    fn transact(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        self.run(clock, Access::Write, op)
    }

    fn transact_on(
        &self,
        clock: &dyn Clock,
        keys: Keys,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        self.run(clock, Access::WriteOn(keys), op)
    }

    fn read(&self, clock: &dyn Clock, op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(
            clock,
            Access::Read {
                after_horizon: false,
            },
            op,
        )
    }

    fn read_log(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        self.run(
            clock,
            Access::Read {
                after_horizon: true,
            },
            op,
        )
    }
}
