//! `/ofrep/v1/evaluate/flags`: the OpenFeature Remote Evaluation Protocol, so that any
//! OpenFeature SDK's OFREP provider evaluates the caller's flags. Its failures are OFREP's:
//! `{key, errorCode, errorDetails}` with 400 (`PARSE_ERROR`, `INVALID_CONTEXT`,
//! `TARGETING_KEY_MISSING`) or 404 (`FLAG_NOT_FOUND`), 401 for a token refused, 429 with
//! `Retry-After` when the store is busy (OFREP's providers pause until then), and 500 with
//! `{errorDetails}` when the store failed. The bulk answer carries an `ETag` of its content.

use std::hash::{Hash, Hasher};

use octostore_core::{Api, Error, Session};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::app::not_finished;
use crate::dto::{OfrepBulk, OfrepErrorCode, OfrepEvaluation, OfrepFailure, OfrepFlag};
use crate::error::unauthorized;
use crate::operation::requests::{Endpoint, OfrepEvaluateFlag, OfrepEvaluateFlags};
use crate::reply::{answer, json, json_bytes};
use crate::request::Request;

/// How long a provider should pause after a busy store, in seconds.
const RETRY_BUSY_AFTER_SECONDS: u64 = 1;

pub(super) async fn evaluate(request: Request) -> Response {
    let key = request.name.clone();
    let decoded = request.decode::<OfrepEvaluateFlag>();
    let op = move |session: &Session| {
        let OfrepEvaluateFlag { key, context } = decoded?;
        let evaluation = session.evaluate_flag_in(&key, &context)?;
        Ok(OfrepEvaluation::new(key.as_str(), &evaluation))
    };
    match request.app.as_user_outcome(request.token, op).await {
        Some(Ok(evaluation)) => answer::<OfrepEvaluateFlag>(&evaluation),
        Some(Err(e)) => failure(&key, &e),
        None => failure(&key, &not_finished()),
    }
}

pub(super) async fn evaluate_all(request: Request) -> Response {
    let decoded = request.decode::<OfrepEvaluateFlags>();
    let op = move |session: &Session| {
        let OfrepEvaluateFlags {
            context,
            if_none_match,
        } = decoded?;
        let flags = session.evaluate_flags_in(&context)?;
        let flags = flags
            .into_iter()
            .map(|(name, answer)| match answer {
                Ok(evaluation) => {
                    OfrepFlag::Evaluation(OfrepEvaluation::new(name.as_str(), &evaluation))
                }
                Err(e) => OfrepFlag::Failure(failure_of(name.as_str(), &e).1),
            })
            .collect();
        Ok((OfrepBulk { flags }, if_none_match))
    };
    match request.app.as_user_outcome(request.token, op).await {
        Some(Ok((bulk, if_none_match))) => {
            // Serialized once: its bytes are both the answer and what the ETag is made of.
            let body = serde_json::to_vec::<<OfrepEvaluateFlags as Endpoint>::Answer>(&bulk)
                .expect("an answer serializes");
            let etag = etag_of(&body);
            let mut response = if if_none_match.as_deref() == Some(etag.as_str()) {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                json_bytes(StatusCode::OK, body)
            };
            let value = HeaderValue::from_str(&etag).expect("hex digits and quotes");
            response.headers_mut().insert(header::ETAG, value);
            response
        }
        Some(Err(e)) => failure("", &e),
        None => failure("", &not_finished()),
    }
}

/// A strong `ETag` of an answer's bytes.
fn etag_of(body: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// OFREP's status and failure for an error of flag `key`.
fn failure_of(key: &str, err: &Error) -> (StatusCode, OfrepFailure) {
    let (status, code) = match err {
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, OfrepErrorCode::FlagNotFound),
        Error::SubjectRequired { .. } => {
            (StatusCode::BAD_REQUEST, OfrepErrorCode::TargetingKeyMissing)
        }
        // A key that cannot name a flag names none.
        Error::Invalid {
            field: "key" | "name",
            ..
        } => (StatusCode::NOT_FOUND, OfrepErrorCode::FlagNotFound),
        Error::Invalid {
            field: "context", ..
        } => (StatusCode::BAD_REQUEST, OfrepErrorCode::InvalidContext),
        Error::Invalid { .. } | Error::TooLarge { .. } => {
            (StatusCode::BAD_REQUEST, OfrepErrorCode::ParseError)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, OfrepErrorCode::General),
    };
    let failure = OfrepFailure {
        key: key.to_owned(),
        error_code: code,
        error_details: err.to_string(),
    };
    (status, failure)
}

/// The answer for an error of flag `key` (empty for the bulk evaluation).
fn failure(key: &str, err: &Error) -> Response {
    match err {
        Error::Unauthorized => unauthorized(),
        Error::Unavailable(reason) => {
            tracing::warn!(%reason, "OFREP evaluation not run");
            let body = serde_json::json!({ "errorDetails": err.to_string() });
            let mut response = json(StatusCode::TOO_MANY_REQUESTS, &body);
            let retry = HeaderValue::from(RETRY_BUSY_AFTER_SECONDS);
            response.headers_mut().insert(header::RETRY_AFTER, retry);
            response
        }
        _ => match failure_of(key, err) {
            (StatusCode::INTERNAL_SERVER_ERROR, _) => {
                tracing::error!(error = %octostore_core::values::error::Chain(err), "OFREP evaluation failed");
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &serde_json::json!({ "errorDetails": "storage failure" }),
                )
            }
            (status, failure) => json(status, &failure),
        },
    }
}
