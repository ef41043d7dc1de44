//! [`Tx`] over one SQLite transaction: typed rows in, typed records out.
//!
//! Instants are stored as nanoseconds since the epoch and ids as 16-byte blobs, so every
//! record reads back exactly as it was written. Names are validated again on the way out: a
//! row that no longer parses is reported as corrupt storage, never passed on.

use chrono::{DateTime, Utc};
use rusqlite::{params, Row, Transaction};
use serde_json::Value;
use uuid::Uuid;

use super::storage;
use crate::backend::Tx;
use crate::bounds::Percentage;
use crate::clock::{Clock, Timestamp};
use crate::config::{ConfigHead, ConfigVersion};
use crate::error::{Error, Result};
use crate::flag::Flag;
use crate::identity::{TokenHash, TokenRecord, User, UserId, UserSource};
use crate::lock::{FencingToken, LeaseId, LeaseRecord};
use crate::names::{ClientId, ConfigKey, FlagName, LimitName, LockName, Login};
use crate::rate_limit::LimitRecord;

pub(super) struct SqliteTx<'a> {
    tx: &'a Transaction<'a>,
    clock: &'a dyn Clock,
    fencing_block_exhausted: bool,
}

impl<'a> SqliteTx<'a> {
    pub(super) fn new(tx: &'a Transaction<'a>, clock: &'a dyn Clock) -> Self {
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
        read: impl Fn(&Row) -> Result<T>,
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
        read: impl Fn(&Row) -> Result<T>,
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
        Ok(n as usize)
    }
}

fn corrupt(what: &str) -> Error {
    Error::Storage(format!("corrupt {what} in the database"))
}

fn id(uuid: Uuid) -> [u8; 16] {
    *uuid.as_bytes()
}

fn get<T: rusqlite::types::FromSql>(row: &Row, i: usize) -> Result<T> {
    row.get(i).map_err(storage)
}

fn uuid_at(row: &Row, i: usize) -> Result<Uuid> {
    let bytes: Vec<u8> = get(row, i)?;
    Uuid::from_slice(&bytes).map_err(|_| corrupt("id"))
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().expect("instants before 2262")
}

fn instant_at(row: &Row, i: usize) -> Result<DateTime<Utc>> {
    Ok(DateTime::from_timestamp_nanos(get(row, i)?))
}

fn name_at<T>(row: &Row, i: usize, parse: fn(&str) -> Result<T>) -> Result<T> {
    let text: String = get(row, i)?;
    parse(&text).map_err(|_| corrupt("name"))
}

fn u64_at(row: &Row, i: usize) -> Result<u64> {
    let n: i64 = get(row, i)?;
    u64::try_from(n).map_err(|_| corrupt("number"))
}

const USER_COLUMNS: &str = "id, login, avatar_url, github_id";

fn user(row: &Row) -> Result<User> {
    let github_id: Option<i64> = get(row, 3)?;
    Ok(User {
        id: UserId(uuid_at(row, 0)?),
        login: name_at(row, 1, Login::parse)?,
        avatar_url: get(row, 2)?,
        source: match github_id {
            Some(id) => UserSource::Github {
                github_id: id as u64,
            },
            None => UserSource::Local,
        },
    })
}

fn token(row: &Row) -> Result<TokenRecord> {
    let hash: Vec<u8> = get(row, 0)?;
    Ok(TokenRecord {
        hash: TokenHash(hash.try_into().map_err(|_| corrupt("token hash"))?),
        id: uuid_at(row, 1)?,
        user: UserId(uuid_at(row, 2)?),
        created_at: instant_at(row, 3)?,
    })
}

const LEASE_COLUMNS: &str = "name, owner, client_id, lease_id, fencing_token, expires_at";

fn lease(row: &Row) -> Result<LeaseRecord> {
    let client_id: Option<String> = get(row, 2)?;
    Ok(LeaseRecord {
        name: name_at(row, 0, LockName::parse)?,
        owner: UserId(uuid_at(row, 1)?),
        client_id: client_id
            .map(|c| ClientId::parse(&c).map_err(|_| corrupt("client id")))
            .transpose()?,
        lease_id: LeaseId(uuid_at(row, 3)?),
        fencing_token: FencingToken(u64_at(row, 4)?),
        expires_at: instant_at(row, 5)?,
    })
}

fn limit_record(row: &Row, i: usize) -> Result<LimitRecord> {
    let bytes: Vec<u8> = get(row, i)?;
    LimitRecord::from_bytes(&bytes)
}

const FLAG_COLUMNS: &str = "name, enabled, percentage, created_at, updated_at";

fn flag(row: &Row) -> Result<Flag> {
    let percentage: Option<i64> = get(row, 2)?;
    Ok(Flag {
        name: name_at(row, 0, FlagName::parse)?,
        enabled: get(row, 1)?,
        percentage: percentage
            .map(|p| Percentage::new(p).map_err(|_| corrupt("percentage")))
            .transpose()?,
        created_at: instant_at(row, 3)?,
        updated_at: instant_at(row, 4)?,
    })
}

fn config_head(row: &Row, at: usize) -> Result<ConfigHead> {
    Ok(ConfigHead {
        latest: u64_at(row, at)?,
        oldest: u64_at(row, at + 1)?,
        created_at: instant_at(row, at + 2)?,
    })
}

const VERSION_COLUMNS: &str = "version, value, description, created_at";

fn config_version(row: &Row) -> Result<ConfigVersion> {
    let value: String = get(row, 1)?;
    Ok(ConfigVersion {
        version: u64_at(row, 0)?,
        value: serde_json::from_str::<Value>(&value).map_err(|_| corrupt("config value"))?,
        description: get(row, 2)?,
        created_at: instant_at(row, 3)?,
    })
}

impl Tx for SqliteTx<'_> {
    fn now(&mut self) -> Result<Timestamp> {
        Ok(self.clock.timestamp())
    }

    fn user(&mut self, user_id: UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
        self.row(&sql, [id(user_id.0)], user)
    }

    fn user_by_login(&mut self, login: &Login) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE login_folded = ?1");
        self.row(&sql, [login.folded()], user)
    }

    fn user_by_github_id(&mut self, github_id: u64) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE github_id = ?1");
        self.row(&sql, [github_id as i64], user)
    }

    fn put_user(&mut self, u: &User) -> Result<()> {
        let github_id = match u.source {
            UserSource::Github { github_id } => Some(github_id as i64),
            UserSource::Local => None,
        };
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
                github_id
            ],
        )
        .map(drop)
    }

    fn users(&mut self) -> Result<Vec<User>> {
        self.rows(&format!("SELECT {USER_COLUMNS} FROM users"), [], user)
    }

    fn token(&mut self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        self.row(
            "SELECT hash, id, user_id, created_at FROM tokens WHERE hash = ?1",
            [hash.0],
            token,
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
            "SELECT hash, id, user_id, created_at FROM tokens WHERE user_id = ?1",
            [id(owner.0)],
            token,
        )
    }

    fn lease(&mut self, name: &LockName) -> Result<Option<LeaseRecord>> {
        let sql = format!("SELECT {LEASE_COLUMNS} FROM leases WHERE name = ?1");
        self.row(&sql, [name.as_str()], lease)
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
        let sql = format!("SELECT {LEASE_COLUMNS} FROM leases WHERE owner = ?1");
        self.rows(&sql, [id(owner.0)], lease)
    }

    fn count_leases_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM leases WHERE owner = ?1", owner)
    }

    fn retain_leases(&mut self, keep: &mut dyn FnMut(&LeaseRecord) -> bool) -> Result<usize> {
        let sql = format!("SELECT {LEASE_COLUMNS} FROM leases");
        let doomed: Vec<LeaseRecord> = self.rows(&sql, [], lease)?;
        let mut deleted = 0;
        for l in doomed.iter().filter(|l| !keep(l)) {
            self.delete_lease(&l.name)?;
            deleted += 1;
        }
        Ok(deleted)
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
            |row| limit_record(row, 0),
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
            |row| Ok((name_at(row, 0, LimitName::parse)?, limit_record(row, 1)?)),
        )
    }

    fn count_limits_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM limits WHERE owner = ?1", owner)
    }

    fn retain_limits(&mut self, keep: &mut dyn FnMut(&LimitRecord) -> bool) -> Result<usize> {
        let all = self.rows("SELECT owner, name, record FROM limits", [], |row| {
            let owner: Vec<u8> = get(row, 0)?;
            let name: String = get(row, 1)?;
            Ok((owner, name, limit_record(row, 2)?))
        })?;
        let mut deleted = 0;
        for (owner, name, _) in all.iter().filter(|(_, _, record)| !keep(record)) {
            self.exec(
                "DELETE FROM limits WHERE owner = ?1 AND name = ?2",
                params![owner, name],
            )?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn flag(&mut self, owner: UserId, name: &FlagName) -> Result<Option<Flag>> {
        let sql = format!("SELECT {FLAG_COLUMNS} FROM flags WHERE owner = ?1 AND name = ?2");
        self.row(&sql, params![id(owner.0), name.as_str()], flag)
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
        let sql = format!("SELECT {FLAG_COLUMNS} FROM flags WHERE owner = ?1");
        self.rows(&sql, [id(owner.0)], flag)
    }

    fn count_flags_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM flags WHERE owner = ?1", owner)
    }

    fn config_head(&mut self, owner: UserId, key: &ConfigKey) -> Result<Option<ConfigHead>> {
        self.row(
            "SELECT latest, oldest, created_at FROM config_heads WHERE owner = ?1 AND key = ?2",
            params![id(owner.0), key.as_str()],
            |row| config_head(row, 0),
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
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM config_versions
             WHERE owner = ?1 AND key = ?2 AND version = ?3"
        );
        self.row(
            &sql,
            params![id(owner.0), key.as_str(), version as i64],
            config_version,
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
            |row| get(row, 0),
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
        let sql =
            format!("SELECT {VERSION_COLUMNS} FROM config_versions WHERE owner = ?1 AND key = ?2");
        self.rows(&sql, params![id(owner.0), key.as_str()], config_version)
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
            "SELECT key, latest, oldest, created_at FROM config_heads WHERE owner = ?1",
            [id(owner.0)],
            |row| Ok((name_at(row, 0, ConfigKey::parse)?, config_head(row, 1)?)),
        )
    }

    fn count_configs_of(&mut self, owner: UserId) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM config_heads WHERE owner = ?1", owner)
    }
}
