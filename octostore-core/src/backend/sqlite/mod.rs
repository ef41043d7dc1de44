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
#[cfg(feature = "fault-injection")]
pub mod faults;
mod readers;
mod schema;
mod tx;
#[cfg(target_os = "linux")]
mod wal_listener;

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::ReentrantMutex;
use rusqlite::{Connection, ErrorCode};

use super::{Backend, Concurrency, Tx};
use crate::values::clock::Clock;
use crate::values::error::{Error, Result};

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
        return Err(Attempt::Failed(Error::storage(format!(
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
/// until a deadline.
struct Patience {
    deadline: Instant,
    pause: Duration,
}

impl Patience {
    fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            pause: Duration::from_millis(1),
        }
    }

    /// The time left, zero once it is up.
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits before the next try, or fails once the time is up: the operation was not run.
    fn wait(&mut self) -> Result<()> {
        if self.left().is_zero() {
            return Err(Error::Unavailable(
                "the database stayed locked by another process until the deadline".into(),
            ));
        }
        std::thread::sleep(self.pause.min(self.left()));
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
    /// Connections for [`Backend::read`], beside the writer.
    readers: readers::Readers,
    /// The file's path, whose log a [`Backend::listen`]er watches.
    path: std::path::PathBuf,
}

struct Writer {
    db: Db,
    grouping: Grouping,
}

/// The writer's connection, and the faults armed at its transaction boundaries.
struct Db {
    conn: Connection,
    #[cfg(feature = "fault-injection")]
    faults: std::sync::Arc<faults::Faults>,
}

/// Whether transactions are being grouped into one.
enum Grouping {
    Off,
    On(Group),
}

/// A group's transaction and how long its `BEGIN` may wait for other processes.
struct Group {
    give_up_at: Instant,
    state: GroupState,
}

enum GroupState {
    /// No transaction yet: the next operation begins it.
    Pending,
    Open {
        /// [`Backend::outside_writes`] once read in this transaction, which holds the file's
        /// write lock: no other connection can commit until it ends.
        data_version: Option<u64>,
    },
    /// A `BEGIN` or `COMMIT` of the group failed, so its operations so far are not (all)
    /// committed: every later operation of the group, and the group itself, fail with this.
    Failed(Error),
}

/// A storage error caused by a SQLite error.
pub(crate) fn storage(e: rusqlite::Error) -> Error {
    Error::storage_caused("sqlite", e)
}

/// Creates the file at `path` readable and writable by its owner alone, whatever the umask,
/// unless it exists (it is then left as it is): SQLite gives the `-wal` and `-shm` files it
/// makes beside it the main file's mode.
fn create_owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::storage_caused(
            format!("cannot create {}", path.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// "Busy": another connection holds what this one needs; it passes once that one is done.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Why opening a file did not succeed.
pub(super) enum Attempt {
    /// Another process held the file: try again.
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
        create_owner_only(path)?;
        let mut conn = Connection::open(path)
            .map_err(|e| Error::storage_caused(format!("cannot open {}", path.display()), e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(storage)?;
        // Every statement the backend uses stays prepared (the default keeps only 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Processes opening a new file together race to switch it to WAL and to create the
        // schema; SQLite answers the losers "busy" at once, without waiting: they try again.
        let mut patience = Patience::until(Instant::now() + BUSY_TIMEOUT);
        loop {
            match initialize(&mut conn, durability) {
                Ok(()) => break,
                Err(Attempt::Busy) => patience.wait()?,
                Err(Attempt::Failed(Error::Storage { message, source })) => {
                    return Err(Error::Storage {
                        message: format!("{}: {message}", path.display()),
                        source,
                    })
                }
                Err(Attempt::Failed(e)) => {
                    return Err(Error::storage_caused(path.display().to_string(), e))
                }
            }
        }
        checkpoint::move_off_commits(&mut conn, checkpoint::Marks::DEFAULT).map_err(storage)?;
        Ok(Self {
            writer: ReentrantMutex::new(RefCell::new(Writer {
                db: Db {
                    conn,
                    #[cfg(feature = "fault-injection")]
                    faults: Default::default(),
                },
                grouping: Grouping::Off,
            })),
            durability,
            readers: readers::Readers::new(path),
            path: path.to_owned(),
        })
    }

    /// What commits survive.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The faults armed for this backend's transaction boundaries (feature
    /// `fault-injection`, for tests).
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> std::sync::Arc<faults::Faults> {
        self.writer.lock().borrow().db.faults.clone()
    }

    /// Reserves the next block of fencing tokens in a transaction of its own, committed with
    /// an fsync whatever the durability, before any token of the block is handed out.
    fn reserve_fencing_block(&self, conn: &Connection) -> Result<()> {
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

/// The transaction boundaries, where the fault-injection feature's faults strike.
impl Db {
    /// Takes the file's write lock (`BEGIN IMMEDIATE`), waiting for other processes until
    /// `give_up_at`; past it the operation was not run ([`Error::Unavailable`]).
    fn begin(&self, give_up_at: Instant) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        self.faults.at_begin()?;
        let mut patience = Patience::until(give_up_at);
        loop {
            self.conn.busy_timeout(patience.left()).map_err(storage)?;
            match run(&self.conn, "BEGIN IMMEDIATE") {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) => patience.wait()?,
                Err(e) => return Err(storage(e)),
            }
        }
    }

    /// Commits the transaction. If that fails, the transaction is rolled back, whatever
    /// SQLite left (after an I/O error it has rolled back; after "busy" it is still open), so
    /// the connection is ready for the next one.
    fn commit(&self) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        let committed = self.faults.at_commit(&self.conn);
        #[cfg(not(feature = "fault-injection"))]
        let committed = Ok(());
        committed
            .and_then(|()| run(&self.conn, "COMMIT"))
            .map_err(|e| {
                self.roll_back();
                storage(e)
            })
    }

    /// Rolls the open transaction back, if there is one.
    fn roll_back(&self) {
        if !self.conn.is_autocommit() {
            let _ = run(&self.conn, "ROLLBACK");
        }
    }
}

/// Rolls back the transaction of an operation that failed or panicked (on drop).
struct Transaction<'d>(&'d Db);

impl Transaction<'_> {
    fn commit(self) -> Result<()> {
        let db = self.0;
        std::mem::forget(self);
        db.commit()
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.0.roll_back();
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

impl Group {
    /// The group's transaction, begun here if it has not begun yet; the group's failure if
    /// it has failed.
    fn open(&mut self, db: &Db) -> Result<()> {
        match &self.state {
            GroupState::Open { .. } => Ok(()),
            GroupState::Failed(e) => Err(e.again()),
            GroupState::Pending => match db.begin(self.give_up_at) {
                Ok(()) => {
                    self.state = GroupState::Open { data_version: None };
                    Ok(())
                }
                Err(e) => Err(self.fail(e)),
            },
        }
    }

    /// Marks the group failed with `e` (its operations so far are not all committed, and no
    /// later one will run); returns `e` for the operation that met it.
    fn fail(&mut self, e: Error) -> Error {
        let again = e.again();
        self.state = GroupState::Failed(e);
        again
    }
}

impl SqliteBackend {
    /// One operation of a group: a savepoint inside the group's transaction, begun here if
    /// it has not begun yet.
    fn transact_grouped(
        &self,
        db: &Db,
        group: &mut Group,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        loop {
            group.open(db)?;
            let savepoint = Savepoint::start(&db.conn)?;
            let mut tx = tx::SqliteTx::new(&db.conn, clock);
            let outcome = op(&mut tx);
            if tx.fencing_block_exhausted() {
                // Commit what the group did so far, reserve (synced), and begin anew. If
                // either fails, so does the whole group: its operations so far may be lost.
                let committed = savepoint.undo().and_then(|()| db.commit());
                group.state = GroupState::Pending;
                committed
                    .and_then(|()| self.reserve_fencing_block(&db.conn))
                    .map_err(|e| group.fail(e))?;
                continue;
            }
            return match outcome {
                Ok(()) => savepoint.keep(),
                // A failed operation whose writes cannot be undone would be committed with
                // the group's: fail the group instead.
                Err(e) => match savepoint.undo() {
                    Ok(()) => Err(e),
                    Err(undo) => Err(group.fail(undo)),
                },
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
        let Writer { db, grouping } = &mut *writer;
        if let Grouping::On(group) = grouping {
            return self.transact_grouped(db, group, clock, op);
        }
        let give_up_at = Instant::now() + BUSY_TIMEOUT;
        loop {
            db.begin(give_up_at)?;
            let transaction = Transaction(db);
            let mut tx = tx::SqliteTx::new(&db.conn, clock);
            let outcome = op(&mut tx);
            if tx.fencing_block_exhausted() {
                drop(transaction);
                self.reserve_fencing_block(&db.conn)?;
                continue;
            }
            outcome?;
            return transaction.commit();
        }
    }

    fn concurrency(&self) -> Concurrency {
        Concurrency::Serial
    }

    fn read(&self, clock: &dyn Clock, op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.readers.read(clock, op)
    }

    /// SQLite's `data_version`, which moves with every commit of another connection to the
    /// file (another process's, such as the CLI's), and not with this one's. In a group it
    /// is read inside the group's transaction, begun first if need be: once it holds the
    /// write lock, no other connection can commit, so a revocation committed before the
    /// read is seen and none can come between the read and the operations that trust it.
    fn outside_writes(&self) -> Result<Option<u64>> {
        let guard = self.writer.lock();
        let mut writer = guard.borrow_mut();
        let Writer { db, grouping } = &mut *writer;
        let Grouping::On(group) = grouping else {
            return read_data_version(&db.conn).map(Some);
        };
        group.open(db)?;
        let version = match &mut group.state {
            GroupState::Open {
                data_version: Some(version),
            } => *version,
            GroupState::Open { data_version } => {
                let version = read_data_version(&db.conn)?;
                *data_version = Some(version);
                version
            }
            _ => unreachable!("an opened group is open"),
        };
        Ok(Some(version))
    }

    /// On Linux, the kernel's reports of writes to the file's log (`wal_listener.rs`).
    #[cfg(target_os = "linux")]
    fn listen(&self) -> Option<Box<dyn super::Listener>> {
        Some(Box::new(wal_listener::WalListener::new(&self.path)))
    }

    fn group(&self, _clock: &dyn Clock, give_up_at: Instant, work: &mut dyn FnMut()) -> Result<()> {
        let guard = self.writer.lock();
        if matches!(guard.borrow().grouping, Grouping::On(_)) {
            work(); // already inside a group, which commits it
            return Ok(());
        }
        let mut group = Group {
            give_up_at,
            state: GroupState::Pending,
        };
        // Begun before the work, which can then tell whether its callers still wait once the
        // file is had; a failure stays in the group, for each of its operations to meet.
        let _ = group.open(&guard.borrow().db);
        guard.borrow_mut().grouping = Grouping::On(group);
        let ended = GroupEnd(&guard);
        work();
        ended.commit()
    }
}

fn read_data_version(conn: &Connection) -> Result<u64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut statement| statement.query_row([], |row| row.get::<_, i64>(0)))
        .map(|version| version as u64)
        .map_err(storage)
}

/// Ends a group: commits its transaction, or rolls it back if the work panicked (on drop).
struct GroupEnd<'w>(&'w RefCell<Writer>);

impl GroupEnd<'_> {
    fn commit(self) -> Result<()> {
        let cell = self.0;
        std::mem::forget(self);
        let mut writer = cell.borrow_mut();
        let Grouping::On(group) = std::mem::replace(&mut writer.grouping, Grouping::Off) else {
            unreachable!("a group ends once")
        };
        match group.state {
            GroupState::Pending => Ok(()),
            GroupState::Open { .. } => writer.db.commit(),
            GroupState::Failed(e) => Err(e),
        }
    }
}

impl Drop for GroupEnd<'_> {
    fn drop(&mut self) {
        let mut writer = self.0.borrow_mut();
        writer.grouping = Grouping::Off;
        writer.db.roll_back();
    }
}
