//! The routes, one module per tag of the contract, and the filters they share. Every path
//! answers the methods it has; any other method gets 405 with `Allow`.

mod auth;
mod config;
mod flags;
mod limits;
mod locks;
mod system;

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use crate::app::App;
use crate::error::{json, method_not_allowed};

/// Every route of the API.
pub fn all(app: &App) -> BoxedFilter<(Response,)> {
    system::routes(app)
        .or(auth::routes(app))
        .unify()
        .or(locks::routes(app))
        .unify()
        .or(limits::routes(app))
        .unify()
        .or(flags::routes(app))
        .unify()
        .or(config::routes(app))
        .unify()
        .or(other_method())
        .unify()
        .boxed()
}

/// Each path template of the API and the methods it answers, for metrics labels and `Allow`.
pub fn template_of(path: &str) -> Option<(&'static str, &'static str)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["health"] => ("/health", "GET"),
        ["metrics"] => ("/metrics", "GET"),
        ["openapi.yaml"] => ("/openapi.yaml", "GET"),
        ["auth", "github"] => ("/auth/github", "GET"),
        ["auth", "github", "callback"] => ("/auth/github/callback", "GET"),
        ["auth", "token", "rotate"] => ("/auth/token/rotate", "POST"),
        ["locks"] => ("/locks", "GET"),
        ["locks", _] => ("/locks/{name}", "GET"),
        ["locks", _, "acquire"] => ("/locks/{name}/acquire", "POST"),
        ["locks", _, "release"] => ("/locks/{name}/release", "POST"),
        ["locks", _, "renew"] => ("/locks/{name}/renew", "POST"),
        ["limits"] => ("/limits", "GET"),
        ["limits", _] => ("/limits/{name}", "GET, DELETE"),
        ["limits", _, "check"] => ("/limits/{name}/check", "POST"),
        ["flags"] => ("/flags", "GET"),
        ["flags", _] => ("/flags/{name}", "PUT, GET, DELETE"),
        ["config"] => ("/config", "GET"),
        ["config", _] => ("/config/{key}", "PUT, GET, DELETE"),
        ["config", _, "history"] => ("/config/{key}/history", "GET"),
        _ => return None,
    })
}

/// 405 with `Allow` for a known path asked with a method it does not answer. A request with
/// an allowed method that reaches here was rejected by its route for another reason, which
/// this leaves standing.
fn other_method() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and_then(|method: Method, path: FullPath| async move {
            match template_of(path.as_str()) {
                Some((_, allow)) if !allow.split(", ").any(|m| m == method.as_str()) => {
                    Ok(method_not_allowed(allow))
                }
                _ => Err(warp::reject::not_found()),
            }
        })
}

/// The app, for handlers.
fn with_app(app: &App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    let app = app.clone();
    warp::any().map(move || app.clone())
}

/// The bearer token of the `Authorization` header, if it has one.
fn bearer() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .map(|header: Option<String>| {
            let header = header?;
            let (scheme, token) = header.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

/// The query string as pairs; a malformed one is a 422 by [`crate::error::recover`].
fn query() -> impl Filter<Extract = (Vec<(String, String)>,), Error = warp::Rejection> + Clone {
    warp::query::<Vec<(String, String)>>()
}

/// A 200 JSON answer.
fn ok<T: serde::Serialize>(body: &T) -> octostore_core::Result<Response> {
    Ok(json(StatusCode::OK, body))
}
