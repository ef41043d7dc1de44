//! What changed between two kept versions of a config key: an RFC 6902 JSON Patch that
//! turns the `from` version's value into the `to` version's (`json_patch::diff`). The
//! versions are read in a transaction; the patch is made after it, outside any lock.

use json_patch::Patch;

use crate::backend::Tx;
use crate::records::config::ConfigVersion;
use crate::records::identity::UserId;
use crate::rules::config;
use crate::values::error::Result;
use crate::values::names::ConfigKey;

/// The changes from one version of a key to another.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDiff {
    /// The key.
    pub key: ConfigKey,
    /// The version the patch applies to.
    pub from: u64,
    /// The version the patch makes.
    pub to: u64,
    /// The operations that turn `from`'s value into `to`'s (none if they are equal).
    pub patch: Patch,
}

/// The two versions of the key to compare: each must be kept, else not found.
pub(crate) fn versions(
    tx: &mut dyn Tx,
    owner: UserId,
    key: &ConfigKey,
    from: u64,
    to: u64,
) -> Result<(ConfigVersion, ConfigVersion)> {
    let from = config::kept_version(tx, owner, key, from)?;
    let to = config::kept_version(tx, owner, key, to)?;
    Ok((from, to))
}

impl ConfigDiff {
    /// The patch from `from`'s value to `to`'s.
    pub(crate) fn between(key: &ConfigKey, from: &ConfigVersion, to: &ConfigVersion) -> Self {
        Self {
            key: key.clone(),
            from: from.version,
            to: to.version,
            patch: json_patch::diff(&from.value, &to.value),
        }
    }
}
