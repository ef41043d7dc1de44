//! The SQL driver ([`sql::Driver`]) over one PostgreSQL transaction: the queries themselves,
//! and so [`Tx`](crate::backend::Tx), are `backend::sql`'s.
//!
//! Every statement runs prepared, from the connection's cache. A write whose count of rows
//! no rule reads is held back, and sent with the next statement that must be answered (a
//! read, or the commit), in one round trip ([`pipeline`](super::pipeline)). The first
//! database error is kept, so that the backend can tell a serialization failure (try again)
//! from any other failure, whatever the rule made of the error it was handed.
//!
//! The change log's order: an event's index is `base + (xid << 16) + n`, its transaction's
//! id (`pg_current_xact_id()`, which never repeats nor goes back) and its place among the
//! transaction's events. No row is shared by every writer, so changes commit side by side.
//! Two changes of one record take indexes in commit order: the second reads or writes the
//! record after the first committed, so its snapshot, and its id, came later (a
//! serializable transaction that wrote it on an older snapshot would have failed). A
//! transaction still running may hold a smaller id than one committed: the log is read only
//! up to a horizon ([`Horizon`]) below every running writer's id.

use postgres::types::{FromSql, ToSql};
use postgres::Row;

use super::keys::QuotaLock;
use super::pipeline::{Held, Sent};
use super::{describe, storage, Connection, Horizon, LogKeys};
use crate::backend::rows::{self, Columns};
use crate::backend::sql::{self, Driver as _, Param, Upsert};
use crate::backend::{AcquireView, Acquiring, Unleased};
use crate::records::lock::FencingToken;
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::{Error, Result};

pub(super) struct PostgresTx<'a> {
    conn: &'a mut Connection,
    clock: &'a dyn Clock,
    /// The database's time, when the transaction read it; otherwise `clock` tells.
    database_now: Option<Timestamp>,
    log: &'a LogKeys,
    /// The change log's horizon, once known.
    horizon: Option<Horizon>,
    /// How many events the transaction appended.
    appended: i64,
    /// How it holds the owners' quotas it declared, if it declared any.
    quota: Option<QuotaLock>,
    /// How many more than the owner has its counts answer ([`sql::Driver::count_slack`]).
    count_padding: usize,
    /// Whether it may write: not if it only tried its keys' locks and did not get them.
    may_write: bool,
    /// Writes not sent yet: they go with the next statement that must be answered.
    held: Vec<Held>,
    failure: Option<Failure>,
}

/// Why a transaction must not commit, whatever the operation made of it.
pub(super) enum Failure {
    /// The first database error.
    Database(postgres::Error),
    /// It read all of an owner's records beside others holding the owner's quota.
    QuotaAlone,
    /// It would write without holding its keys' locks.
    KeysUntaken,
}

/// [`sql::Driver::acquire_view`]'s statement: a row per waiter read (or one with none), each
/// the waiter's columns, the owner's count of leases, a fencing token (the same in every row:
/// the sequence is read once, in a subquery, after the lease), and the lease's columns (or
/// `NULL`s). With a lease stored, one row: no waiter, no count, no token (none is read).
const ACQUIRE_VIEW: &str = concat!(
    "SELECT w.*,
            CASE WHEN l.name IS NULL THEN (SELECT COUNT(*) FROM leases WHERE owner = $5) END,
            CASE WHEN l.name IS NULL THEN (SELECT nextval('fencing_tokens')) END,
            l.*
     FROM (SELECT 1) AS one
     LEFT JOIN (SELECT ",
    rows::lease_columns!(),
    " FROM leases WHERE name = $1) AS l ON TRUE
     LEFT JOIN LATERAL (SELECT * FROM (",
    sql::queue_of!(),
    ") AS queue WHERE l.name IS NULL) AS w ON TRUE ORDER BY w.ticket"
);

/// The most events one transaction appends: their places in its index's low 16 bits.
const EVENTS_PER_TRANSACTION: i64 = 1 << 16;

impl<'a> PostgresTx<'a> {
    pub(super) fn new(
        conn: &'a mut Connection,
        clock: &'a dyn Clock,
        database_now: Option<Timestamp>,
        log: &'a LogKeys,
        horizon: Option<Horizon>,
        quota: Option<QuotaLock>,
    ) -> Self {
        Self {
            conn,
            clock,
            database_now,
            log,
            horizon,
            appended: 0,
            quota,
            count_padding: 0,
            may_write: true,
            held: Vec::new(),
            failure: None,
        }
    }

    /// Pads the counts of an owner's records by `padding`.
    pub(super) fn pad_counts(&mut self, padding: usize) {
        self.count_padding = padding;
    }

    /// Lets the transaction only read (`SELECT`): it runs on a snapshot without its keys'
    /// locks, and its first write fails ([`Failure::KeysUntaken`]).
    pub(super) fn only_read(&mut self) {
        self.may_write = false;
    }

    /// Fails a statement that writes in a transaction that may only read.
    fn check_may_run(&mut self, sql: &str) -> Result<()> {
        if self.may_write || sql.starts_with("SELECT") {
            return Ok(());
        }
        self.failure.get_or_insert(Failure::KeysUntaken);
        Err(Error::storage(
            "postgres: a write without its keys' locks; to be run again with them",
        ))
    }

    /// The horizon this transaction reads the log to: the one taken before it began, or
    /// else its snapshot's (every transaction below its `xmin` had ended when it began).
    fn horizon(&mut self) -> Result<Horizon> {
        if let Some(horizon) = self.horizon {
            return Ok(horizon);
        }
        let xmin = self
            .row(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                &[],
                |row| row.int(0),
            )?
            .ok_or_else(|| rows::corrupt("snapshot"))?;
        let horizon = Horizon(xmin);
        self.horizon = Some(horizon);
        Ok(horizon)
    }

    /// The newest index readable: every event of a transaction below the horizon.
    fn newest(&mut self) -> Result<i64> {
        let Horizon(xid) = self.horizon()?;
        Ok(self.log.base + xid * EVENTS_PER_TRANSACTION - 1)
    }

    /// Why the transaction must not commit, if it must not; else the writes to send with
    /// its commit.
    pub(super) fn finish(self) -> std::result::Result<Vec<Held>, Failure> {
        match self.failure {
            Some(failure) => Err(failure),
            None => Ok(self.held),
        }
    }

    fn query(&mut self, sql: &'static str, params: &[Param]) -> Result<Vec<Row>> {
        self.check_may_run(sql)?;
        let params = as_dyn(params);
        let held = std::mem::take(&mut self.held);
        let result = self.conn.statement(sql).and_then(|statement| {
            (self.conn.client.query(held, &statement, &params)).map_err(Sent::into_error)
        });
        self.track(result)
    }

    /// Keeps the first database error, and reports it as a storage error: one that names
    /// it, for the operation, which the transaction's failure then replaces with one caused by
    /// the kept error (see [`into_failure`](Self::into_failure)).
    fn track<T>(&mut self, result: std::result::Result<T, postgres::Error>) -> Result<T> {
        result.map_err(|e| {
            let error = Error::storage(format!("postgres: {}", describe(&e)));
            self.failure.get_or_insert(Failure::Database(e));
            error
        })
    }
}

/// The parameters as the driver takes them, each the value it holds (whose own `ToSql`
/// checks the column's type); a round trip dwarfs the allocation.
fn as_dyn<'p>(params: &'p [Param]) -> Vec<&'p (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn ToSql + Sync) {
            match param {
                Param::Int(n) => n,
                Param::IntOrNull(n) => n,
                Param::Bool(b) => b,
                Param::Text(s) => s,
                Param::TextOrNull(s) => s,
                Param::Bytes(b) => b,
            }
        })
        .collect()
}

impl sql::Driver for PostgresTx<'_> {
    fn rows<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?
            .iter()
            .map(|row| read(row))
            .collect()
    }

    fn row<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        self.query(sql, params)?
            .first()
            .map(|row| read(row))
            .transpose()
    }

    fn exec(&mut self, sql: &'static str, params: &[Param]) -> Result<u64> {
        self.check_may_run(sql)?;
        let params = as_dyn(params);
        let held = std::mem::take(&mut self.held);
        let result = self.conn.statement(sql).and_then(|statement| {
            (self.conn.client.execute(held, &statement, &params)).map_err(Sent::into_error)
        });
        self.track(result)
    }

    fn write(&mut self, sql: &'static str, params: &[Param]) -> Result<()> {
        self.check_may_run(sql)?;
        let statement = self.conn.statement(sql);
        let statement = self.track(statement)?;
        self.held.push(Held::new(statement, params));
        Ok(())
    }

    fn upsert(upsert: Upsert) -> &'static str {
        upsert.on_conflict
    }

    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.database_now.unwrap_or_else(|| self.clock.timestamp()))
    }

    fn insert_event(&mut self, params: &[Param; 10]) -> Result<()> {
        if self.appended == EVENTS_PER_TRANSACTION {
            return Err(Error::storage(format!(
                "postgres: a transaction appends at most {EVENTS_PER_TRANSACTION} events"
            )));
        }
        let with_index = sql::with_index(params, self.log.base + self.appended);
        self.write(
            sql::insert_event!("$11 + (pg_current_xact_id()::text::bigint << 16)"),
            &with_index,
        )?;
        self.appended += 1;
        Ok(())
    }

    fn settled_events(&mut self) -> Result<Option<i64>> {
        self.newest().map(Some)
    }

    fn event_bounds(&mut self) -> Result<(i64, Option<i64>)> {
        let newest = self.newest()?;
        let pruned = self
            .row(
                "SELECT pruned_through FROM event_log WHERE id = 0",
                &[],
                |row| row.int(0),
            )?
            .ok_or_else(|| rows::corrupt("event log"))?;
        Ok((newest, Some(pruned + 1)))
    }

    fn pruned_events_through(&mut self, index: i64) -> Result<()> {
        self.exec(
            "UPDATE event_log SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 0",
            &[Param::Int(index)],
        )
        .map(drop)
    }

    fn count_slack(&self) -> usize {
        self.count_padding
    }

    fn reading_all_of_owner(&mut self) -> Result<()> {
        if self.quota != Some(QuotaLock::Shared) {
            return Ok(());
        }
        self.failure.get_or_insert(Failure::QuotaAlone);
        Err(Error::storage(
            "postgres: an owner's records are read whole only with the owner's quota alone",
        ))
    }

    fn acquire_view(&mut self, of: &Acquiring) -> Result<Option<AcquireView>> {
        let read = self.query(
            ACQUIRE_VIEW,
            &[
                Param::Text(of.name.as_str()),
                Param::Bytes(of.me.0.as_bytes()),
                Param::Int(rows::nanos(of.now)),
                Param::Int(rows::sql_limit(of.max_waiters)),
                Param::Bytes(&rows::id(of.owner.0)),
            ],
        )?;
        let first = read.first().ok_or_else(|| rows::corrupt("acquire view"))?;
        if first.text_or_null(5)?.is_some() {
            let lease = rows::lease(&rows::Shifted { row: first, by: 5 })?;
            return Ok(Some(AcquireView {
                lease: Some(lease),
                unleased: None,
            }));
        }
        let first_waiters = (read.iter())
            .filter(|row| !matches!(row.int_or_null(0), Ok(None)))
            .map(|row| rows::waiter(row))
            .collect::<Result<_>>()?;
        Ok(Some(AcquireView {
            lease: None,
            unleased: Some(Unleased {
                first_waiters,
                leases_of_owner: sql::owner_count(self, first.int(3)?)?,
                fencing_token: Some(rows::fencing_token_at(first, 4)?),
            }),
        }))
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        self.row("SELECT nextval('fencing_tokens')", &[], |row| {
            rows::fencing_token_at(row, 0)
        })?
        .ok_or_else(|| rows::corrupt("fencing token"))
    }
}

fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(storage)
}

rows::columns_by!(Row, column);
