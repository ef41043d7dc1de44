//! Config keys as storage keeps them: a head per key, beside its versions, and a key's
//! schema.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::values::error::Error;
use crate::values::names::{ConfigKey, Login};

/// What a backend stores for a key, beside its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigHead {
    /// The newest version.
    pub latest: u64,
    /// The oldest version still kept.
    pub oldest: u64,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key was deleted, if it was: its versions are kept for a while, for an
    /// undelete, while it reads as absent.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One stored version of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    /// 1 for the key's first put, then one more for each put.
    pub version: u64,
    /// The value.
    pub value: Value,
    /// What the value is for.
    pub description: Option<String>,
    /// When this version was put.
    pub created_at: DateTime<Utc>,
    /// The login of the user who put this version, as it was then; `None` for a version
    /// stored before writers were recorded whose owner was unknown when they began to be.
    pub created_by: Option<Login>,
}

/// The SHA-256 of a schema's compact JSON: which schema a compiled validator is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchemaDigest(pub [u8; 32]);

/// A key's JSON Schema (draft 2020-12), which every value put to the key must match.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSchema {
    /// The schema.
    pub schema: Value,
    /// Its digest.
    pub digest: SchemaDigest,
    /// When it was set.
    pub updated_at: DateTime<Utc>,
    /// The login that set it.
    pub updated_by: Option<Login>,
}

/// A key as a list shows it: its latest version without the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSummary {
    /// The key.
    pub key: ConfigKey,
    /// The latest version's description.
    pub description: Option<String>,
    /// The latest version.
    pub version: u64,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the latest version was put.
    pub updated_at: DateTime<Utc>,
    /// When the key was deleted, for a deleted key kept for an undelete.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A version the key's head says is kept, but storage does not have.
pub(crate) fn lost_version(key: &ConfigKey, version: u64) -> Error {
    Error::storage(format!("config {key} lost its version {version}"))
}
