//! The memory backend: all state in hash maps behind one mutex.
//!
//! One mutex, not shards: an operation holds it for well under a microsecond, so a single
//! lock serves millions of operations a second, more than any front end sends it, and keeps
//! every transaction trivially serializable. Nothing survives the process.
//!
//! Layout, for the hot paths: each kind of owner-scoped record lives in one map keyed by
//! (owner, name), looked up with a borrowed name, so reading or updating a record is one hash
//! lookup; a per-owner index of names answers the counts and lists that quotas and listings
//! need, and changes only when a record is created or deleted. The maps are `hashbrown`'s
//! with its default hasher, foldhash: several times faster than `std`'s SipHash on short keys,
//! and still seeded at random (per map; the limits' per process), so keys chosen by callers
//! cannot be aimed at one bucket ahead of time (names are also short: at most 128 characters).

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hashbrown::hash_table;
use hashbrown::{DefaultHashBuilder, Equivalent, HashMap, HashSet, HashTable};
use parking_lot::Mutex;

use super::{Backend, Concurrency, EventBounds, EventQuery, Retained, Tx};
use crate::records::config::{
    ConfigHead, ConfigSchema, ConfigSummary, ConfigVersion, SchemaDigest,
};
use crate::records::event::{Change, Event};
use crate::records::flag::Flag;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
use crate::records::lock::{FencingToken, LeaseId, LeaseRecord, NodeId, WaiterRecord};
use crate::records::rate_limit::LimitRecord;
use crate::records::targeting::Segment;
use crate::values::clock::{Clock, Timestamp};
use crate::values::error::Result;
use crate::values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, Login, SegmentName,
};

/// Keeps everything in this process's memory.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, User>,
    user_by_folded_login: HashMap<String, UserId>,
    user_by_github_id: HashMap<u64, UserId>,
    tokens: HashMap<TokenHash, TokenRecord>,
    leases: Leases,
    last_fencing_token: u64,
    limits: Limits,
    flags: HashMap<Owned<FlagName>, Flag>,
    segments: HashMap<Owned<SegmentName>, Segment>,
    config_heads: HashMap<Owned<ConfigKey>, ConfigHead>,
    config_versions: HashMap<Owned<ConfigKey>, BTreeMap<u64, StoredVersion>>,
    config_schemas: HashMap<Owned<ConfigKey>, ConfigSchema>,
    names: HashMap<UserId, Names>,
    /// The queues of lock waiters: each lock's by ticket, and each ticket's lock.
    queues: HashMap<LockName, BTreeMap<u64, WaiterRecord>>,
    queued: HashMap<u64, LockName>,
    last_ticket: u64,
    /// Until when each waiting process is alive.
    nodes: HashMap<NodeId, DateTime<Utc>>,
    /// The kept events, oldest first, each with its owner.
    events: VecDeque<(UserId, Event)>,
    last_event: u64,
}

/// A config version, shared so that a history page copies its values out after the mutex
/// is released, and the bytes it counts.
struct StoredVersion {
    version: Arc<ConfigVersion>,
    bytes: u64,
}

/// The leases, keyed by the name inside each: a live lock costs one stored name, not two.
#[derive(Default)]
struct Leases {
    table: HashTable<StoredLease>,
    hasher: DefaultHashBuilder,
}

/// A lease as kept here: its instant in nanoseconds (8 bytes, where a `DateTime` takes 12).
struct StoredLease {
    name: LockName,
    owner: UserId,
    client_id: Option<ClientId>,
    lease_id: LeaseId,
    fencing_token: FencingToken,
    expires_at: Timestamp,
}

impl StoredLease {
    fn new(lease: &LeaseRecord) -> Self {
        Self {
            name: lease.name.clone(),
            owner: lease.owner,
            client_id: lease.client_id.clone(),
            lease_id: lease.lease_id,
            fencing_token: lease.fencing_token,
            expires_at: lease.expires_at.into(),
        }
    }

    fn record(&self) -> LeaseRecord {
        LeaseRecord {
            name: self.name.clone(),
            owner: self.owner,
            client_id: self.client_id.clone(),
            lease_id: self.lease_id,
            fencing_token: self.fencing_token,
            expires_at: self.expires_at.to_datetime(),
        }
    }
}

impl Leases {
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    fn get(&self, name: &str) -> Option<&StoredLease> {
        self.table
            .find(self.hash(name), |l| l.name.as_str() == name)
    }

    fn entry(&mut self, name: &str) -> hash_table::Entry<'_, StoredLease> {
        let hash = self.hasher.hash_one(name);
        let hasher = &self.hasher;
        self.table.entry(
            hash,
            |l| l.name.as_str() == name,
            |l| hasher.hash_one(l.name.as_str()),
        )
    }

    fn remove(&mut self, name: &str) -> Option<StoredLease> {
        match self.entry(name) {
            hash_table::Entry::Occupied(stored) => Some(stored.remove().0),
            hash_table::Entry::Vacant(_) => None,
        }
    }
}

/// The rate limits, each beside its key in a 192-byte bucket aligned to a cache line: a
/// check finds the key, the window's head and its newest sub-window in one line. Keys are
/// hashed with one hasher per process (seeded at random, like every map's here), so that a
/// check can hash its key before it takes the mutex ([`Limits::hash`] needs no table).
#[derive(Default)]
struct Limits {
    table: HashTable<StoredLimit>,
}

#[repr(C, align(64))]
struct StoredLimit {
    owner: UserId,
    name: LimitName,
    record: LimitRecord,
}

const _: () = assert!(std::mem::size_of::<StoredLimit>() == 3 * 64);

impl Limits {
    fn hash(owner: UserId, name: &str) -> u64 {
        static HASHER: std::sync::LazyLock<DefaultHashBuilder> =
            std::sync::LazyLock::new(DefaultHashBuilder::default);
        HASHER.hash_one(OwnedRef { owner, name })
    }

    fn get(&self, owner: UserId, name: &str) -> Option<&LimitRecord> {
        let hash = Self::hash(owner, name);
        let found = self
            .table
            .find(hash, |l| l.owner == owner && l.name.as_str() == name);
        found.map(|l| &l.record)
    }

    fn get_mut(&mut self, owner: UserId, name: &str) -> Option<&mut LimitRecord> {
        self.get_mut_hashed(Self::hash(owner, name), owner, name)
    }

    /// [`get_mut`](Self::get_mut) with the key's hash already made.
    fn get_mut_hashed(&mut self, hash: u64, owner: UserId, name: &str) -> Option<&mut LimitRecord> {
        let found = (self.table).find_mut(hash, |l| l.owner == owner && l.name.as_str() == name);
        found.map(|l| &mut l.record)
    }

    /// Adds a limit the table does not hold.
    fn insert(&mut self, owner: UserId, name: &LimitName, record: LimitRecord) {
        let stored = StoredLimit {
            owner,
            name: name.clone(),
            record,
        };
        self.table
            .insert_unique(Self::hash(owner, name.as_str()), stored, |l| {
                Self::hash(l.owner, l.name.as_str())
            });
    }

    /// Whether the limit was there.
    fn remove(&mut self, owner: UserId, name: &str) -> bool {
        let hash = Self::hash(owner, name);
        let found = (self.table).find_entry(hash, |l| l.owner == owner && l.name.as_str() == name);
        found.map(|entry| entry.remove()).is_ok()
    }
}

/// The key of an owner's record.
#[derive(PartialEq, Eq)]
struct Owned<N> {
    owner: UserId,
    name: N,
}

/// An [`Owned`] key made of borrowed parts, to look one up without cloning the name.
struct OwnedRef<'a> {
    owner: UserId,
    name: &'a str,
}

impl<'a> OwnedRef<'a> {
    fn new(owner: UserId, name: &'a impl AsRef<str>) -> Self {
        Self {
            owner,
            name: name.as_ref(),
        }
    }
}

/// Both forms of a key hash the same: the owner as one 128-bit word, then the name's bytes
/// (the last field, so it needs no terminator). Two writes, where the derived `Hash` of a
/// `Uuid` and a `str` would make four.
fn hash_key(owner: UserId, name: &str, state: &mut impl Hasher) {
    state.write_u128(owner.0.as_u128());
    state.write(name.as_bytes());
}

impl<N: AsRef<str>> Hash for Owned<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.owner, self.name.as_ref(), state);
    }
}

impl Hash for OwnedRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.owner, self.name, state);
    }
}

impl<N: AsRef<str>> Equivalent<Owned<N>> for OwnedRef<'_> {
    fn equivalent(&self, key: &Owned<N>) -> bool {
        self.owner == key.owner && self.name == key.name.as_ref()
    }
}

/// The names of everything one owner has, by kind: the index behind counts and lists.
#[derive(Default)]
struct Names {
    leases: HashSet<LockName>,
    limits: HashSet<LimitName>,
    flags: HashSet<FlagName>,
    segments: HashSet<SegmentName>,
    /// Every key, deleted ones included.
    configs: HashSet<ConfigKey>,
    /// How many of `configs` are deleted.
    deleted_configs: usize,
    /// How many keys have a schema.
    config_schemas: usize,
    config_bytes: u64,
}

impl State {
    fn names(&self, owner: UserId) -> Option<&Names> {
        self.names.get(&owner)
    }

    /// The owner's index, made on first use and kept when it empties: an owner who acquires
    /// and releases in a loop does not rebuild it each time.
    fn names_mut(&mut self, owner: UserId) -> &mut Names {
        self.names.entry(owner).or_default()
    }

    fn count(&self, owner: UserId, of: impl Fn(&Names) -> usize) -> usize {
        self.names(owner).map_or(0, of)
    }
}

struct MemoryTx<'a> {
    state: &'a mut State,
    clock: &'a dyn Clock,
}

impl Backend for MemoryBackend {
    fn concurrency(&self) -> Concurrency {
        Concurrency::NonBlocking
    }

    fn written_by_others(&self) -> bool {
        false
    }

    fn update_limit_now(
        &self,
        clock: &dyn Clock,
        owner: UserId,
        name: &LimitName,
        update: &mut dyn FnMut(&mut LimitRecord, Timestamp),
    ) -> bool {
        // Hashing the key and reading the clock need no lock: done first, they overlap with
        // taking it, where after it they would wait for it (its atomic instruction is a
        // fence). A check that then waits for the lock is judged at the instant it came, as
        // if it had come a little before the one holding the lock.
        let hash = Limits::hash(owner, name.as_str());
        let now = clock.timestamp();
        let mut state = self.state.lock();
        match state.limits.get_mut_hashed(hash, owner, name.as_str()) {
            Some(record) => {
                update(record, now);
                true
            }
            None => false,
        }
    }

    fn transact(
        &self,
        clock: &dyn Clock,
        op: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let mut state = self.state.lock();
        op(&mut MemoryTx {
            state: &mut state,
            clock,
        })
    }
}

impl Tx for MemoryTx<'_> {
    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.clock.timestamp())
    }

    fn user(&mut self, id: UserId) -> Result<Option<User>> {
        Ok(self.state.users.get(&id).cloned())
    }

    fn user_by_login(&mut self, login: &Login) -> Result<Option<User>> {
        let id = self
            .state
            .user_by_folded_login
            .get(&login.folded())
            .copied();
        Ok(id.and_then(|id| self.state.users.get(&id).cloned()))
    }

    fn user_by_github_id(&mut self, github_id: u64) -> Result<Option<User>> {
        let id = self.state.user_by_github_id.get(&github_id).copied();
        Ok(id.and_then(|id| self.state.users.get(&id).cloned()))
    }

    fn put_user(&mut self, user: &User) -> Result<()> {
        let state = &mut *self.state;
        if let Some(old) = state.users.get(&user.id) {
            state.user_by_folded_login.remove(&old.login.folded());
        }
        state
            .user_by_folded_login
            .insert(user.login.folded(), user.id);
        if let UserSource::Github { github_id } = user.source {
            state.user_by_github_id.insert(github_id, user.id);
        }
        state.users.insert(user.id, user.clone());
        Ok(())
    }

    fn users(&mut self) -> Result<Vec<User>> {
        Ok(self.state.users.values().cloned().collect())
    }

    fn token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        Ok(self.state.tokens.get(hash).cloned())
    }

    fn put_token(&mut self, token: &TokenRecord) -> Result<()> {
        self.state.tokens.insert(token.hash, token.clone());
        Ok(())
    }

    fn delete_token(&mut self, hash: &TokenHash) -> Result<bool> {
        Ok(self.state.tokens.remove(hash).is_some())
    }

    fn tokens_of(&mut self, user: UserId) -> Result<Vec<TokenRecord>> {
        let tokens = self.state.tokens.values();
        Ok(tokens.filter(|t| t.user == user).cloned().collect())
    }

    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>> {
        Ok(self
            .state
            .leases
            .get(name.as_str())
            .map(StoredLease::record))
    }

    fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()> {
        let stored = StoredLease::new(lease);
        let old_owner = match self.state.leases.entry(lease.name.as_str()) {
            hash_table::Entry::Occupied(mut slot) => {
                Some(std::mem::replace(slot.get_mut(), stored).owner)
            }
            hash_table::Entry::Vacant(slot) => {
                slot.insert(stored);
                None
            }
        };
        if old_owner != Some(lease.owner) {
            if let Some(old_owner) = old_owner {
                self.state.names_mut(old_owner).leases.remove(&lease.name);
            }
            let names = &mut self.state.names_mut(lease.owner).leases;
            names.insert(lease.name.clone());
        }
        Ok(())
    }

    fn delete_lease(&mut self, name: &LockName) -> Result<()> {
        if let Some(old) = self.state.leases.remove(name.as_str()) {
            self.state.names_mut(old.owner).leases.remove(name);
        }
        Ok(())
    }

    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>> {
        let Some(names) = self.state.names(owner) else {
            return Ok(Vec::new());
        };
        let leases = &self.state.leases;
        Ok(names
            .leases
            .iter()
            .filter_map(|n| leases.get(n.as_str()).map(StoredLease::record))
            .collect())
    }

    /// Picks each page out of every lease after `after` (a pass over memory, with no I/O to
    /// wait for), and sorts the page alone.
    fn leases_after(&mut self, after: Option<&LockName>, max: usize) -> Result<Vec<LeaseRecord>> {
        let mut leases: Vec<&StoredLease> = (self.state.leases.table.iter())
            .filter(|l| after.is_none_or(|after| l.name > *after))
            .collect();
        let by_name = |a: &&StoredLease, b: &&StoredLease| a.name.cmp(&b.name);
        if leases.len() > max {
            leases.select_nth_unstable_by(max, by_name);
            leases.truncate(max);
        }
        leases.sort_unstable_by(by_name);
        Ok(leases.into_iter().map(StoredLease::record).collect())
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.state.count(owner, |n| n.leases.len()))
    }

    /// Reads every lease at once, whatever `max`: a pass over memory, with no I/O to wait for.
    fn retain_leases(
        &mut self,
        _after: Option<&LockName>,
        _max: usize,
        keep: &mut dyn FnMut(&LeaseRecord) -> bool,
    ) -> Result<Retained<LockName>> {
        let doomed: Vec<LockName> = self
            .state
            .leases
            .table
            .iter()
            .filter(|l| !keep(&l.record()))
            .map(|l| l.name.clone())
            .collect();
        for name in &doomed {
            self.delete_lease(name)?;
        }
        Ok(Retained {
            deleted: doomed.len(),
            next: None,
        })
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        self.state.last_fencing_token += 1;
        Ok(FencingToken(self.state.last_fencing_token))
    }

    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>> {
        Ok(self.state.limits.get(owner, name.as_str()).cloned())
    }

    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()> {
        match self.state.limits.get_mut(owner, name.as_str()) {
            Some(stored) => stored.clone_from(record),
            None => {
                self.state.limits.insert(owner, name, record.clone());
                self.state.names_mut(owner).limits.insert(name.clone());
            }
        }
        Ok(())
    }

    /// One lookup, and the record is changed where it lies: no copy in or out.
    fn update_limit(
        &mut self,
        owner: UserId,
        name: &LimitName,
        update: &mut dyn FnMut(&mut LimitRecord),
    ) -> Result<bool> {
        let record = self.state.limits.get_mut(owner, name.as_str());
        Ok(record.map(update).is_some())
    }

    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool> {
        let existed = self.state.limits.remove(owner, name.as_str());
        if existed {
            self.state.names_mut(owner).limits.remove(name);
        }
        Ok(existed)
    }

    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>> {
        let Some(names) = self.state.names(owner) else {
            return Ok(Vec::new());
        };
        let limits = &self.state.limits;
        Ok(names
            .limits
            .iter()
            .map(|n| {
                let record = limits.get(owner, n.as_str());
                (n.clone(), record.expect("an indexed limit").clone())
            })
            .collect())
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.state.count(owner, |n| n.limits.len()))
    }

    /// Reads every limit at once, as [`retain_leases`](Self::retain_leases) does.
    fn retain_limits(
        &mut self,
        _after: Option<&(UserId, LimitName)>,
        _max: usize,
        keep: &mut dyn FnMut(&LimitRecord) -> bool,
    ) -> Result<Retained<(UserId, LimitName)>> {
        let State { limits, names, .. } = &mut *self.state;
        let before = limits.table.len();
        limits.table.retain(|l| {
            let kept = keep(&l.record);
            if !kept {
                if let Some(names) = names.get_mut(&l.owner) {
                    names.limits.remove(&l.name);
                }
            }
            kept
        });
        Ok(Retained {
            deleted: before - limits.table.len(),
            next: None,
        })
    }

    fn flag(&mut self, owner: UserId, name: &FlagName) -> Result<Option<Flag>> {
        let key = OwnedRef::new(owner, name);
        Ok(self.state.flags.get(&key).cloned())
    }

    fn put_flag(&mut self, owner: UserId, flag: &Flag) -> Result<()> {
        match self.state.flags.get_mut(&OwnedRef::new(owner, &flag.name)) {
            Some(stored) => stored.clone_from(flag),
            None => {
                let key = Owned {
                    owner,
                    name: flag.name.clone(),
                };
                self.state.flags.insert(key, flag.clone());
                self.state.names_mut(owner).flags.insert(flag.name.clone());
            }
        }
        Ok(())
    }

    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool> {
        let existed = self
            .state
            .flags
            .remove(&OwnedRef::new(owner, name))
            .is_some();
        if existed {
            self.state.names_mut(owner).flags.remove(name);
        }
        Ok(existed)
    }

    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>> {
        let Some(names) = self.state.names(owner) else {
            return Ok(Vec::new());
        };
        let flags = &self.state.flags;
        Ok(names
            .flags
            .iter()
            .map(|n| flags[&OwnedRef::new(owner, n)].clone())
            .collect())
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.state.count(owner, |n| n.flags.len()))
    }

    fn segment(&mut self, owner: UserId, name: &SegmentName) -> Result<Option<Segment>> {
        let key = OwnedRef::new(owner, name);
        Ok(self.state.segments.get(&key).cloned())
    }

    fn put_segment(&mut self, owner: UserId, segment: &Segment) -> Result<()> {
        let key = Owned {
            owner,
            name: segment.name.clone(),
        };
        if self.state.segments.insert(key, segment.clone()).is_none() {
            let names = self.state.names_mut(owner);
            names.segments.insert(segment.name.clone());
        }
        Ok(())
    }

    fn delete_segment(&mut self, owner: UserId, name: &SegmentName) -> Result<bool> {
        let key = OwnedRef::new(owner, name);
        let existed = self.state.segments.remove(&key).is_some();
        if existed {
            self.state.names_mut(owner).segments.remove(name);
        }
        Ok(existed)
    }

    fn segments_of(&mut self, owner: UserId) -> Result<Vec<Segment>> {
        let Some(names) = self.state.names(owner) else {
            return Ok(Vec::new());
        };
        let segments = &self.state.segments;
        Ok(names
            .segments
            .iter()
            .map(|n| segments[&OwnedRef::new(owner, n)].clone())
            .collect())
    }

    fn count_segments_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.state.count(owner, |n| n.segments.len()))
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        let key = OwnedRef::new(owner, key);
        Ok(self.state.config_heads.get(&key).copied())
    }

    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
        let was_deleted = match self.state.config_heads.get_mut(&OwnedRef::new(owner, key)) {
            Some(stored) => std::mem::replace(stored, *head).deleted_at.is_some(),
            None => {
                let owned = Owned {
                    owner,
                    name: key.clone(),
                };
                self.state.config_heads.insert(owned, *head);
                self.state.names_mut(owner).configs.insert(key.clone());
                false
            }
        };
        let names = self.state.names_mut(owner);
        match (was_deleted, head.deleted_at.is_some()) {
            (false, true) => names.deleted_configs += 1,
            (true, false) => names.deleted_configs -= 1,
            _ => {}
        }
        Ok(())
    }

    fn config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<ConfigVersion>> {
        let key = OwnedRef::new(owner, key);
        let versions = self.state.config_versions.get(&key);
        let version = versions.and_then(|v| v.get(&version));
        Ok(version.map(|v| ConfigVersion::clone(&v.version)))
    }

    /// Reads the description alone, without copying the version's value.
    fn config_description(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<Option<String>>> {
        let key = OwnedRef::new(owner, key);
        let versions = self.state.config_versions.get(&key);
        let version = versions.and_then(|v| v.get(&version));
        Ok(version.map(|v| v.version.description.clone()))
    }

    fn put_config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: &ConfigVersion,
        bytes: u64,
    ) -> Result<()> {
        let versions = match self
            .state
            .config_versions
            .get_mut(&OwnedRef::new(owner, key))
        {
            Some(versions) => versions,
            None => {
                let owned = Owned {
                    owner,
                    name: key.clone(),
                };
                self.state.config_versions.entry(owned).or_default()
            }
        };
        let stored = StoredVersion {
            version: Arc::new(version.clone()),
            bytes,
        };
        versions.insert(version.version, stored);
        Ok(())
    }

    fn delete_config_versions_before(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<()> {
        let key = OwnedRef::new(owner, key);
        if let Some(versions) = self.state.config_versions.get_mut(&key) {
            while versions
                .first_key_value()
                .is_some_and(|(&oldest, _)| oldest < version)
            {
                versions.pop_first();
            }
        }
        Ok(())
    }

    fn config_versions_after(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<ConfigVersion>>> {
        let key = OwnedRef::new(owner, key);
        let versions = self.state.config_versions.get(&key);
        Ok(versions
            .into_iter()
            .flat_map(|v| v.range(after.saturating_add(1)..))
            .take(max)
            .map(|(_, v)| Arc::clone(&v.version))
            .collect())
    }

    fn config_bytes_before(&mut self, owner: UserId, key: &ConfigKey, version: u64) -> Result<u64> {
        let key = OwnedRef::new(owner, key);
        let versions = self.state.config_versions.get(&key);
        Ok(versions
            .into_iter()
            .flat_map(|v| v.range(..version))
            .map(|(_, v)| v.bytes)
            .sum())
    }

    fn config_bytes_of(&mut self, owner: UserId) -> Result<u64> {
        Ok(self.state.names(owner).map_or(0, |n| n.config_bytes))
    }

    fn put_config_bytes_of(&mut self, owner: UserId, bytes: u64) -> Result<()> {
        self.state.names_mut(owner).config_bytes = bytes;
        Ok(())
    }

    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let borrowed = OwnedRef::new(owner, key);
        self.state.config_versions.remove(&borrowed);
        let removed = self.state.config_heads.remove(&borrowed);
        if let Some(head) = removed {
            let names = self.state.names_mut(owner);
            names.configs.remove(key);
            names.deleted_configs -= usize::from(head.deleted_at.is_some());
        }
        Ok(removed.is_some())
    }

    /// Reads each latest version's description and time, never copying a value.
    fn config_summaries_of(&mut self, owner: UserId) -> Result<Vec<ConfigSummary>> {
        let Some(names) = self.state.names(owner) else {
            return Ok(Vec::new());
        };
        let (heads, versions) = (&self.state.config_heads, &self.state.config_versions);
        names
            .configs
            .iter()
            .map(|key| {
                let borrowed = OwnedRef::new(owner, key);
                let head = heads[&borrowed];
                let latest = versions
                    .get(&borrowed)
                    .and_then(|v| v.get(&head.latest))
                    .ok_or_else(|| crate::records::config::lost_version(key, head.latest))?;
                Ok(ConfigSummary {
                    key: key.clone(),
                    description: latest.version.description.clone(),
                    version: head.latest,
                    created_at: head.created_at,
                    updated_at: latest.version.created_at,
                    deleted_at: head.deleted_at,
                })
            })
            .collect()
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self
            .state
            .count(owner, |n| n.configs.len() - n.deleted_configs))
    }

    fn config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigSchema>> {
        let key = OwnedRef::new(owner, key);
        Ok(self.state.config_schemas.get(&key).cloned())
    }

    fn config_schema_digest(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
    ) -> Result<Option<SchemaDigest>> {
        let key = OwnedRef::new(owner, key);
        Ok(self.state.config_schemas.get(&key).map(|s| s.digest))
    }

    fn put_config_schema(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        schema: &ConfigSchema,
    ) -> Result<()> {
        let owned = Owned {
            owner,
            name: key.clone(),
        };
        if self
            .state
            .config_schemas
            .insert(owned, schema.clone())
            .is_none()
        {
            self.state.names_mut(owner).config_schemas += 1;
        }
        Ok(())
    }

    fn delete_config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let removed = self
            .state
            .config_schemas
            .remove(&OwnedRef::new(owner, key))
            .is_some();
        if removed {
            self.state.names_mut(owner).config_schemas -= 1;
        }
        Ok(removed)
    }

    fn count_config_schemas_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.state.count(owner, |n| n.config_schemas))
    }

    /// Reads every key's head: sweeps are rare, and deleted keys few.
    fn configs_deleted_before(
        &mut self,
        before: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(UserId, ConfigKey)>> {
        let mut deleted: Vec<_> = (self.state.config_heads.iter())
            .filter_map(|(key, head)| Some((head.deleted_at?, key)))
            .filter(|(at, _)| *at < before)
            .collect();
        deleted.sort_by_key(|(at, _)| *at);
        let keys = deleted.into_iter().take(max);
        Ok(keys.map(|(_, k)| (k.owner, k.name.clone())).collect())
    }

    fn join_queue(&mut self, name: &LockName, owner: UserId, node: NodeId) -> Result<u64> {
        self.state.last_ticket += 1;
        let ticket = self.state.last_ticket;
        let waiter = WaiterRecord {
            ticket,
            owner,
            node,
        };
        let queue = self.state.queues.entry(name.clone()).or_default();
        queue.insert(ticket, waiter);
        self.state.queued.insert(ticket, name.clone());
        Ok(ticket)
    }

    fn queue_of(
        &mut self,
        name: &LockName,
        me: NodeId,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<WaiterRecord>> {
        let nodes = &self.state.nodes;
        let alive =
            |w: &&WaiterRecord| w.node == me || nodes.get(&w.node).is_some_and(|t| *t > now);
        let queue = self
            .state
            .queues
            .get(name)
            .into_iter()
            .flat_map(BTreeMap::values);
        Ok(queue.filter(alive).take(max).copied().collect())
    }

    fn leave_queue(&mut self, ticket: u64) -> Result<()> {
        if let Some(name) = self.state.queued.remove(&ticket) {
            if let Some(queue) = self.state.queues.get_mut(&name) {
                queue.remove(&ticket);
                if queue.is_empty() {
                    self.state.queues.remove(&name);
                }
            }
        }
        Ok(())
    }

    fn beat(&mut self, node: NodeId, until: DateTime<Utc>) -> Result<()> {
        self.state.nodes.insert(node, until);
        Ok(())
    }

    fn forget_dead_nodes(&mut self, now: DateTime<Utc>, me: NodeId) -> Result<usize> {
        let dead: HashSet<NodeId> = (self.state.nodes.iter())
            .filter(|(node, until)| **until <= now && **node != me)
            .map(|(node, _)| *node)
            .collect();
        self.state.nodes.retain(|node, _| !dead.contains(node));
        let doomed: Vec<u64> = (self.state.queues.values())
            .flat_map(BTreeMap::values)
            .filter(|w| dead.contains(&w.node))
            .map(|w| w.ticket)
            .collect();
        for ticket in &doomed {
            self.leave_queue(*ticket)?;
        }
        Ok(doomed.len())
    }

    fn append_event(&mut self, owner: UserId, at: DateTime<Utc>, change: &Change) -> Result<()> {
        self.state.last_event += 1;
        let index = self.state.last_event;
        let change = change.clone();
        (self.state.events).push_back((owner, Event { index, at, change }));
        Ok(())
    }

    fn events_after(&mut self, after: u64, query: &EventQuery, max: usize) -> Result<Vec<Event>> {
        let events = &self.state.events;
        let from = events.partition_point(|(_, e)| e.index <= after);
        Ok(events
            .range(from..)
            .filter(|(owner, e)| query.matches(*owner, &e.change))
            .take(max)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn event_bounds(&mut self) -> Result<EventBounds> {
        let newest = self.state.last_event;
        let oldest = self
            .state
            .events
            .front()
            .map_or(newest + 1, |(_, e)| e.index);
        Ok(EventBounds { oldest, newest })
    }

    fn event_kept_from(&mut self, kept: usize) -> Result<Option<u64>> {
        let events = &self.state.events;
        Ok(match kept.checked_sub(1) {
            None => Some(u64::MAX),
            Some(skipped) => events
                .len()
                .checked_sub(skipped + 1)
                .map(|i| events[i].1.index),
        })
    }

    fn prune_events(
        &mut self,
        max: usize,
        prune: &mut dyn FnMut(u64, DateTime<Utc>) -> bool,
    ) -> Result<usize> {
        let events = &mut self.state.events;
        let mut deleted = 0;
        while deleted < max && events.front().is_some_and(|(_, e)| prune(e.index, e.at)) {
            events.pop_front();
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn a_borrowed_key_hashes_and_compares_as_the_owned_one() {
        let owner = UserId(uuid::Uuid::from_u128(7));
        let name = LimitName::parse("api").unwrap();
        let owned = Owned {
            owner,
            name: name.clone(),
        };
        let hasher = hashbrown::DefaultHashBuilder::default();
        let borrowed = OwnedRef::new(owner, &name);
        assert_eq!(hasher.hash_one(&owned), hasher.hash_one(&borrowed));
        assert!(borrowed.equivalent(&owned));
        let other = OwnedRef::new(UserId(uuid::Uuid::from_u128(8)), &name);
        assert!(!other.equivalent(&owned));
    }

    #[test]
    fn a_stored_limit_is_updated_in_place() {
        use crate::values::bounds::RatePolicy;

        let backend = MemoryBackend::new();
        let clock = crate::ManualClock::new(chrono::DateTime::UNIX_EPOCH);
        let (owner, name) = (
            UserId(uuid::Uuid::from_u128(7)),
            LimitName::parse("api").unwrap(),
        );
        let (policy, changed) = (
            RatePolicy::new(2, 60).unwrap(),
            RatePolicy::new(3, 60).unwrap(),
        );
        let mut seen = Vec::new();
        let mut update = |record: &mut LimitRecord, now: Timestamp| {
            seen.push((record.policy, now));
            record.policy = changed;
        };
        assert!(!backend.update_limit_now(&clock, owner, &name, &mut update));
        let put = &mut |tx: &mut dyn Tx| tx.put_limit(owner, &name, &LimitRecord::new(policy));
        backend.transact(&clock, put).unwrap();
        // The hash made before the lock finds what the table placed, and the record is kept
        // as `update` left it.
        assert!(backend.update_limit_now(&clock, owner, &name, &mut update));
        assert!(backend.update_limit_now(&clock, owner, &name, &mut update));
        let now = clock.timestamp();
        assert_eq!(seen, [(policy, now), (changed, now)]);
    }
}
