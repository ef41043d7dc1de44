//! `/auth`: token rotation, and GitHub sign-in.

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{bearer, ok, with_app};
use crate::app::App;
use crate::dto::{ErrorBody, NewToken};
use crate::error::{json, unauthorized};

pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let rotate = warp::path!("auth" / "token" / "rotate")
        .and(warp::post())
        .and(with_app(app))
        .and(bearer())
        .then(rotate);
    let github = warp::path!("auth" / "github")
        .and(warp::get())
        .and(with_app(app))
        .map(|app: App| not_configured(&app));
    let callback = warp::path!("auth" / "github" / "callback")
        .and(warp::get())
        .and(with_app(app))
        .map(|app: App| not_configured(&app));
    rotate.or(github).unify().or(callback).unify().boxed()
}

async fn rotate(app: App, token: Option<String>) -> Response {
    let Some(token) = token else {
        return unauthorized();
    };
    app.blocking(move |store| {
        let successor = store.rotate_token(&token)?;
        ok(&NewToken {
            token: successor.expose().to_owned(),
        })
    })
    .await
}

fn not_configured(_app: &App) -> Response {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &ErrorBody {
            error: "GitHub sign-in is not configured on this server".into(),
            details: Some("start the server with the OCTOSTORE_GITHUB_* settings".into()),
        },
    )
}
