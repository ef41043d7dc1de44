//! Users and bearer tokens: who is calling.
//!
//! A token is `octo_` followed by 64 hex digits (256 random bits). Only its SHA-256 hash is
//! stored, so a copy of the database grants nothing. Rotation deletes the presented token
//! and stores its successor in one transaction: the old token fails at once.

use std::fmt;

use rand::RngCore;
use uuid::Uuid;

use crate::backend::Tx;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Resource, Result};
use crate::values::names::Login;

/// A random (version 4) UUID from the thread's cryptographically secure generator, seeded
/// from the operating system: ids are unguessable, and making one is not a system call
/// (`Uuid::new_v4` without uuid's `fast-rng` feature asks the kernel each time).
pub(crate) fn random_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random::<u128>().to_ne_bytes()).into_uuid()
}

/// A bearer token's secret text. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The prefix that makes OctoStore tokens easy to recognise (and to scan for in leaks).
    pub const PREFIX: &'static str = "octo_";

    fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Token(format!("{}{}", Self::PREFIX, hex::encode(secret)))
    }

    /// The secret, to hand to the user once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(octo_…)")
    }
}

pub(crate) fn create_local_user(tx: &mut dyn Tx, login: &Login) -> Result<User> {
    if tx.user_by_login(login)?.is_some() {
        return Err(Error::Conflict(format!("login {login} is already taken")));
    }
    let user = User {
        id: UserId(random_uuid()),
        login: login.clone(),
        avatar_url: None,
        source: UserSource::Local,
    };
    tx.put_user(&user)?;
    Ok(user)
}

pub(crate) fn local_user(tx: &mut dyn Tx, login: &Login) -> Result<User> {
    match tx.user_by_login(login)? {
        Some(user) => Ok(user),
        None => create_local_user(tx, login),
    }
}

pub(crate) fn upsert_github_user(
    tx: &mut dyn Tx,
    github_id: u64,
    login: &Login,
    avatar_url: Option<&str>,
) -> Result<User> {
    let existing = tx.user_by_github_id(github_id)?;
    if let Some(other) = tx.user_by_login(login)? {
        if existing.as_ref().map(|u| u.id) != Some(other.id) {
            return Err(Error::Conflict(format!(
                "login {login} already belongs to another user"
            )));
        }
    }
    let user = User {
        id: existing.map_or_else(|| UserId(random_uuid()), |u| u.id),
        login: login.clone(),
        avatar_url: avatar_url.map(str::to_owned),
        source: UserSource::Github { github_id },
    };
    tx.put_user(&user)?;
    Ok(user)
}

pub(crate) fn issue_token(tx: &mut dyn Tx, now: Timestamp, user: UserId) -> Result<Token> {
    if tx.user(user)?.is_none() {
        return Err(Error::not_found(Resource::User, user));
    }
    let token = Token::generate();
    tx.put_token(&TokenRecord {
        id: random_uuid(),
        hash: TokenHash::of(token.expose()),
        user,
        created_at: now.to_datetime(),
    })?;
    Ok(token)
}

/// The user of the token with hash `token`.
pub(crate) fn authenticate(tx: &mut dyn Tx, token: &TokenHash) -> Result<User> {
    let record = tx.token(token)?.ok_or(Error::Unauthorized)?;
    tx.user(record.user)?.ok_or(Error::Unauthorized)
}

pub(crate) fn rotate_token(tx: &mut dyn Tx, now: Timestamp, secret: &str) -> Result<Token> {
    let old = TokenHash::of(secret);
    let record = tx.token(&old)?.ok_or(Error::Unauthorized)?;
    let successor = issue_token(tx, now, record.user)?;
    tx.delete_token(&old)?;
    Ok(successor)
}

pub(crate) fn revoke_token(tx: &mut dyn Tx, user: UserId, token_id: Uuid) -> Result<()> {
    let record = tx
        .tokens_of(user)?
        .into_iter()
        .find(|t| t.id == token_id)
        .ok_or_else(|| Error::not_found(Resource::Token, token_id))?;
    tx.delete_token(&record.hash)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_256_bit_and_hidden_in_debug() {
        let token = Token::generate();
        let hex_part = token.expose().strip_prefix(Token::PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(Token::generate(), token);
        assert!(!format!("{token:?}").contains(hex_part));
    }

    #[test]
    fn random_uuids_are_version_4() {
        let id = random_uuid();
        assert_eq!(id.get_version(), Some(uuid::Version::Random));
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(random_uuid(), id);
    }
}
