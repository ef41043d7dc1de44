//! Locks: leases, fencing, exact expiry, client ids, ownership and quotas.

use octostore_core::{
    AcquireStatus, Api, ClientId, Error, HeldBy, LeaseId, LockName, LockPage, LockStatus, Quotas,
    Settings, Ttl,
};
use uuid::Uuid;

use crate::support::{each_backend, Open};

fn name(s: &str) -> LockName {
    LockName::parse(s).unwrap()
}

fn ttl(s: i64) -> Ttl {
    Ttl::seconds(s).unwrap()
}

fn acquire_release_and_reacquire(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let first = alice.acquire(&name("deploy"), ttl(60), None).unwrap();
    assert_eq!(first.status, AcquireStatus::Acquired);
    assert_eq!(first.lease.expires_at, h.store.now() + ttl(60).duration());
    assert_eq!(first.lease.holder, alice.user().login);

    let again = alice.acquire(&name("deploy"), ttl(5), None).unwrap();
    assert_eq!(again.status, AcquireStatus::Held);
    assert_eq!(again.lease, first.lease, "held returns the lease unchanged");

    alice
        .release(&name("deploy"), first.lease.lease_id)
        .unwrap();
    assert_eq!(
        alice.lock_status(&name("deploy")).unwrap(),
        LockStatus::Available
    );
    let second = alice.acquire(&name("deploy"), ttl(60), None).unwrap();
    assert_eq!(second.status, AcquireStatus::Acquired);
    assert_ne!(second.lease.lease_id, first.lease.lease_id);
    assert!(second.lease.fencing_token > first.lease.fencing_token);
}

fn another_user_gets_a_conflict_naming_the_holder(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let lease = alice.acquire(&name("db"), ttl(30), None).unwrap().lease;
    match bob.acquire(&name("db"), ttl(30), None) {
        Err(Error::LockHeld {
            name: n,
            holder,
            expires_at,
        }) => {
            assert_eq!(n, name("db"));
            assert_eq!(holder.as_str(), "alice");
            assert_eq!(expires_at, lease.expires_at);
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }
    match bob.lock_status(&name("db")).unwrap() {
        LockStatus::Held(seen) => {
            assert_eq!(seen, lease);
            assert_eq!(seen.holder.as_str(), "alice");
        }
        LockStatus::Available => panic!("the lock is held"),
    }
}

fn expiry_is_exact_to_the_clock(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let first = alice.acquire(&name("job"), ttl(10), None).unwrap().lease;
    h.advance_ms(9_999);
    assert!(
        bob.acquire(&name("job"), ttl(10), None).is_err(),
        "live 1 ms before expiry"
    );
    h.advance_ms(1);
    assert_eq!(
        bob.lock_status(&name("job")).unwrap(),
        LockStatus::Available
    );
    // Not found, and said why: the lock is held by nobody now.
    for result in [
        alice
            .renew(&name("job"), first.lease_id, ttl(10))
            .map(|_| ()),
        alice.release(&name("job"), first.lease_id),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::NotFound {
                    held_by: Some(HeldBy::Nobody),
                    ..
                })
            ),
            "{result:?}"
        );
    }
    let taken = bob.acquire(&name("job"), ttl(10), None).unwrap();
    assert_eq!(taken.status, AcquireStatus::Acquired);
    assert!(taken.lease.fencing_token > first.fencing_token);
    assert!(alice.locks().unwrap().is_empty());
}

fn renew_extends_from_now_and_keeps_the_token(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let lease = alice.acquire(&name("job"), ttl(10), None).unwrap().lease;
    h.advance_secs(8);
    let renewed = alice.renew(&name("job"), lease.lease_id, ttl(100)).unwrap();
    assert_eq!(renewed.fencing_token, lease.fencing_token);
    assert_eq!(renewed.lease_id, lease.lease_id);
    assert_eq!(renewed.expires_at, h.store.now() + ttl(100).duration());
    h.advance_secs(50);
    assert!(matches!(
        alice.lock_status(&name("job")).unwrap(),
        LockStatus::Held(_)
    ));
}

fn only_the_owner_with_the_lease_id_releases_or_renews(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let lease = alice.acquire(&name("job"), ttl(60), None).unwrap().lease;
    let wrong = LeaseId(Uuid::new_v4());
    // Not found, saying who holds the lock instead: another lease (alice's, which bob or a
    // wrong lease id does not name), or nobody.
    for (result, held_by) in [
        (
            bob.release(&name("job"), lease.lease_id),
            HeldBy::AnotherLease,
        ),
        (alice.release(&name("job"), wrong), HeldBy::AnotherLease),
        (
            alice.release(&name("other"), lease.lease_id),
            HeldBy::Nobody,
        ),
        (
            bob.renew(&name("job"), lease.lease_id, ttl(5)).map(|_| ()),
            HeldBy::AnotherLease,
        ),
        (
            alice.renew(&name("job"), wrong, ttl(5)).map(|_| ()),
            HeldBy::AnotherLease,
        ),
        (
            alice
                .renew(&name("other"), lease.lease_id, ttl(5))
                .map(|_| ()),
            HeldBy::Nobody,
        ),
    ] {
        assert!(
            matches!(&result, Err(Error::NotFound { held_by: Some(h), .. }) if *h == held_by),
            "{result:?}, expected {held_by:?}"
        );
    }
    assert_eq!(
        alice.lock_status(&name("job")).unwrap(),
        LockStatus::Held(lease)
    );
}

fn client_ids_make_one_users_processes_contend(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let a = ClientId::parse("host-a:123").unwrap();
    let b = ClientId::parse("host-b:456").unwrap();
    let lease = alice
        .acquire(&name("cron"), ttl(60), Some(&a))
        .unwrap()
        .lease;
    assert_eq!(lease.client_id.as_ref(), Some(&a));
    assert!(matches!(
        alice.acquire(&name("cron"), ttl(60), Some(&b)),
        Err(Error::LockHeld { .. })
    ));
    assert!(matches!(
        alice.acquire(&name("cron"), ttl(60), None),
        Err(Error::LockHeld { .. })
    ));
    let again = alice.acquire(&name("cron"), ttl(60), Some(&a)).unwrap();
    assert_eq!(again.status, AcquireStatus::Held);
    // The lease id, not the client id, identifies the lease for release.
    alice.release(&name("cron"), lease.lease_id).unwrap();
    let other = alice.acquire(&name("cron"), ttl(60), Some(&b)).unwrap();
    assert_eq!(other.status, AcquireStatus::Acquired);
}

/// Each acquire is sent after the previous one was answered, so its token is greater on
/// every backend, PostgreSQL included (whose tokens of overlapping acquires of different
/// locks may be answered out of order: `postgres_db` tests that promise).
fn fencing_tokens_increase_across_all_locks(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    let mut last = 0;
    for i in 0..20 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        let lock = name(&format!("lock-{}", i % 3));
        let lease = match who.acquire(&lock, ttl(1), None) {
            Ok(grant) => grant.lease,
            Err(_) => {
                h.advance_secs(1);
                who.acquire(&lock, ttl(1), None).unwrap().lease
            }
        };
        assert!(
            lease.fencing_token.0 > last,
            "tokens never repeat or go back"
        );
        last = lease.fencing_token.0;
    }
}

fn list_shows_only_the_callers_live_leases(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    alice.acquire(&name("b-lock"), ttl(100), None).unwrap();
    alice.acquire(&name("a-lock"), ttl(10), None).unwrap();
    bob.acquire(&name("c-lock"), ttl(100), None).unwrap();
    let names = |s: &octostore_core::Session| -> Vec<String> {
        s.locks()
            .unwrap()
            .iter()
            .map(|l| l.name.to_string())
            .collect()
    };
    assert_eq!(names(&alice), ["a-lock", "b-lock"]);
    assert_eq!(names(&bob), ["c-lock"]);
    h.advance_secs(10);
    assert_eq!(names(&alice), ["b-lock"]);
}

fn all_locks_lists_every_users_live_leases_by_name(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let bob = h.user("bob");
    alice.acquire(&name("b-lock"), ttl(100), None).unwrap();
    alice.acquire(&name("a-lock"), ttl(10), None).unwrap();
    let bobs = bob.acquire(&name("c-lock"), ttl(100), None).unwrap();
    let listed = |page: &LockPage| -> Vec<(String, String)> {
        (bob.all_locks(page).unwrap().locks.iter())
            .map(|l| (l.lease.name.to_string(), l.lease.holder.to_string()))
            .collect()
    };
    let all = LockPage::default();
    assert_eq!(
        listed(&all),
        [
            ("a-lock".into(), "alice".into()),
            ("b-lock".into(), "alice".into()),
            ("c-lock".into(), "bob".into())
        ]
    );
    // Carol waits for bob's lock.
    let carol = h.user("carol");
    let waiting = carol.join_queue(&name("c-lock"), Box::new(|| {})).unwrap();
    let page = alice.all_locks(&all).unwrap();
    assert_eq!(page.next, None, "a page that is not full is the last");
    assert_eq!(
        page.locks[2].lease, bobs.lease,
        "each lease as its holder was granted it"
    );
    let waiters: Vec<usize> = page.locks.iter().map(|l| l.waiters).collect();
    assert_eq!(waiters, [0, 0, 1], "the waiters of each lock");
    // Bob lets go, and carol takes the lock in her turn, leaving the queue (a ticket dropped
    // unserved would leave it on a thread of its own, racing the test's end).
    bob.release(&name("c-lock"), bobs.lease.lease_id).unwrap();
    carol.acquire_in_turn(&waiting, ttl(100), None).unwrap();
    let page = alice.all_locks(&all).unwrap();
    let waiters: Vec<usize> = page.locks.iter().map(|l| l.waiters).collect();
    assert_eq!(waiters, [0, 0, 0], "a waiter served leaves the count");

    h.advance_secs(10);
    assert_eq!(
        listed(&all),
        [
            ("b-lock".into(), "alice".into()),
            ("c-lock".into(), "carol".into())
        ],
        "a dead lease is left out, swept or not"
    );
}

fn all_locks_pages_cover_every_lease_once(open: Open) {
    let h = open(Settings::default());
    let users = [h.user("alice"), h.user("bob"), h.user("carol")];
    let mut held = Vec::new();
    for i in 0..10 {
        let lock = name(&format!("lock-{i:02}"));
        // Every third a short lease, dead by the time the pages are read.
        let secs = if i % 3 == 0 { 5 } else { 100 };
        users[i % 3].acquire(&lock, ttl(secs), None).unwrap();
        if secs == 100 {
            held.push(lock.to_string());
        }
    }
    h.advance_secs(5);

    let mut page = LockPage::new(None, Some(3)).unwrap();
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let answer = users[0].all_locks(&page).unwrap();
        pages += 1;
        listed.extend(answer.locks.iter().map(|l| l.lease.name.to_string()));
        match answer.next {
            Some(next) => {
                assert_eq!(next.limit(), 3);
                page = next;
            }
            None => break,
        }
    }
    assert_eq!(listed, held);
    // 10 stored leases by 3: three full pages, each with a next, then the last one.
    assert_eq!(pages, 4);

    let exact = LockPage::new(Some(name("lock-06")), Some(3)).unwrap();
    let answer = users[0].all_locks(&exact).unwrap();
    assert_eq!(
        answer.next.as_ref().and_then(LockPage::after),
        Some(&name("lock-09")),
        "a full page has a next, even when nothing follows"
    );
    assert!(users[0]
        .all_locks(&answer.next.unwrap())
        .unwrap()
        .locks
        .is_empty());
}

fn the_lock_quota_counts_live_leases_only(open: Open) {
    let quotas = Quotas {
        locks: 2,
        ..Quotas::default()
    };
    let h = open(Settings {
        quotas,
        ..Settings::default()
    });
    let alice = h.user("alice");
    alice.acquire(&name("one"), ttl(10), None).unwrap();
    alice.acquire(&name("two"), ttl(20), None).unwrap();
    assert!(matches!(
        alice.acquire(&name("three"), ttl(10), None),
        Err(Error::QuotaExceeded { limit: 2, .. })
    ));
    assert_eq!(
        alice.acquire(&name("one"), ttl(10), None).unwrap().status,
        AcquireStatus::Held,
        "re-acquiring a held lock is not a new lease"
    );
    h.advance_secs(10);
    alice.acquire(&name("three"), ttl(10), None).unwrap();
    h.user("bob").acquire(&name("four"), ttl(10), None).unwrap();
}

fn sweep_frees_expired_leases_and_changes_no_answer(open: Open) {
    let h = open(Settings::default());
    let alice = h.user("alice");
    let kept = alice.acquire(&name("kept"), ttl(100), None).unwrap().lease;
    alice.acquire(&name("gone"), ttl(5), None).unwrap();
    h.advance_secs(5);
    let swept = h.store.sweep().unwrap();
    assert_eq!(swept.leases, 1);
    assert_eq!(alice.locks().unwrap(), [kept]);
    assert_eq!(h.store.sweep().unwrap().leases, 0);
}

fn a_sweep_in_small_batches_frees_every_expired_lease(open: Open) {
    let h = open(Settings::default());
    let users = ["alice", "bob", "carol"];
    let mut kept = Vec::new();
    for user in users {
        let session = h.user(user);
        for i in 0..3 {
            let gone = name(&format!("{user}-gone-{i}"));
            session.acquire(&gone, ttl(5), None).unwrap();
        }
        let lease = session.acquire(&name(&format!("{user}-kept")), ttl(100), None);
        kept.push(lease.unwrap().lease);
    }
    h.advance_secs(5);
    // Two leases a transaction: the sweep resumes after the last name it read, 6 times.
    let batch = std::num::NonZeroUsize::new(2).unwrap();
    assert_eq!(h.store.sweep_in_batches(batch).unwrap().leases, 9);
    assert_eq!(h.store.sweep_in_batches(batch).unwrap().leases, 0);
    for (user, lease) in users.into_iter().zip(kept) {
        assert_eq!(h.user(user).locks().unwrap(), [lease]);
    }
}

fn the_live_lease_count_reads_every_batch_and_skips_the_dead(open: Open) {
    let h = open(Settings::default());
    for user in ["alice", "bob", "carol"] {
        let session = h.user(user);
        session
            .acquire(&name(&format!("{user}-short")), ttl(5), None)
            .unwrap();
        for i in 0..2 {
            let long = name(&format!("{user}-long-{i}"));
            session.acquire(&long, ttl(100), None).unwrap();
        }
    }
    let batch = std::num::NonZeroUsize::new(2).unwrap();
    assert_eq!(h.store.live_lease_count_in_batches(batch).unwrap(), 9);
    h.advance_secs(5);
    assert_eq!(h.store.live_lease_count_in_batches(batch).unwrap(), 6);
    assert_eq!(h.store.live_lease_count().unwrap(), 6);
    // Counting deletes nothing: the dead are still there for the sweep.
    assert_eq!(h.store.sweep().unwrap().leases, 3);
}

fn dead_leases_do_not_pile_up_without_sweeps(open: Open) {
    let h = open(Settings {
        quotas: Quotas {
            locks: 5,
            ..Quotas::default()
        },
        ..Settings::default()
    });
    let alice = h.user("alice");
    for i in 0..100 {
        alice
            .acquire(&name(&format!("l{i}")), ttl(1), None)
            .unwrap();
        h.advance_secs(1);
    }
    let stored = h.store.sweep().unwrap().leases;
    assert!(stored <= 5, "{stored} dead leases were still stored");
}

#[test]
fn a_lock_page_holds_1_to_1000() {
    for bad in [0, 1001, u64::MAX] {
        let refused = LockPage::new(None, Some(bad)).unwrap_err();
        assert!(
            matches!(refused, Error::Invalid { field, .. } if field == "limit"),
            "{refused:?}"
        );
    }
    assert_eq!(LockPage::new(None, Some(1000)).unwrap().limit(), 1000);
    assert_eq!(LockPage::new(None, None).unwrap().limit(), 100);
}

each_backend!(
    a_sweep_in_small_batches_frees_every_expired_lease,
    the_live_lease_count_reads_every_batch_and_skips_the_dead,
    dead_leases_do_not_pile_up_without_sweeps,
    acquire_release_and_reacquire,
    another_user_gets_a_conflict_naming_the_holder,
    expiry_is_exact_to_the_clock,
    renew_extends_from_now_and_keeps_the_token,
    only_the_owner_with_the_lease_id_releases_or_renews,
    client_ids_make_one_users_processes_contend,
    fencing_tokens_increase_across_all_locks,
    list_shows_only_the_callers_live_leases,
    all_locks_lists_every_users_live_leases_by_name,
    all_locks_pages_cover_every_lease_once,
    the_lock_quota_counts_live_leases_only,
    sweep_frees_expired_leases_and_changes_no_answer,
);
