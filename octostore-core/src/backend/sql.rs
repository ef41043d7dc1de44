//! [`Tx`] as SQL, written once for every SQL backend.
//!
//! A backend supplies a [`Driver`]: how to run one statement inside its transaction, with
//! [`Param`]s bound, and the little that differs (its clock, its fencing tokens, which
//! spelling of an [`Upsert`] it runs). Every query is here, in the dialect both SQLite and
//! PostgreSQL speak: `$N` placeholders whose first appearances run `$1`, `$2`, … in order
//! (SQLite numbers `$N` by first appearance). Rows decode through `rows`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::backend::rows::{
    self, config_head_columns, config_schema_columns, config_version_columns, event_columns,
    flag_columns, id, lease_columns, nanos, segment_columns, token_columns, user_columns, Columns,
    StoredChange,
};
use crate::backend::{AcquireView, Acquiring, EventBounds, EventQuery, Retained, Tx};
use crate::records::config::{
    ConfigHead, ConfigSchema, ConfigSummary, ConfigVersion, SchemaDigest,
};
use crate::records::event::{Change, Event, Kinds};
use crate::records::flag::Flag;
use crate::records::identity::{TokenHash, TokenRecord, User, UserId};
use crate::records::lock::{FencingToken, LeaseRecord, NodeId, WaiterRecord};
use crate::records::rate_limit::LimitRecord;
use crate::records::targeting::{self, Segment};
use crate::values::clock::Timestamp;
use crate::values::error::Result;
use crate::values::names::{
    ClientId, ConfigKey, FlagName, LimitName, LockName, Login, SegmentName,
};

use Param::{Bool, Bytes, Int, IntOrNull, Text, TextOrNull};

/// A value bound to a placeholder: one of the few SQL types the backends store.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit integer or NULL.
    IntOrNull(Option<i64>),
    /// A boolean (an integer in SQLite).
    Bool(bool),
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    TextOrNull(Option<&'a str>),
    /// A blob.
    Bytes(&'a [u8]),
}

/// An insert that replaces the row with the same primary key, spelled both ways:
/// `INSERT OR REPLACE` (SQLite's cheapest write; it also deletes rows clashing on any other
/// unique key, so only tables whose one unique key is the primary key have an `Upsert`) and
/// `INSERT … ON CONFLICT (primary key) DO UPDATE`. Made by [`upsert!`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upsert {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) replace: &'static str,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) on_conflict: &'static str,
}

/// An [`Upsert`] from what follows `INSERT INTO` and what follows `ON CONFLICT`.
macro_rules! upsert {
    ($into:expr, $on_conflict:expr $(,)?) => {
        Upsert {
            replace: concat!("INSERT OR REPLACE INTO ", $into),
            on_conflict: concat!("INSERT INTO ", $into, " ON CONFLICT ", $on_conflict),
        }
    };
}

/// One SQL backend's transaction: statements in, rows out. Statements are `'static` so that
/// a driver may keep them prepared, keyed by their text.
pub(crate) trait Driver {
    /// Runs a query; every row it answers, read by `read`.
    fn rows<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>>;
    /// Runs a query; its first row, read by `read`.
    fn row<T>(
        &mut self,
        sql: &'static str,
        params: &[Param],
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>>;
    /// Runs a statement; how many rows it changed.
    fn exec(&mut self, sql: &'static str, params: &[Param]) -> Result<u64>;
    /// Runs a write whose count of rows no rule reads; a driver that can holds it back, to
    /// send with the transaction's next statement that must be answered (its errors, then,
    /// are that statement's).
    fn write(&mut self, sql: &'static str, params: &[Param]) -> Result<()> {
        self.exec(sql, params).map(drop)
    }
    /// The spelling of `upsert` this backend runs.
    fn upsert(upsert: Upsert) -> &'static str;
    /// [`Tx::now`].
    fn now(&mut self) -> Result<Timestamp>;
    /// [`Tx::next_fencing_token`].
    fn next_fencing_token(&mut self) -> Result<FencingToken>;
    /// [`Tx::acquire_view`] in one statement, where the driver has one; `None`: read apart.
    fn acquire_view(&mut self, _of: &Acquiring) -> Result<Option<AcquireView>> {
        Ok(None)
    }
    /// Inserts an event into the log, taking its index: the parameters are the values of
    /// `owner, kind, at, change, name, enabled, percentage, number, holder, expires_at`.
    fn insert_event(&mut self, params: &[Param; 10]) -> Result<()>;
    /// The highest index below which every event that will ever be in the log is readable
    /// now, when that can be below the newest readable (events of transactions still
    /// running may take smaller indexes than committed ones); `None` when indexes follow
    /// commit order.
    fn settled_events(&mut self) -> Result<Option<i64>>;
    /// The newest index (every event up to it is readable, and none will come at or below
    /// it) and the oldest kept, if any is kept ([`Tx::event_bounds`]).
    fn event_bounds(&mut self) -> Result<(i64, Option<i64>)>;
    /// Called once the events up to `index` have been deleted.
    fn pruned_events_through(&mut self, index: i64) -> Result<()>;
    /// How many more than the owner has the counts of an owner's records answer: in a
    /// transaction beside others that declared the owner's quota
    /// ([`Key::Quota`](crate::backend::Key::Quota)), how many
    /// records those could add that this one cannot see. 0 where counts are exact.
    fn count_slack(&self) -> usize {
        0
    }
    /// Called before all of an owner's leases or limits are read to decide on: fails where
    /// the transaction may not do that (beside others declaring the owner's quota).
    fn reading_all_of_owner(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The first waiters of a lock's queue ([`Tx::queue_of`]): parameters name, the process
/// asking, the instant, how many; [`rows::waiter`]'s columns.
macro_rules! queue_of {
    () => {
        "SELECT w.ticket, w.owner, w.node FROM lock_waiters w
         LEFT JOIN nodes n ON n.node = w.node
         WHERE w.name = $1 AND (w.node = $2 OR n.alive_until > $3)
         ORDER BY w.ticket LIMIT $4"
    };
}
pub(crate) use queue_of;

/// The insert of an event, for the drivers' [`Driver::insert_event`]: its parameters as
/// `insert_event` documents them, then the index as the SQL expression `$index`.
macro_rules! insert_event {
    ($index:expr) => {
        concat!(
            "INSERT INTO events (owner, kind, at, change, name, enabled, percentage, number, \
             holder, expires_at, idx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ",
            $index,
            ")"
        )
    };
}
pub(crate) use insert_event;

/// An event's parameters (as [`Driver::insert_event`] takes them) followed by `index`: the
/// parameters of [`insert_event!`]'s statement whose index is `$11`.
pub(crate) fn with_index<'a>(params: &[Param<'a>; 10], index: i64) -> [Param<'a>; 11] {
    std::array::from_fn(|i| params.get(i).copied().unwrap_or(Int(index)))
}

/// The count a `SELECT COUNT(*) … WHERE owner = $1` answers.
fn count(driver: &mut impl Driver, sql: &'static str, owner: UserId) -> Result<usize> {
    let n = driver.row(sql, &[Bytes(&id(owner.0))], |row| row.int(0))?;
    owner_count(driver, n.ok_or_else(|| rows::corrupt("count"))?)
}

/// An owner's count of records, `stored`, as a transaction answers it: padded by the
/// driver's [`count_slack`](Driver::count_slack).
pub(crate) fn owner_count(driver: &impl Driver, stored: i64) -> Result<usize> {
    Ok(rows::count(stored)? + driver.count_slack())
}

impl<D: Driver> Tx for D {
    fn now(&mut self) -> Result<Timestamp> {
        Driver::now(self)
    }

    fn user(&mut self, user_id: UserId) -> Result<Option<User>> {
        self.row(
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
            &[Bytes(&id(user_id.0))],
            rows::user,
        )
    }

    fn user_by_login(&mut self, login: &Login) -> Result<Option<User>> {
        self.row(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE login_folded = $1"
            ),
            &[Text(&login.folded())],
            rows::user,
        )
    }

    fn user_by_github_id(&mut self, github_id: u64) -> Result<Option<User>> {
        self.row(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE github_id = $1"
            ),
            &[Int(github_id as i64)],
            rows::user,
        )
    }

    fn put_user(&mut self, u: &User) -> Result<()> {
        self.exec(
            // An upsert on the id alone: a clash on login or GitHub id is an error, never a
            // silent replacement of another user.
            "INSERT INTO users (id, login, login_folded, avatar_url, github_id)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET login = $2, login_folded = $3, avatar_url = $4,
             github_id = $5",
            &[
                Bytes(&id(u.id.0)),
                Text(u.login.as_str()),
                Text(&u.login.folded()),
                TextOrNull(u.avatar_url.as_deref()),
                IntOrNull(rows::github_id(u)),
            ],
        )
        .map(drop)
    }

    fn users(&mut self) -> Result<Vec<User>> {
        self.rows(
            concat!("SELECT ", user_columns!(), " FROM users"),
            &[],
            rows::user,
        )
    }

    fn token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.row(
            concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = $1"),
            &[Bytes(&hash.0)],
            rows::token,
        )
    }

    fn put_token(&mut self, t: &TokenRecord) -> Result<()> {
        self.exec(
            // Not an `Upsert`: the token id is unique too, and a clash on it is an error, never
            // a silent replacement of another token.
            "INSERT INTO tokens (hash, id, user_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO UPDATE SET id = $2, user_id = $3, created_at = $4",
            &[
                Bytes(&t.hash.0),
                Bytes(&id(t.id)),
                Bytes(&id(t.user.0)),
                Int(nanos(t.created_at)),
            ],
        )
        .map(drop)
    }

    fn delete_token(&mut self, hash: &TokenHash) -> Result<bool> {
        Ok(self.exec("DELETE FROM tokens WHERE hash = $1", &[Bytes(&hash.0)])? > 0)
    }

    fn tokens_of(&mut self, owner: UserId) -> Result<Vec<TokenRecord>> {
        self.rows(
            concat!(
                "SELECT ",
                token_columns!(),
                " FROM tokens WHERE user_id = $1"
            ),
            &[Bytes(&id(owner.0))],
            rows::token,
        )
    }

    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>> {
        self.row(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE name = $1"),
            &[Text(name.as_str())],
            rows::lease,
        )
    }

    fn put_lease(&mut self, l: &LeaseRecord) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "leases (",
                    lease_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                "(name) DO UPDATE SET owner = $2, client_id = $3, lease_id = $4,
                 fencing_token = $5, expires_at = $6",
            )),
            &[
                Text(l.name.as_str()),
                Bytes(&id(l.owner.0)),
                TextOrNull(l.client_id.as_ref().map(ClientId::as_str)),
                Bytes(&id(l.lease_id.0)),
                Int(l.fencing_token.0 as i64),
                Int(nanos(l.expires_at)),
            ],
        )
    }

    fn delete_lease(&mut self, name: &LockName) -> Result<()> {
        self.write("DELETE FROM leases WHERE name = $1", &[Text(name.as_str())])
    }

    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>> {
        self.reading_all_of_owner()?;
        self.rows(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE owner = $1"),
            &[Bytes(&id(owner.0))],
            rows::lease,
        )
    }

    fn leases_after(&mut self, after: Option<&LockName>, max: usize) -> Result<Vec<LeaseRecord>> {
        // Every name is longer than "".
        let after = after.map_or("", LockName::as_str);
        self.rows(
            concat!(
                "SELECT ",
                lease_columns!(),
                " FROM leases WHERE name > $1 ORDER BY name LIMIT $2"
            ),
            &[Text(after), Int(rows::sql_limit(max))],
            rows::lease,
        )
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        count(self, "SELECT COUNT(*) FROM leases WHERE owner = $1", owner)
    }

    fn acquire_view(&mut self, of: &Acquiring) -> Result<AcquireView> {
        match Driver::acquire_view(self, of)? {
            Some(view) => Ok(view),
            None => AcquireView::read_apart(self, of),
        }
    }

    fn retain_leases(
        &mut self,
        after: Option<&LockName>,
        max: usize,
        keep: &mut dyn FnMut(&LeaseRecord) -> bool,
    ) -> Result<Retained<LockName>> {
        let read = self.leases_after(after, max)?;
        Retained::step(
            &read,
            max,
            |lease| keep(lease),
            |lease| self.delete_lease(&lease.name),
            |lease| lease.name.clone(),
        )
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        Driver::next_fencing_token(self)
    }

    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>> {
        self.row(
            "SELECT record FROM limits WHERE owner = $1 AND name = $2",
            &[Bytes(&id(owner.0)), Text(name.as_str())],
            |row| rows::limit_record(row, 0),
        )
    }

    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                "limits (owner, name, record) VALUES ($1, $2, $3)",
                "(owner, name) DO UPDATE SET record = $3",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(name.as_str()),
                Bytes(&record.to_bytes()),
            ],
        )
    }

    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM limits WHERE owner = $1 AND name = $2",
            &[Bytes(&id(owner.0)), Text(name.as_str())],
        )?;
        Ok(n > 0)
    }

    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>> {
        self.reading_all_of_owner()?;
        self.rows(
            "SELECT name, record FROM limits WHERE owner = $1",
            &[Bytes(&id(owner.0))],
            |row| rows::named(row, LimitName::parse, rows::limit_record),
        )
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        count(self, "SELECT COUNT(*) FROM limits WHERE owner = $1", owner)
    }

    fn retain_limits(
        &mut self,
        after: Option<&(UserId, LimitName)>,
        max: usize,
        keep: &mut dyn FnMut(&LimitRecord) -> bool,
    ) -> Result<Retained<(UserId, LimitName)>> {
        // Every owner is longer than the empty blob.
        let (after_owner, after_name) = after.map_or((&[][..], ""), |(owner, name)| {
            (owner.0.as_bytes(), name.as_str())
        });
        let read = self.rows(
            "SELECT owner, name, record FROM limits WHERE (owner, name) > ($1, $2) \
             ORDER BY owner, name LIMIT $3",
            &[
                Bytes(after_owner),
                Text(after_name),
                Int(rows::sql_limit(max)),
            ],
            rows::keyed_limit,
        )?;
        Retained::step(
            &read,
            max,
            |(_, _, record)| keep(record),
            |(owner, name, _)| self.delete_limit(*owner, name).map(drop),
            |(owner, name, _)| (*owner, name.clone()),
        )
    }

    fn flag(&mut self, owner: UserId, name: &FlagName) -> Result<Option<Flag>> {
        self.row(
            concat!(
                "SELECT ",
                flag_columns!(),
                " FROM flags WHERE owner = $1 AND name = $2"
            ),
            &[Bytes(&id(owner.0)), Text(name.as_str())],
            rows::flag,
        )
    }

    fn put_flag(&mut self, owner: UserId, f: &Flag) -> Result<()> {
        let targeting = (!f.targeting.is_empty()).then(|| targeting::encode(&*f.targeting));
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "flags (owner, ",
                    flag_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                "(owner, name) DO UPDATE SET enabled = $3, percentage = $4,
                 created_at = $5, updated_at = $6, targeting = $7",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(f.name.as_str()),
                Bool(f.enabled),
                IntOrNull(f.percentage.map(|p| p.get().into())),
                Int(nanos(f.created_at)),
                Int(nanos(f.updated_at)),
                TextOrNull(targeting.as_deref()),
            ],
        )
    }

    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM flags WHERE owner = $1 AND name = $2",
            &[Bytes(&id(owner.0)), Text(name.as_str())],
        )?;
        Ok(n > 0)
    }

    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>> {
        self.rows(
            concat!("SELECT ", flag_columns!(), " FROM flags WHERE owner = $1"),
            &[Bytes(&id(owner.0))],
            rows::flag,
        )
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        count(self, "SELECT COUNT(*) FROM flags WHERE owner = $1", owner)
    }

    fn segment(&mut self, owner: UserId, name: &SegmentName) -> Result<Option<Segment>> {
        self.row(
            concat!(
                "SELECT ",
                segment_columns!(),
                " FROM flag_segments WHERE owner = $1 AND name = $2"
            ),
            &[Bytes(&id(owner.0)), Text(name.as_str())],
            rows::segment,
        )
    }

    fn put_segment(&mut self, owner: UserId, s: &Segment) -> Result<()> {
        let constraints = targeting::encode(&s.constraints);
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "flag_segments (owner, ",
                    segment_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                "(owner, name) DO UPDATE SET description = $3, constraints = $4,
                 created_at = $5, updated_at = $6",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(s.name.as_str()),
                TextOrNull(s.description.as_deref()),
                Text(&constraints),
                Int(nanos(s.created_at)),
                Int(nanos(s.updated_at)),
            ],
        )
    }

    fn delete_segment(&mut self, owner: UserId, name: &SegmentName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM flag_segments WHERE owner = $1 AND name = $2",
            &[Bytes(&id(owner.0)), Text(name.as_str())],
        )?;
        Ok(n > 0)
    }

    fn segments_of(&mut self, owner: UserId) -> Result<Vec<Segment>> {
        self.rows(
            concat!(
                "SELECT ",
                segment_columns!(),
                " FROM flag_segments WHERE owner = $1"
            ),
            &[Bytes(&id(owner.0))],
            rows::segment,
        )
    }

    fn count_segments_of(&mut self, owner: UserId) -> Result<usize> {
        count(
            self,
            "SELECT COUNT(*) FROM flag_segments WHERE owner = $1",
            owner,
        )
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        self.row(
            concat!(
                "SELECT ",
                config_head_columns!(),
                " FROM config_heads WHERE owner = $1 AND key = $2"
            ),
            &[Bytes(&id(owner.0)), Text(key.as_str())],
            |row| rows::config_head(row, 0),
        )
    }

    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "config_heads (owner, key, ",
                    config_head_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                "(owner, key) DO UPDATE SET latest = $3, oldest = $4, created_at = $5,
                 deleted_at = $6",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(key.as_str()),
                Int(head.latest as i64),
                Int(head.oldest as i64),
                Int(nanos(head.created_at)),
                IntOrNull(head.deleted_at.map(nanos)),
            ],
        )
    }

    fn config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<ConfigVersion>> {
        self.row(
            concat!(
                "SELECT ",
                config_version_columns!(),
                " FROM config_versions WHERE owner = $1 AND key = $2 AND version = $3"
            ),
            &[Bytes(&id(owner.0)), Text(key.as_str()), Int(version as i64)],
            rows::config_version,
        )
    }

    /// Reads the description alone, without parsing the version's value.
    fn config_description(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<Option<Option<String>>> {
        self.row(
            "SELECT description FROM config_versions
             WHERE owner = $1 AND key = $2 AND version = $3",
            &[Bytes(&id(owner.0)), Text(key.as_str()), Int(version as i64)],
            |row| row.text_or_null(0),
        )
    }

    fn put_config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        v: &ConfigVersion,
        bytes: u64,
    ) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "config_versions (owner, key, ",
                    config_version_columns!(),
                    ", bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                "(owner, key, version) DO UPDATE SET value = $4, description = $5,
                 created_at = $6, created_by = $7, bytes = $8",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(key.as_str()),
                Int(v.version as i64),
                Text(&v.value.to_string()),
                TextOrNull(v.description.as_deref()),
                Int(nanos(v.created_at)),
                TextOrNull(v.created_by.as_ref().map(Login::as_str)),
                Int(bytes as i64),
            ],
        )
    }

    fn delete_config_versions_before(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<()> {
        self.exec(
            "DELETE FROM config_versions WHERE owner = $1 AND key = $2 AND version < $3",
            &[Bytes(&id(owner.0)), Text(key.as_str()), Int(version as i64)],
        )
        .map(drop)
    }

    fn config_versions_after(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<ConfigVersion>>> {
        self.rows(
            concat!(
                "SELECT ",
                config_version_columns!(),
                " FROM config_versions WHERE owner = $1 AND key = $2 AND version > $3
                 ORDER BY version LIMIT $4"
            ),
            &[
                Bytes(&id(owner.0)),
                Text(key.as_str()),
                Int(i64::try_from(after).unwrap_or(i64::MAX)),
                Int(rows::sql_limit(max)),
            ],
            |row| rows::config_version(row).map(Arc::new),
        )
    }

    fn config_bytes_before(&mut self, owner: UserId, key: &ConfigKey, version: u64) -> Result<u64> {
        let sum = self.row(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM config_versions
             WHERE owner = $1 AND key = $2 AND version < $3",
            &[
                Bytes(&id(owner.0)),
                Text(key.as_str()),
                Int(i64::try_from(version).unwrap_or(i64::MAX)),
            ],
            |row| row.int(0),
        )?;
        rows::bytes(sum.ok_or_else(|| rows::corrupt("config bytes"))?)
    }

    fn config_bytes_of(&mut self, owner: UserId) -> Result<u64> {
        let total = self.row(
            "SELECT bytes FROM config_bytes WHERE owner = $1",
            &[Bytes(&id(owner.0))],
            |row| row.int(0),
        )?;
        rows::bytes(total.unwrap_or(0))
    }

    fn put_config_bytes_of(&mut self, owner: UserId, bytes: u64) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                "config_bytes (owner, bytes) VALUES ($1, $2)",
                "(owner) DO UPDATE SET bytes = $2",
            )),
            &[Bytes(&id(owner.0)), Int(bytes as i64)],
        )
    }

    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let owner = id(owner.0);
        let keyed = [Bytes(&owner), Text(key.as_str())];
        self.exec(
            "DELETE FROM config_versions WHERE owner = $1 AND key = $2",
            &keyed,
        )?;
        let n = self.exec(
            "DELETE FROM config_heads WHERE owner = $1 AND key = $2",
            &keyed,
        )?;
        Ok(n > 0)
    }

    fn config_summaries_of(&mut self, owner: UserId) -> Result<Vec<ConfigSummary>> {
        self.rows(
            "SELECT h.key, h.latest, h.oldest, h.created_at, h.deleted_at, v.description,
                    v.created_at
             FROM config_heads h LEFT JOIN config_versions v
             ON v.owner = h.owner AND v.key = h.key AND v.version = h.latest
             WHERE h.owner = $1",
            &[Bytes(&id(owner.0))],
            rows::config_summary,
        )
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        count(
            self,
            "SELECT COUNT(*) FROM config_heads WHERE owner = $1 AND deleted_at IS NULL",
            owner,
        )
    }

    fn config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigSchema>> {
        self.row(
            concat!(
                "SELECT ",
                config_schema_columns!(),
                " FROM config_schemas WHERE owner = $1 AND key = $2"
            ),
            &[Bytes(&id(owner.0)), Text(key.as_str())],
            rows::config_schema,
        )
    }

    fn config_schema_digest(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
    ) -> Result<Option<SchemaDigest>> {
        self.row(
            "SELECT digest FROM config_schemas WHERE owner = $1 AND key = $2",
            &[Bytes(&id(owner.0)), Text(key.as_str())],
            |row| rows::schema_digest(row, 0),
        )
    }

    fn put_config_schema(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        schema: &ConfigSchema,
    ) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                concat!(
                    "config_schemas (owner, key, ",
                    config_schema_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                "(owner, key) DO UPDATE SET digest = $3, updated_at = $4, updated_by = $5,
                 schema = $6",
            )),
            &[
                Bytes(&id(owner.0)),
                Text(key.as_str()),
                Bytes(&schema.digest.0),
                Int(nanos(schema.updated_at)),
                TextOrNull(schema.updated_by.as_ref().map(Login::as_str)),
                Text(&schema.schema.to_string()),
            ],
        )
    }

    fn delete_config_schema(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM config_schemas WHERE owner = $1 AND key = $2",
            &[Bytes(&id(owner.0)), Text(key.as_str())],
        )?;
        Ok(n > 0)
    }

    fn count_config_schemas_of(&mut self, owner: UserId) -> Result<usize> {
        count(
            self,
            "SELECT COUNT(*) FROM config_schemas WHERE owner = $1",
            owner,
        )
    }

    fn configs_deleted_before(
        &mut self,
        before: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<(UserId, ConfigKey)>> {
        self.rows(
            "SELECT owner, key FROM config_heads
             WHERE deleted_at IS NOT NULL AND deleted_at < $1
             ORDER BY deleted_at LIMIT $2",
            &[Int(nanos(before)), Int(rows::sql_limit(max))],
            |row| {
                Ok((
                    UserId(rows::uuid_at(row, 0)?),
                    rows::name_at(row, 1, ConfigKey::parse)?,
                ))
            },
        )
    }

    /// The ticket comes from the one-row `waiter_tickets`, as an event's index does.
    fn join_queue(&mut self, name: &LockName, owner: UserId, node: NodeId) -> Result<u64> {
        let ticket = self.row(
            "UPDATE waiter_tickets SET last = last + 1 WHERE id = 0 RETURNING last",
            &[],
            |row| row.int(0),
        )?;
        let ticket = ticket.ok_or_else(|| rows::corrupt("waiter ticket"))?;
        self.exec(
            "INSERT INTO lock_waiters (ticket, name, owner, node) VALUES ($1, $2, $3, $4)",
            &[
                Int(ticket),
                Text(name.as_str()),
                Bytes(&id(owner.0)),
                Bytes(node.0.as_bytes()),
            ],
        )?;
        u64::try_from(ticket).map_err(|_| rows::corrupt("waiter ticket"))
    }

    fn queue_of(
        &mut self,
        name: &LockName,
        me: NodeId,
        now: DateTime<Utc>,
        max: usize,
    ) -> Result<Vec<WaiterRecord>> {
        self.rows(
            queue_of!(),
            &[
                Text(name.as_str()),
                Bytes(me.0.as_bytes()),
                Int(nanos(now)),
                Int(rows::sql_limit(max)),
            ],
            rows::waiter,
        )
    }

    fn leave_queue(&mut self, ticket: u64) -> Result<()> {
        let ticket = i64::try_from(ticket).unwrap_or(i64::MAX);
        self.write("DELETE FROM lock_waiters WHERE ticket = $1", &[Int(ticket)])
    }

    fn beat(&mut self, node: NodeId, until: DateTime<Utc>) -> Result<()> {
        self.write(
            Self::upsert(upsert!(
                "nodes (node, alive_until) VALUES ($1, $2)",
                "(node) DO UPDATE SET alive_until = $2",
            )),
            &[Bytes(node.0.as_bytes()), Int(nanos(until))],
        )
    }

    fn forget_dead_nodes(&mut self, now: DateTime<Utc>, me: NodeId) -> Result<usize> {
        let params = [Int(nanos(now)), Bytes(me.0.as_bytes())];
        let waiters = self.exec(
            "DELETE FROM lock_waiters WHERE node IN
             (SELECT node FROM nodes WHERE alive_until <= $1 AND node <> $2)",
            &params,
        )?;
        self.exec(
            "DELETE FROM nodes WHERE alive_until <= $1 AND node <> $2",
            &params,
        )?;
        rows::count(i64::try_from(waiters).unwrap_or(i64::MAX))
    }

    fn append_event(&mut self, owner: UserId, at: DateTime<Utc>, change: &Change) -> Result<()> {
        let c = StoredChange::of(change);
        self.insert_event(&[
            Bytes(&id(owner.0)),
            Int(i64::from(Kinds::of([change.kind()]).bits())),
            Int(nanos(at)),
            Int(c.change),
            Text(c.name),
            IntOrNull(c.enabled),
            IntOrNull(c.percentage),
            IntOrNull(c.number),
            TextOrNull(c.holder),
            IntOrNull(c.expires_at),
        ])
    }

    fn events_after(&mut self, after: u64, query: &EventQuery, max: usize) -> Result<Vec<Event>> {
        let settled = self.settled_events()?.unwrap_or(i64::MAX);
        self.rows(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE idx > $1 AND idx <= $2 AND (kind & $3) <> 0
                 AND (owner = $4 OR (kind & $5) <> 0)
                 AND substr(name, 1, length(CAST($6 AS TEXT))) = $6
                 ORDER BY idx LIMIT $7"
            ),
            &[
                Int(i64::try_from(after).unwrap_or(i64::MAX)),
                Int(settled),
                Int(i64::from(query.kinds.bits())),
                Bytes(&id(query.owner.0)),
                Int(i64::from(query.of_anyone.bits())),
                Text(query.prefix),
                Int(rows::sql_limit(max)),
            ],
            rows::event,
        )
    }

    fn event_bounds(&mut self) -> Result<EventBounds> {
        let (newest, oldest) = Driver::event_bounds(self)?;
        let index = |n: i64| u64::try_from(n).map_err(|_| rows::corrupt("event index"));
        let newest = index(newest)?;
        let oldest = oldest.map_or(Ok(newest + 1), index)?;
        Ok(EventBounds { oldest, newest })
    }

    fn event_kept_from(&mut self, kept: usize) -> Result<Option<u64>> {
        let Some(skipped) = kept.checked_sub(1) else {
            return Ok(Some(u64::MAX));
        };
        let index = self.row(
            "SELECT idx FROM events ORDER BY idx DESC LIMIT 1 OFFSET $1",
            &[Int(rows::sql_limit(skipped))],
            |row| row.int(0),
        )?;
        index
            .map(|n| u64::try_from(n).map_err(|_| rows::corrupt("event index")))
            .transpose()
    }

    fn prune_events(
        &mut self,
        max: usize,
        prune: &mut dyn FnMut(u64, DateTime<Utc>) -> bool,
    ) -> Result<usize> {
        let oldest = self.rows(
            "SELECT idx, at FROM events ORDER BY idx LIMIT $1",
            &[Int(rows::sql_limit(max))],
            |row| Ok((row.int(0)?, DateTime::from_timestamp_nanos(row.int(1)?))),
        )?;
        let doomed = oldest
            .iter()
            .take_while(|(index, at)| prune(*index as u64, *at))
            .count();
        if let Some((last, _)) = doomed.checked_sub(1).map(|i| oldest[i]) {
            self.exec("DELETE FROM events WHERE idx <= $1", &[Int(last)])?;
            self.pruned_events_through(last)?;
        }
        Ok(doomed)
    }
}
