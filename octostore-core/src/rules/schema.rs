//! JSON Schema (draft 2020-12, by the `jsonschema` crate) as config values meet it: a schema
//! compiled ([`compile`]: one that is not a valid schema is refused, naming why; a `$ref` to
//! anything outside it cannot be resolved, so is refused too: the store fetches nothing), a
//! value checked against it ([`check`]: the first failure, as the JSON pointer of the value's
//! part that fails and the pointer of the schema's rule that it breaks), and [`Validators`],
//! the compiled schemas a store remembers by digest, so that a put compiles nothing.

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::{Draft, Validator};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::backend::Tx;
use crate::records::config::SchemaDigest;
use crate::records::identity::UserId;
use crate::values::error::{Error, Result};
use crate::values::names::ConfigKey;

/// The digest of `schema`: the SHA-256 of its compact JSON.
pub fn digest(schema: &Value) -> SchemaDigest {
    SchemaDigest(Sha256::digest(schema.to_string().as_bytes()).into())
}

/// `schema` compiled as draft 2020-12; an invalid one is refused, naming why.
pub fn compile(schema: &Value) -> Result<Validator> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(schema)
        .map_err(|e| {
            let at = match e.instance_path().as_str() {
                "" => String::new(),
                path => format!(" at {path}"),
            };
            Error::invalid(
                "schema",
                format!("is not a JSON Schema (draft 2020-12){at}: {e}"),
            )
        })
}

/// Whether `value` matches the validator's schema; the first failure otherwise, as an
/// [`Error::SchemaViolation`] of `key`.
pub fn check(validator: &Validator, key: &ConfigKey, value: &Value) -> Result<()> {
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(e) => Err(Error::SchemaViolation {
            key: key.clone(),
            pointer: e.instance_path().to_string(),
            rule: e.schema_path().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The compiled schemas a store has met, by digest: at most [`Validators::MAX`], forgotten
/// all at once past it (a schema is compiled again when next met).
#[derive(Default)]
pub struct Validators(Mutex<HashMap<SchemaDigest, Arc<Validator>>>);

impl Validators {
    /// The most compiled schemas remembered.
    pub const MAX: usize = 1024;

    /// The validator of the schema of `digest`, compiled by `compile` if not remembered.
    fn get_or(
        &self,
        digest: SchemaDigest,
        compile: impl FnOnce() -> Result<Validator>,
    ) -> Result<Arc<Validator>> {
        if let Some(validator) = self.0.lock().get(&digest) {
            return Ok(validator.clone());
        }
        // Compiled outside the mutex: another thread's put need not wait for it.
        let validator = Arc::new(compile()?);
        let mut cache = self.0.lock();
        if cache.len() >= Self::MAX {
            cache.clear();
        }
        cache.insert(digest, validator.clone());
        Ok(validator)
    }

    /// Remembers a schema just compiled.
    pub(crate) fn remember(&self, digest: SchemaDigest, validator: Validator) {
        let _ = self.get_or(digest, || Ok(validator));
    }
}

/// Whether `value` may be put to the key: it has no schema, or matches it.
pub(crate) fn check_put(
    tx: &mut dyn Tx,
    validators: &Validators,
    owner: UserId,
    key: &ConfigKey,
    value: &Value,
) -> Result<()> {
    let Some(digest) = tx.config_schema_digest(owner, key)? else {
        return Ok(());
    };
    let validator = validators.get_or(digest, || {
        let stored = tx.config_schema(owner, key)?;
        let stored =
            stored.ok_or_else(|| Error::storage(format!("config {key} lost its schema")))?;
        compile(&stored.schema)
    })?;
    check(&validator, key, value)
}
