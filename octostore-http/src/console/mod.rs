//! The web console at `/ui`: a page of plain HTML, CSS and JavaScript modules, embedded in the
//! binary and served as they are. The page is a client of the JSON API like any other: it
//! sends the token it is given as `Authorization: Bearer`, so loading the page itself needs
//! no token. Every answer forbids inline script and style and any origin but this server's
//! ([`CONTENT_SECURITY_POLICY`]), and content sniffing.

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::http::HeaderValue;
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

/// Scripts, styles and requests from this server only; nothing inline; no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Where the console is served.
const PREFIX: &str = "/ui";

/// One embedded file of the console, served at `/ui/{path}`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console but the page itself.
const ASSETS: &[Asset] = &[
    Asset {
        path: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
    Asset {
        path: "js/main.js",
        content_type: JS,
        body: include_str!("assets/js/main.js"),
    },
    Asset {
        path: "js/api.js",
        content_type: JS,
        body: include_str!("assets/js/api.js"),
    },
    Asset {
        path: "js/dom.js",
        content_type: JS,
        body: include_str!("assets/js/dom.js"),
    },
    Asset {
        path: "js/locks.js",
        content_type: JS,
        body: include_str!("assets/js/locks.js"),
    },
    Asset {
        path: "js/flags.js",
        content_type: JS,
        body: include_str!("assets/js/flags.js"),
    },
    Asset {
        path: "js/config.js",
        content_type: JS,
        body: include_str!("assets/js/config.js"),
    },
    Asset {
        path: "js/diff.js",
        content_type: JS,
        body: include_str!("assets/js/diff.js"),
    },
    Asset {
        path: "js/limits.js",
        content_type: JS,
        body: include_str!("assets/js/limits.js"),
    },
];

/// The page, with the placeholder of whether GitHub sign-in is offered.
const INDEX: &str = include_str!("assets/index.html");

/// What the page's `octostore-github` meta element holds before it is served.
const GITHUB_PLACEHOLDER: &str = "{{github}}";

/// The size of the page and every asset together, in bytes.
pub fn embedded_bytes() -> usize {
    INDEX.len() + ASSETS.iter().map(|asset| asset.body.len()).sum::<usize>()
}

/// `GET /ui`, `/ui/` (the page) and `/ui/{asset}`, and `HEAD` of each (the headers alone);
/// any other request is rejected, for the API's routes to answer. `github`: whether the
/// page offers GitHub sign-in.
pub fn routes(github: bool) -> BoxedFilter<(Response,)> {
    let index = Bytes::from(INDEX.replace(GITHUB_PLACEHOLDER, if github { "on" } else { "off" }));
    (warp::get().or(warp::head()).unify())
        .and(warp::path::full())
        .and_then(move |path: FullPath| {
            let index = index.clone();
            async move {
                let file = match path.as_str().strip_prefix(PREFIX) {
                    Some("" | "/") => Some(("text/html; charset=utf-8", index)),
                    Some(rest) => rest.strip_prefix('/').and_then(|name| {
                        ASSETS.iter().find(|asset| asset.path == name).map(|asset| {
                            (
                                asset.content_type,
                                Bytes::from_static(asset.body.as_bytes()),
                            )
                        })
                    }),
                    None => None,
                };
                match file {
                    Some((content_type, body)) => Ok(served(content_type, body)),
                    None => Err(warp::reject::not_found()),
                }
            }
        })
        .boxed()
}

/// A 200 of `body` with the console's headers.
fn served(content_type: &'static str, body: Bytes) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CSP, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Not kept by the browser: a new binary's files are never mixed with an old one's.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
