//! How long `octostore serve` takes to answer on a SQLite file that holds 1 000 000 objects
//! (500 000 live locks, 250 000 rate limits, 250 000 config keys, over 2 000 users): from the
//! spawn to the first /health answer, and to the first authenticated lock acquire. Then, each
//! beside a client acquiring and releasing a lock in a loop, a count of the live locks (what
//! `/metrics` shows) in one transaction and in batches, and a sweep of that file: how long
//! each takes and the longest the client waits meanwhile.
//!
//! `cargo bench -p octostore-cli --bench startup`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use octostore_core::{
    Api, ConfigKey, LimitName, LockName, Login, Quotas, RatePolicy, Settings, Store, Ttl,
};

const USERS: usize = 2000;
const LOCKS: usize = 500_000;
const LIMITS: usize = 250_000;
const CONFIGS: usize = 250_000;
const STARTS: usize = 5;

fn fill(path: &Path) -> String {
    let unlimited = Quotas {
        locks: LOCKS,
        limits: LIMITS,
        flags: 1,
        configs: CONFIGS,
    };
    let backend = octostore_core::SqliteBackend::open(path).unwrap();
    let store = Store::builder()
        .backend(backend)
        .settings(Settings {
            quotas: unlimited,
            ..Settings::default()
        })
        .build();
    let users: Vec<_> = (0..USERS)
        .map(|i| {
            let user = store.local_user(&Login::parse(&format!("user{i}")).unwrap());
            store.session(user.unwrap())
        })
        .collect();
    let token = store.issue_token(users[0].user().id).unwrap();
    let (ttl, policy) = (
        Ttl::seconds(3600).unwrap(),
        RatePolicy::new(10_000, 60).unwrap(),
    );
    for chunk in 0..1000 {
        store
            .group(Instant::now() + Duration::from_secs(60), || {
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    let me = &users[i % USERS];
                    if i < LOCKS {
                        let name = LockName::parse(&format!("lock-{i}")).unwrap();
                        me.acquire(&name, ttl, None).unwrap();
                    } else if i < LOCKS + LIMITS {
                        let name = LimitName::parse(&format!("limit-{i}")).unwrap();
                        me.check(&name, policy).unwrap();
                    } else {
                        let key = ConfigKey::parse(&format!("key-{i}")).unwrap();
                        me.put_config(&key, serde_json::json!({ "n": i }), None)
                            .unwrap();
                    }
                }
            })
            .unwrap();
    }
    token.expose().to_owned()
}

/// A server, killed when dropped (also when the bench panics).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends one request on a new connection; whether the answer is 200.
fn ok(port: u16, request: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octostore.db");
    let filling = Instant::now();
    let token = fill(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "filled {} objects in {:.1?} ({} MB on disk)",
        LOCKS + LIMITS + CONFIGS,
        filling.elapsed(),
        size >> 20
    );
    let (mut to_health, mut to_acquire) = (Vec::new(), Vec::new());
    for start in 0..STARTS {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let began = Instant::now();
        let _server = Running(
            Command::new(env!("CARGO_BIN_EXE_octostore"))
                .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--db"])
                .arg(&path)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let health = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        while !ok(port, health) {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "no answer in 60 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        to_health.push(began.elapsed());
        let body = r#"{"ttl_seconds":5}"#;
        let acquire = format!(
            "POST /locks/startup-{start}/acquire HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(ok(port, &acquire), "the first acquire failed");
        to_acquire.push(began.elapsed());
    }
    beside_a_client(&path, &token, |store| {
        let all = NonZeroUsize::MAX;
        let live = store.live_lease_count_in_batches(all).unwrap();
        format!("live lock count in one transaction ({live} live)")
    });
    beside_a_client(&path, &token, |store| {
        let live = store.live_lease_count().unwrap();
        format!("live lock count in batches ({live} live)")
    });
    beside_a_client(&path, &token, |store| {
        let swept = store.sweep().unwrap();
        format!(
            "sweep of 1 000 000 objects ({} leases, {} limits deleted)",
            swept.leases, swept.limits
        )
    });
    to_health.sort();
    to_acquire.sort();
    println!(
        "serve on 1 000 000 objects, {STARTS} starts: first /health answer median {:.1?} \
         (max {:.1?}), first lock acquire median {:.1?} (max {:.1?})",
        to_health[STARTS / 2],
        to_health[STARTS - 1],
        to_acquire[STARTS / 2],
        to_acquire[STARTS - 1]
    );
}

/// Runs `work` on the file while another thread acquires and releases a lock in a loop on the
/// same store, and prints what `work` says, its time and the client's longest cycle meanwhile.
fn beside_a_client(path: &Path, token: &str, work: impl FnOnce(&Store) -> String + Send) {
    let backend = octostore_core::SqliteBackend::open(path).unwrap();
    let store = Store::builder().backend(backend).build();
    let me = store.authenticate(token).unwrap();
    let (name, ttl) = (
        LockName::parse("beside-the-sweep").unwrap(),
        Ttl::seconds(5).unwrap(),
    );
    let working = AtomicBool::new(true);
    std::thread::scope(|s| {
        let work = s.spawn(|| {
            let began = Instant::now();
            let said = work(&store);
            working.store(false, Ordering::Relaxed);
            (began.elapsed(), said)
        });
        let (mut cycles, mut longest) = (0, Duration::ZERO);
        while working.load(Ordering::Relaxed) {
            let began = Instant::now();
            let grant = me.acquire(&name, ttl, None).unwrap();
            me.release(&name, grant.lease.lease_id).unwrap();
            longest = longest.max(began.elapsed());
            cycles += 1;
        }
        let (took, said) = work.join().unwrap();
        println!("{said}: {took:.1?}; {cycles} lock cycles beside it, the longest {longest:.1?}");
    });
}
