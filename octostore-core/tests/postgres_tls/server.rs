//! A PostgreSQL server of the test's own, from the installed binaries: a fresh cluster in a
//! temporary directory, trust auth, TLS on with a certificate for `localhost` alone signed by
//! a CA made here, listening on a free port of 127.0.0.1. Stopped when dropped, also when a
//! test panics. PostgreSQL refuses to run as root: as root (CI), it runs as the `postgres`
//! user, which then owns the directory.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// How long the server may take to start or to stop.
const STARTUP: Duration = Duration::from_secs(60);
const SHUTDOWN: Duration = Duration::from_secs(20);

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`, `pg_isready`):
/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`; `None` if not installed.
pub fn server_binaries() -> Option<PathBuf> {
    let has_server = |dir: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| has_server(dir)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// A running server; killed when dropped.
pub struct TlsServer {
    pub port: u16,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// Makes a cluster with programs from `bin` and starts it, ready for connections.
    pub fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ca_file = root.join("ca.pem");
        let (cert_file, key_file) = (root.join("server.crt"), root.join("server.key"));
        write_certificates(&ca_file, &cert_file, &key_file);
        let data = root.join("data");
        let log = root.join("postgres.log");
        File::create(&log).unwrap();
        if as_root() {
            give_to_postgres_user(root);
        }
        run(as_server_user(&bin.join("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("--pgdata")
            .arg(&data));
        let port = free_port();
        let child = as_server_user(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("unix_socket_directories={}", root.display())])
            .args(["-c", "ssl=on"])
            .args(["-c", &format!("ssl_cert_file={}", cert_file.display())])
            .args(["-c", &format!("ssl_key_file={}", key_file.display())])
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("start postgres");
        let mut server = TlsServer {
            port,
            ca_file,
            child,
            log,
            _dir: dir,
        };
        server.wait_ready(bin);
        server
    }

    /// Polls `pg_isready` until the server accepts connections; fails with its log if it
    /// exits or is not ready within [`STARTUP`].
    fn wait_ready(&mut self, bin: &Path) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("postgres exited ({status}) while starting:\n{}", self.log());
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready within {STARTUP:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsServer {
    /// A fast shutdown (SIGINT: sessions ended, then the server), killed if it lingers.
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our child, not yet reaped (so not reused).
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + SHUTDOWN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, and a server certificate for `localhost` (no IP address) that it signed.
fn write_certificates(ca_file: &Path, cert_file: &Path, key_file: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "octostore test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();

    std::fs::write(ca_file, ca_cert.pem()).unwrap();
    std::fs::write(cert_file, server_cert.pem()).unwrap();
    std::fs::write(key_file, server_key.serialize_pem()).unwrap();
    // PostgreSQL refuses a key that others may read.
    std::fs::set_permissions(key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn as_root() -> bool {
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, run as the `postgres` user when the test runs as root.
fn as_server_user(program: &Path) -> Command {
    if !as_root() {
        return Command::new(program);
    }
    // `setpriv` execs the program itself, so the child's id is the server's.
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
    command
}

/// `dir` and everything in it owned by the `postgres` user.
fn give_to_postgres_user(dir: &Path) {
    run(Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir));
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port of 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
