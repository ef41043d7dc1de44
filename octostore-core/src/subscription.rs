//! Following the change log as it grows: [`Session::subscribe`] gives every event a filter
//! matches after an index, exactly once and in order, waiting for new ones on the store's
//! change signal (`changes.rs`), or a [`SubscriptionItem::Resync`] when the log no longer
//! holds them all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::api::Api;
use crate::changes::ChangeWaiter;
use crate::records::event::Event;
use crate::rules::event::{EventFilter, MAX_EVENTS_PER_PAGE};
use crate::store::Session;
use crate::values::error::Result;

/// What a [`Subscription`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionItem {
    /// The next event the filter matches.
    Event(Event),
    /// The log no longer holds every event after the last one given (they were pruned, or
    /// the index subscribed from is not of this log): re-read the current state; the
    /// subscription goes on with the events after `next`.
    Resync {
        /// The index the subscription goes on from.
        next: u64,
    },
}

/// The events a filter matches, after an index, as they are appended: an iterator whose
/// [`next`](Iterator::next) blocks until there is one, and [`next_within`](Self::next_within)
/// waits at most a while. Made by [`Session::subscribe`].
pub struct Subscription {
    session: Session,
    filter: EventFilter,
    /// The index read from next.
    since: u64,
    /// Read, not yet given.
    pending: VecDeque<Event>,
    /// Set when a change commits (by the store's change signal), cleared before each read.
    changed: Arc<(Mutex<bool>, Condvar)>,
    _waiter: ChangeWaiter,
}

impl Session {
    /// The events `filter` matches after `since` (0: from the first kept), this user's as
    /// [`Api::events`] reads them, then each new one as it commits (within about 100 ms when
    /// another process commits it).
    pub fn subscribe(&self, since: u64, filter: EventFilter) -> Subscription {
        let changed = Arc::new((Mutex::new(true), Condvar::new()));
        let signal = changed.clone();
        let waiter = self.store().on_change(Box::new(move || {
            let (flag, condvar) = &*signal;
            *flag.lock() = true;
            condvar.notify_all();
        }));
        Subscription {
            session: self.clone(),
            filter,
            since,
            pending: VecDeque::new(),
            changed,
            _waiter: waiter,
        }
    }
}

impl Subscription {
    /// The next item, waiting at most `timeout` for one; `Ok(None)` if none came in time.
    pub fn next_within(&mut self, timeout: Duration) -> Result<Option<SubscriptionItem>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(SubscriptionItem::Event(event)));
            }
            let (flag, condvar) = &*self.changed;
            *flag.lock() = false;
            let page = self
                .session
                .events(self.since, &self.filter, MAX_EVENTS_PER_PAGE)?;
            self.since = page.next;
            if page.resync {
                return Ok(Some(SubscriptionItem::Resync { next: page.next }));
            }
            if !page.events.is_empty() {
                self.pending.extend(page.events);
                continue;
            }
            let mut changed = flag.lock();
            while !*changed {
                match deadline {
                    Some(deadline) => {
                        if condvar.wait_until(&mut changed, deadline).timed_out() {
                            return Ok(None);
                        }
                    }
                    None => condvar.wait(&mut changed),
                }
            }
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<SubscriptionItem>;

    /// The next item, waiting as long as it takes; never `None`.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_within(Duration::MAX).transpose()
    }
}
