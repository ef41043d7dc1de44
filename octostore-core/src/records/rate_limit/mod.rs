//! Rate limits as storage keeps them: a limit's policy and its sliding window, in a fixed
//! size whatever the policy, and their bytes.
//!
//! What a check counts, and when a limit is idle, are the rules of
//! [`rate_limit`](crate::rules::rate_limit), over the window's operations here.

pub(crate) mod window;

use crate::values::bounds::RatePolicy;
use crate::values::error::{Error, Result};

pub use window::SUB_WINDOWS;
use window::{Cut, SlidingWindow};

/// What a backend stores for one limit: a fixed size whatever `max_requests` is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)] // In this order: what every check reads comes first, in one cache line.
pub struct LimitRecord {
    /// The policy of the latest check.
    pub policy: RatePolicy,
    pub(crate) window: SlidingWindow,
}

impl LimitRecord {
    /// The record as bytes, for backends that store it as one value: the policy (8 bytes),
    /// then the window.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + SlidingWindow::ENCODED_LEN);
        out.extend_from_slice(&self.policy.max_requests().to_le_bytes());
        out.extend_from_slice(&self.policy.window_seconds().to_le_bytes());
        self.window.encode(&mut out);
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote, or the form of earlier versions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::storage("corrupt rate-limit record");
        let (policy, window) = bytes.split_at_checked(8).ok_or_else(corrupt)?;
        let u32_at = |i: usize| u32::from_le_bytes(policy[i..i + 4].try_into().unwrap());
        let policy = RatePolicy::new(u32_at(0).into(), u32_at(4).into()).map_err(|_| corrupt())?;
        let window =
            SlidingWindow::decode(window, Cut::of(policy.window_seconds())).ok_or_else(corrupt)?;
        Ok(Self { policy, window })
    }

    /// A limit that has counted nothing yet.
    pub(crate) fn new(policy: RatePolicy) -> Self {
        Self {
            policy,
            window: SlidingWindow::empty(),
        }
    }

    /// How the policy's window is cut into sub-windows.
    pub(crate) fn cut(&self) -> Cut {
        Cut::of(self.policy.window_seconds())
    }
}
