//! Reading requests: the body (capped: nothing past the cap is kept, nor past a few KiB until
//! the token is known good; 408 once the connection layer's body deadline passes), its JSON
//! fields with errors that name the field, and percent-encoded path names.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use octostore_core::{Error, Result};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{BodyRefused, BodyTimedOut};

/// How much of a refused body is still read (and thrown away), and for how long, so that a
/// client still sending it reads the answer (413, or 401 for a bad token) instead of a reset
/// connection. Past either bound the connection is closed.
const DISCARD_AT_MOST: u64 = 16 * 1024 * 1024;
const DISCARD_FOR_AT_MOST: Duration = Duration::from_secs(5);

/// How much of a request body is kept before the request's token is known good. A larger
/// body waits for the token to be authenticated first: at once when its `Content-Length`
/// says so (nothing of it read), else once more of it has arrived (the chunk that passed
/// this held, unparsed, meanwhile). So a client without a good token makes the server parse
/// at most this much.
pub const UNAUTHENTICATED_BODY_BYTES: u64 = 4 * 1024;

/// The body of a request that has a token, refused with 413 once it is known to exceed
/// `limit` bytes (from `Content-Length`, or when the bytes read so far pass it), and kept past
/// [`UNAUTHENTICATED_BODY_BYTES`] only once `authenticate` has found the token good; if it
/// does not, its error is the rejection ([`refuse`]). Nothing past the limit is kept.
pub async fn read_body<S, B, A, F>(
    length: Option<u64>,
    mut stream: S,
    limit: u64,
    authenticate: A,
) -> Result<Bytes, BodyRefused>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin + Send + 'static,
    B: Buf + Send + 'static,
    A: FnOnce() -> F,
    F: Future<Output = Result<()>>,
{
    let mut authenticate = Some(authenticate);
    if length.is_some_and(|l| l > UNAUTHENTICATED_BODY_BYTES) {
        if let Err(e) = earned(&mut authenticate).await {
            return Err(refuse(length, stream, e));
        }
    }
    if length.is_some_and(|l| l > limit) {
        return Err(too_large(length, stream, limit).await);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        let read = (body.len() + chunk.remaining()) as u64;
        if read > UNAUTHENTICATED_BODY_BYTES {
            if let Err(e) = earned(&mut authenticate).await {
                return Err(refuse(length, stream, e));
            }
        }
        if read > limit {
            return Err(too_large(length, stream, limit).await);
        }
        body.put(chunk);
    }
    Ok(body.freeze())
}

/// Whether the token is good, asked once (and only once the body is known to be larger than
/// an unauthenticated request may send).
async fn earned<A, F>(authenticate: &mut Option<A>) -> Result<()>
where
    A: FnOnce() -> F,
    F: Future<Output = Result<()>>,
{
    match authenticate.take() {
        Some(authenticate) => authenticate().await,
        None => Ok(()),
    }
}

/// The refusal of a request refused before its body was read (its token is missing or
/// not good): answered at once, while the rest of the body, if not too large, is read and
/// thrown away on a task of its own, so that a client still sending it reads the answer
/// rather than a reset connection.
pub fn refuse<S, B>(length: Option<u64>, stream: S, error: Error) -> BodyRefused
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin + Send + 'static,
    B: Buf + Send + 'static,
{
    if length.is_none_or(|l| l > 0 && l <= DISCARD_AT_MOST) {
        tokio::spawn(discard(stream));
    }
    BodyRefused::Token(error)
}

/// 413, once what is left of the body, if not too large, has been read and thrown away, so
/// that a client still sending it reads the answer.
async fn too_large<S, B>(length: Option<u64>, stream: S, limit: u64) -> BodyRefused
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    if length.is_none_or(|l| l <= DISCARD_AT_MOST) {
        discard(stream).await;
    }
    BodyRefused::TooLarge { limit }
}

/// Why a body could not be read: 408 when its deadline passed; otherwise
/// the client is gone, and nobody reads the answer.
fn unreadable(error: warp::Error) -> BodyRefused {
    match std::error::Error::source(&error) {
        Some(source) if source.is::<BodyTimedOut>() => BodyRefused::TimedOut,
        _ => BodyRefused::Gone,
    }
}

/// Reads the rest of a refused body without keeping it, within the discard bounds.
async fn discard<B: Buf>(mut stream: impl Stream<Item = Result<B, warp::Error>> + Unpin) {
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
