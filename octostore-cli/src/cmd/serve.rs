//! `octostore serve`: the HTTP server, until SIGTERM or ctrl-c.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use octostore_core::values::error::Chain;
use octostore_core::{Error, Login, MemoryBackend, Quotas, Result, Settings, Store};
use octostore_http::{App, ConnectionLimits, GithubSettings, QueueLimits, ServerOptions};

use crate::args::{ConnectionArgs, GithubArgs, LogFormat, ServeArgs, StoreArgs};
use crate::failure::Failure;

/// What the server logs unless RUST_LOG says otherwise: its own events, and not a line per
/// request (`--access-log` adds those; /metrics counts requests); a failed store is still
/// logged.
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr);
    match args.log.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let settings = Settings {
        quotas: Quotas {
            locks: args.quotas.max_locks,
            limits: args.quotas.max_limits,
            flags: args.quotas.max_flags,
            configs: args.quotas.max_configs,
        },
        config_bytes_per_user: args.quotas.max_config_bytes_per_user,
        events_kept: args.events.events_kept,
        events_max_age: args.events.events_max_age.into(),
        config_retention: args.config_retention.into(),
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
            access_log: args.log.access_log,
            max_wait: args.queue.max_wait.map(Into::into),
            console: !args.no_ui,
        },
    )?;
    // Kept until the runtime is gone: the last of the store goes on this thread, outside
    // it, since a database connection's drop blocks on a runtime of its own, which tokio
    // refuses on its threads (the server would abort at every stop).
    let last_of_the_store = store.clone();
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::Runtime)?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|source| Failure::Bind {
                addr: args.bind,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(args.bind);
        let version = env!("CARGO_PKG_VERSION");
        let shutdown = shutdown_signal();
        let settings = store.settings();
        tracing::info!(
            "change log: the newest {} events kept, none older than {}",
            settings.events_kept,
            humantime::format_duration(settings.events_max_age)
        );
        tracing::info!("octostore {version} listening on http://{addr}, store {described}");
        if !args.no_ui {
            tracing::info!("web console at http://{addr}/ui");
        }
        tokio::spawn(sweep_forever(store));
        octostore_http::serve_with(listener, app, connections, shutdown).await;
        Ok(ExitCode::SUCCESS)
    });
    drop(runtime);
    drop(last_of_the_store);
    served
}

/// The store, as the start line names it: its kind, then the file's absolute path and its
/// durability, or the database's URL without its password.
fn describe(store_args: &StoreArgs, memory: bool) -> Result<String> {
    if memory {
        return Ok("memory (nothing survives a restart)".to_owned());
    }
    if let Some(url) = &store_args.database_url {
        let schema = match &store_args.database_schema {
            Some(schema) => format!(", schema {schema}"),
            None => String::new(),
        };
        return Ok(format!(
            "postgresql {}{schema} (durability: the database's)",
            without_password(url)
        ));
    }
    let file = crate::target::db_file(store_args)?;
    let durability = if store_args.sync_every_commit {
        "survives process crashes and power loss"
    } else {
        "survives process crashes"
    };
    Ok(format!(
        "sqlite {} (durability: {durability})",
        std::path::absolute(&file).unwrap_or(file).display()
    ))
}

/// A PostgreSQL connection string as the start line shows it, never with its password: a
/// URL without the password of its user part nor its query (`?password=` may hold one); a
/// `key=value` string with only its host, port, database and user.
fn without_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // The last `@` ends the user part: a password may hold `@`, `/` or `?` unescaped.
        let (user, at) = match rest.rfind('@') {
            Some(end) => {
                let user = rest[..end].split(':').next().unwrap_or_default();
                (format!("{user}@"), &rest[end + 1..])
            }
            None => (String::new(), rest),
        };
        let at = at.split('?').next().unwrap_or_default();
        return format!("{scheme}://{user}{at}");
    }
    let shown = ["host", "hostaddr", "port", "dbname", "user"];
    url.split_whitespace()
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, _)| shown.contains(&key))
        })
        .collect::<Vec<_>>()
        .join(" ")
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

/// Completes on ctrl-c (SIGINT) or SIGTERM. Both are caught from this call on (inside the
/// runtime), not from the future's first poll: a signal sent once the start line is out stops
/// the server gracefully, never by the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = received(interrupt.as_mut()) => {}
            () = received(terminate.as_mut()) => {}
        }
        tracing::info!("shutting down");
    }
}

/// Completes when `signal` is received; never if it could not be caught.
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => drop(signal.recv().await),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let cases = [
            (
                "postgres://octo:s3cret@db.example:5432/octostore",
                "postgres://octo@db.example:5432/octostore",
            ),
            (
                "postgresql://octo:p@ss/w?rd@db:5432/octostore?sslmode=disable",
                "postgresql://octo@db:5432/octostore",
            ),
            (
                "postgres://db/octostore?user=octo&password=s3cret",
                "postgres://db/octostore",
            ),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            (
                "host=db port=5432 user=octo password=s3cret dbname=octostore",
                "host=db port=5432 user=octo dbname=octostore",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }
}
