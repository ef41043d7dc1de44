//! The one mapping from what went wrong to an HTTP answer: each core [`Error`] to an
//! [`ErrorCode`] (whose status is the answer's) and a JSON body, and likewise each refused
//! request body, unknown path and method.

use octostore_core::values::error::Chain;
use octostore_core::{Error, Resource};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::dto::{held_by_code, resource_code, ErrorBody, ErrorCode, LockConflict};
use crate::reply::json;

fn error_json(status: StatusCode, body: &ErrorBody) -> Response {
    json(status, body)
}

/// The `Retry-After` of a 503: the store was busy, and one second is long for it.
const RETRY_UNAVAILABLE_AFTER_SECONDS: u64 = 1;

/// The code of each kind of core error (its HTTP status is the code's).
pub fn code_of(err: &Error) -> ErrorCode {
    match err {
        Error::Invalid { .. } => ErrorCode::ValidationFailed,
        Error::NotFound { .. } => ErrorCode::NotFound,
        Error::LockHeld { .. } => ErrorCode::LockHeld,
        Error::Conflict(_) => ErrorCode::Conflict,
        Error::VersionMismatch { .. } => ErrorCode::VersionMismatch,
        Error::SchemaViolation { .. } => ErrorCode::SchemaViolation,
        Error::SubjectRequired { .. } => ErrorCode::SubjectRequired,
        Error::Unauthorized => ErrorCode::Unauthorized,
        Error::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        Error::TooLarge { .. } => ErrorCode::PayloadTooLarge,
        Error::Unavailable(_) => ErrorCode::StoreBusy,
        // Storage; and a client's failure to reach another server, which none of the
        // server's operations makes: for this server's client, its store failed.
        _ => ErrorCode::StorageFailure,
    }
}

/// The status of an answer with `code`.
pub fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).expect("every code's status is valid")
}

/// The answer for a core error: its code, its words, and its facts in fields of their own.
pub fn error_response(err: &Error) -> Response {
    let code = code_of(err);
    let mut body = ErrorBody::new(code, err.to_string(), None);
    match err {
        Error::LockHeld {
            name,
            holder,
            expires_at,
        } => return json(status(code), &LockConflict::new(name, holder, *expires_at)),
        Error::Unauthorized => return unauthorized(),
        Error::Invalid { field, reason } => {
            body.field = Some((*field).to_owned());
            body.details = Some(reason.clone());
        }
        Error::NotFound {
            what,
            name,
            held_by,
        } => {
            if *what == Resource::Lock {
                // The contract's words; which lock, and who holds it, in `details`.
                body.error = "Lock not found or not owned by caller".into();
                body.details = Some(err.to_string());
            }
            body.resource = Some(resource_code(*what).to_owned());
            body.name = Some(name.clone());
            body.lock_held_by = held_by.map(|h| held_by_code(h).to_owned());
        }
        Error::VersionMismatch {
            key,
            expected,
            current,
        } => {
            body.resource = Some(resource_code(Resource::Config).to_owned());
            body.name = Some(key.to_string());
            body.expected_version = Some(*expected);
            body.current_version = Some(*current);
        }
        Error::SchemaViolation {
            key,
            pointer,
            rule,
            reason,
        } => {
            body.resource = Some(resource_code(Resource::Config).to_owned());
            body.name = Some(key.to_string());
            body.field = Some("value".into());
            body.pointer = Some(pointer.clone());
            body.rule = Some(rule.clone());
            body.details = Some(reason.clone());
        }
        Error::SubjectRequired { flag } => {
            body.resource = Some(resource_code(Resource::Flag).to_owned());
            body.name = Some(flag.to_string());
            body.field = Some("context".into());
        }
        Error::QuotaExceeded { what, limit } => {
            body.resource = Some(resource_code(*what).to_owned());
            body.limit = Some(*limit as u64);
        }
        Error::TooLarge { field, size, limit } => {
            body.field = Some((*field).to_owned());
            body.size = Some(*size as u64);
            body.limit = Some(*limit as u64);
        }
        Error::Storage { .. } | Error::Remote { .. } => {
            tracing::error!(error = %Chain(err), "storage failure");
            body.error = "storage failure".into();
        }
        Error::Unavailable(reason) => {
            tracing::warn!(%reason, "operation not run");
            body.details = Some(reason.clone());
            let mut response = error_json(status(code), &body);
            let retry = HeaderValue::from(RETRY_UNAVAILABLE_AFTER_SECONDS);
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            return response;
        }
        _ => {}
    }
    error_json(status(code), &body)
}

/// 401 with `WWW-Authenticate: Bearer`.
pub fn unauthorized() -> Response {
    let body = ErrorBody::new(
        ErrorCode::Unauthorized,
        "Invalid or missing authorization header",
        Some("send Authorization: Bearer <token>".into()),
    );
    let mut response = error_json(StatusCode::UNAUTHORIZED, &body);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// 404 for a path the API does not have.
pub fn no_such_path() -> Response {
    let body = ErrorBody::new(
        ErrorCode::NoSuchPath,
        "not found",
        Some("no such path".into()),
    );
    error_json(StatusCode::NOT_FOUND, &body)
}

/// 503 for `GET /ready`: the store did not answer its read, for the reason `why`.
pub fn not_ready(why: String) -> Response {
    tracing::warn!(%why, "not ready");
    let body = ErrorBody::new(ErrorCode::NotReady, "the store is not ready", Some(why));
    error_json(status(ErrorCode::NotReady), &body)
}

/// 405 naming the methods the path has.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let body = ErrorBody::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed",
        Some(format!("this path accepts {allow}")),
    );
    let mut response = error_json(StatusCode::METHOD_NOT_ALLOWED, &body);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Why a request body was not read whole (by `request::read_body`).
#[derive(Debug)]
pub enum BodyRefused {
    /// Its token is missing, or not good (or could not be checked): answered as the error.
    Token(Error),
    /// It is larger than the server's cap of `limit` bytes.
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// It did not arrive within the server's body timeout.
    TimedOut,
    /// The client went away while sending it: nobody reads the answer.
    Gone,
}

/// The answer to a request whose body was refused. Past the token's refusal, the rest of
/// the body may not have been read, so the connection is closed after the answer.
pub fn body_refused(refused: BodyRefused) -> Response {
    match refused {
        BodyRefused::Token(error) => error_response(&error),
        BodyRefused::TooLarge { limit } => {
            let mut body = ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                "request body too large",
                Some(format!("the request body is limited to {limit} bytes")),
            );
            body.field = Some("body".into());
            body.limit = Some(limit);
            closing(error_json(StatusCode::PAYLOAD_TOO_LARGE, &body))
        }
        BodyRefused::TimedOut => closing(error_json(
            StatusCode::REQUEST_TIMEOUT,
            &ErrorBody::new(
                ErrorCode::RequestTimeout,
                "request body timed out",
                Some("the body did not arrive within the server's body timeout".into()),
            ),
        )),
        BodyRefused::Gone => closing(StatusCode::BAD_REQUEST.into_response()),
    }
}

/// A request body that did not arrive within the server's body timeout (see
/// `ConnectionLimits::body_timeout`): the error the connection layer gives the body's reader.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// `response`, asking to close the connection: the rest of the body may not have been read,
/// so this connection cannot carry another request.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
