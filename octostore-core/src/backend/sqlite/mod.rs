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

mod schema;
mod tx;

use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Backend, Tx};
use crate::clock::Clock;
use crate::error::{Error, Result};

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// How long an operation waits for another process's transaction before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many fencing tokens one synced reservation covers.
const FENCING_BLOCK: i64 = 1024;

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
    conn: Mutex<Connection>,
    durability: Durability,
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
        Ok(Self {
            conn: Mutex::new(conn),
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

impl Backend for SqliteBackend {
    fn transact(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let mut patience = Patience::new();
        loop {
            match self.attempt(&mut conn, clock, op) {
                Ok(()) => return Ok(()),
                Err(Attempt::NeedFencingBlock) => self.reserve_fencing_block(&mut conn)?,
                Err(Attempt::Busy) => patience.wait()?,
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }
}
