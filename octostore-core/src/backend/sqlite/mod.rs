//! The SQLite backend: one file that several processes may use at once.
//!
//! Every operation is one `BEGIN IMMEDIATE` transaction: it takes the file's write lock at
//! its start, so transactions of all processes are serialized, and a busy file is waited for
//! (up to [`BUSY_TIMEOUT`]) instead of failing. The file is in WAL mode.
//!
//! Durability: [`Durability::ProcessCrash`] (the default, `synchronous=NORMAL`) survives the
//! `kill -9` of any process at any instant, as a commit is in the operating system's hands
//! before it is acknowledged; [`Durability::PowerLoss`] (`synchronous=FULL`) also survives the
//! machine losing power, at the price of an fsync per commit.
//!
//! Fencing tokens never repeat, even after a power loss in the default mode: tokens are handed
//! out from blocks whose reservation is committed with an fsync, and every open skips to the
//! end of the reserved block, past any token a lost commit may have handed out.

mod checkpoint;
mod schema;
mod tx;

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::ReentrantMutex;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Backend, Concurrency, Tx};
use crate::clock::Clock;
use crate::error::{Error, Result};

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// How long an operation waits for another process's transaction before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many prepared statements a connection keeps: more than the backend has.
const STATEMENT_CACHE: usize = 128;
/// How many fencing tokens one synced reservation covers: enough that its fsync, which every
/// client queued behind it waits for, comes once a million acquires (with 1 024, every 73 ms
/// at 14 000 acquires a second). Each open skips the rest of the block, so tokens may jump by
/// up to this much across a restart: 2^43 restarts before an `i64` runs out.
const FENCING_BLOCK: i64 = 1 << 20;

/// What a commit survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Survives any process being killed at any instant (`synchronous=NORMAL`).
    #[default]
    ProcessCrash,
    /// Also survives power loss: an fsync per commit (`synchronous=FULL`).
    PowerLoss,
}

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        }
    }
}

/// Sets up a newly opened connection: WAL, durability, schema, and fencing after a restart.
fn initialize(conn: &mut Connection, durability: Durability) -> std::result::Result<(), Attempt> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Attempt::Failed(Error::Storage(format!(
            "the file cannot use write-ahead logging (journal mode {mode})"
        ))));
    }
    conn.pragma_update(None, "synchronous", durability.synchronous())?;
    schema::migrate(conn)?;
    // A commit this process cannot see may have handed out tokens and then been lost with
    // the power: start after everything that was ever reserved.
    conn.execute("UPDATE fencing SET last_issued = reserved_through", [])?;
    Ok(())
}

/// Retries of an operation SQLite answered "busy" without waiting, with a growing pause,
/// for at most [`BUSY_TIMEOUT`] in all.
struct Patience {
    deadline: Instant,
    pause: Duration,
}

impl Patience {
    fn new() -> Self {
        Self {
            deadline: Instant::now() + BUSY_TIMEOUT,
            pause: Duration::from_millis(1),
        }
    }

    /// Waits before the next try, or fails once the time is up.
    fn wait(&mut self) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(Error::Storage(format!(
                "the database stayed locked by another process for over {}s",
                BUSY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(Duration::from_millis(100));
        Ok(())
    }
}

/// Stores everything in one SQLite file.
pub struct SqliteBackend {
    /// The one connection; reentrant so that [`Backend::group`] holds it while the
    /// transactions of its work, on the same thread, run inside its transaction.
    writer: ReentrantMutex<RefCell<Writer>>,
    durability: Durability,
}

struct Writer {
    conn: Connection,
    grouping: Grouping,
}

/// Whether transactions are being grouped into one, and whether that one has begun.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grouping {
    Off,
    Pending,
    Open {
        /// [`Backend::outside_writes`] once read in this transaction, which holds the file's
        /// write lock: no other connection can commit until it ends.
        data_version: Option<u64>,
    },
}

pub(crate) fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(format!("sqlite: {e}"))
}

/// "Busy": another connection holds what this one needs; it passes once that one is done.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Why one attempt at a transaction did not commit.
pub(super) enum Attempt {
    /// The fencing block is used up: reserve another and run the operation again.
    NeedFencingBlock,
    /// Another process held the file for longer than the busy timeout.
    Busy,
    Failed(Error),
}

impl From<rusqlite::Error> for Attempt {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            Attempt::Busy
        } else {
            Attempt::Failed(storage(e))
        }
    }
}

impl SqliteBackend {
    /// Opens (creating if needed) the file at `path` with the default durability.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Durability::default())
    }

    /// Opens (creating if needed) the file at `path`, migrating its schema; a file written by
    /// a newer octostore is refused.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref();
        let mut conn = Connection::open(path)
            .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(storage)?;
        // Every statement the backend uses stays prepared (the default keeps only 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Processes opening a new file together race to switch it to WAL and to create the
        // schema; SQLite answers the losers "busy" at once, without waiting: they try again.
        let mut patience = Patience::new();
        loop {
            match initialize(&mut conn, durability) {
                Ok(()) => break,
                Err(Attempt::Busy) => patience.wait()?,
                Err(Attempt::Failed(e)) => {
                    return Err(Error::Storage(format!("{}: {e}", path.display())))
                }
                Err(Attempt::NeedFencingBlock) => unreachable!("no fencing token is issued"),
            }
        }
        checkpoint::move_off_commits(&mut conn, checkpoint::Marks::DEFAULT).map_err(storage)?;
        Ok(Self {
            writer: ReentrantMutex::new(RefCell::new(Writer {
                conn,
                grouping: Grouping::Off,
            })),
            durability,
        })
    }

    /// What commits survive.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn attempt(
        &self,
        conn: &mut Connection,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> std::result::Result<(), Attempt> {
        let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut tx = tx::SqliteTx::new(&transaction, clock);
        let outcome = op(&mut tx);
        if tx.fencing_block_exhausted() {
            return Err(Attempt::NeedFencingBlock);
        }
        outcome.map_err(Attempt::Failed)?;
        transaction.commit()?;
        Ok(())
    }

    /// Reserves the next block of fencing tokens in a transaction of its own, committed with
    /// an fsync whatever the durability, before any token of the block is handed out.
    fn reserve_fencing_block(&self, conn: &mut Connection) -> Result<()> {
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage)?;
        let reserved = conn.execute(
            "UPDATE fencing SET reserved_through = MAX(reserved_through, last_issued) + ?1",
            [FENCING_BLOCK],
        );
        conn.pragma_update(None, "synchronous", self.durability.synchronous())
            .map_err(storage)?;
        reserved.map(drop).map_err(storage)
    }
}

/// Runs one statement that needs no parameters, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Takes the file's write lock, waiting for other processes as a transaction does.
fn begin(conn: &Connection) -> Result<()> {
    let mut patience = Patience::new();
    loop {
        match run(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) => patience.wait()?,
            Err(e) => return Err(storage(e)),
        }
    }
}

/// Undoes the savepoint of a grouped operation that failed, or that panicked (on drop).
struct Savepoint<'c>(&'c Connection);

impl Savepoint<'_> {
    fn start(conn: &Connection) -> Result<Savepoint<'_>> {
        run(conn, "SAVEPOINT op").map_err(storage)?;
        Ok(Savepoint(conn))
    }

    fn keep(self) -> Result<()> {
        let conn = self.0;
        std::mem::forget(self);
        run(conn, "RELEASE op").map_err(storage)
    }

    fn undo(self) -> Result<()> {
        let conn = self.0;
        std::mem::forget(self);
        roll_back_to_savepoint(conn).map_err(storage)
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        let _ = roll_back_to_savepoint(self.0);
    }
}

fn roll_back_to_savepoint(conn: &Connection) -> rusqlite::Result<()> {
    run(conn, "ROLLBACK TO op").and_then(|()| run(conn, "RELEASE op"))
}

impl SqliteBackend {
    /// One operation of a group: a savepoint inside the group's transaction, begun here if
    /// it has not begun yet.
    fn transact_grouped(
        &self,
        writer: &mut Writer,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        loop {
            if writer.grouping == Grouping::Pending {
                begin(&writer.conn)?;
                writer.grouping = Grouping::Open { data_version: None };
            }
            let savepoint = Savepoint::start(&writer.conn)?;
            let mut tx = tx::SqliteTx::new(&writer.conn, clock);
            let outcome = op(&mut tx);
            if tx.fencing_block_exhausted() {
                // Commit what the group did so far, reserve (synced), and begin anew.
                savepoint.undo()?;
                writer.grouping = Grouping::Pending;
                run(&writer.conn, "COMMIT").map_err(storage)?;
                self.reserve_fencing_block(&mut writer.conn)?;
                continue;
            }
            return match outcome {
                Ok(()) => savepoint.keep(),
                Err(e) => savepoint.undo().and(Err(e)),
            };
        }
    }
}

impl Backend for SqliteBackend {
    fn transact(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let guard = self.writer.lock();
        let mut writer = guard.borrow_mut();
        if writer.grouping != Grouping::Off {
            return self.transact_grouped(&mut writer, clock, op);
        }
        let mut patience = Patience::new();
        loop {
            match self.attempt(&mut writer.conn, clock, op) {
                Ok(()) => return Ok(()),
                Err(Attempt::NeedFencingBlock) => self.reserve_fencing_block(&mut writer.conn)?,
                Err(Attempt::Busy) => patience.wait()?,
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    fn concurrency(&self) -> Concurrency {
        Concurrency::Serial
    }

    /// SQLite's `data_version`, which moves with every commit of another connection to the
    /// file (another process's, such as the CLI's), and not with this one's.
    fn outside_writes(&self) -> Result<Option<u64>> {
        let guard = self.writer.lock();
        let mut writer = guard.borrow_mut();
        if let Grouping::Open {
            data_version: Some(version),
        } = writer.grouping
        {
            return Ok(Some(version));
        }
        let version = (writer.conn)
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, i64>(0)))
            .map_err(storage)? as u64;
        if let Grouping::Open { data_version } = &mut writer.grouping {
            *data_version = Some(version);
        }
        Ok(Some(version))
    }

    fn group(&self, _clock: &dyn Clock, work: &mut dyn FnMut()) -> Result<()> {
        let guard = self.writer.lock();
        if guard.borrow().grouping != Grouping::Off {
            work(); // already inside a group, which commits it
            return Ok(());
        }
        guard.borrow_mut().grouping = Grouping::Pending;
        let ended = GroupEnd(&guard);
        work();
        ended.commit()
    }
}

/// Ends a group: commits its transaction, or rolls it back if the work panicked (on drop).
struct GroupEnd<'w>(&'w RefCell<Writer>);

impl GroupEnd<'_> {
    fn commit(self) -> Result<()> {
        let cell = self.0;
        std::mem::forget(self);
        let mut writer = cell.borrow_mut();
        if !matches!(
            std::mem::replace(&mut writer.grouping, Grouping::Off),
            Grouping::Open { .. }
        ) {
            return Ok(());
        }
        run(&writer.conn, "COMMIT").map_err(|e| {
            let _ = run(&writer.conn, "ROLLBACK");
            storage(e)
        })
    }
}

impl Drop for GroupEnd<'_> {
    fn drop(&mut self) {
        let mut writer = self.0.borrow_mut();
        if matches!(
            std::mem::replace(&mut writer.grouping, Grouping::Off),
            Grouping::Open { .. }
        ) {
            let _ = run(&writer.conn, "ROLLBACK");
        }
    }
}
