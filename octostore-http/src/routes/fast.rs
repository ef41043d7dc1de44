//! The busiest routes, matched by hand ahead of the per-tag filters: one look at the method
//! and the path picks the handler, instead of trying each route's path filters in turn
//! (every miss splits the path again and the named routes copy the name first).
//!
//! Only paths in their plain form are taken here: `/{tag}/{name}` or `/{tag}/{name}/{action}`,
//! one slash between non-empty segments, with the method the route answers. The per-tag
//! filters match such a request to the same handler, so the answer is the same; anything
//! else (another method, an empty segment, a trailing slash...) is left to them untouched.
//! Once a request is taken here it is answered here, its body errors included (413, 408), as
//! the per-tag filters would have: its body is then read (as far as its token earns), and
//! cannot be read again.

use bytes::Bytes;
use warp::http::Method;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{bearer, bearer_and_read_body, config, flags, limits, locks, query, with_app};
use crate::app::App;

/// A route that reads a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WithBody {
    LockAcquire,
    LockRelease,
    LockRenew,
    LimitCheck,
    FlagSet,
    ConfigPut,
}

/// A route that reads the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WithQuery {
    FlagEvaluate,
    ConfigGet,
}

/// The busiest routes, or a not-found rejection (which leaves the request to the per-tag
/// filters, as if this were not there).
pub fn routes(app: &App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_body = matched(with_body)
        .and(with_app(app))
        .and(bearer_and_read_body(app))
        .then(
            |(route, name): (WithBody, String),
             app: App,
             token: Option<String>,
             body: Result<Bytes, Rejection>| async move {
                let body = match body {
                    Ok(body) => body,
                    Err(rejection) => {
                        let Ok(response) = crate::error::recover(rejection).await;
                        return response;
                    }
                };
                match route {
                    WithBody::LockAcquire => locks::acquire(name, app, token, body).await,
                    WithBody::LockRelease => locks::release(name, app, token, body).await,
                    WithBody::LockRenew => locks::renew(name, app, token, body).await,
                    WithBody::LimitCheck => limits::check(name, app, token, body).await,
                    WithBody::FlagSet => flags::set(name, app, token, body).await,
                    WithBody::ConfigPut => config::put(name, app, token, body).await,
                }
            },
        );
    let with_query = matched(with_query)
        .and(with_app(app))
        .and(bearer())
        .and(query())
        .then(
            |(route, name): (WithQuery, String),
             app: App,
             token: Option<String>,
             query: Vec<(String, String)>| async move {
                match route {
                    WithQuery::FlagEvaluate => flags::evaluate(name, app, token, query).await,
                    WithQuery::ConfigGet => config::get(name, app, token, query).await,
                }
            },
        );
    with_body.or(with_query).unify()
}

/// The route `classify` finds for the method and path, with the name in the path (as sent,
/// percent-encoded), or not found.
fn matched<R: Send + 'static>(
    classify: fn(&Method, &str, Option<&str>) -> Option<R>,
) -> impl Filter<Extract = ((R, String),), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and_then(move |method: Method, path: FullPath| {
            let found = plain_segments(path.as_str()).and_then(|(tag, name, action)| {
                classify(&method, tag, action).map(|route| (route, name.to_owned()))
            });
            std::future::ready(found.ok_or_else(warp::reject::not_found))
        })
}

/// `/{tag}/{name}` or `/{tag}/{name}/{action}` with no segment empty, as its parts. (Split
/// by hand: `split_once` costs more than the rest of the match.)
fn plain_segments(path: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = path.strip_prefix('/')?;
    let mut ends = [rest.len(); 3];
    let mut count = 0;
    for (i, byte) in rest.bytes().enumerate() {
        if byte == b'/' {
            *ends.get_mut(count)? = i;
            count += 1;
        }
    }
    let tag = &rest[..ends[0]];
    let name = rest.get(ends[0] + 1..ends[1])?;
    let action = rest.get(ends[1] + 1..);
    let plain = |segment: &str| !segment.is_empty();
    (count <= 2 && plain(tag) && plain(name) && action.is_none_or(plain))
        .then_some((tag, name, action))
}

fn with_body(method: &Method, tag: &str, action: Option<&str>) -> Option<WithBody> {
    Some(match (tag, action) {
        ("locks", Some("acquire")) if method == Method::POST => WithBody::LockAcquire,
        ("locks", Some("release")) if method == Method::POST => WithBody::LockRelease,
        ("locks", Some("renew")) if method == Method::POST => WithBody::LockRenew,
        ("limits", Some("check")) if method == Method::POST => WithBody::LimitCheck,
        ("flags", None) if method == Method::PUT => WithBody::FlagSet,
        ("config", None) if method == Method::PUT => WithBody::ConfigPut,
        _ => return None,
    })
}

fn with_query(method: &Method, tag: &str, action: Option<&str>) -> Option<WithQuery> {
    Some(match (tag, action) {
        ("flags", None) if method == Method::GET => WithQuery::FlagEvaluate,
        ("config", None) if method == Method::GET => WithQuery::ConfigGet,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use octostore_core::{Login, ManualClock, Store};
    use warp::filters::BoxedFilter;

    use super::*;
    use crate::ServerOptions;

    /// An app on a fresh memory store at the manual clock's instant, and a token of it.
    fn app() -> (App, String) {
        let store = Store::builder()
            .clock(Arc::new(ManualClock::default()))
            .build();
        let user = store.local_user(&Login::parse("alice").unwrap()).unwrap();
        let token = store.issue_token(user.id).unwrap().expose().to_owned();
        (App::new(store, ServerOptions::default()).unwrap(), token)
    }

    /// Status, headers and body of each answer to `script`'s requests, lease ids masked (they
    /// are random); a lease id granted is used by the requests after it.
    async fn answers(
        filter: BoxedFilter<(Response,)>,
        token: &str,
        body_limit: u64,
    ) -> Vec<String> {
        let mut lease = String::new();
        let mut out = Vec::new();
        for (method, path, auth, body) in script(body_limit) {
            let body = body.replace("LEASE", &lease);
            let mut request = warp::test::request().method(method).path(&path);
            if auth {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = request.body(body).reply(&filter).await;
            let text = String::from_utf8_lossy(response.body()).into_owned();
            if let Some(start) = text.find("\"lease_id\":\"") {
                let start = start + "\"lease_id\":\"".len();
                lease = text[start..start + 36].to_owned();
            }
            let mut headers: Vec<_> = response
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect();
            headers.sort();
            out.push(format!(
                "{method} {path}: {} {headers:?} {}",
                response.status(),
                text.replace(&lease, "<lease>")
            ));
        }
        out
    }

    /// Requests: (method, path, with the token, body).
    fn script(body_limit: u64) -> Vec<(&'static str, String, bool, String)> {
        let acquire = r#"{"ttl_seconds":30,"client_id":"c1"}"#;
        let release = r#"{"lease_id":"LEASE"}"#;
        let too_large = " ".repeat(body_limit as usize + 1);
        let requests = vec![
            ("POST", "/locks/a/acquire", true, acquire),
            (
                "POST",
                "/locks/a/acquire",
                true,
                r#"{"ttl_seconds":30,"client_id":"c2"}"#,
            ),
            (
                "POST",
                "/locks/a/renew",
                true,
                r#"{"lease_id":"LEASE","ttl_seconds":60}"#,
            ),
            ("POST", "/locks/a/release", true, release),
            ("POST", "/locks/a/release", true, release),
            (
                "POST",
                "/locks/a%20b/acquire",
                true,
                r#"{"ttl_seconds":30}"#,
            ),
            ("POST", "/locks/a%zz/acquire", true, acquire),
            ("POST", "/locks/a/acquire", false, acquire),
            ("POST", "/locks/a/acquire", true, "not json"),
            ("POST", "/locks/a/acquire", true, r#"{"ttl_seconds":"30"}"#),
            ("POST", "/locks/a/acquire", true, "TOO_LARGE"),
            ("POST", "/locks/a/release", false, "TOO_LARGE"),
            ("GET", "/locks/a/acquire", true, ""),
            ("DELETE", "/locks/a/release", true, ""),
            ("POST", "/locks//acquire", true, acquire),
            ("POST", "/locks/a/acquire/", true, acquire),
            ("POST", "//locks/a/acquire", true, acquire),
            ("POST", "/locks/a/acquire?x=1", true, acquire),
            (
                "POST",
                "/limits/l/check",
                true,
                r#"{"max_requests":1,"window_seconds":60}"#,
            ),
            (
                "POST",
                "/limits/l/check",
                true,
                r#"{"max_requests":1,"window_seconds":60}"#,
            ),
            ("POST", "/limits/l/check", true, r#"{"max_requests":0}"#),
            (
                "PUT",
                "/flags/f",
                true,
                r#"{"enabled":true,"percentage":50}"#,
            ),
            ("PUT", "/flags/f", true, r#"{"enabled":"yes"}"#),
            ("GET", "/flags/f?subject=s1", true, ""),
            ("GET", "/flags/f?subject=s1&subject=s2", true, ""),
            ("GET", "/flags/f?subject=%zz", true, ""),
            ("GET", "/flags/f", true, ""),
            ("GET", "/flags/f", false, ""),
            ("GET", "/flags/nope?subject=s1", true, ""),
            ("HEAD", "/flags/f", true, ""),
            ("PATCH", "/flags/f", true, ""),
            (
                "PUT",
                "/config/k",
                true,
                r#"{"value":{"a":1},"description":"d"}"#,
            ),
            ("PUT", "/config/k", true, r#"{"value":[1,2]}"#),
            ("PUT", "/config/k", true, r#"{"description":"no value"}"#),
            ("PUT", "/config/k", true, "TOO_LARGE"),
            ("GET", "/config/k", true, ""),
            ("GET", "/config/k?version=1", true, ""),
            ("GET", "/config/k?version=x", true, ""),
            ("GET", "/config/k?version", true, ""),
            ("GET", "/config/k/", true, ""),
            ("GET", "/config/k/history", true, ""),
            ("GET", "/config/nope", true, ""),
        ];
        requests
            .into_iter()
            .map(|(method, path, auth, body)| {
                let body = if body == "TOO_LARGE" {
                    too_large.clone()
                } else {
                    body.to_owned()
                };
                (method, path.to_owned(), auth, body)
            })
            .collect()
    }

    #[tokio::test]
    async fn the_busiest_routes_answer_as_the_tag_filters_do() {
        let (fast, fast_token) = app();
        let (by_tag, by_tag_token) = app();
        let limit = fast.body_limit;
        let with_fast = super::super::all(&fast)
            .recover(crate::error::recover)
            .unify()
            .boxed();
        let without = super::super::by_tag(&by_tag)
            .recover(crate::error::recover)
            .unify()
            .boxed();
        let ours = answers(with_fast, &fast_token, limit).await;
        let theirs = answers(without, &by_tag_token, limit).await;
        assert_eq!(ours.len(), theirs.len());
        for (ours, theirs) in ours.iter().zip(&theirs) {
            assert_eq!(ours, theirs);
        }
        // The script reached the handlers, not only the errors.
        assert!(ours[0].contains(": 200 OK"), "{}", ours[0]);
        assert!(ours[3].contains(": 200 OK"), "{}", ours[3]);
        assert!(ours[10].contains(": 413 "), "{}", ours[10]);
        assert!(ours[12].contains(": 405 "), "{}", ours[12]);
    }

    #[test]
    fn only_plain_paths_are_taken() {
        assert_eq!(
            plain_segments("/locks/a/acquire"),
            Some(("locks", "a", Some("acquire")))
        );
        assert_eq!(plain_segments("/flags/f"), Some(("flags", "f", None)));
        assert_eq!(
            plain_segments("/locks/a%2Fb/acquire"),
            Some(("locks", "a%2Fb", Some("acquire")))
        );
        for path in [
            "",
            "/",
            "/locks",
            "/locks/",
            "//locks/a/acquire",
            "/locks//acquire",
            "/locks/a/acquire/",
            "/locks/a/acquire/x",
            "/flags/f/",
            "locks/a/acquire",
        ] {
            assert_eq!(plain_segments(path), None, "{path}");
        }
    }

    #[test]
    fn each_route_has_its_method() {
        assert_eq!(
            with_body(&Method::POST, "locks", Some("release")),
            Some(WithBody::LockRelease)
        );
        assert_eq!(with_body(&Method::GET, "locks", Some("release")), None);
        assert_eq!(with_body(&Method::POST, "locks", None), None);
        assert_eq!(
            with_body(&Method::PUT, "config", None),
            Some(WithBody::ConfigPut)
        );
        assert_eq!(with_body(&Method::PUT, "config", Some("history")), None);
        assert_eq!(
            with_query(&Method::GET, "flags", None),
            Some(WithQuery::FlagEvaluate)
        );
        assert_eq!(with_query(&Method::HEAD, "flags", None), None);
        assert_eq!(with_query(&Method::GET, "limits", None), None);
    }
}
