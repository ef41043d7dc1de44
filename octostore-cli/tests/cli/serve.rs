//! `serve`'s start line (for people: version, address, store and its durability, never a
//! database password), its access log (`--access-log`, off by default), its JSON logs
//! (`--log-format json`) and its web console (`/ui`, off with `--no-ui`).

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Stdio};

use serde_json::Value;

use crate::support::octostore;

/// A server the binary runs with `args`, with the default log filter, its stderr read line
/// by line.
struct Serving {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// The lines read so far.
    log: Vec<String>,
    /// `127.0.0.1:PORT`, from the start line.
    addr: String,
}

impl Serving {
    fn start(args: &[&str]) -> Self {
        let mut child = octostore()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut serving = Self {
            child,
            lines,
            log: Vec::new(),
            addr: String::new(),
        };
        let start = serving.line_with("listening on http://");
        let (_, rest) = start.split_once("listening on http://").unwrap();
        serving.addr = rest.split([',', '"']).next().unwrap().to_owned();
        serving
    }

    /// The next line that contains `text` (the lines before it kept in `log`).
    fn line_with(&mut self, text: &str) -> String {
        for line in self.lines.by_ref().map_while(Result::ok) {
            self.log.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
        panic!("no line with {text:?}:\n{}", self.log.join("\n"));
    }

    /// The line logged so far that contains `text`.
    fn logged(&self, text: &str) -> &str {
        let line = self.log.iter().find(|line| line.contains(text));
        line.unwrap_or_else(|| panic!("no line with {text:?}:\n{}", self.log.join("\n")))
    }

    /// `GET path`, answered whole; the answer's head and body.
    fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: octostore\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Stops the server with SIGTERM, which it must end by, with status 0 and no panic on
    /// the way; every line it logged.
    fn stop(mut self) -> Vec<String> {
        // SAFETY: kill only sends a signal to the server this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.log.extend(self.lines.by_ref().map_while(Result::ok));
        let status = self.child.wait().unwrap();
        let log = self.log.join("\n");
        assert!(
            status.success() && !log.contains("panicked"),
            "{status}:\n{log}"
        );
        std::mem::take(&mut self.log)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn the_start_line_names_the_version_address_store_and_its_durability() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("start.db");
    let serving = Serving::start(&["--db", db.to_str().unwrap()]);
    let start = serving.log.last().unwrap().clone();
    let want = format!(
        "octostore {VERSION} listening on http://{}, store sqlite {} (durability: survives \
         process crashes)",
        serving.addr,
        db.display()
    );
    assert!(start.ends_with(&want), "{start}");
    let log = serving.stop().join("\n");
    let serving_line = log.lines().find(|l| l.contains("serving on")).expect(&log);
    assert!(
        serving_line.contains("at most 10000 connections; timeouts: headers 10s"),
        "{serving_line}"
    );
    for debug in ["Some(", "ConnectionLimits {", "addr="] {
        assert!(!log.contains(debug), "Debug output {debug:?} in:\n{log}");
    }

    let serving = Serving::start(&["--db", db.to_str().unwrap(), "--sync-every-commit"]);
    let start = serving.log.last().unwrap();
    assert!(
        start.ends_with("(durability: survives process crashes and power loss)"),
        "{start}"
    );
    let serving = Serving::start(&["--memory"]);
    let start = serving.log.last().unwrap();
    assert!(
        start.ends_with(", store memory (nothing survives a restart)"),
        "{start}"
    );
    let kept = serving.logged("change log:");
    assert!(
        kept.ends_with("the newest 100000 events kept, none older than 1day"),
        "{kept}"
    );
}

#[test]
fn the_change_log_keeps_what_serve_is_told() {
    let args = ["--memory", "--events-kept", "50", "--events-max-age", "90m"];
    let serving = Serving::start(&args);
    let kept = serving.logged("change log:");
    assert!(
        kept.ends_with("the newest 50 events kept, none older than 1h 30m"),
        "{kept}"
    );
    for (flag, value) in [("--events-kept", "0"), ("--events-max-age", "0s")] {
        let refused = octostore()
            .args(["serve", "--memory", "--bind", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(flag),
            "{stderr}"
        );
    }
}

/// The variable naming the PostgreSQL database of the tests.
const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

#[test]
fn the_start_line_names_the_database_without_its_password() {
    let Some(url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the start line on PostgreSQL ({POSTGRES_URL_VAR} is unset)");
        return;
    };
    // postgres://USER@HOST... with a password the database (trust) never asks for.
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("{POSTGRES_URL_VAR}: expected postgres://USER@HOST:PORT/DB"));
    let password = "hunter2-never-shown";
    let with_password = format!("{scheme}://{user}:{password}@{host}?sslmode=disable");
    let schema = format!("octostore_start_{}", uuid::Uuid::new_v4().simple());
    let serving = Serving::start(&[
        "--database-url",
        &with_password,
        "--database-schema",
        &schema,
    ]);
    let start = serving.log.last().unwrap().clone();
    assert!(
        start.ends_with(&format!(
            "store postgresql {scheme}://{user}@{host}, schema {schema} (durability: the \
             database's)"
        )),
        "{start}"
    );
    // A read, so the node holds a connection when it stops (and closes it, exiting 0).
    assert!(serving.get("/ready").starts_with("HTTP/1.1 200"));
    let log = serving.stop().join("\n");
    assert!(!log.contains(password), "{log}");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn the_access_log_is_off_unless_asked_for() {
    let mut serving = Serving::start(&["--memory"]);
    assert!(serving.get("/health").starts_with("HTTP/1.1 200"));
    let log = serving.stop().join("\n");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains("octostore::access"), "{log}");

    serving = Serving::start(&["--memory", "--access-log"]);
    assert!(serving.get("/health").starts_with("HTTP/1.1 200"));
    let line = serving.line_with("octostore::access");
    for field in [
        "method=GET",
        "route=/health",
        "status=200",
        "duration_ms=",
        "peer=127.0.0.1:",
        "bytes=2",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
    // A path the API does not have is logged as sent.
    assert!(serving.get("/no/such/path").starts_with("HTTP/1.1 404"));
    let line = serving.line_with("octostore::access");
    assert!(line.contains("route=/no/such/path status=404"), "{line}");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let mut serving = Serving::start(&["--memory", "--access-log", "--log-format", "json"]);
    assert!(serving.get("/locks").starts_with("HTTP/1.1 401"));
    serving.line_with("octostore::access");
    let log = serving.stop();
    let events: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let start = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("listening"))
        })
        .unwrap();
    assert_eq!(start["level"], "INFO");
    let message = start["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("octostore {VERSION} listening on http://")),
        "{start}"
    );
    let access = events
        .iter()
        .find(|e| e["target"] == "octostore::access")
        .unwrap();
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["route"], "/locks", "{access}");
    assert_eq!(access["status"], 401, "{access}");
    assert!(access["duration_ms"].is_f64(), "{access}");
    assert!(access["bytes"].is_u64(), "{access}");
}

#[test]
fn a_sign_in_on_a_server_without_github_is_a_404_that_pages_nobody() {
    let serving = Serving::start(&["--memory"]);
    for path in ["/auth/github", "/auth/github/callback?code=c&state=s"] {
        let answer = serving.get(path);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(
            answer.contains("\"code\":\"sign_in_not_configured\""),
            "{answer}"
        );
    }
    // The server still answers, and nothing above INFO was logged for a client's mistake.
    assert!(serving.get("/health").starts_with("HTTP/1.1 200"));
    let log = serving.stop().join("\n");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

#[test]
fn the_web_console_is_served_unless_no_ui() {
    let mut serving = Serving::start(&["--memory"]);
    serving.line_with("web console at http://");
    let page = serving.get("/ui");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'none'"),
        "{page}"
    );
    drop(serving);
    let serving = Serving::start(&["--memory", "--no-ui"]);
    for path in ["/ui", "/ui/js/main.js"] {
        let answer = serving.get(path);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
    assert!(!serving.stop().join("\n").contains("web console"));
}
