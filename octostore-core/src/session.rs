//! The operations of a [`Session`], the store acting for one user: the embedded
//! implementation of [`Api`], each operation one transaction of its rule (`rules/`), and the
//! lock queue's steps a waiting acquire takes (`waiting.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::Api;
use crate::backend::{Key, Keys, Tx};
use crate::changes::Wake;
use crate::records::config::{ConfigSchema, ConfigSummary};
use crate::records::flag::Flag;
use crate::records::identity::User;
use crate::records::lock::LeaseId;
use crate::records::rate_limit::LimitRecord;
use crate::records::targeting::{Constraint, Segment};
use crate::rules::config::{self, ConfigEntry, ConfigHistory, HistoryPage};
use crate::rules::config_delete;
use crate::rules::config_diff::{self, ConfigDiff};
use crate::rules::config_schema;
use crate::rules::event::{self, EventFilter, EventPage};
use crate::rules::flag;
use crate::rules::flag_eval::{self, Evaluation, EvaluationContext};
use crate::rules::flag_targeting::{self, TargetingChange};
use crate::rules::lock::{self, AllLocks, Lease, LockGrant, LockPage, LockStatus, Turn};
use crate::rules::rate_limit::{self, Decision, LimitSummary};
use crate::values::bounds::{Description, Percentage, RatePolicy, Ttl};
use crate::values::clock::Timestamp;
use crate::values::error::{Error, Result};
use crate::values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, SegmentName, Subject,
};
use crate::waiting::{self, Signal, Ticket, NODE_LEASE};

use crate::store::{Session, Store};

impl Session {
    /// The user this session acts as.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The store this session acts on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A check the backend could not make in place: of a new limit, or on a backend without
    /// such a path. Out of line, so the path in place stays short.
    #[inline(never)]
    fn check_in_transaction(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let owner = self.user.id;
        let keys = [Key::Limit(owner, name), Key::Quota(owner)];
        let verdict = self.store.transact_now_on(Keys::of(&keys), |tx, now, s| {
            rate_limit::check(tx, now, s.quotas.limits, owner, name, policy)
        })?;
        Ok(verdict.decision())
    }

    /// Takes a ticket at the back of `name`'s queue of waiters, which `wake` signals when
    /// this session may try again (see [`waiting`]). It is this process's from inside the
    /// transaction that stores it, so no try of this process takes its row for one that left.
    pub fn join_queue(&self, name: &LockName, wake: Wake) -> Result<Ticket> {
        let queues = self.store.lock_queues();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::from(wake);
        let node = queues.node();
        let mut added = None;
        let joined = self
            .store
            .transact_now_on(Keys::of(&[Key::Lock(name)]), |tx, now, _| {
                if let Some(ticket) = added.take() {
                    // A run before this one, not committed.
                    queues.remove(name, ticket);
                }
                tx.beat(node, alive_until(now))?;
                let ticket = tx.join_queue(name, self.user.id, node)?;
                let seen = tx.event_bounds()?.newest;
                queues.add(name, ticket, wake.clone(), seen);
                added = Some(ticket);
                Ok(ticket)
            });
        match joined {
            Ok(ticket) => Ok(Ticket::new(queues.clone(), name.clone(), ticket)),
            Err(e) => {
                if let Some(ticket) = added {
                    queues.remove(name, ticket);
                }
                Err(e)
            }
        }
    }

    /// How many wait in `name`'s queue, in every live process sharing the store.
    pub fn waiters(&self, name: &LockName) -> Result<usize> {
        self.read_counting_waiters(|tx, now, counting| lock::waiters(tx, now, name, counting))
    }

    /// `read`'s answer, in one read-only transaction at its instant, counting the waiters of
    /// a queue as this process sees them.
    fn read_counting_waiters<R>(
        &self,
        read: impl Fn(&mut dyn Tx, Timestamp, &lock::Counting) -> Result<R>,
    ) -> Result<R> {
        let queues = self.store.lock_queues();
        let has_left = |name: &LockName, ticket| queues.has_left(name, ticket);
        let counting = lock::Counting {
            me: queues.node(),
            has_left: &has_left,
        };
        self.store.read(|tx| {
            let now = tx.now()?;
            read(tx, now, &counting)
        })
    }

    /// One try of a waiting acquire: [`acquire`](Api::acquire) as the holder of `ticket`,
    /// which may take the lock, free, only as the first live waiter of its queue.
    pub fn acquire_in_turn(
        &self,
        ticket: &Ticket,
        ttl: Ttl,
        client_id: Option<&ClientId>,
    ) -> Result<LockGrant> {
        let grant = self.acquire_promised(ticket.lock(), ttl, client_id, Some(ticket))?;
        ticket.granted();
        Ok(grant)
    }

    /// An acquire that may take a free lock only if no live waiter but `ticket`'s holder
    /// heads its queue.
    fn acquire_promised(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        ticket: Option<&Ticket>,
    ) -> Result<LockGrant> {
        let queues = self.store.lock_queues();
        let has_left = |number: u64| queues.has_left(name, number);
        let keys = Keys {
            keys: &[Key::Lock(name), Key::Quota(self.user.id)],
            often_only_reads: true,
        };
        self.store.change_on(keys, |tx, now, s| {
            let turn = Turn {
                node: queues.node(),
                ticket: ticket.map(Ticket::number),
                alive_until: ticket.map(|_| alive_until(now)),
                has_left: &has_left,
            };
            let quota = s.quotas.locks;
            lock::acquire(tx, now, quota, &self.user, name, ttl, client_id, &turn)
        })
    }
}

/// Until when a waiter's transaction at `now` marks its process alive.
fn alive_until(now: Timestamp) -> DateTime<Utc> {
    now.to_datetime() + NODE_LEASE
}

impl Api for Session {
    fn acquire(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
    ) -> Result<LockGrant> {
        self.acquire_promised(name, ttl, client_id, None)
    }

    /// Blocks the calling thread; the waiters of every process sharing the store are
    /// granted the lock in the order they came (see [`waiting`]).
    fn acquire_within(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        wait: Duration,
    ) -> Result<LockGrant> {
        let give_up = waiting::give_up_at(wait);
        let signal = Arc::new(Signal::default());
        let ticket = self.join_queue(name, signal.waker())?;
        loop {
            let held_until = match self.acquire_in_turn(&ticket, ttl, client_id) {
                Err(Error::LockHeld { expires_at, .. }) if Instant::now() < give_up => expires_at,
                outcome => return outcome,
            };
            let retry = self.store.next_try(ticket.after_held(held_until));
            signal.wait_until(retry.map_or(give_up, |at| at.min(give_up)));
        }
    }

    fn release(&self, name: &LockName, lease_id: LeaseId) -> Result<()> {
        self.store
            .change_on(Keys::of(&[Key::Lock(name)]), |tx, now, _| {
                lock::release(tx, now, &self.user, name, lease_id)
            })?;
        // After the commit (in a group, after the operation: the head's try queues behind it).
        self.store.lock_queues().notify(name);
        Ok(())
    }

    fn renew(&self, name: &LockName, lease_id: LeaseId, ttl: Ttl) -> Result<Lease> {
        self.store
            .change_on(Keys::of(&[Key::Lock(name)]), |tx, now, _| {
                lock::renew(tx, now, &self.user, name, lease_id, ttl)
            })
    }

    fn lock_status(&self, name: &LockName) -> Result<LockStatus> {
        self.store.read(|tx| {
            let now = tx.now()?;
            lock::status(tx, now, name)
        })
    }

    fn locks(&self) -> Result<Vec<Lease>> {
        self.store.read(|tx| {
            let now = tx.now()?;
            lock::list(tx, now, &self.user)
        })
    }

    fn all_locks(&self, page: &LockPage) -> Result<AllLocks> {
        self.read_counting_waiters(|tx, now, counting| lock::all(tx, now, page, counting))
    }

    fn check(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision> {
        let owner = self.user.id;
        // The rule, handed to the backend, which only makes the record's update atomic.
        let mut decision = None;
        let check = &mut |record: &mut LimitRecord, now| decision = Some(record.check(policy, now));
        if self.store.update_limit_now(owner, name, check) {
            return Ok(decision.expect("update_limit_now ran the check on the limit it found"));
        }
        self.check_in_transaction(name, policy)
    }

    fn limit_status(&self, name: &LimitName) -> Result<Decision> {
        self.store.read(|tx| {
            let now = tx.now()?;
            rate_limit::status(tx, now, self.user.id, name)
        })
    }

    fn reset_limit(&self, name: &LimitName) -> Result<()> {
        let owner = self.user.id;
        self.store
            .change_on(Keys::of(&[Key::Limit(owner, name)]), |tx, now, _| {
                rate_limit::reset(tx, now, owner, name)
            })
    }

    fn limits(&self) -> Result<Vec<LimitSummary>> {
        self.store.read(|tx| {
            let now = tx.now()?;
            rate_limit::list(tx, now, self.user.id)
        })
    }

    fn set_flag(
        &self,
        name: &FlagName,
        enabled: bool,
        percentage: Option<Percentage>,
    ) -> Result<Flag> {
        self.store.change(|tx, now, s| {
            flag::set(
                tx,
                now,
                s.quotas.flags,
                self.user.id,
                name,
                enabled,
                percentage,
            )
        })
    }

    fn set_flag_enabled(&self, name: &FlagName, enabled: bool) -> Result<Flag> {
        self.store
            .change(|tx, now, _| flag::set_enabled(tx, now, self.user.id, name, enabled))
    }

    fn evaluate_flag(&self, name: &FlagName, subject: Option<&Subject>) -> Result<bool> {
        let own_login;
        let subject = match subject {
            Some(subject) => subject,
            None => {
                own_login = Subject::from(&self.user.login);
                &own_login
            }
        };
        self.store
            .read(|tx| flag_eval::enabled_for(tx, self.user.id, name, subject))
    }

    fn delete_flag(&self, name: &FlagName) -> Result<()> {
        self.store
            .change(|tx, now, _| flag::delete(tx, now, self.user.id, name))
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        self.store.read(|tx| flag::list(tx, self.user.id))
    }

    fn flag(&self, name: &FlagName) -> Result<Flag> {
        self.store.read(|tx| flag::existing(tx, self.user.id, name))
    }

    fn change_flag_targeting(&self, name: &FlagName, change: TargetingChange) -> Result<Flag> {
        self.store.change(|tx, now, _| {
            flag_targeting::change(tx, now, self.user.id, name, change.clone())
        })
    }

    fn evaluate_flag_in(&self, name: &FlagName, context: &EvaluationContext) -> Result<Evaluation> {
        self.store
            .read(|tx| flag_eval::evaluate_stored(tx, self.user.id, name, context))
    }

    fn evaluate_flags_in(
        &self,
        context: &EvaluationContext,
    ) -> Result<Vec<(FlagName, Result<Evaluation>)>> {
        self.store
            .read(|tx| flag_eval::evaluate_all(tx, self.user.id, context))
    }

    fn set_segment(
        &self,
        name: &SegmentName,
        description: Option<String>,
        constraints: Vec<Constraint>,
    ) -> Result<Segment> {
        self.store.change(|tx, now, s| {
            flag_targeting::set_segment(
                tx,
                now,
                s.quotas.flags,
                self.user.id,
                name,
                description.clone(),
                constraints.clone(),
            )
        })
    }

    fn segment(&self, name: &SegmentName) -> Result<Segment> {
        self.store
            .read(|tx| flag_targeting::segment(tx, self.user.id, name))
    }

    fn delete_segment(&self, name: &SegmentName) -> Result<()> {
        self.store
            .change(|tx, _, _| flag_targeting::delete_segment(tx, self.user.id, name))
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        self.store
            .read(|tx| flag_targeting::segments(tx, self.user.id))
    }

    fn put_config_if(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        self.store
            .change_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                let bounds = s.config_put_bounds();
                config::put(
                    tx,
                    now,
                    bounds,
                    self.store.validators(),
                    self.user.id,
                    &self.user.login,
                    key,
                    &value,
                    description.as_ref(),
                    if_version,
                )
            })
    }

    fn rollback_config(
        &self,
        key: &ConfigKey,
        version: u64,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry> {
        self.store
            .change_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                let bounds = s.config_put_bounds();
                let (owner, author) = (self.user.id, &self.user.login);
                let validators = self.store.validators();
                config::rollback(
                    tx, now, bounds, validators, owner, author, key, version, if_version,
                )
            })
    }

    fn diff_config(&self, key: &ConfigKey, from: u64, to: u64) -> Result<ConfigDiff> {
        let (from, to) =
            (self.store).read(|tx| config_diff::versions(tx, self.user.id, key, from, to))?;
        // Made here, after the transaction: a large diff holds no lock.
        Ok(ConfigDiff::between(key, &from, &to))
    }

    fn get_config(&self, key: &ConfigKey, version: Option<i64>) -> Result<ConfigEntry> {
        self.store
            .read(|tx| config::get(tx, self.user.id, key, version))
    }

    fn config_history_page(&self, key: &ConfigKey, page: HistoryPage) -> Result<ConfigHistory> {
        let (versions, next) = self
            .store
            .read(|tx| config::history(tx, self.user.id, key, page))?;
        // Copied out here, after the transaction: a memory backend's mutex is not held for it.
        let versions = versions.into_iter().map(Arc::unwrap_or_clone).collect();
        Ok(ConfigHistory { versions, next })
    }

    fn delete_config(&self, key: &ConfigKey) -> Result<()> {
        self.store
            .change_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                config_delete::delete(tx, now, s.config_retention, self.user.id, key)
            })
    }

    fn purge_config(&self, key: &ConfigKey) -> Result<()> {
        self.store
            .change_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, _| {
                config_delete::purge(tx, now, self.user.id, key)
            })
    }

    fn undelete_config(&self, key: &ConfigKey) -> Result<ConfigEntry> {
        self.store
            .change_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                let (retention, keys) = (s.config_retention, s.quotas.configs);
                config_delete::undelete(tx, now, retention, keys, self.user.id, key)
            })
    }

    fn configs(&self) -> Result<Vec<ConfigSummary>> {
        self.store.read(|tx| config::list(tx, self.user.id))
    }

    fn set_config_schema(
        &self,
        key: &ConfigKey,
        schema: Value,
        force: bool,
    ) -> Result<ConfigSchema> {
        self.store
            .transact_now_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                let (owner, author) = (self.user.id, &self.user.login);
                let validators = self.store.validators();
                let bounds = s.config_schema_bounds();
                let schema = schema.clone();
                config_schema::set(
                    tx, now, bounds, validators, owner, author, key, schema, force,
                )
            })
    }

    fn config_schema(&self, key: &ConfigKey) -> Result<ConfigSchema> {
        self.store
            .read(|tx| config_schema::get(tx, self.user.id, key))
    }

    fn delete_config_schema(&self, key: &ConfigKey) -> Result<()> {
        self.store
            .transact_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, _| {
                config_schema::delete(tx, self.user.id, key)
            })
    }

    fn deleted_configs(&self) -> Result<Vec<ConfigSummary>> {
        self.store
            .transact_now_on(Keys::of(&[Key::Configs(self.user.id)]), |tx, now, s| {
                config_delete::list_deleted(tx, now, s.config_retention, self.user.id)
            })
    }

    fn events(&self, since: u64, filter: &EventFilter, limit: usize) -> Result<EventPage> {
        self.store
            .read_log(|tx| event::read(tx, self.user.id, since, filter, limit))
    }
}
