//! Leader election, and why a lock needs fencing tokens.
//!
//! Three nodes campaign for the lock `leader`; the winner renews its short lease and writes to
//! a storage service. Then the leader stalls (a long GC pause, a frozen VM) past its lease,
//! another node takes over, and the stalled node wakes up still believing it leads. The lock
//! cannot stop that late write: the stalled node no longer asks the lock, it just writes. The
//! fencing token does: the storage remembers the highest token it has accepted and rejects
//! any smaller one, so the old leader's write bounces off.
//!
//! The store runs on a [`ManualClock`], so the pause takes no real time and every run prints
//! the same story.
//!
//! ```sh
//! cargo run -p octostore-core --example leader_election
//! ```

use std::sync::Arc;

use chrono::Duration;
use octostore_core::{
    Api, Error, FencingToken, Lease, LockName, Login, ManualClock, Session, Store, Ttl,
};

/// A storage service that accepts a write only if its fencing token is at least the highest
/// it has accepted.
struct FencedStorage {
    highest: FencingToken,
    value: String,
}

impl FencedStorage {
    fn new() -> Self {
        Self {
            highest: FencingToken(0),
            value: String::new(),
        }
    }

    /// Stores `value`, or returns the highest token seen if `token` is older.
    fn write(&mut self, token: FencingToken, value: &str) -> Result<(), FencingToken> {
        if token < self.highest {
            return Err(self.highest);
        }
        self.highest = token;
        self.value = value.to_owned();
        Ok(())
    }
}

/// One candidate: its own user, and the lease it believes it holds.
struct Node {
    name: &'static str,
    store: Store,
    session: Session,
    lease: Option<Lease>,
}

impl Node {
    fn join(store: &Store, name: &'static str) -> Result<Self, Error> {
        let user = store.create_user(&Login::parse(name)?)?;
        Ok(Self {
            name,
            store: store.clone(),
            session: store.session(user),
            lease: None,
        })
    }

    fn say(&self, what: &str) {
        let now = self.store.now().format("%H:%M:%S");
        println!("[{now}] {}: {what}", self.name);
    }

    fn campaign(&mut self, lock: &LockName, ttl: Ttl) -> Result<(), Error> {
        match self.session.acquire(lock, ttl, None) {
            Ok(grant) => {
                let token = grant.lease.fencing_token;
                self.say(&format!("becomes leader with fencing token {token}"));
                self.lease = Some(grant.lease);
            }
            Err(Error::LockHeld {
                holder, expires_at, ..
            }) => self.say(&format!(
                "{holder} leads until {}; stays a follower",
                expires_at.format("%H:%M:%S")
            )),
            Err(other) => return Err(other),
        }
        Ok(())
    }

    fn renew(&mut self, ttl: Ttl) -> Result<(), Error> {
        let lease = self.lease.as_ref().expect("only a leader renews");
        match self.session.renew(&lease.name, lease.lease_id, ttl) {
            Ok(renewed) => {
                let until = renewed.expires_at.format("%H:%M:%S");
                self.say(&format!("renews its lease until {until}, same token"));
                self.lease = Some(renewed);
            }
            Err(Error::NotFound { .. }) => {
                self.say("cannot renew: the lease is gone; steps down");
                self.lease = None;
            }
            Err(other) => return Err(other),
        }
        Ok(())
    }

    fn resign(&mut self) -> Result<(), Error> {
        let lease = self.lease.take().expect("only a leader resigns");
        self.session.release(&lease.name, lease.lease_id)?;
        self.say("releases the lock");
        Ok(())
    }

    fn write(&self, storage: &mut FencedStorage, value: &str) {
        let token = self
            .lease
            .as_ref()
            .expect("only a leader writes")
            .fencing_token;
        match storage.write(token, value) {
            Ok(()) => self.say(&format!("writes {value:?} with token {token}: accepted")),
            Err(highest) => self.say(&format!(
                "writes {value:?} with token {token}: REJECTED, storage has seen {highest}"
            )),
        }
    }
}

fn main() -> Result<(), Error> {
    let clock = Arc::new(ManualClock::default());
    let store = Store::in_memory_with_clock(clock.clone());
    let lock = LockName::parse("leader")?;
    let ttl = Ttl::seconds(10)?;
    let mut storage = FencedStorage::new();
    let mut a = Node::join(&store, "node-a")?;
    let mut b = Node::join(&store, "node-b")?;
    let mut c = Node::join(&store, "node-c")?;

    for node in [&mut a, &mut b, &mut c] {
        node.campaign(&lock, ttl)?;
    }
    a.write(&mut storage, "v1");

    clock.advance(Duration::seconds(4));
    a.renew(ttl)?;
    a.write(&mut storage, "v2");

    a.say("stalls in a 15 s GC pause, longer than its lease");
    clock.advance(Duration::seconds(15));
    b.campaign(&lock, ttl)?;
    b.write(&mut storage, "v3");

    a.say("wakes up, still believing it leads");
    a.write(&mut storage, "v2-late");
    a.renew(ttl)?;

    clock.advance(Duration::seconds(2));
    b.resign()?;
    c.campaign(&lock, ttl)?;
    c.write(&mut storage, "v4");

    println!(
        "storage holds {:?}, written with token {}; the stale write never landed",
        storage.value, storage.highest
    );
    Ok(())
}
