//! The backend-agnostic suite: one test binary, topical modules, every body run against
//! every backend through `support::each_backend!`.

mod support;

mod concurrency;
mod config_deletes;
mod config_schemas;
mod config_writes;
mod configs;
mod event_storage;
mod events;
mod flag_targeting;
mod flags;
mod group_commit;
mod identity;
mod layers;
mod limits;
mod locks;
mod models;
#[cfg(feature = "postgres")]
mod postgres_db;
mod processes;
mod sqlite_file;
mod subscriptions;
mod waiting;

/// Without the `postgres` feature there are no postgres tests: a test database named in the
/// environment must not go untested in silence.
#[cfg(not(feature = "postgres"))]
#[test]
fn the_postgres_tests_are_built_when_a_test_database_is_named() {
    assert!(
        std::env::var_os("OCTOSTORE_TEST_POSTGRES_URL").is_none(),
        "OCTOSTORE_TEST_POSTGRES_URL is set, but this suite was built without the `postgres` \
         feature: run `cargo test --workspace`, or add `--features postgres`"
    );
}
