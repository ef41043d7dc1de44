//! The API of `openapi.yaml` over real HTTP on 127.0.0.1, against a server whose clock the
//! tests move by hand: every operation, every documented status, every validation bound at
//! and just beyond its edge, isolation between users, and the conventions README states.
//!
//! One topical module per tag of the contract, plus `conventions` (401, 404, 405, 422 on
//! bodies, 429), `body_cap` (413 with `Content-Length` and chunked) and `isolation` (two
//! users). The helpers here keep each test to what it
//! proves: [`Api`] is a server and an HTTP client, [`Caller`] one bearer token (or none), and
//! [`Reply`] an answer with assertions that print the body when they fail.

mod auth;
mod body_cap;
mod config;
mod config_writes;
mod conventions;
mod event_stream;
mod events;
mod flags;
mod isolation;
mod limits;
mod locks;
mod long_poll;
mod system;
mod targeting;
mod waiting;

use std::io::Cursor;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use octostore_core::{Clock, ManualClock, Settings, Store};
use octostore_http::dto::ErrorCode;
use octostore_http::ServerOptions;
use reqwest::blocking::{Body, Client};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::Server;

/// A server and a client for it. The client is dropped first, so the server never waits on
/// a pooled connection when it shuts down.
pub struct Api {
    http: Client,
    pub server: Server,
}

impl Api {
    /// A server on an in-memory store with default settings.
    pub fn start() -> Self {
        Self::on(Server::start())
    }

    /// A server on an in-memory store with `settings`.
    pub fn with(settings: Settings) -> Self {
        Self::on(Server::start_with(settings, ServerOptions::default()))
    }

    /// A server on `store`, whose clock is `clock`.
    pub fn serve(store: Store, clock: std::sync::Arc<ManualClock>) -> Self {
        Self::on(Server::serve(store, clock, ServerOptions::default()))
    }

    fn on(server: Server) -> Self {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(StdDuration::from_secs(60))
            .build()
            .expect("an HTTP client");
        Self { http, server }
    }

    /// A caller with a fresh token of the local user `login` (created on first use).
    pub fn user(&self, login: &str) -> Caller<'_> {
        let token = self.server.token(login);
        self.with_token(&token)
    }

    /// A caller that presents `token`.
    pub fn with_token(&self, token: &str) -> Caller<'_> {
        Caller {
            api: self,
            authorization: Some(format!("Bearer {token}")),
            headers: Vec::new(),
        }
    }

    /// A caller that sends no `Authorization` header.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            api: self,
            authorization: None,
            headers: Vec::new(),
        }
    }

    /// A caller that sends this exact `Authorization` header.
    pub fn with_authorization(&self, header: &str) -> Caller<'_> {
        Caller {
            api: self,
            authorization: Some(header.to_owned()),
            headers: Vec::new(),
        }
    }

    /// The server's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.server.clock.now()
    }

    /// Moves the server's clock forward by `seconds`.
    pub fn advance_secs(&self, seconds: i64) {
        self.server.advance(Duration::seconds(seconds));
    }

    /// Moves the server's clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.server.advance(by);
    }
}

/// One bearer token (or none), calling the server.
pub struct Caller<'a> {
    api: &'a Api,
    authorization: Option<String>,
    /// Sent with every request, beside the token.
    headers: Vec<(String, String)>,
}

impl Caller<'_> {
    /// The same caller, sending `name: value` with every request too.
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut headers = self.headers.clone();
        headers.push((name.to_owned(), value.to_owned()));
        Caller {
            api: self.api,
            authorization: self.authorization.clone(),
            headers,
        }
    }

    /// Sends `method path` with `body` (if any) and `content_type` (if any).
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        content_type: Option<&str>,
    ) -> Reply {
        let mut request = self.api.http.request(method, self.api.server.url(path));
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response
                .text()
                .unwrap_or_else(|e| panic!("{path}: unreadable body: {e}")),
        }
    }

    /// Sends `method path` with these raw bytes as a JSON body (sent with `Content-Length`).
    pub fn raw(&self, method: Method, path: &str, bytes: impl Into<Vec<u8>>) -> Reply {
        self.send(
            method,
            path,
            Some(Body::from(bytes.into())),
            Some("application/json"),
        )
    }

    /// Sends `method path` with these bytes as a JSON body in chunked transfer encoding (no
    /// `Content-Length`).
    pub fn chunked(&self, method: Method, path: &str, bytes: Vec<u8>) -> Reply {
        self.send(
            method,
            path,
            Some(Body::new(Cursor::new(bytes))),
            Some("application/json"),
        )
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.raw(Method::POST, path, body.to_string())
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.raw(Method::PUT, path, body.to_string())
    }

    /// `POST /locks/{name}/acquire` with `ttl_seconds`.
    pub fn acquire(&self, name: &str, ttl_seconds: i64) -> Reply {
        self.post(
            &format!("/locks/{name}/acquire"),
            &serde_json::json!({ "ttl_seconds": ttl_seconds }),
        )
    }

    /// `POST /locks/{name}/release` with `lease_id`.
    pub fn release(&self, name: &str, lease_id: &str) -> Reply {
        self.post(
            &format!("/locks/{name}/release"),
            &serde_json::json!({ "lease_id": lease_id }),
        )
    }

    /// `POST /locks/{name}/renew` with `lease_id` and `ttl_seconds`.
    pub fn renew(&self, name: &str, lease_id: &str, ttl_seconds: i64) -> Reply {
        self.post(
            &format!("/locks/{name}/renew"),
            &serde_json::json!({ "lease_id": lease_id, "ttl_seconds": ttl_seconds }),
        )
    }

    /// `POST /limits/{name}/check` with this policy.
    pub fn check(&self, name: &str, max_requests: i64, window_seconds: i64) -> Reply {
        self.post(
            &format!("/limits/{name}/check"),
            &serde_json::json!({ "max_requests": max_requests, "window_seconds": window_seconds }),
        )
    }

    /// `PUT /flags/{name}` with `body`.
    pub fn set_flag(&self, name: &str, body: Value) -> Reply {
        self.put(&format!("/flags/{name}"), &body)
    }

    /// `PATCH /flags/{name}` with `body`.
    pub fn patch_flag(&self, name: &str, body: Value) -> Reply {
        self.raw(Method::PATCH, &format!("/flags/{name}"), body.to_string())
    }

    /// `PUT /config/{key}` with `body`.
    pub fn put_config(&self, key: &str, body: Value) -> Reply {
        self.put(&format!("/config/{key}"), &body)
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a text header"))
    }

    /// The body as JSON; the answer must say it is JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "expected JSON, got content-type {content_type:?}: {self:?}"
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }

    /// Asserts the status.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        self
    }

    /// Asserts 200 and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        self.expect(200).json()
    }

    /// Asserts `status` with a JSON error body (`error` a non-empty string, `code` one the
    /// server documents and whose status this is, `details` a string if present) and returns
    /// the body.
    #[track_caller]
    pub fn error(&self, status: u16) -> Value {
        self.expect(status);
        let body = self.json();
        let error = body["error"].as_str();
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "no `error` string: {self:?}"
        );
        if let Some(details) = body.get("details") {
            assert!(details.is_string(), "`details` is not a string: {self:?}");
        }
        let code: ErrorCode = serde_json::from_value(body["code"].clone())
            .unwrap_or_else(|e| panic!("no `code`: {e}: {self:?}"));
        assert_ne!(code, ErrorCode::Other, "an undocumented code: {self:?}");
        assert_eq!(
            code.status(),
            status,
            "the code has another status: {self:?}"
        );
        body
    }

    /// Asserts a 422 whose error names `field`, and returns the body.
    #[track_caller]
    pub fn invalid(&self, field: &str) -> Value {
        let body = self.error(422);
        assert_eq!(body["code"], "validation_failed", "{self:?}");
        assert_eq!(
            body["field"], field,
            "the 422 names another field: {self:?}"
        );
        assert!(
            body["error"].as_str().unwrap().contains(field),
            "the message does not name {field:?}: {self:?}"
        );
        body
    }

    /// Asserts a 401 with `WWW-Authenticate: Bearer` and a JSON error.
    #[track_caller]
    pub fn unauthorized(&self) {
        self.error(401);
        let challenge = self.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer"),
            "401 without WWW-Authenticate: Bearer: {self:?}"
        );
    }
}

/// A JSON string as a time.
#[track_caller]
pub fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {value}"))
}

/// A JSON integer.
#[track_caller]
pub fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

/// A JSON string.
#[track_caller]
pub fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// `text` percent-encoded for a path segment: everything but unreserved ASCII.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
