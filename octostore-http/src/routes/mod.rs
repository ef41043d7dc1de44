//! The routes, one module per tag of the contract, and the filters they share. Every path
//! answers the methods it has; any other method gets 405 with `Allow`.

mod auth;
mod config;
mod fast;
mod flags;
mod limits;
mod locks;
mod system;

use std::convert::Infallible;

use bytes::Bytes;
use octostore_core::Error;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::app::App;
use crate::error::{json, method_not_allowed};
use crate::request::{read_body, refuse};

/// Every route of the API.
pub fn all(app: &App) -> BoxedFilter<(Response,)> {
    fast::routes(app).or(by_tag(app)).unify().boxed()
}

/// Every route, tried tag by tag (the busiest are matched first by [`fast`], to the same
/// handlers).
fn by_tag(app: &App) -> BoxedFilter<(Response,)> {
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

/// Each path template of the API and the methods it answers, for metrics labels and `Allow`,
/// in the order of [`template_index`].
const TEMPLATES: [(&str, &str); 19] = [
    ("/health", "GET"),
    ("/metrics", "GET"),
    ("/openapi.yaml", "GET"),
    ("/auth/github", "GET"),
    ("/auth/github/callback", "GET"),
    ("/auth/token/rotate", "POST"),
    ("/locks", "GET"),
    ("/locks/{name}", "GET"),
    ("/locks/{name}/acquire", "POST"),
    ("/locks/{name}/release", "POST"),
    ("/locks/{name}/renew", "POST"),
    ("/limits", "GET"),
    ("/limits/{name}", "GET, DELETE"),
    ("/limits/{name}/check", "POST"),
    ("/flags", "GET"),
    ("/flags/{name}", "PUT, GET, DELETE"),
    ("/config", "GET"),
    ("/config/{key}", "PUT, GET, DELETE"),
    ("/config/{key}/history", "GET"),
];

/// How many path templates the API has: [`template_index`] answers below this.
pub const TEMPLATE_COUNT: usize = TEMPLATES.len();

/// The index in [`TEMPLATES`] of the path template that `path` matches (any segment, the
/// empty one included, matches a name), without allocating: it runs for every request.
pub fn template_index(path: &str) -> Option<usize> {
    // The segments, split by hand: `str::split` costs more than the match below.
    let path = path.trim_start_matches('/');
    let mut segments = [None; 3];
    let (mut count, mut start) = (0, 0);
    for (i, byte) in path.bytes().enumerate() {
        if byte == b'/' {
            *segments.get_mut(count)? = Some(&path[start..i]);
            count += 1;
            start = i + 1;
        }
    }
    *segments.get_mut(count)? = Some(&path[start..]);
    let [Some(first), second, third] = segments else {
        unreachable!("the first segment is always set")
    };
    Some(match (first, second, third) {
        ("health", None, None) => 0,
        ("metrics", None, None) => 1,
        ("openapi.yaml", None, None) => 2,
        ("auth", Some("github"), None) => 3,
        ("auth", Some("github"), Some("callback")) => 4,
        ("auth", Some("token"), Some("rotate")) => 5,
        ("locks", None, None) => 6,
        ("locks", Some(_), None) => 7,
        ("locks", Some(_), Some("acquire")) => 8,
        ("locks", Some(_), Some("release")) => 9,
        ("locks", Some(_), Some("renew")) => 10,
        ("limits", None, None) => 11,
        ("limits", Some(_), None) => 12,
        ("limits", Some(_), Some("check")) => 13,
        ("flags", None, None) => 14,
        ("flags", Some(_), None) => 15,
        ("config", None, None) => 16,
        ("config", Some(_), None) => 17,
        ("config", Some(_), Some("history")) => 18,
        _ => return None,
    })
}

/// The path template `path` matches and the methods it answers, for metrics labels and
/// `Allow`.
pub fn template_of(path: &str) -> Option<(&'static str, &'static str)> {
    template_index(path).map(|i| TEMPLATES[i])
}

/// The template of index `index` (from [`template_index`]).
pub fn template(index: usize) -> &'static str {
    TEMPLATES[index].0
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

/// The bearer token, and the body read only as far as the token earns (see
/// [`read_body`]): with no token, not at all. The body's refusal (401, 413, 408) is a value,
/// for a route that answers it itself (the body is gone: no other route can read it).
fn bearer_and_read_body(
    app: &App,
) -> impl Filter<Extract = (Option<String>, Result<Bytes, Rejection>), Error = Rejection> + Clone {
    with_app(app)
        .and(bearer())
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .then(
            |app: App, token: Option<String>, length: Option<u64>, stream| async move {
                let body = match token.clone() {
                    None => Err(refuse(length, stream, Error::Unauthorized)),
                    Some(token) => {
                        let limit = app.body_limit;
                        read_body(length, stream, limit, || app.authenticate(token)).await
                    }
                };
                (token, body)
            },
        )
        .untuple_one()
}

/// The bearer token and the body, as [`bearer_and_read_body`] reads them, the body's refusal
/// a rejection.
fn bearer_and_body(
    app: &App,
) -> impl Filter<Extract = (Option<String>, Bytes), Error = Rejection> + Clone {
    bearer_and_read_body(app)
        .and_then(
            |token, body: Result<Bytes, Rejection>| async move { body.map(|body| (token, body)) },
        )
        .untuple_one()
}

/// The query string as pairs; a malformed one is a 422 by [`crate::error::recover`].
fn query() -> impl Filter<Extract = (Vec<(String, String)>,), Error = warp::Rejection> + Clone {
    warp::query::<Vec<(String, String)>>()
}

/// A 200 JSON answer.
fn ok<T: serde::Serialize>(body: &T) -> octostore_core::Result<Response> {
    Ok(reply(body))
}

/// A 200 JSON answer, for [`App::as_user_then`].
fn reply<T: serde::Serialize>(body: &T) -> Response {
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates() {
        let cases = [
            ("/health", Some("/health")),
            ("//health", Some("/health")),
            ("/health/", None),
            ("", None),
            ("/", None),
            ("/locks", Some("/locks")),
            ("/locks/", Some("/locks/{name}")),
            ("/locks/a", Some("/locks/{name}")),
            ("/locks//acquire", Some("/locks/{name}/acquire")),
            ("/locks/a/acquire", Some("/locks/{name}/acquire")),
            ("/locks/a/acquire/", None),
            ("/locks/a/b", None),
            ("/auth/github", Some("/auth/github")),
            ("/auth/github/callback", Some("/auth/github/callback")),
            ("/auth/x/callback", None),
            ("/config/k/history", Some("/config/{key}/history")),
            ("/config/k/history/x", None),
            ("/nope/x/y/z", None),
        ];
        for (path, want) in cases {
            assert_eq!(template_of(path).map(|(t, _)| t), want, "{path}");
        }
        assert_eq!(
            template_of("/flags/f"),
            Some(("/flags/{name}", "PUT, GET, DELETE"))
        );
        // Each template is the one its own paths match.
        for (template, _) in TEMPLATES {
            let path = template.replace("{name}", "n").replace("{key}", "k");
            assert_eq!(template_of(&path).map(|(t, _)| t), Some(template));
        }
    }
}
