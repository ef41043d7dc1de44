//! One user cannot stall the others: another user's rate-limit checks, timed one after
//! another over keep-alive HTTP against `octostore serve`, first with the server otherwise
//! idle, then while one user reads the largest history pages there are (100 versions of
//! 64 KiB: 6.4 MB each) in a loop. On a SQLite file and in memory. Prints each phase's
//! median, 99th percentile and longest check, and the pages read. The reading client runs at
//! the server's large reads' priority (`SCHED_IDLE`): on a machine of its own it would not
//! take the server's CPU at all.
//!
//! `cargo bench -p octostore-cli --bench noisy_neighbour`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Versions of the large key: 26 MB, under the default cap of 32 MiB a user.
const VERSIONS: usize = 400;
/// A value of 64 KiB as compact JSON, the largest the server takes.
const VALUE_CHARS: usize = 64 * 1024 - 2;
/// Checks timed in each phase.
const CHECKS: usize = 5_000;
/// Rounds of (idle, loaded), alternating, so both phases see the same machine.
const ROUNDS: usize = 3;
/// The check: more than this loop sends a second, so every check is allowed and counted.
const CHECK: &str = r#"{"max_requests":10000,"window_seconds":1}"#;

/// A server, killed when dropped (also when the bench panics).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One keep-alive connection that sends requests and reads whole answers.
struct Connection {
    reader: BufReader<TcpStream>,
    token: String,
}

impl Connection {
    /// Connects, waiting for a server that is starting.
    fn open(port: u16, token: &str) -> Self {
        let began = Instant::now();
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(e) => assert!(began.elapsed() < Duration::from_secs(60), "{e}"),
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::with_capacity(1 << 20, stream),
            token: token.to_owned(),
        }
    }

    /// Sends `method path` with `body`; the answer's status and body length.
    fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, usize) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, length)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits for the server to write the token file `path`.
fn token(path: &Path) -> String {
    let began = Instant::now();
    loop {
        if let Ok(token) = std::fs::read_to_string(path) {
            if token.ends_with('\n') {
                return token.trim().to_owned();
            }
        }
        assert!(began.elapsed() < Duration::from_secs(60), "no token file");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The checker's phase: `CHECKS` checks, each time taken, sorted.
fn checks(conn: &mut Connection) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..CHECKS)
        .map(|_| {
            let began = Instant::now();
            assert_eq!(conn.send("POST", "/limits/api/check", CHECK).0, 200);
            began.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn summary(times: &[Duration]) -> String {
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    format!(
        "p50 {:>7.2?}  p99 {:>7.2?}  max {:>8.2?}",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    )
}

fn p99(times: &[Duration]) -> Duration {
    times[times.len() * 99 / 100]
}

fn bench(name: &str, store: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (reader_file, checker_file) = (dir.path().join("reader"), dir.path().join("checker"));
    let mut serve = Command::new(env!("CARGO_BIN_EXE_octostore"));
    serve
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(store)
        .arg("--write-token")
        .arg(format!("reader={}", reader_file.display()))
        .arg("--write-token")
        .arg(format!("checker={}", checker_file.display()))
        .current_dir(dir.path())
        .stderr(Stdio::null());
    let _server = Running(serve.spawn().unwrap());
    let (reader_token, checker_token) = (token(&reader_file), token(&checker_file));

    let mut reader = Connection::open(port, &reader_token);
    let value = format!(r#"{{"value":"{}"}}"#, "x".repeat(VALUE_CHARS));
    for _ in 0..VERSIONS {
        assert_eq!(reader.send("PUT", "/config/big", &value).0, 200);
    }
    let mut checker = Connection::open(port, &checker_token);
    for _ in 0..1_000 {
        checker.send(
            "POST",
            "/limits/api/check",
            r#"{"max_requests":1000000000,"window_seconds":60}"#,
        );
    }

    let (mut idle, mut loaded) = (Vec::new(), Vec::new());
    let (pages, bytes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut reading_time = Duration::ZERO;
    for _ in 0..ROUNDS {
        idle.extend(checks(&mut checker));
        let reading = AtomicBool::new(true);
        let began = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                // The reading client stands for one on another machine: here it shares the
                // server's two cores, so it yields them as the server's own readers do.
                // SAFETY: sched_setscheduler reads the parameter it is given.
                unsafe {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(libc::gettid(), libc::SCHED_IDLE, &param)
                };
                let mut page = 0;
                while reading.load(Ordering::Relaxed) {
                    let path = format!("/config/big/history?after={}&limit=100", page * 100);
                    let (status, length) = reader.send("GET", &path, "");
                    assert_eq!(status, 200);
                    pages.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(length, Ordering::Relaxed);
                    page = (page + 1) % (VERSIONS / 100);
                }
            });
            loaded.extend(checks(&mut checker));
            reading.store(false, Ordering::Relaxed);
        });
        reading_time += began.elapsed();
    }
    idle.sort();
    loaded.sort();
    let (pages, bytes) = (pages.into_inner(), bytes.into_inner());
    println!(
        "{name}: another user's rate-limit check, {} each phase",
        idle.len()
    );
    println!("  idle:                     {}", summary(&idle));
    println!("  beside the history pages: {}", summary(&loaded));
    println!(
        "  p99 ratio {:.2}; {pages} pages of 100 versions read meanwhile ({:.1} pages/s, {:.0} MB/s)",
        p99(&loaded).as_secs_f64() / p99(&idle).as_secs_f64(),
        pages as f64 / reading_time.as_secs_f64(),
        bytes as f64 / reading_time.as_secs_f64() / 1e6
    );
}

fn main() {
    bench("SQLite file", &["--db", "octostore.db"]);
    bench("memory", &["--memory"]);
}
