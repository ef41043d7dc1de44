//! `/config`: put, get (`?version=`), history (in pages: `?after=&limit=`, the next one in a
//! `Link` header), delete, list. History and list are reads beside the store's writer
//! ([`App::read_as_user`]).

use octostore_core::{Api, ConfigKey, Description, Error, HistoryPage, Result};
use warp::http::{header, HeaderValue};
use warp::reply::Response;

use super::{ok, reply, Request};
use crate::dto::{ConfigInfo, ConfigList, ConfigListItem, Deleted, History, VersionInfo};
use crate::request::{path_name, JsonBody};

fn config_key(raw: &str) -> Result<ConfigKey> {
    ConfigKey::parse(&path_name(raw, "key")?)
}

pub(super) async fn put(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    // Parsed here, off the store's thread; an error is answered after authentication.
    let request = (|| {
        let key = config_key(&raw)?;
        let mut body = JsonBody::parse(&body)?;
        let description = body
            .optional_str("description")?
            .map(Description::new)
            .transpose()?;
        let value = body.take_value("value")?;
        Ok((key, value, description))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (key, value, description) = request?;
            session.put_config(&key, value, description)
        },
        |entry| reply(&ConfigInfo::from(entry)),
    )
    .await
}

pub(super) async fn get(request: Request) -> Response {
    let query = request.query_pairs();
    let Request {
        name: raw,
        app,
        token,
        ..
    } = request;
    let request = (|| {
        let key = config_key(&raw)?;
        let version = match query.iter().find(|(k, _)| k == "version") {
            Some((_, v)) => Some(
                v.parse::<i64>()
                    .map_err(|_| Error::invalid("version", "must be an integer"))?,
            ),
            None => None,
        };
        Ok((key, version))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (key, version) = request?;
            session.get_config(&key, version)
        },
        |entry| reply(&ConfigInfo::from(entry)),
    )
    .await
}

/// The query parameter `name` as a number of `what`, if given.
fn number(query: &[(String, String)], name: &'static str, what: &str) -> Result<Option<u64>> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| Error::invalid(name, format!("must be {what}")))
        })
        .transpose()
}

pub(super) async fn history(request: Request) -> Response {
    let query = request.query_pairs();
    let Request {
        name: raw,
        app,
        token,
        ..
    } = request;
    let request = (|| {
        let key = config_key(&raw)?;
        let after = number(&query, "after", "a version number")?;
        let limit = number(&query, "limit", "a number of versions")?;
        Ok((key, HistoryPage::new(after, limit)?))
    })();
    app.read_as_user(token, move |session| {
        let (key, page) = request?;
        let history = session.config_history_page(&key, page)?;
        let mut response = reply(&History {
            versions: history
                .versions
                .into_iter()
                .map(VersionInfo::from)
                .collect(),
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
    })
    .await
}

pub(super) async fn delete(
    Request {
        name: raw,
        app,
        token,
        ..
    }: Request,
) -> Response {
    app.as_user(token, move |session| {
        session.delete_config(&config_key(&raw)?)?;
        ok(&Deleted { deleted: true })
    })
    .await
}

pub(super) async fn list(Request { app, token, .. }: Request) -> Response {
    app.read_as_user(token, move |session| {
        let configs = session.configs()?;
        ok(&ConfigList {
            configs: configs.into_iter().map(ConfigListItem::from).collect(),
        })
    })
    .await
}
