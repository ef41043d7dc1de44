//! [`Tx`] over a connection inside one SQLite transaction: typed parameters in, records out through
//! `backend::rows` (instants as nanoseconds since the epoch, ids as 16-byte blobs, names
//! validated again on the way out).

use rusqlite::types::FromSql;
use rusqlite::{params, Connection, Row};

use super::storage;
use crate::backend::rows::{
    self, config_head_columns, config_version_columns, flag_columns, id, lease_columns, nanos,
    token_columns, user_columns, Columns,
};
use crate::backend::{Retained, Tx};
use crate::bounds::Percentage;
use crate::clock::{Clock, Timestamp};
use crate::config::{ConfigHead, ConfigVersion};
use crate::error::{Error, Result};
use crate::flag::Flag;
use crate::identity::{TokenHash, TokenRecord, User, UserId};
use crate::lock::{FencingToken, LeaseRecord};
use crate::names::{ClientId, ConfigKey, FlagName, LimitName, LockName, Login};
use crate::rate_limit::LimitRecord;

pub(super) struct SqliteTx<'a> {
    tx: &'a Connection,
    clock: &'a dyn Clock,
    fencing_block_exhausted: bool,
}

impl<'a> SqliteTx<'a> {
    pub(super) fn new(tx: &'a Connection, clock: &'a dyn Clock) -> Self {
        Self {
            tx,
            clock,
            fencing_block_exhausted: false,
        }
    }

    /// Whether the operation stopped because no reserved fencing token was left.
    pub(super) fn fencing_block_exhausted(&self) -> bool {
        self.fencing_block_exhausted
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(storage)?;
        let mut rows = stmt.query(params).map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(storage)?;
        let mut rows = stmt.query(params).map_err(storage)?;
        match rows.next().map_err(storage)? {
            Some(row) => read(row).map(Some),
            None => Ok(None),
        }
    }

    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(storage)?;
        stmt.execute(params).map_err(storage)
    }

    fn count(&self, sql: &str, owner: UserId) -> Result<usize> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(storage)?;
        let n: i64 = stmt
            .query_row([id(owner.0)], |r| r.get(0))
            .map_err(storage)?;
        rows::count(n)
    }
}

fn column<T: FromSql>(row: &Row, i: usize) -> Result<T> {
    row.get(i).map_err(storage)
}

impl Columns for Row<'_> {
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

impl Tx for SqliteTx<'_> {
    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.clock.timestamp())
    }

    fn user(&mut self, user_id: UserId) -> Result<Option<User>> {
        self.row(
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1"),
            [id(user_id.0)],
            rows::user,
        )
    }

    fn user_by_login(&mut self, login: &Login) -> Result<Option<User>> {
        self.row(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE login_folded = ?1"
            ),
            [login.folded()],
            rows::user,
        )
    }

    fn user_by_github_id(&mut self, github_id: u64) -> Result<Option<User>> {
        self.row(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE github_id = ?1"
            ),
            [github_id as i64],
            rows::user,
        )
    }

    fn put_user(&mut self, u: &User) -> Result<()> {
        self.exec(
            // An upsert on the id alone: a clash on login or GitHub id is an error, never a
            // silent replacement of another user.
            "INSERT INTO users (id, login, login_folded, avatar_url, github_id)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET login = ?2, login_folded = ?3, avatar_url = ?4,
             github_id = ?5",
            params![
                id(u.id.0),
                u.login.as_str(),
                u.login.folded(),
                u.avatar_url,
                rows::github_id(u)
            ],
        )
        .map(drop)
    }

    fn users(&mut self) -> Result<Vec<User>> {
        self.rows(
            concat!("SELECT ", user_columns!(), " FROM users"),
            [],
            rows::user,
        )
    }

    fn token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.row(
            concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = ?1"),
            [hash.0],
            rows::token,
        )
    }

    fn put_token(&mut self, t: &TokenRecord) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO tokens (hash, id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![t.hash.0, id(t.id), id(t.user.0), nanos(t.created_at)],
        )
        .map(drop)
    }

    fn delete_token(&mut self, hash: &TokenHash) -> Result<bool> {
        Ok(self.exec("DELETE FROM tokens WHERE hash = ?1", [hash.0])? > 0)
    }

    fn tokens_of(&mut self, owner: UserId) -> Result<Vec<TokenRecord>> {
        self.rows(
            concat!(
                "SELECT ",
                token_columns!(),
                " FROM tokens WHERE user_id = ?1"
            ),
            [id(owner.0)],
            rows::token,
        )
    }

    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>> {
        self.row(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE name = ?1"),
            [name.as_str()],
            rows::lease,
        )
    }

    fn put_lease(&mut self, l: &LeaseRecord) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO leases
             (name, owner, client_id, lease_id, fencing_token, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                l.name.as_str(),
                id(l.owner.0),
                l.client_id.as_ref().map(ClientId::as_str),
                id(l.lease_id.0),
                l.fencing_token.0 as i64,
                nanos(l.expires_at),
            ],
        )
        .map(drop)
    }

    fn delete_lease(&mut self, name: &LockName) -> Result<()> {
        self.exec("DELETE FROM leases WHERE name = ?1", [name.as_str()])
            .map(drop)
    }

    fn leases_of(&mut self, owner: UserId) -> Result<Vec<LeaseRecord>> {
        self.rows(
            concat!("SELECT ", lease_columns!(), " FROM leases WHERE owner = ?1"),
            [id(owner.0)],
            rows::lease,
        )
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM leases WHERE owner = ?1", owner)
    }

    fn retain_leases(
        &mut self,
        after: Option<&LockName>,
        max: usize,
        keep: &mut dyn FnMut(&LeaseRecord) -> bool,
    ) -> Result<Retained<LockName>> {
        // Every name is longer than "".
        let after = after.map_or("", LockName::as_str);
        let read: Vec<LeaseRecord> = self.rows(
            concat!(
                "SELECT ",
                lease_columns!(),
                " FROM leases WHERE name > ?1 ORDER BY name LIMIT ?2"
            ),
            params![after, rows::sql_limit(max)],
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
        let (last, reserved): (i64, i64) = self
            .tx
            .prepare_cached("SELECT last_issued, reserved_through FROM fencing WHERE id = 0")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(storage)?;
        if last >= reserved {
            self.fencing_block_exhausted = true;
            return Err(Error::Storage("no reserved fencing token left".into()));
        }
        self.exec(
            "UPDATE fencing SET last_issued = ?1 WHERE id = 0",
            [last + 1],
        )?;
        Ok(FencingToken(last as u64 + 1))
    }

    fn limit(&mut self, owner: UserId, name: &LimitName) -> Result<Option<LimitRecord>> {
        self.row(
            "SELECT record FROM limits WHERE owner = ?1 AND name = ?2",
            params![id(owner.0), name.as_str()],
            |row| rows::limit_record(row, 0),
        )
    }

    fn put_limit(&mut self, owner: UserId, name: &LimitName, record: &LimitRecord) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO limits (owner, name, record) VALUES (?1, ?2, ?3)",
            params![id(owner.0), name.as_str(), record.to_bytes()],
        )
        .map(drop)
    }

    fn delete_limit(&mut self, owner: UserId, name: &LimitName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM limits WHERE owner = ?1 AND name = ?2",
            params![id(owner.0), name.as_str()],
        )?;
        Ok(n > 0)
    }

    fn limits_of(&mut self, owner: UserId) -> Result<Vec<(LimitName, LimitRecord)>> {
        self.rows(
            "SELECT name, record FROM limits WHERE owner = ?1",
            [id(owner.0)],
            |row| {
                Ok((
                    rows::name_at(row, 0, LimitName::parse)?,
                    rows::limit_record(row, 1)?,
                ))
            },
        )
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM limits WHERE owner = ?1", owner)
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
            "SELECT owner, name, record FROM limits WHERE (owner, name) > (?1, ?2) \
             ORDER BY owner, name LIMIT ?3",
            params![after_owner, after_name, rows::sql_limit(max)],
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
                " FROM flags WHERE owner = ?1 AND name = ?2"
            ),
            params![id(owner.0), name.as_str()],
            rows::flag,
        )
    }

    fn put_flag(&mut self, owner: UserId, f: &Flag) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO flags
             (owner, name, enabled, percentage, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id(owner.0),
                f.name.as_str(),
                f.enabled,
                f.percentage.map(Percentage::get),
                nanos(f.created_at),
                nanos(f.updated_at),
            ],
        )
        .map(drop)
    }

    fn delete_flag(&mut self, owner: UserId, name: &FlagName) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM flags WHERE owner = ?1 AND name = ?2",
            params![id(owner.0), name.as_str()],
        )?;
        Ok(n > 0)
    }

    fn flags_of(&mut self, owner: UserId) -> Result<Vec<Flag>> {
        self.rows(
            concat!("SELECT ", flag_columns!(), " FROM flags WHERE owner = ?1"),
            [id(owner.0)],
            rows::flag,
        )
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM flags WHERE owner = ?1", owner)
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        self.row(
            concat!(
                "SELECT ",
                config_head_columns!(),
                " FROM config_heads WHERE owner = ?1 AND key = ?2"
            ),
            params![id(owner.0), key.as_str()],
            |row| rows::config_head(row, 0),
        )
    }

    fn put_config_head(&mut self, owner: UserId, key: &ConfigKey, head: &ConfigHead) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO config_heads (owner, key, latest, oldest, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id(owner.0),
                key.as_str(),
                head.latest as i64,
                head.oldest as i64,
                nanos(head.created_at),
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
                " FROM config_versions WHERE owner = ?1 AND key = ?2 AND version = ?3"
            ),
            params![id(owner.0), key.as_str(), version as i64],
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
             WHERE owner = ?1 AND key = ?2 AND version = ?3",
            params![id(owner.0), key.as_str(), version as i64],
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
            "INSERT OR REPLACE INTO config_versions
             (owner, key, version, value, description, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id(owner.0),
                key.as_str(),
                v.version as i64,
                v.value.to_string(),
                v.description,
                nanos(v.created_at),
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
            "DELETE FROM config_versions WHERE owner = ?1 AND key = ?2 AND version < ?3",
            params![id(owner.0), key.as_str(), version as i64],
        )
        .map(drop)
    }

    fn config_versions(&mut self, owner: UserId, key: &ConfigKey) -> Result<Vec<ConfigVersion>> {
        self.rows(
            concat!(
                "SELECT ",
                config_version_columns!(),
                " FROM config_versions WHERE owner = ?1 AND key = ?2"
            ),
            params![id(owner.0), key.as_str()],
            rows::config_version,
        )
    }

    fn delete_config(&mut self, owner: UserId, key: &ConfigKey) -> Result<bool> {
        let keyed = params![id(owner.0), key.as_str()];
        self.exec(
            "DELETE FROM config_versions WHERE owner = ?1 AND key = ?2",
            keyed,
        )?;
        let n = self.exec(
            "DELETE FROM config_heads WHERE owner = ?1 AND key = ?2",
            keyed,
        )?;
        Ok(n > 0)
    }

    fn config_heads_of(&mut self, owner: UserId) -> Result<Vec<(ConfigKey, ConfigHead)>> {
        self.rows(
            concat!(
                "SELECT key, ",
                config_head_columns!(),
                " FROM config_heads WHERE owner = ?1"
            ),
            [id(owner.0)],
            |row| {
                Ok((
                    rows::name_at(row, 0, ConfigKey::parse)?,
                    rows::config_head(row, 1)?,
                ))
            },
        )
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM config_heads WHERE owner = ?1", owner)
    }
}
