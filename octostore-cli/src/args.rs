//! The command line: every command, flag and environment variable, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use clap_complete::Shell;
use octostore_core::{Settings, Ttl};
use octostore_http::{ConnectionLimits, QueueLimits};

mod targeting;

pub use targeting::{
    EvalArgs, PrereqCommand, RuleCommand, SegmentCommand, VariantCommand, WhereArgs,
};

/// Exit codes, for scripts (also in `--help`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success: acquired or held, allowed, flag on, found
  1  a negative answer: lock held by another (lock acquire, lock run: --conflict-exit-code),
     rate limited, flag off, events to resync, a config at another version than --if-version
  2  usage or validation error (a config value its key's schema refuses among them), or a
     quota reached
  3  not found (lock lease, flag, config, limit, version)
  4  authentication failed
  5  server unreachable or storage failure
  6  lock run: the lease was lost while the command ran (or before it could start)
  7  this machine refused octostore what it needs: serve cannot listen on its address
     (in use?) or start its runtime; lock run cannot handle signals or wait for the command;
     stdout cannot be written (a full disk; a reader gone, as with `| head`, is exit 0)
`lock run` otherwise exits with the command's own status (128+N if killed by signal N).";

/// The flag that gives each field an error may name, so that errors say what to type: the
/// API's fields (refused by the local store or by a server alike) and the CLI's own. A field
/// not here is an argument (`name`, `key`, `value`, `login`...), said as it is.
const FLAGS: [(&str, &str); 30] = [
    ("ttl_seconds", "--ttl"),
    ("max_requests", "--max"),
    ("window_seconds", "--window"),
    ("percentage", "--percentage"),
    ("client_id", "--client-id"),
    ("lease_id", "--lease"),
    ("subject", "--subject"),
    ("description", "--description"),
    ("version", "--version"),
    ("after", "--after"),
    ("limit", "--limit"),
    ("url", "--server"),
    ("server", "--server"),
    ("token_file", "--token-file"),
    ("db", "--db"),
    ("database_url", "--database-url"),
    ("database_schema", "--database-schema"),
    ("database_ca_file", "--database-ca-file"),
    ("database_pool_size", "--database-pool-size"),
    ("term_grace", "--term-grace"),
    ("memory", "--memory"),
    ("write_token", "--write-token"),
    ("lease_file", "--lease-file"),
    ("since", "--since"),
    ("kind", "--kind"),
    ("prefix", "--prefix"),
    ("if_version", "--if-version"),
    ("where", "--where"),
    ("where_json", "--where-json"),
    ("prop", "--prop"),
];

/// How the command line names `field`: its flag, or the field itself if no flag gives it.
pub fn flag_of(field: &'static str) -> &'static str {
    FLAGS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(field, |(_, flag)| flag)
}

/// OctoStore: locks with fencing tokens, rate limits, feature flags and a config store, on a
/// local file (default), a shared PostgreSQL database (--database-url) or a remote server
/// (--server).
#[derive(Debug, Parser)]
#[command(name = "octostore", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the subcommand: in each command's help,
/// under headings of their own, after the command's own options.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// A remote server's URL; without it, commands run on the local file (--db) or the
    /// database (--database-url) in this process.
    #[arg(long, global = true, env = "OCTOSTORE_URL")]
    pub server: Option<String>,
    /// A file holding the bearer token for --server (or set OCTOSTORE_TOKEN).
    #[arg(long, global = true, env = "OCTOSTORE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The local user to act as on the local file or database (default: the OS user name).
    #[arg(long, global = true, env = "OCTOSTORE_USER")]
    pub user: Option<String>,
    /// Print the API's JSON objects instead of short human output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The store commands open in this process: the local file, or a shared database.
#[derive(Debug, Args)]
#[command(next_help_heading = "Store options")]
pub struct StoreArgs {
    /// A PostgreSQL database that several servers share (postgres://USER[:PASSWORD]@HOST/DB),
    /// used instead of --db; prefer the environment variable for a URL with a password. TLS
    /// as its sslmode says (disable, prefer: the default, require, verify-ca, verify-full).
    #[arg(
        long,
        global = true,
        env = "OCTOSTORE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The PEM file of the CA that signed the database's certificate (the URL's sslrootcert):
    /// with ?sslmode=verify-full, the server must prove it is the host --database-url names.
    #[arg(
        long,
        global = true,
        env = "OCTOSTORE_DATABASE_CA_FILE",
        value_name = "FILE"
    )]
    pub database_ca_file: Option<PathBuf>,
    /// The schema of --database-url holding OctoStore's tables, created if missing (default:
    /// the connection's search path, usually public).
    #[arg(long, global = true, env = "OCTOSTORE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// How many connections to --database-url this process opens at most (default 16): every
    /// node's count together must stay under the database's max_connections.
    #[arg(
        long,
        global = true,
        env = "OCTOSTORE_DATABASE_POOL_SIZE",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_pool_size: Option<u32>,
    // The help names the default's rule and this user's file (`store_path`); a default
    // resolved only when a store is opened, so that a user without one can still ask for help.
    #[arg(
        long,
        global = true,
        env = "OCTOSTORE_DB",
        value_name = "FILE",
        help = crate::store_path::db_help()
    )]
    pub db: Option<PathBuf>,
    /// fsync every commit, surviving power loss (default: survive process crashes).
    #[arg(long, global = true, env = "OCTOSTORE_SYNC_EVERY_COMMIT")]
    pub sync_every_commit: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Distributed locks with fencing tokens.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Sliding-window rate limits.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Feature flags: percentage rollouts, rules, segments, variants and prerequisites.
    #[command(subcommand)]
    Flag(FlagCommand),
    /// The versioned config store.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The change log after --since, oldest first, one line per event: your flags', configs'
    /// and limit resets', and every user's locks' (the index to go on from is printed on
    /// stderr; exit 1 when the events after --since were pruned: re-read the state).
    Events {
        /// The events after index N (0: from the first).
        #[arg(long, value_name = "N", default_value_t = 0)]
        since: u64,
        /// Only events of KIND: lock, limit, flag or config (repeatable, or comma-separated).
        #[arg(long, value_name = "KIND", value_delimiter = ',')]
        kind: Vec<String>,
        /// Only events of names (or config keys) starting with PREFIX.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Follow the change log: each new event as it is made, one line each (a JSON object with
    /// --json), the same events as `events`; on a server by long polls. When events were
    /// pruned before they could be read, a note on stderr, then it goes on. Runs until
    /// interrupted.
    Watch {
        /// The events after index N (default: from now on).
        #[arg(long, value_name = "N")]
        since: Option<u64>,
        /// Only events of KIND: lock, limit, flag or config (repeatable, or comma-separated).
        #[arg(long, value_name = "KIND", value_delimiter = ',')]
        kind: Vec<String>,
        /// Only events of names (or config keys) starting with PREFIX.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
    /// Print the manual page (roff) of octostore and every command, for `man`: `octostore man
    /// > ~/.local/share/man/man1/octostore.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OCTOSTORE_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
    /// Keep everything in memory (nothing survives a restart) instead of --db or
    /// --database-url.
    #[arg(long)]
    pub memory: bool,
    /// At start, issue a token for LOGIN (a local user, created if missing) and write it to
    /// FILE, readable by its owner only (replaced whole; a symlink is refused): the way to a
    /// first token on --memory. Repeatable.
    #[arg(long, value_name = "LOGIN=FILE")]
    pub write_token: Vec<String>,
    /// Do not serve the web console at /ui (served by default: a page that signs in with a
    /// token, or GitHub, and uses the API like any client).
    #[arg(long, env = "OCTOSTORE_NO_UI")]
    pub no_ui: bool,
    #[command(flatten)]
    pub github: GithubArgs,
    #[command(flatten)]
    pub quotas: QuotaArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub events: EventLogArgs,
    /// How long a deleted config key is kept for `config undelete` (its history with it):
    /// `7d`, `12h`, or a number of seconds; 0 erases deleted keys at once. A sweep forgets
    /// the keys deleted longer ago.
    #[arg(
        long,
        env = "OCTOSTORE_CONFIG_RETENTION",
        default_value_t = Settings::default().config_retention.into(),
        value_parser = retention,
        value_name = "DURATION"
    )]
    pub config_retention: humantime::Duration,
    #[command(flatten)]
    pub log: LogArgs,
}

/// How much of the change log the store keeps (what `events`, `watch` and GET /events can
/// still read; a reader from further back is told to resync).
#[derive(Debug, Args)]
pub struct EventLogArgs {
    /// The newest events kept at least (unless older than --events-max-age).
    #[arg(
        long,
        env = "OCTOSTORE_EVENTS_KEPT",
        default_value_t = Settings::default().events_kept,
        value_parser = at_least_one
    )]
    pub events_kept: usize,
    /// How long an event is kept at most: `90s`, `30m`, `24h`, or a number of seconds.
    #[arg(
        long,
        env = "OCTOSTORE_EVENTS_MAX_AGE",
        default_value_t = Settings::default().events_max_age.into(),
        value_parser = timeout
    )]
    pub events_max_age: humantime::Duration,
}

/// What the server logs, and how (RUST_LOG filters it).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log one line per request (method, route, status, duration, client address, bytes) at
    /// INFO on the target octostore::access.
    #[arg(long, env = "OCTOSTORE_ACCESS_LOG")]
    pub access_log: bool,
    /// How log lines are written on stderr: text for people, or json, one object a line.
    #[arg(long, env = "OCTOSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The form of `serve`'s log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text an event, for people.
    Text,
    /// One JSON object an event, its fields at the top level.
    Json,
}

/// GitHub sign-in; the client id, secret and redirect URL enable it together.
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
    /// Bytes one user's configs may keep: every kept version's value (compact JSON) and
    /// description; a put past it is refused.
    #[arg(
        long,
        env = "OCTOSTORE_MAX_CONFIG_BYTES_PER_USER",
        default_value_t = Settings::default().config_bytes_per_user
    )]
    pub max_config_bytes_per_user: u64,
}

/// The cap on connections and the timeouts for slow or idle clients.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Connections served at once; at the cap, new ones wait in the listen backlog while the
    /// connections waiting for a request are closed.
    #[arg(
        long,
        env = "OCTOSTORE_MAX_CONNECTIONS",
        default_value_t = ConnectionLimits::default().max_connections,
        value_parser = at_least_one
    )]
    pub max_connections: usize,
    /// Time for a request's headers, from their first byte.
    #[arg(
        long,
        env = "OCTOSTORE_HEADER_TIMEOUT",
        default_value_t = ConnectionLimits::default().header_timeout.into(),
        value_parser = timeout
    )]
    pub header_timeout: humantime::Duration,
    /// Time for a request's body, from the end of its headers (then 408).
    #[arg(
        long,
        env = "OCTOSTORE_BODY_TIMEOUT",
        default_value_t = ConnectionLimits::default().body_timeout.into(),
        value_parser = timeout
    )]
    pub body_timeout: humantime::Duration,
    /// Time a keep-alive connection may wait for its next request.
    #[arg(
        long,
        env = "OCTOSTORE_IDLE_TIMEOUT",
        default_value_t = ConnectionLimits::default().idle_timeout.into(),
        value_parser = timeout
    )]
    pub idle_timeout: humantime::Duration,
}

/// How many operations may wait for the store, and how long: past either, 503 with
/// Retry-After, the operation not run.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Operations waiting for the store (queued or running) at once; more are answered 503.
    #[arg(
        long,
        env = "OCTOSTORE_MAX_QUEUED",
        default_value_t = QueueLimits::default().max_queued,
        value_parser = at_least_one
    )]
    pub max_queued: usize,
    /// How long an operation may wait for the store to start it (behind other operations, or
    /// for another process holding the file); then 503, the operation not run.
    #[arg(
        long,
        env = "OCTOSTORE_QUEUE_TIMEOUT",
        default_value_t = QueueLimits::default().timeout.into(),
        value_parser = timeout
    )]
    pub queue_timeout: humantime::Duration,
    /// The longest a request waits for a held lock or for a change, whatever it asks (at
    /// most the API's 300 s): `30s`, `2m`, or a number of seconds.
    #[arg(long, env = "OCTOSTORE_MAX_WAIT", value_parser = timeout)]
    pub max_wait: Option<humantime::Duration>,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A server timeout: `500ms`, `10s`, `2m`, or a number of seconds; not zero, at most
/// [`LONGEST`].
fn timeout(text: &str) -> Result<humantime::Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err("must be longer than zero".into()),
        timeout => Ok(timeout.into()),
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for LOGIN on the local file (the user is created if new); prints only
    /// the token.
    Create {
        /// The user's login.
        login: String,
    },
    /// List a local user's tokens (ids and creation times; secrets are never stored).
    List {
        /// The user's login (default: --user).
        login: Option<String>,
    },
    /// Revoke one of a local user's tokens by id.
    Revoke {
        /// The token's id, from `token list`.
        id: uuid::Uuid,
        /// The user's login (default: --user).
        #[arg(long = "of")]
        login: Option<String>,
    },
    /// Replace the token of --server with a new one; prints only the new token, and replaces
    /// the token file's contents with it (whole, mode 0600) if the token came from one.
    Rotate,
}

/// The longest duration any flag takes: longer is surely a mistake, and far longer would
/// overflow the clock's instants.
const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);

/// A duration as every duration flag spells it: `500ms`, `30s`, `2m`, `1h`, or a number of
/// seconds.
fn spelled_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string()),
    }
}

/// A duration flag: `500ms`, `30s`, `2m`, or a number of seconds; at most [`LONGEST`].
fn duration(text: &str) -> Result<Duration, String> {
    let duration = spelled_duration(text)?;
    if duration > LONGEST {
        return Err("must be at most 30 days".into());
    }
    Ok(duration)
}

/// How long deleted config keys are kept: a duration of at most 10 years, zero included.
fn retention(text: &str) -> Result<humantime::Duration, String> {
    let duration = spelled_duration(text)?;
    if duration > Duration::from_secs(3650 * 24 * 60 * 60) {
        return Err("must be at most 10 years (3650d)".into());
    }
    Ok(duration.into())
}

/// A lease's TTL, spelled as a duration (`90`, `90s`, `5m`, `1h`): whole seconds, within
/// what the core's `Ttl` accepts.
fn ttl(text: &str) -> Result<Ttl, String> {
    let longest = Duration::from_secs(Ttl::MAX_SECONDS.into());
    let range = format!(
        "must be whole seconds, 1s to {}",
        humantime::format_duration(longest)
    );
    let duration = spelled_duration(text).map_err(|e| format!("{range} ({e})"))?;
    if duration.subsec_nanos() != 0 {
        return Err(range);
    }
    i64::try_from(duration.as_secs())
        .ok()
        .and_then(|seconds| Ttl::seconds(seconds).ok())
        .ok_or(range)
}

/// How to take a lock.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The lock.
    pub name: String,
    /// How long the lease lasts unless renewed: whole seconds, 1s to 1h (90, 90s, 5m, 1h).
    #[arg(long, value_parser = ttl, value_name = "DURATION")]
    pub ttl: Ttl,
    /// While another holds the lock, keep trying for at most this long (500ms, 30s, 2m, or
    /// seconds; at most 30 days), then give up as held by another. Waiting retries the
    /// acquire, pausing at most 1s between tries.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub wait: Option<Duration>,
    /// Try once: if another holds the lock, give up at once.
    #[arg(short = 'n', long, conflicts_with = "wait")]
    pub no_wait: bool,
    /// The exit code when another holds the lock (default 1), as flock -E: so that a script
    /// can tell a lock taken from a command's own exit 1.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(0..=255)
    )]
    pub conflict_exit_code: u8,
    /// Who this process is among those sharing the token (default: a fresh id per run).
    #[arg(long)]
    pub client_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take the lock; exit 1 if another holds it.
    ///
    /// Tries once unless --wait is given (-n, to try once, is accepted too, as `lock run`
    /// takes it).
    Acquire {
        #[command(flatten)]
        acquire: AcquireArgs,
        /// Also write the lease to FILE, for `lock renew` and `lock release --lease-file`: the
        /// API's JSON of it (name, lease_id, fencing_token, expires_at...), readable by its
        /// owner only (0600, replaced whole; a symlink is refused).
        #[arg(long, value_name = "FILE")]
        lease_file: Option<PathBuf>,
    },
    /// Give the lock back; with --lease-file, the file is removed once the lease is released
    /// or found gone.
    Release {
        #[command(flatten)]
        lease: LeaseArgs,
    },
    /// Extend a lease to now + --ttl; with --lease-file, the file is rewritten with the
    /// renewed lease.
    Renew {
        #[command(flatten)]
        lease: LeaseArgs,
        /// How long from now: whole seconds, 1s to 1h (90, 90s, 5m, 1h).
        #[arg(long, value_parser = ttl, value_name = "DURATION")]
        ttl: Ttl,
    },
    /// Who holds the lock (exit 0 either way).
    Status {
        /// The lock.
        name: String,
    },
    /// The caller's live leases.
    List {
        /// Every user's live leases instead (lock names are one namespace), by name.
        #[arg(long)]
        all: bool,
    },
    /// Run a command while holding the lock, renewing it in the background.
    ///
    /// While another holds the lock it waits, without bound, as flock does: -n tries once,
    /// --wait DURATION waits at most that long.
    #[command(after_help = LOCK_RUN_HELP)]
    Run(RunArgs),
}

/// Which lease to release or renew: its lock and id, or a lease file holding both.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("lease_source").required(true).args(["lease", "lease_file"])))]
pub struct LeaseArgs {
    /// The lock (with --lease-file, if given, it must be the file's).
    #[arg(required_unless_present = "lease_file")]
    pub name: Option<String>,
    /// The lease id from acquire.
    #[arg(long)]
    pub lease: Option<uuid::Uuid>,
    /// The lease written by `lock acquire --lease-file FILE`.
    #[arg(long, value_name = "FILE")]
    pub lease_file: Option<PathBuf>,
}

/// What `lock run` promises, and on what assumption (also in `--help`).
const LOCK_RUN_HELP: &str = "\
The command runs in a process group of its own; SIGINT, SIGTERM and SIGHUP are passed on to
the whole group. The lease's local end is this process's monotonic instant just before the
acquire or renew request (the latest confirmed) was sent, plus the TTL; each renewal is
waited for only until then, and a confirmation arriving later counts as a lost lease. If no
renewal is confirmed by --term-grace before the lease's end, or one is refused, the group gets
SIGTERM, then SIGKILL at the lease's end less a margin of 250 ms + 0.1 % of the TTL, and
`lock run` exits 6, as it does whenever the lease was lost while the command ran. Whatever
the command leaves running in its group when it exits gets SIGTERM, then SIGKILL a
--term-grace later, before the lock is released. At a terminal the group gets its foreground;
ctrl-z stops the group and `lock run` (no renewals meanwhile), fg continues both unless the
lease ran out. So no process of the group outlives the lease,
assuming this machine's clock and the server's tick at the same rate (to within 0.1 %) and
the server's clock does not jump: the server counts the TTL from when it handled the request,
which is after it was sent. OCTOSTORE_TOKEN and OCTOSTORE_TOKEN_FILE are removed from the
command's environment unless --pass-token.

The command's environment also has:
  OCTOSTORE_LOCK           the lock's name
  OCTOSTORE_LEASE_ID       the lease's id
  OCTOSTORE_FENCING_TOKEN  the lease's fencing token: pass it to what the lock protects

Exit codes of lock run:
  N    the command's own exit status, once it ran (128+N if killed by signal N)
  1 (or --conflict-exit-code)  another holds the lock
  2    usage or validation error (also: the command cannot be started), or a quota reached
  4    authentication failed
  5    server unreachable or storage failure
  6    the lease was lost while the command ran (or before it could start)
  7    signals cannot be handled or the command cannot be waited for";

/// `lock run`: the lock, the command, and how to stop it.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub acquire: AcquireArgs,
    /// How long before the lease's end the command gets SIGTERM if no renewal was confirmed
    /// (default: a third of the TTL, at most 5s; at most half the TTL).
    #[arg(long, value_parser = duration)]
    pub term_grace: Option<Duration>,
    /// Leave OCTOSTORE_TOKEN and OCTOSTORE_TOKEN_FILE in the command's environment.
    #[arg(long)]
    pub pass_token: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Count one request if allowed; exit 1 if rate limited.
    Check {
        /// The limit.
        name: String,
        /// Requests allowed per window (1 to 10000).
        #[arg(long)]
        max: i64,
        /// Window in seconds (1 to 86400).
        #[arg(long)]
        window: i64,
    },
    /// The limit's state, without counting a request.
    Status {
        /// The limit.
        name: String,
    },
    /// Forget the limit.
    Reset {
        /// The limit.
        name: String,
    },
    /// The caller's limits.
    List,
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Create or replace a flag: omitting --percentage clears it (`flag enable` and `flag
    /// disable` keep it).
    #[command(group(ArgGroup::new("state").required(true).args(["enable", "disable"])))]
    Set {
        /// The flag.
        name: String,
        /// Turn it on.
        #[arg(long)]
        enable: bool,
        /// Turn it off.
        #[arg(long)]
        disable: bool,
        /// Only for this percentage of subjects (0 to 100).
        #[arg(long)]
        percentage: Option<i64>,
    },
    /// Turn an existing flag on, keeping its percentage (exit 3 if there is no such flag).
    Enable {
        /// The flag.
        name: String,
    },
    /// Turn an existing flag off, keeping its percentage (exit 3 if there is no such flag).
    Disable {
        /// The flag.
        name: String,
    },
    /// Whether the flag is on for a subject: prints on/off, exit 0 if on, 1 if off.
    ///
    /// A flag with rules is evaluated for a context of the subject alone: `flag eval`
    /// gives properties too, and says why.
    Get {
        /// The flag.
        name: String,
        /// Who to evaluate for (default: the caller's login).
        #[arg(long)]
        subject: Option<String>,
    },
    /// Delete a flag.
    Delete {
        /// The flag.
        name: String,
    },
    /// The caller's flags.
    List,
    /// A flag's rules: who it is on for, by conditions on the evaluation context.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Named sets of conditions that rules of any of your flags share.
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// A flag's variants: weighted values for the subjects it is on for.
    #[command(subcommand)]
    Variant(VariantCommand),
    /// The flags a flag requires to be on first.
    #[command(subcommand, visible_alias = "prerequisite")]
    Prereq(PrereqCommand),
    /// Evaluate a flag for a context (a subject and properties): exit 0 if on, 1 if off.
    ///
    /// Prints on or off, then `variant NAME`, `value JSON` and `reason REASON`, one a line,
    /// those it has (--json: the API's evaluation). Reasons: STATIC, SPLIT (a percentage or
    /// variants decided), TARGETING_MATCH, DEFAULT (rules, none matched), DISABLED,
    /// PREREQUISITE_FAILED.
    Eval(EvalArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Store a JSON value as the key's next version.
    Set {
        /// The key.
        key: String,
        /// The value, as JSON (a string needs its quotes: '"text"').
        #[arg(value_name = "JSON")]
        value: String,
        /// What the value is for (default: the previous version's).
        #[arg(long)]
        description: Option<String>,
        /// Compare-and-set: store it only if the key's latest version is N (0: only if the
        /// key does not exist); otherwise exit 1 and write nothing.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
    },
    /// Print the latest value, or --version N; with --watch, then each new value as it is
    /// put, until interrupted.
    Get {
        /// The key.
        key: String,
        /// A past version.
        #[arg(long, conflicts_with = "watch")]
        version: Option<i64>,
        /// Then print each new value as it is put (nothing until the key has one).
        #[arg(long)]
        watch: bool,
    },
    /// Every kept version, oldest first; with --limit or --after, one page of them (the next
    /// page's --after is printed on stderr).
    History {
        /// The key.
        key: String,
        /// A page of at most N versions (1 to 100).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// A page of the versions after VERSION.
        #[arg(long, value_name = "VERSION")]
        after: Option<u64>,
    },
    /// Store kept version VERSION's value and description again, as the key's next version.
    Rollback {
        /// The key.
        key: String,
        /// The kept version to store again.
        version: u64,
        /// Compare-and-set: only if the key's latest version is N; otherwise exit 1.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
    },
    /// What changed from version FROM to version TO: a JSON Patch (RFC 6902), an operation
    /// a line (--json: the patch as one array).
    Diff {
        /// The key.
        key: String,
        /// The version the patch applies to.
        from: u64,
        /// The version the patch makes.
        to: u64,
    },
    /// Delete the key and its history.
    Delete {
        /// The key.
        key: String,
        /// Erase it at once, history and all (a deleted key too), instead of keeping it for
        /// `config undelete` during the server's retention.
        #[arg(long)]
        purge: bool,
    },
    /// Bring back a deleted key as it was (its history with it); prints its latest version.
    Undelete {
        /// The key.
        key: String,
    },
    /// The caller's keys.
    List {
        /// The deleted keys that `config undelete` can still bring back instead.
        #[arg(long)]
        deleted: bool,
    },
    /// A key's JSON Schema (draft 2020-12), which every put to the key must match (exit 2
    /// naming where a value fails and the rule it breaks).
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Set the key's schema (refused, exit 2, if the key's latest value does not match it,
    /// unless --force).
    Set {
        /// The key.
        key: String,
        /// The schema, as JSON, or @FILE to read it from a file.
        #[arg(value_name = "JSON")]
        schema: String,
        /// Set it even if the key's latest value does not match it.
        #[arg(long)]
        force: bool,
    },
    /// Print the key's schema.
    Get {
        /// The key.
        key: String,
    },
    /// Delete the key's schema: its puts are no longer checked.
    Delete {
        /// The key.
        key: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every long flag of `command` and the commands under it.
    fn flags(command: &clap::Command, into: &mut Vec<String>) {
        into.extend(
            command
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}")),
        );
        for sub in command.get_subcommands() {
            flags(sub, into);
        }
    }

    #[test]
    fn every_flag_errors_name_is_a_flag() {
        let mut all = Vec::new();
        flags(&Cli::command(), &mut all);
        for (field, flag) in FLAGS {
            assert!(all.iter().any(|f| f == flag), "{field}: no flag {flag}");
        }
    }
}
