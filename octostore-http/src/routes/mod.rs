//! The dispatcher: one warp filter that finds each request's [`Operation`] in the table and
//! hands it to its handler, one module per tag of the contract. A path of the table asked with
//! a method it does not answer gets 405 with `Allow`; any other path 404.

mod auth;
mod config;
mod event_stream;
mod events;
mod flags;
mod limits;
mod locks;
mod ofrep;
mod segments;
mod system;

use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use octostore_core::Error;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::header::CONTENT_LENGTH;
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use crate::app::App;
use crate::error::{body_refused, method_not_allowed, no_such_path};
use crate::operation::{Body, Matched, Operation};
use crate::request::{bearer, read_body, refuse, Request};
use crate::server::Peer;

/// Numbers the requests of this process, for their tracing spans.
static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The whole API: every request is answered here, counted in the metrics and traced.
pub fn all(app: &App) -> BoxedFilter<(Response,)> {
    let app = app.clone();
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .then(move |method, path, query, headers, peer, body| {
            let incoming = Incoming {
                query,
                headers,
                peer,
                body,
            };
            dispatch(app.clone(), method, path, incoming)
        })
        .boxed()
}

/// What a request brings beyond its method and path.
struct Incoming<S> {
    /// The query string as sent, if it has one.
    query: Option<String>,
    headers: HeaderMap,
    /// The client's address, where the connection layer gave it.
    peer: Option<Peer>,
    /// The body, not read yet.
    body: S,
}

/// Answers the request (see [`respond`]) in its tracing span, and counts it in the metrics.
async fn dispatch<S, B>(app: App, method: Method, path: FullPath, incoming: Incoming<S>) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin + 'static,
    B: Buf + Send + 'static,
{
    let started = Instant::now();
    let matched = Operation::find(&method, path.as_str());
    let route = matched.map(|m| (m.route, m.template));
    let span = tracing::debug_span!(
        "request",
        id = REQUEST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        %method,
        route = route.map_or("unmatched", |(_, template)| template),
    );
    let metrics = app.metrics.clone();
    let access_log = app.access_log.then_some(incoming.peer);
    let response = async {
        let response = respond(app, matched, incoming).await;
        tracing::trace!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.observe(route, method.as_str(), status, elapsed.as_secs_f64());
    if let Some(peer) = access_log {
        let route = route.map_or(path.as_str(), |(_, template)| template);
        log_access(&method, route, status, elapsed, peer, &response);
    }
    response
}

/// The access log's line for one answered request: `route` is the path's template, or the
/// path itself when no template matched; `bytes` the body's length when it is known.
fn log_access(
    method: &Method,
    route: &str,
    status: u16,
    elapsed: std::time::Duration,
    peer: Option<Peer>,
    response: &Response,
) {
    let bytes = http_body::Body::size_hint(response.body()).exact();
    let duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    tracing::info!(
        target: crate::ACCESS_LOG_TARGET,
        %method,
        %route,
        status,
        duration_ms,
        peer = peer.map(|Peer(addr)| tracing::field::display(addr)),
        bytes,
        "request"
    );
}

/// 404 for a path the table does not have, 405 for a method its path does not answer;
/// otherwise reads the body of an operation that has one and runs the operation's handler.
async fn respond<S, B>(app: App, matched: Option<Matched<'_>>, incoming: Incoming<S>) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin + 'static,
    B: Buf + Send + 'static,
{
    let Some(matched) = matched else {
        return no_such_path();
    };
    let Some(operation) = matched.operation else {
        return method_not_allowed(matched.allow);
    };
    let Incoming {
        query,
        headers,
        peer,
        body,
    } = incoming;
    let token = bearer(&headers);
    let body = match operation.body() {
        Body::None => Bytes::new(),
        Body::Json => {
            let length = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let read = match token.clone() {
                None => Err(refuse(length, body, Error::Unauthorized)),
                Some(token) => {
                    let limit = app.body_limit;
                    read_body(length, body, limit, || app.authenticate(token)).await
                }
            };
            match read {
                Ok(body) => body,
                Err(refused) => return body_refused(refused),
            }
        }
    };
    let (name, name_field) = matched.name.unwrap_or(("", "name"));
    let request = Request {
        app,
        name: name.to_owned(),
        name_field,
        token,
        query,
        headers,
        peer,
        body,
    };
    handle(operation, request).await
}

/// Runs `operation`'s handler: the one place that joins the table to the handlers.
async fn handle(operation: Operation, request: Request) -> Response {
    match operation {
        Operation::Health => system::health(request).await,
        Operation::Ready => system::ready(request).await,
        Operation::Metrics => system::metrics(request).await,
        Operation::Openapi => system::openapi(request).await,
        Operation::GithubLogin => auth::begin(request).await,
        Operation::GithubCallback => auth::callback(request).await,
        Operation::RotateToken => auth::rotate(request).await,
        Operation::ListLocks => locks::list(request).await,
        Operation::GetLock => locks::status(request).await,
        Operation::AcquireLock => locks::acquire(request).await,
        Operation::ReleaseLock => locks::release(request).await,
        Operation::RenewLock => locks::renew(request).await,
        Operation::ListLimits => limits::list(request).await,
        Operation::GetLimit => limits::status(request).await,
        Operation::ResetLimit => limits::reset(request).await,
        Operation::CheckLimit => limits::check(request).await,
        Operation::ListFlags => flags::list(request).await,
        Operation::SetFlag => flags::set(request).await,
        Operation::EvaluateFlag => flags::evaluate(request).await,
        Operation::DeleteFlag => flags::delete(request).await,
        Operation::PatchFlag => flags::patch(request).await,
        Operation::GetFlagTargeting => flags::targeting(request).await,
        Operation::AddFlagRule => flags::add_rule(request).await,
        Operation::RemoveFlagRule => flags::remove_rule(request).await,
        Operation::SetFlagVariants => flags::set_variants(request).await,
        Operation::SetFlagPrerequisites => flags::set_prerequisites(request).await,
        Operation::EvaluateFlagInContext => flags::evaluate_in_context(request).await,
        Operation::ListSegments => segments::list(request).await,
        Operation::GetSegment => segments::get(request).await,
        Operation::SetSegment => segments::set(request).await,
        Operation::DeleteSegment => segments::delete(request).await,
        Operation::OfrepEvaluateFlag => ofrep::evaluate(request).await,
        Operation::OfrepEvaluateFlags => ofrep::evaluate_all(request).await,
        Operation::ListConfigs => config::list(request).await,
        Operation::PutConfig => config::put(request).await,
        Operation::GetConfig => config::get(request).await,
        Operation::DeleteConfig => config::delete(request).await,
        Operation::GetConfigHistory => config::history(request).await,
        Operation::RollbackConfig => config::rollback(request).await,
        Operation::DiffConfig => config::diff(request).await,
        Operation::UndeleteConfig => config::undelete(request).await,
        Operation::PutConfigSchema => config::put_schema(request).await,
        Operation::GetConfigSchema => config::get_schema(request).await,
        Operation::DeleteConfigSchema => config::delete_schema(request).await,
        Operation::ListEvents => events::list(request).await,
    }
}
