//! Running the built binary: on a local file in a temporary directory, or against a server it
//! serves itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test. Its home and state directory are a scratch directory of the build's
/// (`target/tmp`), never the real ones: a command given no store would open the default file,
/// which is in one of them (`/var/lib/octostore` for root, without `XDG_STATE_HOME`).
pub fn octostore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_octostore"));
    for var in [
        "OCTOSTORE_URL",
        "OCTOSTORE_TOKEN",
        "OCTOSTORE_TOKEN_FILE",
        "OCTOSTORE_DB",
        "OCTOSTORE_DATABASE_URL",
        "OCTOSTORE_DATABASE_SCHEMA",
        "OCTOSTORE_DATABASE_CA_FILE",
    ] {
        command.env_remove(var);
    }
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-home");
    command
        .env("XDG_STATE_HOME", home.join("state"))
        .env("HOME", home);
    command
}

/// What one run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// stdout as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout: {:?}; stderr: {:?}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Where the commands of one test run: a local file, or a server.
pub struct Env {
    pub dir: tempfile::TempDir,
    server: Option<(Child, String, PathBuf)>,
}

impl Env {
    /// Commands on a fresh local file.
    pub fn local() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: None,
        }
    }

    /// Commands against a server the binary serves from a fresh file, as user `alice`.
    pub fn remote() -> Self {
        let mut env = Self::local();
        let token = env.run(&["token", "create", "alice"]).expect(0).stdout;
        let token_file = env.dir.path().join("token");
        std::fs::write(&token_file, token.trim()).unwrap();
        let db = env.db();
        env.serve(&["--db".as_ref(), db.as_os_str()], token_file);
        env
    }

    /// Commands against a server that keeps everything in memory, as user `alice`, whose
    /// token the server writes at start (`--write-token`).
    pub fn remote_in_memory() -> Self {
        let mut env = Self::local();
        let token_file = env.dir.path().join("token");
        let write_token = format!("alice={}", token_file.display());
        env.serve(
            &["--memory", "--write-token", &write_token].map(AsRef::as_ref),
            token_file,
        );
        env
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.server.as_ref().expect("a server").1
    }

    fn serve(&mut self, store: &[&std::ffi::OsStr], token_file: PathBuf) {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        let mut child = octostore()
            .args(["serve", "--bind", &bind])
            .args(store)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The server logs "serving" once it listens.
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines();
        assert!(
            lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("serving")),
            "the server did not start"
        );
        std::thread::spawn(move || lines.for_each(drop));
        self.server = Some((child, format!("http://{bind}"), token_file));
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("octostore.db")
    }

    /// The command, pointed at this environment (`--db`, or `--server` with the token file).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = octostore();
        // By environment, not `--db`: an argument after `lock run ... --` would be the child's.
        command.args(args).env("OCTOSTORE_DB", self.db());
        command.env("OCTOSTORE_USER", "alice");
        if let Some((_, url, token_file)) = &self.server {
            command
                .env("OCTOSTORE_URL", url)
                .env("OCTOSTORE_TOKEN_FILE", token_file);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args).output().unwrap())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((child, _, _)) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits, for at most 20 s, until `path` exists and is not empty; its contents.
pub fn wait_for_file(path: &Path) -> String {
    for _ in 0..2000 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

/// A TCP proxy to a server that can be made to swallow every byte both ways while keeping its
/// connections open, as a network gone silent does.
pub struct Proxy {
    url: String,
    silent: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to the server at `url` (`http://HOST:PORT`).
    pub fn to(url: &str) -> Self {
        let upstream = url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let silent = Arc::new(AtomicBool::new(false));
        let accepting = silent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                let server = TcpStream::connect(&upstream).unwrap();
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let silent = accepting.clone();
                    std::thread::spawn(move || pump(from, to, &silent));
                }
            }
        });
        Self { url, silent }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, every byte either way is dropped.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes, dropping the bytes while `silent`.
fn pump(mut from: TcpStream, mut to: TcpStream, silent: &AtomicBool) {
    let mut buffer = [0; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
            Ok(_) if silent.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Whether process `pid` is running (a zombie is not).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

/// Waits, for at most 30 s, for `child` to exit; its output.
pub fn finish(mut child: Child) -> Run {
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the command did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run::of(child.wait_with_output().unwrap())
}
