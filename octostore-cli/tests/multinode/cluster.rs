//! Server nodes of the built binary sharing one PostgreSQL schema: what the multi-node tests
//! and the multi-node benchmark stand on.
//!
//! The database is the one `OCTOSTORE_TEST_POSTGRES_URL` names; each cluster gets a fresh
//! schema, dropped (after its nodes are killed) when the cluster is dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use octostore_http::Client;

/// The variable naming the PostgreSQL database of the tests.
pub const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

/// The test database's URL, or `None` (saying so once, past the test harness's capture) when
/// `OCTOSTORE_TEST_POSTGRES_URL` is unset.
pub fn postgres_url() -> Option<String> {
    static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        SKIP_NOTICE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the multi-node tests ({POSTGRES_URL_VAR} is unset)"
            );
        });
    }
    url
}

/// One `octostore serve` process.
struct Node {
    child: Child,
    url: String,
}

/// Server nodes on one fresh schema, and a token of the user `alice`.
pub struct Cluster {
    database_url: String,
    schema: String,
    token: String,
    /// `None` once killed.
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    /// `nodes` servers on a fresh schema of the database at `database_url`, listening on
    /// ports of 127.0.0.1 that the system picks.
    pub fn start(database_url: &str, nodes: usize) -> Self {
        let mut cluster = Self {
            database_url: database_url.to_owned(),
            schema: format!("octostore_nodes_{}", uuid::Uuid::new_v4().simple()),
            token: String::new(),
            nodes: Vec::new(),
        };
        let created = cluster
            .octostore(&["token", "create", "alice"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "{POSTGRES_URL_VAR} is set but token create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
        cluster.nodes = (0..nodes).map(|_| Some(cluster.serve())).collect();
        cluster
    }

    /// The binary, pointed at the cluster's database and schema.
    pub fn octostore(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_octostore"));
        for var in ["OCTOSTORE_URL", "OCTOSTORE_TOKEN", "OCTOSTORE_TOKEN_FILE"] {
            command.env_remove(var);
        }
        command
            .args(args)
            .env("OCTOSTORE_DATABASE_URL", &self.database_url)
            .env("OCTOSTORE_DATABASE_SCHEMA", &self.schema);
        command
    }

    /// Starts a node and waits until it listens.
    fn serve(&self) -> Node {
        let mut child = self
            .octostore(&["serve", "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        // The server logs `octostore VERSION listening on http://127.0.0.1:PORT, store …` once it
        // listens; a server that fails to start closes its stderr, ending the loop.
        let addr = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let addr = line
                .split_once(" listening on http://")
                .and_then(|(_, rest)| rest.split_once(','))
                .map(|(addr, _)| addr.to_owned());
            log.push(line);
            addr
        });
        let Some(addr) = addr else {
            panic!("the node did not start:\n{}", log.join("\n"));
        };
        std::thread::spawn(move || lines.for_each(drop));
        Node {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// The base URL of node `i`.
    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].as_ref().expect("a live node").url
    }

    /// A client of node `i`, as `alice`.
    pub fn client(&self, i: usize) -> Client {
        Client::new(self.url(i), &self.token).unwrap()
    }

    /// Kills node `i` with SIGKILL, as `kill -9` does, and reaps it.
    pub fn kill(&mut self, i: usize) {
        let mut node = self.nodes[i].take().expect("a live node");
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.kill(i);
            }
        }
        let dropped =
            postgres::Client::connect(&self.database_url, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            });
        if let Err(e) = dropped {
            if !std::thread::panicking() {
                panic!("cannot drop the test schema {}: {e}", self.schema);
            }
        }
    }
}
