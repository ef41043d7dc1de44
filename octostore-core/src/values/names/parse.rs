//! The one way to make a name: [`parse`](super::LockName::parse), which checks the text
//! against the name's bounds and fails naming the field.

use super::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, Login, PropertyName, SegmentName, Subject,
    VariantName,
};
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

macro_rules! parse_as {
    ($name:ident, field: $field:literal, allowed: $allowed:expr, described: $text:literal) => {
        impl $name {
            #[doc = concat!("Checks `value` and wraps it; the error names the field `", $field, "`.")]
            pub fn parse(value: &str) -> Result<Self> {
                check($field, value, Self::MAX_CHARS, $allowed, $text)?;
                Ok(Self(value.into()))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
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

parse_as!(
    LockName, field: "name", allowed: word_char,
    described: "letters, digits, '_' and '-'"
);

parse_as!(
    LimitName, field: "name", allowed: |c| !c.is_control(),
    described: "printable characters"
);

parse_as!(
    FlagName, field: "name", allowed: word_char,
    described: "letters, digits, '_' and '-'"
);

parse_as!(
    ConfigKey, field: "key", allowed: |c| word_char(c) || c == '.',
    described: "letters, digits, '.', '_' and '-'"
);

parse_as!(
    ClientId, field: "client_id", allowed: |c| word_char(c) || c == '.' || c == ':',
    described: "letters, digits, '_', '.', ':' and '-'"
);

parse_as!(
    Login, field: "login", allowed: |c| word_char(c) || c == '.',
    described: "letters, digits, '_', '.' and '-'"
);

parse_as!(
    Subject, field: "subject", allowed: |c| !c.is_control(),
    described: "printable characters"
);

parse_as!(
    SegmentName, field: "segment", allowed: word_char,
    described: "letters, digits, '_' and '-'"
);

parse_as!(
    VariantName, field: "variant", allowed: |c| !c.is_control(),
    described: "printable characters"
);

parse_as!(
    PropertyName, field: "property", allowed: |c| word_char(c) || c == '.',
    described: "letters, digits, '.', '_' and '-'"
);

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
