//! `/health`, `/ready`, `/metrics` and `/openapi.yaml`: public, no token needed. `/health`
//! answers while the process serves; `/ready` only while the store answers a read too.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::dto::Readiness;
use crate::error::{error_response, not_ready};
use crate::reply::json;
use crate::request::Request;

/// The contract this server implements: the seed API plus documented extensions.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub(super) async fn health(_: Request) -> Response {
    text("OK", "text/plain; charset=utf-8")
}

pub(super) async fn ready(Request { app, .. }: Request) -> Response {
    match app.ready().await {
        Ok(()) => json(
            StatusCode::OK,
            &Readiness {
                status: "ready".to_owned(),
            },
        ),
        Err(why) => not_ready(why),
    }
}

pub(super) async fn openapi(_: Request) -> Response {
    text(OPENAPI_YAML, "application/yaml")
}

fn text(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(super) async fn metrics(Request { app, .. }: Request) -> Response {
    match app.live_locks().await {
        Ok(live) => {
            let mut response = app.metrics.render(live).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(e) => error_response(&e),
    }
}
