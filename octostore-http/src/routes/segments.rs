//! `/segments`: named constraints that rules of the caller's flags share.

use octostore_core::{Api, Session};
use warp::reply::Response;

use crate::dto::{Deleted, SegmentInfo, SegmentList};
use crate::operation::requests::{DeleteSegment, GetSegment, ListSegments, SetSegment};
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn set(request: Request) -> Response {
    let set = request.decode::<SetSegment>();
    let op = move |session: &Session| {
        let SetSegment {
            name,
            description,
            constraints,
        } = set?;
        session.set_segment(&name, description, constraints)
    };
    let reply = |segment| answer::<SetSegment>(&SegmentInfo::from(&segment));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn get(request: Request) -> Response {
    let get = request.decode::<GetSegment>();
    let op = move |session: &Session| session.segment(&get?.0);
    let reply = |segment| answer::<GetSegment>(&SegmentInfo::from(&segment));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn delete(request: Request) -> Response {
    let delete = request.decode::<DeleteSegment>();
    let op = move |session: &Session| {
        session.delete_segment(&delete?.0)?;
        Ok(answer::<DeleteSegment>(&Deleted { deleted: true }))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let op = |session: &Session| {
        let segments = session.segments()?;
        Ok(answer::<ListSegments>(&SegmentList {
            segments: segments.iter().map(SegmentInfo::from).collect(),
        }))
    };
    request.app.as_user(request.token, op).await
}
