//! Reading requests: the body (capped, and read no further than the cap), its JSON fields
//! with errors that name the field, and percent-encoded path names.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use octostore_core::{Error, Result};
use serde_json::{Map, Value};
use uuid::Uuid;
use warp::{Filter, Rejection};

use crate::error::BodyTooLarge;

/// The request body, refused with 413 as soon as it is known to exceed `limit` bytes: at once
/// from `Content-Length`, or when the bytes read so far pass it.
pub fn body_within(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, stream| read_capped(length, stream, limit))
}

async fn read_capped(
    length: Option<u64>,
    stream: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: u64,
) -> Result<Bytes, Rejection> {
    let too_large = || warp::reject::custom(BodyTooLarge { limit });
    if length.is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| warp::reject::reject())?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(too_large());
        }
        body.put(chunk);
    }
    Ok(body.freeze())
}

/// A path segment, percent-decoded; `field` names it in the error.
pub fn path_name(raw: &str, field: &'static str) -> Result<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::invalid(field, "is not valid UTF-8 once percent-decoded"))
}

/// A JSON object body, read field by field.
pub struct JsonBody(Map<String, Value>);

fn wrong_type(field: &'static str, expected: &str) -> Error {
    Error::invalid(field, format!("must be {expected}"))
}

impl JsonBody {
    /// Parses `bytes` as a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
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
    pub fn int(&self, field: &'static str) -> Result<i64> {
        Self::as_int(field, self.required(field)?)
    }

    /// An optional integer.
    pub fn optional_int(&self, field: &'static str) -> Result<Option<i64>> {
        self.field(field)
            .map(|v| Self::as_int(field, v))
            .transpose()
    }

    /// A required boolean.
    pub fn bool(&self, field: &'static str) -> Result<bool> {
        self.required(field)?
            .as_bool()
            .ok_or_else(|| wrong_type(field, "true or false"))
    }

    /// An optional string.
    pub fn optional_str(&self, field: &'static str) -> Result<Option<&str>> {
        self.field(field)
            .map(|v| v.as_str().ok_or_else(|| wrong_type(field, "a string")))
            .transpose()
    }

    /// A required UUID string.
    pub fn uuid(&self, field: &'static str) -> Result<Uuid> {
        let text = self
            .required(field)?
            .as_str()
            .ok_or_else(|| wrong_type(field, "a UUID string"))?;
        Uuid::parse_str(text).map_err(|_| Error::invalid(field, "is not a valid UUID"))
    }

    /// A required value of any JSON type, `null` included.
    pub fn take_value(&mut self, field: &'static str) -> Result<Value> {
        self.0
            .remove(field)
            .ok_or_else(|| Error::invalid(field, "is required"))
    }
}
