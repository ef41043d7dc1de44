//! Waiting for a lock (`waiting.rs`): the queue driven step by step against a FIFO model on a
//! manual clock, then the blocking `acquire_within` under real thread races.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use octostore_core::{
    AcquireStatus, Api, ClientId, Clock, Error, LockGrant, LockName, ManualClock, Next, Session,
    Settings, SqliteBackend, Store, SystemClock, Ticket, Timestamp, Ttl,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::models::{config, regressions};
use crate::support::{memory, Harness};

/// The lease every grant of these tests makes: 10 s of the manual clock.
const TTL_MS: i64 = 10_000;

fn ttl() -> Ttl {
    Ttl::seconds(TTL_MS / 1_000).unwrap()
}

fn deploy() -> LockName {
    LockName::parse("deploy").unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// A new waiter joins the queue and makes its first try.
    Arrive,
    /// The `n`th waiter (modulo their number) leaves: its caller is gone.
    Leave(usize),
    /// The `n`th waiter's wait ends: one last try, then it leaves.
    TimeOut(usize),
    /// The holder releases.
    Release,
    /// The clock moves on, by milliseconds.
    Advance(i64),
    /// An acquire with no ticket (one try).
    Once,
    /// Every waiter woken, or whose retry instant passed, tries.
    Deliver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Arrive),
        2 => (0..8usize).prop_map(Op::Leave),
        1 => (0..8usize).prop_map(Op::TimeOut),
        3 => Just(Op::Release),
        2 => prop_oneof![1..3_000i64, 9_000..12_000i64].prop_map(Op::Advance),
        1 => Just(Op::Once),
        4 => Just(Op::Deliver),
    ]
}

/// Who got a lease: a waiter by its number, or the one-try acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Waiter(usize),
    Once,
}

/// The model: a FIFO queue of waiter numbers, the holder and when its lease ends.
#[derive(Default)]
struct Model {
    now_ms: i64,
    holder: Option<(Who, i64)>,
    queue: VecDeque<usize>,
    grants: Vec<Who>,
}

impl Model {
    fn free(&self) -> bool {
        self.holder.is_none_or(|(_, until)| self.now_ms >= until)
    }

    fn grant(&mut self, who: Who) {
        self.holder = Some((who, self.now_ms + TTL_MS));
        self.grants.push(who);
    }
}

/// A waiter as the blocking layer keeps it: its ticket, its wake-up, its retry instant.
struct Waiter {
    number: usize,
    ticket: Ticket,
    woken: Arc<AtomicBool>,
    retry_at: Option<DateTime<Utc>>,
}

/// The store side: waiters, in arrival order, and the holder's session and grant.
struct Real {
    harness: Harness,
    waiters: Vec<Waiter>,
    holder: Option<(Session, LockGrant)>,
    grants: Vec<Who>,
    arrived: usize,
}

impl Real {
    fn session(&self) -> Session {
        self.harness.user("waiter")
    }

    fn client(number: usize) -> ClientId {
        ClientId::parse(&format!("w{number}")).unwrap()
    }

    /// One try of the waiter at `index`; on a grant it leaves the queue (waking the next).
    fn try_waiter(&mut self, index: usize) -> Result<bool, TestCaseError> {
        let session = self.session();
        let waiter = &mut self.waiters[index];
        let client = Self::client(waiter.number);
        match session.acquire_in_turn(&waiter.ticket, ttl(), Some(&client)) {
            Ok(grant) => {
                prop_assert_eq!(grant.status, AcquireStatus::Acquired);
                let waiter = self.waiters.remove(index);
                self.grants.push(Who::Waiter(waiter.number));
                self.holder = Some((session, grant));
                Ok(true)
            }
            Err(Error::LockHeld { expires_at, .. }) => {
                waiter.retry_at = match waiter.ticket.after_held(expires_at) {
                    Next::RetryAt(at) => Some(at),
                    Next::AwaitTurn => None,
                };
                Ok(false)
            }
            Err(e) => Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        }
    }

    /// Lets every due waiter try until none is due.
    fn deliver(&mut self) -> Result<(), TestCaseError> {
        let now = self.harness.store.now();
        'again: loop {
            for index in 0..self.waiters.len() {
                let waiter = &self.waiters[index];
                let due = waiter.woken.swap(false, Ordering::SeqCst)
                    || waiter.retry_at.is_some_and(|at| at <= now);
                if due {
                    self.try_waiter(index)?;
                    continue 'again;
                }
            }
            return Ok(());
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut real = Real {
        harness: memory(Settings::default()),
        waiters: Vec::new(),
        holder: None,
        grants: Vec::new(),
        arrived: 0,
    };
    let name = deploy();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Arrive => {
                let number = real.arrived;
                real.arrived += 1;
                let woken = Arc::new(AtomicBool::new(false));
                let wake = {
                    let woken = woken.clone();
                    Box::new(move || woken.store(true, Ordering::SeqCst))
                };
                let ticket = real.session().join_queue(&name, wake).unwrap();
                real.waiters.push(Waiter {
                    number,
                    ticket,
                    woken,
                    retry_at: None,
                });
                let last = real.waiters.len() - 1;
                real.try_waiter(last)?;
                if model.queue.is_empty() && model.free() {
                    model.grant(Who::Waiter(number));
                } else {
                    model.queue.push_back(number);
                }
            }
            Op::Leave(n) | Op::TimeOut(n) if !real.waiters.is_empty() => {
                let index = n % real.waiters.len();
                let number = real.waiters[index].number;
                let final_try = matches!(op, Op::TimeOut(_));
                if !(final_try && real.try_waiter(index)?) {
                    real.waiters.remove(index);
                }
                prop_assert_eq!(model.queue[index], number);
                model.queue.remove(index);
                if final_try && index == 0 && model.free() {
                    model.grant(Who::Waiter(number));
                }
            }
            Op::Leave(_) | Op::TimeOut(_) => {}
            Op::Release => {
                if let Some((session, grant)) = real.holder.take() {
                    let released = session.release(&name, grant.lease.lease_id);
                    prop_assert_eq!(released.is_ok(), !model.free(), "step {}", step);
                }
                model.holder = None;
            }
            Op::Advance(ms) => {
                real.harness.advance_ms(ms);
                model.now_ms += ms;
            }
            Op::Once => {
                let outsider = real.harness.user("outsider");
                match outsider.acquire(&name, ttl(), None) {
                    Ok(grant) if grant.status == AcquireStatus::Held => {}
                    Ok(grant) => {
                        real.grants.push(Who::Once);
                        real.holder = Some((outsider, grant));
                    }
                    Err(Error::LockHeld { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                }
                if model.queue.is_empty() && model.free() {
                    model.grant(Who::Once);
                }
            }
            Op::Deliver => {
                real.deliver()?;
                if model.free() {
                    if let Some(head) = model.queue.pop_front() {
                        model.grant(Who::Waiter(head));
                    }
                }
            }
        }
        prop_assert_eq!(&real.grants, &model.grants, "after step {}: {:?}", step, op);
        let waiting = real.harness.store.lock_queues().waiters(&name);
        prop_assert_eq!(waiting, model.queue.len(), "after step {}", step);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256, regressions!("waiting")))]

    /// Grants go to the waiters in arrival order among those still waiting; a waiter that
    /// left never gets a lease; a one-try acquire never takes a lock promised to a waiter;
    /// a holder's expiry lets the head in at `expires_at`, with no sweep and no release.
    #[test]
    fn waiters_are_granted_in_arrival_order(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn a_free_lock_with_waiters_is_promised_to_the_first() {
    let h = memory(Settings::default());
    let (alice, bob, carol) = (h.user("alice"), h.user("bob"), h.user("carol"));
    let name = deploy();
    let held = alice.acquire(&name, ttl(), None).unwrap();
    let bobs = bob.join_queue(&name, Box::new(|| {})).unwrap();
    alice.release(&name, held.lease.lease_id).unwrap();

    // Bob has not tried again yet: the lock is his.
    let now = h.store.now();
    match carol.acquire(&name, ttl(), None) {
        Err(Error::LockHeld {
            holder, expires_at, ..
        }) => assert_eq!((holder.as_str(), expires_at), ("bob", now)),
        other => panic!("expected the lock promised to bob, got {other:?}"),
    }
    let grant = bob.acquire_in_turn(&bobs, ttl(), None).unwrap();
    assert_eq!(grant.lease.holder.as_str(), "bob");
}

#[test]
fn the_head_retries_at_the_holders_expiry_without_a_sweep() {
    let h = memory(Settings::default());
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let name = deploy();
    let held = alice.acquire(&name, ttl(), None).unwrap();
    let ticket = bob.join_queue(&name, Box::new(|| {})).unwrap();
    let expires_at = match bob.acquire_in_turn(&ticket, ttl(), None) {
        Err(Error::LockHeld { expires_at, .. }) => expires_at,
        other => panic!("expected held, got {other:?}"),
    };
    assert_eq!(expires_at, held.lease.expires_at);
    assert_eq!(ticket.after_held(expires_at), Next::RetryAt(expires_at));

    h.advance_ms(TTL_MS);
    let grant = bob.acquire_in_turn(&ticket, ttl(), None).unwrap();
    assert!(grant.lease.fencing_token > held.lease.fencing_token);
}

#[test]
fn a_waiter_behind_another_awaits_its_turn_and_is_woken_when_the_head_leaves() {
    let h = memory(Settings::default());
    let (alice, bob, carol) = (h.user("alice"), h.user("bob"), h.user("carol"));
    let name = deploy();
    alice.acquire(&name, ttl(), None).unwrap();
    let bobs = bob.join_queue(&name, Box::new(|| {})).unwrap();
    let woken = Arc::new(AtomicBool::new(false));
    let wake = {
        let woken = woken.clone();
        Box::new(move || woken.store(true, Ordering::SeqCst))
    };
    let carols = carol.join_queue(&name, wake).unwrap();
    assert_eq!(carols.after_held(h.store.now()), Next::AwaitTurn);
    assert!(!woken.load(Ordering::SeqCst));
    drop(bobs);
    assert!(woken.load(Ordering::SeqCst), "the new head was not woken");
    assert!(carols.is_head());
}

/// A store on the system clock: `acquire_within`'s timers are real time.
fn real_time() -> (Store, Session, Session) {
    let store = Store::in_memory();
    let user = |login: &str| {
        let login = octostore_core::Login::parse(login).unwrap();
        store.session(store.local_user(&login).unwrap())
    };
    let (alice, bob) = (user("alice"), user("bob"));
    (store, alice, bob)
}

#[test]
fn a_release_racing_a_waiters_arrival_is_never_lost() {
    let (_store, alice, bob) = real_time();
    let name = deploy();
    let long = Ttl::seconds(3_600).unwrap();
    for round in 0..1_000 {
        let held = alice.acquire(&name, long, None).unwrap();
        let start = Arc::new(Barrier::new(2));
        let (granted, grant) = mpsc::channel();
        {
            let (bob, name, start) = (bob.clone(), name.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let wait = Duration::from_secs(3_600);
                let _ = granted.send(bob.acquire_within(&name, long, None, wait));
            });
        }
        start.wait();
        // Releases land at every point of the waiter's join, try and wait, round by round.
        for _ in 0..(round % 100) * 20 {
            std::hint::spin_loop();
        }
        alice.release(&name, held.lease.lease_id).unwrap();
        // A lost wake-up leaves the waiter asleep for the holder's hour: this bound only
        // turns that hang into a failure.
        let grant = grant.recv_timeout(Duration::from_secs(30));
        let grant = grant.unwrap_or_else(|_| panic!("round {round}: the wake-up was lost"));
        let grant = grant.unwrap_or_else(|e| panic!("round {round}: {e}"));
        bob.release(&name, grant.lease.lease_id).unwrap();
    }
}

/// The system clock, but the first reading of `now` (not of `timestamp`, which transactions
/// read) after `hook` is set runs it first: a test puts an action between a waiting acquire's
/// try (a transaction) and its sleep (timed by the store's `now`).
#[derive(Default)]
struct HookedClock {
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Clock for HookedClock {
    fn now(&self) -> DateTime<Utc> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        SystemClock.now()
    }

    fn timestamp(&self) -> Timestamp {
        SystemClock.timestamp()
    }
}

#[test]
fn a_release_between_a_waiters_try_and_its_sleep_wakes_it() {
    let clock = Arc::new(HookedClock::default());
    let store = Store::in_memory_with_clock(clock.clone());
    let user = |login: &str| {
        let login = octostore_core::Login::parse(login).unwrap();
        store.session(store.local_user(&login).unwrap())
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let name = deploy();
    let hour = Ttl::seconds(3_600).unwrap();
    let held = alice.acquire(&name, hour, None).unwrap();
    let release = {
        let name = name.clone();
        move || alice.release(&name, held.lease.lease_id).unwrap()
    };
    *clock.hook.lock().unwrap() = Some(Box::new(release));
    let (granted, grant) = mpsc::channel();
    std::thread::spawn(move || {
        let wait = Duration::from_secs(3_600);
        let _ = granted.send(bob.acquire_within(&name, hour, None, wait));
    });
    // Lost, the wake-up would leave the waiter asleep for the holder's hour: this bound only
    // turns that hang into a failure.
    let grant = grant.recv_timeout(Duration::from_secs(30));
    let grant = grant.expect("the wake-up was lost").unwrap();
    assert_eq!(grant.lease.holder.as_str(), "bob");
}

#[test]
fn blocked_waiters_are_granted_in_arrival_order() {
    let (store, alice, bob) = real_time();
    let name = deploy();
    let held = alice.acquire(&name, ttl(), None).unwrap();
    let (granted, grants) = mpsc::channel();
    let mut threads = Vec::new();
    for n in 0..5 {
        let (bob, lock, granted) = (bob.clone(), name.clone(), granted.clone());
        threads.push(std::thread::spawn(move || {
            let client = ClientId::parse(&format!("w{n}")).unwrap();
            let wait = Duration::from_secs(60);
            let grant = bob
                .acquire_within(&lock, ttl(), Some(&client), wait)
                .unwrap();
            granted.send(n).unwrap();
            bob.release(&lock, grant.lease.lease_id).unwrap();
        }));
        // The next starts once this one waits: arrival order is the spawn order.
        while store.lock_queues().waiters(&name) < n + 1 {
            std::thread::yield_now();
        }
    }
    alice.release(&name, held.lease.lease_id).unwrap();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(grants.try_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
}

#[test]
fn a_lease_that_expires_lets_the_head_in_with_no_release_or_sweep() {
    let (_store, alice, bob) = real_time();
    let name = deploy();
    let held = alice
        .acquire(&name, Ttl::seconds(1).unwrap(), None)
        .unwrap();
    let grant = bob
        .acquire_within(&name, ttl(), None, Duration::from_secs(30))
        .unwrap();
    assert!(grant.lease.fencing_token > held.lease.fencing_token);
}

#[test]
fn a_wait_that_ends_is_lock_held_and_leaves_the_queue() {
    let (store, alice, bob) = real_time();
    let name = deploy();
    alice
        .acquire(&name, Ttl::seconds(3_600).unwrap(), None)
        .unwrap();
    let outcome = bob.acquire_within(&name, ttl(), None, Duration::from_millis(50));
    assert!(
        matches!(outcome, Err(Error::LockHeld { .. })),
        "{outcome:?}"
    );
    assert_eq!(store.lock_queues().waiters(&name), 0);
}

#[test]
fn a_release_by_another_process_on_the_file_reaches_the_waiter_long_before_the_expiry() {
    // Two stores on one file stand for two processes: the release wakes no one in the
    // waiter's process, so its head asks again on its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let (here, there) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
    let user = |store: &Store, login: &str| {
        let login = octostore_core::Login::parse(login).unwrap();
        store.session(store.local_user(&login).unwrap())
    };
    let (alice, bob) = (user(&there, "alice"), user(&here, "bob"));
    let name = deploy();
    let held = alice
        .acquire(&name, Ttl::seconds(3_600).unwrap(), None)
        .unwrap();
    std::thread::scope(|scope| {
        let waiter =
            scope.spawn(|| bob.acquire_within(&name, ttl(), None, Duration::from_secs(60)));
        while here.lock_queues().waiters(&name) == 0 {
            std::thread::yield_now();
        }
        alice.release(&name, held.lease.lease_id).unwrap();
        let released = std::time::Instant::now();
        let grant = waiter.join().unwrap().unwrap();
        assert_eq!(grant.lease.holder.as_str(), "bob");
        // Not the last try a wait makes as it ends: the head asked again on its own.
        assert!(
            released.elapsed() < Duration::from_secs(30),
            "granted only as the 60 s wait ended"
        );
    });
}

/// Two stores on one storage, as two processes (servers, nodes) sharing it are, on one
/// manual clock; and what keeps the storage.
type TwoNodes = (Arc<ManualClock>, Store, Store, Box<dyn std::any::Any>);

fn two_nodes_on_a_file() -> TwoNodes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let clock = Arc::new(ManualClock::default());
    let node = || {
        let backend = SqliteBackend::open(&path).unwrap();
        Store::builder()
            .backend(backend)
            .clock(clock.clone())
            .build()
    };
    let (here, there) = (node(), node());
    (clock, here, there, Box::new(dir))
}

#[cfg(feature = "postgres")]
fn two_nodes_on_postgres() -> Option<TwoNodes> {
    let schema = crate::support::TestSchema::new(&crate::support::postgres_url()?);
    let clock = Arc::new(ManualClock::default());
    let node = || {
        let backend = schema.backend();
        Store::builder()
            .backend(backend)
            .clock(clock.clone())
            .build()
    };
    let (here, there) = (node(), node());
    Some((clock, here, there, Box::new(schema)))
}

fn session_of(store: &Store, login: &str) -> Session {
    let login = octostore_core::Login::parse(login).unwrap();
    store.session(store.local_user(&login).unwrap())
}

/// Alice (here) holds the lock; Bob waits there, then Carol here. Alice's release wakes
/// Carol, the first waiter here, but the lock is Bob's: he came first, on the other node.
fn waiters_of_two_nodes_are_served_in_arrival_order((_clock, here, there, _keep): TwoNodes) {
    let (alice, carol) = (session_of(&here, "alice"), session_of(&here, "carol"));
    let bob = session_of(&there, "bob");
    let name = deploy();
    let held = alice.acquire(&name, ttl(), None).unwrap();
    let bobs = bob.join_queue(&name, Box::new(|| {})).unwrap();
    let carols = carol.join_queue(&name, Box::new(|| {})).unwrap();
    assert!(bobs.number() < carols.number());
    assert_eq!(
        alice.waiters(&name).unwrap(),
        2,
        "both nodes' waiters count"
    );

    alice.release(&name, held.lease.lease_id).unwrap();
    match carol.acquire_in_turn(&carols, ttl(), None) {
        Err(Error::LockHeld { holder, .. }) => assert_eq!(holder.as_str(), "bob"),
        other => panic!("carol came second, got {other:?}"),
    }
    let once = session_of(&here, "dave").acquire(&name, ttl(), None);
    assert!(matches!(once, Err(Error::LockHeld { .. })), "{once:?}");
    let grant = bob.acquire_in_turn(&bobs, ttl(), None).unwrap();
    assert_eq!(grant.lease.holder.as_str(), "bob");
    drop(bobs);
    bob.release(&name, grant.lease.lease_id).unwrap();
    let grant = carol.acquire_in_turn(&carols, ttl(), None).unwrap();
    assert_eq!(grant.lease.holder.as_str(), "carol");
}

#[test]
fn waiters_of_two_processes_on_one_file_are_served_in_arrival_order() {
    waiters_of_two_nodes_are_served_in_arrival_order(two_nodes_on_a_file());
}

#[cfg(feature = "postgres")]
#[test]
fn waiters_of_two_nodes_on_postgres_are_served_in_arrival_order() {
    if let Some(nodes) = two_nodes_on_postgres() {
        waiters_of_two_nodes_are_served_in_arrival_order(nodes);
    }
}

#[test]
fn the_waiters_of_a_dead_process_keep_their_places_only_until_its_lease_ends() {
    let (clock, here, there, _keep) = two_nodes_on_a_file();
    let name = deploy();
    let bob = session_of(&there, "bob");
    // Bob's process dies with his ticket: nothing deletes its row.
    std::mem::forget(bob.join_queue(&name, Box::new(|| {})).unwrap());
    let alice = session_of(&here, "alice");
    let promised = alice.acquire(&name, ttl(), None);
    assert!(
        matches!(promised, Err(Error::LockHeld { .. })),
        "{promised:?}"
    );

    clock.advance(chrono::Duration::from_std(octostore_core::waiting::NODE_LEASE).unwrap());
    let grant = alice.acquire(&name, ttl(), None).unwrap();
    assert_eq!(grant.lease.holder.as_str(), "alice");
    here.sweep().unwrap();
    let after_sweep = session_of(&there, "carol").join_queue(&name, Box::new(|| {}));
    assert!(after_sweep.is_ok());
}

#[test]
fn a_waiter_that_leaves_gives_its_place_to_the_next_in_every_process() {
    let (_clock, here, there, _keep) = two_nodes_on_a_file();
    let name = deploy();
    let bobs = session_of(&here, "bob")
        .join_queue(&name, Box::new(|| {}))
        .unwrap();
    let carol = session_of(&there, "carol");
    let carols = carol.join_queue(&name, Box::new(|| {})).unwrap();
    // Bob leaves; his row goes on a thread of its own, and the other process's try must not
    // wait for it forever: it waits until the row is gone.
    drop(bobs);
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    let grant = loop {
        match carol.acquire_in_turn(&carols, ttl(), None) {
            Ok(grant) => break grant,
            Err(Error::LockHeld { .. }) if std::time::Instant::now() < give_up => {
                std::thread::yield_now()
            }
            other => panic!("bob's place was never given up: {other:?}"),
        }
    };
    assert_eq!(grant.lease.holder.as_str(), "carol");
}
