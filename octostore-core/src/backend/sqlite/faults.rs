//! Faults that a test arms at the SQLite backend's transaction boundaries (feature
//! `fault-injection`): a `BEGIN` or a `COMMIT` that fails as on a failing disk, or a `COMMIT`
//! that fails and leaves its transaction open, as a busy file does; and work run just before
//! a `BEGIN`, such as another process committing in between. Each armed fault strikes once,
//! in the order armed, at the first boundary of its kind.

use std::collections::VecDeque;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::storage;
use crate::values::error::Result;

/// One fault to strike at the next boundary of its kind.
pub enum Fault {
    /// The next `BEGIN IMMEDIATE` fails with an I/O error.
    BeginFails,
    /// Runs just before the next `BEGIN IMMEDIATE`.
    BeforeBegin(Box<dyn FnOnce() + Send>),
    /// The next `COMMIT` fails with an I/O error, SQLite having rolled the transaction back.
    CommitRolledBack,
    /// The next `COMMIT` fails and leaves its transaction open.
    CommitLeftOpen,
}

/// The faults armed for one backend.
#[derive(Default)]
pub struct Faults(Mutex<VecDeque<Fault>>);

impl Faults {
    /// Arms `fault`.
    pub fn arm(&self, fault: Fault) {
        self.0.lock().push_back(fault);
    }

    /// The first armed fault that `strikes` picks, taken off the list.
    fn take(&self, strikes: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut armed = self.0.lock();
        let at = armed.iter().position(strikes)?;
        armed.remove(at)
    }

    pub(super) fn at_begin(&self) -> Result<()> {
        match self.take(|f| matches!(f, Fault::BeginFails | Fault::BeforeBegin(_))) {
            Some(Fault::BeginFails) => Err(storage(io_error("BEGIN"))),
            Some(Fault::BeforeBegin(work)) => {
                work();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn at_commit(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self.take(|f| matches!(f, Fault::CommitRolledBack | Fault::CommitLeftOpen)) {
            Some(Fault::CommitRolledBack) => {
                conn.execute_batch("ROLLBACK")?;
                Err(io_error("COMMIT"))
            }
            Some(_) => Err(io_error("COMMIT")),
            None => Ok(()),
        }
    }
}

fn io_error(at: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
        Some(format!("disk I/O error (injected at {at})")),
    )
}
