//! What only a file backend has: reopening, schema versions, fencing across restarts, file
//! modes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use octostore_core::backend::sqlite::faults::Fault;
use octostore_core::values::error::Chain;
use octostore_core::{Api, Durability, Error, LockName, Login, SqliteBackend, Store, Ttl};

fn acquire_and_release(store: &Store, lock: &str) -> u64 {
    let me = store.session(store.local_user(&Login::parse("me").unwrap()).unwrap());
    let name = LockName::parse(lock).unwrap();
    let grant = me.acquire(&name, Ttl::seconds(60).unwrap(), None).unwrap();
    me.release(&name, grant.lease.lease_id).unwrap();
    grant.lease.fencing_token.0
}

#[test]
fn fencing_tokens_keep_growing_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let mut last = 0;
    for durability in [
        Durability::ProcessCrash,
        Durability::PowerLoss,
        Durability::ProcessCrash,
    ] {
        let backend = SqliteBackend::open_with(&path, durability).unwrap();
        assert_eq!(backend.durability(), durability);
        let store = Store::builder().backend(backend).build();
        for _ in 0..3 {
            let token = acquire_and_release(&store, "l");
            assert!(token > last, "{token} after {last}");
            last = token;
        }
    }
}

/// A server and the CLI share a file: a token the server has just authenticated, then revoked
/// or its user renamed by the other process, is judged anew by the server.
#[test]
fn another_processs_token_changes_are_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (server, cli) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
    let user = cli
        .upsert_github_user(42, &Login::parse("octocat").unwrap(), None)
        .unwrap();
    let (revoked, kept) = (
        cli.issue_token(user.id).unwrap(),
        cli.issue_token(user.id).unwrap(),
    );
    for token in [&revoked, &kept] {
        assert_eq!(server.authenticate(token.expose()).unwrap().user(), &user);
    }
    let id = (cli.tokens(user.id).unwrap().into_iter())
        .find(|t| t.hash == octostore_core::TokenHash::of(revoked.expose()))
        .unwrap()
        .id;
    cli.revoke_token(user.id, id).unwrap();
    assert!(matches!(
        server.authenticate(revoked.expose()),
        Err(Error::Unauthorized)
    ));
    cli.upsert_github_user(42, &Login::parse("octo-cat").unwrap(), None)
        .unwrap();
    let session = server.authenticate(kept.expose()).unwrap();
    assert_eq!(session.user().login.as_str(), "octo-cat");
}

/// Inside a group the server reads the other process's writes once, as none can commit while
/// the group's transaction is open; a group begun after the other process's revoke sees it.
#[test]
fn a_revoke_between_groups_is_seen_by_the_next_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let (server, cli) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
    let user = cli.create_user(&Login::parse("octocat").unwrap()).unwrap();
    let token = cli.issue_token(user.id).unwrap();
    let me = server.session(server.local_user(&Login::parse("me").unwrap()).unwrap());
    let lock = LockName::parse("l").unwrap();
    let mut session = None;
    let in_a_group = |session: &mut Option<_>| {
        server
            .group(Instant::now() + Duration::from_secs(60), || {
                // A write first, so the group's transaction is open when the token is judged.
                me.acquire(&lock, Ttl::seconds(60).unwrap(), None).unwrap();
                *session = Some(server.authenticate(token.expose()));
            })
            .unwrap();
    };
    in_a_group(&mut session);
    assert_eq!(session.take().unwrap().unwrap().user(), &user);
    let id = cli.tokens(user.id).unwrap()[0].id;
    cli.revoke_token(user.id, id).unwrap();
    in_a_group(&mut session);
    assert!(matches!(session.unwrap(), Err(Error::Unauthorized)));
}

/// Another process revokes a token the server knows just before the server's group takes
/// the file: the group's first request with that token is refused.
#[test]
fn a_revoke_just_before_a_group_begins_is_seen_by_that_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let backend = SqliteBackend::open(&path).unwrap();
    let faults = backend.faults();
    let (server, cli) = (
        Store::builder().backend(backend).build(),
        Store::open(&path).unwrap(),
    );
    let user = cli.create_user(&Login::parse("octocat").unwrap()).unwrap();
    let token = cli.issue_token(user.id).unwrap();
    let lock = LockName::parse("l").unwrap();
    let mut session = None;
    let in_a_group = |session: &mut Option<_>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        server
            .group(deadline, || {
                let me = server.authenticate(token.expose());
                if let Ok(me) = &me {
                    me.acquire(&lock, Ttl::seconds(60).unwrap(), None).unwrap();
                }
                *session = Some(me);
            })
            .unwrap();
    };
    in_a_group(&mut session);
    assert_eq!(session.take().unwrap().unwrap().user(), &user);
    let id = cli.tokens(user.id).unwrap()[0].id;
    faults.arm(Fault::BeforeBegin(Box::new(move || {
        cli.revoke_token(user.id, id).unwrap()
    })));
    in_a_group(&mut session);
    assert!(matches!(session.unwrap(), Err(Error::Unauthorized)));
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let token = {
        let store = Store::open(&path).unwrap();
        let alice = store.create_user(&Login::parse("alice").unwrap()).unwrap();
        store.issue_token(alice.id).unwrap()
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store
            .authenticate(token.expose())
            .unwrap()
            .user()
            .login
            .as_str(),
        "alice"
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    drop(SqliteBackend::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match SqliteBackend::open(&path) {
        Err(Error::Storage { message, .. }) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn an_empty_file_is_migrated_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    drop(SqliteBackend::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, octostore_core::backend::sqlite::SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    match SqliteBackend::open(&path) {
        Err(e @ Error::Storage { .. }) => {
            // SQLite's own error is kept as the source, and the chain shows it.
            let source = std::error::Error::source(&e).expect("a source");
            assert!(
                source.downcast_ref::<rusqlite::Error>().is_some(),
                "{source:?}"
            );
            let shown = Chain(&e).to_string();
            assert!(shown.contains("junk.db"), "{shown}");
            assert!(shown.contains(&source.to_string()), "{shown}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("junk opened as a database"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'x'; 8192],
        "nothing overwritten"
    );
}

const PRIVATE_DB: &str = "OCTOSTORE_TEST_PRIVATE_DB";

/// A new file and its `-wal` and `-shm` are its owner's alone even under `umask 000`. The
/// umask is the whole process's, so the file is made by a child: this binary, re-run on
/// `child_opens_a_file_under_umask_000`, which checks the three files while it has them open.
#[test]
fn a_new_file_and_its_wal_and_shm_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "sqlite_file::child_opens_a_file_under_umask_000",
        ])
        .env(PRIVATE_DB, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        stdout.contains("CHECKED 3 files"),
        "the child ran: {stdout}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
#[ignore = "a child process of a_new_file_and_its_wal_and_shm_are_owner_only_whatever_the_umask"]
fn child_opens_a_file_under_umask_000() {
    let path = std::env::var(PRIVATE_DB).expect("a child of another test");
    // SAFETY: umask has no preconditions; this process is this test's alone.
    unsafe { libc::umask(0) };
    let store = Store::open(&path).unwrap();
    // A write: the log and its index exist now.
    acquire_and_release(&store, "private");
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
    }
    println!("CHECKED 3 files");
}

/// History pages and lists are read beside the writer: while another connection holds the
/// file's write lock (a CLI's transaction, or the server's writer stalled), they are still
/// answered, where a write would wait for the lock.
#[test]
fn history_and_lists_are_read_while_another_connection_holds_the_write_lock() {
    use octostore_core::{ConfigKey, HistoryPage};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = Store::open(&path).unwrap();
    let alice = store.session(store.local_user(&Login::parse("alice").unwrap()).unwrap());
    let key = ConfigKey::parse("big").unwrap();
    for n in 1..=3 {
        alice.put_config(&key, serde_json::json!(n), None).unwrap();
    }
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM config_versions;")
        .unwrap();

    let (answer, answered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let page = alice.config_history_page(&key, HistoryPage::new(None, Some(2)).unwrap());
        let listed = alice.configs();
        let _ = answer.send((page, listed));
    });
    let (page, listed) = answered
        .recv_timeout(Duration::from_secs(10))
        .expect("reads wait for no write lock");
    let page = page.unwrap();
    assert_eq!(
        page.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2],
        "the last commit, not the other connection's uncommitted delete"
    );
    assert!(page.next.is_some());
    assert_eq!(listed.unwrap()[0].version, 3);
    other.execute_batch("ROLLBACK").unwrap();
}

#[test]
#[cfg(target_os = "linux")]
fn another_processs_commit_to_the_file_is_heard_without_polling() {
    use octostore_core::{Backend, FlagName};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let here = SqliteBackend::open(&path).unwrap();
    let mut listener = here.listen().expect("a file's writes are heard on Linux");
    // The first wait sets the listener up (whatever it hears then).
    listener.wait(Duration::ZERO);
    let there = Store::builder()
        .backend(SqliteBackend::open(&path).unwrap())
        .build();
    let alice = there.session(there.local_user(&Login::parse("alice").unwrap()).unwrap());
    // What was written so far, heard and done with.
    while listener.wait(Duration::ZERO) {}
    alice
        .set_flag(&FlagName::parse("told").unwrap(), true, None)
        .unwrap();
    // Heard, not timed out: a listener that only slept would answer `false` after 30 s.
    assert!(
        listener.wait(Duration::from_secs(30)),
        "the other connection's commit went unheard"
    );
}
