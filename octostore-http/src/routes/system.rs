//! `/health`, `/metrics` and `/openapi.yaml`: public, no token needed.

use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::with_app;
use crate::app::App;
use crate::error::error_response;

/// The contract this server implements: the seed API plus documented extensions.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let health = warp::path!("health")
        .and(warp::get())
        .map(|| text("OK", "text/plain; charset=utf-8"));
    let openapi = warp::path!("openapi.yaml")
        .and(warp::get())
        .map(|| text(OPENAPI_YAML, "application/yaml"));
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app))
        .then(metrics);
    health.or(openapi).unify().or(metrics).unify().boxed()
}

fn text(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn metrics(app: App) -> Response {
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
