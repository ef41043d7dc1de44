//! The web console's files over real HTTP: the page and its assets load without a token,
//! with their content types, the strict Content-Security-Policy and `nosniff`; the data
//! behind them still needs one; a server without the console answers 404 at `/ui`.

use octostore_core::Settings;
use octostore_http::console::{embedded_bytes, CONTENT_SECURITY_POLICY};
use octostore_http::{GithubSettings, ServerOptions};
use reqwest::blocking::{get, Response};
use reqwest::StatusCode;

use crate::support::Server;

mod browser;
mod webdriver;

/// A server on memory with the console on.
pub fn with_console() -> Server {
    Server::start_with(
        Settings::default(),
        ServerOptions {
            console: true,
            ..ServerOptions::default()
        },
    )
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[test]
fn the_page_loads_without_a_token_under_a_strict_policy() {
    let server = with_console();
    for path in ["/ui", "/ui/"] {
        let page = get(server.url(path)).unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(
            header(&page, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        let html = page.text().unwrap();
        assert!(html.contains(r#"<script type="module" src="/ui/js/main.js">"#));
        assert!(html.contains(r#"<meta name="octostore-github" content="off">"#));
        // As `curl -I` asks: the same headers, no body.
        let head = reqwest::blocking::Client::new()
            .head(server.url(path))
            .send()
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(
            header(&head, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(head.text().unwrap(), "", "HEAD {path}");
    }
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
}

#[test]
fn the_page_offers_github_sign_in_when_it_is_configured() {
    let server = Server::start_with(
        Settings::default(),
        ServerOptions {
            console: true,
            github: Some(GithubSettings {
                client_id: "console-test".into(),
                client_secret: "not-a-secret".into(),
                redirect_url: "http://127.0.0.1:1/auth/github/callback".into(),
                web_url: "http://127.0.0.1:1".into(),
                api_url: "http://127.0.0.1:1".into(),
            }),
            ..ServerOptions::default()
        },
    );
    let html = get(server.url("/ui")).unwrap().text().unwrap();
    assert!(html.contains(r#"<meta name="octostore-github" content="on">"#));
    assert!(html.contains(r#"href="/auth/github""#));
}

#[test]
fn every_asset_the_page_names_is_served_with_its_content_type() {
    let server = with_console();
    let cases = [
        ("/ui/console.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/ui/js/main.js", "text/javascript; charset=utf-8"),
        ("/ui/js/api.js", "text/javascript; charset=utf-8"),
        ("/ui/js/dom.js", "text/javascript; charset=utf-8"),
        ("/ui/js/locks.js", "text/javascript; charset=utf-8"),
        ("/ui/js/flags.js", "text/javascript; charset=utf-8"),
        ("/ui/js/config.js", "text/javascript; charset=utf-8"),
        ("/ui/js/diff.js", "text/javascript; charset=utf-8"),
        ("/ui/js/limits.js", "text/javascript; charset=utf-8"),
    ];
    for (path, content_type) in cases {
        let asset = get(server.url(path)).unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&asset, "content-type"), content_type, "{path}");
        assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
        assert_eq!(
            header(&asset, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert!(!asset.text().unwrap().is_empty(), "{path}");
    }
    let missing = get(server.url("/ui/js/nothing.js")).unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[test]
fn the_data_behind_the_page_still_needs_a_token() {
    let server = with_console();
    assert_eq!(
        get(server.url("/flags")).unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn without_the_console_ui_is_not_found() {
    let server = Server::start();
    for path in ["/ui", "/ui/", "/ui/js/main.js"] {
        assert_eq!(
            get(server.url(path)).unwrap().status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[test]
fn the_embedded_files_weigh_under_200_kib() {
    let bytes = embedded_bytes();
    assert!(bytes < 200 * 1024, "{bytes} bytes");
}
