//! A config key's JSON Schema: set (checked as a schema, capped in size, and refused when the
//! key's latest value does not match it, unless forced), read and deleted. Every later put
//! and rollback of the key is checked against it ([`schema::check_put`], in
//! [`config::put`]). A key may have a schema before its first value; the schemas an owner
//! has are capped at its quota of keys. A schema outlives a delete of its key's values.

use serde_json::Value;

use crate::backend::Tx;
use crate::records::config::ConfigSchema;
use crate::records::identity::UserId;
use crate::rules::config::{self, json_size};
use crate::rules::schema::{self, Validators};
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::{ConfigKey, Login};

/// The numbers a schema is bounded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchemaBounds {
    /// The largest schema, as compact JSON.
    pub(crate) max_bytes: usize,
    /// How many keys of an owner may have a schema.
    pub(crate) keys: usize,
}

/// Sets the key's schema, put by `author`; unless `force`, only if the key's latest value
/// (if it has one) matches it.
#[allow(clippy::too_many_arguments)] // each is one of the set's inputs
pub(crate) fn set(
    tx: &mut dyn Tx,
    now: Timestamp,
    bounds: SchemaBounds,
    validators: &Validators,
    owner: UserId,
    author: &Login,
    key: &ConfigKey,
    schema: Value,
    force: bool,
) -> Result<ConfigSchema> {
    let size = json_size(&schema);
    if size > bounds.max_bytes {
        return Err(Error::TooLarge {
            field: "schema",
            size,
            limit: bounds.max_bytes,
        });
    }
    let validator = schema::compile(&schema)?;
    let had_one = tx.config_schema_digest(owner, key)?.is_some();
    if !had_one && tx.count_config_schemas_of(owner)? >= bounds.keys {
        return Err(Error::QuotaExceeded {
            what: Resource::ConfigSchema,
            limit: bounds.keys,
        });
    }
    if !force {
        if let Ok(latest) = config::get(tx, owner, key, None) {
            schema::check(&validator, key, &latest.value).map_err(|e| match e {
                Error::SchemaViolation {
                    key,
                    pointer,
                    rule,
                    reason,
                } => Error::SchemaViolation {
                    key,
                    pointer,
                    rule,
                    reason: format!(
                        "{reason} (in the key's latest value, version {}: set the schema with \
                         force to keep that value anyway)",
                        latest.version
                    ),
                },
                other => other,
            })?;
        }
    }
    let stored = ConfigSchema {
        digest: schema::digest(&schema),
        schema,
        updated_at: now.to_datetime(),
        updated_by: Some(author.clone()),
    };
    tx.put_config_schema(owner, key, &stored)?;
    validators.remember(stored.digest, validator);
    Ok(stored)
}

/// The key's schema.
pub(crate) fn get(tx: &mut dyn Tx, owner: UserId, key: &ConfigKey) -> Result<ConfigSchema> {
    tx.config_schema(owner, key)?
        .ok_or_else(|| Error::not_found(Resource::ConfigSchema, key))
}

/// Deletes the key's schema: its puts are no longer checked.
pub(crate) fn delete(tx: &mut dyn Tx, owner: UserId, key: &ConfigKey) -> Result<()> {
    match tx.delete_config_schema(owner, key)? {
        true => Ok(()),
        false => Err(Error::not_found(Resource::ConfigSchema, key)),
    }
}
