//! GitHub sign-in: the OAuth app's client (the `oauth2` crate), the pending `state`s that
//! guard the callback against forgery, and the two calls to GitHub (exchange the code, read
//! the user). The routes that use them, and their HTTP answers, are in `routes/auth.rs`.
//!
//! Secrets stay secret: the client secret, the codes, the states and the access tokens are
//! never logged, never put in an answer, and hidden from `Debug`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::url::Url;
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest, RedirectUrl,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use octostore_core::{Error, Result};
use parking_lot::Mutex;
use serde::Deserialize;

/// How long a `state` issued by `/auth/github` may be redeemed by the callback.
pub const STATE_TTL: Duration = Duration::minutes(10);

/// At most this many states are remembered; beyond it the oldest are forgotten, so a flood
/// of `/auth/github` costs bounded memory.
pub const MAX_PENDING_STATES: usize = 10_000;

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
    states: States,
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
            states: States::new(STATE_TTL, MAX_PENDING_STATES),
        })
    }

    /// GitHub's authorize URL for a new sign-in, carrying a fresh state issued at `now`.
    pub fn authorize_url(&self, now: DateTime<Utc>) -> Url {
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(SCOPE.to_owned()))
            .url();
        self.states.issue(state.secret().clone(), now);
        url
    }

    /// Redeems a callback's `state`: it must have been issued here less than [`STATE_TTL`]
    /// before `now`, and never redeemed.
    pub fn redeem_state(
        &self,
        state: Option<&str>,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), SignInError> {
        let state = state.ok_or(SignInError::State(StateProblem::Missing))?;
        self.states.redeem(state, now).map_err(SignInError::State)
    }

    /// Exchanges `code` for an access token, then reads whose it is.
    pub async fn github_user(&self, code: String) -> std::result::Result<GithubUser, SignInError> {
        let token = self.exchange(code).await?;
        self.user(&token).await
    }

    async fn exchange(&self, code: String) -> std::result::Result<AccessToken, SignInError> {
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
/// ones push it out.
struct States {
    ttl: Duration,
    cap: usize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    entries: HashMap<String, Issued>,
    order: VecDeque<String>,
}

struct Issued {
    at: DateTime<Utc>,
    used: bool,
}

impl States {
    fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            ttl,
            cap: cap.max(1),
            book: Mutex::new(Book::default()),
        }
    }

    fn issue(&self, state: String, now: DateTime<Utc>) {
        let mut book = self.book.lock();
        book.forget_issued_before(now - self.ttl * 2);
        while book.order.len() >= self.cap {
            book.forget_oldest();
        }
        if book
            .entries
            .insert(
                state.clone(),
                Issued {
                    at: now,
                    used: false,
                },
            )
            .is_none()
        {
            book.order.push_back(state);
        }
    }

    fn redeem(&self, state: &str, now: DateTime<Utc>) -> std::result::Result<(), StateProblem> {
        let mut book = self.book.lock();
        let outcome = match book.entries.get_mut(state) {
            None => Err(StateProblem::Unknown),
            Some(issued) if issued.used => Err(StateProblem::Used),
            Some(issued) => {
                issued.used = true;
                if now - issued.at >= self.ttl {
                    Err(StateProblem::Expired)
                } else {
                    Ok(())
                }
            }
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
        if let Some(oldest) = self.order.pop_front() {
            self.entries.remove(&oldest);
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

    #[test]
    fn a_state_is_good_once_and_for_ten_minutes() {
        let states = States::new(STATE_TTL, 10);
        states.issue("a".into(), t0());
        states.issue("b".into(), t0());
        assert_eq!(states.redeem("a", t0() + Duration::seconds(599)), Ok(()));
        assert_eq!(states.redeem("a", t0()), Err(StateProblem::Used));
        assert_eq!(
            states.redeem("b", t0() + STATE_TTL),
            Err(StateProblem::Expired)
        );
        assert_eq!(states.redeem("c", t0()), Err(StateProblem::Unknown));
    }

    #[test]
    fn states_are_forgotten_after_two_lifetimes() {
        let states = States::new(STATE_TTL, 10);
        states.issue("a".into(), t0());
        states.issue("b".into(), t0() + STATE_TTL);
        states.issue("c".into(), t0() + STATE_TTL * 2);
        assert_eq!(states.len(), 2, "a is forgotten");
        assert_eq!(
            states.redeem("a", t0() + STATE_TTL * 2),
            Err(StateProblem::Unknown)
        );
        assert_eq!(
            states.redeem("b", t0() + STATE_TTL * 2),
            Err(StateProblem::Expired)
        );
        assert_eq!(states.redeem("c", t0() + STATE_TTL * 2), Ok(()));
    }

    #[test]
    fn a_flood_of_states_pushes_out_the_oldest() {
        let states = States::new(STATE_TTL, 3);
        for (i, state) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            states.issue(state.into(), t0() + Duration::seconds(i as i64));
        }
        assert_eq!(states.len(), 3);
        assert_eq!(states.redeem("b", t0()), Err(StateProblem::Unknown));
        assert_eq!(states.redeem("c", t0()), Ok(()));
        assert_eq!(states.redeem("e", t0()), Ok(()));
    }

    #[test]
    fn a_clock_moved_back_breaks_nothing() {
        let states = States::new(STATE_TTL, 3);
        states.issue("a".into(), t0() + STATE_TTL * 5);
        states.issue("b".into(), t0());
        assert_eq!(states.redeem("a", t0()), Ok(()));
        assert_eq!(states.redeem("b", t0()), Ok(()));
    }

    #[test]
    fn the_endpoints_follow_the_base_urls() {
        let oauth = GithubOAuth::new(settings()).unwrap();
        let url = oauth.authorize_url(t0());
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
        assert_eq!(oauth.states.len(), 1);
        assert_eq!(oauth.redeem_state(Some(&query["state"]), t0()), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        type Spoil = fn(&mut GithubSettings);
        let cases: [(&str, Spoil); 6] = [
            ("github_client_id", |s| s.client_id = " ".into()),
            ("github_client_secret", |s| s.client_secret = String::new()),
            ("github_redirect_url", |s| {
                s.redirect_url = "/callback".into()
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
