//! Users and tokens as storage keeps them: a token only as its SHA-256.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::values::names::Login;

/// A user's stable identity; logins may change, this does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a user came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserSource {
    /// Created by an administrator (`octostore token create LOGIN`).
    Local,
    /// Signed in with GitHub; `github_id` is GitHub's stable numeric user id.
    Github {
        /// GitHub's user id.
        github_id: u64,
    },
}

/// Someone who owns leases, limits, flags and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Login, unique regardless of case.
    pub login: Login,
    /// Avatar picture, for GitHub users.
    pub avatar_url: Option<String>,
    /// Where the user came from.
    pub source: UserSource,
}

/// The SHA-256 of a token: the only form in which a token is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }
}

/// A stored token: its hash, whose it is, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// An id to name the token by (to list or revoke it) without knowing it.
    pub id: Uuid,
    /// The hash of the secret.
    pub hash: TokenHash,
    /// The user the token authenticates.
    pub user: UserId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}
