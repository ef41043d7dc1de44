//! A pooled connection that sends several statements before it reads their answers: the
//! protocol's pipelining, which the asynchronous driver does for requests polled together,
//! here on a runtime of the connection's own, whose thread is the caller's (the connection
//! is polled on it while a caller waits, as the synchronous driver does). A transaction's
//! writes whose answers no rule reads are held back ([`Held`]) and go out with its next
//! statement that must be answered (a read, or the commit), in one round trip.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use futures_util::future::{join, join_all};
use postgres::types::ToSql;
use postgres::{Error, Row, SimpleQueryMessage, Statement};
use tokio::runtime::Runtime;
use tokio_postgres::ToStatement;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backend::sql::Param;

/// The driver's side of a connection: it reads and writes the socket when polled.
type Socket = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// One connection to the database, and the runtime that drives it.
pub(super) struct Client {
    runtime: Runtime,
    client: tokio_postgres::Client,
    /// `None` once the connection ended (every request fails then).
    socket: Option<Socket>,
}

/// A write held back until the next statement that must be answered.
pub(super) struct Held {
    statement: Statement,
    values: Vec<Value>,
}

impl Held {
    pub(super) fn new(statement: Statement, params: &[Param]) -> Self {
        let values = params.iter().map(Value::of).collect();
        Self { statement, values }
    }
}

/// A [`Param`] that owns its value.
enum Value {
    Int(i64),
    IntOrNull(Option<i64>),
    Bool(bool),
    Text(String),
    TextOrNull(Option<String>),
    Bytes(Vec<u8>),
}

impl Value {
    fn of(param: &Param) -> Self {
        match *param {
            Param::Int(n) => Value::Int(n),
            Param::IntOrNull(n) => Value::IntOrNull(n),
            Param::Bool(b) => Value::Bool(b),
            Param::Text(s) => Value::Text(s.to_owned()),
            Param::TextOrNull(s) => Value::TextOrNull(s.map(str::to_owned)),
            Param::Bytes(b) => Value::Bytes(b.to_vec()),
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(n) => n,
            Value::IntOrNull(n) => n,
            Value::Bool(b) => b,
            Value::Text(s) => s,
            Value::TextOrNull(s) => s,
            Value::Bytes(b) => b,
        }
    }
}

/// Which of the statements sent together failed first.
#[derive(Debug)]
pub(super) enum Sent {
    /// A held write: in a transaction, every statement after it failed or (a `COMMIT`)
    /// rolled back.
    Held(Error),
    /// The statement that was to be answered.
    Last(Error),
}

impl Sent {
    pub(super) fn into_error(self) -> Error {
        match self {
            Sent::Held(e) | Sent::Last(e) => e,
        }
    }
}

impl Client {
    /// Connects by `config`, on a current-thread runtime of the connection's own (as the
    /// synchronous driver does).
    pub(super) fn connect(
        config: &tokio_postgres::Config,
        tls: MakeRustlsConnect,
    ) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime is built from nothing");
        let (client, connection) = runtime.block_on(config.connect(tls))?;
        Ok(Self {
            runtime,
            client,
            socket: Some(Box::pin(connection)),
        })
    }

    pub(super) fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        let prepared = self.client.prepare(sql);
        block_on(&self.runtime, &mut self.socket, prepared)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Sends `held`, then the simple query `sql`, and answers its messages.
    pub(super) fn simple_query(
        &mut self,
        held: Vec<Held>,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, Sent> {
        let last = self.client.simple_query(sql);
        after(&self.runtime, &mut self.socket, &self.client, held, last)
    }

    /// Sends `held`, then the statement, and answers its rows.
    pub(super) fn query(
        &mut self,
        held: Vec<Held>,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Sent> {
        let last = self.client.query(statement, params);
        after(&self.runtime, &mut self.socket, &self.client, held, last)
    }

    /// The one row of a statement, sent alone.
    pub(super) fn query_one<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let read = self.client.query_one(statement, params);
        block_on(&self.runtime, &mut self.socket, read)
    }

    /// Sends `held`, then the statement, and answers how many rows it changed.
    pub(super) fn execute(
        &mut self,
        held: Vec<Held>,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Sent> {
        let last = self.client.execute(statement, params);
        after(&self.runtime, &mut self.socket, &self.client, held, last)
    }
}

/// Sends every statement of `held` and then `last`'s without waiting between them (a request
/// goes out when its future is first polled, and these are polled in order), then waits for
/// all the answers.
fn after<T>(
    runtime: &Runtime,
    socket: &mut Option<Socket>,
    client: &tokio_postgres::Client,
    held: Vec<Held>,
    last: impl Future<Output = Result<T, Error>>,
) -> Result<T, Sent> {
    if held.is_empty() {
        return block_on(runtime, socket, last).map_err(Sent::Last);
    }
    let writes = join_all(held.iter().map(|write| {
        let params = write.values.iter().map(Value::as_sql);
        client.execute_raw(&write.statement, params)
    }));
    let both = async { Ok::<_, Error>(join(writes, last).await) };
    let (written, answer) = block_on(runtime, socket, both).map_err(Sent::Last)?;
    if let Some(e) = written.into_iter().find_map(Result::err) {
        return Err(Sent::Held(e));
    }
    answer.map_err(Sent::Last)
}

/// Runs `future` to its end on `runtime`, polling the connection's `socket` beside it. A
/// socket that ended is dropped, which fails every request still waiting.
fn block_on<T>(
    runtime: &Runtime,
    socket: &mut Option<Socket>,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let mut future = pin!(future);
    runtime.block_on(std::future::poll_fn(|cx| {
        if let Some(driven) = socket.as_mut() {
            if let Poll::Ready(ended) = driven.as_mut().poll(cx) {
                *socket = None;
                ended?;
            }
        }
        future.as_mut().poll(cx)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::postgres::tls::ConnectSettings;

    /// A held write is seen by the statement it went out with, and one that fails turns the
    /// commit sent after it into a rollback, reported as the write's error (run when
    /// `OCTOSTORE_TEST_POSTGRES_URL` names a database).
    #[test]
    fn held_writes_go_out_with_the_next_statement_and_their_failure_is_theirs() {
        let Ok(url) = std::env::var("OCTOSTORE_TEST_POSTGRES_URL") else {
            eprintln!("OCTOSTORE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        let settings = ConnectSettings::parse(&url, None).unwrap();
        let mut client = settings.connect_pipelined().unwrap();
        let table = format!("octostore_pipeline_{}", std::process::id());
        let run = |client: &mut Client, sql: &str| client.simple_query(Vec::new(), sql).unwrap();
        run(
            &mut client,
            &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (n BIGINT PRIMARY KEY)"),
        );
        let insert = client
            .prepare(&format!("INSERT INTO {table} VALUES ($1)"))
            .unwrap();
        let count = client
            .prepare(&format!("SELECT count(*) FROM {table}"))
            .unwrap();
        let held = |n| Held::new(insert.clone(), &[Param::Int(n)]);
        let counted = |client: &mut Client, held| {
            let rows = client.query(held, &count, &[]).unwrap();
            rows[0].get::<_, i64>(0)
        };

        run(&mut client, "BEGIN");
        assert_eq!(counted(&mut client, vec![held(1), held(2)]), 2);
        let commit = client.simple_query(vec![held(3), held(1), held(4)], "COMMIT");
        match commit {
            Err(Sent::Held(e)) => assert_eq!(
                e.code(),
                Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
                "{e}"
            ),
            Err(Sent::Last(e)) => panic!("the commit failed, not the held insert: {e}"),
            Ok(_) => panic!("a commit after a failed insert succeeded"),
        }
        assert_eq!(
            counted(&mut client, Vec::new()),
            0,
            "the commit kept writes"
        );
        run(&mut client, &format!("DROP TABLE {table}"));
    }
}
