//! The SQL driver ([`sql::Driver`]) over a connection inside one SQLite transaction: the
//! queries themselves, and so [`Tx`](crate::backend::Tx), are `backend::sql`'s. Fencing
//! tokens come from the reserved block in the `fencing` row.

use rusqlite::types::{FromSql, ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, CachedStatement, Connection, Row, ToSql};

use super::storage;
use crate::backend::rows::{self, Columns};
use crate::backend::sql::{self, Param, Upsert};
use crate::records::lock::FencingToken;
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::{Error, Result};

pub(super) struct SqliteTx<'a> {
    tx: &'a Connection,
    clock: &'a dyn Clock,
    fencing_block_exhausted: bool,
}

impl<'a> SqliteTx<'a> {
    pub(super) fn new(tx: &'a Connection, clock: &'a dyn Clock) -> Self {
        Self {
            tx,
            clock,
            fencing_block_exhausted: false,
        }
    }

    /// Whether the operation stopped because no reserved fencing token was left.
    pub(super) fn fencing_block_exhausted(&self) -> bool {
        self.fencing_block_exhausted
    }

    fn prepare(&self, sql: &'static str) -> Result<CachedStatement<'a>> {
        let stmt = self.tx.prepare_cached(sql).map_err(storage)?;
        // SQLite numbers `$N` by first appearance, not by N: check that they agree.
        debug_assert!(
            (1..=stmt.parameter_count())
                .all(|i| stmt.parameter_name(i) == Some(format!("${i}").as_str())),
            "placeholders out of order in {sql}"
        );
        Ok(stmt)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Int(n) | Param::IntOrNull(Some(n)) => ValueRef::Integer(n),
            Param::Bool(b) => ValueRef::Integer(b.into()),
            Param::Text(s) | Param::TextOrNull(Some(s)) => ValueRef::Text(s.as_bytes()),
            Param::Bytes(b) => ValueRef::Blob(b),
            Param::IntOrNull(None) | Param::TextOrNull(None) => ValueRef::Null,
        }))
    }
}

impl sql::Driver for SqliteTx<'_> {
    fn rows<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params_from_iter(params)).map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    fn row<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params_from_iter(params)).map_err(storage)?;
        match rows.next().map_err(storage)? {
            Some(row) => read(row).map(Some),
            None => Ok(None),
        }
    }

    fn exec(&mut self, sql: &'static str, params: &[Param]) -> Result<u64> {
        let mut stmt = self.prepare(sql)?;
        let changed = stmt.execute(params_from_iter(params)).map_err(storage)?;
        Ok(changed as u64)
    }

    fn upsert(upsert: Upsert) -> &'static str {
        upsert.replace
    }

    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.clock.timestamp())
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        let (last, reserved) = self
            .row(
                "SELECT last_issued, reserved_through FROM fencing WHERE id = 0",
                &[],
                |row| Ok((row.int(0)?, row.int(1)?)),
            )?
            .ok_or_else(|| rows::corrupt("fencing row"))?;
        if last >= reserved {
            self.fencing_block_exhausted = true;
            return Err(Error::storage("no reserved fencing token left"));
        }
        self.exec(
            "UPDATE fencing SET last_issued = $1 WHERE id = 0",
            &[Param::Int(last + 1)],
        )?;
        Ok(FencingToken(last as u64 + 1))
    }

    /// The index comes from the one-row `event_index`, updated in the appending transaction:
    /// one writer commits at a time, so indexes follow commit order.
    fn insert_event(&mut self, params: &[Param; 10]) -> Result<()> {
        let index = self
            .row(
                "UPDATE event_index SET last = last + 1 WHERE id = 0 RETURNING last",
                &[],
                |row| row.int(0),
            )?
            .ok_or_else(|| rows::corrupt("event index"))?;
        self.exec(sql::insert_event!("$11"), &sql::with_index(params, index))
            .map(drop)
    }

    fn settled_events(&mut self) -> Result<Option<i64>> {
        Ok(None)
    }

    fn event_bounds(&mut self) -> Result<(i64, Option<i64>)> {
        self.row(
            "SELECT last, (SELECT MIN(idx) FROM events) FROM event_index WHERE id = 0",
            &[],
            |row| Ok((row.int(0)?, row.int_or_null(1)?)),
        )?
        .ok_or_else(|| rows::corrupt("event index"))
    }

    fn pruned_events_through(&mut self, _index: i64) -> Result<()> {
        Ok(())
    }
}

fn column<T: FromSql>(row: &Row, i: usize) -> Result<T> {
    row.get(i).map_err(storage)
}

rows::columns_by!(Row<'_>, column);
