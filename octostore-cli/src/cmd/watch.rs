//! Following changes as they come: `octostore watch` (the change log, a line per event) and
//! `octostore config get KEY --watch` (a key's value, then each new one). On the local file or
//! database through a `Subscription` (another process's changes seen within about 100 ms);
//! on a server by long polls (`wait`), so a change is printed as soon as it commits.

use std::process::ExitCode;
use std::time::Duration;

use octostore_core::{
    Api, ConfigEntry, ConfigKey, Error, EventFilter, EventKind, Kinds, Result, Session,
    SubscriptionItem, MAX_EVENTS_PER_PAGE,
};
use octostore_http::dto::{ConfigInfo, EventInfo};

use super::events::{describe, kinds};
use super::{out, print};
use crate::args::Global;
use crate::failure::Failure;
use crate::target::Target;

/// How long one long poll of a server waits for a change.
const POLL_WAIT: Duration = Duration::from_secs(60);

/// The log's newest index: the place to follow from now on. An index past the log is
/// answered with a resync from its newest; the largest a server takes is 2^63 - 1.
fn newest(api: &dyn Api, filter: &EventFilter) -> Result<u64> {
    Ok(api.events(i64::MAX as u64, filter, 1)?.next)
}

/// Says on stderr that events were skipped, and where watching goes on from.
fn resync_note(next: u64) {
    eprintln!(
        "resync: the log no longer holds every event before index {next}: re-read the \
         current state; watching goes on after {next}"
    );
}

/// `octostore watch`: every event `kind` and `prefix` select after `since` (default: from
/// now), one line (or JSON object) each, until interrupted.
pub fn run(
    global: &Global,
    since: Option<u64>,
    kind: &[String],
    prefix: Option<&str>,
) -> Result<ExitCode, Failure> {
    let filter = EventFilter::new(kinds(kind)?, prefix.unwrap_or(""))?;
    let target = Target::open(global)?;
    let since = match since {
        Some(since) => since,
        None => newest(target.api(), &filter)?,
    };
    let show = |info: EventInfo| match global.json {
        true => out(&serde_json::to_string(&info).expect("API objects serialize")),
        false => out(&describe(&info)),
    };
    match &target {
        Target::Embedded(session) => {
            for item in session.subscribe(since, filter) {
                match item? {
                    SubscriptionItem::Event(event) => show(EventInfo::from(&event)),
                    SubscriptionItem::Resync { next } => resync_note(next),
                }
            }
            unreachable!("a subscription never ends")
        }
        Target::Remote(client) => {
            let mut since = since;
            loop {
                let page = client.events_within(since, &filter, MAX_EVENTS_PER_PAGE, POLL_WAIT)?;
                if page.resync {
                    resync_note(page.next);
                }
                page.events.iter().map(EventInfo::from).for_each(show);
                since = page.next;
            }
        }
    }
}

/// `octostore config get KEY --watch`: the key's value now (if it has one), then each new
/// value as it is put, until interrupted. A key deleted and put again starts over at
/// version 1: any version other than the last printed is new.
pub fn config(global: &Global, key: &ConfigKey) -> Result<ExitCode, Failure> {
    let target = Target::open(global)?;
    let mut shown = Shown { global, version: 0 };
    match &target {
        Target::Embedded(session) => config_embedded(session, key, &mut shown)?,
        Target::Remote(client) => loop {
            match client.config_after(key, shown.version, POLL_WAIT) {
                Ok(entry) => shown.show(entry),
                Err(Error::NotFound { .. }) => shown.version = 0,
                Err(e) => return Err(e.into()),
            }
        },
    }
    unreachable!("a watch never ends")
}

/// Follows `key` on the store in this process: its value now, then again after each of its
/// config events.
fn config_embedded(session: &Session, key: &ConfigKey, shown: &mut Shown<'_>) -> Result<()> {
    let filter = EventFilter::new(Kinds::of([EventKind::Config]), key.as_str())?;
    // Subscribed from before the first read: no put after it goes unseen.
    let subscription = session.subscribe(newest(session, &filter)?, filter);
    shown.latest(session, key)?;
    for item in subscription {
        let about_key = match item? {
            SubscriptionItem::Event(event) => event.change.name() == key.as_str(),
            SubscriptionItem::Resync { .. } => true,
        };
        if about_key {
            shown.latest(session, key)?;
        }
    }
    Ok(())
}

/// What `config get --watch` has printed.
struct Shown<'a> {
    global: &'a Global,
    /// The version last printed; 0 while the key has none.
    version: u64,
}

impl Shown<'_> {
    /// Prints `entry` unless it is the version last printed.
    fn show(&mut self, entry: ConfigEntry) {
        if entry.version == self.version {
            return;
        }
        self.version = entry.version;
        let entry = ConfigInfo::from(entry);
        print(self.global.json, &entry, || entry.value.to_string());
    }

    /// Prints the key's latest value if it is new; none if the key has none.
    fn latest(&mut self, api: &dyn Api, key: &ConfigKey) -> Result<()> {
        match api.get_config(key, None) {
            Ok(entry) => self.show(entry),
            Err(Error::NotFound { .. }) => self.version = 0,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
