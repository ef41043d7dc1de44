//! A request as its handler gets it ([`Request`]: its name, token, query, headers, client
//! address and body, decoded by its operation's `Endpoint`), and reading its body: capped
//! (nothing past the cap is kept, nor past a few KiB until the token is known good; 408 once
//! the connection layer's body deadline passes).

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use octostore_core::{Error, Result};
use warp::http::header::AUTHORIZATION;
use warp::http::HeaderMap;

use crate::app::App;
use crate::error::{BodyRefused, BodyTimedOut};
use crate::operation::requests::{Endpoint, Received};
use crate::server::Peer;

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

/// One request, as the dispatcher hands it to its operation's handler.
pub struct Request {
    pub app: App,
    /// The name in the path as sent (percent-encoded); empty if the template has none.
    pub name: String,
    /// What the template calls the name (`name`, `key`).
    pub name_field: &'static str,
    /// The bearer token of the `Authorization` header, if it has one.
    pub token: Option<String>,
    /// The query string as sent, if there is one.
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The client's address, where the connection layer gave it.
    pub peer: Option<Peer>,
    /// The body, read as far as the token earned (see [`read_body`]); empty for an operation
    /// that reads none.
    pub body: Bytes,
}

impl Request {
    /// The request, decoded as `E` reads it (an error is answered only once the token is
    /// known good: handlers pass it to the operation, which runs after authentication).
    pub fn decode<E: Endpoint>(&self) -> octostore_core::Result<E> {
        let query = self.query.as_deref().unwrap_or_default();
        let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        E::decode(&Received {
            name: (&self.name, self.name_field),
            query: &query,
            headers: &self.headers,
            body: &self.body,
        })
    }
}

/// The bearer token of the `Authorization` header, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}
