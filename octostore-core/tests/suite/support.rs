//! What every test of the suite stands on: a store on a manual clock, per backend, and the
//! macro that runs one test body against every backend.
//!
//! PostgreSQL runs when `OCTOSTORE_TEST_POSTGRES_URL` names a database (CI sets it): each
//! harness gets a fresh schema, dropped with it. Unset, the postgres tests say once that they
//! were skipped; set but unreachable, they fail.

use std::any::Any;
use std::sync::Arc;

use chrono::Duration;
use octostore_core::{Login, ManualClock, Session, Settings, SqliteBackend, Store};

/// A store on a manual clock.
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub store: Store,
    /// What the backend stores in (a file's directory, a schema), removed once the harness,
    /// and so the store before it, is dropped.
    _storage: Option<Box<dyn Any>>,
}

impl Harness {
    /// The session of `login`, a local user created on first use.
    pub fn user(&self, login: &str) -> Session {
        let user = self
            .store
            .local_user(&Login::parse(login).unwrap())
            .unwrap();
        self.store.session(user)
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.clock.advance(Duration::milliseconds(ms));
    }

    /// Moves the clock forward by `s` seconds.
    pub fn advance_secs(&self, s: i64) {
        self.clock.advance(Duration::seconds(s));
    }
}

/// Opens a fresh, empty store of one backend with the given settings.
pub type Open = fn(Settings) -> Harness;

/// The memory backend.
pub fn memory(settings: Settings) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .clock(clock.clone())
        .settings(settings)
        .build();
    Harness {
        clock,
        store,
        _storage: None,
    }
}

/// The SQLite backend, on a new file in a temporary directory.
pub fn sqlite(settings: Settings) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("octostore.db")).unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(backend)
        .clock(clock.clone())
        .settings(settings)
        .build();
    Harness {
        clock,
        store,
        _storage: Some(Box::new(dir)),
    }
}

/// The variable naming the PostgreSQL database of the tests.
#[cfg(feature = "postgres")]
pub const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

/// The test database's URL, or `None` (saying once, past the test harness's capture, that
/// the postgres tests are skipped) when `OCTOSTORE_TEST_POSTGRES_URL` is unset.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> Option<String> {
    static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        SKIP_NOTICE.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the postgres tests of this binary ({POSTGRES_URL_VAR} is unset)"
            );
        });
    }
    url
}

/// A fresh schema of the test database, dropped with everything in it when this is dropped.
#[cfg(feature = "postgres")]
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

#[cfg(feature = "postgres")]
impl TestSchema {
    /// A new schema name; the backend creates the schema when it connects.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("octostore_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// A backend on this schema that reads time from the store's clock.
    pub fn backend(&self) -> octostore_core::PostgresBackend {
        self.backend_with(octostore_core::TimeSource::StoreClock)
    }

    /// A backend on this schema.
    pub fn backend_with(
        &self,
        time: octostore_core::TimeSource,
    ) -> octostore_core::PostgresBackend {
        let options = octostore_core::PostgresOptions {
            schema: Some(self.name.clone()),
            time,
            ..Default::default()
        };
        octostore_core::PostgresBackend::connect_with(&self.url, options)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but: {e}"))
    }

    /// A plain connection to the test database, for what the backend does not offer.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but: {e}"))
    }
}

#[cfg(feature = "postgres")]
impl Drop for TestSchema {
    /// Drops the schema. A store's thread may still be reading it (a queue's reader of the
    /// change log, ending after the test), and the drop, locking table after table, can
    /// deadlock with that read: the database then fails one of the two, and the drop is
    /// made again.
    fn drop(&mut self) {
        let drop_once = || {
            postgres::Client::connect(&self.url, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            })
        };
        let deadlocked = |e: &postgres::Error| {
            e.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
        };
        let mut dropped = drop_once();
        for _ in 0..5 {
            match &dropped {
                Err(e) if deadlocked(e) => dropped = drop_once(),
                _ => break,
            }
        }
        if let Err(e) = dropped {
            if !std::thread::panicking() {
                panic!("cannot drop the test schema {}: {e}", self.name);
            }
        }
    }
}

/// The PostgreSQL backend, on a fresh schema of the test database, on the store's clock.
#[cfg(feature = "postgres")]
pub fn postgres(settings: Settings) -> Harness {
    let url = postgres_url().expect("only called when the test database is configured");
    let schema = TestSchema::new(&url);
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .backend(schema.backend())
        .clock(clock.clone())
        .settings(settings)
        .build();
    Harness {
        clock,
        store,
        _storage: Some(Box::new(schema)),
    }
}

/// Every backend, by name, for tests that loop over them (proptests, threads).
pub fn backends() -> Vec<(&'static str, Open)> {
    #[allow(unused_mut)] // without the postgres feature
    let mut all = local_backends();
    #[cfg(feature = "postgres")]
    if postgres_url().is_some() {
        all.push(("postgres", postgres as Open));
    }
    all
}

/// The backends that live in this process (memory, a local file), for tests of a rule's
/// arithmetic that make tens of thousands of calls per case: on a database server, each a
/// round trip, those would take minutes and test no more of the backend.
pub fn local_backends() -> Vec<(&'static str, Open)> {
    vec![("memory", memory as Open), ("sqlite", sqlite as Open)]
}

/// Runs each listed `fn(Open)` once per backend, as `<backend>::<test>`.
macro_rules! each_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $test() { super::$test($crate::support::memory) })*
        }
        mod sqlite {
            $(#[test] fn $test() { super::$test($crate::support::sqlite) })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $test() {
                if $crate::support::postgres_url().is_some() {
                    super::$test($crate::support::postgres)
                }
            })*
        }
    };
}
pub(crate) use each_backend;
