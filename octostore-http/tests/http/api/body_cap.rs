//! 413 for a request body over the server's cap, declared by `Content-Length` or found while
//! reading a chunked body, for every operation that takes a body; and the cap to the byte.
//!
//! The server answers 413 and closes the connection without reading the rest of the body.
//! An HTTP client still sending then meets a reset, and may never read the answer, so the
//! tests that prove the answer is sent read it off a raw socket, whatever happens to the
//! writes; `an_http_client_still_sending_its_body_reads_the_413` asks for more.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::conventions::body_operations;
use super::{text, Api};

/// How a raw request frames its body.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length` with this value (which may exceed the bytes sent).
    Length(usize),
    /// `Transfer-Encoding: chunked`, in chunks of 8 KiB.
    Chunked,
}

/// An answer read off a raw socket.
#[derive(Debug)]
struct Wire {
    status: u16,
    head: String,
    body: String,
}

impl Wire {
    /// Asserts a 413 with a JSON error, and returns the body.
    #[track_caller]
    fn too_large(&self) -> Value {
        assert_eq!(self.status, 413, "{self:?}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{self:?}"
        );
        let body: Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{self:?}"
        );
        body
    }
}

/// Sends a request on a raw socket: the head, then `body` framed as `framing` from another
/// thread, whatever the server does meanwhile. Reads the answer until the server closes
/// (the request asks it to); what arrived before any reset counts.
fn wire(
    api: &Api,
    token: &str,
    method: &Method,
    path: &str,
    framing: Framing,
    body: Vec<u8>,
) -> Wire {
    let mut stream = TcpStream::connect(api.server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let framing_header = match framing {
        Framing::Length(length) => format!("Content-Length: {length}"),
        Framing::Chunked => "Transfer-Encoding: chunked".to_owned(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{framing_header}\r\n\r\n",
        api.server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || -> std::io::Result<()> {
        match framing {
            Framing::Length(_) => writer.write_all(&body),
            Framing::Chunked => {
                for chunk in body.chunks(8192) {
                    writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    writer.write_all(chunk)?;
                    writer.write_all(b"\r\n")?;
                }
                writer.write_all(b"0\r\n\r\n")
            }
        }
    });
    let mut answer = Vec::new();
    // A reset after the answer ends the read with an error; the bytes before it are kept.
    let _ = stream.read_to_end(&mut answer);
    // Writes may fail once the server has answered and closed; that is its right.
    let _ = writing.join().unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path} {framing:?}: no whole answer: {answer:?}"));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    Wire {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

const HUGE: usize = 4 * 1024 * 1024;

/// The server's body cap, as its 413 answer states it.
fn body_cap(api: &Api, token: &str) -> usize {
    let answer = wire(
        api,
        token,
        &Method::PUT,
        "/config/c",
        Framing::Length(HUGE),
        Vec::new(),
    );
    let body = answer.too_large();
    assert_eq!(body["field"], "body", "{body}");
    let cap = body["limit"].as_u64();
    cap.unwrap_or_else(|| panic!("the 413 does not state the cap: {body}")) as usize
}

/// `body` (a JSON object) padded with spaces before its closing brace to `size` bytes.
fn padded(body: &Value, size: usize) -> Vec<u8> {
    let compact = body.to_string();
    let (open, close) = compact.split_at(compact.len() - 1);
    let mut bytes = open.as_bytes().to_vec();
    bytes.resize(size - close.len(), b' ');
    bytes.extend_from_slice(close.as_bytes());
    assert_eq!(bytes.len(), size);
    bytes
}

/// Nothing the refused requests asked for happened.
#[track_caller]
fn nothing_stored(api: &Api, token: &str) {
    let alice = api.with_token(token);
    alice.get("/config/c").error(404);
    alice.get("/flags/f").error(404);
    alice.get("/limits/r").error(404);
    assert_eq!(alice.get("/locks/l").ok()["status"], "available");
}

#[test]
fn a_body_over_the_cap_is_413_with_content_length() {
    let api = Api::start();
    let token = api.server.token("alice");
    for (method, path, body) in body_operations() {
        let path = path.as_str();
        // Refused from the header alone, before any byte of the body...
        wire(
            &api,
            &token,
            &method,
            path,
            Framing::Length(HUGE),
            Vec::new(),
        )
        .too_large();
        // ...and while the body is on its way.
        let huge = padded(&body, HUGE);
        wire(&api, &token, &method, path, Framing::Length(HUGE), huge).too_large();
    }
    nothing_stored(&api, &token);
}

#[test]
fn a_body_over_the_cap_is_413_when_chunked() {
    let api = Api::start();
    let token = api.server.token("alice");
    for (method, path, body) in body_operations() {
        let path = path.as_str();
        let huge = padded(&body, HUGE);
        wire(&api, &token, &method, path, Framing::Chunked, huge).too_large();
    }
    nothing_stored(&api, &token);
}

#[test]
fn the_body_cap_holds_to_the_byte_with_content_length_and_chunked() {
    let api = Api::start();
    let token = api.server.token("alice");
    let alice = api.with_token(&token);
    let cap = body_cap(&api, &token);
    assert!(cap > 64 * 1024, "a 64 KiB config value must fit: {cap}");
    for (method, path, body) in body_operations() {
        let path = path.as_str();
        let expected = alice.raw(method.clone(), path, body.to_string()).status;
        let at_cap = alice.raw(method.clone(), path, padded(&body, cap));
        assert_eq!(at_cap.status, expected, "{method} {path}: {at_cap:?}");
        let at_cap = alice.chunked(method.clone(), path, padded(&body, cap));
        assert_eq!(
            at_cap.status, expected,
            "{method} {path} chunked: {at_cap:?}"
        );

        let over = padded(&body, cap + 1);
        let length = Framing::Length(over.len());
        wire(&api, &token, &method, path, length, over.clone()).too_large();
        wire(&api, &token, &method, path, Framing::Chunked, over).too_large();
    }
}

#[test]
fn chunked_bodies_under_the_cap_are_read_whole() {
    let api = Api::start();
    let alice = api.user("alice");
    let value = "y".repeat(60 * 1024);
    let body = json!({ "value": value }).to_string().into_bytes();
    let put = alice.chunked(Method::PUT, "/config/c", body).ok();
    assert_eq!(text(&put["value"]).len(), value.len());
    let lease = alice
        .chunked(
            Method::POST,
            "/locks/l/acquire",
            br#"{"ttl_seconds": 5}"#.to_vec(),
        )
        .ok();
    assert_eq!(lease["status"], "acquired");
}

#[test]
fn an_http_client_still_sending_its_body_reads_the_413() {
    let api = Api::start();
    let token = api.server.token("alice");
    let alice = api.with_token(&token);
    let cap = body_cap(&api, &token);
    for (method, path, body) in body_operations() {
        let path = path.as_str();
        for size in [cap + 1, cap + 64 * 1024, HUGE] {
            let reply = alice.raw(method.clone(), path, padded(&body, size));
            assert_eq!(reply.status, 413, "{method} {path} {size}: {reply:?}");
            reply.error(413);
            let reply = alice.chunked(method.clone(), path, padded(&body, size));
            assert_eq!(
                reply.status, 413,
                "{method} {path} {size} chunked: {reply:?}"
            );
            reply.error(413);
        }
    }
    nothing_stored(&api, &token);
}
