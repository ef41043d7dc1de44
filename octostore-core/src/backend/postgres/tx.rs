//! [`Tx`] over one PostgreSQL transaction: typed parameters in, records out through
//! `backend::rows`.
//!
//! Every statement runs prepared, from the connection's cache. The first database error is
//! kept, so that the backend can tell a serialization failure (try again) from any other
//! failure, whatever the rule made of the error it was handed.

use postgres::types::{FromSql, ToSql};
use postgres::Row;

use super::{storage, Connection};
use crate::backend::rows::{
    self, config_head_columns, config_version_columns, flag_columns, id, lease_columns, nanos,
    token_columns, user_columns, Columns,
};
use crate::backend::{Retained, Tx};
use crate::clock::{Clock, Timestamp};
use crate::config::{ConfigHead, ConfigVersion};
use crate::error::Result;
use crate::flag::Flag;
use crate::identity::{TokenHash, TokenRecord, User, UserId};
use crate::lock::{FencingToken, LeaseRecord};
use crate::names::{ClientId, ConfigKey, FlagName, LimitName, LockName, Login};
use crate::rate_limit::LimitRecord;

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

pub(super) struct PostgresTx<'a> {
    conn: &'a mut Connection,
    clock: &'a dyn Clock,
    /// The database's time, when the transaction read it; otherwise `clock` tells.
    database_now: Option<Timestamp>,
    failure: Option<postgres::Error>,
}

impl<'a> PostgresTx<'a> {
    pub(super) fn new(
        conn: &'a mut Connection,
        clock: &'a dyn Clock,
        database_now: Option<Timestamp>,
    ) -> Self {
        Self {
            conn,
            clock,
            database_now,
            failure: None,
        }
    }

    /// The first database error of the transaction, if any.
    pub(super) fn into_failure(self) -> Option<postgres::Error> {
        self.failure
    }

    fn query(&mut self, sql: &'static str, params: Params) -> Result<Vec<Row>> {
        let result = self
            .conn
            .statement(sql)
            .and_then(|statement| self.conn.client.query(&statement, params));
        self.track(result)
    }

    /// Keeps the first database error, and reports it as a storage error.
    fn track<T>(&mut self, result: std::result::Result<T, postgres::Error>) -> Result<T> {
        result.map_err(|e| {
            let error = storage(&e);
            self.failure.get_or_insert(e);
            error
        })
    }

    fn rows<T>(
        &mut self,
        sql: &'static str,
        params: Params,
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?
            .iter()
            .map(|row| read(row))
            .collect()
    }

    fn row<T>(
        &mut self,
        sql: &'static str,
        params: Params,
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        self.query(sql, params)?
            .first()
            .map(|row| read(row))
            .transpose()
    }

    /// Runs a statement; how many rows it changed.
    fn exec(&mut self, sql: &'static str, params: Params) -> Result<u64> {
        let result = self
            .conn
            .statement(sql)
            .and_then(|statement| self.conn.client.execute(&statement, params));
        self.track(result)
    }

    /// The one `bigint` a query answers.
    fn number(&mut self, sql: &'static str, params: Params) -> Result<i64> {
        self.row(sql, params, |row| row.int(0))?
            .ok_or_else(|| rows::corrupt("count"))
    }

    fn count(&mut self, sql: &'static str, owner: UserId) -> Result<usize> {
        rows::count(self.number(sql, &[&id(owner.0).as_slice()])?)
    }
}

fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| storage(&e))
}

impl Columns for Row {
    fn int(&self, i: usize) -> Result<i64> {
        column(self, i)
    }

    fn int_or_null(&self, i: usize) -> Result<Option<i64>> {
        column(self, i)
    }

    fn boolean(&self, i: usize) -> Result<bool> {
        column(self, i)
    }

    fn text(&self, i: usize) -> Result<String> {
        column(self, i)
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>> {
        column(self, i)
    }

    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        column(self, i)
    }
}

impl Tx for PostgresTx<'_> {
    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.database_now.unwrap_or_else(|| self.clock.timestamp()))
    }

    fn user(&mut self, user_id: UserId) -> Result<Option<User>> {
        self.row(
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
            &[&id(user_id.0).as_slice()],
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
            &[&login.folded()],
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
            &[&(github_id as i64)],
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
                &id(u.id.0).as_slice(),
                &u.login.as_str(),
                &u.login.folded(),
                &u.avatar_url,
                &rows::github_id(u),
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
            &[&hash.0.as_slice()],
            rows::token,
        )
    }

    fn put_token(&mut self, t: &TokenRecord) -> Result<()> {
        self.exec(
            "INSERT INTO tokens (hash, id, user_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO UPDATE SET id = $2, user_id = $3, created_at = $4",
            &[
                &t.hash.0.as_slice(),
                &id(t.id).as_slice(),
                &id(t.user.0).as_slice(),
                &nanos(t.created_at),
            ],
        )
        .map(drop)
    }

    fn delete_token(&mut self, hash: &TokenHash) -> Result<bool> {
        Ok(self.exec("DELETE FROM tokens WHERE hash = $1", &[&hash.0.as_slice()])? > 0)
    }

    fn tokens_of(&mut self, owner: UserId) -> Result<Vec<TokenRecord>> {
        self.rows(
            concat!(
                "SELECT ",
                token_columns!(),
                " FROM tokens WHERE user_id = $1"
            ),
            &[&id(owner.0).as_slice()],
            rows::token,
        )
    }

    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>> {
        self.row(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE name = $1"),
            &[&name.as_str()],
            rows::lease,
        )
    }

    fn put_lease(&mut self, l: &LeaseRecord) -> Result<()> {
        self.exec(
            concat!(
                "INSERT INTO leases (",
                lease_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET owner = $2, client_id = $3, lease_id = $4,
                 fencing_token = $5, expires_at = $6"
            ),
            &[
                &l.name.as_str(),
                &id(l.owner.0).as_slice(),
                &l.client_id.as_ref().map(ClientId::as_str),
                &id(l.lease_id.0).as_slice(),
                &(l.fencing_token.0 as i64),
                &nanos(l.expires_at),
            ],
        )
        .map(drop)
    }

    fn delete_lease(&mut self, name: &LockName) -> Result<()> {
        self.exec("DELETE FROM leases WHERE name = $1", &[&name.as_str()])
            .map(drop)
    }

    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>> {
        self.rows(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE owner = $1"),
            &[&id(owner.0).as_slice()],
            rows::lease,
        )
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM leases WHERE owner = $1", owner)
    }

    fn retain_leases(
        &mut self,
        after: Option<&LockName>,
        max: usize,
        keep: &mut dyn FnMut(&LeaseRecord) -> bool,
    ) -> Result<Retained<LockName>> {
        // Every name is longer than "".
        let after = after.map_or("", LockName::as_str);
        let read = self.rows(
            concat!(
                "SELECT ",
                lease_columns!(),
                " FROM leases WHERE name > $1 ORDER BY name LIMIT $2"
            ),
            &[&after, &rows::sql_limit(max)],
            rows::lease,
        )?;
        Retained::step(
            &read,
            max,
            |lease| keep(lease),
            |lease| self.delete_lease(&lease.name),
            |lease| lease.name.clone(),
        )
    }

    fn next_fencing_token(&mut self) -> Result<FencingToken> {
        let token = self.number("SELECT nextval('fencing_tokens')", &[])?;
        Ok(FencingToken(
            u64::try_from(token).map_err(|_| rows::corrupt("fencing token"))?,
        ))
    }

    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>> {
        self.row(
            "SELECT record FROM limits WHERE owner = $1 AND name = $2",
            &[&id(owner.0).as_slice(), &name.as_str()],
            |row| rows::limit_record(row, 0),
        )
    }

    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()> {
        self.exec(
            "INSERT INTO limits (owner, name, record) VALUES ($1, $2, $3)
             ON CONFLICT (owner, name) DO UPDATE SET record = $3",
            &[&id(owner.0).as_slice(), &name.as_str(), &record.to_bytes()],
        )
        .map(drop)
    }

    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM limits WHERE owner = $1 AND name = $2",
            &[&id(owner.0).as_slice(), &name.as_str()],
        )?;
        Ok(n > 0)
    }

    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>> {
        self.rows(
            "SELECT name, record FROM limits WHERE owner = $1",
            &[&id(owner.0).as_slice()],
            |row| {
                Ok((
                    rows::name_at(row, 0, LimitName::parse)?,
                    rows::limit_record(row, 1)?,
                ))
            },
        )
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM limits WHERE owner = $1", owner)
    }

    fn retain_limits(
        &mut self,
        after: Option<&(UserId, LimitName)>,
        max: usize,
        keep: &mut dyn FnMut(&LimitRecord) -> bool,
    ) -> Result<Retained<(UserId, LimitName)>> {
        // Every owner is longer than the empty byte string.
        let (after_owner, after_name) = after.map_or((&[][..], ""), |(owner, name)| {
            (owner.0.as_bytes(), name.as_str())
        });
        let read = self.rows(
            "SELECT owner, name, record FROM limits WHERE (owner, name) > ($1, $2) \
             ORDER BY owner, name LIMIT $3",
            &[&after_owner, &after_name, &rows::sql_limit(max)],
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
            &[&id(owner.0).as_slice(), &name.as_str()],
            rows::flag,
        )
    }

    fn put_flag(&mut self, owner: UserId, f: &Flag) -> Result<()> {
        self.exec(
            concat!(
                "INSERT INTO flags (owner, ",
                flag_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner, name) DO UPDATE SET enabled = $3, percentage = $4,
                 created_at = $5, updated_at = $6"
            ),
            &[
                &id(owner.0).as_slice(),
                &f.name.as_str(),
                &f.enabled,
                &f.percentage.map(|p| i64::from(p.get())),
                &nanos(f.created_at),
                &nanos(f.updated_at),
            ],
        )
        .map(drop)
    }

    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM flags WHERE owner = $1 AND name = $2",
            &[&id(owner.0).as_slice(), &name.as_str()],
        )?;
        Ok(n > 0)
    }

    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>> {
        self.rows(
            concat!("SELECT ", flag_columns!(), " FROM flags WHERE owner = $1"),
            &[&id(owner.0).as_slice()],
            rows::flag,
        )
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM flags WHERE owner = $1", owner)
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        self.row(
            concat!(
                "SELECT ",
                config_head_columns!(),
                " FROM config_heads WHERE owner = $1 AND key = $2"
            ),
            &[&id(owner.0).as_slice(), &key.as_str()],
            |row| rows::config_head(row, 0),
        )
    }

    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
        self.exec(
            concat!(
                "INSERT INTO config_heads (owner, key, ",
                config_head_columns!(),
                ") VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, key) DO UPDATE SET latest = $3, oldest = $4,
                 created_at = $5"
            ),
            &[
                &id(owner.0).as_slice(),
                &key.as_str(),
                &(head.latest as i64),
                &(head.oldest as i64),
                &nanos(head.created_at),
            ],
        )
        .map(drop)
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
            &[&id(owner.0).as_slice(), &key.as_str(), &(version as i64)],
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
            &[&id(owner.0).as_slice(), &key.as_str(), &(version as i64)],
            |row| row.text_or_null(0),
        )
    }

    fn put_config_version(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        v: &ConfigVersion,
    ) -> Result<()> {
        self.exec(
            concat!(
                "INSERT INTO config_versions (owner, key, ",
                config_version_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner, key, version) DO UPDATE SET value = $4,
                 description = $5, created_at = $6"
            ),
            &[
                &id(owner.0).as_slice(),
                &key.as_str(),
                &(v.version as i64),
                &v.value.to_string(),
                &v.description,
                &nanos(v.created_at),
            ],
        )
        .map(drop)
    }

    fn delete_config_versions_before(
        &mut self,
        owner: UserId,
        key: &ConfigKey,
        version: u64,
    ) -> Result<()> {
        self.exec(
            "DELETE FROM config_versions WHERE owner = $1 AND key = $2 AND version < $3",
            &[&id(owner.0).as_slice(), &key.as_str(), &(version as i64)],
        )
        .map(drop)
    }

    fn config_versions(&mut self, owner: UserId, key: &ConfigKey) -> Result<Vec<ConfigVersion>> {
        self.rows(
            concat!(
                "SELECT ",
                config_version_columns!(),
                " FROM config_versions WHERE owner = $1 AND key = $2"
            ),
            &[&id(owner.0).as_slice(), &key.as_str()],
            rows::config_version,
        )
    }

    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let (owner, key) = (id(owner.0), key.as_str());
        let keyed: Params = &[&owner.as_slice(), &key];
        self.exec(
            "DELETE FROM config_versions WHERE owner = $1 AND key = $2",
            keyed,
        )?;
        let n = self.exec(
            "DELETE FROM config_heads WHERE owner = $1 AND key = $2",
            keyed,
        )?;
        Ok(n > 0)
    }

    fn config_heads_of(&mut self, owner: UserId) -> Result<Vec<(ConfigKey, ConfigHead)>> {
        self.rows(
            concat!(
                "SELECT key, ",
                config_head_columns!(),
                " FROM config_heads WHERE owner = $1"
            ),
            &[&id(owner.0).as_slice()],
            |row| {
                Ok((
                    rows::name_at(row, 0, ConfigKey::parse)?,
                    rows::config_head(row, 1)?,
                ))
            },
        )
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM config_heads WHERE owner = $1", owner)
    }
}
