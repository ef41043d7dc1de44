//! `/config`: put (a compare-and-set with `If-Match` or `If-None-Match`), get (`?version=`,
//! or a long poll: `?wait_for_version=&wait=`; both answer the version as their `ETag`),
//! history (in pages: `?after=&limit=`, the next one in a `Link` header), rollback (a kept
//! version put again), diff (a JSON Patch), delete (kept for an undelete, or `?purge=true`),
//! undelete, list (`?deleted=true`: the deleted keys), and a key's JSON Schema (put, get,
//! delete). History, diff and list are reads
//! beside the store's writer
//! ([`App::read_as_user`](crate::app::App::read_as_user)).

use octostore_core::{Api, ConfigEntry, Error, Session};
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use crate::app::respond;
use crate::dto::{
    ConfigInfo, ConfigList, ConfigListItem, Deleted, History, SchemaInfo, VersionInfo,
};
use crate::operation::requests::{
    DeleteConfig, DeleteConfigSchema, DiffConfig, Endpoint, GetConfig, GetConfigHistory,
    GetConfigSchema, ListConfigs, PutConfig, PutConfigSchema, RollbackConfig, UndeleteConfig,
};
use crate::reply::answer;
use crate::request::Request;

/// The answer of a version, with its number as its `ETag` (what `If-Match` names).
fn version_answer<E: Endpoint<Answer = ConfigInfo>>(entry: ConfigEntry) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", entry.version)).expect("digits");
    let mut response = answer::<E>(&ConfigInfo::from(entry));
    response.headers_mut().insert(header::ETAG, etag);
    response
}

pub(super) async fn put(request: Request) -> Response {
    // Decoded here, off the store's thread; an error is answered after authentication.
    let put = request.decode::<PutConfig>();
    let op = move |session: &Session| {
        let PutConfig {
            key,
            value,
            description,
            if_version,
        } = put?;
        session.put_config_if(&key, value, description, if_version)
    };
    request
        .app
        .as_user_then(request.token, op, version_answer::<PutConfig>)
        .await
}

pub(super) async fn rollback(request: Request) -> Response {
    let rollback = request.decode::<RollbackConfig>();
    let op = move |session: &Session| {
        let RollbackConfig {
            key,
            version,
            if_version,
        } = rollback?;
        session.rollback_config(&key, version, if_version)
    };
    request
        .app
        .as_user_then(request.token, op, version_answer::<RollbackConfig>)
        .await
}

pub(super) async fn get(request: Request) -> Response {
    let reply = version_answer::<GetConfig>;
    let (get, after) = match request.decode::<GetConfig>() {
        Ok(get) if get.wait_for_version.is_some() => {
            let after = get.wait_for_version;
            (get, after)
        }
        get => {
            let op = move |session: &Session| {
                let GetConfig { key, version, .. } = get?;
                session.get_config(&key, version)
            };
            return request.app.as_user_then(request.token, op, reply).await;
        }
    };
    // A long poll: the latest version once it is past `after`, or whatever it is (or 404)
    // when the wait is over.
    let (app, token) = (&request.app, &request.token);
    app.until_changed(get.wait, || {
        let (token, key) = (token.clone(), get.key.clone());
        async move {
            let op = move |session: &Session| session.get_config(&key, None);
            let outcome = app.as_user_outcome(token, op).await;
            let ready = match &outcome {
                Some(Ok(entry)) => Some(entry.version) > after,
                Some(Err(Error::NotFound { .. })) => false,
                _ => true,
            };
            (respond(outcome, reply), ready)
        }
    })
    .await
}

pub(super) async fn history(request: Request) -> Response {
    let history = request.decode::<GetConfigHistory>();
    let op = move |session: &Session| {
        let GetConfigHistory { key, page } = history?;
        let history = session.config_history_page(&key, page)?;
        let versions = history.versions.into_iter().map(VersionInfo::from);
        let mut response = answer::<GetConfigHistory>(&History {
            versions: versions.collect(),
        });
        if let Some(next) = history.next {
            // Relative to this request's URL, so it holds behind a proxy's path prefix too.
            let link = format!(
                "<history?after={}&limit={}>; rel=\"next\"",
                next.after(),
                next.limit()
            );
            let link = HeaderValue::from_str(&link).expect("digits and ASCII");
            response.headers_mut().insert(header::LINK, link);
        }
        Ok(response)
    };
    request.app.read_as_user(request.token, op).await
}

pub(super) async fn diff(request: Request) -> Response {
    let diff = request.decode::<DiffConfig>();
    let op = move |session: &Session| {
        let DiffConfig { key, from, to } = diff?;
        let diff = session.diff_config(&key, from, to)?;
        Ok(answer::<DiffConfig>(&diff.patch))
    };
    request.app.read_as_user(request.token, op).await
}

pub(super) async fn delete(request: Request) -> Response {
    let delete = request.decode::<DeleteConfig>();
    let op = move |session: &Session| {
        let DeleteConfig { key, purge } = delete?;
        match purge {
            true => session.purge_config(&key)?,
            false => session.delete_config(&key)?,
        }
        Ok(answer::<DeleteConfig>(&Deleted { deleted: true }))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn undelete(request: Request) -> Response {
    let undelete = request.decode::<UndeleteConfig>();
    let op = move |session: &Session| session.undelete_config(&undelete?.0);
    request
        .app
        .as_user_then(request.token, op, version_answer::<UndeleteConfig>)
        .await
}

pub(super) async fn put_schema(request: Request) -> Response {
    let put = request.decode::<PutConfigSchema>();
    let op = move |session: &Session| {
        let PutConfigSchema { key, schema, force } = put?;
        let schema = session.set_config_schema(&key, schema, force)?;
        Ok(answer::<PutConfigSchema>(&SchemaInfo::new(&key, schema)))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn get_schema(request: Request) -> Response {
    let get = request.decode::<GetConfigSchema>();
    let op = move |session: &Session| {
        let GetConfigSchema(key) = get?;
        let schema = session.config_schema(&key)?;
        Ok(answer::<GetConfigSchema>(&SchemaInfo::new(&key, schema)))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn delete_schema(request: Request) -> Response {
    let delete = request.decode::<DeleteConfigSchema>();
    let op = move |session: &Session| {
        session.delete_config_schema(&delete?.0)?;
        Ok(answer::<DeleteConfigSchema>(&Deleted { deleted: true }))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let list = request.decode::<ListConfigs>();
    let op = move |session: &Session| {
        let configs = match list?.deleted {
            true => session.deleted_configs()?,
            false => session.configs()?,
        };
        Ok(answer::<ListConfigs>(&ConfigList {
            configs: configs.into_iter().map(ConfigListItem::from).collect(),
        }))
    };
    request.app.read_as_user(request.token, op).await
}
