//! [`Api`]: every operation of OctoStore for one user. The embedded [`Session`](crate::Session)
//! implements it, and so does the remote client of `octostore-http`, so a program moves
//! from embedded to remote by changing the one line that makes its `impl Api`.

use std::time::Duration;

use serde_json::Value;

use crate::records::config::{ConfigSchema, ConfigSummary, ConfigVersion};
use crate::records::flag::Flag;
use crate::records::lock::LeaseId;
use crate::records::targeting::{Constraint, Segment};
use crate::rules::config::{ConfigEntry, ConfigHistory, HistoryPage};
use crate::rules::config_diff::ConfigDiff;
use crate::rules::event::{EventFilter, EventPage};
use crate::rules::flag_eval::{Evaluation, EvaluationContext};
use crate::rules::flag_targeting::TargetingChange;
use crate::rules::lock::{AllLocks, Lease, LockGrant, LockPage, LockStatus};
use crate::rules::rate_limit::{Decision, LimitSummary};
use crate::values::bounds::{Description, Percentage, RatePolicy, Ttl};
use crate::values::error::Result;
use crate::values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, SegmentName, Subject,
};

/// The operations of the OctoStore API, as one user.
pub trait Api {
    /// Takes the lock for `ttl`, or returns the caller's live lease unchanged if the same
    /// (user, `client_id`) already holds it. Held by anyone else: [`Error::LockHeld`](crate::Error::LockHeld).
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// # let bob = store.session(store.create_user(&Login::parse("bob")?)?);
    /// let name = LockName::parse("deploy")?;
    /// let ttl = Ttl::seconds(60)?;
    /// let first = alice.acquire(&name, ttl, None)?;
    /// assert_eq!(first.status, AcquireStatus::Acquired);
    /// assert_eq!(alice.acquire(&name, ttl, None)?.status, AcquireStatus::Held);
    /// assert!(matches!(bob.acquire(&name, ttl, None), Err(Error::LockHeld { .. })));
    ///
    /// alice.release(&name, first.lease.lease_id)?;
    /// let second = bob.acquire(&name, ttl, None)?;
    /// assert!(second.lease.fencing_token > first.lease.fencing_token);
    /// # Ok::<(), Error>(())
    /// ```
    fn acquire(&self, name: &LockName, ttl: Ttl, client_id: Option<&ClientId>)
        -> Result<LockGrant>;
    /// [`acquire`](Self::acquire), waiting up to `wait` while the lock is held, in the lock's
    /// FIFO queue of waiters (of one process: the embedding program, or the server); still
    /// held when `wait` ends: [`Error::LockHeld`](crate::Error::LockHeld). Blocks the
    /// calling thread; a zero `wait` is one try, but still behind the queue's waiters.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # use std::time::Duration;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// # let bob = store.session(store.create_user(&Login::parse("bob")?)?);
    /// let name = LockName::parse("deploy")?;
    /// let ttl = Ttl::seconds(60)?;
    /// let first = alice.acquire(&name, ttl, None)?;
    /// let waiter = std::thread::spawn(move || {
    ///     bob.acquire_within(&name, ttl, None, Duration::from_secs(60))
    /// });
    /// alice.release(&first.lease.name, first.lease.lease_id)?;
    /// assert_eq!(waiter.join().unwrap()?.lease.holder.as_str(), "bob");
    /// # Ok::<(), Error>(())
    /// ```
    fn acquire_within(
        &self,
        name: &LockName,
        ttl: Ttl,
        client_id: Option<&ClientId>,
        wait: Duration,
    ) -> Result<LockGrant>;
    /// Ends the caller's live lease `lease_id` on the lock; otherwise
    /// [`Error::NotFound`](crate::Error::NotFound).
    fn release(&self, name: &LockName, lease_id: LeaseId) -> Result<()>;
    /// Extends the caller's live lease to `now + ttl`, keeping its fencing token.
    fn renew(&self, name: &LockName, lease_id: LeaseId, ttl: Ttl) -> Result<Lease>;
    /// Who holds the lock, if anyone.
    fn lock_status(&self, name: &LockName) -> Result<LockStatus>;
    /// The caller's live leases, by lock name.
    fn locks(&self) -> Result<Vec<Lease>>;
    /// Every user's live leases, by lock name, a page at a time: anyone may see who holds
    /// any lock, as [`lock_status`](Self::lock_status) tells of one.
    fn all_locks(&self, page: &LockPage) -> Result<AllLocks>;

    /// Counts one request against the caller's limit `name` if `policy` allows it. A denial
    /// is a [`Decision`] with `allowed: false`, not an error.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let name = LimitName::parse("emails")?;
    /// let policy = RatePolicy::new(2, 60)?; // 2 per minute
    /// assert!(alice.check(&name, policy)?.allowed);
    /// assert!(alice.check(&name, policy)?.allowed);
    /// let denied = alice.check(&name, policy)?;
    /// assert!(!denied.allowed);
    /// assert_eq!(denied.remaining, 0);
    /// assert!(denied.retry_after_seconds.unwrap() >= 59);
    /// # Ok::<(), Error>(())
    /// ```
    fn check(&self, name: &LimitName, policy: RatePolicy) -> Result<Decision>;
    /// The limit's state, without counting a request; unknown limit: not found.
    fn limit_status(&self, name: &LimitName) -> Result<Decision>;
    /// Forgets the limit.
    fn reset_limit(&self, name: &LimitName) -> Result<()>;
    /// The caller's limits, by name.
    fn limits(&self) -> Result<Vec<LimitSummary>>;

    /// Creates or replaces the flag; `percentage: None` means everyone when enabled.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let name = FlagName::parse("new-checkout")?;
    /// alice.set_flag(&name, true, Some(Percentage::new(25)?))?;
    /// let subjects = (0..1000).map(|i| Subject::parse(&format!("user-{i}")).unwrap());
    /// let on = subjects.filter(|s| alice.evaluate_flag(&name, Some(s)).unwrap()).count();
    /// assert!((200..300).contains(&on));
    /// # Ok::<(), Error>(())
    /// ```
    fn set_flag(
        &self,
        name: &FlagName,
        enabled: bool,
        percentage: Option<Percentage>,
    ) -> Result<Flag>;
    /// Turns the flag on or off, keeping its percentage (a `set_flag` replaces the whole flag);
    /// a flag that does not exist is not found: this never creates one.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let name = FlagName::parse("new-checkout")?;
    /// alice.set_flag(&name, true, Some(Percentage::new(25)?))?;
    /// alice.set_flag_enabled(&name, false)?;
    /// let flag = alice.set_flag_enabled(&name, true)?;
    /// assert_eq!(flag.percentage, Some(Percentage::new(25)?));
    /// # Ok::<(), Error>(())
    /// ```
    fn set_flag_enabled(&self, name: &FlagName, enabled: bool) -> Result<Flag>;
    /// Whether the flag is on for `subject` (default: the caller's login).
    fn evaluate_flag(&self, name: &FlagName, subject: Option<&Subject>) -> Result<bool>;
    /// Deletes the flag.
    fn delete_flag(&self, name: &FlagName) -> Result<()>;
    /// The caller's flags, by name.
    fn flags(&self) -> Result<Vec<Flag>>;
    /// The flag as set: its percentage, rules, variants and prerequisites.
    fn flag(&self, name: &FlagName) -> Result<Flag>;
    /// Changes the flag's targeting: adds or removes a rule, sets its variants or its
    /// prerequisites. Refused whole when a rule names a segment that does not exist, a
    /// prerequisite would make a cycle, or a list passes its bounds.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let name = FlagName::parse("new-checkout")?;
    /// alice.set_flag(&name, true, None)?;
    /// let plan = PropertyName::parse("plan")?;
    /// let pro = Constraint::new(plan.clone(), Operator::In, vec!["pro".into()], false, false)?;
    /// let rule = Rule::new(vec![pro], vec![], None)?;
    /// alice.change_flag_targeting(&name, TargetingChange::AddRule { rule, at: None })?;
    ///
    /// let context = |p: &str| {
    ///     EvaluationContext::of(Subject::parse("user-1").unwrap())
    ///         .with(plan.clone(), PropertyValue::String(p.into()))
    /// };
    /// let pro = alice.evaluate_flag_in(&name, &context("pro")?)?;
    /// assert!(pro.enabled);
    /// assert_eq!(pro.reason, Reason::TargetingMatch);
    /// assert!(!alice.evaluate_flag_in(&name, &context("free")?)?.enabled);
    /// # Ok::<(), Error>(())
    /// ```
    fn change_flag_targeting(&self, name: &FlagName, change: TargetingChange) -> Result<Flag>;
    /// The flag's answer for a context: on or off, its variant, value and reason.
    fn evaluate_flag_in(&self, name: &FlagName, context: &EvaluationContext) -> Result<Evaluation>;
    /// Every flag of the caller, by name, evaluated for one context; a flag that cannot be
    /// evaluated for it (one that needs a subject the context lacks) has its error.
    fn evaluate_flags_in(
        &self,
        context: &EvaluationContext,
    ) -> Result<Vec<(FlagName, Result<Evaluation>)>>;
    /// Creates or replaces a segment: constraints that rules of any of the caller's flags may
    /// name. A user may have as many segments as its flag quota allows flags. Each flag whose
    /// rules name it gets a flag-set event in the change log.
    fn set_segment(
        &self,
        name: &SegmentName,
        description: Option<String>,
        constraints: Vec<Constraint>,
    ) -> Result<Segment>;
    /// The segment.
    fn segment(&self, name: &SegmentName) -> Result<Segment>;
    /// Deletes the segment; refused while a rule names it.
    fn delete_segment(&self, name: &SegmentName) -> Result<()>;
    /// The caller's segments, by name.
    fn segments(&self) -> Result<Vec<Segment>>;

    /// Stores `value` as the key's next version. A `description` of `None` keeps the previous
    /// version's; an empty one clears it.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("db.pool_size")?;
    /// alice.put_config(&key, serde_json::json!(10), None)?;
    /// let second = alice.put_config(&key, serde_json::json!(20), None)?;
    /// assert_eq!(second.version, 2);
    /// assert_eq!(alice.get_config(&key, Some(1))?.value, serde_json::json!(10));
    /// assert_eq!(alice.config_history(&key)?.len(), 2);
    /// # Ok::<(), Error>(())
    /// ```
    fn put_config(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
    ) -> Result<ConfigEntry> {
        self.put_config_if(key, value, description, None)
    }

    /// [`put_config`](Self::put_config) as a compare-and-set: only if the key's latest
    /// version is `if_version` (0: only if the key does not exist; `None`: whatever it is),
    /// else [`Error::VersionMismatch`] with the current version, and nothing written.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("db.pool_size")?;
    /// alice.put_config_if(&key, serde_json::json!(10), None, Some(0))?;
    /// let lost = alice.put_config_if(&key, serde_json::json!(20), None, Some(0));
    /// assert!(matches!(lost, Err(Error::VersionMismatch { current: 1, .. })));
    /// assert_eq!(alice.put_config_if(&key, serde_json::json!(20), None, Some(1))?.version, 2);
    /// # Ok::<(), Error>(())
    /// ```
    fn put_config_if(
        &self,
        key: &ConfigKey,
        value: Value,
        description: Option<Description>,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry>;
    /// Stores kept version `version` of the key again (its value and description) as the
    /// key's next version, if the latest is `if_version` (as
    /// [`put_config_if`](Self::put_config_if)): the history keeps every version.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("replicas")?;
    /// alice.put_config(&key, serde_json::json!(3), None)?;
    /// alice.put_config(&key, serde_json::json!(30), None)?;
    /// let back = alice.rollback_config(&key, 1, None)?;
    /// assert_eq!((back.version, back.value), (3, serde_json::json!(3)));
    /// # Ok::<(), Error>(())
    /// ```
    fn rollback_config(
        &self,
        key: &ConfigKey,
        version: u64,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry>;
    /// What changed from kept version `from` of the key to kept version `to`: an RFC 6902
    /// JSON Patch (either may be the newer; a version not kept is not found).
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("db")?;
    /// alice.put_config(&key, serde_json::json!({"pool": 5, "host": "a"}), None)?;
    /// alice.put_config(&key, serde_json::json!({"pool": 8, "host": "a"}), None)?;
    /// let diff = alice.diff_config(&key, 1, 2)?;
    /// let patch = serde_json::to_value(&diff.patch).unwrap();
    /// assert_eq!(patch, serde_json::json!([{"op": "replace", "path": "/pool", "value": 8}]));
    /// # Ok::<(), Error>(())
    /// ```
    fn diff_config(&self, key: &ConfigKey, from: u64, to: u64) -> Result<ConfigDiff>;
    /// The latest version of the key, or version `version`; a version that does not exist
    /// (0, negative, pruned, not yet written) is not found.
    fn get_config(&self, key: &ConfigKey, version: Option<i64>) -> Result<ConfigEntry>;
    /// One page of the key's kept versions, oldest first, and the next page if there are
    /// newer versions.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("replicas")?;
    /// for n in 1..=5 {
    ///     alice.put_config(&key, serde_json::json!(n), None)?;
    /// }
    /// let first = alice.config_history_page(&key, HistoryPage::new(None, Some(2))?)?;
    /// assert_eq!(first.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    /// let next = first.next.unwrap();
    /// assert_eq!(next, HistoryPage::new(Some(2), Some(2))?);
    /// let last = alice.config_history_page(&key, HistoryPage::new(Some(4), Some(2))?)?;
    /// assert_eq!((last.versions.len(), last.next), (1, None));
    /// # Ok::<(), Error>(())
    /// ```
    fn config_history_page(&self, key: &ConfigKey, page: HistoryPage) -> Result<ConfigHistory>;
    /// The key's kept versions, oldest first, read page after page: each page is a
    /// transaction of its own, so a version pruned by a put between two pages is left out.
    fn config_history(&self, key: &ConfigKey) -> Result<Vec<ConfigVersion>> {
        let mut versions = Vec::new();
        let mut page = Some(HistoryPage::default());
        while let Some(next) = page {
            let read = self.config_history_page(key, next)?;
            versions.extend(read.versions);
            page = read.next;
        }
        Ok(versions)
    }
    /// Deletes the key and its history: from then on it reads as absent, and a put starts
    /// again at version 1; until such a put, for the store's retention period, it may be
    /// brought back ([`undelete_config`](Self::undelete_config)).
    fn delete_config(&self, key: &ConfigKey) -> Result<()>;
    /// Erases the key and its history at once, whether live or deleted and kept.
    fn purge_config(&self, key: &ConfigKey) -> Result<()>;
    /// Brings back a deleted key as it was (its versions, its latest the key's latest): the
    /// answer is the latest version.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("replicas")?;
    /// alice.put_config(&key, serde_json::json!(3), None)?;
    /// alice.delete_config(&key)?;
    /// assert!(alice.get_config(&key, None).is_err());
    /// assert_eq!(alice.undelete_config(&key)?.value, serde_json::json!(3));
    /// # Ok::<(), Error>(())
    /// ```
    fn undelete_config(&self, key: &ConfigKey) -> Result<ConfigEntry>;
    /// The caller's keys, by key (not the deleted ones).
    fn configs(&self) -> Result<Vec<ConfigSummary>>;
    /// Sets the key's JSON Schema (draft 2020-12), which every later put and rollback of the
    /// key must match ([`Error::SchemaViolation`] naming where the value fails and the rule
    /// it breaks). A schema that the key's latest value does not match is refused the same
    /// way, unless `force`. A key may have a schema before its first value.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let key = ConfigKey::parse("db.port")?;
    /// let schema = serde_json::json!({"type": "integer", "maximum": 65535});
    /// alice.set_config_schema(&key, schema, false)?;
    /// let refused = alice.put_config(&key, serde_json::json!(70000), None);
    /// assert!(matches!(refused, Err(Error::SchemaViolation { rule, .. }) if rule == "/maximum"));
    /// # Ok::<(), Error>(())
    /// ```
    fn set_config_schema(
        &self,
        key: &ConfigKey,
        schema: Value,
        force: bool,
    ) -> Result<ConfigSchema>;
    /// The key's schema.
    fn config_schema(&self, key: &ConfigKey) -> Result<ConfigSchema>;
    /// Deletes the key's schema: its puts are no longer checked.
    fn delete_config_schema(&self, key: &ConfigKey) -> Result<()>;
    /// The caller's deleted keys that an undelete may still bring back, by key.
    fn deleted_configs(&self) -> Result<Vec<ConfigSummary>>;

    /// The change log after index `since`: at most `limit` (1 to
    /// [`MAX_EVENTS_PER_PAGE`](crate::MAX_EVENTS_PER_PAGE)) of the `filter`'s events the
    /// caller may see (their own flags', configs' and limits', and every user's locks': lock
    /// names are one namespace, and [`lock_status`](Self::lock_status) already tells anyone
    /// who holds a lock), oldest first, and the index to ask from next. If events after
    /// `since` were pruned (or `since` is not of this log), the page says `resync`: re-read
    /// the current state, then ask from its `next`.
    ///
    /// ```
    /// # use octostore_core::*;
    /// # let store = Store::in_memory();
    /// # let alice = store.session(store.create_user(&Login::parse("alice")?)?);
    /// let seen = alice.events(0, &EventFilter::default(), 100)?.next;
    /// alice.set_flag(&FlagName::parse("beta")?, true, None)?;
    /// let page = alice.events(seen, &EventFilter::default(), 100)?;
    /// assert_eq!(page.events.len(), 1);
    /// assert_eq!(page.events[0].change.action(), "set");
    /// assert_eq!(page.next, page.events[0].index);
    /// # Ok::<(), Error>(())
    /// ```
    fn events(&self, since: u64, filter: &EventFilter, limit: usize) -> Result<EventPage>;
}
