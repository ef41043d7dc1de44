//! `/limits`: check, status, reset, list.

use bytes::Bytes;
use octostore_core::{Api, LimitName, RatePolicy, Result};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::{bearer, bearer_and_body, ok, reply, with_app};
use crate::app::App;
use crate::dto::{LimitDecision, LimitInfo, LimitList, LimitReset};
use crate::request::{path_name, JsonBody};

pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let check = warp::path!("limits" / String / "check")
        .and(warp::post())
        .and(with_app(app))
        .and(bearer_and_body(app))
        .then(check);
    let status = warp::path!("limits" / String)
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .then(status);
    let reset = warp::path!("limits" / String)
        .and(warp::delete())
        .and(with_app(app))
        .and(bearer())
        .then(reset);
    let list = warp::path!("limits")
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .then(list);
    check
        .or(status)
        .unify()
        .or(reset)
        .unify()
        .or(list)
        .unify()
        .boxed()
}

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

pub(super) async fn check(raw: String, app: App, token: Option<String>, body: Bytes) -> Response {
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

async fn status(raw: String, app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        Ok(decision(&session.limit_status(&limit_name(&raw)?)?))
    })
    .await
}

async fn reset(raw: String, app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        session.reset_limit(&limit_name(&raw)?)?;
        ok(&LimitReset { reset: true })
    })
    .await
}

async fn list(app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        let limits = session.limits()?;
        ok(&LimitList {
            limits: limits.iter().map(LimitInfo::from).collect(),
        })
    })
    .await
}
