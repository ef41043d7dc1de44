//! `octostore events`: the change log after an index, read page after page to its end, one
//! line per event (a JSON object per line with `--json`); where to go on from on stderr.

use std::process::ExitCode;

use octostore_core::{Error, EventFilter, EventKind, Kinds, Result, MAX_EVENTS_PER_PAGE};
use octostore_http::dto::EventInfo;

use super::{negative, out};
use crate::args::Global;
use crate::failure::Failure;
use crate::target::Target;

/// The event as one line: index, instant, kind, action, name, then what it says.
pub(super) fn describe(e: &EventInfo) -> String {
    let mut line = format!(
        "{} {} {} {} {}",
        e.index,
        e.at.to_rfc3339(),
        e.kind,
        e.action,
        e.name
    );
    if let Some(enabled) = e.enabled {
        line.push_str(if enabled { " enabled" } else { " disabled" });
    }
    let details = [
        ("percentage", e.percentage.map(|p| p.to_string())),
        ("version", e.version.map(|v| v.to_string())),
        ("holder", e.holder.clone()),
        ("fencing_token", e.fencing_token.map(|t| t.to_string())),
        ("expires_at", e.expires_at.map(|t| t.to_rfc3339())),
    ];
    for (field, value) in details {
        if let Some(value) = value {
            line.push_str(&format!(" {field}={value}"));
        }
    }
    line
}

/// The kinds named (all if none).
pub(super) fn kinds(names: &[String]) -> Result<Kinds> {
    if names.is_empty() {
        return Ok(Kinds::ALL);
    }
    let kinds = names.iter().map(|name| {
        EventKind::from_name(name).ok_or_else(|| {
            Error::invalid(
                "kind",
                format!("must be lock, limit, flag or config, found {name:?}"),
            )
        })
    });
    Ok(Kinds::of(kinds.collect::<Result<Vec<_>>>()?))
}

pub fn run(
    global: &Global,
    since: u64,
    kind: &[String],
    prefix: Option<&str>,
) -> Result<ExitCode, Failure> {
    let filter = EventFilter::new(kinds(kind)?, prefix.unwrap_or(""))?;
    let target = Target::open(global)?;
    let api = target.api();
    let mut since = since;
    loop {
        let page = api.events(since, &filter, MAX_EVENTS_PER_PAGE)?;
        if page.resync {
            eprintln!(
                "resync: the log no longer holds every event after {since}: re-read the \
                 current state, then: octostore events --since {}",
                page.next
            );
            return Ok(negative());
        }
        for event in &page.events {
            let info = EventInfo::from(event);
            match global.json {
                true => out(&serde_json::to_string(&info).expect("API objects serialize")),
                false => out(&describe(&info)),
            }
        }
        let done = page.events.len() < MAX_EVENTS_PER_PAGE;
        since = page.next;
        if done {
            eprintln!("next: octostore events --since {since}");
            return Ok(ExitCode::SUCCESS);
        }
    }
}
