//! `/flags`: set, turn on or off (PATCH), evaluate (`?subject=`, or a context), delete, list;
//! a flag's targeting: its rules, variants and prerequisites.

use octostore_core::{Api, Evaluation, FlagName, Session, TargetingChange};
use warp::reply::Response;

use crate::dto::{Deleted, EvaluationInfo, FlagEvaluation, FlagInfo, FlagList};
use crate::metrics::Outcome;
use crate::operation::requests::{
    AddFlagRule, DeleteFlag, Endpoint, EvaluateFlag, EvaluateFlagInContext, GetFlagTargeting,
    ListFlags, PatchFlag, RemoveFlagRule, SetFlag, SetFlagPrerequisites, SetFlagVariants,
};
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

pub(super) async fn targeting(request: Request) -> Response {
    let get = request.decode::<GetFlagTargeting>();
    let op = move |session: &Session| session.flag(&get?.0);
    let reply = |flag| answer::<GetFlagTargeting>(&FlagInfo::from(&flag));
    request.app.as_user_then(request.token, op, reply).await
}

/// Runs one change of a flag's targeting, decoded as `E`, and answers the flag.
async fn change<E: Endpoint<Answer = FlagInfo> + Send + 'static>(
    request: Request,
    into_change: fn(E) -> (FlagName, TargetingChange),
) -> Response {
    let decoded = request.decode::<E>();
    let op = move |session: &Session| {
        let (name, change) = into_change(decoded?);
        session.change_flag_targeting(&name, change)
    };
    let reply = |flag| answer::<E>(&FlagInfo::from(&flag));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn add_rule(request: Request) -> Response {
    change(request, |AddFlagRule { name, rule, at }| {
        (name, TargetingChange::AddRule { rule, at })
    })
    .await
}

pub(super) async fn remove_rule(request: Request) -> Response {
    change(request, |RemoveFlagRule { name, index }| {
        (name, TargetingChange::RemoveRule(index))
    })
    .await
}

pub(super) async fn set_variants(request: Request) -> Response {
    change(request, |SetFlagVariants { name, variants }| {
        (name, TargetingChange::SetVariants(variants))
    })
    .await
}

pub(super) async fn set_prerequisites(request: Request) -> Response {
    change(
        request,
        |SetFlagPrerequisites {
             name,
             prerequisites,
         }| { (name, TargetingChange::SetPrerequisites(prerequisites)) },
    )
    .await
}

pub(super) async fn evaluate_in_context(request: Request) -> Response {
    let evaluate = request.decode::<EvaluateFlagInContext>();
    let op = move |session: &Session| {
        let EvaluateFlagInContext { name, context } = evaluate?;
        let evaluation = session.evaluate_flag_in(&name, &context)?;
        Ok((name, evaluation))
    };
    let metrics = &request.app.metrics;
    let reply = |(name, evaluation): (FlagName, Evaluation)| {
        metrics.decided(Outcome::flag(evaluation.enabled));
        answer::<EvaluateFlagInContext>(&EvaluationInfo::new(name.as_str(), &evaluation))
    };
    request.app.as_user_then(request.token, op, reply).await
}
