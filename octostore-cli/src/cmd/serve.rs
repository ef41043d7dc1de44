//! `octostore serve`: the HTTP server, until SIGTERM or ctrl-c.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use octostore_core::{Error, MemoryBackend, Quotas, Result, Settings, Store};
use octostore_http::{App, GithubSettings, ServerOptions};

use crate::args::{GithubArgs, ServeArgs, StoreArgs};

/// How often expired leases and idle limits are swept away.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub fn run(store_args: &StoreArgs, args: ServeArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
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
        ..Settings::default()
    };
    let builder = if args.memory {
        if store_args.database_url.is_some() {
            return Err(Error::invalid(
                "memory",
                "--memory and --database-url exclude each other",
            ));
        }
        Store::builder().backend(MemoryBackend::new())
    } else {
        crate::target::embedded(store_args)?
    };
    let store = builder.settings(settings).build();
    let app = App::new(
        store.clone(),
        ServerOptions {
            github: github(args.github)?,
        },
    )?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Storage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| Error::Storage(format!("cannot listen on {}: {e}", args.bind)))?;
        tokio::spawn(sweep_forever(store));
        octostore_http::serve(listener, app, shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
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

async fn sweep_forever(store: Store) {
    let store = Arc::new(store);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.sweep()).await {
            Ok(Ok(swept)) => tracing::debug!(?swept, "swept"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed"),
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
