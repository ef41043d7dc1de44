//! End-to-end tests of the built `octostore` binary: one test binary, topical modules.

mod support;

mod commands;
mod config_versions;
mod default_store;
mod errors;
mod flag_targeting;
mod help;
mod lock_run;
mod lock_scripts;
mod serve;
mod tokens;
mod watching;
