//! OctoStore over HTTP: the API of `openapi.yaml` on warp, GitHub sign-in, and [`Client`],
//! the Rust client of a remote server, which implements the same `octostore_core::Api` as an
//! embedded `Session`.
//!
//! # Features
//! - `server` (default; implies `client`): [`App`], [`routes`], [`serve`] and [`serve_with`], on
//!   warp and hyper's server, with GitHub sign-in (oauth2) and Prometheus metrics: every
//!   module below but `client/` and `dto.rs`.
//! - `client`: [`Client`] (`client/`, on reqwest's blocking client with rustls) and the JSON
//!   shapes ([`dto`]), nothing else: no warp, no hyper server, no OAuth, no metrics. A
//!   program that only talks to a server depends on
//!   `octostore-http = { version = "0.1", default-features = false, features = ["client"] }`.
//! - Neither: [`dto`] alone.
//!
//! # Layout
//! - [`serve`] runs the server until its shutdown future completes; [`routes`] is the whole
//!   API as one warp filter (for `warp::test`).
//! - `server.rs`: the connection layer under [`serve_with`]: the cap on connections
//!   ([`ConnectionLimits`]), the timeouts for heads, bodies and idle keep-alive connections.
//! - `app.rs`: [`App`], the shared state, and the one path from a request to the store:
//!   authenticate the bearer token, then run the operation as that user: inline (memory),
//!   on the committer thread (SQLite: group commit) or on the blocking pool (PostgreSQL).
//! - [`operation`]: every operation of the API, written once (method, path template, access,
//!   body), for the dispatcher, the client, the metrics and the tests.
//! - `routes/`: the dispatcher (`mod.rs`: finds each request's operation, answers 404 and 405
//!   from the same table) and one module of handlers per tag of the contract (`locks`,
//!   `limits`, `flags`, `config`, `auth`, `system`).
//! - `request.rs` reads bodies (capped) and path names; `dto.rs` is the JSON of every answer;
//!   `error.rs` maps every error to its code, status and JSON body, in one place.
//! - `metrics.rs`: Prometheus counters; `oauth.rs`: GitHub sign-in.
//! - [`console`]: the web console at `/ui`, its page, styles and scripts embedded.
//! - [`Client`] (`client/`): a blocking client of a remote server that implements `Api`.
//!
//! Architecture invariant: only this crate knows HTTP and JSON; handlers parse, call one
//! `octostore_core::Api` method, and serialize.

#![deny(missing_docs)]
// Without `server` (or `client`) the docs above name items that are not compiled: plain text
// there, links in the default build.
#![cfg_attr(not(feature = "server"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "server")]
mod app;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod console;
pub mod dto;
#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
mod large_reads;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod oauth;
#[cfg(feature = "openfeature")]
pub mod openfeature;
#[cfg(feature = "client")]
pub mod operation;
#[cfg(feature = "server")]
mod reply;
#[cfg(feature = "server")]
mod request;
#[cfg(feature = "server")]
mod routes;
#[cfg(feature = "server")]
mod server;

#[cfg(feature = "server")]
use std::future::Future;
#[cfg(feature = "server")]
use std::time::Instant;

#[cfg(feature = "server")]
use tokio::net::TcpListener;
#[cfg(feature = "server")]
use warp::filters::BoxedFilter;
#[cfg(feature = "server")]
use warp::reply::Response;
#[cfg(feature = "server")]
use warp::Filter;

#[cfg(feature = "server")]
pub use app::{App, QueueLimits, ServerOptions};
#[cfg(feature = "client")]
pub use client::Client;
#[cfg(feature = "server")]
pub use oauth::GithubSettings;
#[cfg(feature = "server")]
pub use server::ConnectionLimits;

/// The tracing target of the access log's lines (`ServerOptions::access_log`).
#[cfg(feature = "server")]
pub const ACCESS_LOG_TARGET: &str = "octostore::access";

/// The whole API as one filter, every request answered (as JSON where it is an error),
/// counted in the metrics and traced; and the web console at `/ui` if the app serves it.
#[cfg(feature = "server")]
pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    if app.console {
        console::routes(app.oauth.is_some())
            .or(routes::all(app))
            .unify()
            .boxed()
    } else {
        routes::all(app)
    }
}

/// Serves the API on `listener` with the default [`ConnectionLimits`] until `shutdown`
/// completes, then finishes the requests in flight and returns.
#[cfg(feature = "server")]
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, app, ConnectionLimits::default(), shutdown).await;
}

/// [`serve`] within `limits` (usually [`ServerOptions::connections`]).
#[cfg(feature = "server")]
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let started = Instant::now();
    let addr = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => format!("a socket whose address is unknown ({e})"),
    };
    let ConnectionLimits {
        max_connections,
        header_timeout,
        body_timeout,
        idle_timeout,
    } = limits;
    tracing::info!(
        "serving on {addr}: at most {max_connections} connections; timeouts: headers \
         {header_timeout:?}, bodies {body_timeout:?}, idle {idle_timeout:?}"
    );
    let routes = routes(&app);
    let shutdown = async move {
        shutdown.await;
        // Waits for changes and streams of them answer and end, so the requests in flight
        // finish.
        app.close();
    };
    server::run(listener, routes, limits, shutdown).await;
    tracing::info!(uptime = ?started.elapsed(), "stopped");
}
