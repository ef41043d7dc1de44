//! The one mapping from what went wrong to an HTTP answer: each core [`Error`] to a status and
//! a JSON body, and each warp rejection (no route, body too large...) likewise.

use std::convert::Infallible;

use octostore_core::{Error, Resource};
use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::dto::{ConflictingLock, ErrorBody, LockConflict};

/// A JSON answer with `status`: what `warp::reply::with_status(warp::reply::json(body),
/// status)` answers, serialized into a buffer that holds most answers without growing.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut buffer = Vec::with_capacity(256);
    let mut response = match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => {
            let mut response = Response::new(buffer.into());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            tracing::error!("reply::json error: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    *response.status_mut() = status;
    response
}

fn error_json(status: StatusCode, error: &str, details: Option<&str>) -> Response {
    let body = ErrorBody {
        error: error.to_owned(),
        details: details.map(str::to_owned),
    };
    json(status, &body)
}

/// The `Retry-After` of a 503: the store was busy, and one second is long for it.
const RETRY_UNAVAILABLE_AFTER_SECONDS: u64 = 1;

/// The HTTP status of each kind of core error.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::LockHeld { .. } | Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Unauthorized => StatusCode::UNAUTHORIZED,
        Error::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The answer for a core error. `details` is machine-readable where a client needs it: the
/// field for 422, the limit for 413 and 429.
pub fn error_response(err: &Error) -> Response {
    let status = status_of(err);
    match err {
        Error::LockHeld {
            name,
            holder,
            expires_at,
        } => json(
            status,
            &LockConflict {
                error: "Lock already held".into(),
                lock: ConflictingLock {
                    name: name.to_string(),
                    holder: holder.to_string(),
                    expires_at: *expires_at,
                },
            },
        ),
        Error::Unauthorized => unauthorized(),
        Error::Invalid { field, .. } => error_json(status, &err.to_string(), Some(field)),
        Error::NotFound {
            what: Resource::Lock,
            ..
        } => error_json(
            status,
            "Lock not found or not owned by caller",
            Some(&err.to_string()),
        ),
        Error::QuotaExceeded { limit, .. } => {
            error_json(status, &err.to_string(), Some(&limit.to_string()))
        }
        Error::TooLarge { limit, .. } => {
            error_json(status, &err.to_string(), Some(&limit.to_string()))
        }
        Error::Storage(message) => {
            tracing::error!(%message, "storage failure");
            error_json(status, "storage failure", None)
        }
        Error::Unavailable(reason) => {
            tracing::warn!(%reason, "operation not run");
            let mut response = error_json(status, &err.to_string(), None);
            let retry = HeaderValue::from(RETRY_UNAVAILABLE_AFTER_SECONDS);
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            response
        }
        _ => error_json(status, &err.to_string(), None),
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
pub fn unauthorized() -> Response {
    let mut response = error_json(
        StatusCode::UNAUTHORIZED,
        "Invalid or missing authorization header",
        Some("send Authorization: Bearer <token>"),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// 404 for a path the API does not have.
pub fn no_such_path() -> Response {
    error_json(StatusCode::NOT_FOUND, "not found", Some("no such path"))
}

/// 405 naming the methods the path has.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = error_json(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        Some(&format!("this path accepts {allow}")),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A request body larger than the server accepts.
#[derive(Debug)]
pub struct BodyTooLarge {
    pub limit: u64,
}

impl warp::reject::Reject for BodyTooLarge {}

/// A request refused before its body was read: its token is missing, or not good (or could
/// not be checked). Answered as the error is.
#[derive(Debug)]
pub struct Refused(pub Error);

impl warp::reject::Reject for Refused {}

/// A request body that did not arrive within the server's body timeout (see
/// `ConnectionLimits::body_timeout`): the error of the body, then the rejection.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl warp::reject::Reject for BodyTimedOut {}

/// `response`, asking to close the connection: the rest of the body may not have been read,
/// so this connection cannot carry another request.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Turns every rejection into a JSON answer; nothing reaches the client as HTML or empty.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let response = if rejection.is_not_found() {
        no_such_path()
    } else if let Some(too_large) = rejection.find::<BodyTooLarge>() {
        let details = format!("the request body is limited to {} bytes", too_large.limit);
        closing(error_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            Some(&details),
        ))
    } else if let Some(Refused(error)) = rejection.find() {
        error_response(error)
    } else if rejection.find::<BodyTimedOut>().is_some() {
        closing(error_json(
            StatusCode::REQUEST_TIMEOUT,
            "request body timed out",
            Some("the body did not arrive within the server's body timeout"),
        ))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_json(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", None)
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        error_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid query string",
            Some(&e.to_string()),
        )
    } else {
        error_json(
            StatusCode::BAD_REQUEST,
            "bad request",
            Some(&format!("{rejection:?}")),
        )
    };
    Ok(response)
}
