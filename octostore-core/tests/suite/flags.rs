//! Feature flags: set, turn on or off keeping the percentage, evaluate with stable murmur3
//! bucketing, delete, list.

use octostore_core::{flag_bucket, Api, Error, FlagName, Percentage, Quotas, Settings, Subject};

use crate::support::{each_backend, Open};

fn name(s: &str) -> FlagName {
    FlagName::parse(s).unwrap()
}

fn pct(p: i64) -> Option<Percentage> {
    Some(Percentage::new(p).unwrap())
}

fn subject(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

/// MurmurHash3 x86 32-bit, written from the reference algorithm, independent of the core's
/// own; the flag model computes its buckets with it too.
pub(crate) fn reference_murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes(block.try_into().unwrap());
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[test]
fn the_reference_murmur3_matches_published_vectors() {
    assert_eq!(reference_murmur3_32(b"", 0), 0);
    assert_eq!(reference_murmur3_32(b"", 1), 0x514e_28b7);
    assert_eq!(reference_murmur3_32(b"test", 0), 0xba6b_d213);
    assert_eq!(reference_murmur3_32(b"Hello, world!", 0), 0xc036_3e43);
    assert_eq!(
        reference_murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
        0x2e4f_f723
    );
    // Unleash's cross-SDK normalisation vectors: normalizedValue("123", "gr1") == 73 and
    // normalizedValue("999", "groupX") == 25, hashing "<group>:<id>".
    let bucket = |group: &str, id: &str| {
        reference_murmur3_32(format!("{group}:{id}").as_bytes(), 0) % 100 + 1
    };
    assert_eq!(bucket("gr1", "123"), 73);
    assert_eq!(bucket("groupX", "999"), 25);
}

#[test]
fn buckets_are_pinned_to_murmur3_of_flag_colon_subject() {
    // (flag, subject, bucket): computed by a third, independent murmur3 (a few lines of
    // Python), pinned so that a change of hash or key format cannot pass unnoticed.
    let pinned = [
        ("new-checkout", "alice", 41),
        ("new-checkout", "bob", 89),
        ("dark-mode", "user-1", 76),
        ("dark-mode", "user-2", 99),
        ("beta_api", "tenant:acme", 5),
        ("x", "é", 30),
    ];
    for (flag, subj, bucket) in pinned {
        let reference = reference_murmur3_32(format!("{flag}:{subj}").as_bytes(), 0) % 100 + 1;
        assert_eq!(reference, bucket, "reference for {flag}:{subj}");
        assert_eq!(
            flag_bucket(&name(flag), &subject(subj)),
            bucket as u8,
            "{flag}:{subj}"
        );
    }
}

#[test]
fn a_quarter_rollout_enables_a_quarter_of_subjects() {
    let flag = name("rollout");
    let on = (0..100_000)
        .filter(|i| flag_bucket(&flag, &subject(&format!("user-{i}"))) <= 25)
        .count();
    assert!((24_000..=26_000).contains(&on), "{on} of 100000 at 25%");
}

#[test]
fn raising_the_percentage_only_adds_subjects() {
    let flag = name("monotonic");
    for i in 0..2_000 {
        let bucket = flag_bucket(&flag, &subject(&format!("s{i}")));
        assert!((1..=100).contains(&bucket));
        // Enabled at p iff bucket <= p: once on, on for every larger p.
        let enabled: Vec<bool> = (0..=100).map(|p| bucket <= p).collect();
        assert!(enabled.windows(2).all(|w| !w[0] || w[1]));
    }
}

fn evaluation_follows_enabled_and_percentage(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let f = name("feature");
    let s = subject("user-7");
    let bucket = flag_bucket(&f, &s);

    alice.set_flag(&f, false, None).unwrap();
    assert!(!alice.evaluate_flag(&f, Some(&s)).unwrap());
    alice.set_flag(&f, true, None).unwrap();
    assert!(alice.evaluate_flag(&f, Some(&s)).unwrap());
    alice.set_flag(&f, true, pct(0)).unwrap();
    assert!(!alice.evaluate_flag(&f, Some(&s)).unwrap());
    alice.set_flag(&f, true, pct(i64::from(bucket))).unwrap();
    assert!(alice.evaluate_flag(&f, Some(&s)).unwrap());
    alice
        .set_flag(&f, true, pct(i64::from(bucket) - 1))
        .unwrap();
    assert!(!alice.evaluate_flag(&f, Some(&s)).unwrap());
    alice.set_flag(&f, false, pct(100)).unwrap();
    assert!(!alice.evaluate_flag(&f, Some(&s)).unwrap());
}

fn the_default_subject_is_the_callers_login(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let f = name("login-default");
    let bucket = flag_bucket(&f, &subject("alice"));
    alice.set_flag(&f, true, pct(i64::from(bucket))).unwrap();
    assert!(alice.evaluate_flag(&f, None).unwrap());
    alice
        .set_flag(&f, true, pct(i64::from(bucket) - 1))
        .unwrap();
    assert!(!alice.evaluate_flag(&f, None).unwrap());
}

fn set_keeps_created_at_and_replaces_the_rest(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let f = name("f");
    let created = alice.set_flag(&f, true, pct(30)).unwrap();
    assert_eq!(created.created_at, created.updated_at);
    h.advance_secs(5);
    let updated = alice.set_flag(&f, false, None).unwrap();
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.updated_at, h.store.now());
    assert_eq!(updated.percentage, None, "omitting percentage clears it");
    assert_eq!(alice.flags().unwrap(), [updated]);
}

fn set_flag_enabled_keeps_the_percentage(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let f = name("rollout");
    let s = subject("user-7");
    let created = alice.set_flag(&f, true, pct(25)).unwrap();

    h.advance_secs(5);
    let off = alice.set_flag_enabled(&f, false).unwrap();
    assert!(!off.enabled);
    assert_eq!(off.percentage, pct(25));
    assert_eq!(off.created_at, created.created_at);
    assert_eq!(off.updated_at, h.store.now());
    assert!(!alice.evaluate_flag(&f, Some(&s)).unwrap());

    h.advance_secs(5);
    let on = alice.set_flag_enabled(&f, true).unwrap();
    assert!(on.enabled);
    assert_eq!(
        on.percentage,
        pct(25),
        "turned off and on, the rollout is kept"
    );
    assert_eq!(on.created_at, created.created_at);
    assert_eq!(on.updated_at, h.store.now());
    assert_eq!(alice.flags().unwrap(), std::slice::from_ref(&on));
    assert_eq!(
        alice.evaluate_flag(&f, Some(&s)).unwrap(),
        flag_bucket(&f, &s) <= 25
    );
    // Twice the same is no error, and still keeps it.
    assert_eq!(
        alice.set_flag_enabled(&f, true).unwrap().percentage,
        pct(25)
    );

    // Without a percentage, it stays without one.
    let plain = name("plain");
    alice.set_flag(&plain, false, None).unwrap();
    let plain = alice.set_flag_enabled(&plain, true).unwrap();
    assert_eq!(plain.percentage, None);
    assert!(alice.evaluate_flag(&plain.name, Some(&s)).unwrap());
}

fn set_flag_enabled_never_creates_a_flag(open: Open) {
    let h = open(one_flag_each());
    let alice = h.user("alice");
    let bob = h.user("bob");
    for enabled in [true, false] {
        assert!(matches!(
            alice.set_flag_enabled(&name("ghost"), enabled),
            Err(Error::NotFound { .. })
        ));
    }
    assert!(alice.flags().unwrap().is_empty());
    // Nor another user's, and the owner's is untouched.
    bob.set_flag(&name("bobs"), true, pct(10)).unwrap();
    assert!(matches!(
        alice.set_flag_enabled(&name("bobs"), false),
        Err(Error::NotFound { .. })
    ));
    assert!(bob.flags().unwrap()[0].enabled);
    // A deleted flag is gone for it too.
    alice.set_flag(&name("one"), true, None).unwrap();
    alice.delete_flag(&name("one")).unwrap();
    assert!(matches!(
        alice.set_flag_enabled(&name("one"), true),
        Err(Error::NotFound { .. })
    ));
    // At the quota, an existing flag still turns on and off: nothing is created.
    alice.set_flag(&name("one"), true, pct(50)).unwrap();
    assert!(!alice.set_flag_enabled(&name("one"), false).unwrap().enabled);
}

fn delete_and_unknown_flags(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let f = name("gone");
    assert!(matches!(
        alice.evaluate_flag(&f, None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(alice.delete_flag(&f), Err(Error::NotFound { .. })));
    let first = alice.set_flag(&f, true, None).unwrap();
    alice.delete_flag(&f).unwrap();
    assert!(matches!(
        alice.evaluate_flag(&f, None),
        Err(Error::NotFound { .. })
    ));
    h.advance_secs(1);
    let again = alice.set_flag(&f, true, None).unwrap();
    assert!(
        again.created_at > first.created_at,
        "a deleted flag starts over"
    );
}

fn flags_are_private_and_listed_by_name(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    alice.set_flag(&name("zeta"), true, None).unwrap();
    alice.set_flag(&name("alpha"), false, None).unwrap();
    assert!(matches!(
        bob.evaluate_flag(&name("zeta"), None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        bob.delete_flag(&name("zeta")),
        Err(Error::NotFound { .. })
    ));
    assert!(bob.flags().unwrap().is_empty());
    let names: Vec<_> = alice
        .flags()
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
}

fn the_flag_quota_counts_flags(open: Open) {
    let h = open(one_flag_each());
    let alice = h.user("alice");
    alice.set_flag(&name("one"), true, None).unwrap();
    alice.set_flag(&name("one"), false, None).unwrap();
    assert!(matches!(
        alice.set_flag(&name("two"), true, None),
        Err(Error::QuotaExceeded { limit: 1, .. })
    ));
}

each_backend!(
    evaluation_follows_enabled_and_percentage,
    the_default_subject_is_the_callers_login,
    set_keeps_created_at_and_replaces_the_rest,
    set_flag_enabled_keeps_the_percentage,
    set_flag_enabled_never_creates_a_flag,
    delete_and_unknown_flags,
    flags_are_private_and_listed_by_name,
    the_flag_quota_counts_flags,
);

/// Settings under which a user may own one flag.
fn one_flag_each() -> Settings {
    Settings {
        quotas: Quotas {
            flags: 1,
            ..Quotas::default()
        },
        ..Settings::default()
    }
}
