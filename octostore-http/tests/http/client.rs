//! The remote [`Client`] against the embedded store: one scenario over every operation, run
//! through a `Session` and through a `Client` on a real server with the same settings and
//! clock, must give the same transcript. Then what only the client has: token rotation,
//! percent-encoded names, a fresh client listing its leases, and servers that are not there.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use octostore_core::{
    Api, ClientId, ConfigKey, Description, Error, EventFilter, EventKind, FlagName, HistoryPage,
    Kinds, LeaseId, LimitName, LimitSummary, LockName, LockPage, LockStatus, Login, ManualClock,
    Percentage, Quotas, RatePolicy, Result, Settings, Store, Subject, Ttl,
};
use octostore_http::{Client, ServerOptions};
use serde_json::json;

use crate::support::Server;

/// Small quotas and bounds, so the scenario reaches each of them.
fn settings() -> Settings {
    Settings {
        quotas: Quotas {
            locks: 2,
            limits: 2,
            flags: 2,
            configs: 2,
        },
        config_history: 3,
        config_value_max_bytes: 64,
        config_bytes_per_user: 150,
        ..Settings::default()
    }
}

/// The results of a scenario, one line per step.
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    fn record<T: Debug>(&mut self, step: &str, result: &Result<T>) {
        self.lines.push(format!("{step} => {result:?}"));
    }

    /// The lines with each lease id (the only UUIDs in them, and random) replaced by its
    /// order of first appearance.
    fn normalized(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        self.lines
            .iter()
            .map(|line| {
                let mut out = String::new();
                let mut rest = line.as_str();
                while let Some(at) = find_uuid(rest) {
                    out.push_str(&rest[..at]);
                    let id = rest[at..at + 36].to_owned();
                    let n = match seen.iter().position(|s| *s == id) {
                        Some(n) => n,
                        None => {
                            seen.push(id);
                            seen.len() - 1
                        }
                    };
                    out.push_str(&format!("<lease {n}>"));
                    rest = &rest[at + 36..];
                }
                out.push_str(rest);
                out
            })
            .collect()
    }
}

/// Where the first hyphenated UUID in `text` starts.
fn find_uuid(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(35)).find(|&i| {
        bytes[i..i + 36].iter().enumerate().all(|(j, b)| match j {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    })
}

/// A limit summary without `retry_after_seconds`: the wire's list entry (`LimitInfo`) does
/// not carry it, so a remote list always says `None` where the embedded one may say how long
/// an exhausted limit waits. The count, `allowed`, `remaining` and `reset_at` are compared.
fn without_retry_after(mut summaries: Vec<LimitSummary>) -> Vec<LimitSummary> {
    for summary in &mut summaries {
        summary.decision.retry_after_seconds = None;
    }
    summaries
}

fn lock(name: &str) -> LockName {
    LockName::parse(name).unwrap()
}
fn limit(name: &str) -> LimitName {
    LimitName::parse(name).unwrap()
}
fn flag(name: &str) -> FlagName {
    FlagName::parse(name).unwrap()
}
fn key(name: &str) -> ConfigKey {
    ConfigKey::parse(name).unwrap()
}
fn ttl(seconds: i64) -> Ttl {
    Ttl::seconds(seconds).unwrap()
}
fn policy(max: i64, window: i64) -> RatePolicy {
    RatePolicy::new(max, window).unwrap()
}
fn percent(p: i64) -> Percentage {
    Percentage::new(p).unwrap()
}
fn subject(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

/// Every operation, with its errors, as alice and bob on a store with [`settings`] whose clock
/// `advance` moves.
fn scenario(alice: &impl Api, bob: &impl Api, advance: &dyn Fn(i64)) -> Transcript {
    let mut t = Transcript::default();

    // Invalid values are refused before any operation, whatever the `Api`.
    t.record("ttl 0", &Ttl::seconds(0));
    t.record("ttl 3601", &Ttl::seconds(3601));
    t.record("lock name with a space", &LockName::parse("a b"));
    t.record("policy of 0 requests", &RatePolicy::new(0, 60));
    t.record("percentage 101", &Percentage::new(101));
    t.record("description of 501", &Description::new("d".repeat(501)));

    // Locks.
    let deploy = lock("deploy");
    let worker = ClientId::parse("worker-1").unwrap();
    let first = alice.acquire(&deploy, ttl(30), Some(&worker));
    t.record("alice acquires deploy as worker-1", &first);
    let lease = first.unwrap().lease.lease_id;
    t.record(
        "alice acquires again as worker-1",
        &alice.acquire(&deploy, ttl(30), Some(&worker)),
    );
    t.record(
        "alice acquires as no client",
        &alice.acquire(&deploy, ttl(30), None),
    );
    t.record("bob acquires", &bob.acquire(&deploy, ttl(30), None));
    t.record("bob asks the status", &bob.lock_status(&deploy));
    advance(10);
    t.record("alice renews", &alice.renew(&deploy, lease, ttl(60)));
    t.record(
        "bob renews alice's lease",
        &bob.renew(&deploy, lease, ttl(60)),
    );
    t.record("bob releases alice's lease", &bob.release(&deploy, lease));
    t.record(
        "alice releases another lease id",
        &alice.release(&deploy, LeaseId(uuid::Uuid::nil())),
    );
    t.record("alice's locks", &alice.locks());
    t.record("bob's locks", &bob.locks());
    advance(60);
    t.record("status once expired", &alice.lock_status(&deploy));
    t.record(
        "alice renews once expired",
        &alice.renew(&deploy, lease, ttl(60)),
    );
    let second = bob.acquire(&deploy, ttl(5), None);
    t.record("bob acquires once expired", &second);
    let bob_lease = second.unwrap().lease.lease_id;
    t.record("bob releases", &bob.release(&deploy, bob_lease));
    t.record("bob releases again", &bob.release(&deploy, bob_lease));
    t.record("status once released", &bob.lock_status(&deploy));
    t.record("never held", &bob.lock_status(&lock("never")));
    t.record("q1", &alice.acquire(&lock("q1"), ttl(5), None));
    t.record("q2", &alice.acquire(&lock("q2"), ttl(5), None));
    t.record(
        "q3 over the quota",
        &alice.acquire(&lock("q3"), ttl(5), None),
    );
    t.record("alice's locks at the quota", &alice.locks());
    let bobs = bob.acquire(&lock("b-held"), ttl(5), None);
    t.record("bob acquires b-held", &bobs);
    let first_two = LockPage::new(None, Some(2)).unwrap();
    let page = bob.all_locks(&first_two);
    t.record("every user's locks by 2", &page);
    let next = page.ok().and_then(|p| p.next).unwrap_or_default();
    t.record("and the next page", &alice.all_locks(&next));
    t.record("every user's locks", &alice.all_locks(&LockPage::default()));
    advance(5);
    t.record(
        "q3 once q1 and q2 expired",
        &alice.acquire(&lock("q3"), ttl(5), None),
    );

    // Rate limits.
    let emails = limit("emails");
    for i in 1..=3 {
        t.record(&format!("check {i}"), &alice.check(&emails, policy(2, 60)));
    }
    t.record("status when exhausted", &alice.limit_status(&emails));
    t.record("alice's limits", &alice.limits().map(without_retry_after));
    t.record("bob's status of alice's limit", &bob.limit_status(&emails));
    t.record("unknown limit", &alice.limit_status(&limit("unknown")));
    advance(30);
    t.record(
        "check half a window later",
        &alice.check(&emails, policy(2, 60)),
    );
    advance(31);
    t.record("check a window later", &alice.check(&emails, policy(2, 60)));
    t.record(
        "check with a new policy",
        &alice.check(&emails, policy(5, 10)),
    );
    t.record("reset", &alice.reset_limit(&emails));
    t.record("reset again", &alice.reset_limit(&emails));
    t.record("status once reset", &alice.limit_status(&emails));
    let spaced = limit("api calls/min");
    let unicode = limit("ünïcødé ✓ 100%");
    t.record("spaced name", &alice.check(&spaced, policy(10, 60)));
    t.record("unicode name", &alice.check(&unicode, policy(10, 60)));
    t.record(
        "a third over the quota",
        &alice.check(&limit("third"), policy(10, 60)),
    );
    t.record("status of the spaced name", &alice.limit_status(&spaced));
    t.record(
        "alice's limits at the quota",
        &alice.limits().map(without_retry_after),
    );
    t.record("bob's limits", &bob.limits());

    // Feature flags.
    let checkout = flag("new-checkout");
    t.record(
        "set at 50%",
        &alice.set_flag(&checkout, true, Some(percent(50))),
    );
    for who in ["user-1", "user-2", "user-3", "user 4 & co/ü?#=+", "user-5"] {
        t.record(
            &format!("evaluate for {who}"),
            &alice.evaluate_flag(&checkout, Some(&subject(who))),
        );
    }
    t.record(
        "evaluate for the caller",
        &alice.evaluate_flag(&checkout, None),
    );
    t.record(
        "bob evaluates alice's flag",
        &bob.evaluate_flag(&checkout, None),
    );
    advance(1);
    t.record("turn off", &alice.set_flag(&checkout, false, None));
    t.record(
        "evaluate once off",
        &alice.evaluate_flag(&checkout, Some(&subject("user-1"))),
    );
    t.record("set a second", &alice.set_flag(&flag("second"), true, None));
    t.record(
        "a third over the quota",
        &alice.set_flag(&flag("third"), true, None),
    );
    t.record("alice's flags", &alice.flags());
    t.record("delete", &alice.delete_flag(&checkout));
    t.record("delete again", &alice.delete_flag(&checkout));
    t.record(
        "evaluate once deleted",
        &alice.evaluate_flag(&checkout, None),
    );
    t.record(
        "bob deletes alice's flag",
        &bob.delete_flag(&flag("second")),
    );

    // Config.
    let pool = key("db.pool_size");
    let described = Some(Description::new("connections per worker").unwrap());
    t.record("put 10", &alice.put_config(&pool, json!(10), described));
    advance(1);
    t.record(
        "put 20 keeping the description",
        &alice.put_config(&pool, json!(20), None),
    );
    advance(1);
    t.record(
        "put 30 clearing it",
        &alice.put_config(&pool, json!(30), Some(Description::new("").unwrap())),
    );
    advance(1);
    t.record(
        "put an object",
        &alice.put_config(&pool, json!({"min": 1, "max": [2, null, "ü"]}), None),
    );
    t.record("latest", &alice.get_config(&pool, None));
    t.record("version 2", &alice.get_config(&pool, Some(2)));
    for version in [1, 0, -1, 99] {
        t.record(
            &format!("version {version}"),
            &alice.get_config(&pool, Some(version)),
        );
    }
    t.record("history", &alice.config_history(&pool));
    let first = alice.config_history_page(&pool, HistoryPage::new(None, Some(2)).unwrap());
    t.record("history's first page of 2", &first);
    let next = first.ok().and_then(|page| page.next).unwrap();
    t.record(
        "history's next page",
        &alice.config_history_page(&pool, next),
    );
    t.record(
        "too large",
        &alice.put_config(&pool, json!("x".repeat(100)), None),
    );
    t.record("unknown key", &alice.get_config(&key("nope"), None));
    t.record(
        "a version of an unknown key",
        &alice.get_config(&key("nope"), Some(1)),
    );
    t.record(
        "history of an unknown key",
        &alice.config_history(&key("nope")),
    );
    t.record("bob reads alice's key", &bob.get_config(&pool, None));
    let bobs = key("bobs");
    for if_version in [Some(1), Some(0), Some(0), Some(2), Some(1)] {
        t.record(
            &format!("bob puts expecting version {if_version:?}"),
            &bob.put_config_if(&bobs, json!(if_version), None, if_version),
        );
    }
    for (from, to) in [(1, 2), (2, 1), (2, 2), (0, 1), (1, 9)] {
        t.record(
            &format!("bob's diff from {from} to {to}"),
            &bob.diff_config(&bobs, from, to),
        );
    }
    for (version, if_version) in [(1, None), (2, Some(2)), (0, None), (9, None), (2, Some(3))] {
        t.record(
            &format!("bob rolls back to {version} expecting {if_version:?}"),
            &bob.rollback_config(&bobs, version, if_version),
        );
    }
    t.record("bob deletes his key", &bob.delete_config(&bobs));
    t.record("bob's deleted keys", &bob.deleted_configs());
    t.record("bob's keys once deleted", &bob.configs());
    t.record("bob reads it deleted", &bob.get_config(&bobs, None));
    t.record("bob undeletes it", &bob.undelete_config(&bobs));
    t.record("bob undeletes it again", &bob.undelete_config(&bobs));
    t.record("bob purges it", &bob.purge_config(&bobs));
    t.record("bob undeletes it purged", &bob.undelete_config(&bobs));
    t.record("bob purges it again", &bob.purge_config(&bobs));
    let port = json!({ "type": "integer", "maximum": 65535 });
    t.record("bob's key has no schema", &bob.config_schema(&bobs));
    t.record(
        "bob sets a schema",
        &bob.set_config_schema(&bobs, port.clone(), false),
    );
    t.record("bob reads it", &bob.config_schema(&bobs));
    t.record(
        "bob puts what it refuses",
        &bob.put_config(&bobs, json!(70000), None),
    );
    t.record(
        "bob puts what it takes",
        &bob.put_config(&bobs, json!(443), None),
    );
    t.record(
        "bob sets a schema his value breaks",
        &bob.set_config_schema(&bobs, json!({ "type": "string" }), false),
    );
    t.record(
        "bob sets a schema that is none",
        &bob.set_config_schema(&bobs, json!({ "type": 5 }), false),
    );
    t.record("bob deletes the schema", &bob.delete_config_schema(&bobs));
    t.record("bob deletes it again", &bob.delete_config_schema(&bobs));
    t.record("bob purges his key", &bob.purge_config(&bobs));
    t.record(
        "a second key",
        &alice.put_config(&key("b"), json!(null), None),
    );
    t.record(
        "a third over the quota",
        &alice.put_config(&key("c"), json!(true), None),
    );
    t.record("alice's keys", &alice.configs());
    t.record("delete", &alice.delete_config(&pool));
    t.record("delete again", &alice.delete_config(&pool));
    t.record("history once deleted", &alice.config_history(&pool));
    t.record(
        "the third once there is room",
        &alice.put_config(&key("c"), json!("ok"), None),
    );
    t.record("bob's keys", &bob.configs());
    for n in 1..=3 {
        // 60 bytes each: the third would keep 184 bytes in all.
        t.record(
            &format!("a large value, {n}"),
            &alice.put_config(&key("b"), json!("x".repeat(58)), None),
        );
    }

    // The change log.
    let all = EventFilter::default();
    t.record("alice's events", &alice.events(0, &all, 1000));
    t.record("bob's events", &bob.events(0, &all, 1000));
    let flags_and_configs = Kinds::of([EventKind::Flag, EventKind::Config]);
    let db = EventFilter::new(flags_and_configs, "db").unwrap();
    let page = alice.events(3, &db, 2);
    t.record("alice's db flags and configs from 3 by 2", &page);
    let next = page.map(|p| p.next).unwrap_or(0);
    t.record("and the next page", &alice.events(next, &db, 2));
    t.record("a page of 0", &alice.events(0, &all, 0));
    t.record("an index past the log", &alice.events(1_000_000, &all, 10));
    t
}

#[test]
fn the_client_answers_exactly_as_the_embedded_store() {
    let clock = Arc::new(ManualClock::default());
    let store = Store::builder()
        .clock(clock.clone())
        .settings(settings())
        .build();
    let user = |login: &str| store.local_user(&Login::parse(login).unwrap()).unwrap();
    let embedded = scenario(
        &store.session(user("alice")),
        &store.session(user("bob")),
        &|s| clock.advance(Duration::seconds(s)),
    );

    let server = Server::start_with(settings(), ServerOptions::default());
    let alice = Client::new(server.url(""), server.token("alice")).unwrap();
    let bob = Client::new(server.url(""), server.token("bob")).unwrap();
    let remote = scenario(&alice, &bob, &|s| server.advance(Duration::seconds(s)));

    let (embedded, remote) = (embedded.normalized(), remote.normalized());
    assert_eq!(embedded.len(), remote.len());
    for (e, r) in embedded.iter().zip(&remote) {
        assert_eq!(e, r, "embedded and remote differ");
    }
    // The scenario reached every kind of answer.
    let all = embedded.join("\n");
    for expected in [
        "Ok(LockGrant { status: Acquired",
        "Ok(LockGrant { status: Held",
        "Err(LockHeld {",
        "Err(NotFound { what: Lock",
        "Err(NotFound { what: Limit",
        "Err(NotFound { what: Flag",
        "Err(NotFound { what: Config,",
        "Err(NotFound { what: ConfigVersion",
        "Err(QuotaExceeded { what: Lock, limit: 2 })",
        "Err(QuotaExceeded { what: Limit, limit: 2 })",
        "Err(QuotaExceeded { what: Flag, limit: 2 })",
        "Err(QuotaExceeded { what: Config, limit: 2 })",
        "Err(QuotaExceeded { what: ConfigBytes, limit: 150 })",
        "next: Some(HistoryPage { after: 3, limit: 2 })",
        "next: Some(LockPage { after: Some(\"q1\"), limit: 2 })",
        "name: \"b-held\", holder: \"bob\"",
        "next: None",
        "Err(TooLarge { field: \"value\", size: 102, limit: 64 })",
        "Err(Invalid { field: \"ttl_seconds\"",
        "Ok(Available)",
        "retry_after_seconds: Some(",
        "allowed: false",
        "change: LockExpired(",
        "change: FlagSet {",
        "change: ConfigPut {",
        "change: LimitReset {",
        "resync: true",
        "Err(Invalid { field: \"limit\"",
    ] {
        assert!(all.contains(expected), "no {expected:?} in\n{all}");
    }
}

#[test]
fn rotating_through_the_client_retires_the_old_token() {
    let server = Server::start();
    let old = server.token("alice");
    let client = Client::new(server.url(""), old.clone()).unwrap();
    assert_eq!(client.token(), old);
    client.set_flag(&flag("f"), true, None).unwrap();

    let new = client.rotate_token().unwrap();
    assert_ne!(new, old);
    assert!(new.starts_with("octo_"));
    assert_eq!(client.token(), new);
    // The same client goes on, as the same user, with the new token.
    assert!(client.evaluate_flag(&flag("f"), None).unwrap());

    let stale = Client::new(server.url(""), old.clone()).unwrap();
    assert!(matches!(stale.flags(), Err(Error::Unauthorized)));
    assert!(matches!(stale.rotate_token(), Err(Error::Unauthorized)));
    let made_up = Client::new(server.url(""), "octo_made_up").unwrap();
    assert!(matches!(
        made_up.check(&limit("x"), policy(1, 1)),
        Err(Error::Unauthorized)
    ));

    // No token in Debug output.
    for shown in [format!("{client:?}"), format!("{stale:?}")] {
        assert!(!shown.contains(&old) && !shown.contains(&new), "{shown}");
    }
}

#[test]
fn names_that_need_percent_encoding_round_trip() {
    let server = Server::start();
    let client = Client::new(server.url(""), server.token("alice")).unwrap();
    let names = [
        "api calls/min",
        "ünïcødé ✓",
        "100%",
        "%2F",
        "a?b#c&d=e",
        "+plus+",
        "...",
        "a/../b",
        "./x",
        "~tilde",
        "emoji 🦀",
        "back\\slash \"quoted\" 'single' <tag>",
    ];
    for (i, name) in names.iter().enumerate() {
        let name = limit(name);
        let max = i as i64 + 2;
        assert!(client.check(&name, policy(max, 60)).unwrap().allowed);
        let status = client.limit_status(&name).unwrap();
        assert_eq!(status.remaining, max as u32 - 1, "{name}");
    }
    let listed: Vec<String> = client
        .limits()
        .unwrap()
        .iter()
        .map(|l| l.name.to_string())
        .collect();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for name in names {
        client.reset_limit(&limit(name)).unwrap();
    }
    assert!(client.limits().unwrap().is_empty());

    // A subject travels in the query string: the server buckets exactly the subject sent.
    let f = flag("rollout");
    let set = client.set_flag(&f, true, Some(percent(50))).unwrap();
    for who in [
        "a b", "a+b", "a&b=c", "ü/ß?#", "%20", "🦀", "x;y,z", "line'\"", "", "+", "=",
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .map(|s| subject(s))
    {
        assert_eq!(
            client.evaluate_flag(&f, Some(&who)).unwrap(),
            octostore_core::flag_bucket(&f, &who) <= set.percentage.unwrap().get(),
            "{who}"
        );
    }

    // A config key of dots only, and with dots inside.
    for k in ["...", "a..b", ".hidden", "trailing."] {
        let k = key(k);
        client.put_config(&k, json!(k.as_str()), None).unwrap();
        assert_eq!(
            client.get_config(&k, None).unwrap().value,
            json!(k.as_str())
        );
    }

    // "." and ".." are valid names no URL path can carry: refused, not sent elsewhere.
    for name in [".", ".."] {
        assert!(matches!(
            client.check(&limit(name), policy(1, 60)),
            Err(Error::Invalid { field: "name", .. })
        ));
        assert!(matches!(
            client.get_config(&key(name), None),
            Err(Error::Invalid { field: "key", .. })
        ));
    }
}

#[test]
fn a_fresh_client_lists_its_leases_with_their_holder() {
    let server = Server::start();
    let first = Client::new(server.url(""), server.token("alice")).unwrap();
    first.acquire(&lock("a"), ttl(60), None).unwrap();
    first
        .acquire(&lock("b"), ttl(60), Some(&ClientId::parse("w:1").unwrap()))
        .unwrap();
    // Another of alice's tokens: this client has seen no answer naming her yet.
    let fresh = Client::new(server.url(""), server.token("alice")).unwrap();
    let leases = fresh.locks().unwrap();
    assert_eq!(leases, first.locks().unwrap());
    assert_eq!(leases.len(), 2);
    assert!(leases.iter().all(|l| l.holder.as_str() == "alice"));
    let status = fresh.lock_status(&lock("a")).unwrap();
    assert!(matches!(status, LockStatus::Held(l) if l == leases[0]));
    // Nobody's leases: an empty list.
    let bob = Client::new(server.url(""), server.token("bob")).unwrap();
    assert!(bob.locks().unwrap().is_empty());
}

#[test]
fn health_answers_without_a_token() {
    let server = Server::start();
    Client::new(server.url(""), "octo_not_a_token")
        .unwrap()
        .health()
        .unwrap();
}

fn remote_message(result: Result<impl Debug>) -> String {
    match result {
        Err(Error::Remote { message, .. }) => message,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn a_server_that_is_not_there_is_unreachable() {
    // A port that was free a moment ago, and that nothing listens on now.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let token = "octo_secret_never_shown";
    let client = Client::new(format!("http://127.0.0.1:{port}"), token).unwrap();
    for message in [
        remote_message(client.health()),
        remote_message(client.flags()),
        remote_message(client.acquire(&lock("l"), ttl(1), None)),
    ] {
        assert!(message.starts_with("server unreachable:"), "{message}");
        assert!(!message.contains(token), "{message}");
    }
    // Shown as it is: not a storage failure, which the server did not report.
    let shown = client.locks().unwrap_err().to_string();
    assert!(shown.starts_with("server unreachable:"), "{shown}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Client::builder(format!("http://{}", silent.local_addr().unwrap()), "octo_x")
        .timeout(StdDuration::from_millis(200))
        .build()
        .unwrap();
    let message = remote_message(client.flags());
    assert!(message.starts_with("server unreachable:"), "{message}");
    assert!(
        message.contains("may or may not have taken effect"),
        "{message}"
    );
}

#[test]
fn a_url_that_is_not_an_octostore_api_is_an_unexpected_answer() {
    let server = Server::start();
    let client = Client::new(server.url("/not-the-api"), server.token("alice")).unwrap();
    let message = remote_message(client.flags());
    assert!(
        message.starts_with("unexpected answer from the server:"),
        "{message}"
    );
    let message = remote_message(client.get_config(&key("k"), None));
    assert!(
        message.starts_with("unexpected answer from the server:"),
        "{message}"
    );
    assert!(matches!(
        Client::new("ftp://example.com", "octo_x"),
        Err(Error::Invalid { field: "url", .. })
    ));
    assert!(matches!(
        Client::new("not a url", "octo_x"),
        Err(Error::Invalid { field: "url", .. })
    ));
    assert!(matches!(
        Client::new(server.url(""), "two words"),
        Err(Error::Invalid { field: "token", .. })
    ));
    assert!(matches!(
        Client::new(server.url(""), ""),
        Err(Error::Invalid { field: "token", .. })
    ));
}

/// Every flag evaluated for one context answers the same embedded and through the client (which
/// asks OFREP's bulk evaluation): on or off, variant, value and reason, and each flag's failure.
#[test]
fn evaluating_every_flag_answers_the_same_embedded_and_remote() {
    use octostore_core::{
        Api, EvaluationContext, Payload, Percentage, TargetingChange, VariantName,
    };

    fn define(api: &dyn Api) {
        let flag = |n: &str| octostore_core::FlagName::parse(n).unwrap();
        let variant = |name: &str, payload: Payload| octostore_core::Variant {
            name: VariantName::parse(name).unwrap(),
            weight: 1,
            payload: Some(payload),
        };
        api.set_flag(&flag("plain"), true, None).unwrap();
        api.set_flag(&flag("off"), false, None).unwrap();
        // A payload flag its percentage turns off for some subjects: no value, reason SPLIT.
        api.set_flag(&flag("gated"), true, Some(Percentage::new(30).unwrap()))
            .unwrap();
        let colors = vec![
            variant("blue", Payload::String("#00f".into())),
            variant("green", Payload::String("#0f0".into())),
        ];
        api.change_flag_targeting(&flag("gated"), TargetingChange::SetVariants(colors))
            .unwrap();
        // A boolean payload of false, on.
        api.set_flag(&flag("dark"), true, None).unwrap();
        let dark = vec![variant("no", Payload::Boolean(false))];
        api.change_flag_targeting(&flag("dark"), TargetingChange::SetVariants(dark))
            .unwrap();
    }

    let store = octostore_core::Store::in_memory();
    let embedded = store.session(store.local_user(&Login::parse("alice").unwrap()).unwrap());
    let server = Server::start();
    let remote = Client::new(server.url(""), server.token("alice")).unwrap();
    define(&embedded);
    define(&remote);
    for who in [
        None,
        Some("user-1"),
        Some("user-2"),
        Some("user-3"),
        Some("user-9"),
    ] {
        let context = EvaluationContext {
            subject: who.map(subject),
            ..EvaluationContext::default()
        };
        let show = |api: &dyn Api| format!("{:?}", api.evaluate_flags_in(&context).unwrap());
        assert_eq!(show(&embedded), show(&remote), "{who:?}");
    }
}
