//! `octostore serve`: the HTTP server, until SIGTERM or ctrl-c.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use octostore_core::values::error::Chain;
use octostore_core::{Error, Login, MemoryBackend, Quotas, Result, Settings, Store};
use octostore_http::{App, ConnectionLimits, GithubSettings, QueueLimits, ServerOptions};

use crate::args::{ConnectionArgs, GithubArgs, ServeArgs, StoreArgs};
use crate::failure::Failure;

/// What the server logs unless RUST_LOG says otherwise: its own events, and not a line per
/// request (RUST_LOG=info,octostore_http=debug,warp::filters::trace=info adds those, each in
/// a span with its number, method and route; /metrics counts requests); a failed request
/// (5xx) is still logged.
const DEFAULT_LOG: &str = "info,warp::filters::trace=error";

/// RUST_LOG, or [`DEFAULT_LOG`]; the PostgreSQL driver's debug lines, which hold every
/// statement's parameters (lease ids, token hashes), only if RUST_LOG names the driver.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG.into());
    let driver = if directives.contains("tokio_postgres") {
        ""
    } else {
        ",tokio_postgres=info"
    };
    tracing_subscriber::EnvFilter::try_new(format!("{directives}{driver}"))
        .unwrap_or_else(|_| DEFAULT_LOG.into())
}

/// How often expired leases and idle limits are swept away.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub fn run(store_args: &StoreArgs, args: ServeArgs) -> Result<ExitCode, Failure> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let settings = Settings {
        quotas: Quotas {
            locks: args.quotas.max_locks,
            limits: args.quotas.max_limits,
            flags: args.quotas.max_flags,
            configs: args.quotas.max_configs,
        },
        config_bytes_per_user: args.quotas.max_config_bytes_per_user,
        ..Settings::default()
    };
    let builder = if args.memory {
        if store_args.database_url.is_some() {
            return Err(Error::invalid("memory", "excludes --database-url").into());
        }
        Store::builder().backend(MemoryBackend::new())
    } else {
        crate::target::embedded(store_args)?
    };
    let store = builder.settings(settings).build();
    let described = describe(store_args, args.memory)?;
    for request in &args.write_token {
        write_token(&store, request)?;
    }
    let connections = connection_limits(&args.connections);
    raise_open_files_limit(connections.max_connections);
    let app = App::new(
        store.clone(),
        ServerOptions {
            github: github(args.github)?,
            connections,
            queue: QueueLimits {
                max_queued: args.queue.max_queued,
                timeout: args.queue.queue_timeout.into(),
            },
        },
    )?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|source| Failure::Bind {
                addr: args.bind,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(args.bind);
        tracing::info!(%addr, store = %described, "listening");
        tokio::spawn(sweep_forever(store));
        octostore_http::serve_with(listener, app, connections, shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The store, as the start line names it: the file's absolute path, or which other store
/// (never the database's URL, which may hold a password).
fn describe(store_args: &StoreArgs, memory: bool) -> Result<String> {
    if memory {
        return Ok("memory (nothing survives a restart)".to_owned());
    }
    if store_args.database_url.is_some() {
        return Ok(match &store_args.database_schema {
            Some(schema) => format!("the PostgreSQL database of --database-url, schema {schema}"),
            None => "the PostgreSQL database of --database-url".to_owned(),
        });
    }
    let file = crate::target::db_file(store_args)?;
    Ok(std::path::absolute(&file)
        .unwrap_or(file)
        .display()
        .to_string())
}

/// `--write-token LOGIN=FILE`: a new token for the local user LOGIN, in FILE (replaced whole,
/// mode 0600, never through a symlink).
fn write_token(store: &Store, request: &str) -> Result<()> {
    let (login, path) = request
        .split_once('=')
        .ok_or_else(|| Error::invalid("write_token", "expected LOGIN=FILE"))?;
    let user = store.local_user(&Login::parse(login)?)?;
    let token = store.issue_token(user.id)?;
    crate::secret_file::write(path.as_ref(), &format!("{}\n", token.expose()))
        .map_err(|e| Error::invalid("write_token", format!("cannot write {path}: {e}")))
}

fn github(args: GithubArgs) -> Result<Option<GithubSettings>> {
    match (
        args.github_client_id,
        args.github_client_secret,
        args.github_redirect_url,
    ) {
        (None, None, None) => Ok(None),
        (Some(client_id), Some(client_secret), Some(redirect_url)) => Ok(Some(GithubSettings {
            client_id,
            client_secret,
            redirect_url,
            web_url: args.github_url,
            api_url: args.github_api_url,
        })),
        _ => Err(Error::invalid(
            "github",
            "GitHub sign-in needs a client id, a client secret and a redirect URL together",
        )),
    }
}

fn connection_limits(args: &ConnectionArgs) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout.into(),
        body_timeout: args.body_timeout.into(),
        idle_timeout: args.idle_timeout.into(),
    }
}

/// Descriptors the process needs beside its connections: the store, the runtime, logs.
const OTHER_FILES: usize = 64;

/// Raises the soft limit on open files to the hard limit: each connection holds a descriptor,
/// and the usual soft limit (1024) is far below the default cap. Warns if even the hard limit
/// is too low for `max_connections`, as accepts would then fail before the cap.
fn raise_open_files_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let needed = max_connections.saturating_add(OTHER_FILES) as libc::rlim_t;
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            max_connections,
            "the open-file limit is below the connection cap: raise it (ulimit -n) or lower \
             --max-connections"
        );
    }
}

async fn sweep_forever(store: Store) {
    let store = Arc::new(store);
    // Not at start: a sweep reads every lease and limit (1.5 s on a file of 1 000 000
    // objects, in transactions of 1 000 records, between which requests are served).
    let first = tokio::time::Instant::now() + SWEEP_EVERY;
    let mut every = tokio::time::interval_at(first, SWEEP_EVERY);
    loop {
        every.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.sweep()).await {
            Ok(Ok(swept)) => tracing::debug!(?swept, "swept"),
            Ok(Err(e)) => tracing::warn!(error = %Chain(&e), "sweep failed"),
            Err(e) => tracing::warn!(error = %e, "sweep did not finish"),
        }
    }
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
