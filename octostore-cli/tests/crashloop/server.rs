//! `octostore serve` as a child process of the test: started on a store, waited for until it
//! answers `/health`, killed with SIGKILL. A [`Server`] is killed when dropped, so no child
//! outlives a failing test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use octostore_http::Client;

/// How long a server may take to listen and answer `/health` (a debug build, on a machine
/// shared with other builds).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The variable naming the PostgreSQL database of the tests.
pub const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

/// The test database's URL, or `None` when `OCTOSTORE_TEST_POSTGRES_URL` is unset (the test
/// then says it was skipped).
pub fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("SKIPPED: {test} ({POSTGRES_URL_VAR} is unset)");
    }
    url
}

/// Where the servers keep their data.
pub enum Storage {
    /// A SQLite file, in the default durability (`ProcessCrash`).
    File(PathBuf),
    /// A fresh schema of a PostgreSQL database, dropped when this is dropped.
    Postgres { url: String, schema: String },
}

impl Storage {
    /// A fresh schema of the database at `url`.
    pub fn postgres(url: &str) -> Self {
        Storage::Postgres {
            url: url.to_owned(),
            schema: format!("octostore_crash_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The binary with `args`, pointed at this storage and at nothing else: the test's own
    /// `OCTOSTORE_*` and `RUST_LOG` variables are not passed on.
    pub fn octostore(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_octostore"));
        for (name, _) in std::env::vars_os() {
            let inherited = name.to_string_lossy();
            if inherited.starts_with("OCTOSTORE_") || inherited == "RUST_LOG" {
                command.env_remove(&name);
            }
        }
        command.args(args).stdin(Stdio::null());
        match self {
            Storage::File(path) => command.env("OCTOSTORE_DB", path),
            Storage::Postgres { url, schema } => command
                .env("OCTOSTORE_DATABASE_URL", url)
                .env("OCTOSTORE_DATABASE_SCHEMA", schema),
        };
        command
    }

    /// A new token of the local user `login`, made by `octostore token create`.
    pub fn token(&self, login: &str) -> String {
        let created = self
            .octostore(&["token", "create", login])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        String::from_utf8(created.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let Storage::Postgres { url, schema } = self else {
            return;
        };
        let dropped = postgres::Client::connect(url, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")));
        if let Err(e) = dropped {
            if !thread::panicking() {
                panic!("cannot drop the test schema {schema}: {e}");
            }
        }
    }
}

/// A running `octostore serve`, killed (SIGKILL) and reaped when dropped.
pub struct Server {
    child: Child,
    url: String,
    /// Every line the server wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `octostore serve` on `storage`, on a port of 127.0.0.1 that the system picks,
    /// logging at `rust_log` (with `--access-log` if `access_log`), and returns once it
    /// answers `GET /health`.
    pub fn start(storage: &Storage, rust_log: &str, access_log: bool) -> Self {
        let serve = ["serve", "--bind", "127.0.0.1:0", "--access-log"];
        let mut child = storage
            .octostore(&serve[..if access_log { 4 } else { 3 }])
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            thread::spawn(move || {
                // The server logs `octostore VERSION listening on http://127.0.0.1:PORT, store …`
                // once it listens. The reader keeps the pipe drained until the server dies and
                // closes it.
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line
                        .split_once(" listening on http://")
                        .and_then(|(_, rest)| rest.split_once(','))
                        .map(|(addr, _)| addr.to_owned())
                    {
                        let _ = addr_tx.send(addr);
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let mut server = Server {
            child,
            url: String::new(),
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + START_DEADLINE;
        // An error here is a timeout, or a server that exited (its stderr closed).
        let Ok(addr) = addr_rx.recv_timeout(START_DEADLINE) else {
            panic!("the server did not start:\n{}", server.log().join("\n"));
        };
        server.url = format!("http://{addr}");
        let probe = Client::builder(&server.url, "octo_health")
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        while let Err(e) = probe.health() {
            assert!(
                Instant::now() < deadline,
                "the server never answered /health: {e}\n{}",
                server.log().join("\n")
            );
            thread::sleep(Duration::from_millis(2));
        }
        server
    }

    /// A client of this server, as the user of `token`.
    pub fn client(&self, token: &str) -> Client {
        Client::builder(&self.url, token)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Kills the server with SIGKILL, as `kill -9` does, and reaps it; returns everything it
    /// wrote to stderr.
    pub fn kill(mut self) -> Vec<String> {
        self.stop();
        self.log()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
