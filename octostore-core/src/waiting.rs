//! Waiting for a lock, fairly: each lock's queue of waiters is kept by storage, so it holds
//! across every process sharing the store (servers on one file, nodes on one database). A
//! waiter's place is a ticket, store-wide and increasing in the order waiters joined; while
//! any waits, a free lock is promised to the first live one (`rules/lock.rs`): anyone else's
//! acquire is told it is held by that waiter's user, until now.
//!
//! This module keeps this process's side: its tickets per lock, in ticket order, each with a
//! [`Wake`]. A waiter joins before its first try, so a release between "it is held" and "I
//! wait" wakes it. A release here wakes the first local ticket; a holder's expiry needs no
//! wake-up (the head tries at the lease's `expires_at`, [`Ticket::after_held`]). Where other
//! processes share the store, while this one has waiters a thread reads the change log's
//! lock events each time the backend's listener hears another process commit (PostgreSQL's
//! `LISTEN`; on Linux, the kernel's reports of writes to a SQLite file's log), or every
//! [`RELEASES_READ_EVERY`] without one, and wakes the first local ticket of each lock
//! released elsewhere; and the first local ticket tries again at least every
//! [`HEAD_RECHECK`] (a lock promised to another process's waiter, a waiter that died), each
//! try marking this process alive for [`NODE_LEASE`]. A process that dies holds its waiters'
//! places only until then. A ticket dropped leaves its queue: its row is deleted by a thread
//! of its own, and meanwhile every try of this process skips it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::changes::{OutsideCommits, Wake};
use crate::records::lock::NodeId;
use crate::rules::identity::random_uuid;
use crate::values::names::LockName;

/// How often the first waiter of this process tries again while the lock is held, where
/// other processes may share the store and release it without waking anyone here
/// ([`Store::next_try`](crate::Store::next_try)).
pub const HEAD_RECHECK: Duration = Duration::from_secs(1);

/// How often, while this process has waiters, it reads which locks other processes released,
/// where the backend has no listener to hear their commits.
pub const RELEASES_READ_EVERY: Duration = Duration::from_millis(20);

/// How long a try marks its process alive: a process gone (killed, cut off) keeps its
/// waiters' places this long at most.
pub const NODE_LEASE: Duration = Duration::from_secs(10);

/// Deletes the rows of tickets that left their queues; whether it did.
pub(crate) type Forget = Box<dyn Fn(&[u64]) -> bool + Send + Sync>;

/// Given the change log's index last read (`None`: none yet), the index read up to and the
/// locks released or expired after the one given; `None` if the log cannot be read now.
pub(crate) type ReadReleases =
    Box<dyn Fn(Option<u64>) -> Option<(u64, Vec<LockName>)> + Send + Sync>;

/// This process's waiters for locks, and its name among the processes sharing the store.
/// Cheap to clone; clones share the queues.
#[derive(Clone)]
pub struct LockQueues {
    shared: Arc<Shared>,
}

struct Shared {
    node: NodeId,
    queues: Mutex<Queues>,
    /// Whether a thread is deleting the rows of tickets that left.
    forgetting: AtomicBool,
    forget: OnceLock<Forget>,
    /// Whether a thread reads the locks other processes release; set only where they may.
    reading_releases: AtomicBool,
    read_releases: OnceLock<(ReadReleases, Mutex<OutsideCommits>)>,
    /// The change log's index a new reading thread starts after: the oldest that a ticket
    /// added meanwhile had seen when it joined.
    read_from: Mutex<Option<u64>>,
}

/// A waiter's wake-up, shared with whoever wakes it.
type SharedWake = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Queues {
    /// Each lock's tickets of this process, by ticket.
    by_lock: HashMap<LockName, BTreeMap<u64, SharedWake>>,
    /// Tickets that left their queue whose rows are not deleted yet.
    left: HashSet<u64>,
}

impl Default for LockQueues {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                node: NodeId(random_uuid()),
                queues: Mutex::default(),
                forgetting: AtomicBool::new(false),
                forget: OnceLock::new(),
                reading_releases: AtomicBool::new(false),
                read_releases: OnceLock::new(),
                read_from: Mutex::new(None),
            }),
        }
    }
}

impl LockQueues {
    fn queues(&self) -> MutexGuard<'_, Queues> {
        // A panic in a wake callback happens outside the mutex; the maps stay whole.
        (self.shared.queues)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// This process's name in the queues' rows.
    pub fn node(&self) -> NodeId {
        self.shared.node
    }

    /// Sets how the rows of tickets that left are deleted (once, by the store).
    pub(crate) fn forget_with(&self, forget: Forget) {
        let _ = self.shared.forget.set(forget);
    }

    /// Adds `ticket` of `name`'s queue, which `wake` signals, as this process's; it joined
    /// when the change log's newest index was `seen`, so releases after that wake it.
    pub(crate) fn add(&self, name: &LockName, ticket: u64, wake: SharedWake, seen: u64) {
        {
            let mut from = (self.shared.read_from)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *from = Some(from.map_or(seen, |from| from.min(seen)));
        }
        let mut queues = self.queues();
        queues
            .by_lock
            .entry(name.clone())
            .or_default()
            .insert(ticket, wake);
        drop(queues);
        self.read_releases();
    }

    /// Sets how the locks other processes release are read, after each time `outside` says
    /// they may have committed (once, by a store that others may write to).
    pub(crate) fn read_releases_with(&self, read: ReadReleases, outside: OutsideCommits) {
        let _ = self.shared.read_releases.set((read, Mutex::new(outside)));
    }

    /// Starts the thread that wakes this process's waiters of the locks other processes
    /// release, unless it runs or nothing sets how; it stops once no ticket waits here.
    fn read_releases(&self) {
        if self.shared.read_releases.get().is_none()
            || self.shared.reading_releases.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let queues = self.clone();
        let spawned = std::thread::Builder::new()
            .name("octostore-releases".into())
            .spawn(move || {
                let Some((read, outside)) = queues.shared.read_releases.get() else {
                    return;
                };
                // A thread started as the last one ends waits for it here.
                let mut outside = outside.lock().unwrap_or_else(PoisonError::into_inner);
                outside.start();
                // After the index its first tickets saw when they joined: a release between
                // their join and this first read still wakes them.
                let mut last = (queues.shared.read_from)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                loop {
                    if let Some((read_to, released)) = read(last) {
                        last = Some(read_to);
                        for name in &released {
                            queues.notify(name);
                        }
                    }
                    outside.wait();
                    if queues.queues().by_lock.is_empty() {
                        queues
                            .shared
                            .reading_releases
                            .store(false, Ordering::SeqCst);
                        // A ticket added meanwhile found the flag still set: go on for it.
                        let added = !queues.queues().by_lock.is_empty();
                        if !added || queues.shared.reading_releases.swap(true, Ordering::SeqCst) {
                            return;
                        }
                    }
                }
            });
        if spawned.is_err() {
            self.shared.reading_releases.store(false, Ordering::SeqCst);
        }
    }

    /// Removes `ticket` of `name`'s queue, as if it had never been added (a join that failed).
    pub(crate) fn remove(&self, name: &LockName, ticket: u64) {
        let mut queues = self.queues();
        if let Some(queue) = queues.by_lock.get_mut(name) {
            queue.remove(&ticket);
            if queue.is_empty() {
                queues.by_lock.remove(name);
            }
        }
    }

    /// Whether `ticket`, of this process in `name`'s queue, has left it: a row to skip.
    pub(crate) fn has_left(&self, name: &LockName, ticket: u64) -> bool {
        let queues = self.queues();
        !(queues.by_lock.get(name)).is_some_and(|queue| queue.contains_key(&ticket))
    }

    /// How many tickets of this process wait for `name`.
    pub fn waiters(&self, name: &LockName) -> usize {
        self.queues().by_lock.get(name).map_or(0, BTreeMap::len)
    }

    /// Wakes the first ticket of this process in `name`'s queue: the lock was released.
    pub fn notify(&self, name: &LockName) {
        let wake = self
            .queues()
            .by_lock
            .get(name)
            .and_then(|queue| queue.values().next().cloned());
        if let Some(wake) = wake {
            wake();
        }
    }

    /// Deletes the rows of the tickets that left, on a thread of its own (one at a time).
    fn forget_left(&self) {
        if self.shared.forgetting.swap(true, Ordering::SeqCst) {
            return;
        }
        let queues = self.clone();
        let spawned = std::thread::Builder::new()
            .name("octostore-waiters".into())
            .spawn(move || loop {
                let left: Vec<u64> = queues.queues().left.iter().copied().collect();
                if left.is_empty() {
                    queues.shared.forgetting.store(false, Ordering::SeqCst);
                    // A ticket that left meanwhile found the flag still set: go on for it.
                    let more = !queues.queues().left.is_empty();
                    if !more || queues.shared.forgetting.swap(true, Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                let forget = queues.shared.forget.get();
                if !forget.is_some_and(|forget| forget(&left)) {
                    // The store failed: the rows lapse with this process's heartbeat, and
                    // each try skips them meanwhile; the next ticket that leaves tries again.
                    queues.shared.forgetting.store(false, Ordering::SeqCst);
                    return;
                }
                let mut guard = queues.queues();
                for ticket in &left {
                    guard.left.remove(ticket);
                }
            });
        if spawned.is_err() {
            self.shared.forgetting.store(false, Ordering::SeqCst);
        }
    }
}

/// A place in one lock's queue; dropped, it leaves the queue (see the module docs).
pub struct Ticket {
    queues: LockQueues,
    name: LockName,
    number: u64,
    granted: AtomicBool,
}

/// What a waiting acquire does after a try that found the lock held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It is this process's first waiter: try again at this instant of the store's clock
    /// (the holder's `expires_at`; now, if the lock is promised to a waiter of another
    /// process), or when woken.
    RetryAt(DateTime<Utc>),
    /// Others of this process are ahead: try again when woken.
    AwaitTurn,
}

impl Ticket {
    /// The ticket `number` of `name`'s queue, already added to `queues`.
    pub(crate) fn new(queues: LockQueues, name: LockName, number: u64) -> Self {
        Self {
            queues,
            name,
            number,
            granted: AtomicBool::new(false),
        }
    }

    /// The lock this ticket waits for.
    pub fn lock(&self) -> &LockName {
        &self.name
    }

    /// Its place in the store's queue of the lock.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Marks the ticket as having got the lock: its row went with the grant.
    pub(crate) fn granted(&self) {
        self.granted.store(true, Ordering::SeqCst);
    }

    /// Whether this ticket is the first of this process in its queue.
    pub fn is_head(&self) -> bool {
        let queues = self.queues.queues();
        let head = queues
            .by_lock
            .get(&self.name)
            .and_then(|q| q.keys().next().copied());
        head == Some(self.number)
    }

    /// The next move after a try that found the lock held until `expires_at`.
    pub fn after_held(&self, expires_at: DateTime<Utc>) -> Next {
        if self.is_head() {
            Next::RetryAt(expires_at)
        } else {
            Next::AwaitTurn
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let granted = self.granted.load(Ordering::SeqCst);
        let next_head = {
            let mut queues = self.queues.queues();
            let Some(queue) = queues.by_lock.get_mut(&self.name) else {
                return;
            };
            let was_head = queue.keys().next() == Some(&self.number);
            queue.remove(&self.number);
            let next = was_head.then(|| queue.values().next().cloned()).flatten();
            if queue.is_empty() {
                queues.by_lock.remove(&self.name);
            }
            if !granted {
                queues.left.insert(self.number);
            }
            next
        };
        if !granted {
            self.queues.forget_left();
        }
        if let Some(wake) = next_head {
            wake();
        }
    }
}

/// A wake-up for a blocked thread: set by a [`Wake`], consumed by [`Signal::wait_until`].
/// A wake-up set before the wait is not lost.
#[derive(Default)]
pub(crate) struct Signal {
    woken: Mutex<bool>,
    changed: Condvar,
}

impl Signal {
    /// A [`Wake`] that sets this signal.
    pub(crate) fn waker(self: &Arc<Self>) -> Wake {
        let signal = self.clone();
        Box::new(move || {
            *signal.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
            signal.changed.notify_one();
        })
    }

    /// Blocks until woken or until `until`, and clears the wake-up.
    pub(crate) fn wait_until(&self, until: Instant) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        while !*woken {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            woken = match self.changed.wait_timeout(woken, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *woken = false;
    }
}

/// When a wait of `wait` from now ends, by real time; a wait of centuries (such as
/// `Duration::MAX`, "until it is mine") ends in about 136 years, far from an overflow.
pub fn give_up_at(wait: Duration) -> Instant {
    Instant::now() + wait.min(Duration::from_secs(u32::MAX.into()))
}

/// How long from `now` until `at`, both by the store's clock; zero if `at` has passed.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}
