//! GitHub sign-in, end to end over HTTP against a fake GitHub on 127.0.0.1: the redirect,
//! the callback's state and cookie checks, the code exchange (PKCE checked by the fake as
//! GitHub does), the user upsert, GitHub failing, and the cap on sign-ins begun per address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::Duration;
use oauth2::url::Url;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use octostore_core::{Login, Settings, UserSource};
use octostore_http::{GithubSettings, ServerOptions};
use parking_lot::Mutex;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use warp::http::header::CONTENT_TYPE;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::support::Server;

const CLIENT_ID: &str = "Iv1.fakeclientid";
const CLIENT_SECRET: &str = "fake-client-secret-0123456789";
/// The public URL of the callback, as configured; GitHub only compares it, never calls it.
const REDIRECT_URL: &str = "https://octostore.example/auth/github/callback";

// ---------------------------------------------------------------------------------------
// The fake GitHub: the web side (`/login/oauth/access_token`) at its root, the API (`/user`)
// under `/api/v3`, as GitHub Enterprise lays them out.

#[derive(Clone)]
struct Account {
    login: String,
    avatar_url: String,
}

#[derive(Default)]
struct Github {
    accounts: HashMap<u64, Account>,
    /// Codes issued and not yet exchanged: whose they are, and the PKCE challenge of the
    /// authorize request they answered, if it had one.
    codes: HashMap<String, (u64, Option<String>)>,
    /// Access tokens issued, and whose they are.
    tokens: HashMap<String, u64>,
    issued: u64,
    /// `/user` answers this instead of JSON when set.
    garbage_user: bool,
    /// The `User-Agent` and `Accept` of the last `/user` request.
    last_user_request: Option<(String, String)>,
}

struct FakeGithub {
    addr: SocketAddr,
    github: Arc<Mutex<Github>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGithub {
    fn start() -> Self {
        let github = Arc::new(Mutex::new(Github::default()));
        let routes = fake_routes(github.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                warp::serve(routes)
                    .incoming(listener)
                    .graceful(async {
                        let _ = stopped.await;
                    })
                    .run()
                    .await;
            });
        });
        Self {
            addr,
            github,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn web_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn api_url(&self) -> String {
        format!("http://{}/api/v3/", self.addr)
    }

    /// Creates or renames the GitHub account `id`.
    fn account(&self, id: u64, login: &str) {
        self.github.lock().accounts.insert(
            id,
            Account {
                login: login.to_owned(),
                avatar_url: format!("https://avatars.example/u/{id}"),
            },
        );
    }

    /// The code GitHub hands the browser once `id`'s owner agrees to `sign_in`: bound to
    /// the PKCE challenge of its authorize URL.
    fn code_for(&self, id: u64, sign_in: &SignIn) -> String {
        let query = query_of(&sign_in.url);
        let challenge = query.get("code_challenge").cloned();
        if challenge.is_some() {
            assert_eq!(query["code_challenge_method"], "S256");
        }
        let mut github = self.github.lock();
        github.issued += 1;
        let code = format!("{:020x}", 0xC0DE_0000 + github.issued);
        github.codes.insert(code.clone(), (id, challenge));
        code
    }

    fn answer_garbage_for_user(&self) {
        self.github.lock().garbage_user = true;
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn fake_routes(github: Arc<Mutex<Github>>) -> warp::filters::BoxedFilter<(Response,)> {
    let state = warp::any().map(move || github.clone());
    let token = warp::path!("login" / "oauth" / "access_token")
        .and(warp::post())
        .and(state.clone())
        .and(warp::header::optional::<String>("accept"))
        .and(warp::body::form::<HashMap<String, String>>())
        .map(exchange);
    let user = warp::path!("api" / "v3" / "user")
        .and(warp::get())
        .and(state)
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("user-agent"))
        .and(warp::header::optional::<String>("accept"))
        .map(user);
    token.or(user).unify().boxed()
}

/// `POST /login/oauth/access_token`, as GitHub answers it: errors too come with status 200.
fn exchange(
    github: Arc<Mutex<Github>>,
    accept: Option<String>,
    form: HashMap<String, String>,
) -> Response {
    if !accept.is_some_and(|a| a.contains("application/json")) {
        // GitHub answers form-encoded unless asked for JSON.
        return warp::reply::with_header(
            "error=not_json",
            CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .into_response();
    }
    let field = |name: &str| form.get(name).map(String::as_str);
    let refuse = |error: &str| {
        warp::reply::json(&json!({
            "error": error,
            "error_description": "refused by the fake GitHub",
            "error_uri": "https://docs.github.com/apps/troubleshooting",
        }))
        .into_response()
    };
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return refuse("incorrect_client_credentials");
    }
    if field("redirect_uri") != Some(REDIRECT_URL) {
        return refuse("redirect_uri_mismatch");
    }
    if field("grant_type") != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let mut github = github.lock();
    let Some((id, challenge)) = field("code").and_then(|code| github.codes.remove(code)) else {
        return refuse("bad_verification_code");
    };
    // RFC 7636: the verifier's SHA-256 must be the authorize request's challenge.
    if let Some(challenge) = challenge {
        let verified = field("code_verifier").is_some_and(|verifier| {
            let verifier = PkceCodeVerifier::new(verifier.to_owned());
            PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() == challenge
        });
        if !verified {
            return refuse("bad_verification_code");
        }
    }
    github.issued += 1;
    let access_token = format!("gho_fake{:032x}", github.issued);
    github.tokens.insert(access_token.clone(), id);
    warp::reply::json(&json!({
        "access_token": access_token,
        "token_type": "bearer",
        "scope": "read:user",
    }))
    .into_response()
}

/// `GET /user`: the account behind the bearer token.
fn user(
    github: Arc<Mutex<Github>>,
    authorization: Option<String>,
    user_agent: Option<String>,
    accept: Option<String>,
) -> Response {
    let mut github = github.lock();
    let user_agent = user_agent.unwrap_or_default();
    github.last_user_request = Some((user_agent.clone(), accept.unwrap_or_default()));
    if user_agent.is_empty() {
        let body = json!({"message": "Request forbidden by administrative rules."});
        return warp::reply::with_status(
            warp::reply::json(&body),
            warp::http::StatusCode::FORBIDDEN,
        )
        .into_response();
    }
    let account = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|token| github.tokens.get(token))
        .and_then(|id| Some((*id, github.accounts.get(id)?.clone())));
    let Some((id, account)) = account else {
        let body = json!({"message": "Bad credentials"});
        return warp::reply::with_status(
            warp::reply::json(&body),
            warp::http::StatusCode::UNAUTHORIZED,
        )
        .into_response();
    };
    if github.garbage_user {
        return warp::reply::html("<html>Unicorn!</html>").into_response();
    }
    warp::reply::json(&json!({
        "id": id,
        "login": account.login,
        "avatar_url": account.avatar_url,
        "type": "User",
        "site_admin": false,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn settings(web_url: String, api_url: String) -> GithubSettings {
    GithubSettings {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_url: REDIRECT_URL.into(),
        web_url,
        api_url,
    }
}

fn server_with(github: GithubSettings) -> Server {
    Server::start_with(
        Settings::default(),
        ServerOptions {
            github: Some(github),
            ..ServerOptions::default()
        },
    )
}

fn server_for(fake: &FakeGithub) -> Server {
    server_with(settings(fake.web_url(), fake.api_url()))
}

/// A base URL where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A sign-in begun at `/auth/github`: GitHub's authorize URL, its state, and the cookie
/// set on the browser (as its `Cookie` header sends it back).
struct SignIn {
    url: Url,
    state: String,
    cookie: String,
}

/// `GET /auth/github` from 127.0.0.1, answered with a redirect.
fn begin(server: &Server) -> SignIn {
    let response = http().get(server.url("/auth/github")).send().unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let url = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let (cookie, _) = set_cookie.split_once(';').unwrap();
    SignIn {
        state: query_of(&url)["state"].clone(),
        url,
        cookie: cookie.to_owned(),
    }
}

fn query_of(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// The callback with these query parameters and this `Cookie` header: its status, JSON body
/// and `Set-Cookie` (which must remove the sign-in cookie).
fn callback(server: &Server, cookie: Option<&str>, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let url = Url::parse_with_params(&server.url("/auth/github/callback"), params).unwrap();
    let mut request = http().get(url.as_str());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().unwrap();
    let status = response.status();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.starts_with("octostore_sign_in=; Max-Age=0; Path=/auth/github/callback;"),
        "{set_cookie}"
    );
    let body = response.json::<Value>().unwrap();
    (status, body)
}

/// The callback for `sign_in` with `code`, as its browser makes it.
fn finish(server: &Server, sign_in: &SignIn, code: &str) -> (StatusCode, Value) {
    let params = [("code", code), ("state", sign_in.state.as_str())];
    callback(server, Some(&sign_in.cookie), &params)
}

/// A whole sign-in as GitHub account `id`: its answer, which must be 200.
fn sign_in(server: &Server, fake: &FakeGithub, id: u64) -> Value {
    let begun = begin(server);
    let code = fake.code_for(id, &begun);
    let (status, body) = finish(server, &begun, &code);
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn token_of(signed_in: &Value) -> String {
    signed_in["token"].as_str().unwrap().to_owned()
}

fn get(server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let response = http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = response.status();
    (status, response.json().unwrap())
}

/// The body does not repeat any of `secrets`.
fn assert_no_echo(body: &Value, secrets: &[&str]) {
    let text = body.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{text} repeats a secret");
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn sign_in_redirects_to_github_with_a_fresh_state_a_pkce_challenge_and_a_cookie() {
    let fake = FakeGithub::start();
    let server = server_for(&fake);
    let response = http().get(server.url("/auth/github")).send().unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let authorize = format!("{}/login/oauth/authorize", fake.web_url());
    assert_eq!(&location.as_str()[..authorize.len()], authorize);
    let query = query_of(&location);
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT_URL);
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["scope"], "read:user");
    assert!(query["state"].len() >= 16, "{}", query["state"]);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43, "a SHA-256 in base64url");
    assert!(!location.as_str().contains(CLIENT_SECRET));
    // The cookie: for the callback's path alone, out of scripts' reach, sent on GitHub's
    // redirect but not on other sites' requests, over HTTPS only (the public URL is HTTPS).
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let (pair, attributes) = set_cookie.split_once("; ").unwrap();
    assert_eq!(
        attributes,
        "Max-Age=600; Path=/auth/github/callback; HttpOnly; SameSite=Lax; Secure"
    );
    let nonce = pair.strip_prefix("octostore_sign_in=").unwrap();
    assert!(
        nonce.len() >= 43 && !location.as_str().contains(nonce),
        "{nonce}"
    );

    let again = begin(&server);
    assert_ne!(
        again.state, query["state"],
        "each sign-in has its own state"
    );
    assert_ne!(again.cookie, pair, "and its own cookie");
    assert_ne!(
        query_of(&again.url)["code_challenge"],
        query["code_challenge"]
    );
}

#[test]
fn the_whole_flow_gives_a_token_that_works() {
    let fake = FakeGithub::start();
    fake.account(583231, "octocat");
    let server = server_for(&fake);
    let signed_in = sign_in(&server, &fake, 583231);
    assert_eq!(signed_in["user"]["login"], "octocat");
    assert_eq!(
        signed_in["user"]["avatar_url"],
        "https://avatars.example/u/583231"
    );
    let token = token_of(&signed_in);
    assert!(token.starts_with("octo_"), "{token}");

    let (status, locks) = get(&server, "/locks", &token);
    assert_eq!(status, StatusCode::OK, "{locks}");
    assert_eq!(locks["total"], 0);

    let user = server
        .store
        .user_by_login(&Login::parse("octocat").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(user.source, UserSource::Github { github_id: 583231 });
    let (user_agent, accept) = fake.github.lock().last_user_request.clone().unwrap();
    assert_eq!(user_agent, "octostore");
    assert_eq!(accept, "application/vnd.github+json");
}

#[test]
fn an_unknown_or_missing_state_is_refused_before_github_is_asked() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);
    let begun = begin(&server);
    let code = fake.code_for(1, &begun);
    let cookie = Some(begun.cookie.as_str());
    let forged = "Zm9yZ2VkLXN0YXRlLXZhbHVl";
    let (status, body) = callback(&server, cookie, &[("code", &code), ("state", forged)]);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unknown sign-in state");
    assert_no_echo(&body, &[&code, forged]);

    let (status, body) = callback(&server, cookie, &[("code", &code)]);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "missing sign-in state");

    // The code was never sent to GitHub, so it is still good with its own state.
    let (status, body) = finish(&server, &begun, &code);
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Login CSRF: a callback link made by someone else (their state and code) reaches a
/// browser without their cookie; and a state leaked from a URL is of no use without its
/// browser's cookie. Neither goes further than the state; the state stays good for its own
/// browser.
#[test]
fn a_callback_without_the_browsers_cookie_is_refused() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);
    let begun = begin(&server);
    let code = fake.code_for(1, &begun);
    let params = [("code", code.as_str()), ("state", begun.state.as_str())];

    let (status, body) = callback(&server, None, &params);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "sign-in not begun in this browser");
    assert_no_echo(&body, &[&code, &begun.state, &begun.cookie]);

    let other_browser = begin(&server);
    let (status, body) = callback(&server, Some(&other_browser.cookie), &params);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "sign-in state not this browser's");
    let forged = "octostore_sign_in=Zm9yZ2VkLW5vbmNlLXZhbHVlLXRoYXQtaXMtbG9uZy1lbm91Z2g";
    let (status, _) = callback(&server, Some(forged), &params);
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert!(
        fake.github.lock().codes.contains_key(&code),
        "GitHub not asked"
    );
    assert!(server
        .store
        .user_by_login(&Login::parse("mona").unwrap())
        .unwrap()
        .is_none());
    let (status, body) = finish(&server, &begun, &code);
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A code stolen on its way to the victim's callback (from a log, a `Referer`, a proxy) is
/// redeemed by the thief with a sign-in of their own, state and cookie included: GitHub
/// refuses it, as the thief's PKCE verifier is not the one the code was issued for.
#[test]
fn a_stolen_code_is_refused_with_the_thiefs_own_state_and_cookie() {
    let fake = FakeGithub::start();
    fake.account(1, "victim");
    let server = server_for(&fake);
    let victims = begin(&server);
    let stolen = fake.code_for(1, &victims);

    let thiefs = begin(&server);
    let (status, body) = finish(&server, &thiefs, &stolen);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "GitHub refused the authorization code");
    assert_no_echo(&body, &[&stolen, &thiefs.state]);
    assert!(server
        .store
        .user_by_login(&Login::parse("victim").unwrap())
        .unwrap()
        .is_none());
}

/// `/auth/github` from one address, at most so many times in 10 minutes, keeps no one else's
/// sign-in out: neither one pending nor one begun during the flood. (The server knows its
/// clients by their connection's address; the flood comes from 127.0.0.2.)
#[test]
fn one_address_flooding_sign_ins_keeps_no_other_address_out() {
    const BEGUN_PER_ADDRESS: usize = 16;
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);
    let pending = begin(&server);

    let flooder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let flood = || flooder.get(server.url("/auth/github")).send().unwrap();
    for _ in 0..BEGUN_PER_ADDRESS {
        assert_eq!(flood().status(), StatusCode::FOUND);
    }
    for _ in 0..100 {
        let refused = flood();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "600");
        assert!(refused.headers().get("set-cookie").is_none());
        let body: Value = refused.json().unwrap();
        assert_eq!(body["error"], "too many sign-ins from this address");
    }

    let code = fake.code_for(1, &pending);
    assert_eq!(finish(&server, &pending, &code).0, StatusCode::OK);
    sign_in(&server, &fake, 1);

    // Once 10 minutes have passed since its sign-ins began, the address may begin more.
    server.advance(Duration::minutes(10));
    assert_eq!(flood().status(), StatusCode::FOUND);
}

#[test]
fn a_state_is_single_use() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);
    let begun = begin(&server);
    let code = fake.code_for(1, &begun);
    let (status, _) = finish(&server, &begun, &code);
    assert_eq!(status, StatusCode::OK);

    let again = fake.code_for(1, &begun);
    let (status, body) = finish(&server, &begun, &again);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "sign-in state already used");
    assert_no_echo(&body, &[&again, &begun.state]);
}

#[test]
fn a_state_expires_after_ten_minutes_of_the_servers_clock() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);

    let begun = begin(&server);
    server.advance(Duration::minutes(10) - Duration::seconds(1));
    let code = fake.code_for(1, &begun);
    let (status, body) = finish(&server, &begun, &code);
    assert_eq!(
        status,
        StatusCode::OK,
        "a state is good just short of 10 minutes: {body}"
    );

    let begun = begin(&server);
    server.advance(Duration::minutes(10));
    let code = fake.code_for(1, &begun);
    let (status, body) = finish(&server, &begun, &code);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "sign-in state expired");
    assert_no_echo(&body, &[&code, &begun.state]);
}

#[test]
fn a_code_github_refuses_is_401() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");
    let server = server_for(&fake);

    let (status, body) = finish(&server, &begin(&server), "0123456789abcdef0123");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "GitHub refused the authorization code");
    assert!(body["details"]
        .as_str()
        .unwrap()
        .contains("bad_verification_code"));

    // A code is good for one exchange at GitHub too.
    let begun = begin(&server);
    let code = fake.code_for(1, &begun);
    assert_eq!(finish(&server, &begun, &code).0, StatusCode::OK);
    let begun = begin(&server);
    let (status, body) = finish(&server, &begun, &code);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_no_echo(&body, &[&code, &begun.state]);
}

#[test]
fn a_callback_without_a_code_is_422_or_401_if_github_says_why() {
    let fake = FakeGithub::start();
    let server = server_for(&fake);
    let begun = begin(&server);
    let (status, body) = callback(&server, Some(&begun.cookie), &[("state", &begun.state)]);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["field"], "code");

    // The user clicked "Cancel" on GitHub.
    let begun = begin(&server);
    let params = [("error", "access_denied"), ("state", begun.state.as_str())];
    let (status, body) = callback(&server, Some(&begun.cookie), &params);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "GitHub did not grant sign-in");
    assert!(body["details"].as_str().unwrap().contains("access_denied"));
}

/// A whole sign-in as account 1 of `fake` on `server`: its status and body.
fn attempt(server: &Server, fake: &FakeGithub) -> (StatusCode, Value) {
    let begun = begin(server);
    finish(server, &begun, &fake.code_for(1, &begun))
}

#[test]
fn github_unreachable_or_answering_garbage_is_502() {
    let fake = FakeGithub::start();
    fake.account(1, "mona");

    // The web side (token exchange) is down.
    let server = server_with(settings(closed_port_url(), fake.api_url()));
    let (status, body) = attempt(&server, &fake);
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "GitHub is unreachable");
    drop(server);

    // The API (user) is down.
    let server = server_with(settings(fake.web_url(), closed_port_url()));
    let (status, body) = attempt(&server, &fake);
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    drop(server);

    // The server's OAuth app credentials are wrong: not the user's fault.
    let mut wrong_secret = settings(fake.web_url(), fake.api_url());
    wrong_secret.client_secret = "not-the-secret".into();
    let server = server_with(wrong_secret);
    let (status, body) = attempt(&server, &fake);
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["details"]
        .as_str()
        .unwrap()
        .contains("incorrect_client_credentials"));
    assert_no_echo(&body, &["not-the-secret", CLIENT_SECRET]);
    drop(server);

    // The API answers HTML instead of the user.
    let server = server_for(&fake);
    fake.answer_garbage_for_user();
    let (status, body) = attempt(&server, &fake);
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "GitHub answered unexpectedly");
}

#[test]
fn the_same_github_account_is_the_same_user_even_renamed() {
    let fake = FakeGithub::start();
    fake.account(9919, "octocat");
    let server = server_for(&fake);
    let first = token_of(&sign_in(&server, &fake, 9919));
    let response = http()
        .put(server.url("/flags/beta"))
        .bearer_auth(&first)
        .json(&json!({"enabled": true}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    fake.account(9919, "octocat-renamed");
    let again = sign_in(&server, &fake, 9919);
    assert_eq!(again["user"]["login"], "octocat-renamed");
    let second = token_of(&again);
    assert_ne!(first, second);

    let (status, flags) = get(&server, "/flags", &second);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flags["flags"][0]["name"], "beta", "{flags}");
    assert_eq!(flags["flags"][0]["enabled"], true);
    assert_eq!(
        get(&server, "/flags", &first).0,
        StatusCode::OK,
        "a user may hold several tokens"
    );

    let store = &server.store;
    let renamed = store
        .user_by_login(&Login::parse("octocat-renamed").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(renamed.source, UserSource::Github { github_id: 9919 });
    assert!(store
        .user_by_login(&Login::parse("octocat").unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn a_github_login_taken_by_another_user_is_409() {
    let fake = FakeGithub::start();
    fake.account(77, "hubot");
    let server = server_for(&fake);
    let local = server.token("hubot");
    let begun = begin(&server);
    let (status, body) = finish(&server, &begun, &fake.code_for(77, &begun));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        get(&server, "/locks", &local).0,
        StatusCode::OK,
        "the local user is intact"
    );
}

#[test]
fn without_oauth_settings_sign_in_is_404() {
    let server = Server::start();
    for path in ["/auth/github", "/auth/github/callback?code=abc&state=def"] {
        let response = http().get(server.url(path)).send().unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["code"], "sign_in_not_configured");
        assert_eq!(
            body["error"],
            "GitHub sign-in is not configured on this server"
        );
    }
}
