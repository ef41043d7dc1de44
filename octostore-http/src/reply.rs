//! Answers as JSON: any shape with a status, and each operation's 200 in the type its client
//! decodes.

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::operation::requests::Endpoint;

/// A JSON answer with `status`: what `warp::reply::with_status(warp::reply::json(body),
/// status)` answers, serialized into a buffer that holds most answers without growing.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut buffer = Vec::with_capacity(256);
    match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => json_bytes(status, buffer),
        Err(e) => {
            tracing::error!("reply::json error: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A JSON answer with `status` of a body already serialized.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *response.status_mut() = status;
    response
}

/// A 200 answer of `E`: its JSON is the one the client decodes.
pub fn answer<E: Endpoint>(body: &E::Answer) -> Response {
    json(StatusCode::OK, body)
}
