//! The SQL driver ([`sql::Driver`]) over one PostgreSQL transaction: the queries themselves,
//! and so [`Tx`](crate::backend::Tx), are `backend::sql`'s.
//!
//! Every statement runs prepared, from the connection's cache. The first database error is
//! kept, so that the backend can tell a serialization failure (try again) from any other
//! failure, whatever the rule made of the error it was handed.

use postgres::types::{FromSql, ToSql};
use postgres::Row;

use super::{describe, storage, Connection};
use crate::backend::rows::{self, Columns};
use crate::backend::sql::{self, Param, Upsert};
use crate::records::lock::FencingToken;
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::{Error, Result};

pub(super) struct PostgresTx<'a> {
    conn: &'a mut Connection,
    clock: &'a dyn Clock,
    /// The database's time, when the transaction read it; otherwise `clock` tells.
    database_now: Option<Timestamp>,
    failure: Option<postgres::Error>,
}

impl<'a> PostgresTx<'a> {
    pub(super) fn new(
        conn: &'a mut Connection,
        clock: &'a dyn Clock,
        database_now: Option<Timestamp>,
    ) -> Self {
        Self {
            conn,
            clock,
            database_now,
            failure: None,
        }
    }

    /// The first database error of the transaction, if any.
    pub(super) fn into_failure(self) -> Option<postgres::Error> {
        self.failure
    }

    fn query(&mut self, sql: &'static str, params: &[Param]) -> Result<Vec<Row>> {
        let params = as_dyn(params);
        let result = self
            .conn
            .statement(sql)
            .and_then(|statement| self.conn.client.query(&statement, &params));
        self.track(result)
    }

    /// Keeps the first database error, and reports it as a storage error: one that names
    /// it, for the operation, which the transaction's failure then replaces with one caused by
    /// the kept error (see [`into_failure`](Self::into_failure)).
    fn track<T>(&mut self, result: std::result::Result<T, postgres::Error>) -> Result<T> {
        result.map_err(|e| {
            let error = Error::storage(format!("postgres: {}", describe(&e)));
            self.failure.get_or_insert(e);
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
        let params = as_dyn(params);
        let result = self
            .conn
            .statement(sql)
            .and_then(|statement| self.conn.client.execute(&statement, &params));
        self.track(result)
    }

    fn upsert(upsert: Upsert) -> &'static str {
        upsert.on_conflict
    }

    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.database_now.unwrap_or_else(|| self.clock.timestamp()))
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        let token = self
            .row("SELECT nextval('fencing_tokens')", &[], |row| row.int(0))?
            .ok_or_else(|| rows::corrupt("fencing token"))?;
        Ok(FencingToken(
            u64::try_from(token).map_err(|_| rows::corrupt("fencing token"))?,
        ))
    }
}

fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(storage)
}

rows::columns_by!(Row, column);
