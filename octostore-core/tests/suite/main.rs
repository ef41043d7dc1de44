//! The backend-agnostic suite: one test binary, topical modules, every body run against
//! every backend through `support::each_backend!`.

mod support;

mod concurrency;
mod configs;
mod flags;
mod identity;
mod limits;
mod locks;
mod models;
mod processes;
mod sqlite_file;
