//! `/events`: a page of the change log after an index (`?since=&kind=&prefix=&limit=`), a
//! read beside the store's writer ([`App::read_as_user`](crate::app::App::read_as_user));
//! with `wait=`, a long poll: the page once an event is there or the wait is over
//! ([`App::until_changed`](crate::app::App::until_changed)); with `Accept:
//! text/event-stream`, a stream of them (`event_stream.rs`).

use octostore_core::{Api, Session};
use warp::reply::Response;

use super::event_stream;
use crate::app::respond;
use crate::dto::EventList;
use crate::operation::requests::ListEvents;
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn list(request: Request) -> Response {
    if event_stream::wanted(&request.headers) {
        let list = request.decode::<ListEvents>();
        let (app, token) = (request.app.clone(), request.token.clone());
        return event_stream::events(app, token, &request.headers, list).await;
    }
    let list = request.decode::<ListEvents>();
    // Read by streams only, but refused when it is not an index whatever the answer.
    let list =
        list.and_then(|list| event_stream::start(&request.headers, list.since).map(|_| list));
    let list = match list {
        Ok(list) if !list.wait.is_zero() => list,
        list => {
            // A page at once; an error is answered after authentication.
            let op = move |session: &Session| page(session, &list?).map(|(page, _)| page);
            return request.app.read_as_user(request.token, op).await;
        }
    };
    let (app, token) = (&request.app, &request.token);
    app.until_changed(list.wait, || {
        let (token, list) = (token.clone(), list.clone());
        async move {
            let op = move |session: &Session| page(session, &list);
            match app.read_as_user_outcome(token, op).await {
                Some(Ok((page, ready))) => (page, ready),
                failed => (respond(failed, |(page, _)| page), true),
            }
        }
    })
    .await
}

/// The page `list` asks for, and whether it holds anything to answer (an event, or a
/// resync).
fn page(session: &Session, list: &ListEvents) -> octostore_core::Result<(Response, bool)> {
    let page = session.events(list.since, &list.filter, list.limit)?;
    let ready = page.resync || !page.events.is_empty();
    Ok((answer::<ListEvents>(&EventList::from(page)), ready))
}
