//! `/limits`: check, status, reset, list.

use octostore_core::{Api, Decision, Session};
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use crate::dto::{LimitDecision, LimitInfo, LimitList, LimitReset};
use crate::metrics::Outcome;
use crate::operation::requests::{CheckLimit, Endpoint, GetLimit, ListLimits, ResetLimit};
use crate::reply::answer;
use crate::request::Request;

/// The decision as `E`'s JSON, with `Retry-After` when denied.
fn decision<E: Endpoint<Answer = LimitDecision>>(d: &Decision) -> Response {
    let mut response = answer::<E>(&LimitDecision::from(d));
    if let Some(seconds) = d.retry_after_seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

pub(super) async fn check(request: Request) -> Response {
    // Decoded here, off the store's thread; an error is answered after authentication.
    let check = request.decode::<CheckLimit>();
    let op = move |session: &Session| {
        let CheckLimit { name, policy } = check?;
        session.check(&name, policy)
    };
    let metrics = &request.app.metrics;
    let reply = |d: Decision| {
        metrics.decided(Outcome::limit(d.allowed));
        decision::<CheckLimit>(&d)
    };
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn status(request: Request) -> Response {
    let status = request.decode::<GetLimit>();
    let op = move |session: &Session| {
        let GetLimit(name) = status?;
        Ok(decision::<GetLimit>(&session.limit_status(&name)?))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn reset(request: Request) -> Response {
    let reset = request.decode::<ResetLimit>();
    let op = move |session: &Session| {
        let ResetLimit(name) = reset?;
        session.reset_limit(&name)?;
        Ok(answer::<ResetLimit>(&LimitReset { reset: true }))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let op = |session: &Session| {
        let limits = session.limits()?;
        Ok(answer::<ListLimits>(&LimitList {
            limits: limits.iter().map(LimitInfo::from).collect(),
        }))
    };
    request.app.as_user(request.token, op).await
}
