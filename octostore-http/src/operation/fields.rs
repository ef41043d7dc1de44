//! Reading a request's fields with errors that name them: the name in its path
//! (percent-decoded), its query parameters and the fields of its JSON body.

use std::borrow::Cow;

use octostore_core::{Error, Result};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A path segment, percent-decoded; `field` names it in the error. A `%` not followed by two
/// hex digits is refused rather than kept, so that one name has one spelling besides its
/// percent-encodings.
pub(crate) fn path_name<'a>(raw: &'a str, field: &'static str) -> Result<Cow<'a, str>> {
    let bytes = raw.as_bytes();
    let stray_percent = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if stray_percent {
        return Err(Error::invalid(
            field,
            "has a '%' that is not followed by two hex digits",
        ));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::invalid(field, "is not valid UTF-8 once percent-decoded"))
}

/// A JSON object body, read field by field.
pub(crate) struct JsonBody(Map<String, Value>);

fn wrong_type(field: &'static str, expected: &str) -> Error {
    Error::invalid(field, format!("must be {expected}"))
}

impl JsonBody {
    /// Parses `bytes` as a JSON object.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Error::invalid("body", "must be a JSON object")),
            Err(e) => Err(Error::invalid("body", format!("is not valid JSON: {e}"))),
        }
    }

    /// The field, if present; `null` counts as present (and is then the wrong type).
    fn field(&self, field: &'static str) -> Option<&Value> {
        self.0.get(field)
    }

    fn required(&self, field: &'static str) -> Result<&Value> {
        self.field(field)
            .ok_or_else(|| Error::invalid(field, "is required"))
    }

    fn as_int(field: &'static str, value: &Value) -> Result<i64> {
        value
            .as_i64()
            .ok_or_else(|| wrong_type(field, "an integer"))
    }

    /// A required integer.
    pub(crate) fn int(&self, field: &'static str) -> Result<i64> {
        Self::as_int(field, self.required(field)?)
    }

    /// An optional integer.
    pub(crate) fn optional_int(&self, field: &'static str) -> Result<Option<i64>> {
        self.field(field)
            .map(|v| Self::as_int(field, v))
            .transpose()
    }

    /// A required boolean.
    pub(crate) fn bool(&self, field: &'static str) -> Result<bool> {
        self.required(field)?
            .as_bool()
            .ok_or_else(|| wrong_type(field, "true or false"))
    }

    /// Whether the field is present (`null` included).
    pub(crate) fn has(&self, field: &'static str) -> bool {
        self.field(field).is_some()
    }

    /// An optional string.
    pub(crate) fn optional_str(&self, field: &'static str) -> Result<Option<&str>> {
        self.field(field)
            .map(|v| v.as_str().ok_or_else(|| wrong_type(field, "a string")))
            .transpose()
    }

    /// A required UUID string.
    pub(crate) fn uuid(&self, field: &'static str) -> Result<Uuid> {
        let text = self
            .required(field)?
            .as_str()
            .ok_or_else(|| wrong_type(field, "a UUID string"))?;
        Uuid::parse_str(text).map_err(|_| Error::invalid(field, "is not a valid UUID"))
    }

    /// A required field of a shape serde reads (a list of rules, of variants...), the error
    /// naming the field.
    pub(crate) fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<T> {
        let value = self.take_value(field)?;
        serde_json::from_value(value).map_err(|e| Error::invalid(field, e.to_string()))
    }

    /// The whole body as a shape serde reads.
    pub(crate) fn into_typed<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        serde_json::from_value(Value::Object(self.0))
            .map_err(|e| Error::invalid("body", e.to_string()))
    }

    /// An optional JSON object field (`{}` if absent or `null`).
    pub(crate) fn object(&mut self, field: &'static str) -> Result<Map<String, Value>> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(_) => Err(wrong_type(field, "a JSON object")),
        }
    }

    /// A required value of any JSON type, `null` included.
    pub(crate) fn take_value(&mut self, field: &'static str) -> Result<Value> {
        self.0
            .remove(field)
            .ok_or_else(|| Error::invalid(field, "is required"))
    }
}
