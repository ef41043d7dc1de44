//! The command line: every command, flag and environment variable, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, for scripts (also in `--help`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success: acquired or held, allowed, flag on, found
  1  a negative answer: lock held by another, rate limited, flag off
  2  usage or validation error
  3  not found (lock lease, flag, config, limit, version)
  4  authentication failed
  5  server unreachable or storage failure
  6  lock run: the lease was lost while the command ran";

/// OctoStore: locks with fencing tokens, rate limits, feature flags and a config store.
#[derive(Debug, Parser)]
#[command(name = "octostore", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives, for commands that work on the embedded store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The SQLite file of the embedded store.
    #[arg(
        long,
        global = true,
        env = "OCTOSTORE_DB",
        default_value = "octostore.db"
    )]
    pub db: PathBuf,
    /// fsync every commit, surviving power loss (default: survive process crashes).
    #[arg(long, global = true, env = "OCTOSTORE_SYNC_EVERY_COMMIT")]
    pub sync_every_commit: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OCTOSTORE_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
    /// Keep everything in memory (nothing survives a restart) instead of `--db`.
    #[arg(long)]
    pub memory: bool,
    #[command(flatten)]
    pub github: GithubArgs,
    #[command(flatten)]
    pub quotas: QuotaArgs,
}

/// GitHub sign-in; all of id, secret and redirect URL are needed to enable it.
#[derive(Debug, Args)]
pub struct GithubArgs {
    /// OAuth app client id.
    #[arg(long, env = "OCTOSTORE_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// OAuth app client secret (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "OCTOSTORE_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// Public URL of this server's /auth/github/callback.
    #[arg(long, env = "OCTOSTORE_GITHUB_REDIRECT_URL")]
    pub github_redirect_url: Option<String>,
    /// GitHub web base URL (GitHub Enterprise: your server).
    #[arg(
        long,
        env = "OCTOSTORE_GITHUB_URL",
        default_value = "https://github.com"
    )]
    pub github_url: String,
    /// GitHub API base URL.
    #[arg(
        long,
        env = "OCTOSTORE_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
}

/// Per-user quotas.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Live locks one user may hold.
    #[arg(long, env = "OCTOSTORE_MAX_LOCKS", default_value_t = 1000)]
    pub max_locks: usize,
    /// Rate limits one user may have.
    #[arg(long, env = "OCTOSTORE_MAX_LIMITS", default_value_t = 1000)]
    pub max_limits: usize,
    /// Feature flags one user may have.
    #[arg(long, env = "OCTOSTORE_MAX_FLAGS", default_value_t = 1000)]
    pub max_flags: usize,
    /// Config keys one user may have.
    #[arg(long, env = "OCTOSTORE_MAX_CONFIGS", default_value_t = 1000)]
    pub max_configs: usize,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for LOGIN (a local user, created if new); prints only the token.
    Create {
        /// The user's login.
        login: String,
    },
}
