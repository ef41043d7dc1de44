//! `/limits`: check, status, reset, list.

use octostore_core::{Api, LimitName, RatePolicy, Result};
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use super::{ok, reply, Request};
use crate::dto::{LimitDecision, LimitInfo, LimitList, LimitReset};
use crate::request::{path_name, JsonBody};

fn limit_name(raw: &str) -> Result<LimitName> {
    LimitName::parse(&path_name(raw, "name")?)
}

/// The decision as JSON, with `Retry-After` when denied.
fn decision(d: &octostore_core::Decision) -> Response {
    let mut response = reply(&LimitDecision::from(d));
    if let Some(seconds) = d.retry_after_seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

pub(super) async fn check(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    // Parsed here, off the store's thread; an error is answered after authentication.
    let request = (|| {
        let name = limit_name(&raw)?;
        let body = JsonBody::parse(&body)?;
        let policy = RatePolicy::new(body.int("max_requests")?, body.int("window_seconds")?)?;
        Ok((name, policy))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, policy) = request?;
            session.check(&name, policy)
        },
        |d| decision(&d),
    )
    .await
}

pub(super) async fn status(
    Request {
        name: raw,
        app,
        token,
        ..
    }: Request,
) -> Response {
    app.as_user(token, move |session| {
        Ok(decision(&session.limit_status(&limit_name(&raw)?)?))
    })
    .await
}

pub(super) async fn reset(
    Request {
        name: raw,
        app,
        token,
        ..
    }: Request,
) -> Response {
    app.as_user(token, move |session| {
        session.reset_limit(&limit_name(&raw)?)?;
        ok(&LimitReset { reset: true })
    })
    .await
}

pub(super) async fn list(Request { app, token, .. }: Request) -> Response {
    app.as_user(token, move |session| {
        let limits = session.limits()?;
        ok(&LimitList {
            limits: limits.iter().map(LimitInfo::from).collect(),
        })
    })
    .await
}
