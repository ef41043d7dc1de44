//! The users of bearer tokens a store has authenticated, so that the next request with the
//! same token need not read its token and user again: on a file, those two reads and their
//! savepoint were half of the statements of a lock request.
//!
//! What is remembered stays true until a token or a user changes. This process's changes go
//! through [`Store`](crate::Store), which forgets everything after each one; other processes'
//! changes show in [`Backend::outside_writes`](crate::Backend::outside_writes), and when it
//! moves everything is forgotten too (on PostgreSQL, a count of every node's changes of
//! users and tokens: one small read where the lookup took a transaction). A backend that
//! cannot tell (`None`) gets nothing remembered.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::records::identity::{TokenHash, User};

/// At most this many tokens are remembered; past it, all are forgotten and relearned.
const CAPACITY: usize = 4_096;

#[derive(Default)]
pub(crate) struct KnownTokens {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The backend's [`outside_writes`](crate::Backend::outside_writes) when `users` was
    /// learned.
    outside_writes: Option<u64>,
    /// Counts this process's changes: a lookup that began before one is not remembered.
    changes: u64,
    users: HashMap<TokenHash, User>,
}

/// Where a lookup began: what [`KnownTokens::learn`] checks nothing changed since.
#[derive(Clone, Copy)]
pub(crate) struct Since {
    outside_writes: Option<u64>,
    changes: u64,
}

impl KnownTokens {
    /// The user of `token` if known while the backend's outside writes are at
    /// `outside_writes`, or where to begin the lookup that [`learn`](Self::learn)s it.
    pub(crate) fn user(
        &self,
        token: &TokenHash,
        outside_writes: Option<u64>,
    ) -> std::result::Result<User, Since> {
        if outside_writes.is_none() {
            return Err(Since {
                outside_writes,
                changes: 0,
            });
        }
        let mut state = self.state.lock();
        if state.outside_writes != outside_writes {
            state.outside_writes = outside_writes;
            state.users.clear();
        }
        let since = Since {
            outside_writes,
            changes: state.changes,
        };
        state.users.get(token).cloned().ok_or(since)
    }

    /// Remembers that `token` is `user`'s, as a lookup begun at `since` read, if nothing
    /// changed since.
    pub(crate) fn learn(&self, since: Since, token: TokenHash, user: &User) {
        if since.outside_writes.is_none() {
            return;
        }
        let mut state = self.state.lock();
        let unchanged =
            since.changes == state.changes && since.outside_writes == state.outside_writes;
        if !unchanged {
            return;
        }
        if state.users.len() >= CAPACITY {
            state.users.clear();
        }
        state.users.insert(token, user.clone());
    }

    /// Forgets every token: a token or a user may have changed.
    pub(crate) fn forget_all(&self) {
        let mut state = self.state.lock();
        state.changes += 1;
        state.users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::identity::{UserId, UserSource};
    use crate::values::names::Login;

    fn user() -> User {
        User {
            id: UserId(uuid::Uuid::new_v4()),
            login: Login::parse("alice").unwrap(),
            avatar_url: None,
            source: UserSource::Local,
        }
    }

    #[test]
    fn a_lookup_begun_before_a_change_or_an_outside_write_is_not_remembered() {
        let (known, token, alice) = (KnownTokens::default(), TokenHash([7; 32]), user());
        let since = known.user(&token, Some(1)).unwrap_err();
        known.forget_all();
        known.learn(since, token, &alice);
        let since = known.user(&token, Some(1)).unwrap_err();
        // Another process wrote while this lookup ran.
        assert!(known.user(&token, Some(2)).is_err());
        known.learn(since, token, &alice);
        let since = known.user(&token, Some(2)).unwrap_err();
        known.learn(since, token, &alice);
        assert_eq!(known.user(&token, Some(2)).ok(), Some(alice.clone()));
        // Then another outside write: forgotten.
        assert!(known.user(&token, Some(3)).is_err());
        // A backend that cannot tell gets nothing remembered.
        let since = known.user(&token, None).unwrap_err();
        known.learn(since, token, &alice);
        assert!(known.user(&token, None).is_err());
    }
}
