//! `/flags`: set, evaluate (`?subject=`), delete, list.

use bytes::Bytes;
use octostore_core::{Api, FlagName, Percentage, Result, Subject};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{bearer, bearer_and_body, ok, query, reply, with_app};
use crate::app::App;
use crate::dto::{Deleted, FlagEvaluation, FlagInfo, FlagList};
use crate::request::{path_name, JsonBody};

pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let set = warp::path!("flags" / String)
        .and(warp::put())
        .and(with_app(app))
        .and(bearer_and_body(app))
        .then(set);
    let evaluate = warp::path!("flags" / String)
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .and(query())
        .then(evaluate);
    let delete = warp::path!("flags" / String)
        .and(warp::delete())
        .and(with_app(app))
        .and(bearer())
        .then(delete);
    let list = warp::path!("flags")
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .then(list);
    set.or(evaluate)
        .unify()
        .or(delete)
        .unify()
        .or(list)
        .unify()
        .boxed()
}

fn flag_name(raw: &str) -> Result<FlagName> {
    FlagName::parse(&path_name(raw, "name")?)
}

pub(super) async fn set(raw: String, app: App, token: Option<String>, body: Bytes) -> Response {
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

pub(super) async fn evaluate(
    raw: String,
    app: App,
    token: Option<String>,
    query: Vec<(String, String)>,
) -> Response {
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

async fn delete(raw: String, app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        session.delete_flag(&flag_name(&raw)?)?;
        ok(&Deleted { deleted: true })
    })
    .await
}

async fn list(app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        let flags = session.flags()?;
        ok(&FlagList {
            flags: flags.iter().map(FlagInfo::from).collect(),
        })
    })
    .await
}
