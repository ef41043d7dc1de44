//! Validated numbers and texts: a lock TTL, a rate-limit policy, a rollout percentage, a
//! config description. Like [`crate::values::names`], each is checked once, when it is made.

use chrono::Duration;

use crate::values::error::{Error, Result};

fn in_range(field: &'static str, value: i64, min: i64, max: i64, unit: &str) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be between {min} and {max}{unit}, got {value}"),
        ))
    }
}

/// A lease's time to live: 1 to 3600 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u32);

impl Ttl {
    /// The longest TTL, one hour.
    pub const MAX_SECONDS: u32 = 3600;

    /// A TTL of `seconds`; the error names `ttl_seconds`.
    pub fn seconds(seconds: i64) -> Result<Self> {
        in_range(
            "ttl_seconds",
            seconds,
            1,
            Self::MAX_SECONDS.into(),
            " seconds",
        )?;
        Ok(Self(seconds as u32))
    }

    /// The TTL in whole seconds.
    pub fn as_secs(self) -> u32 {
        self.0
    }

    /// The TTL as a duration.
    pub fn duration(self) -> Duration {
        Duration::seconds(self.0.into())
    }
}

/// What a rate limit allows: `max_requests` (1 to 10 000) in any window of
/// `window_seconds` (1 to 86 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    max_requests: u32,
    window_seconds: u32,
}

impl RatePolicy {
    /// The largest `max_requests`.
    pub const MAX_REQUESTS: u32 = 10_000;
    /// The longest window, one day.
    pub const MAX_WINDOW_SECONDS: u32 = 86_400;

    /// A policy; the error names `max_requests` or `window_seconds`.
    pub fn new(max_requests: i64, window_seconds: i64) -> Result<Self> {
        in_range(
            "max_requests",
            max_requests,
            1,
            Self::MAX_REQUESTS.into(),
            "",
        )?;
        in_range(
            "window_seconds",
            window_seconds,
            1,
            Self::MAX_WINDOW_SECONDS.into(),
            " seconds",
        )?;
        Ok(Self {
            max_requests: max_requests as u32,
            window_seconds: window_seconds as u32,
        })
    }

    /// How many checks may be allowed in one window.
    pub fn max_requests(self) -> u32 {
        self.max_requests
    }

    /// The window's length in seconds.
    pub fn window_seconds(self) -> u32 {
        self.window_seconds
    }
}

/// A rollout percentage, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentage(u8);

impl Percentage {
    /// A percentage; the error names `percentage`.
    pub fn new(value: i64) -> Result<Self> {
        in_range("percentage", value, 0, 100, "")?;
        Ok(Self(value as u8))
    }

    /// The percentage as a number from 0 to 100.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A config description: at most 500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Description(String);

impl Description {
    /// The longest description, in characters.
    pub const MAX_CHARS: usize = 500;

    /// A description; the error names `description`.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let chars = text.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(Error::invalid(
                "description",
                format!(
                    "must be at most {} characters, got {chars}",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(text))
    }

    /// The description's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many items a page of a listing holds: `limit` when asked, 1 to `max`, else `default`.
pub(crate) fn page_limit(limit: Option<u64>, default: usize, max: usize) -> Result<usize> {
    let Some(n) = limit else {
        return Ok(default);
    };
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| Error::invalid("limit", format!("must be 1 to {max}, got {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_exact() {
        assert!(Ttl::seconds(0).is_err());
        assert_eq!(Ttl::seconds(1).unwrap().as_secs(), 1);
        assert_eq!(Ttl::seconds(3600).unwrap().as_secs(), 3600);
        assert!(Ttl::seconds(3601).is_err());
        assert!(RatePolicy::new(0, 10).is_err());
        assert!(RatePolicy::new(10_001, 10).is_err());
        assert!(RatePolicy::new(10_000, 86_400).is_ok());
        assert!(RatePolicy::new(1, 86_401).is_err());
        assert!(Percentage::new(-1).is_err());
        assert!(Percentage::new(101).is_err());
        assert_eq!(Percentage::new(100).unwrap().get(), 100);
        assert!(Description::new("d".repeat(500)).is_ok());
        assert!(Description::new("d".repeat(501)).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let err = RatePolicy::new(5, 0).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "window_seconds",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
