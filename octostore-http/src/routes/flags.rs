//! `/flags`: set, evaluate (`?subject=`), delete, list.

use octostore_core::{Api, FlagName, Percentage, Result, Subject};
use warp::reply::Response;

use super::{ok, reply, Request};
use crate::dto::{Deleted, FlagEvaluation, FlagInfo, FlagList};
use crate::request::{path_name, JsonBody};

fn flag_name(raw: &str) -> Result<FlagName> {
    FlagName::parse(&path_name(raw, "name")?)
}

pub(super) async fn set(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    // Parsed here, off the store's thread; an error is answered after authentication.
    let request = (|| {
        let name = flag_name(&raw)?;
        let body = JsonBody::parse(&body)?;
        let enabled = body.bool("enabled")?;
        let percentage = body
            .optional_int("percentage")?
            .map(Percentage::new)
            .transpose()?;
        Ok((name, enabled, percentage))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, enabled, percentage) = request?;
            session.set_flag(&name, enabled, percentage)
        },
        |flag| reply(&FlagInfo::from(&flag)),
    )
    .await
}

pub(super) async fn evaluate(request: Request) -> Response {
    let query = request.query_pairs();
    let Request {
        name: raw,
        app,
        token,
        ..
    } = request;
    let request = (|| {
        let name = flag_name(&raw)?;
        let subject = match query.iter().find(|(k, _)| k == "subject") {
            Some((_, subject)) => Some(Subject::parse(subject)?),
            None => None,
        };
        Ok((name, subject))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, subject) = request?;
            let enabled = session.evaluate_flag(&name, subject.as_ref())?;
            Ok((name, enabled))
        },
        |(name, enabled)| {
            reply(&FlagEvaluation {
                name: name.to_string(),
                enabled,
            })
        },
    )
    .await
}

pub(super) async fn delete(
    Request {
        name: raw,
        app,
        token,
        ..
    }: Request,
) -> Response {
    app.as_user(token, move |session| {
        session.delete_flag(&flag_name(&raw)?)?;
        ok(&Deleted { deleted: true })
    })
    .await
}

pub(super) async fn list(Request { app, token, .. }: Request) -> Response {
    app.as_user(token, move |session| {
        let flags = session.flags()?;
        ok(&FlagList {
            flags: flags.iter().map(FlagInfo::from).collect(),
        })
    })
    .await
}
