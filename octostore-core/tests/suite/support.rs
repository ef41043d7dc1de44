//! What every test of the suite stands on: a store on a manual clock, per backend, and the
//! macro that runs one test body against every backend.

use std::sync::Arc;

use chrono::Duration;
use octostore_core::{Login, ManualClock, Session, Settings, SqliteBackend, Store};

/// A store on a manual clock.
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub store: Store,
    /// Keeps a file backend's directory until the harness is dropped.
    _dir: Option<tempfile::TempDir>,
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
        _dir: None,
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
        _dir: Some(dir),
    }
}

/// Every backend, by name, for tests that loop over them (proptests, threads).
pub fn backends() -> Vec<(&'static str, Open)> {
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
    };
}
pub(crate) use each_backend;
