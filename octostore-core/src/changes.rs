//! The change signal: a store wakes everyone waiting for changes once a change it made has
//! committed (immediately, in this process), and while anyone waits, one thread of the store
//! reads the change log's newest index each time the backend's listener hears another
//! process commit ([`crate::Backend::listen`]: PostgreSQL's `LISTEN`, the kernel's reports of
//! writes to a SQLite file's log on Linux), and at least every [`LISTENED_RECHECK`], or,
//! with no listener, every [`WATCH_EVERY`], and wakes them when it moved. A waiter registers a wake-up
//! ([`Store::on_change`](crate::Store::on_change)), then reads, then waits: a change
//! committed after the read always wakes it. A wake-up may come with nothing new to read.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::backend::Listener;

/// How often the store reads the log's newest index while anyone waits, where the backend
/// has no listener to hear other processes' commits.
pub const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Where the backend hears other processes' commits, how long a reader waits to hear one
/// before reading all the same (one may go unheard).
pub const LISTENED_RECHECK: Duration = Duration::from_secs(1);

/// What a waiter is woken by: it should only signal (set a flag, notify a task), never block.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// Reads the change log's newest index; `None` if it cannot be read now or the store is gone.
pub(crate) type NewestIndex = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// Waits between two reads of what other processes committed: until the backend's
/// [`Listener`] hears one (at most [`LISTENED_RECHECK`]) or, where the backend has none,
/// for a fixed pause.
pub(crate) struct OutsideCommits {
    listener: Option<Box<dyn Listener>>,
    pause: Duration,
}

impl OutsideCommits {
    /// Waits on `listener`, if there is one, else for `pause` each time.
    pub(crate) fn new(listener: Option<Box<dyn Listener>>, pause: Duration) -> Self {
        Self { listener, pause }
    }

    /// Sets the listener up (connects, listens), before the first read of a thread that
    /// waits on it: a commit after that read is then heard.
    pub(crate) fn start(&mut self) {
        if let Some(listener) = &mut self.listener {
            listener.wait(Duration::ZERO);
        }
    }

    /// Returns when another process may have committed since the last call.
    pub(crate) fn wait(&mut self) {
        match &mut self.listener {
            Some(listener) => {
                listener.wait(LISTENED_RECHECK);
            }
            None => std::thread::sleep(self.pause),
        }
    }
}

/// The waiters of one store, and how to watch its log for other processes' changes.
pub(crate) struct Changes {
    shared: Arc<Shared>,
}

struct Shared {
    waiters: Mutex<Waiters>,
    /// `None`: no other process writes to the store (memory), nothing to watch.
    newest_index: Option<NewestIndex>,
    /// What the watching thread waits on between its reads (the one thread at a time that
    /// watches holds it).
    outside: Mutex<OutsideCommits>,
}

#[derive(Default)]
struct Waiters {
    wakes: HashMap<u64, Arc<Wake>>,
    next_id: u64,
    /// Whether the watching thread runs.
    watching: bool,
}

/// A registered wake-up; dropping it unregisters it.
#[must_use = "the wake-up is unregistered when this is dropped"]
pub struct ChangeWaiter {
    shared: Weak<Shared>,
    id: u64,
}

impl Changes {
    /// The waiters of a store whose log `newest_index` reads, if other processes may write
    /// to it, after each time `outside` says they may have.
    pub(crate) fn new(newest_index: Option<NewestIndex>, outside: OutsideCommits) -> Self {
        Self {
            shared: Arc::new(Shared {
                waiters: Mutex::default(),
                newest_index,
                outside: Mutex::new(outside),
            }),
        }
    }

    /// Calls `wake` after every change that commits from now on, until the returned
    /// [`ChangeWaiter`] is dropped.
    pub(crate) fn register(&self, wake: Wake) -> ChangeWaiter {
        let mut waiters = self.shared.waiters.lock();
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.wakes.insert(id, Arc::new(wake));
        if self.shared.newest_index.is_some() && !waiters.watching {
            waiters.watching = start_watching(&self.shared);
        }
        ChangeWaiter {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Wakes every waiter (a change committed).
    pub(crate) fn wake_all(&self) {
        self.shared.wake_all();
    }
}

impl Shared {
    /// Calls every registered wake-up, outside the lock.
    fn wake_all(&self) {
        let wakes: Vec<Arc<Wake>> = self.waiters.lock().wakes.values().cloned().collect();
        for wake in wakes {
            wake();
        }
    }
}

impl Drop for ChangeWaiter {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.waiters.lock().wakes.remove(&self.id);
        }
    }
}

/// Starts the thread that watches the log while anyone waits; whether it started (if not,
/// the next registration tries again, and waiters see only this process's changes).
fn start_watching(shared: &Arc<Shared>) -> bool {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("octostore-changes".into())
        .spawn(move || watch(&shared))
        .is_ok()
}

/// Reads the log's newest index each time other processes may have committed and wakes the
/// waiters when it moved, until none is left. The first reading wakes them too: a change
/// committed between a waiter's read and that reading would otherwise go unseen.
fn watch(shared: &Shared) {
    let newest_index = shared.newest_index.as_ref().expect("watched only if set");
    // A thread started as the last one ends waits for it here.
    let mut outside = shared.outside.lock();
    outside.start();
    let mut seen = None;
    loop {
        let newest = newest_index();
        if newest.is_some() && newest != seen {
            seen = newest;
            shared.wake_all();
        }
        outside.wait();
        let mut waiters = shared.waiters.lock();
        if waiters.wakes.is_empty() {
            waiters.watching = false;
            return;
        }
    }
}
