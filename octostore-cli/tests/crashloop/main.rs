//! The real `octostore serve`, killed with SIGKILL over and over under concurrent HTTP load:
//! after each restart on the same store, everything the server acknowledged is there, an
//! operation in flight at the kill either landed whole or not at all, and no fencing token
//! handed out after a restart is smaller than one acknowledged before.
//!
//! Each cycle starts a server on the store, checks the store against what the clients were
//! told, lets client threads load it, and kills it at a moment drawn from a seeded generator
//! (`OCTOSTORE_CRASHLOOP_SEED` replays a run's kill moments; the interleavings still vary).
//! A client records an operation as acknowledged only when a 2xx answer reached it; the one
//! operation that failed when the server died is remembered as "in flight", and the check
//! after the restart accepts the store with or without it, and then adopts what it finds.
//!
//! After each restart the change log agrees with the store (`changes`): each worker's events,
//! in index order, are exactly the changes it was acknowledged (and its operation in flight
//! if the store holds it), no event tells of a change the store does not hold, and the last
//! event of each lock names the lease the store holds, with its expiry. An event written
//! outside its change's transaction would, at some kill, be missing beside its change or
//! present without it.
//!
//! `logs` runs the same real server at `RUST_LOG=trace` and searches its stderr for tokens
//! and lease ids.

mod changes;
mod logs;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use octostore_core::{
    AcquireStatus, Api, Change, ClientId, ConfigKey, Error, Event, EventKind, FlagName, Lease,
    LeaseId, LimitName, LockName, LockStatus, Percentage, RatePolicy, Ttl,
};
use octostore_http::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::server::{postgres_url, Server, Storage};

/// Client threads loading the server.
const WORKERS: usize = 6;
/// Each worker's rate limit of a cycle allows this many checks: never reached, so every
/// acknowledged check is an allowed one, and each one must stay counted.
const LIMIT_MAX: u32 = 10_000;
/// Longer than any test: a lease outlives every restart unless released.
const LEASE_SECONDS: u64 = 3600;

/// A worker's operations, in this order, round and round (a cycle starts where the last one
/// stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Acquire,
    Put,
    Renew,
    Flag,
    Check,
    Release,
}

const PLAN: [Op; 6] = [
    Op::Acquire,
    Op::Put,
    Op::Renew,
    Op::Flag,
    Op::Check,
    Op::Release,
];

/// The operation that was sent when the server died: it may or may not have been applied.
#[derive(Debug, Clone, PartialEq)]
enum InFlight {
    Acquire,
    Put(Value),
    Renew,
    Flag(bool, Option<Percentage>),
    Check,
    Release(LeaseId),
}

/// One client thread and everything the server acknowledged to it. Each worker has its own
/// lock, config key, flag and rate limit, so what the store must hold follows from its
/// acknowledgements alone.
struct Worker {
    id: usize,
    client_id: ClientId,
    lock: LockName,
    key: ConfigKey,
    flag: FlagName,
    /// The next operation of [`PLAN`].
    step: usize,
    /// Makes each config value and flag setting different from the last.
    n: u64,
    /// The lease the worker holds, as last acknowledged.
    lease: Option<Lease>,
    /// Every config version acknowledged (or found after a restart), with its value.
    versions: BTreeMap<u64, Value>,
    /// The flag as last acknowledged.
    flag_state: Option<(bool, Option<Percentage>)>,
    /// This cycle's rate limit and how many of its checks were acknowledged.
    limit: Option<(LimitName, u32)>,
    /// The operation the kill interrupted.
    in_flight: Option<InFlight>,
    /// Fencing tokens of leases newly acquired (status `acquired`) in this cycle.
    issued: Vec<u64>,
    /// The events the log must hold of this worker's lock, config key and flag, in order:
    /// its acknowledged changes, and those in flight that the store was found to hold.
    logged: Vec<String>,
    /// A renewal was in flight at the last kill: the store may hold it (a later expiry and
    /// its event) or not.
    renew_in_flight: bool,
}

/// What a run did, for the report and for the assertions that it did something.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    acknowledged: usize,
    /// Acknowledged states compared with the store after a restart: each worker's lock, flag
    /// and rate limit, and every retained config version (again after every restart).
    checked: usize,
    in_flight: usize,
    in_flight_landed: usize,
    fencing_tokens: usize,
    /// Events in the log at the last check, each matched with a change.
    events: usize,
}

impl Worker {
    fn new(id: usize) -> Self {
        Self {
            id,
            client_id: ClientId::parse(&format!("worker-{id}")).unwrap(),
            lock: LockName::parse(&format!("lock-{id}")).unwrap(),
            key: ConfigKey::parse(&format!("key-{id}")).unwrap(),
            flag: FlagName::parse(&format!("flag-{id}")).unwrap(),
            step: 0,
            n: 0,
            lease: None,
            versions: BTreeMap::new(),
            flag_state: None,
            limit: None,
            in_flight: None,
            issued: Vec::new(),
            logged: Vec::new(),
            renew_in_flight: false,
        }
    }

    /// Runs the plan against `api` until a request fails, which it may only do once the
    /// server is `killed`. Counts each acknowledgement in `acked`.
    fn run(&mut self, api: &Client, cycle: usize, killed: &AtomicBool, acked: &AtomicUsize) {
        self.in_flight = None;
        self.issued.clear();
        self.limit = Some((
            LimitName::parse(&format!("limit-{}-{cycle}", self.id)).unwrap(),
            0,
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the server was never killed");
            let op = PLAN[self.step % PLAN.len()];
            match self.attempt(op, api) {
                Ok(sent) => {
                    self.step += 1;
                    if sent {
                        acked.fetch_add(1, SeqCst);
                    }
                }
                Err((in_flight, e)) => {
                    let unreachable = matches!(&e, Error::Remote { message: m, .. } if m.starts_with("server unreachable"));
                    assert!(
                        killed.load(SeqCst) && unreachable,
                        "worker {}: {op:?} failed while the server ran: {e}",
                        self.id
                    );
                    self.in_flight = Some(in_flight);
                    return;
                }
            }
        }
    }

    /// Sends `op` and records what was acknowledged: `Ok(false)` when the op has nothing to
    /// do (no lease to renew or release), or the operation in flight and the error.
    fn attempt(&mut self, op: Op, api: &Client) -> Result<bool, (InFlight, Error)> {
        let ttl = Ttl::seconds(LEASE_SECONDS as i64).unwrap();
        match op {
            Op::Acquire => {
                let grant = api
                    .acquire(&self.lock, ttl, Some(&self.client_id))
                    .map_err(|e| (InFlight::Acquire, e))?;
                match grant.status {
                    AcquireStatus::Acquired => {
                        assert!(
                            self.lease.is_none(),
                            "worker {}: acquired {:?} while holding {:?}",
                            self.id,
                            grant.lease,
                            self.lease
                        );
                        self.issued.push(grant.lease.fencing_token.0);
                        self.log("acquired", grant.lease.fencing_token.0);
                    }
                    AcquireStatus::Held => assert_eq!(
                        self.lease.as_ref().map(|l| (l.lease_id, l.fencing_token)),
                        Some((grant.lease.lease_id, grant.lease.fencing_token)),
                        "worker {}: answered held with a lease it did not know",
                        self.id
                    ),
                }
                self.lease = Some(grant.lease);
            }
            Op::Put => {
                self.n += 1;
                let value = json!({ "worker": self.id, "n": self.n });
                let entry = api
                    .put_config(&self.key, value.clone(), None)
                    .map_err(|e| (InFlight::Put(value.clone()), e))?;
                let last = self.versions.keys().next_back().copied().unwrap_or(0);
                assert_eq!(
                    entry.version,
                    last + 1,
                    "worker {}: the put after version {last}",
                    self.id
                );
                self.versions.insert(entry.version, value);
                self.log("put", entry.version);
            }
            Op::Renew => {
                let Some(lease) = &self.lease else {
                    return Ok(false);
                };
                let renewed = api
                    .renew(&self.lock, lease.lease_id, ttl)
                    .map_err(|e| (InFlight::Renew, e))?;
                assert_eq!(
                    (renewed.lease_id, renewed.fencing_token),
                    (lease.lease_id, lease.fencing_token),
                    "a renewal keeps the lease and its token"
                );
                self.log("renewed", lease.fencing_token.0);
            }
            Op::Flag => {
                self.n += 1;
                let setting = (
                    self.n.is_multiple_of(2),
                    Some(Percentage::new((self.n % 101) as i64).unwrap()),
                );
                api.set_flag(&self.flag, setting.0, setting.1)
                    .map_err(|e| (InFlight::Flag(setting.0, setting.1), e))?;
                self.flag_state = Some(setting);
                self.log("set", format!("{} {:?}", setting.0, setting.1));
            }
            Op::Check => {
                let (name, allowed) = self.limit.as_mut().unwrap();
                let policy = RatePolicy::new(LIMIT_MAX.into(), 3600).unwrap();
                let decision = api.check(name, policy).map_err(|e| (InFlight::Check, e))?;
                assert!(
                    decision.allowed,
                    "check {} of {LIMIT_MAX} denied",
                    *allowed + 1
                );
                *allowed += 1;
            }
            Op::Release => {
                let Some(lease) = &self.lease else {
                    return Ok(false);
                };
                api.release(&self.lock, lease.lease_id)
                    .map_err(|e| (InFlight::Release(lease.lease_id), e))?;
                self.log("released", lease.fencing_token.0);
                self.lease = None;
            }
        }
        Ok(true)
    }

    /// Notes the event a change of this worker's adds to the log: `set` of its flag, `put` of
    /// its config key, otherwise an `action` on its lock; `detail` as [`changes::describe`]
    /// writes it.
    fn log(&mut self, action: &str, detail: impl std::fmt::Display) {
        let name = match action {
            "set" => self.flag.as_str(),
            "put" => self.key.as_str(),
            _ => self.lock.as_str(),
        };
        self.logged.push(changes::line(action, name, detail));
    }

    /// Checks, after [`verify`](Self::verify), that `events` (this worker's, in index order)
    /// are exactly its changes the store holds, in the order they were acknowledged, and that
    /// its lock's last event is the lease the store holds, to its expiry.
    fn verify_log(&mut self, api: &Client, events: &[&Event]) {
        let who = format!("worker {}", self.id);
        let lines: Vec<String> = events
            .iter()
            .map(|e| changes::describe(&e.change))
            .collect();
        // A renewal in flight: its event, if the log has it, comes last; whether the store
        // holds the renewal too is the expiry compared below.
        if std::mem::take(&mut self.renew_in_flight) {
            if let Some(lease) = &self.lease {
                let renewal = changes::line("renewed", self.lock.as_str(), lease.fencing_token.0);
                if lines.len() == self.logged.len() + 1 && lines.last() == Some(&renewal) {
                    self.logged.push(renewal);
                }
            }
        }
        assert_eq!(
            lines, self.logged,
            "{who}: the log (left) against the changes acknowledged or found in the store"
        );

        let last = events
            .iter()
            .rev()
            .find(|e| e.change.kind() == EventKind::Lock)
            .map(|e| &e.change);
        match (last, api.lock_status(&self.lock).unwrap()) {
            (None | Some(Change::LockReleased(_)), LockStatus::Available) => {}
            (
                Some(Change::LockAcquired(logged) | Change::LockRenewed(logged)),
                LockStatus::Held(lease),
            ) => assert_eq!(
                (logged.fencing_token, logged.expires_at),
                (lease.fencing_token, lease.expires_at),
                "{who}: the lock's last event (left) and its lease"
            ),
            (last, status) => panic!("{who}: the lock's last event {last:?}, its state {status:?}"),
        }
    }

    /// Checks, on a restarted server, that the store holds everything acknowledged to this
    /// worker, plus at most its operation in flight; then adopts what the store holds.
    /// `floor` is the largest fencing token acknowledged before the load the last kill
    /// interrupted: a lease acquired in flight has a greater one.
    fn verify(&mut self, api: &Client, floor: u64, tally: &mut Tally) {
        let who = format!("worker {}", self.id);
        let in_flight = self.in_flight.take();
        if in_flight.is_some() {
            tally.in_flight += 1;
        }
        let mut landed = false;

        // Config: every acknowledged version, with its value; beyond the last one, only the
        // put in flight.
        let history: BTreeMap<u64, Value> = match api.config_history(&self.key) {
            Ok(history) => history.into_iter().map(|v| (v.version, v.value)).collect(),
            Err(Error::NotFound { .. }) => BTreeMap::new(),
            Err(e) => panic!("{who}: history: {e}"),
        };
        let numbers: Vec<u64> = history.keys().copied().collect();
        if let (Some(first), Some(last)) = (numbers.first(), numbers.last()) {
            assert_eq!(
                numbers,
                (*first..=*last).collect::<Vec<_>>(),
                "{who}: a gap in the versions"
            );
        }
        for (version, value) in &self.versions {
            // Versions beyond the history's cap are pruned; every later one is kept.
            if numbers.first().is_some_and(|first| version >= first) {
                assert_eq!(
                    history.get(version),
                    Some(value),
                    "{who}: acknowledged config version {version} lost or changed"
                );
                tally.checked += 1;
            }
        }
        let acked_last = self.versions.keys().next_back().copied().unwrap_or(0);
        let stored_last = numbers.last().copied().unwrap_or(0);
        assert!(
            stored_last >= acked_last,
            "{who}: acknowledged config version {acked_last} lost (the store has {stored_last})"
        );
        if stored_last > acked_last {
            match &in_flight {
                Some(InFlight::Put(value)) if stored_last == acked_last + 1 => {
                    assert_eq!(
                        history.get(&stored_last),
                        Some(value),
                        "{who}: version {stored_last}"
                    );
                    self.versions.insert(stored_last, value.clone());
                    self.log("put", stored_last);
                    landed = true;
                }
                _ => panic!(
                    "{who}: config version {stored_last} stored, {acked_last} acknowledged, \
                     in flight: {in_flight:?}"
                ),
            }
        }

        // Flag: as last acknowledged, or as the setting in flight.
        let stored = api
            .flags()
            .unwrap()
            .into_iter()
            .find(|f| f.name == self.flag)
            .map(|f| (f.enabled, f.percentage));
        if stored != self.flag_state {
            let Some((enabled, percentage)) = stored else {
                panic!(
                    "{who}: the acknowledged flag {:?} was lost",
                    self.flag_state
                );
            };
            assert_eq!(
                in_flight,
                Some(InFlight::Flag(enabled, percentage)),
                "{who}: flag {stored:?} stored, {:?} acknowledged",
                self.flag_state
            );
            self.log("set", format!("{enabled} {percentage:?}"));
            landed = true;
        }
        if self.flag_state.is_some() {
            tally.checked += 1;
        }
        self.flag_state = stored;

        // Lock: held by the acknowledged lease, or free after an acknowledged release; the
        // operation in flight may have changed that.
        let status = api.lock_status(&self.lock).unwrap();
        match (&self.lease, status) {
            (Some(acked), LockStatus::Held(lease)) => assert_eq!(
                (lease.lease_id, lease.fencing_token),
                (acked.lease_id, acked.fencing_token),
                "{who}: the acknowledged lease was replaced"
            ),
            (Some(acked), LockStatus::Available) => {
                assert_eq!(
                    in_flight,
                    Some(InFlight::Release(acked.lease_id)),
                    "{who}: the acknowledged lease {} was lost",
                    acked.fencing_token
                );
                self.log("released", acked.fencing_token.0);
                self.lease = None;
                landed = true;
            }
            (None, LockStatus::Held(lease)) => {
                assert_eq!(
                    in_flight,
                    Some(InFlight::Acquire),
                    "{who}: a lease nobody acknowledged: {lease:?}"
                );
                assert_eq!(lease.client_id.as_ref(), Some(&self.client_id));
                assert!(
                    lease.fencing_token.0 > floor,
                    "{who}: the lease in flight has fencing token {}, not above {floor}",
                    lease.fencing_token
                );
                self.log("acquired", lease.fencing_token.0);
                self.lease = Some(lease);
                landed = true;
            }
            (None, LockStatus::Available) => {}
        }
        tally.checked += 1;
        self.renew_in_flight = in_flight == Some(InFlight::Renew);

        // Rate limit: every acknowledged check is still counted, and at most the one in
        // flight beside them.
        if let Some((name, allowed)) = self.limit.take() {
            let uncertain = u32::from(in_flight == Some(InFlight::Check));
            let counted = match api.limit_status(&name) {
                Ok(decision) => LIMIT_MAX - decision.remaining,
                Err(Error::NotFound { .. }) => 0,
                Err(e) => panic!("{who}: limit status: {e}"),
            };
            assert!(
                (allowed..=allowed + uncertain).contains(&counted),
                "{who}: {allowed} checks acknowledged ({uncertain} in flight), {counted} counted"
            );
            if counted > allowed {
                landed = true;
            }
            tally.checked += usize::from(allowed > 0);
        }
        if landed {
            tally.in_flight_landed += 1;
        }
    }
}

/// Reads the whole log and checks it against every worker's changes and the probe's
/// (`probe`: its lines, as acknowledged): each event is one of theirs.
fn verify_log(api: &Client, workers: &mut [Worker], probe: &[String], tally: &mut Tally) {
    let events = changes::read_all(api);
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, w) in workers.iter().enumerate() {
        for name in [w.lock.as_str(), w.key.as_str(), w.flag.as_str()] {
            owner.insert(name.to_owned(), i);
        }
    }
    let mut theirs: Vec<Vec<&Event>> = vec![Vec::new(); workers.len()];
    let mut probes = Vec::new();
    for event in &events {
        match owner.get(event.change.name()) {
            Some(&i) => theirs[i].push(event),
            None if event.change.name() == "probe" => probes.push(changes::describe(&event.change)),
            None => panic!("an event of no client's change: {event:?}"),
        }
    }
    assert_eq!(probes, probe, "the probe's events");
    tally.events = events.len();
    for (worker, events) in workers.iter_mut().zip(theirs) {
        worker.verify_log(api, &events);
    }
}

/// Starts the server on `storage` and kills it `cycles` times under load, each time at a
/// moment drawn from `kill_after` (microseconds after the load's first acknowledgement),
/// checking the store after every restart.
fn crash_loop(storage: &Storage, cycles: usize, kill_after: Range<u64>) -> Tally {
    let seed = std::env::var("OCTOSTORE_CRASHLOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    // Shown when the test fails (the harness prints a failing test's output).
    eprintln!("OCTOSTORE_CRASHLOOP_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let token = storage.token("alice");
    let probe_lock = LockName::parse("probe").unwrap();
    let probe_client = ClientId::parse("probe").unwrap();
    let mut workers: Vec<Worker> = (0..WORKERS).map(Worker::new).collect();
    let mut tally = Tally::default();
    // The largest fencing token acknowledged so far (or found in the store).
    let mut max_token = 0u64;
    // The largest fencing token acknowledged before the last load began: an acquire in
    // flight at the kill that ended it was answered by a greater one.
    let mut load_floor = 0u64;
    // The probe's acknowledged changes, as the log tells them.
    let mut probe_log: Vec<String> = Vec::new();

    for cycle in 0..cycles {
        let server = Server::start(storage, "info", false);
        let api = server.client(&token);
        for worker in &mut workers {
            worker.verify(&api, load_floor, &mut tally);
            if let Some(lease) = &worker.lease {
                max_token = max_token.max(lease.fencing_token.0);
            }
        }
        verify_log(&api, &mut workers, &probe_log, &mut tally);
        // A token handed out now is above every token handed out before the kill.
        let probe = api
            .acquire(&probe_lock, Ttl::seconds(1).unwrap(), Some(&probe_client))
            .unwrap();
        assert_eq!(probe.status, AcquireStatus::Acquired);
        assert!(
            probe.lease.fencing_token.0 > max_token,
            "cycle {cycle}: fencing token {} after a restart, {max_token} acknowledged before",
            probe.lease.fencing_token
        );
        max_token = probe.lease.fencing_token.0;
        load_floor = max_token;
        api.release(&probe_lock, probe.lease.lease_id).unwrap();
        for action in ["acquired", "released"] {
            probe_log.push(changes::line(action, "probe", probe.lease.fencing_token.0));
        }
        tally.fencing_tokens += 1;

        // The load, and the kill at a random moment after its first acknowledgement.
        let kill_after = Duration::from_micros(rng.random_range(kill_after.clone()));
        let killed = AtomicBool::new(false);
        let acked = AtomicUsize::new(0);
        let clients: Vec<Client> = (0..WORKERS).map(|_| server.client(&token)).collect();
        thread::scope(|s| {
            let running: Vec<_> = workers
                .iter_mut()
                .zip(&clients)
                .map(|(worker, client)| {
                    let (killed, acked) = (&killed, &acked);
                    s.spawn(move || worker.run(client, cycle, killed, acked))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(30);
            while acked.load(SeqCst) == 0 && running.iter().all(|w| !w.is_finished()) {
                assert!(
                    Instant::now() < deadline,
                    "cycle {cycle}: no acknowledgement"
                );
                thread::sleep(Duration::from_micros(200));
            }
            thread::sleep(kill_after);
            killed.store(true, SeqCst);
            server.kill();
            for worker in running {
                // A worker's panic is the test's failure, with the worker's message.
                if let Err(panic) = worker.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        tally.kills += 1;
        tally.acknowledged += acked.load(SeqCst);

        // Fencing tokens handed out in this cycle: above every earlier one, none twice.
        let mut issued: Vec<u64> = workers.iter().flat_map(|w| w.issued.clone()).collect();
        issued.sort_unstable();
        assert!(
            issued.windows(2).all(|pair| pair[0] < pair[1]),
            "cycle {cycle}: a fencing token handed out twice: {issued:?}"
        );
        if let Some(&smallest) = issued.first() {
            assert!(
                smallest > max_token,
                "cycle {cycle}: fencing token {smallest} handed out after {max_token}"
            );
            max_token = *issued.last().unwrap();
        }
        tally.fencing_tokens += issued.len();
    }
    // The last kill's in-flight operations, checked on one more start.
    let server = Server::start(storage, "info", false);
    let api = server.client(&token);
    for worker in &mut workers {
        worker.verify(&api, load_floor, &mut tally);
    }
    verify_log(&api, &mut workers, &probe_log, &mut tally);
    drop(server);
    eprintln!("{tally:?}");
    tally
}

/// The acceptance figures of a run: it killed as asked, under real load.
fn assert_real_load(tally: &Tally, cycles: usize) {
    assert_eq!(tally.kills, cycles);
    assert!(
        tally.acknowledged >= cycles * WORKERS,
        "too little load: {tally:?}"
    );
    assert!(
        tally.in_flight >= cycles,
        "kills that interrupted no operation: {tally:?}"
    );
    // Beside the probe's two a cycle, the workers' changes.
    assert!(
        tally.events > 2 * cycles + cycles,
        "too few events: {tally:?}"
    );
}

#[test]
fn sqlite_server_killed_60_times_under_load_keeps_every_acknowledged_write() {
    const CYCLES: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::File(dir.path().join("octostore.db"));
    let tally = crash_loop(&storage, CYCLES, 2_000..60_000);
    assert_real_load(&tally, CYCLES);
}

#[test]
fn postgres_server_killed_under_load_keeps_every_acknowledged_write() {
    const CYCLES: usize = 15;
    let Some(url) = postgres_url("the PostgreSQL crash loop") else {
        return;
    };
    let storage = Storage::postgres(&url);
    // A transaction on the database takes longer than one on a file: a longer load.
    let tally = crash_loop(&storage, CYCLES, 20_000..150_000);
    assert_real_load(&tally, CYCLES);
}
