//! Telling the other nodes of this one's commits, by PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! A transaction that runs `NOTIFY` takes a database-wide lock at its commit, so writers that
//! each notified would commit one at a time (on this machine, half the throughput). Here no
//! operation notifies: once an operation's change has committed, the [`Announcer`] is asked to
//! tell, and its thread sends one `NOTIFY` at a time on a connection of its own; every request
//! made while one is on its way is answered by the next. So a node adds at most one notifying
//! transaction in flight, and a listener hears of a commit one round trip after it.
//! A [`PgListener`] holds a connection that `LISTEN`s, made when first waited on and made
//! again after it is lost; a lost notification (a node killed between its commit and its
//! `NOTIFY`) is caught by the listener's user reading anyway after each timeout.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::tls::ConnectSettings;
use crate::backend::Listener;

/// The channel of a store whose tables are in `schema` (`None`: the search path's first):
/// stores in other schemas of the database hear nothing of it. At most 63 bytes, the
/// length of an identifier, so that both ends spell it alike.
pub(super) fn channel(schema: Option<&str>) -> String {
    let mut channel = match schema {
        Some(schema) => format!("octostore_{schema}"),
        None => "octostore".to_owned(),
    };
    channel.truncate(63);
    channel
}

/// Sends this node's announcements, one `NOTIFY` at a time, on a thread started by the first.
pub(super) struct Announcer {
    shared: Arc<Shared>,
}

struct Shared {
    settings: ConnectSettings,
    /// `NOTIFY` on this store's channel.
    statement: String,
    state: Mutex<State>,
    asked: Condvar,
}

#[derive(Default)]
struct State {
    /// A commit not announced yet.
    pending: bool,
    /// Whether the sending thread runs.
    running: bool,
    /// The backend is gone: the thread ends.
    closed: bool,
}

impl Announcer {
    pub(super) fn new(settings: ConnectSettings, channel: &str) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                statement: format!("NOTIFY {channel}"),
                state: Mutex::default(),
                asked: Condvar::new(),
            }),
        }
    }

    /// Asks for one more `NOTIFY`, after every commit made so far.
    pub(super) fn announce(&self) {
        let mut state = self.shared.state();
        state.pending = true;
        if state.running {
            self.shared.asked.notify_one();
            return;
        }
        let shared = self.shared.clone();
        state.running = std::thread::Builder::new()
            .name("octostore-notify".into())
            .spawn(move || shared.send())
            .is_ok();
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.asked.notify_one();
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a `NOTIFY` for each run of requests until the backend is gone. A failed one is
    /// dropped: the listeners read anyway after their timeout.
    fn send(&self) {
        let mut client: Option<Client> = None;
        loop {
            {
                let mut state = self.state();
                while !state.pending && !state.closed {
                    state = self
                        .asked
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.closed {
                    return;
                }
                state.pending = false;
            }
            if client.as_ref().is_none_or(Client::is_closed) {
                client = self.settings.connect().ok();
            }
            let sent = client
                .as_mut()
                .is_some_and(|connected| connected.batch_execute(&self.statement).is_ok());
            if !sent {
                client = None;
            }
        }
    }
}

/// Hears the announcements on this store's channel.
pub(super) struct PgListener {
    settings: ConnectSettings,
    channel: String,
    client: Option<Client>,
}

impl PgListener {
    pub(super) fn new(settings: ConnectSettings, channel: String) -> Self {
        Self {
            settings,
            channel,
            client: None,
        }
    }

    /// The listening connection, made if there is none; `None` if it cannot be made now.
    fn connected(&mut self) -> Option<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.settings.connect().ok()?;
            client
                .batch_execute(&format!("LISTEN {}", self.channel))
                .ok()?;
            self.client = Some(client);
        }
        self.client.as_mut()
    }
}

impl Listener for PgListener {
    fn wait(&mut self, timeout: Duration) -> bool {
        let Some(client) = self.connected() else {
            std::thread::sleep(timeout);
            return false;
        };
        let mut notifications = client.notifications();
        let heard = matches!(notifications.timeout_iter(timeout).next(), Ok(Some(_)));
        // Those that came with it are the same news.
        while let Ok(Some(_)) = notifications.iter().next() {}
        heard
    }
}
