//! The change log: every change a user can see (a flag set or deleted, a config key put or
//! deleted, a limit reset, a lease acquired, renewed, released or expired) is an [`Event`],
//! appended by the rule that makes the change, in its transaction, as its last write: no
//! change commits without its event, nor an event without its change. A rate-limit check
//! is not an event. A reader asks for the events after an index it has seen ([`read`]): its
//! own flags', configs' and limits', and every user's locks' (lock names are one namespace,
//! and anyone may already ask who holds a lock). What is kept: [`prune`].

use std::time::Duration;

use crate::backend::{EventQuery, Tx};
use crate::records::event::{Change, Event, EventKind, Kinds};
use crate::records::identity::UserId;
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Result};
use crate::values::names::LockName;

/// Which events a reader wants: those of some kinds whose name starts with a prefix. The
/// default is every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    kinds: Kinds,
    prefix: String,
}

impl EventFilter {
    /// The events of `kinds` (at least one) whose name starts with `prefix` (at most as long
    /// as the longest name; empty: any name).
    pub fn new(kinds: Kinds, prefix: &str) -> Result<Self> {
        if kinds.bits() == 0 {
            return Err(Error::invalid("kind", "must name at least one kind"));
        }
        if prefix.chars().count() > LockName::MAX_CHARS {
            let max = LockName::MAX_CHARS;
            return Err(Error::invalid(
                "prefix",
                format!("must be at most {max} characters, as long as the longest name"),
            ));
        }
        Ok(Self {
            kinds,
            prefix: prefix.to_owned(),
        })
    }

    /// The kinds read.
    pub fn kinds(&self) -> Kinds {
        self.kinds
    }

    /// The start of every name read.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// One page of the log, as [`Api::events`](crate::Api::events) answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events after the index asked from, oldest first; none when `resync`.
    pub events: Vec<Event>,
    /// The index to ask from next: the last event's if the page is full, else the log's
    /// newest (the filter's events up to it are all in this page).
    pub next: u64,
    /// The log no longer holds every event after the index asked from (they were pruned, or
    /// the index is not of this log): re-read the current state, then ask from `next`.
    pub resync: bool,
}

/// The most events a page holds.
pub const MAX_EVENTS_PER_PAGE: usize = 1_000;

/// Appends `owner`'s change, made at `now`.
pub(crate) fn append(tx: &mut dyn Tx, owner: UserId, now: Timestamp, change: Change) -> Result<()> {
    tx.append_event(owner, now.to_datetime(), &change)
}

/// The page of `filter`'s events after `since` that `viewer` may see, at most `limit`
/// (1 to [`MAX_EVENTS_PER_PAGE`]).
pub(crate) fn read(
    tx: &mut dyn Tx,
    viewer: UserId,
    since: u64,
    filter: &EventFilter,
    limit: usize,
) -> Result<EventPage> {
    if !(1..=MAX_EVENTS_PER_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be 1 to {MAX_EVENTS_PER_PAGE}, got {limit}"),
        ));
    }
    let bounds = tx.event_bounds()?;
    if since > bounds.newest || since.saturating_add(1) < bounds.oldest {
        return Ok(EventPage {
            events: Vec::new(),
            next: bounds.newest,
            resync: true,
        });
    }
    let query = EventQuery {
        kinds: filter.kinds,
        prefix: &filter.prefix,
        owner: viewer,
        of_anyone: Kinds::of([EventKind::Lock]),
    };
    let events = tx.events_after(since, &query, limit)?;
    let next = match events.last() {
        Some(last) if events.len() == limit => last.index,
        _ => bounds.newest,
    };
    Ok(EventPage {
        events,
        next,
        resync: false,
    })
}

/// Deletes the oldest events that are past either bound, at most `max`: not among the
/// newest `kept`, or at least `max_age` old at `now`; how many it deleted.
pub(crate) fn prune(
    tx: &mut dyn Tx,
    now: Timestamp,
    kept: usize,
    max_age: Duration,
    max: usize,
) -> Result<usize> {
    let kept_from = tx.event_kept_from(kept)?.unwrap_or(0);
    let age_nanos = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
    let born_before = now.nanos().saturating_sub(age_nanos);
    tx.prune_events(max, &mut |index, at| {
        index < kept_from || at.timestamp_nanos_opt().is_some_and(|at| at <= born_before)
    })
}
