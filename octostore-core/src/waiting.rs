//! Waiting for a lock, fairly, in one process: a FIFO queue of [`Ticket`]s per lock name.
//!
//! A waiter joins the queue before its first try, so a release between "it is held" and "I
//! wait" wakes it. While tickets wait, only the head's acquire may take a free lock; anyone
//! else is told the lock is held by the head, until now (it is promised to the head). A release
//! wakes the head; a holder's expiry needs no wake-up: the head tries again at the lease's
//! `expires_at` ([`Ticket::after_held`]), and where other processes share the store (a file,
//! a database) at least every [`HEAD_RECHECK`], since their releases wake no one here. A
//! ticket dropped leaves the queue, waking the next head if it was the head. Waiters in other
//! processes are not in this queue: each process serves its own in arrival order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::changes::Wake;
use crate::values::names::{LockName, Login};

/// How often the head of a queue tries again while the lock is held, where other processes
/// may share the store and release it without waking anyone here ([`Store::next_try`]).
///
/// [`Store::next_try`]: crate::Store::next_try
pub const HEAD_RECHECK: Duration = Duration::from_millis(200);

/// Every lock's queue of waiters in this process. Cheap to clone; clones share the queues.
#[derive(Clone, Default)]
pub struct LockQueues {
    inner: Arc<Mutex<Queues>>,
}

#[derive(Default)]
struct Queues {
    next_id: u64,
    by_lock: HashMap<LockName, VecDeque<Waiter>>,
}

struct Waiter {
    id: u64,
    login: Login,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl LockQueues {
    fn queues(&self) -> MutexGuard<'_, Queues> {
        // A panic in a wake callback happens outside the mutex; the maps stay whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a ticket at the back of `name`'s queue for `login`, which `wake` signals.
    pub fn join(&self, name: &LockName, login: Login, wake: Wake) -> Ticket {
        let mut queues = self.queues();
        queues.next_id += 1;
        let id = queues.next_id;
        let waiter = Waiter {
            id,
            login,
            wake: Arc::from(wake),
        };
        queues
            .by_lock
            .entry(name.clone())
            .or_default()
            .push_back(waiter);
        Ticket {
            queues: self.clone(),
            name: name.clone(),
            id,
        }
    }

    /// How many tickets wait for `name`.
    pub fn waiters(&self, name: &LockName) -> usize {
        self.queues().by_lock.get(name).map_or(0, VecDeque::len)
    }

    /// The login of the ticket at the head of `name`'s queue, unless it is `ticket`: whom a
    /// free lock is promised to, if not to the caller.
    pub(crate) fn promised_to(&self, name: &LockName, ticket: Option<&Ticket>) -> Option<Login> {
        let queues = self.queues();
        let head = queues.by_lock.get(name)?.front()?;
        (ticket.map(|t| t.id) != Some(head.id)).then(|| head.login.clone())
    }

    /// Wakes the head of `name`'s queue: the lock was released.
    pub fn notify(&self, name: &LockName) {
        let wake = self
            .queues()
            .by_lock
            .get(name)
            .and_then(|queue| queue.front().map(|head| head.wake.clone()));
        if let Some(wake) = wake {
            wake();
        }
    }
}

/// A place in one lock's queue; dropped, it leaves the queue (see the module docs).
pub struct Ticket {
    queues: LockQueues,
    name: LockName,
    id: u64,
}

/// What a waiting acquire does after a try that found the lock held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It is the head: try again at this instant of the store's clock (the holder's
    /// `expires_at`), or when woken.
    RetryAt(DateTime<Utc>),
    /// Others are ahead: try again when woken.
    AwaitTurn,
}

impl Ticket {
    /// The lock this ticket waits for.
    pub fn lock(&self) -> &LockName {
        &self.name
    }

    /// Whether this ticket is at the head of its queue.
    pub fn is_head(&self) -> bool {
        let queues = self.queues.queues();
        let head = queues.by_lock.get(&self.name).and_then(VecDeque::front);
        head.is_some_and(|head| head.id == self.id)
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
        let next_head = {
            let mut queues = self.queues.queues();
            let Some(queue) = queues.by_lock.get_mut(&self.name) else {
                return;
            };
            let was_head = queue.front().is_some_and(|head| head.id == self.id);
            queue.retain(|waiter| waiter.id != self.id);
            let next = was_head
                .then(|| queue.front().map(|head| head.wake.clone()))
                .flatten();
            if queue.is_empty() {
                queues.by_lock.remove(&self.name);
            }
            next
        };
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

/// How long from `now` until `at`, both by the store's clock; zero if `at` has passed.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}
