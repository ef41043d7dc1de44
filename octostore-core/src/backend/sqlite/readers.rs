//! Read-only connections beside the writer: in WAL mode a reader sees the last commit and
//! neither waits for the writer nor holds it up, so a long read (a history page of large
//! values) runs here instead of in the writer's queue. At most [`READERS`] read at once;
//! further reads wait for one of them.

use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use super::{storage, tx, BUSY_TIMEOUT, STATEMENT_CACHE};
use crate::backend::Tx;
use crate::values::clock::Clock;
use crate::values::error::{Error, Result};

/// How many read connections a backend opens at most.
pub const READERS: usize = 4;

/// The read connections, opened on first use and kept.
pub(super) struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    opened: usize,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                opened: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs `op` in a read transaction on one of the read connections.
    pub(super) fn read(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let mut lent = Lent {
            conn: Some(self.take()?),
            readers: self,
        };
        let conn = lent.conn.as_mut().expect("lent until dropped");
        let transaction = conn.transaction().map_err(storage)?;
        op(&mut tx::SqliteTx::new(&transaction, clock))
        // Dropped: rolled back, which for a reader only ends its snapshot.
    }

    /// An idle connection, a new one while fewer than [`READERS`] are open, or the next one
    /// returned.
    fn take(&self) -> Result<Connection> {
        let mut pool = self.pool.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.opened < READERS {
                pool.opened += 1;
                drop(pool);
                let opened = self.open();
                if opened.is_err() {
                    self.pool.lock().opened -= 1;
                }
                return opened;
            }
            self.returned.wait(&mut pool);
        }
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path).map_err(|e| {
            Error::storage_caused(format!("cannot open {}", self.path.display()), e)
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(storage)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A reader never writes, whatever it is asked.
        conn.pragma_update(None, "query_only", true)
            .map_err(storage)?;
        Ok(conn)
    }
}

/// A read connection in use, returned to the pool when dropped (even by a panic).
struct Lent<'r> {
    conn: Option<Connection>,
    readers: &'r Readers,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.pool.lock().idle.push(conn);
            self.readers.returned.notify_one();
        }
    }
}
