//! The rules of each primitive, once, above storage: functions over a
//! [`Tx`](crate::backend::Tx) and the transaction's `now`, which decide expiry, fencing,
//! windows, bucketing, versions and quotas, so that every backend behaves the same.
//!
//! One module per primitive: [`lock`], [`rate_limit`], [`flag`] (with [`flag_eval`], a flag's answer
//! for a context, and [`flag_targeting`], its rules, variants, prerequisites and segments), [`config`] (with
//! [`config_delete`], [`config_diff`], [`config_schema`] and [`schema`], JSON Schema
//! checks), and [`identity`]
//! for users and tokens; and [`event`], the change log the others append to. They stand on records, values and the storage contract, and know
//! nothing of the store that calls them.

pub mod config;
pub mod config_delete;
pub mod config_diff;
pub mod config_schema;
pub mod event;
pub mod flag;
pub mod flag_eval;
pub mod flag_targeting;
pub mod identity;
pub mod lock;
pub mod rate_limit;
pub mod schema;
