//! A small WebDriver client over reqwest, for headless Chromium under chromedriver: the few
//! commands the console's tests need (navigate, find, click, type, run a script, screenshot),
//! and waits that poll with a deadline.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait polls before it fails the test.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A browser session; dropping it ends the session and the driver.
pub struct Browser {
    http: Client,
    session: String,
    driver: Child,
}

impl Browser {
    /// Headless Chromium at 1280×800, or `None` (said on stderr) when Chromium or chromedriver
    /// is not installed. Under CI (`CI` set) a missing browser fails the test instead.
    pub fn start() -> Option<Self> {
        let missing: Vec<_> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|path| !Path::new(path).exists())
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "{} missing (apt-get install chromium chromium-driver)",
                missing.join(" and ")
            );
            assert!(std::env::var_os("CI").is_none(), "under CI: {why}");
            eprintln!("SKIPPED: the console's browser test: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(started.elapsed() < DEADLINE, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800",
                         "--force-prefers-reduced-motion"],
            },
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Some(Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        })
    }

    /// Runs one command; its `value`, or a panic with WebDriver's error.
    fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"))
    }

    /// Runs one command; its `value`, or WebDriver's error.
    fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut answer: Value = request.send().unwrap().json().unwrap();
        let value = answer["value"].take();
        match value["error"].is_string() {
            true => Err(value),
            false => Ok(value),
        }
    }

    pub fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its result.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` (a function body whose last argument is a callback, called with its
    /// result) in the page and waits for the result.
    pub fn run_async(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The first element `css` selects, waiting for one to be there and shown.
    fn element(&self, css: &str) -> String {
        self.wait_for(&format!("{css} to be shown"), || {
            self.run(
                "const e = document.querySelector(arguments[0]); \
                 return !!e && e.getClientRects().length > 0;",
                json!([css]),
            ) == json!(true)
        });
        let found = self.command(
            reqwest::Method::POST,
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Clicks the element `css` selects, as a user would. The page redraws its lists as
    /// changes arrive: an element replaced between finding and clicking is found again.
    pub fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let id = self.element(css);
            let clicked = self.try_command(
                reqwest::Method::POST,
                &format!("/element/{id}/click"),
                Some(json!({})),
            );
            match clicked {
                Ok(_) => return,
                Err(error) if error["error"] == "stale element reference" => {
                    assert!(started.elapsed() < DEADLINE, "{css} kept being replaced");
                }
                Err(error) => panic!("WebDriver click on {css}: {error}"),
            }
        }
    }

    /// Types `text` into the field `css` selects, after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        );
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Resizes the browser's window to `width`×`height` CSS pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Runs `script` in every document loaded from now on, before the document's own
    /// scripts (Chromium's DevTools protocol, through chromedriver).
    pub fn on_new_document(&self, script: &str) {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": script },
            })),
        );
    }

    /// The text of the first element `css` selects, or "" if there is none.
    pub fn text(&self, css: &str) -> String {
        let text = self.run(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            json!([css]),
        );
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Polls `done` until it holds; after [`DEADLINE`] fails the test, naming `what` and
    /// showing the page's text.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            if started.elapsed() > DEADLINE {
                let page = self.run("return document.body.innerText;", json!([]));
                panic!(
                    "waited {DEADLINE:?} for {what}; the page shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the element `css` selects is there and holds `text`.
    pub fn wait_for_text(&self, css: &str, text: &str) {
        self.wait_for(&format!("{css} to hold {text:?}"), || {
            let text_of = "const e = document.querySelector(arguments[0]); \
                           return e ? e.textContent : null;";
            self.run(text_of, json!([css]))
                .as_str()
                .is_some_and(|shown| shown.contains(text))
        });
    }

    /// The page as PNG in `dir/name.png`, when `dir` is given.
    pub fn screenshot(&self, dir: Option<&Path>, name: &str) {
        let Some(dir) = dir else { return };
        let png = self.command(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
