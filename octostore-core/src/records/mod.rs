//! Records: what storage keeps, made of values, kept by the backends below the rules.
//!
//! One module per primitive, as the rules have: [`lock`] (leases and their fencing tokens),
//! [`rate_limit`] (a limit's policy and sliding window, and their bytes), [`flag`] (and
//! [`targeting`], its rules, segments, variants and prerequisites),
//! [`config`] (a key's head, its versions, its summary) and [`identity`] (users and token
//! hashes); and [`event`], the change log of them all. They import values only. What a record means at an instant (a lease live, a limit
//! idle or checked, a flag on for a subject) is decided by a rule: those methods are defined
//! beside the rules of their primitive, in [`crate::rules`], which the backends never import.

pub mod config;
pub mod event;
pub mod flag;
pub mod identity;
pub mod lock;
pub mod rate_limit;
pub mod targeting;
