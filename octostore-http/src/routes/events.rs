//! `/events`: a page of the change log after an index (`?since=&kind=&prefix=&limit=`), a
//! read beside the store's writer ([`App::read_as_user`](crate::app::App::read_as_user)).

use octostore_core::{Api, Session};
use warp::reply::Response;

use crate::dto::EventList;
use crate::operation::requests::ListEvents;
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn list(request: Request) -> Response {
    let list = request.decode::<ListEvents>();
    let op = move |session: &Session| {
        let ListEvents {
            since,
            filter,
            limit,
        } = list?;
        let page = session.events(since, &filter, limit)?;
        Ok(answer::<ListEvents>(&EventList::from(page)))
    };
    request.app.read_as_user(request.token, op).await
}
