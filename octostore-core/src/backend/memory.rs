//! The memory backend: all state in hash maps behind one mutex.
//!
//! One mutex, not shards: an operation holds it for well under a microsecond, so a single
//! lock serves millions of operations a second, more than any front end sends it, and keeps
//! every transaction trivially serializable. Nothing survives the process.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::{Backend, Tx};
use crate::clock::Clock;
use crate::config::{ConfigHead, ConfigVersion};
use crate::error::Result;
use crate::flag::Flag;
use crate::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
use crate::lock::{FencingToken, LeaseRecord};
use crate::names::{ConfigKey, FlagName, LimitName, LockName, Login};
use crate::rate_limit::LimitRecord;

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
    leases: HashMap<LockName, LeaseRecord>,
    lease_names_by_owner: HashMap<UserId, HashSet<LockName>>,
    last_fencing_token: u64,
    owners: HashMap<UserId, Owned>,
}

/// Everything private to one owner.
#[derive(Default)]
struct Owned {
    limits: HashMap<LimitName, LimitRecord>,
    flags: HashMap<FlagName, Flag>,
    config_heads: HashMap<ConfigKey, ConfigHead>,
    config_versions: HashMap<ConfigKey, BTreeMap<u64, ConfigVersion>>,
}

struct MemoryTx<'a> {
    state: &'a mut State,
    clock: &'a dyn Clock,
}

impl Backend for MemoryBackend {
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

impl MemoryTx<'_> {
    fn owned(&self, owner: UserId) -> Option<&Owned> {
        self.state.owners.get(&owner)
    }

    fn owned_mut(&mut self, owner: UserId) -> &mut Owned {
        self.state.owners.entry(owner).or_default()
    }

    fn forget_lease_of(&mut self, owner: UserId, name: &LockName) {
        if let Some(names) = self.state.lease_names_by_owner.get_mut(&owner) {
            names.remove(name);
            if names.is_empty() {
                self.state.lease_names_by_owner.remove(&owner);
            }
        }
    }
}

impl Tx for MemoryTx<'_> {
    fn now(&mut self) -> Result<DateTime<Utc>> {
        Ok(self.clock.now())
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
        Ok(self.state.leases.get(name).cloned())
    }

    fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()> {
        if let Some(old) = self.state.leases.insert(lease.name.clone(), lease.clone()) {
            if old.owner == lease.owner {
                return Ok(());
            }
            self.forget_lease_of(old.owner, &old.name);
        }
        let names = self
            .state
            .lease_names_by_owner
            .entry(lease.owner)
            .or_default();
        names.insert(lease.name.clone());
        Ok(())
    }

    fn delete_lease(&mut self, name: &LockName) -> Result<()> {
        if let Some(old) = self.state.leases.remove(name) {
            self.forget_lease_of(old.owner, name);
        }
        Ok(())
    }

    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>> {
        let Some(names) = self.state.lease_names_by_owner.get(&owner) else {
            return Ok(Vec::new());
        };
        Ok(names.iter().map(|n| self.state.leases[n].clone()).collect())
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self
            .state
            .lease_names_by_owner
            .get(&owner)
            .map_or(0, HashSet::len))
    }

    fn retain_leases(&mut self, keep: &mut dyn FnMut(&LeaseRecord) -> bool) -> Result<usize> {
        let doomed: Vec<LockName> = self
            .state
            .leases
            .values()
            .filter(|l| !keep(l))
            .map(|l| l.name.clone())
            .collect();
        for name in &doomed {
            self.delete_lease(name)?;
        }
        Ok(doomed.len())
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        self.state.last_fencing_token += 1;
        Ok(FencingToken(self.state.last_fencing_token))
    }

    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>> {
        Ok(self.owned(owner).and_then(|o| o.limits.get(name)).cloned())
    }

    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()> {
        let limits = &mut self.owned_mut(owner).limits;
        match limits.get_mut(name) {
            Some(stored) => stored.clone_from(record),
            None => {
                limits.insert(name.clone(), record.clone());
            }
        }
        Ok(())
    }

    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool> {
        Ok(self.owned_mut(owner).limits.remove(name).is_some())
    }

    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>> {
        let limits = self.owned(owner).map(|o| &o.limits);
        Ok(limits
            .into_iter()
            .flatten()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect())
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.owned(owner).map_or(0, |o| o.limits.len()))
    }

    fn retain_limits(&mut self, keep: &mut dyn FnMut(&LimitRecord) -> bool) -> Result<usize> {
        let mut deleted = 0;
        for owned in self.state.owners.values_mut() {
            let before = owned.limits.len();
            owned.limits.retain(|_, record| keep(record));
            deleted += before - owned.limits.len();
        }
        Ok(deleted)
    }

    fn flag(&mut self, owner: UserId, name: &FlagName) -> Result<Option<Flag>> {
        Ok(self.owned(owner).and_then(|o| o.flags.get(name)).cloned())
    }

    fn put_flag(&mut self, owner: UserId, flag: &Flag) -> Result<()> {
        let flags = &mut self.owned_mut(owner).flags;
        flags.insert(flag.name.clone(), flag.clone());
        Ok(())
    }

    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool> {
        Ok(self.owned_mut(owner).flags.remove(name).is_some())
    }

    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>> {
        let flags = self.owned(owner).map(|o| &o.flags);
        Ok(flags
            .into_iter()
            .flat_map(|f| f.values().cloned())
            .collect())
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.owned(owner).map_or(0, |o| o.flags.len()))
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        Ok(self
            .owned(owner)
            .and_then(|o| o.config_heads.get(key))
            .copied())
    }

    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
        self.owned_mut(owner)
            .config_heads
            .insert(key.clone(), *head);
        Ok(())
    }

    fn config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<ConfigVersion>> {
        let versions = self.owned(owner).and_then(|o| o.config_versions.get(key));
        Ok(versions.and_then(|v| v.get(&version)).cloned())
    }

    fn put_config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: &ConfigVersion,
    ) -> Result<()> {
        let versions = self.owned_mut(owner).config_versions.entry(key.clone());
        versions
            .or_default()
            .insert(version.version, version.clone());
        Ok(())
    }

    fn delete_config_versions_before(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<()> {
        if let Some(versions) = self.owned_mut(owner).config_versions.get_mut(key) {
            *versions = versions.split_off(&version);
        }
        Ok(())
    }

    fn config_versions(&mut self, owner: UserId, key: &ConfigKey) -> Result<Vec<ConfigVersion>> {
        let versions = self.owned(owner).and_then(|o| o.config_versions.get(key));
        Ok(versions
            .into_iter()
            .flat_map(|v| v.values().cloned())
            .collect())
    }

    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let owned = self.owned_mut(owner);
        owned.config_versions.remove(key);
        Ok(owned.config_heads.remove(key).is_some())
    }

    fn config_heads_of(&mut self, owner: UserId) -> Result<Vec<(ConfigKey, ConfigHead)>> {
        let heads = self.owned(owner).map(|o| &o.config_heads);
        Ok(heads
            .into_iter()
            .flatten()
            .map(|(k, h)| (k.clone(), *h))
            .collect())
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        Ok(self.owned(owner).map_or(0, |o| o.config_heads.len()))
    }
}
