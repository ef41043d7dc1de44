//! When the client sends a request again, and how long it pauses first.
//!
//! A request is sent again only after a failure that says nothing about the request itself,
//! and only while the call's retry window (from its first attempt) is open:
//! - whatever the request, when it was not run: the connection was refused (a server
//!   restarting), or the server answered 503 `store_busy` (it did not start the operation);
//! - when the request may have run, only if running it twice leaves what running it once
//!   does ([`Endpoint::retry_safe`](crate::operation::requests::Endpoint::retry_safe)): the
//!   connection broke mid-request, or a gateway answered 502, 503 or 504;
//! - never after a timeout: the server is slow or the network gone, and another attempt
//!   would only add to it.
//!
//! The pauses grow from 25 ms to 1 s, each drawn at random from the upper half of its range,
//! so that clients failed by one event do not come back together; at least a 503's
//! `Retry-After`, if it fits in the window.

use std::io;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::dto::{ErrorBody, ErrorCode};

/// The first pause's upper bound.
const FIRST_PAUSE: Duration = Duration::from_millis(25);
/// The longest pause between two attempts, before `Retry-After`.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// What an attempt's failure allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Again {
    /// Another attempt, whatever the request: this one was not run.
    Any,
    /// Another attempt if the request is safe to repeat.
    IfSafe,
    /// No other attempt.
    Never,
}

impl Again {
    /// Whether a request that is `retry_safe` (or not) may be sent again.
    pub(super) fn allows(self, retry_safe: bool) -> bool {
        match self {
            Again::Any => true,
            Again::IfSafe => retry_safe,
            Again::Never => false,
        }
    }
}

/// What a request that failed to get an answer allows.
pub(super) fn after_failure(err: &reqwest::Error) -> Again {
    if err.is_timeout() {
        Again::Never
    } else if err.is_connect() && io_kind(err) == Some(io::ErrorKind::ConnectionRefused) {
        Again::Any
    } else if err.is_connect() || err.is_request() || err.is_body() {
        Again::IfSafe
    } else {
        Again::Never
    }
}

/// What an answer with `status` and `body` allows.
pub(super) fn after_answer(status: StatusCode, body: &[u8]) -> Again {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            match serde_json::from_slice::<ErrorBody>(body).map(|answer| answer.code) {
                Ok(ErrorCode::StoreBusy) => Again::Any,
                _ => Again::IfSafe,
            }
        }
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Again::IfSafe,
        _ => Again::Never,
    }
}

/// The `Retry-After` of an answer, in whole seconds (the only form the server sends).
pub(super) fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// The kind of the I/O error under `err`, if one is.
fn io_kind(err: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// One call's attempts: how many were made, and whether and when to make another.
#[derive(Debug)]
pub(super) struct Attempts {
    /// No attempt starts after this.
    closes: Instant,
    /// The current pause's upper bound.
    pause: Duration,
    made: u32,
}

impl Attempts {
    /// A call's first attempt, now, with retries open for `window`.
    pub(super) fn start(window: Duration) -> Self {
        Self {
            closes: Instant::now() + window,
            pause: FIRST_PAUSE,
            made: 1,
        }
    }

    /// How many attempts were made.
    pub(super) fn made(&self) -> u32 {
        self.made
    }

    /// Pauses, at least `at_least`, and counts another attempt; false, without pausing,
    /// when that attempt could not start before the window closes.
    pub(super) fn pause_for_another(&mut self, at_least: Duration) -> bool {
        let pause = rand::random_range(self.pause / 2..=self.pause).max(at_least);
        if Instant::now() + pause > self.closes {
            return false;
        }
        std::thread::sleep(pause);
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        self.made += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_refused_connection_allows_any_request_again_and_a_timeout_none() {
        // Nothing listens on a port that was free a moment ago: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = reqwest::blocking::get(format!("http://127.0.0.1:{port}/")).unwrap_err();
        assert_eq!(after_failure(&refused), Again::Any, "{refused:?}");

        // A listener that never answers: the attempt times out.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let timed_out = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap()
            .get(format!("http://{}/", silent.local_addr().unwrap()))
            .send()
            .unwrap_err();
        assert_eq!(after_failure(&timed_out), Again::Never, "{timed_out:?}");
    }

    #[test]
    fn only_a_503_saying_the_operation_was_not_run_allows_any_request_again() {
        let busy = json!({"error": "busy", "code": "store_busy"}).to_string();
        let storage = json!({"error": "disk", "code": "storage_failure"}).to_string();
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(after_answer(unavailable, busy.as_bytes()), Again::Any);
        assert_eq!(after_answer(unavailable, b"<html>"), Again::IfSafe);
        assert_eq!(after_answer(StatusCode::BAD_GATEWAY, b""), Again::IfSafe);
        assert_eq!(
            after_answer(StatusCode::GATEWAY_TIMEOUT, b""),
            Again::IfSafe
        );
        let failed = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(after_answer(failed, storage.as_bytes()), Again::Never);
        assert_eq!(after_answer(StatusCode::CONFLICT, b""), Again::Never);
        assert!(!Again::IfSafe.allows(false));
        assert!(Again::IfSafe.allows(true) && Again::Any.allows(false));
    }

    #[test]
    fn no_attempt_starts_after_the_window_closes() {
        let mut attempts = Attempts::start(Duration::from_millis(200));
        // A Retry-After past the window: no pause, no attempt.
        assert!(!attempts.pause_for_another(Duration::from_secs(1)));
        assert_eq!(attempts.made(), 1);
        let mut closed = Attempts::start(Duration::ZERO);
        assert!(!closed.pause_for_another(Duration::ZERO));
    }

    #[test]
    fn each_pause_doubles_the_last_and_retry_after_is_read_in_seconds() {
        let mut attempts = Attempts::start(Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(attempts.pause_for_another(Duration::ZERO));
        }
        assert_eq!((attempts.made(), attempts.pause), (4, FIRST_PAUSE * 8));
        assert_eq!(retry_after(&HeaderMap::new()), Duration::ZERO);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(2));
    }
}
