//! `/config`: put, get (`?version=`), history (in pages: `?after=&limit=`, the next one in a
//! `Link` header), delete, list. History and list are reads beside the store's writer
//! ([`App::read_as_user`]).

use bytes::Bytes;
use octostore_core::{Api, ConfigKey, Description, Error, HistoryPage, Result};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::{bearer, bearer_and_body, ok, query, reply, with_app};
use crate::app::App;
use crate::dto::{ConfigInfo, ConfigList, ConfigListItem, Deleted, History, VersionInfo};
use crate::request::{path_name, JsonBody};

pub fn routes(app: &App) -> BoxedFilter<(Response,)> {
    let put = warp::path!("config" / String)
        .and(warp::put())
        .and(with_app(app))
        .and(bearer_and_body(app))
        .then(put);
    let get = warp::path!("config" / String)
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .and(query())
        .then(get);
    let delete = warp::path!("config" / String)
        .and(warp::delete())
        .and(with_app(app))
        .and(bearer())
        .then(delete);
    let history = warp::path!("config" / String / "history")
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .and(query())
        .then(history);
    let list = warp::path!("config")
        .and(warp::get())
        .and(with_app(app))
        .and(bearer())
        .then(list);
    put.or(get)
        .unify()
        .or(delete)
        .unify()
        .or(history)
        .unify()
        .or(list)
        .unify()
        .boxed()
}

fn config_key(raw: &str) -> Result<ConfigKey> {
    ConfigKey::parse(&path_name(raw, "key")?)
}

pub(super) async fn put(raw: String, app: App, token: Option<String>, body: Bytes) -> Response {
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

pub(super) async fn get(
    raw: String,
    app: App,
    token: Option<String>,
    query: Vec<(String, String)>,
) -> Response {
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

async fn history(
    raw: String,
    app: App,
    token: Option<String>,
    query: Vec<(String, String)>,
) -> Response {
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

async fn delete(raw: String, app: App, token: Option<String>) -> Response {
    app.as_user(token, move |session| {
        session.delete_config(&config_key(&raw)?)?;
        ok(&Deleted { deleted: true })
    })
    .await
}

async fn list(app: App, token: Option<String>) -> Response {
    app.read_as_user(token, move |session| {
        let configs = session.configs()?;
        ok(&ConfigList {
            configs: configs.into_iter().map(ConfigListItem::from).collect(),
        })
    })
    .await
}
