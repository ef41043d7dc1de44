//! Reading requests: the body (capped: nothing past the cap is kept; 408 once the connection
//! layer's body deadline passes), its JSON fields with errors that name the field, and
//! percent-encoded path names.

use std::borrow::Cow;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use octostore_core::{Error, Result};
use serde_json::{Map, Value};
use uuid::Uuid;
use warp::{Filter, Rejection};

use crate::error::{BodyTimedOut, BodyTooLarge};

/// How much of a refused body is still read (and thrown away), and for how long, so that a
/// client still sending it reads the 413 instead of a reset connection. Past either bound the
/// connection is closed.
const DISCARD_AT_MOST: u64 = 16 * 1024 * 1024;
const DISCARD_FOR_AT_MOST: Duration = Duration::from_secs(5);

/// The request body, refused with 413 once it is known to exceed `limit` bytes: from
/// `Content-Length`, or when the bytes read so far pass it. Nothing past the limit is kept.
pub fn body_within(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, stream| read_capped(length, stream, limit))
}

/// The request body as [`body_within`] reads it, its refusal included as a value: for a
/// route that answers the refusal itself (the body is gone, no other route can read it).
pub fn read_body(
    limit: u64,
) -> impl Filter<Extract = (Result<Bytes, Rejection>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |length: Option<u64>, stream| read_capped(length, stream, limit))
}

async fn read_capped(
    length: Option<u64>,
    stream: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: u64,
) -> Result<Bytes, Rejection> {
    let mut stream = std::pin::pin!(stream);
    let too_large = |stream| async move {
        if length.is_none_or(|l| l <= DISCARD_AT_MOST) {
            discard(stream).await;
        }
        Err(warp::reject::custom(BodyTooLarge { limit }))
    };
    if length.is_some_and(|l| l > limit) {
        return too_large(stream).await;
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return too_large(stream).await;
        }
        body.put(chunk);
    }
    Ok(body.freeze())
}

/// The rejection for a body that could not be read: 408 when its deadline passed; otherwise
/// the client is gone, and nobody reads the answer.
fn unreadable(error: warp::Error) -> Rejection {
    match std::error::Error::source(&error) {
        Some(source) if source.is::<BodyTimedOut>() => warp::reject::custom(BodyTimedOut),
        _ => warp::reject::reject(),
    }
}

/// Reads the rest of a refused body without keeping it, within the discard bounds.
async fn discard<B: Buf>(mut stream: Pin<&mut impl Stream<Item = Result<B, warp::Error>>>) {
    let mut discarded = 0u64;
    let _ = tokio::time::timeout(DISCARD_FOR_AT_MOST, async {
        while let Some(Ok(chunk)) = stream.next().await {
            discarded += chunk.remaining() as u64;
            if discarded > DISCARD_AT_MOST {
                break;
            }
        }
    })
    .await;
}

/// A path segment, percent-decoded; `field` names it in the error. A `%` not followed by two
/// hex digits is refused rather than kept, so that one name has one spelling besides its
/// percent-encodings.
pub fn path_name<'a>(raw: &'a str, field: &'static str) -> Result<Cow<'a, str>> {
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
