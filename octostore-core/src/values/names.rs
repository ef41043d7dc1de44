//! Validated names: once a value of one of these types exists, it is within the contract's
//! bounds, so an invalid name can never reach storage.
//!
//! Each type is made by [`parse`](LockName::parse) and nothing else; the bounds are those of
//! `openapi.yaml` (and README's semantics in brief). The text is shared, not copied, by
//! clones: a name travels from the request into the stored record and the answer, and each
//! of those steps would otherwise allocate.
//!
//! The types are defined here, and their parsing in `names/parse.rs`: a parse fails with an
//! [`Error`](crate::values::error::Error), whose variants name locks and logins, so the types
//! stand below the error and their parsing above it.

mod parse;

use std::fmt;
use std::sync::Arc;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, max: $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The longest valid value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A lock name: 1 to 128 of `[a-zA-Z0-9_-]`. Locks share one global namespace.
    LockName, max: 128
);

name_type!(
    /// A rate-limit name: 1 to 100 characters, any but control characters.
    LimitName, max: 100
);

name_type!(
    /// A feature-flag name: 1 to 100 of `[a-zA-Z0-9_-]`.
    FlagName, max: 100
);

name_type!(
    /// A config key: 1 to 100 of `[a-zA-Z0-9._-]`.
    ConfigKey, max: 100
);

name_type!(
    /// The optional identity of one process among those sharing a user: 1 to 128 of
    /// `[a-zA-Z0-9_.:-]`. A lease belongs to (user, client id).
    ClientId, max: 128
);

name_type!(
    /// A user's login: 1 to 64 of `[a-zA-Z0-9_.-]`, unique regardless of case.
    Login, max: 64
);

name_type!(
    /// The subject a feature flag is evaluated for (a user id, a tenant...): 1 to 256
    /// characters, any but control characters.
    Subject, max: 256
);

name_type!(
    /// A segment, a named set of constraints flag rules share: 1 to 100 of `[a-zA-Z0-9_-]`.
    SegmentName, max: 100
);

name_type!(
    /// A flag variant's name: 1 to 100 characters, any but control characters.
    VariantName, max: 100
);

name_type!(
    /// A property of a flag's evaluation context (`plan`, `app.version`): 1 to 100 of
    /// `[a-zA-Z0-9_.-]`.
    PropertyName, max: 100
);

impl Login {
    /// The login folded to lower case: the key under which logins are unique.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl From<&Login> for Subject {
    fn from(login: &Login) -> Self {
        // Every valid login is a valid subject: fewer and narrower characters.
        Subject(login.0.clone())
    }
}
