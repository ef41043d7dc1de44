//! GitHub sign-in (to be completed): settings and the flow's state.

use octostore_core::Result;

/// Where GitHub is and who we are to it.
#[derive(Debug, Clone)]
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

/// The configured OAuth client.
pub struct GithubOAuth {
    pub(crate) settings: GithubSettings,
}

impl GithubOAuth {
    /// Checks the settings.
    pub fn new(settings: GithubSettings) -> Result<Self> {
        Ok(Self { settings })
    }
}
