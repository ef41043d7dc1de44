//! The server's shared state, and the one way a handler reaches the store: authenticate the
//! bearer token and run the operation as its user, where the backend runs best (see
//! [`Runner`]), so storage I/O never stalls the async runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use octostore_core::values::error::Chain;
use octostore_core::{
    Caller, ChangeWaiter, Committer, Concurrency, Error, Login, Result, Session, Store,
};
use tokio::sync::{watch, Notify, Semaphore};
use warp::reply::Response;

use crate::error::error_response;
use crate::large_reads::LargeReads;
use crate::metrics::Metrics;
use crate::oauth::{GithubOAuth, GithubSettings};
use crate::operation::requests::MAX_WAIT;
use crate::server::ConnectionLimits;

/// How the server is set up beyond its store.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// GitHub sign-in; without it `/auth/github` answers 404 and local tokens still work.
    pub github: Option<GithubSettings>,
    /// The cap on connections and the timeouts for slow or idle clients; `App::new` ignores
    /// it, `serve_with` takes it.
    pub connections: ConnectionLimits,
    /// How many operations may wait for the store, and for how long.
    pub queue: QueueLimits,
    /// One line per request at INFO on the target [`ACCESS_LOG_TARGET`](crate::ACCESS_LOG_TARGET):
    /// method, route, status, duration, client address, body bytes. Off by default.
    pub access_log: bool,
    /// The longest a request waits for something (a lock in its queue, a change in a long
    /// poll) whatever it asks, below the API's own bound (300 s); `None`: that bound. A wait
    /// cut short ends as a wait that ran out does.
    pub max_wait: Option<Duration>,
    /// The web console at `/ui` (`octostore serve` turns it on unless `--no-ui`); off, `/ui`
    /// is a path like any other the API does not have: 404.
    pub console: bool,
}

/// How many operations may wait for the store, and for how long: past either, a request is
/// answered 503 with `Retry-After` and its operation is not run.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Operations queued or running at once (at least 1).
    pub max_queued: usize,
    /// How long an operation may wait for the store (for the operations queued before it,
    /// or for another process holding the file) before it starts.
    pub timeout: Duration,
}

impl Default for QueueLimits {
    /// 4 096 operations (a tenth of a second of work for the file's committer); 10 s, well
    /// within the 30 s that HTTP clients commonly wait.
    fn default() -> Self {
        Self {
            max_queued: 4096,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Store,
    pub(crate) oauth: Option<Arc<GithubOAuth>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: u64,
    /// Whether each request is logged (see [`ServerOptions::access_log`]).
    pub(crate) access_log: bool,
    /// Whether `/ui` serves the web console (see [`ServerOptions::console`]).
    pub(crate) console: bool,
    runner: Runner,
    queue_timeout: Duration,
    large_reads: LargeReads,
    last_live_count: Arc<tokio::sync::Mutex<Option<LiveCount>>>,
    /// `true` once the server begins to shut down: waits for changes end then.
    closing: Arc<watch::Sender<bool>>,
    /// The longest a request waits (see [`ServerOptions::max_wait`]).
    max_wait: Duration,
}

/// A count of the live locks and when it was made, by the store's clock (see
/// [`App::live_locks`]).
type LiveCount = (DateTime<Utc>, usize);

/// How long a count of the live locks is shown again rather than made anew.
const LIVE_COUNT_REUSED_FOR: TimeDelta = TimeDelta::seconds(1);

/// How long `/ready` waits for the store to answer its read.
const READY_DEADLINE: Duration = Duration::from_secs(2);

/// The login `/ready` looks up: whether such a user exists does not matter, only that the
/// store answers.
const READY_PROBE_LOGIN: &str = "octostore-ready";

/// Where operations run, by the backend's [`Concurrency`].
#[derive(Clone)]
enum Runner {
    /// Memory: on the runtime thread itself (an operation holds one mutex for ~100 ns; a
    /// hand-off to another thread would cost more than the operation).
    Inline,
    /// A file: queued to the committer thread, which commits what queued up together.
    Committer(Committer),
    /// A database server: on the blocking pool, many connections at once, as many
    /// operations queued or running as the semaphore has permits.
    Pool { slots: Arc<Semaphore>, max: usize },
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
        let max_queued = options.queue.max_queued.max(1);
        let runner = match store.concurrency() {
            Concurrency::NonBlocking => Runner::Inline,
            Concurrency::Serial => Runner::Committer(
                Committer::start(store.clone(), max_queued)
                    .map_err(|e| Error::storage_caused("cannot start the committer", e))?,
            ),
            Concurrency::Parallel => Runner::Pool {
                slots: Arc::new(Semaphore::new(max_queued)),
                max: max_queued,
            },
        };
        Ok(Self {
            store,
            oauth,
            metrics: Arc::new(Metrics::new()),
            body_limit,
            access_log: options.access_log,
            console: options.console,
            runner,
            queue_timeout: options.queue.timeout,
            large_reads: LargeReads::start()
                .map_err(|e| Error::storage_caused("cannot start the large reads' threads", e))?,
            last_live_count: Arc::default(),
            closing: Arc::new(watch::Sender::new(false)),
            max_wait: options.max_wait.map_or(MAX_WAIT, |max| max.min(MAX_WAIT)),
        })
    }

    /// Ends every wait for changes (`until_changed`) and every stream of them: the server is
    /// shutting down, and lets each request in flight finish.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver of whether the server is shutting down.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// How long a request that asks to wait `asked` waits on this server.
    pub(crate) fn capped_wait(&self, asked: Duration) -> Duration {
        asked.min(self.max_wait)
    }

    /// Returns once the server begins to shut down: a waiting acquire ends then, so a
    /// graceful shutdown is not held up for the rest of its wait.
    pub(crate) async fn stopped(&self) {
        // The sender lives as long as `self`, so this ends only when the flag is set.
        let _ = self.closing().wait_for(|closing| *closing).await;
    }

    /// The store's change signal as a task's wake-up: `changed` is notified after each
    /// change, until the returned waiter is dropped. Register before reading: a change after
    /// the read leaves a permit that the next `notified()` takes at once.
    pub(crate) fn on_change(&self, changed: &Arc<Notify>) -> ChangeWaiter {
        let changed = changed.clone();
        self.store.on_change(Box::new(move || changed.notify_one()))
    }

    /// The response of `attempt`, made at once, then again after each change to the store,
    /// until it says it is ready or `wait` has passed (or the server begins to shut down):
    /// then its last response. Between attempts the request holds no thread, committer or
    /// pool slot, only this future; a client that disconnects drops it.
    pub(crate) async fn until_changed<F, A>(&self, wait: Duration, mut attempt: A) -> Response
    where
        A: FnMut() -> F,
        F: Future<Output = (Response, bool)>,
    {
        let deadline = tokio::time::Instant::now() + self.capped_wait(wait);
        let changed = Arc::new(Notify::new());
        let _waiter = self.on_change(&changed);
        let mut closing = self.closing();
        loop {
            let (response, ready) = attempt().await;
            if ready || tokio::time::Instant::now() >= deadline || *closing.borrow() {
                return response;
            }
            tokio::select! {
                () = changed.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
                _ = closing.wait_for(|closing| *closing) => {}
            }
        }
    }

    /// The store the server serves.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `op` where the backend runs best and answers with its response or its error.
    pub(crate) async fn run<F>(&self, op: F) -> Response
    where
        F: FnOnce(&Store) -> Result<Response> + Send + 'static,
    {
        self.run_then(op, |response| response).await
    }

    /// Runs `op` where the backend runs best and answers with `reply` of its value (made on
    /// this thread, not the store's: on a file the committer runs one operation at a time) or
    /// with its error.
    async fn run_then<T, F, R>(&self, op: F, reply: R) -> Response
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        R: FnOnce(T) -> Response,
    {
        respond(self.outcome(op).await, reply)
    }

    /// `op`'s outcome, run where the backend runs best; `None` if it did not finish. Queued
    /// (committer, pool), `op` runs only if it starts within the queue timeout and while this
    /// request is still wanted: a client that disconnects drops this future, and with it
    /// `present`.
    async fn outcome<T, F>(&self, op: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        self.outcome_by(Instant::now() + self.queue_timeout, op)
            .await
    }

    /// [`outcome`](Self::outcome), queued `op` starting only until `deadline`.
    async fn outcome_by<T, F>(&self, deadline: Instant, op: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        match &self.runner {
            // Run now, while the request is there: no caller to track.
            Runner::Inline => Some(op(&self.store)),
            Runner::Committer(committer) => {
                let present = Arc::new(());
                let (sender, answer) = tokio::sync::oneshot::channel();
                let caller = Self::caller(deadline, &present);
                let queued = committer.submit(caller, op, move |outcome| {
                    let _ = sender.send(outcome);
                });
                match queued {
                    Ok(()) => answer.await.ok(),
                    Err(full) => Some(Err(full)),
                }
            }
            Runner::Pool { slots, max } => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let present = Arc::new(());
                    let caller = Self::caller(deadline, &present);
                    let op = move |store: &Store| {
                        let _slot = slot;
                        caller.still_waiting()?;
                        op(store)
                    };
                    self.on_pool(op).await
                }
                Err(_) => Some(Err(Error::Unavailable(format!(
                    "{max} operations are already queued or running"
                )))),
            },
        }
    }

    /// A queued operation's caller: it waits until `deadline`, and is gone once `present`,
    /// which lives in the request's future, is dropped with it.
    fn caller(deadline: Instant, present: &Arc<()>) -> Caller {
        Caller::until(deadline).present_while(present)
    }

    /// Whether the store answers (`/ready`): a read of one user, run as every operation is
    /// (so a stuck committer or a pool with no free slot or connection shows too), answered
    /// within [`READY_DEADLINE`] or the queue timeout if shorter. `Err`: why not, in words.
    pub(crate) async fn ready(&self) -> std::result::Result<(), String> {
        let wait = READY_DEADLINE.min(self.queue_timeout);
        let login = Login::parse(READY_PROBE_LOGIN).expect("a valid login");
        let read = self.outcome_by(Instant::now() + wait, move |store| {
            store.user_by_login(&login).map(drop)
        });
        match tokio::time::timeout(wait, read).await {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(format!("the store failed a read: {}", Chain(&e))),
            Ok(None) => Err("the store's read did not finish".to_owned()),
            Err(_) => Err(format!(
                "the store did not answer a read within {} ms",
                wait.as_millis()
            )),
        }
    }

    /// Whether `token` is good, asked where the backend runs best: for a request whose body
    /// is read past a few KiB only once its token is known good (`request::read_body`).
    pub(crate) async fn authenticate(&self, token: String) -> Result<()> {
        let outcome = self.outcome(move |store| store.authenticate(&token).map(drop));
        outcome.await.unwrap_or_else(|| Err(not_finished()))
    }

    /// How many locks are held right now (for `/metrics`), counted on the blocking pool
    /// beside the store's runner, in batches (`Store::live_lease_count`): on the committer, a
    /// count of a large file would hold every write for its whole length. `/metrics` is public,
    /// so one count runs at a time and is shown again for [`LIVE_COUNT_REUSED_FOR`] of the
    /// store's clock: scrapes, however many, cost at most one count a second.
    pub(crate) async fn live_locks(&self) -> Result<usize> {
        let mut last = self.last_live_count.lock().await;
        let now = self.store.now();
        if let Some((at, live)) = *last {
            if (TimeDelta::zero()..LIVE_COUNT_REUSED_FOR).contains(&(now - at)) {
                return Ok(live);
            }
        }
        let counted = self.on_pool(|store| store.live_lease_count()).await;
        let live = counted.unwrap_or_else(|| Err(not_finished()))?;
        *last = Some((now, live));
        Ok(live)
    }

    /// `op`'s outcome on the blocking pool; `None` if it did not finish.
    async fn on_pool<T, F>(&self, op: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || op(&store)).await.ok()
    }

    /// `op`'s outcome as `session`, run where the backend runs best, as one operation with
    /// its own queue deadline.
    pub(crate) async fn run_as<T, F>(&self, session: &Session, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T> + Send + 'static,
    {
        let session = session.clone();
        let outcome = self.outcome(move |_| op(&session));
        outcome.await.unwrap_or_else(|| Err(not_finished()))
    }

    /// Authenticates `token`, then runs `op` as its user (see [`run`](Self::run)).
    pub(crate) async fn as_user<F>(&self, token: Option<String>, op: F) -> Response
    where
        F: FnOnce(&Session) -> Result<Response> + Send + 'static,
    {
        self.as_user_then(token, op, |response| response).await
    }

    /// Authenticates `token`, then runs `op` as its user and answers with `reply` of its
    /// value, made off the store's thread (see [`run_then`](Self::run_then)). A handler
    /// parses its request before and passes the outcome in `op`, which returns a parse
    /// error only after authentication, as if it had parsed there.
    pub(crate) async fn as_user_then<T, F, R>(
        &self,
        token: Option<String>,
        op: F,
        reply: R,
    ) -> Response
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T> + Send + 'static,
        R: FnOnce(T) -> Response,
    {
        respond(self.as_user_outcome(token, op).await, reply)
    }

    /// `op`'s outcome, run as the user of `token` (see [`as_user_then`](Self::as_user_then));
    /// `None` if it did not finish.
    pub(crate) async fn as_user_outcome<T, F>(
        &self,
        token: Option<String>,
        op: F,
    ) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T> + Send + 'static,
    {
        let Some(token) = token else {
            return Some(Err(Error::Unauthorized));
        };
        self.outcome(move |store| op(&store.authenticate(&token)?))
            .await
    }
}

impl App {
    /// Authenticates `token`, then runs `op`, which only reads, as its user, and answers
    /// with its response, on the large reads' threads (`large_reads.rs`: the lowest CPU
    /// priority) whatever the backend: a long read (a history page of large values, and its
    /// JSON) then neither waits in the committer's queue nor holds it or a runtime thread up.
    /// The store reads beside its writer (`Backend::read`), so the operations queued
    /// meanwhile are not held up either.
    pub(crate) async fn read_as_user<F>(&self, token: Option<String>, op: F) -> Response
    where
        F: FnOnce(&Session) -> Result<Response> + Send + 'static,
    {
        respond(self.read_as_user_outcome(token, op).await, |response| {
            response
        })
    }

    /// `op`'s outcome, run as [`read_as_user`](Self::read_as_user) runs it; `None` if it did
    /// not finish.
    pub(crate) async fn read_as_user_outcome<T, F>(
        &self,
        token: Option<String>,
        op: F,
    ) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T> + Send + 'static,
    {
        let session = match self.session(token).await {
            Some(Ok(session)) => session,
            Some(Err(e)) => return Some(Err(e)),
            None => return None,
        };
        self.read_as(session, op).await
    }

    /// The session of `token`'s user, authenticated on the blocking pool; `None` if that did
    /// not finish.
    pub(crate) async fn session(&self, token: Option<String>) -> Option<Result<Session>> {
        let Some(token) = token else {
            return Some(Err(Error::Unauthorized));
        };
        // Authenticated on the blocking pool, at the usual priority: on a file, telling
        // whether another process wrote takes the writer's connection for an instant, which a
        // thread of the lowest priority must never hold while the committer waits for it.
        // Not on the committer, whose next group may wait for a file another process holds:
        // reads need not.
        self.on_pool(move |store| store.authenticate(&token)).await
    }

    /// `op`, which only reads, run as `session` on the large reads' threads (see
    /// [`read_as_user`](Self::read_as_user)); `None` if it did not finish.
    pub(crate) async fn read_as<T, F>(&self, session: Session, op: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T> + Send + 'static,
    {
        self.large_reads.run(move || op(&session)).await
    }
}

/// The response to an operation's outcome: `reply` of its value, its error, or a storage
/// error if it did not finish.
pub(crate) fn respond<T>(
    outcome: Option<Result<T>>,
    reply: impl FnOnce(T) -> Response,
) -> Response {
    match outcome {
        Some(Ok(value)) => reply(value),
        Some(Err(e)) => error_response(&e),
        None => error_response(&not_finished()),
    }
}

pub(crate) fn not_finished() -> Error {
    Error::storage("the operation did not finish")
}
