//! `GET /events` as Server-Sent Events: each event with its index, kind and JSON, new ones as
//! they are appended, resumed from `Last-Event-ID`, a `resync` past what is kept; errors
//! still answered as JSON.

use std::io::{BufRead, BufReader};

use octostore_core::Settings;
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use super::Api;

/// An open stream of `path`, as `token`'s user, with these extra headers.
fn open(api: &Api, token: &str, path: &str, headers: &[(&str, &str)]) -> BufReader<Response> {
    let mut request = Client::new()
        .get(api.server.url(path))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    BufReader::new(response)
}

/// The next event's `id`, `event` and `data` (as JSON), skipping comment lines.
fn next_event(stream: &mut BufReader<Response>) -> (String, String, Value) {
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(stream.read_line(&mut line).unwrap() > 0, "the stream ended");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() && !data.is_empty() {
            return (id, event, serde_json::from_str(&data).unwrap());
        }
        if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "id" => id = value,
                "event" => event = value,
                "data" => data = value,
                _ => {}
            }
        }
    }
}

#[test]
fn a_stream_sends_each_event_then_the_new_ones() {
    let api = Api::start();
    let token = api.server.token("alice");
    let alice = api.with_token(&token);
    alice.set_flag("beta", json!({ "enabled": true })).ok();
    alice.put_config("app.size", json!({ "value": 3 })).ok();
    let page = alice.get("/events?since=1").ok();

    let mut stream = open(&api, &token, "/events?since=1", &[]);
    let (id, event, data) = next_event(&mut stream);
    assert_eq!((id.as_str(), event.as_str()), ("2", "config"));
    assert_eq!(data, page["events"][0], "the long poll's JSON of the event");
    alice.delete("/flags/beta").ok();
    let (id, event, data) = next_event(&mut stream);
    assert_eq!((id.as_str(), event.as_str()), ("3", "flag"));
    assert_eq!(
        (data["action"].clone(), data["name"].clone()),
        (json!("deleted"), json!("beta"))
    );

    // A client that reconnects goes on after its Last-Event-ID, whatever `since` says.
    let mut again = open(&api, &token, "/events?since=0", &[("last-event-id", "2")]);
    assert_eq!(next_event(&mut again).0, "3");
    // A filter's events only.
    let mut locks = open(&api, &token, "/events?kind=lock", &[]);
    alice.set_flag("gamma", json!({ "enabled": true })).ok();
    alice.acquire("deploy", 30).ok();
    let (id, event, _) = next_event(&mut locks);
    assert_eq!((id.as_str(), event.as_str()), ("5", "lock"));
}

#[test]
fn a_stream_past_the_kept_events_starts_with_a_resync() {
    let api = Api::with(Settings {
        events_kept: 1,
        ..Settings::default()
    });
    let token = api.server.token("alice");
    let alice = api.with_token(&token);
    for name in ["a", "b", "c"] {
        alice.set_flag(name, json!({ "enabled": true })).ok();
    }
    assert_eq!(api.server.store.sweep().unwrap().events, 2);
    let mut stream = open(&api, &token, "/events?since=0", &[]);
    let (id, event, data) = next_event(&mut stream);
    assert_eq!((id.as_str(), event.as_str()), ("3", "resync"));
    assert_eq!(data, json!({ "next": 3 }));
    alice.set_flag("d", json!({ "enabled": true })).ok();
    assert_eq!(next_event(&mut stream).0, "4");
}

#[test]
fn a_stream_refused_is_answered_as_json() {
    let api = Api::start();
    let token = api.server.token("alice");
    let client = Client::new();
    let send = |path: &str, token: Option<&str>, last_event_id: Option<&str>| {
        let mut request = client
            .get(api.server.url(path))
            .header("accept", "text/event-stream");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    let (status, body) = send("/events", None, None);
    assert_eq!((status, body["code"].clone()), (401, json!("unauthorized")));
    let (status, body) = send("/events?kind=locks", Some(&token), None);
    assert_eq!((status, body["field"].clone()), (422, json!("kind")));
    let (status, body) = send("/events", Some(&token), Some("x"));
    assert_eq!(
        (status, body["field"].clone()),
        (422, json!("Last-Event-ID"))
    );
}
