//! Feature flags as storage keeps them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::records::targeting::Targeting;
use crate::values::bounds::Percentage;
use crate::values::names::FlagName;

/// A feature flag as set.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// The flag.
    pub name: FlagName,
    /// Off for everyone when false.
    pub enabled: bool,
    /// When set, only subjects whose bucket is at most this see the flag on, whatever its
    /// rules say.
    pub percentage: Option<Percentage>,
    /// Its rules, variants and prerequisites (shared by the copies a read hands out).
    pub targeting: Arc<Targeting>,
    /// When the flag was first set.
    pub created_at: DateTime<Utc>,
    /// When the flag was last set.
    pub updated_at: DateTime<Utc>,
}
