//! The console in headless Chromium against a real server: sign in with a token; every
//! user's locks are listed, another's held before the page loaded among them with its
//! waiter; a lock
//! appears, counts down and expires; a flag is created, toggled, rolled out and evaluated; a
//! config key is edited, compared and rolled back; limits show their use and reset; hostile
//! names stay text; every section fits a phone. The same on a server on a SQLite file, and on
//! PostgreSQL when `OCTOSTORE_TEST_POSTGRES_URL` names a database. With
//! `OCTOSTORE_SCREENSHOTS=<dir>` each page is saved there as PNG. Skipped (said on stderr)
//! without Chromium, except under CI.

use std::path::PathBuf;
use std::sync::Arc;

use octostore_core::{
    Api, ConfigKey, LockName, Login, PostgresBackend, PostgresOptions, Quotas, Settings,
    SqliteBackend, Store,
};
use octostore_http::ServerOptions;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::webdriver::Browser;
use crate::support::Server;

/// A name that would run script if it were ever parsed as HTML.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn console_on() -> ServerOptions {
    ServerOptions {
        console: true,
        ..ServerOptions::default()
    }
}

struct Console {
    server: Server,
    browser: Browser,
    token: String,
    http: Client,
    screenshots: Option<PathBuf>,
    /// The SQLite file's directory, removed after the server has stopped.
    _dir: Option<TempDir>,
}

/// The store the console's server runs on: the console only talks to the API, so any does.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// In memory; the screenshots are taken on it.
    Memory,
    /// A SQLite file in a temporary directory: its changes go through the committer thread.
    SqliteFile,
    /// The database at `url`, in a schema of its own: operations on the blocking pool.
    Postgres { url: &'a str, schema: &'a str },
}

impl Console {
    /// A server with the console on, and a browser signed out on `/ui`; `None` without a
    /// browser.
    fn open(backend: Backend) -> Option<Self> {
        let browser = Browser::start()?;
        let (store, dir) = match backend {
            Backend::Memory => (Store::builder().build(), None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().unwrap();
                let file = SqliteBackend::open(dir.path().join("octostore.db")).unwrap();
                (Store::builder().backend(file).build(), Some(dir))
            }
            Backend::Postgres { url, schema } => {
                let options = PostgresOptions {
                    schema: Some(schema.to_owned()),
                    ..PostgresOptions::default()
                };
                let database = PostgresBackend::connect_with(url, options).unwrap();
                (Store::builder().backend(database).build(), None)
            }
        };
        let server = Server::serve(store, Arc::default(), console_on());
        let token = server.token("alice");
        // Anything the policy blocked, and any alert (an injected handler's), is noted.
        browser.on_new_document(
            "window.blocked = []; \
             document.addEventListener('securitypolicyviolation', \
               (e) => window.blocked.push(`${e.violatedDirective} ${e.blockedURI}`)); \
             window.alert = (text) => window.blocked.push(`alert ${text}`);",
        );
        browser.goto(&server.url("/ui"));
        Some(Self {
            server,
            browser,
            token,
            http: Client::new(),
            screenshots: match backend {
                Backend::Memory => std::env::var_os("OCTOSTORE_SCREENSHOTS").map(PathBuf::from),
                Backend::SqliteFile | Backend::Postgres { .. } => None,
            },
            _dir: dir,
        })
    }

    /// `method path` with `body` as alice, through the API; the answer's JSON.
    fn api(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().unwrap()
    }

    /// The page as `name.png`, without the last action's passing message.
    fn screenshot(&self, name: &str) {
        self.browser.run(
            "document.getElementById('status').textContent = '';",
            json!([]),
        );
        self.browser.screenshot(self.screenshots.as_deref(), name);
    }

    /// Goes to a section of the console (`#/flags`…) and waits for it.
    fn section(&self, hash: &str) {
        self.browser
            .run("location.hash = arguments[0];", json!([hash]));
        let name = hash.trim_start_matches("#/").split('/').next().unwrap();
        self.browser.wait_for(&format!("section {name}"), || {
            self.browser.run(
                "return document.getElementById('view').dataset.section;",
                json!([]),
            ) == json!(name)
        });
    }

    /// Accepts the confirm dialog a destructive action opened.
    fn confirm(&self) {
        self.browser.click("#confirm-ok");
    }

    /// How many `<img>` elements the page has: none, whatever names it shows.
    fn images(&self) -> Value {
        self.browser
            .run("return document.querySelectorAll('img').length;", json!([]))
    }
}

#[test]
fn the_console_in_a_real_browser() {
    let Some(console) = Console::open(Backend::Memory) else {
        return;
    };
    every_section(&console);
    phone(&console);
    let blocked = console.browser.run("return window.blocked;", json!([]));
    assert_eq!(blocked, json!([]), "blocked by the policy, or alerts");
}

#[test]
fn the_console_on_a_sqlite_file() {
    let Some(console) = Console::open(Backend::SqliteFile) else {
        return;
    };
    every_section(&console);
}

#[test]
fn the_console_on_postgres() {
    let var = "OCTOSTORE_TEST_POSTGRES_URL";
    let Some(url) = std::env::var(var).ok().filter(|url| !url.is_empty()) else {
        eprintln!("SKIPPED: the console on PostgreSQL ({var} is unset)");
        return;
    };
    let schema = format!("octostore_console_{}", uuid::Uuid::new_v4().simple());
    if let Some(console) = Console::open(Backend::Postgres {
        url: &url,
        schema: &schema,
    }) {
        every_section(&console);
    }
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
}

/// Signs in, then goes through locks, flags, config and limits.
fn every_section(console: &Console) {
    sign_in(console);
    locks(console);
    flags(console);
    config(console);
    limits(console);
}

fn sign_in(console: &Console) {
    let browser = &console.browser;
    browser.wait_for_text("#sign-in h2", "Sign in");
    console.screenshot("sign-in");
    browser.type_into("#token", "octo_not-a-token");
    browser.click("#token-form button[type=submit]");
    browser.wait_for_text("#status", "refused");
    browser.type_into("#token", &console.token);
    browser.click("#token-form button[type=submit]");
    browser.wait_for_text("#live", "live");
    let stored = browser.run(
        "return sessionStorage.getItem('octostore.token');",
        json!([]),
    );
    assert_eq!(stored, json!(console.token));
    let cookies = browser.run("return document.cookie;", json!([]));
    assert_eq!(cookies, json!(""), "the token is never a cookie");
}

fn locks(console: &Console) {
    let browser = &console.browser;
    // Another user's lock, held before the page loads: the list reads it, not the stream.
    let bob = console.server.token("bob");
    console
        .http
        .post(console.server.url("/locks/early-bird/acquire"))
        .bearer_auth(&bob)
        .json(&json!({"ttl_seconds": 300}))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap();
    // And someone waiting for it, for the list's count of waiters.
    let carol = console.server.token("carol");
    let early_bird = LockName::parse("early-bird").unwrap();
    let store = &console.server.store;
    let waiting = (store.authenticate(&carol).unwrap())
        .join_queue(&early_bird, Box::new(|| {}))
        .unwrap();
    browser.run("location.reload();", json!([]));
    browser.wait_for_text("#live", "live");
    console.section("#/locks");
    browser.wait_for_text("[data-lock=early-bird]", "bob");
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('[data-lock=early-bird] button').length;",
            json!([])
        ),
        json!(0),
        "another user's lease has no Release button"
    );
    assert_eq!(
        browser.text("[data-seen=early-bird]"),
        "",
        "not seen in the stream"
    );
    assert_eq!(browser.text("[data-lock=early-bird] .waiters"), "1");
    drop(waiting);
    browser.type_into("#acquire-form input[name=lock]", "deploy");
    browser.type_into("#acquire-form input[name=ttl]", "600");
    browser.click("#acquire-form button");
    browser.wait_for_text("[data-lock=deploy]", "alice (you)");
    // A lease of 4 s: it shows, counts down, and leaves the list when it runs out.
    browser.type_into("#acquire-form input[name=lock]", "nightly-build");
    browser.type_into("#acquire-form input[name=ttl]", "4");
    browser.click("#acquire-form button");
    let countdown = "[data-lock=nightly-build] .countdown";
    browser.wait_for_text(countdown, "s");
    let first = browser.text(countdown);
    browser.wait_for(&format!("{countdown} to count down from {first}"), || {
        let now = browser.text(countdown);
        !now.is_empty() && now != first
    });
    // Another user's lock reaches the page through the change stream.
    console
        .http
        .post(console.server.url("/locks/shared-cache/acquire"))
        .bearer_auth(&bob)
        .json(&json!({"ttl_seconds": 300}))
        .send()
        .unwrap();
    browser.wait_for_text("[data-lock=shared-cache]", "bob");
    console.screenshot("locks");
    browser.wait_for("the 4 s lease to expire", || {
        browser.text("[data-lock=nightly-build]").is_empty()
    });
    browser.wait_for_text("[data-seen=nightly-build]", "expired");
    // A lease's detail, and its release after a confirmation.
    browser.type_into("#lookup-form input", "deploy");
    browser.click("#lookup-form button");
    browser.wait_for_text("#lock-detail", "Waiters");
    assert!(browser.text("#lock-detail").contains("alice"));
    browser.click("[data-lock=deploy] button.danger");
    console.confirm();
    browser.wait_for("deploy to leave the list", || {
        browser.text("[data-lock=deploy]").is_empty()
    });
    assert!(browser.text("[data-lock=shared-cache]").contains("bob"));
}

fn flags(console: &Console) {
    let browser = &console.browser;
    console.section("#/flags");
    browser.type_into("#new-flag input[name=flag]", "checkout");
    browser.click("#new-flag button");
    browser.wait_for_text("#flag-detail h3", "Flag checkout");
    let evaluate_in = |subject: &str, context: &str| {
        browser.run(
            "document.getElementById('evaluation').replaceChildren();",
            json!([]),
        );
        browser.type_into("#evaluate-form input[name=subject]", subject);
        browser.type_into("#evaluate-form textarea[name=context]", context);
        browser.click("#evaluate-form button");
        browser.wait_for_text("#evaluation", "Reason");
        (
            browser.text("#evaluation .value"),
            browser.text("#evaluation .reason"),
        )
    };
    let evaluate = |subject: &str| evaluate_in(subject, "");
    assert_eq!(evaluate("user-1"), ("false".into(), "DISABLED".into()));
    browser.click("#flag-detail button.switch");
    browser.wait_for_text("[data-flag=checkout] .switch", "On");
    assert_eq!(evaluate("user-1"), ("true".into(), "STATIC".into()));
    // A rollout of 0 %, then off and on again: the rollout is kept.
    browser.run(
        "const s = document.querySelector('[data-flag=checkout] input[type=range]'); \
         s.value = 0; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.wait_for_text("[data-flag=checkout] output", "0%");
    browser.click("[data-flag=checkout] .switch");
    browser.wait_for_text("[data-flag=checkout] .switch", "Off");
    browser.click("[data-flag=checkout] .switch");
    browser.wait_for_text("[data-flag=checkout] .switch", "On");
    assert_eq!(browser.text("[data-flag=checkout] output"), "0%");
    assert_eq!(evaluate("user-1"), ("false".into(), "SPLIT".into()));
    // A rule: on for the plan "pro" only.
    console.api(
        reqwest::Method::PUT,
        "/flags/checkout",
        json!({"enabled": true, "percentage": 100}),
    );
    browser.wait_for_text("[data-flag=checkout] output", "100%");
    browser.type_into("#rule-form input[name=property]", "plan");
    browser.type_into("#rule-form input[name=values]", "pro, team");
    browser.click("#rule-form button");
    browser.wait_for_text("#flag-detail ol", "plan IN pro, team");
    let pro = evaluate_in("user-1", r#"{"plan": "pro"}"#);
    assert_eq!(pro, ("true".into(), "TARGETING_MATCH".into()));
    let free = evaluate_in("user-1", r#"{"plan": "free"}"#);
    assert_eq!(free, ("false".into(), "DEFAULT".into()));
    // Variants, one of them named to inject markup, are shown as text.
    console.api(
        reqwest::Method::PUT,
        "/flags/checkout/variants",
        json!({"variants": [
            {"name": HOSTILE, "weight": 1, "payload": {"type": "string", "value": "blue"}},
        ]}),
    );
    console.section("#/flags");
    console.section("#/flags/checkout");
    browser.wait_for_text("#flag-detail", HOSTILE);
    assert_eq!(evaluate_in("user-1", r#"{"plan": "pro"}"#).0, "\"blue\"");
    assert_eq!(browser.text("#evaluation .variant"), HOSTILE);
    assert_eq!(console.images(), json!(0));
    browser.run(
        "document.getElementById('flag-detail').scrollIntoView();",
        json!([]),
    );
    console.screenshot("flags");
}

fn config(console: &Console) {
    let browser = &console.browser;
    let alice = console.server.store.session(
        console
            .server
            .store
            .local_user(&Login::parse("alice").unwrap())
            .unwrap(),
    );
    let key = ConfigKey::parse("service").unwrap();
    alice
        .put_config(
            &key,
            json!({"pool": 4, "timeout_ms": 300, "region": "eu"}),
            None,
        )
        .unwrap();
    console.api(
        reqwest::Method::PUT,
        "/config/service/schema",
        json!({"schema": {"type": "object", "properties": {"pool": {"type": "integer"}}}}),
    );
    console.section("#/config/service");
    browser.wait_for_text("[data-version='1']", "alice");
    browser.wait_for_text("#config-detail pre", "integer");
    // JSON the schema refuses: the server's answer is shown by the field.
    browser.type_into("#edit-form textarea", "{\"pool\": \"eight\"}");
    browser.click("#edit-form button[type=submit]");
    browser.wait_for_text("#value-problem", "schema");
    // Not JSON: refused before it is sent.
    browser.type_into("#edit-form textarea", "{\"pool\": ");
    browser.wait_for_text("#value-problem", "Not JSON");
    browser.type_into(
        "#edit-form textarea",
        "{\"pool\": 8, \"timeout_ms\": 300, \"region\": \"eu\", \"note\": \"<img src=x onerror=alert(1)>\"}",
    );
    browser.type_into("#edit-form input[name=description]", HOSTILE);
    browser.click("#edit-form button[type=submit]");
    browser.wait_for_text("[data-version='2']", HOSTILE);
    browser.click("#diff-form button");
    // The lines that differ, whichever way the rows pair them.
    browser.wait_for_text("#diff", "\"pool\": 8");
    browser.run(
        "document.getElementById('diff').scrollIntoView({block: 'end'});",
        json!([]),
    );
    let differ = browser.run(
        "return [...document.querySelectorAll('#diff tr:not(.same)')] \
         .map((row) => row.textContent).join('\\n');",
        json!([]),
    );
    let differ = differ.as_str().unwrap();
    for line in ["\"pool\": 4", "\"pool\": 8", "onerror"] {
        assert!(differ.contains(line), "{line} in {differ}");
    }
    assert!(!differ.contains("timeout_ms"), "{differ}");
    assert_eq!(console.images(), json!(0));
    console.screenshot("config");
    browser.click("[data-version='1'] button");
    console.confirm();
    browser.wait_for_text("[data-version='3']", "latest");
    let now = alice.get_config(&key, None).unwrap();
    assert_eq!(now.version, 3);
    assert_eq!(
        now.value,
        json!({"pool": 4, "timeout_ms": 300, "region": "eu"})
    );
    console.section("#/config");
    browser.wait_for_text("[data-key=service]", "3");
    // A key put elsewhere joins the list, and a deleted one leaves it, as the stream says.
    let elsewhere = ConfigKey::parse("added-elsewhere").unwrap();
    alice.put_config(&elsewhere, json!(1), None).unwrap();
    browser.wait_for_text("[data-key=added-elsewhere]", "1");
    alice.delete_config(&elsewhere).unwrap();
    browser.wait_for("the deleted key to leave the list", || {
        browser.text("[data-key=added-elsewhere]").is_empty()
    });
}

fn limits(console: &Console) {
    let browser = &console.browser;
    for name in ["api-calls", "api-calls", "api-calls", HOSTILE] {
        console.api(
            reqwest::Method::POST,
            &format!(
                "/limits/{}/check",
                utf8_percent_encode(name, NON_ALPHANUMERIC)
            ),
            json!({"max_requests": 5, "window_seconds": 3600}),
        );
    }
    console.section("#/limits");
    browser.wait_for_text("[data-limit=api-calls]", "3 / 5");
    browser.wait_for_text("#view", HOSTILE);
    assert_eq!(console.images(), json!(0));
    // The window resets in an hour less the moments since the first check.
    let resets = browser.text("[data-limit=api-calls] [data-resets]");
    assert!(
        ["1h 00m", "59m"]
            .iter()
            .any(|shown| resets.starts_with(shown)),
        "{resets}"
    );
    console.screenshot("limits");
    browser.click("[data-limit=api-calls] button.danger");
    console.confirm();
    browser.wait_for("the limit to be reset", || {
        browser.text("[data-limit=api-calls]").is_empty()
    });
}

#[test]
fn the_line_diff_pairs_removed_and_added_lines() {
    let Some(console) = Console::open(Backend::Memory) else {
        return;
    };
    let cases = json!([
        [[], [], []],
        [["a"], ["a"], [["same", "a", "a"]]],
        [[], ["a"], [["added", null, "a"]]],
        [
            ["a", "b"],
            [],
            [["removed", "a", null], ["removed", "b", null]]
        ],
        [
            ["a", "b", "c"],
            ["a", "x", "c"],
            [
                ["same", "a", "a"],
                ["changed", "b", "x"],
                ["same", "c", "c"]
            ]
        ],
        [
            ["a", "b"],
            ["x", "y", "b", "z"],
            [
                ["changed", "a", "x"],
                ["added", null, "y"],
                ["same", "b", "b"],
                ["added", null, "z"]
            ]
        ],
        [
            ["{", "a", "b", "c", "}"],
            ["{", "c", "a", "}"],
            [
                ["same", "{", "{"],
                ["removed", "a", null],
                ["removed", "b", null],
                ["same", "c", "c"],
                ["added", null, "a"],
                ["same", "}", "}"]
            ]
        ],
    ]);
    let answers = console.browser.run_async(
        "const [cases, done] = arguments; \
         import('/ui/js/diff.js').then(({ sideBySide }) => done(cases.map(([a, b]) => \
           sideBySide(a, b).map((row) => [row.kind, row.left, row.right]))));",
        json!([cases]),
    );
    for (case, answer) in cases
        .as_array()
        .unwrap()
        .iter()
        .zip(answers.as_array().unwrap())
    {
        assert_eq!(answer, &case[2], "{} against {}", case[0], case[1]);
    }
}

/// How many config keys the first-paint measurement lists.
const KEYS: usize = 10_000;

/// Loads of the page the measurement makes.
const LOADS: usize = 5;

/// Not a check, a measurement (`bench/console.sh`): the console opened on the config section
/// of a user with 10 000 keys, `LOADS` times; for each load, the first contentful paint and
/// the time the first rows of the list were painted, from the start of the navigation.
#[test]
#[ignore = "a measurement: run by bench/console.sh"]
fn first_paint_of_10_000_config_keys() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let settings = Settings {
        quotas: Quotas {
            configs: KEYS,
            ..Quotas::default()
        },
        ..Settings::default()
    };
    let server = Server::start_on_system_clock(settings, console_on());
    let token = server.token("alice");
    let store = &server.store;
    let alice = store.session(store.local_user(&Login::parse("alice").unwrap()).unwrap());
    for i in 0..KEYS {
        let key = ConfigKey::parse(&format!("service-{i:05}.pool")).unwrap();
        alice
            .put_config(&key, json!({"pool": i, "region": "eu"}), None)
            .unwrap();
    }
    // Before each document's own scripts: note when the first row of the list is in the
    // document, and when the frame after it is painted.
    browser.on_new_document(
        "new MutationObserver((_, observer) => { \
           if (document.querySelector('#config-list tbody tr')) { \
             observer.disconnect(); \
             window.listInDocument = performance.now(); \
             requestAnimationFrame(() => setTimeout(() => { window.listPainted = performance.now(); })); \
           } \
         }).observe(document, { childList: true, subtree: true });",
    );
    browser.goto(&server.url("/ui"));
    browser.run(
        "sessionStorage.setItem('octostore.token', arguments[0]);",
        json!([token]),
    );
    let mut painted = Vec::new();
    for load in 0..LOADS {
        browser.goto(&server.url(&format!("/ui?load={load}#/config")));
        browser.wait_for("the list to be painted", || {
            browser.run("return window.listPainted !== undefined;", json!([])) == json!(true)
        });
        let times = browser.run(
            "const fcp = performance.getEntriesByName('first-contentful-paint')[0]; \
             return [fcp ? Math.round(fcp.startTime) : null, Math.round(window.listInDocument), \
                     Math.round(window.listPainted), \
                     document.querySelectorAll('#config-list tbody tr').length, \
                     performance.getEntriesByType('resource') \
                       .find((r) => new URL(r.name).pathname === '/config').decodedBodySize];",
            json!([]),
        );
        println!(
            "load {load}: first contentful paint {} ms, list in document {} ms, list painted {} ms, \
             rows {}, GET /config {} bytes",
            times[0], times[1], times[2], times[3], times[4]
        );
        painted.push(times[2].as_f64().unwrap());
    }
    painted.sort_by(f64::total_cmp);
    println!(
        "{KEYS} config keys: list painted in {:.0} ms (median of {LOADS} loads; best {:.0} ms, worst {:.0} ms)",
        painted[LOADS / 2],
        painted[0],
        painted[LOADS - 1]
    );
}

/// On a phone's width every section fits: the page never scrolls sideways (a wide table
/// scrolls inside its card).
fn phone(console: &Console) {
    let browser = &console.browser;
    browser.resize(390, 844);
    let sections = [
        ("#/locks", "#acquire-form"),
        ("#/flags/checkout", "#flag-detail table"),
        ("#/config/service", "[data-version='3']"),
        ("#/limits", "[data-limit]"),
    ];
    for (section, shown) in sections {
        console.section(section);
        browser.wait_for_text(shown, "");
        let overflow = browser.run(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            json!([]),
        );
        assert_eq!(overflow, json!(0), "{section} scrolls sideways");
        if section == "#/flags/checkout" {
            console.screenshot("phone");
        }
    }
    browser.resize(1280, 800);
}
