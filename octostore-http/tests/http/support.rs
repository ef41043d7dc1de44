//! A real server on 127.0.0.1 for one test, on a store whose clock the test moves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::Duration;
use octostore_core::{Login, ManualClock, Settings, Store};
use octostore_http::{App, ServerOptions};
use tokio::sync::oneshot;

/// A server running on its own thread and runtime, so both async and blocking tests can call
/// it. Dropping it shuts the server down and waits for it.
pub struct Server {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// A server on an in-memory store with default settings and no GitHub sign-in.
    pub fn start() -> Self {
        Self::start_with(Settings::default(), ServerOptions::default())
    }

    /// A server on an in-memory store with these settings and options.
    pub fn start_with(settings: Settings, options: ServerOptions) -> Self {
        let clock = Arc::new(ManualClock::default());
        let store = Store::builder()
            .clock(clock.clone())
            .settings(settings)
            .build();
        Self::serve(store, clock, options)
    }

    /// A server on an in-memory store on the system's clock (for a browser, whose clock is
    /// the system's): `clock` is not the store's, and moving it does nothing.
    pub fn start_on_system_clock(settings: Settings, options: ServerOptions) -> Self {
        let store = Store::builder().settings(settings).build();
        Self::serve(store, Arc::default(), options)
    }

    /// A server on `store`, whose clock is `clock`, within `options.connections`.
    pub fn serve(store: Store, clock: Arc<ManualClock>, options: ServerOptions) -> Self {
        let limits = options.connections;
        let app = App::new(store.clone(), options).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                octostore_http::serve_with(listener, app, limits, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Self {
            addr,
            clock,
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new token for `login` (a local user, created on first use).
    pub fn token(&self, login: &str) -> String {
        let user = self
            .store
            .local_user(&Login::parse(login).unwrap())
            .unwrap();
        self.store.issue_token(user.id).unwrap().expose().to_owned()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Server {
    /// A server on `store` (whose clock is `clock`) whose every thread — the runtime's
    /// workers and its blocking pool included — reports to `dispatch` instead of the global
    /// subscriber: the server's logs, as the test captures them.
    pub fn serve_traced(
        store: Store,
        clock: Arc<ManualClock>,
        dispatch: tracing::Dispatch,
    ) -> Self {
        thread_local! {
            static TRACED: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
                const { std::cell::RefCell::new(None) };
        }
        let app = App::new(store.clone(), ServerOptions::default()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let on_start = dispatch.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    let guard = tracing::dispatcher::set_default(&on_start);
                    TRACED.with(|traced| *traced.borrow_mut() = Some(guard));
                })
                .on_thread_stop(|| TRACED.with(|traced| drop(traced.borrow_mut().take())))
                .build()
                .unwrap();
            tracing::dispatcher::with_default(&dispatch, || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    octostore_http::serve(listener, app, async {
                        let _ = stopped.await;
                    })
                    .await;
                })
            });
        });
        Self {
            addr,
            clock,
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}
