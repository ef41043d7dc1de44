//! `/flags`: set, turn on or off (PATCH), evaluate (`?subject=`), delete, list.

use octostore_core::{Api, Session};
use warp::reply::Response;

use crate::dto::{Deleted, FlagEvaluation, FlagInfo, FlagList};
use crate::metrics::Outcome;
use crate::operation::requests::{DeleteFlag, EvaluateFlag, ListFlags, PatchFlag, SetFlag};
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn set(request: Request) -> Response {
    // Decoded here, off the store's thread; an error is answered after authentication.
    let set = request.decode::<SetFlag>();
    let op = move |session: &Session| {
        let SetFlag {
            name,
            enabled,
            percentage,
        } = set?;
        session.set_flag(&name, enabled, percentage)
    };
    let reply = |flag| answer::<SetFlag>(&FlagInfo::from(&flag));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn patch(request: Request) -> Response {
    let patch = request.decode::<PatchFlag>();
    let op = move |session: &Session| {
        let PatchFlag { name, enabled } = patch?;
        session.set_flag_enabled(&name, enabled)
    };
    let reply = |flag| answer::<PatchFlag>(&FlagInfo::from(&flag));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn evaluate(request: Request) -> Response {
    let evaluate = request.decode::<EvaluateFlag>();
    let op = move |session: &Session| {
        let EvaluateFlag { name, subject } = evaluate?;
        let enabled = session.evaluate_flag(&name, subject.as_ref())?;
        Ok((name, enabled))
    };
    let metrics = &request.app.metrics;
    let reply = |(name, enabled): (octostore_core::FlagName, bool)| {
        metrics.decided(Outcome::flag(enabled));
        answer::<EvaluateFlag>(&FlagEvaluation {
            name: name.to_string(),
            enabled,
        })
    };
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn delete(request: Request) -> Response {
    let delete = request.decode::<DeleteFlag>();
    let op = move |session: &Session| {
        let DeleteFlag(name) = delete?;
        session.delete_flag(&name)?;
        Ok(answer::<DeleteFlag>(&Deleted { deleted: true }))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let op = |session: &Session| {
        let flags = session.flags()?;
        Ok(answer::<ListFlags>(&FlagList {
            flags: flags.iter().map(FlagInfo::from).collect(),
        }))
    };
    request.app.as_user(request.token, op).await
}
