//! The server's shared state, and the one way a handler reaches the store: authenticate the
//! bearer token and run the operation as its user, on the blocking pool, so storage I/O never
//! stalls the async runtime.

use std::sync::Arc;

use octostore_core::{Error, Result, Session, Store};
use warp::reply::Response;

use crate::error::{error_response, unauthorized};
use crate::metrics::Metrics;
use crate::oauth::{GithubOAuth, GithubSettings};

/// How the server is set up beyond its store.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// GitHub sign-in; without it `/auth/github` answers 503 and local tokens still work.
    pub github: Option<GithubSettings>,
    /// The cap on connections and the timeouts for slow or idle clients; `App::new` ignores
    /// it, [`serve_with`](crate::serve_with) takes it.
    pub connections: crate::ConnectionLimits,
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Store,
    pub(crate) oauth: Option<Arc<GithubOAuth>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: u64,
}

impl App {
    /// The server's state over `store`.
    pub fn new(store: Store, options: ServerOptions) -> Result<Self> {
        // A config value may be sent pretty-printed, with a description beside it.
        let body_limit = store.settings().config_value_max_bytes as u64 * 2 + 16 * 1024;
        let oauth = options
            .github
            .map(|settings| GithubOAuth::new(settings).map(Arc::new))
            .transpose()?;
        Ok(Self {
            store,
            oauth,
            metrics: Arc::new(Metrics::new()),
            body_limit,
        })
    }

    /// The store the server serves.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `op` on the blocking pool and answers with its response or its error.
    pub(crate) async fn blocking<F>(&self, op: F) -> Response
    where
        F: FnOnce(&Store) -> Result<Response> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || op(&store)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => error_response(&e),
            Err(e) => error_response(&Error::Storage(format!(
                "the operation did not finish: {e}"
            ))),
        }
    }

    /// Authenticates `token`, then runs `op` as its user (see [`blocking`](Self::blocking)).
    pub(crate) async fn as_user<F>(&self, token: Option<String>, op: F) -> Response
    where
        F: FnOnce(&Session) -> Result<Response> + Send + 'static,
    {
        let Some(token) = token else {
            return unauthorized();
        };
        self.blocking(move |store| op(&store.authenticate(&token)?))
            .await
    }
}
