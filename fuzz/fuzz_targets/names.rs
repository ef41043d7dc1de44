//! Every validator of `octostore_core::values::names` and `bounds` on arbitrary input: none
//! panics, each accepts exactly what its documented pattern allows (checked here
//! independently, by plain comparisons of code points), and an accepted value gives back what
//! it was made from, whichever way it is read (`as_str`, `Display`, `Debug`, `FromStr`,
//! `Borrow<str>`'s hash).
//! The same bytes also go through the one decoder of stored bytes the core exposes,
//! `LimitRecord::from_bytes`.
#![no_main]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use octostore_core::{
    ClientId, ConfigKey, Description, Error, FlagName, LimitName, LimitRecord, LockName, Login,
    Percentage, RatePolicy, Subject, Timestamp, Ttl,
};

/// The character classes of the contract, spelled out.
#[derive(Clone, Copy)]
enum Class {
    /// `[a-zA-Z0-9_-]`, plus the extra ASCII characters listed.
    Word(&'static [u8]),
    /// Anything but a control character (Unicode category Cc: U+0000–U+001F, U+007F–U+009F).
    Printable,
}

fn allowed(class: Class, c: char) -> bool {
    match class {
        Class::Word(extra) => {
            c.is_ascii() && {
                let b = c as u8;
                b.is_ascii_lowercase()
                    || b.is_ascii_uppercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'
                    || extra.contains(&b)
            }
        }
        Class::Printable => !matches!(c as u32, 0x00..=0x1f | 0x7f..=0x9f),
    }
}

fn expected_ok(text: &str, max: usize, class: Class) -> bool {
    let chars = text.chars().count();
    (1..=max).contains(&chars) && text.chars().all(|c| allowed(class, c))
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Checks one name type against its pattern; `$field` is the field its errors name.
macro_rules! check_name {
    ($ty:ty, $text:expr, $max:expr, $class:expr, $field:literal) => {{
        let text: &str = $text;
        assert_eq!(<$ty>::MAX_CHARS, $max, "{}::MAX_CHARS", stringify!($ty));
        let expect = expected_ok(text, $max, $class);
        match <$ty>::parse(text) {
            Ok(name) => {
                assert!(expect, "{} accepted {text:?}", stringify!($ty));
                assert_eq!(name.as_str(), text);
                assert_eq!(name.to_string(), text);
                assert_eq!(format!("{name:?}"), format!("{text:?}"));
                let again: $ty = text.parse().expect("FromStr agrees with parse");
                assert_eq!(again, name);
                assert_eq!(again.clone().as_ref() as &str, text);
                // `Borrow<str>` promises hashing and ordering agree with the text's.
                assert_eq!(hash_of(&name), hash_of(text));
                assert_eq!(
                    hash_of(std::borrow::Borrow::<str>::borrow(&name)),
                    hash_of(text)
                );
                Some(name)
            }
            Err(err) => {
                assert!(!expect, "{} refused {text:?}: {err}", stringify!($ty));
                match &err {
                    Error::Invalid { field, .. } => assert_eq!(*field, $field, "{err:?}"),
                    other => panic!("{} refused {text:?} with {other:?}", stringify!($ty)),
                }
                let _ = err.to_string();
                assert!(text.parse::<$ty>().is_err());
                None
            }
        }
    }};
}

#[derive(Arbitrary, Debug)]
struct Numbers {
    ttl: i64,
    max_requests: i64,
    window_seconds: i64,
    percentage: i64,
    /// Small numbers too: the bounds are where the mistakes are.
    near: [i8; 4],
}

fn check_text(text: &str) {
    check_name!(LockName, text, 128, Class::Word(b""), "name");
    check_name!(LimitName, text, 100, Class::Printable, "name");
    check_name!(FlagName, text, 100, Class::Word(b""), "name");
    check_name!(ConfigKey, text, 100, Class::Word(b"."), "key");
    check_name!(ClientId, text, 128, Class::Word(b".:"), "client_id");
    let login = check_name!(Login, text, 64, Class::Word(b"."), "login");
    let subject = check_name!(Subject, text, 256, Class::Printable, "subject");
    if let Some(login) = login {
        assert_eq!(login.folded(), text.to_ascii_lowercase());
        // Every login is a valid subject, and the conversion keeps the text.
        let from_login = Subject::from(&login);
        assert_eq!(Some(from_login), subject);
    }
    // Names that differ must compare as their texts do (ordering used for sorted lists).
    if let (Ok(a), Ok(b)) = (LimitName::parse(text), LimitName::parse("m")) {
        assert_eq!(a.cmp(&b), text.cmp("m"));
    }

    let chars = text.chars().count();
    match Description::new(text) {
        Ok(d) => {
            assert!(chars <= 500, "description of {chars} characters accepted");
            assert_eq!(d.as_str(), text);
        }
        Err(e) => {
            assert!(chars > 500, "description of {chars} characters refused");
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        field: "description",
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }
}

fn check_numbers(n: &Numbers) {
    let near = |i: usize| i64::from(n.near[i]);
    for ttl in [n.ttl, near(0), 3600 + near(0)] {
        match Ttl::seconds(ttl) {
            Ok(t) => {
                assert!((1..=3600).contains(&ttl), "ttl {ttl} accepted");
                assert_eq!(i64::from(t.as_secs()), ttl);
                assert_eq!(t.duration().num_seconds(), ttl);
            }
            Err(e) => {
                assert!(!(1..=3600).contains(&ttl), "ttl {ttl} refused");
                assert!(
                    matches!(
                        e,
                        Error::Invalid {
                            field: "ttl_seconds",
                            ..
                        }
                    ),
                    "{e:?}"
                );
            }
        }
    }
    for (max, window) in [
        (n.max_requests, n.window_seconds),
        (near(1), near(2)),
        (10_000 + near(1), 86_400 + near(2)),
    ] {
        let max_ok = (1..=10_000).contains(&max);
        let window_ok = (1..=86_400).contains(&window);
        match RatePolicy::new(max, window) {
            Ok(p) => {
                assert!(max_ok && window_ok, "policy {max}/{window} accepted");
                assert_eq!(i64::from(p.max_requests()), max);
                assert_eq!(i64::from(p.window_seconds()), window);
            }
            Err(Error::Invalid { field, .. }) => {
                // The first bad number is the one named.
                let expected = if max_ok {
                    "window_seconds"
                } else {
                    "max_requests"
                };
                assert!(!(max_ok && window_ok), "policy {max}/{window} refused");
                assert_eq!(field, expected);
            }
            Err(e) => panic!("policy {max}/{window}: {e:?}"),
        }
    }
    for pct in [n.percentage, near(3), 100 + near(3)] {
        match Percentage::new(pct) {
            Ok(p) => {
                assert!((0..=100).contains(&pct), "percentage {pct} accepted");
                assert_eq!(i64::from(p.get()), pct);
            }
            Err(e) => {
                assert!(!(0..=100).contains(&pct), "percentage {pct} refused");
                assert!(
                    matches!(
                        e,
                        Error::Invalid {
                            field: "percentage",
                            ..
                        }
                    ),
                    "{e:?}"
                );
            }
        }
    }
}

/// A stored rate-limit record, as a backend reads it back: a corrupt one is an error, never a
/// panic; one in the current form encodes to the same bytes, and one in the form of earlier
/// versions to bytes that decode to the same record.
fn check_record(data: &[u8]) {
    const LEN: usize = 8 + 8 + 17 * 8;
    const OLD_LEN: usize = 8 + 8 + 17 * 12;
    // Most inputs are not of a valid length: make ones that are from them.
    let sized = |len: usize| {
        let mut sized = data.to_vec();
        sized.resize(len, 0);
        sized
    };
    for bytes in [data, &sized(LEN)[..], &sized(OLD_LEN)[..]] {
        match LimitRecord::from_bytes(bytes) {
            Ok(record) => {
                let encoded = record.to_bytes();
                assert_eq!(encoded.len(), LEN, "a record encodes in the current form");
                if bytes.len() == LEN {
                    assert_eq!(encoded, bytes, "a record re-encodes to other bytes");
                } else {
                    let again = LimitRecord::from_bytes(&encoded).expect("its own encoding");
                    assert_eq!(again, record, "an old record re-encodes to another");
                }
                for now in [i64::MIN, 0, 1_704_067_200_000_000_000, i64::MAX] {
                    let _ = record.is_idle(Timestamp::from_nanos(now));
                }
            }
            Err(e) => assert!(matches!(e, Error::Storage { .. }), "{e:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_record(data);
    // The bytes as text, exactly when they are UTF-8, and lossily always, so that invalid
    // input still exercises the validators.
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    check_text(&String::from_utf8_lossy(data));
    // Long names made of a repeated piece reach the length bounds that raw inputs rarely do.
    if let Some((&n, piece)) = data.split_first() {
        if let Ok(piece) = std::str::from_utf8(piece) {
            if !piece.is_empty() && piece.len() <= 8 {
                check_text(&piece.repeat(usize::from(n)));
            }
        }
    }
    if let Ok(numbers) = Numbers::arbitrary(&mut Unstructured::new(data)) {
        check_numbers(&numbers);
    }
});
