//! Feature flags as storage keeps them.

use chrono::{DateTime, Utc};

use crate::values::bounds::Percentage;
use crate::values::names::FlagName;

/// A feature flag as set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag.
    pub name: FlagName,
    /// Off for everyone when false.
    pub enabled: bool,
    /// When set, only subjects whose bucket is at most this see the flag on.
    pub percentage: Option<Percentage>,
    /// When the flag was first set.
    pub created_at: DateTime<Utc>,
    /// When the flag was last set.
    pub updated_at: DateTime<Utc>,
}
