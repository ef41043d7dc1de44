//! GitHub sign-in: the OAuth app's client (the `oauth2` crate), the pending `state`s that
//! guard the callback against forgery, and the two calls to GitHub (exchange the code, read
//! the user). The routes that use them, and their HTTP answers, are in `routes/auth.rs`.
//!
//! A sign-in is bound to the browser that began it and to this server's request: each state
//! is kept with the SHA-256 of a nonce that only that browser holds, in a cookie, and with a
//! PKCE (S256) verifier that GitHub checks when the code is exchanged, so a code is good only
//! for the sign-in it was issued to. Each address may begin [`MAX_BEGUN_PER_ORIGIN`]
//! sign-ins per [`STATE_TTL`], so that one client cannot push out everyone's pending states.
//!
//! Secrets stay secret: the client secret, the codes, the states, the nonces, the verifiers
//! and the access tokens are never logged, never put in an answer, and hidden from `Debug`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::url::Url;
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use octostore_core::{Error, Result};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long a `state` issued by `/auth/github` may be redeemed by the callback.
pub const STATE_TTL: Duration = Duration::minutes(10);

/// At most this many states are remembered; beyond it the oldest are forgotten, so a flood
/// of `/auth/github` costs bounded memory.
pub const MAX_PENDING_STATES: usize = 10_000;

/// How many sign-ins one [`Origin`] may begin in a [`STATE_TTL`], redeemed or not (a redeemed
/// state is remembered too): so one client holds at most a small share of the states, and
/// cannot push out other people's.
pub const MAX_BEGUN_PER_ORIGIN: usize = 16;

/// The cookie that binds a sign-in to the browser that began it.
pub const COOKIE: &str = "octostore_sign_in";

/// The scope asked of GitHub: the public profile, nothing more.
const SCOPE: &str = "read:user";

/// The largest answer read from GitHub's API.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Where GitHub is and who we are to it.
#[derive(Clone)]
pub struct GithubSettings {
    /// OAuth app client id.
    pub client_id: String,
    /// OAuth app client secret.
    pub client_secret: String,
    /// The public URL of `/auth/github/callback`.
    pub redirect_url: String,
    /// GitHub's web base URL (`https://github.com`).
    pub web_url: String,
    /// GitHub's API base URL (`https://api.github.com`).
    pub api_url: String,
}

impl fmt::Debug for GithubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("redirect_url", &self.redirect_url)
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// The oauth2 client with the endpoints GitHub sign-in uses: authorize and token.
type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The configured OAuth client and the states it has issued.
pub struct GithubOAuth {
    client: Client,
    http: reqwest::Client,
    user_url: Url,
    cookie_attributes: String,
    states: States,
}

/// A sign-in begun: where to send the browser, and the cookie to set on it.
pub struct Begun {
    /// GitHub's authorize URL, with the state and the PKCE challenge.
    pub url: Url,
    /// The `Set-Cookie` value holding the sign-in's nonce.
    pub set_cookie: String,
}

/// Where sign-ins come from, for the cap on each: an IPv4 address, or an IPv6 /64 (what one
/// subscriber is usually given); `None` when the server does not know (a request made
/// without a socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin(Option<IpAddr>);

impl Origin {
    /// The origin of a request from `peer`, the connection's address: forwarded headers are
    /// not trusted.
    pub fn of(peer: Option<IpAddr>) -> Self {
        Self(peer.map(|ip| match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        }))
    }
}

/// Why a sign-in may not begin: its origin began [`MAX_BEGUN_PER_ORIGIN`] in the last
/// [`STATE_TTL`]; it may begin another after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyBegun {
    pub retry_after: Duration,
}

/// The GitHub account that signed in.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubUser {
    /// GitHub's stable numeric id.
    pub id: u64,
    /// The login, which the account's owner may change.
    pub login: String,
    /// The avatar picture.
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// Why a sign-in did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// The callback's `state` is missing, unknown, used or expired (401).
    State(StateProblem),
    /// GitHub sent the user back with an error instead of a code, e.g. `access_denied` (401).
    Denied(Option<String>),
    /// GitHub refused to exchange the code: wrong, expired or already used (401).
    Refused(Option<String>),
    /// GitHub refused this server's OAuth app credentials or redirect URL (502).
    Misconfigured(Option<String>),
    /// GitHub could not be reached (502).
    Unreachable,
    /// GitHub answered something other than what its API promises (502).
    BadAnswer(&'static str),
}

/// What is wrong with a callback's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateProblem {
    /// The callback has none.
    Missing,
    /// This server did not issue it (or forgot it long ago).
    Unknown,
    /// It was redeemed already.
    Used,
    /// It was issued more than [`STATE_TTL`] ago.
    Expired,
    /// The browser sent no sign-in cookie: it did not begin this sign-in (or refuses cookies).
    NoCookie,
    /// The browser's sign-in cookie is another sign-in's.
    WrongCookie,
}

impl GithubOAuth {
    /// Checks the settings and builds the client.
    pub fn new(settings: GithubSettings) -> Result<Self> {
        if settings.client_id.trim().is_empty() {
            return Err(Error::invalid("github_client_id", "must not be empty"));
        }
        if settings.client_secret.trim().is_empty() {
            return Err(Error::invalid("github_client_secret", "must not be empty"));
        }
        let redirect = http_url("github_redirect_url", settings.redirect_url.trim())?;
        let web = base_url("github_url", &settings.web_url)?;
        let api = base_url("github_api_url", &settings.api_url)?;
        let authorize = http_url("github_url", &format!("{web}/login/oauth/authorize"))?;
        let token = http_url("github_url", &format!("{web}/login/oauth/access_token"))?;
        let user_url = http_url("github_api_url", &format!("{api}/user"))?;
        let cookie_attributes = cookie_attributes(&redirect)?;

        let client = BasicClient::new(ClientId::new(settings.client_id.trim().to_owned()))
            .set_client_secret(ClientSecret::new(settings.client_secret.trim().to_owned()))
            .set_auth_uri(AuthUrl::from_url(authorize))
            .set_token_uri(TokenUrl::from_url(token))
            .set_redirect_uri(RedirectUrl::from_url(redirect))
            // GitHub takes the credentials as form fields.
            .set_auth_type(AuthType::RequestBody);
        let http = reqwest::Client::builder()
            // oauth2's advice: following redirects would expose the client to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            // GitHub refuses API calls without a User-Agent.
            .user_agent("octostore")
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::invalid("github", format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            client,
            http,
            user_url,
            cookie_attributes,
            states: States::new(STATE_TTL, MAX_PENDING_STATES, MAX_BEGUN_PER_ORIGIN),
        })
    }

    /// Begins a sign-in from `origin` at `now`: a fresh state, nonce and PKCE verifier, kept
    /// for the callback; GitHub's authorize URL carries the state and the challenge, the
    /// cookie the nonce.
    pub fn begin(
        &self,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> std::result::Result<Begun, TooManyBegun> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random_len(32);
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(SCOPE.to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            origin,
            nonce: digest(nonce.secret()),
            verifier,
        };
        self.states.issue(state.secret().clone(), pending, now)?;
        Ok(Begun {
            url,
            set_cookie: self.cookie(nonce.secret(), STATE_TTL.num_seconds()),
        })
    }

    /// The `Set-Cookie` value that removes the sign-in cookie: the callback sends it whatever
    /// its outcome.
    pub fn clear_cookie(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: i64) -> String {
        format!(
            "{COOKIE}={value}; Max-Age={max_age}{}",
            self.cookie_attributes
        )
    }

    /// Redeems a callback's `state`, sent by a browser holding the sign-in cookie `cookie`:
    /// the state must have been issued here less than [`STATE_TTL`] before `now`, never
    /// redeemed, and to that browser. Answers the PKCE verifier for the code's exchange. A
    /// state sent without its cookie stays good for its own browser.
    pub fn redeem_state(
        &self,
        state: Option<&str>,
        cookie: Option<&str>,
        now: DateTime<Utc>,
    ) -> std::result::Result<PkceCodeVerifier, SignInError> {
        let state = state.ok_or(SignInError::State(StateProblem::Missing))?;
        self.states
            .redeem(state, cookie, now)
            .map_err(SignInError::State)
    }

    /// Exchanges `code` (with the verifier of the sign-in's PKCE challenge) for an access
    /// token, then reads whose it is.
    pub async fn github_user(
        &self,
        code: String,
        verifier: PkceCodeVerifier,
    ) -> std::result::Result<GithubUser, SignInError> {
        let token = self.exchange(code, verifier).await?;
        self.user(&token).await
    }

    async fn exchange(
        &self,
        code: String,
        verifier: PkceCodeVerifier,
    ) -> std::result::Result<AccessToken, SignInError> {
        // The status of GitHub's answer, which oauth2's errors do not all keep.
        // (Owned by the future, not borrowed: warp needs the handler's future to be `Send`
        // for every lifetime, which a borrowing closure's future cannot show.)
        let status = Arc::new(AtomicU16::new(0));
        let http = |request: HttpRequest| {
            let status = status.clone();
            let client = self.http.clone();
            async move {
                let response = client.call(request).await?;
                status.store(response.status().as_u16(), Ordering::Relaxed);
                Ok::<_, HttpClientError<reqwest::Error>>(response)
            }
        };
        let result = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await;
        let status = status.load(Ordering::Relaxed);
        let refusal = match result {
            Ok(answer) => return Ok(answer.access_token().clone()),
            Err(RequestTokenError::Request(e)) => {
                tracing::warn!(error = %e, "GitHub's token endpoint is unreachable");
                return Err(SignInError::Unreachable);
            }
            Err(RequestTokenError::ServerResponse(refusal)) => Some(refusal),
            // GitHub answers a refused code with status 200 and an error object, which
            // oauth2 fails to read as a token; the body is read here only as an error.
            Err(RequestTokenError::Parse(_, body)) => {
                serde_json::from_slice::<BasicErrorResponse>(&body).ok()
            }
            Err(RequestTokenError::Other(_)) => None,
        };
        let code = refusal
            .as_ref()
            .and_then(|r| error_code(r.error().as_ref()));
        let outcome = match (refusal.is_some(), status) {
            (_, 500..) => SignInError::BadAnswer("the token endpoint failed"),
            (true, _) if is_client_problem(code.as_deref()) => SignInError::Misconfigured(code),
            (true, _) | (false, 400..=499) => SignInError::Refused(code),
            (false, _) => SignInError::BadAnswer("the token endpoint answered no token"),
        };
        match &outcome {
            SignInError::Refused(code) => {
                tracing::info!(status, github_error = ?code, "GitHub refused an authorization code")
            }
            other => tracing::warn!(status, problem = ?other, "GitHub's token endpoint failed"),
        }
        Err(outcome)
    }

    async fn user(&self, token: &AccessToken) -> std::result::Result<GithubUser, SignInError> {
        let response = self
            .http
            .get(self.user_url.clone())
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header(reqwest::header::USER_AGENT, "octostore")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "GitHub's API is unreachable");
                SignInError::Unreachable
            })?;
        let status = response.status();
        let body = read_capped(response).await?;
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                "GitHub's API refused to show the user"
            );
            return Err(SignInError::BadAnswer(
                "the API refused to show the signed-in user",
            ));
        }
        serde_json::from_slice::<GithubUser>(&body).map_err(|e| {
            tracing::warn!(error = %e, "GitHub's API answered an unreadable user");
            SignInError::BadAnswer("the API answered an unreadable user")
        })
    }
}

/// The body of `response`, up to [`MAX_ANSWER_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> std::result::Result<Vec<u8>, SignInError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => return Err(SignInError::BadAnswer("the API answered too much")),
            Ok(None) => return Ok(body),
            Err(e) => {
                tracing::warn!(error = %e, "GitHub's API answer was cut short");
                return Err(SignInError::Unreachable);
            }
        }
    }
}

/// GitHub's error code, if it looks like one (so an answer cannot smuggle text into ours).
fn error_code(raw: &str) -> Option<String> {
    let plausible = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    plausible.then(|| raw.to_owned())
}

/// Whether GitHub's error code blames this server's OAuth app rather than the user's code.
fn is_client_problem(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "incorrect_client_credentials"
                | "redirect_uri_mismatch"
                | "invalid_client"
                | "unauthorized_client"
                | "unsupported_grant_type"
        )
    )
}

/// What the callback said, for `routes/auth.rs`: an error code from GitHub, sanitized.
pub fn denial(raw: Option<&str>) -> SignInError {
    SignInError::Denied(raw.and_then(error_code))
}

/// `raw` as an http(s) URL, or an error naming `setting`.
fn http_url(setting: &'static str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw)
        .map_err(|e| Error::invalid(setting, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(Error::invalid(
            setting,
            format!("{raw:?} is not an http(s) URL with a host"),
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(
            setting,
            format!("{raw:?} must not have a fragment"),
        ));
    }
    Ok(url)
}

/// The attributes of the sign-in cookie: sent only to the callback's path; never to scripts;
/// with top-level navigations from GitHub but not with other sites' requests; only over
/// HTTPS when the callback's public URL is HTTPS (a server behind a TLS proxy sees plain
/// HTTP, so the public URL decides, not the connection).
fn cookie_attributes(redirect: &Url) -> Result<String> {
    let path = redirect.path();
    if path.contains([';', ',']) {
        return Err(Error::invalid(
            "github_redirect_url",
            "its path must not contain ';' or ',' (it is the sign-in cookie's path)",
        ));
    }
    let secure = if redirect.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    Ok(format!("; Path={path}; HttpOnly; SameSite=Lax{secure}"))
}

/// The SHA-256 of a sign-in nonce, as it is kept.
fn digest(nonce: &str) -> [u8; 32] {
    Sha256::digest(nonce.as_bytes()).into()
}

/// `raw` as a base URL to put paths after: an http(s) URL without query, trailing slashes
/// trimmed.
fn base_url(setting: &'static str, raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = http_url(setting, trimmed)?;
    if url.query().is_some() {
        return Err(Error::invalid(
            setting,
            format!("{raw:?} must not have a query"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// The states issued and not yet forgotten, in the order they were issued. A redeemed state
/// is kept (marked used) so that its reuse is told apart from a forgery; every state is
/// forgotten two [`STATE_TTL`]s after its issue, or sooner when [`MAX_PENDING_STATES`] newer
/// ones push it out. Each origin may be issued `per_origin` states per TTL.
struct States {
    ttl: Duration,
    cap: usize,
    per_origin: usize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    entries: HashMap<String, Issued>,
    order: VecDeque<String>,
    /// The issue instants of each origin's states issued less than a TTL ago, oldest first;
    /// only of states still in `entries`, so it is as bounded as they are.
    begun: HashMap<Origin, VecDeque<DateTime<Utc>>>,
}

/// What a state was issued with, for its callback.
struct Pending {
    origin: Origin,
    /// The SHA-256 of the nonce in the browser's cookie.
    nonce: [u8; 32],
    verifier: PkceCodeVerifier,
}

struct Issued {
    at: DateTime<Utc>,
    origin: Origin,
    nonce: [u8; 32],
    /// Taken when the state is redeemed: `None` once used.
    verifier: Option<PkceCodeVerifier>,
}

impl States {
    fn new(ttl: Duration, cap: usize, per_origin: usize) -> Self {
        Self {
            ttl,
            cap: cap.max(1),
            per_origin: per_origin.max(1),
            book: Mutex::new(Book::default()),
        }
    }

    fn issue(
        &self,
        state: String,
        pending: Pending,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), TooManyBegun> {
        let mut book = self.book.lock();
        book.forget_issued_before(now - self.ttl * 2);
        let begun = book.begun.entry(pending.origin).or_default();
        while begun.front().is_some_and(|at| *at <= now - self.ttl) {
            begun.pop_front();
        }
        if let Some(oldest) = begun.front().filter(|_| begun.len() >= self.per_origin) {
            return Err(TooManyBegun {
                retry_after: *oldest + self.ttl - now,
            });
        }
        begun.push_back(now);
        while book.order.len() >= self.cap {
            book.forget_oldest();
        }
        let issued = Issued {
            at: now,
            origin: pending.origin,
            nonce: pending.nonce,
            verifier: Some(pending.verifier),
        };
        if book.entries.insert(state.clone(), issued).is_none() {
            book.order.push_back(state);
        }
        Ok(())
    }

    fn redeem(
        &self,
        state: &str,
        cookie: Option<&str>,
        now: DateTime<Utc>,
    ) -> std::result::Result<PkceCodeVerifier, StateProblem> {
        let mut book = self.book.lock();
        let outcome = match book.entries.get_mut(state) {
            None => Err(StateProblem::Unknown),
            Some(issued) if issued.verifier.is_none() => Err(StateProblem::Used),
            Some(issued) if now - issued.at >= self.ttl => {
                issued.verifier = None;
                Err(StateProblem::Expired)
            }
            // (Digests compared: how long a comparison takes tells nothing of the nonce.)
            Some(issued) => match cookie.map(digest) {
                None => Err(StateProblem::NoCookie),
                Some(nonce) if nonce != issued.nonce => Err(StateProblem::WrongCookie),
                Some(_) => issued.verifier.take().ok_or(StateProblem::Used),
            },
        };
        book.forget_issued_before(now - self.ttl * 2);
        outcome
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.book.lock().entries.len()
    }
}

impl Book {
    /// Forgets states issued at or before `cutoff`, oldest first. (The order is of issue; if
    /// the clock went back, a newer state may stop the sweep early, which only delays it.)
    fn forget_issued_before(&mut self, cutoff: DateTime<Utc>) {
        while let Some(oldest) = self.order.front() {
            match self.entries.get(oldest) {
                Some(issued) if issued.at > cutoff => break,
                _ => self.forget_oldest(),
            }
        }
    }

    fn forget_oldest(&mut self) {
        let Some(oldest) = self.order.pop_front() else {
            return;
        };
        let Some(issued) = self.entries.remove(&oldest) else {
            return;
        };
        if let Some(begun) = self.begun.get_mut(&issued.origin) {
            if let Some(i) = begun.iter().position(|at| *at == issued.at) {
                begun.remove(i);
            }
            if begun.is_empty() {
                self.begun.remove(&issued.origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_704_067_200, 0).unwrap()
    }

    fn settings() -> GithubSettings {
        GithubSettings {
            client_id: "id".into(),
            client_secret: "hush-hush".into(),
            redirect_url: "https://octostore.example/auth/github/callback".into(),
            web_url: "https://github.example/".into(),
            api_url: "https://api.github.example/api/v3//".into(),
        }
    }

    const NONCE: &str = "the-browsers-nonce";

    /// What a state is issued with, from `origin` (one of a few numbered addresses).
    fn pending(origin: u8) -> Pending {
        Pending {
            origin: Origin::of(Some(IpAddr::from([192, 0, 2, origin]))),
            nonce: digest(NONCE),
            verifier: PkceCodeChallenge::new_random_sha256().1,
        }
    }

    fn states(cap: usize) -> States {
        States::new(STATE_TTL, cap, MAX_BEGUN_PER_ORIGIN)
    }

    /// Redeems `state` with the browser's cookie: whether it went through.
    fn redeem(states: &States, state: &str, now: DateTime<Utc>) -> Result<(), StateProblem> {
        states.redeem(state, Some(NONCE), now).map(drop)
    }

    #[test]
    fn a_state_is_good_once_and_for_ten_minutes() {
        let states = states(10);
        states.issue("a".into(), pending(1), t0()).unwrap();
        states.issue("b".into(), pending(1), t0()).unwrap();
        assert_eq!(redeem(&states, "a", t0() + Duration::seconds(599)), Ok(()));
        assert_eq!(redeem(&states, "a", t0()), Err(StateProblem::Used));
        assert_eq!(
            redeem(&states, "b", t0() + STATE_TTL),
            Err(StateProblem::Expired)
        );
        assert_eq!(redeem(&states, "c", t0()), Err(StateProblem::Unknown));
    }

    #[test]
    fn a_state_is_redeemed_only_with_its_browsers_cookie() {
        let states = states(10);
        let issued = pending(1);
        let verifier = issued.verifier.secret().clone();
        states.issue("a".into(), issued, t0()).unwrap();
        let redeem = |cookie| states.redeem("a", cookie, t0()).map(|v| v.secret().clone());
        assert_eq!(redeem(None), Err(StateProblem::NoCookie));
        assert_eq!(redeem(Some("another")), Err(StateProblem::WrongCookie));
        assert_eq!(
            redeem(Some(NONCE)),
            Ok(verifier),
            "not used up by the refusals"
        );
        assert_eq!(redeem(Some(NONCE)), Err(StateProblem::Used));
    }

    #[test]
    fn states_are_forgotten_after_two_lifetimes() {
        let states = states(10);
        states.issue("a".into(), pending(1), t0()).unwrap();
        states
            .issue("b".into(), pending(1), t0() + STATE_TTL)
            .unwrap();
        states
            .issue("c".into(), pending(1), t0() + STATE_TTL * 2)
            .unwrap();
        assert_eq!(states.len(), 2, "a is forgotten");
        assert_eq!(
            redeem(&states, "a", t0() + STATE_TTL * 2),
            Err(StateProblem::Unknown)
        );
        assert_eq!(
            redeem(&states, "b", t0() + STATE_TTL * 2),
            Err(StateProblem::Expired)
        );
        assert_eq!(redeem(&states, "c", t0() + STATE_TTL * 2), Ok(()));
    }

    #[test]
    fn a_flood_of_states_pushes_out_the_oldest() {
        let states = states(3);
        for (i, state) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            let at = t0() + Duration::seconds(i as i64);
            states.issue(state.into(), pending(i as u8), at).unwrap();
        }
        assert_eq!(states.len(), 3);
        assert_eq!(redeem(&states, "b", t0()), Err(StateProblem::Unknown));
        assert_eq!(redeem(&states, "c", t0()), Ok(()));
        assert_eq!(redeem(&states, "e", t0()), Ok(()));
    }

    #[test]
    fn one_origin_begins_a_few_sign_ins_a_lifetime_and_pushes_out_no_one() {
        let states = States::new(STATE_TTL, 5, 2);
        states.issue("theirs".into(), pending(1), t0()).unwrap();
        let at = |seconds| t0() + Duration::seconds(seconds);
        states.issue("a".into(), pending(2), at(1)).unwrap();
        states.issue("b".into(), pending(2), at(2)).unwrap();
        assert_eq!(redeem(&states, "a", at(3)), Ok(()), "redeemed still counts");
        for i in 0..10 {
            assert_eq!(
                states.issue(format!("flood{i}"), pending(2), at(3)),
                Err(TooManyBegun {
                    retry_after: STATE_TTL - Duration::seconds(2)
                })
            );
        }
        assert_eq!(redeem(&states, "theirs", at(4)), Ok(()));
        // A lifetime after its first, the flooding origin may begin another.
        states.issue("c".into(), pending(2), at(601)).unwrap();
        assert!(states.issue("d".into(), pending(2), at(601)).is_err());
    }

    #[test]
    fn an_origin_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let of = |ip: &str| Origin::of(Some(ip.parse().unwrap()));
        assert_eq!(of("2001:db8:1:2:aaaa::1"), of("2001:db8:1:2:bbbb::2"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:192.0.2.1"), of("192.0.2.1"));
        assert_ne!(of("192.0.2.1"), of("192.0.2.2"));
        assert_ne!(of("192.0.2.1"), Origin::of(None));
    }

    #[test]
    fn a_clock_moved_back_breaks_nothing() {
        let states = states(3);
        states
            .issue("a".into(), pending(1), t0() + STATE_TTL * 5)
            .unwrap();
        states.issue("b".into(), pending(1), t0()).unwrap();
        assert_eq!(redeem(&states, "a", t0()), Ok(()));
        assert_eq!(redeem(&states, "b", t0()), Ok(()));
    }

    #[test]
    fn the_endpoints_follow_the_base_urls_and_the_cookie_the_callback() {
        let oauth = GithubOAuth::new(settings()).unwrap();
        let begun = oauth.begin(Origin::of(None), t0()).unwrap();
        let url = begun.url;
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://github.example/login/oauth/authorize")
        );
        assert_eq!(
            oauth.user_url.as_str(),
            "https://api.github.example/api/v3/user"
        );
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["scope"], "read:user");
        assert_eq!(query["client_id"], "id");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(oauth.states.len(), 1);
        let (pair, attributes) = begun.set_cookie.split_once("; ").unwrap();
        assert_eq!(
            attributes,
            "Max-Age=600; Path=/auth/github/callback; HttpOnly; SameSite=Lax; Secure"
        );
        let nonce = pair.strip_prefix("octostore_sign_in=").unwrap();
        assert!(nonce.len() >= 43, "{nonce}");
        assert!(oauth
            .redeem_state(Some(&query["state"]), Some(nonce), t0())
            .is_ok());
        assert_eq!(
            oauth.clear_cookie(),
            "octostore_sign_in=; Max-Age=0; Path=/auth/github/callback; HttpOnly; SameSite=Lax; \
             Secure"
        );
        let mut plain = settings();
        plain.redirect_url = "http://127.0.0.1:8080/octo/auth/github/callback".into();
        assert_eq!(
            GithubOAuth::new(plain).unwrap().clear_cookie(),
            "octostore_sign_in=; Max-Age=0; Path=/octo/auth/github/callback; HttpOnly; \
             SameSite=Lax"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        type Spoil = fn(&mut GithubSettings);
        let cases: [(&str, Spoil); 7] = [
            ("github_client_id", |s| s.client_id = " ".into()),
            ("github_client_secret", |s| s.client_secret = String::new()),
            ("github_redirect_url", |s| {
                s.redirect_url = "/callback".into()
            }),
            ("github_redirect_url", |s| {
                s.redirect_url = "https://x/a;b/callback".into()
            }),
            ("github_url", |s| s.web_url = "github.com".into()),
            ("github_url", |s| s.web_url = "ftp://github.com".into()),
            ("github_api_url", |s| s.api_url = "https://x?y=1".into()),
        ];
        for (setting, spoil) in cases {
            let mut bad = settings();
            spoil(&mut bad);
            match GithubOAuth::new(bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, setting),
                other => panic!("{setting}: {:?}", other.err()),
            }
        }
    }

    #[test]
    fn debug_hides_the_client_secret() {
        assert!(!format!("{:?}", settings()).contains("hush-hush"));
    }

    #[test]
    fn only_plausible_error_codes_are_repeated() {
        assert_eq!(
            error_code("access_denied").as_deref(),
            Some("access_denied")
        );
        assert_eq!(error_code("<b>hi</b>"), None);
        assert_eq!(error_code(""), None);
        assert_eq!(error_code(&"a".repeat(65)), None);
    }
}
