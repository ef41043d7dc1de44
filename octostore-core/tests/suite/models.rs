//! Model-based property tests: each primitive against a tiny reference model.
//!
//! Each proptest generates a random sequence of operations by several users, interleaved
//! with clock advances, and replays it on a fresh store of every backend of
//! `support::backends()`, checking every answer against a plain `HashMap` model written here,
//! independently of `src/`.

mod configs;
mod events;
mod flag_eval;
mod flags;
mod limits;
mod locks;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

/// The users every model plays with.
const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// The path, under `tests/suite/proptest-regressions/`, where proptest keeps the failing
/// seeds of one model (so they are committed with the suite and replayed first).
macro_rules! regressions {
    ($name:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/suite/proptest-regressions/",
            $name,
            ".txt"
        )
    };
}
pub(crate) use regressions;

/// `cases` cases (or `$PROPTEST_CASES`, for a deeper run), failing seeds kept in
/// `regressions` (see [`regressions!`]).
pub(crate) fn config(cases: u32, regressions: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..ProptestConfig::default()
    }
}

/// A clock step in milliseconds: mostly under a second, often seconds, sometimes minutes
/// (past every TTL and window the models use).
fn step_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 1..1_000i64,
        3 => 1_000..10_000i64,
        1 => 10_000..120_000i64,
    ]
}

/// Prefixes a failure's message with `context` (the backend, the step).
fn within(context: impl std::fmt::Display) -> impl FnOnce(TestCaseError) -> TestCaseError {
    move |e| match e {
        TestCaseError::Fail(reason) => {
            TestCaseError::fail(format!("{context}: {}", reason.message()))
        }
        other => other,
    }
}

/// An error the model did not expect.
fn unexpected(e: octostore_core::Error) -> TestCaseError {
    TestCaseError::fail(format!("unexpected error {e:?}"))
}
