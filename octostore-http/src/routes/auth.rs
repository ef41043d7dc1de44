//! `/auth`: token rotation, and GitHub sign-in.
//!
//! Sign-in: `GET /auth/github` redirects to GitHub with a fresh single-use `state` and a PKCE
//! challenge, and sets the sign-in cookie on the browser (429 once the client's address has
//! begun too many); GitHub sends the user back to `GET /auth/github/callback?code=..&state=..`,
//! which redeems the state with the cookie, exchanges the code with the PKCE verifier, reads
//! the GitHub user, upserts the user and answers a new token, clearing the cookie. The code,
//! the state, the cookie and both tokens are never logged.

use oauth2::url::form_urlencoded;
use octostore_core::{Error, Login};
use warp::http::header::{
    CACHE_CONTROL, COOKIE as COOKIE_HEADER, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::app::App;
use crate::dto::{ErrorBody, ErrorCode, NewToken, SignedIn, UserInfo};
use crate::error::{error_response, status, unauthorized};
use crate::oauth::{
    denial, GithubOAuth, Origin, SignInError, StateProblem, TooManyBegun, COOKIE,
    MAX_BEGUN_PER_ORIGIN,
};
use crate::operation::requests::RotateToken;
use crate::reply::answer;
use crate::reply::json;
use crate::request::Request;
use crate::server::Peer;

pub(super) async fn rotate(Request { app, token, .. }: Request) -> Response {
    let Some(token) = token else {
        return unauthorized();
    };
    app.run(move |store| {
        let successor = store.rotate_token(&token)?;
        Ok(answer::<RotateToken>(&NewToken {
            token: successor.expose().to_owned(),
        }))
    })
    .await
}

/// `GET /auth/github`: 302 to GitHub's authorize page with a fresh state, setting the
/// sign-in cookie; 429 once the client's address has begun too many.
pub(super) async fn begin(Request { app, peer, .. }: Request) -> Response {
    let Some(oauth) = &app.oauth else {
        return not_configured();
    };
    let origin = Origin::of(peer.map(|Peer(addr)| addr.ip()));
    let begun = match oauth.begin(origin, app.store().now()) {
        Ok(begun) => begun,
        Err(too_many) => {
            tracing::info!(?origin, "too many sign-ins begun from one address");
            return too_many_begun(too_many);
        }
    };
    let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(begun.url.as_str()),
        HeaderValue::from_str(&begun.set_cookie),
    ) else {
        return error_response(&Error::storage(
            "GitHub's authorize URL or the sign-in cookie is not a valid header",
        ));
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(LOCATION, location);
    response.headers_mut().insert(SET_COOKIE, cookie);
    no_store(&mut response);
    response
}

/// 429 with `Retry-After`: whole seconds, rounded up, so that a client waiting this long is
/// let in.
fn too_many_begun(too_many: TooManyBegun) -> Response {
    let seconds = (too_many.retry_after.num_milliseconds().max(1) as u64).div_ceil(1000);
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        &ErrorBody::new(
            ErrorCode::TooManySignIns,
            "too many sign-ins from this address",
            Some(format!(
                "at most {MAX_BEGUN_PER_ORIGIN} sign-ins may begin from one address in 10 \
                 minutes; try again in {seconds} s"
            )),
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    no_store(&mut response);
    response
}

/// `GET /auth/github/callback`: the state and the browser's cookie first (a forged callback
/// goes no further), then the code. Every answer clears the cookie.
pub(super) async fn callback(request: Request) -> Response {
    let cookie = cookie(&request.headers, COOKIE);
    let Request { app, query, .. } = request;
    let query = query.unwrap_or_default();
    let Some(oauth) = app.oauth.clone() else {
        return not_configured();
    };
    let mut response = sign_in(&app, &oauth, &query, cookie.as_deref()).await;
    if let Ok(clear) = HeaderValue::from_str(&oauth.clear_cookie()) {
        response.headers_mut().insert(SET_COOKIE, clear);
    }
    no_store(&mut response);
    response
}

async fn sign_in(app: &App, oauth: &GithubOAuth, query: &str, cookie: Option<&str>) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };
    let verifier = match oauth.redeem_state(param("state"), cookie, app.store().now()) {
        Ok(verifier) => verifier,
        Err(e) => return sign_in_failed(&e),
    };
    let Some(code) = param("code") else {
        if let Some(error) = param("error") {
            return sign_in_failed(&denial(Some(error)));
        }
        return error_response(&Error::invalid(
            "code",
            "missing: GitHub sends it with the redirect to this callback",
        ));
    };
    let github = match oauth.github_user(code.to_owned(), verifier).await {
        Ok(github) => github,
        Err(e) => return sign_in_failed(&e),
    };
    app.run(move |store| {
        let login = Login::parse(&github.login)?;
        let avatar_url = github.avatar_url.as_deref().filter(|url| !url.is_empty());
        let user = store.upsert_github_user(github.id, &login, avatar_url)?;
        let token = store.issue_token(user.id)?;
        tracing::info!(github_id = github.id, login = %user.login, "signed in with GitHub");
        Ok(json(
            StatusCode::OK,
            &SignedIn {
                token: token.expose().to_owned(),
                user: UserInfo::from(&user),
            },
        ))
    })
    .await
}

/// The answer to a sign-in that did not go through; it never repeats the code or state.
fn sign_in_failed(err: &SignInError) -> Response {
    let unauthorized = StatusCode::UNAUTHORIZED;
    let bad_gateway = StatusCode::BAD_GATEWAY;
    let again = "start again at /auth/github";
    let (status, error, details) = match err {
        SignInError::State(StateProblem::Missing) => (
            unauthorized,
            "missing sign-in state",
            format!("the callback needs the state that /auth/github issued; {again}"),
        ),
        SignInError::State(StateProblem::Unknown) => (
            unauthorized,
            "unknown sign-in state",
            format!("this server did not issue that state, or forgot it; {again}"),
        ),
        SignInError::State(StateProblem::Used) => (
            unauthorized,
            "sign-in state already used",
            format!("a state is good for one sign-in; {again}"),
        ),
        SignInError::State(StateProblem::Expired) => (
            unauthorized,
            "sign-in state expired",
            format!("a state is good for 10 minutes; {again}"),
        ),
        SignInError::State(StateProblem::NoCookie) => (
            unauthorized,
            "sign-in not begun in this browser",
            format!(
                "the callback needs the {COOKIE} cookie that /auth/github set on the browser \
                 that began the sign-in (are cookies enabled?); {again}"
            ),
        ),
        SignInError::State(StateProblem::WrongCookie) => (
            unauthorized,
            "sign-in state not this browser's",
            format!("this browser began another sign-in than this state's; {again}"),
        ),
        SignInError::Denied(code) => (
            unauthorized,
            "GitHub did not grant sign-in",
            github_said(code.as_deref(), again),
        ),
        SignInError::Refused(code) => (
            unauthorized,
            "GitHub refused the authorization code",
            github_said(code.as_deref(), again),
        ),
        SignInError::Misconfigured(code) => (
            bad_gateway,
            "GitHub refused this server's OAuth app settings",
            github_said(code.as_deref(), "check the OCTOSTORE_GITHUB_* settings"),
        ),
        SignInError::Unreachable => (
            bad_gateway,
            "GitHub is unreachable",
            "try again later".to_owned(),
        ),
        SignInError::BadAnswer(what) => (
            bad_gateway,
            "GitHub answered unexpectedly",
            (*what).to_owned(),
        ),
    };
    tracing::info!(
        status = status.as_u16(),
        problem = error,
        "GitHub sign-in failed"
    );
    let code = if status == unauthorized {
        ErrorCode::SignInFailed
    } else {
        ErrorCode::GithubUnavailable
    };
    json(status, &ErrorBody::new(code, error, Some(details)))
}

fn github_said(code: Option<&str>, advice: &str) -> String {
    match code {
        Some(code) => format!("GitHub answered {code}; {advice}"),
        None => advice.to_owned(),
    }
}

/// Answers that start or finish a sign-in are not to be cached.
fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// 404: a client's mistake (this server has no GitHub sign-in), logged at DEBUG only.
fn not_configured() -> Response {
    tracing::debug!("GitHub sign-in asked for, but it is not configured");
    let code = ErrorCode::SignInNotConfigured;
    json(
        status(code),
        &ErrorBody::new(
            code,
            "GitHub sign-in is not configured on this server",
            Some("start the server with the OCTOSTORE_GITHUB_* settings".into()),
        ),
    )
}

/// The value of the cookie `name` in the request's `Cookie` headers, if it has one.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}
