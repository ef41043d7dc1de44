//! Validated names: once a value of one of these types exists, it is within the contract's
//! bounds, so an invalid name can never reach storage.
//!
//! Each type is checked by [`parse`](LockName::parse) and nothing else; the bounds are those of
//! `openapi.yaml` and `DESIGN.md`. The text is shared, not copied, by clones: a name travels
//! from the request into the stored record and the answer, and each of those steps would
//! otherwise allocate.

use std::fmt;
use std::sync::Arc;

use crate::values::error::{Error, Result};

fn check(
    field: &'static str,
    value: &str,
    max_chars: usize,
    allowed: fn(char) -> bool,
    allowed_text: &str,
) -> Result<()> {
    let chars = value.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max_chars} characters long, got {chars}"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid(
            field,
            format!("may contain only {allowed_text}, found {bad:?}"),
        ));
    }
    Ok(())
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, field: $field:literal, max: $max:literal,
     allowed: $allowed:expr, described: $text:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The longest valid value, in characters.
            pub const MAX_CHARS: usize = $max;

            #[doc = concat!("Checks `value` and wraps it; the error names the field `", $field, "`.")]
            pub fn parse(value: &str) -> Result<Self> {
                check($field, value, $max, $allowed, $text)?;
                Ok(Self(value.into()))
            }

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

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::parse(value)
            }
        }
    };
}

name_type!(
    /// A lock name: 1 to 128 of `[a-zA-Z0-9_-]`. Locks share one global namespace.
    LockName, field: "name", max: 128, allowed: word_char,
    described: "letters, digits, '_' and '-'"
);

name_type!(
    /// A rate-limit name: 1 to 100 characters, any but control characters.
    LimitName, field: "name", max: 100, allowed: |c| !c.is_control(),
    described: "printable characters"
);

name_type!(
    /// A feature-flag name: 1 to 100 of `[a-zA-Z0-9_-]`.
    FlagName, field: "name", max: 100, allowed: word_char,
    described: "letters, digits, '_' and '-'"
);

name_type!(
    /// A config key: 1 to 100 of `[a-zA-Z0-9._-]`.
    ConfigKey, field: "key", max: 100, allowed: |c| word_char(c) || c == '.',
    described: "letters, digits, '.', '_' and '-'"
);

name_type!(
    /// The optional identity of one process among those sharing a user: 1 to 128 of
    /// `[a-zA-Z0-9_.:-]`. A lease belongs to (user, client id).
    ClientId, field: "client_id", max: 128,
    allowed: |c| word_char(c) || c == '.' || c == ':',
    described: "letters, digits, '_', '.', ':' and '-'"
);

name_type!(
    /// A user's login: 1 to 64 of `[a-zA-Z0-9_.-]`, unique regardless of case.
    Login, field: "login", max: 64, allowed: |c| word_char(c) || c == '.',
    described: "letters, digits, '_', '.' and '-'"
);

name_type!(
    /// The subject a feature flag is evaluated for (a user id, a tenant...): 1 to 256
    /// characters, any but control characters.
    Subject, field: "subject", max: 256, allowed: |c| !c.is_control(),
    described: "printable characters"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_follow_the_contract() {
        assert!(LockName::parse("deploy-prod_1").is_ok());
        assert!(LockName::parse(&"a".repeat(128)).is_ok());
        assert!(LockName::parse(&"a".repeat(129)).is_err());
        assert!(LockName::parse("").is_err());
        assert!(LockName::parse("a.b").is_err());
        assert!(LockName::parse("a/b").is_err());
        assert!(LockName::parse("é").is_err());
    }

    #[test]
    fn limit_names_count_characters_not_bytes() {
        assert!(LimitName::parse(&"é".repeat(100)).is_ok());
        assert!(LimitName::parse(&"é".repeat(101)).is_err());
        assert!(LimitName::parse("api calls/min").is_ok());
        assert!(LimitName::parse("tab\there").is_err());
    }

    #[test]
    fn config_keys_allow_dots_and_flags_do_not() {
        assert!(ConfigKey::parse("app.db.url").is_ok());
        assert!(FlagName::parse("app.db").is_err());
        assert!(FlagName::parse(&"f".repeat(100)).is_ok());
        assert!(ConfigKey::parse(&"k".repeat(101)).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let err = ConfigKey::parse("bad key").unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "key", .. }),
            "{err:?}"
        );
        let err = ClientId::parse("").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "client_id",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn logins_fold_case() {
        assert_eq!(Login::parse("Alice").unwrap().folded(), "alice");
        assert!(Login::parse("al ice").is_err());
    }
}
