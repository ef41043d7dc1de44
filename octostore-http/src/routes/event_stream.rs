//! `GET /events` with `Accept: text/event-stream`: the change log as Server-Sent Events, from
//! `Last-Event-ID` (a reconnecting client's) or `since`: each event with its index as `id:`,
//! its kind as `event:` and the long poll's JSON of it as `data:`; a `resync` event (its `id:`
//! where to go on from) when the log no longer holds every event after it; a comment line
//! every 30 s. One task per stream reads a page after each change the store signals and
//! hands its events to the response's body through a small channel; it ends when the client
//! goes, the session's token stops working, a read fails, or the server shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use octostore_core::{Api, EventPage, Session};
use tokio::sync::{mpsc, Notify};
use warp::reply::{Reply, Response};
use warp::sse;

use crate::app::{not_finished, App};
use crate::dto::EventInfo;
use crate::error::error_response;
use crate::operation::requests::ListEvents;

/// How long a stream may go without a byte: a comment line is sent then. Within the 60 s
/// that proxies such as nginx wait for a byte by default, and the server's idle timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How many events wait for a slow client before the stream's task waits for it.
const BUFFERED: usize = 64;

/// Whether the request asks for a stream (`Accept: text/event-stream`).
pub(super) fn wanted(headers: &warp::http::HeaderMap) -> bool {
    headers
        .get_all(warp::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

/// The index a stream starts after: `Last-Event-ID` if the client sent one, else `since`.
/// A `Last-Event-ID` that is not an index (0 to 2^63 - 1) is refused, stream or not.
pub(super) fn start(headers: &warp::http::HeaderMap, since: u64) -> octostore_core::Result<u64> {
    match headers.get("last-event-id") {
        None => Ok(since),
        Some(id) => id
            .to_str()
            .ok()
            .and_then(|id| id.trim().parse::<u64>().ok())
            .filter(|id| i64::try_from(*id).is_ok())
            .ok_or_else(|| {
                octostore_core::Error::invalid("Last-Event-ID", "must be an event index")
            }),
    }
}

/// The stream `list` asks for, once its token is known good; an error (no token, a bad
/// parameter) answered as JSON like any other.
pub(super) async fn events(
    app: App,
    token: Option<String>,
    headers: &warp::http::HeaderMap,
    list: octostore_core::Result<ListEvents>,
) -> Response {
    let session = match app.session(token).await {
        Some(Ok(session)) => session,
        Some(Err(e)) => return error_response(&e),
        None => return error_response(&not_finished()),
    };
    let start = list.and_then(|list| Ok((start(headers, list.since)?, list)));
    let (since, list) = match start {
        Ok(start) => start,
        Err(e) => return error_response(&e),
    };
    let (sender, receiver) = mpsc::channel(BUFFERED);
    tokio::spawn(follow(app, session, list, since, sender));
    let events = sse::keep_alive()
        .interval(KEEP_ALIVE)
        .stream(Events(receiver));
    sse::reply(events).into_response()
}

/// Reads the log after `since` page by page, and again after each change, sending each
/// event to `sender`, until the client or the server goes (or a read fails: the client
/// reconnects with its `Last-Event-ID`).
async fn follow(
    app: App,
    session: Session,
    list: ListEvents,
    mut since: u64,
    sender: mpsc::Sender<sse::Event>,
) {
    let changed = Arc::new(Notify::new());
    let _waiter = app.on_change(&changed);
    let mut closing = app.closing();
    loop {
        let (filter, limit) = (list.filter.clone(), list.limit);
        let read = move |session: &Session| session.events(since, &filter, limit);
        let Some(Ok(page)) = app.read_as(session.clone(), read).await else {
            return;
        };
        let full = page.events.len() == list.limit;
        since = page.next;
        for event in sse_events(page) {
            tokio::select! {
                sent = sender.send(event) => if sent.is_err() { return },
                _ = closing.wait_for(|closing| *closing) => return,
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = changed.notified() => {}
            () = sender.closed() => return,
            _ = closing.wait_for(|closing| *closing) => return,
        }
    }
}

/// A page as Server-Sent Events: a `resync`, or its events.
fn sse_events(page: EventPage) -> Vec<sse::Event> {
    if page.resync {
        let next = page.next;
        let data = serde_json::json!({ "next": next }).to_string();
        return vec![sse::Event::default()
            .id(next.to_string())
            .event("resync")
            .data(data)];
    }
    page.events
        .iter()
        .map(|event| {
            let info = EventInfo::from(event);
            let data = serde_json::to_string(&info).expect("API objects serialize");
            sse::Event::default()
                .id(event.index.to_string())
                .event(info.kind.clone())
                .data(data)
        })
        .collect()
}

/// The events the stream's task sends, as the response body's stream.
struct Events(mpsc::Receiver<sse::Event>);

impl Stream for Events {
    type Item = Result<sse::Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}
