//! The change log after a restart, beside the store's state: read whole (`GET /events?since=0`
//! in pages), its events named in one line each, so that what a client was acknowledged and
//! what the log holds compare as lists.

use octostore_core::{Api, Change, Event, EventFilter, MAX_EVENTS_PER_PAGE};
use octostore_http::Client;

/// Every event of the log, oldest first; asserts the indexes strictly increase and that the
/// log holds every event from the first (no resync).
pub fn read_all(api: &Client) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut since = 0;
    loop {
        let page = api
            .events(since, &EventFilter::default(), MAX_EVENTS_PER_PAGE)
            .unwrap();
        assert!(
            !page.resync,
            "the log no longer holds every event after {since}"
        );
        let full = page.events.len() == MAX_EVENTS_PER_PAGE;
        for event in page.events {
            let last = events.last().map_or(since, |e| e.index);
            assert!(
                event.index > last,
                "event {} after event {last}: {event:?}",
                event.index
            );
            events.push(event);
        }
        if let Some(last) = events.last() {
            assert!(
                page.next >= last.index,
                "next {} before {last:?}",
                page.next
            );
        }
        if !full {
            return events;
        }
        since = page.next;
    }
}

/// An event in one line: its action, its name, and what identifies the change (the flag's
/// setting, the config version, the lease's fencing token). An acknowledged operation is
/// written the same way, with [`line`].
pub fn describe(change: &Change) -> String {
    match change {
        Change::FlagSet {
            name,
            enabled,
            percentage,
        } => line("set", name.as_str(), format!("{enabled} {percentage:?}")),
        Change::ConfigPut { key, version } => line("put", key.as_str(), version),
        Change::LockAcquired(lease)
        | Change::LockRenewed(lease)
        | Change::LockReleased(lease)
        | Change::LockExpired(lease) => {
            line(change.action(), lease.name.as_str(), lease.fencing_token.0)
        }
        other => line(other.action(), other.name(), ""),
    }
}

/// The line of an `action` on `name`, identified by `detail`.
pub fn line(action: &str, name: &str, detail: impl std::fmt::Display) -> String {
    format!("{action} {name} {detail}")
}
