//! Why a command failed: an operation's error, from the store or the server, or one of the
//! CLI's own, which no store or server had a part in; each said in the command line's terms
//! (a field by its flag, `args::flag_of`), with what to do where the CLI knows.
//! `main.rs` maps each to an exit code.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use octostore_core::Error;

use crate::args::{flag_of, Global};

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// An operation failed, on the local store or the server (also a value refused before
    /// one was sent).
    Api(Error),
    /// No connection to `--server` could be made (`reason`: refused, no route): the
    /// operation was not sent.
    Unreachable { url: String, reason: io::ErrorKind },
    /// `--server` without a token.
    NoToken { url: String },
    /// The server refused the token from `from` (a file, or `OCTOSTORE_TOKEN`).
    TokenRefused { url: String, from: String },
    /// `lock acquire` or `lock run` found the lock held by another (`error`, a
    /// `LockHeld`): the command exits with `exit_code`, its `--conflict-exit-code`.
    Held { error: Error, exit_code: u8 },
    /// `serve` cannot listen on its address: in use, or not this user's to take.
    Bind { addr: SocketAddr, source: io::Error },
    /// `serve` cannot start its async runtime.
    Runtime(io::Error),
    /// `lock run` cannot watch its command: `what` it could not do (handle signals, wait
    /// for the command).
    Command {
        what: &'static str,
        source: io::Error,
    },
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Api(err)
    }
}

impl Failure {
    /// The failure as said to the user of `global`'s server, if any: a connection it refused,
    /// or a token it refused, with what to do.
    pub fn at(self, global: &Global) -> Self {
        let Some(url) = &global.server else {
            return self;
        };
        let url = url.trim_end_matches('/').to_owned();
        match self {
            Failure::Api(Error::Unauthorized) => Failure::TokenRefused {
                url,
                from: match &global.token_file {
                    Some(path) => path.display().to_string(),
                    None => "OCTOSTORE_TOKEN".into(),
                },
            },
            Failure::Api(err) => match refused_connection(&err) {
                Some(reason) => Failure::Unreachable { url, reason },
                None => Failure::Api(err),
            },
            other => other,
        }
    }
}

/// Why no connection could be made, if that is why `err` (a remote failure) happened.
fn refused_connection(err: &Error) -> Option<io::ErrorKind> {
    let Error::Remote { .. } = err else {
        return None;
    };
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(kind) = cause.downcast_ref::<io::Error>().map(io::Error::kind) {
            if matches!(
                kind,
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            ) {
                return Some(kind);
            }
        }
        source = cause.source();
    }
    None
}

/// `err` with the field it names said as its flag.
fn in_cli_terms(err: &Error) -> Option<Error> {
    match err {
        Error::Invalid { field, reason } => Some(Error::invalid(flag_of(field), reason.clone())),
        Error::TooLarge { field, size, limit } => Some(Error::TooLarge {
            field: flag_of(field),
            size: *size,
            limit: *limit,
        }),
        _ => None,
    }
}

/// Where a token for `url` comes from: `which` (one, a new one) is made so.
fn how_to_get_a_token(url: &str, which: &str) -> String {
    format!(
        "create {which} with `octostore token create LOGIN` on the server's store (its --db or \
         --database-url), or sign in at {url}/auth/github if the server has GitHub sign-in"
    )
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Api(err) | Failure::Held { error: err, .. } => match in_cli_terms(err) {
                Some(said) => said.fmt(f),
                None => err.fmt(f),
            },
            Failure::Unreachable { url, reason } => write!(f, "cannot reach {url}: {reason}"),
            Failure::NoToken { url } => write!(
                f,
                "no token for {url}: pass --token-file FILE or set OCTOSTORE_TOKEN; {}",
                how_to_get_a_token(url, "one")
            ),
            Failure::TokenRefused { url, from } => write!(
                f,
                "{url} refused the token from {from} (unknown, revoked or rotated away): {}",
                how_to_get_a_token(url, "a new one")
            ),
            Failure::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            Failure::Runtime(_) => f.write_str("cannot start the runtime"),
            Failure::Command { what, .. } => write!(f, "cannot {what}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The operation's error stands for itself: its sources are the failure's.
            Failure::Api(err) | Failure::Held { error: err, .. } => err.source(),
            Failure::Bind { source, .. }
            | Failure::Runtime(source)
            | Failure::Command { source, .. } => Some(source),
            Failure::Unreachable { .. }
            | Failure::NoToken { .. }
            | Failure::TokenRefused { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use octostore_core::values::error::Chain;

    use super::*;

    #[test]
    fn each_failure_reads_as_one_line_with_its_cause() {
        let busy = Failure::Bind {
            addr: "127.0.0.1:8080".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        assert_eq!(
            Chain(&busy).to_string(),
            format!(
                "cannot listen on 127.0.0.1:8080: {}",
                io::Error::from_raw_os_error(libc::EADDRINUSE)
            )
        );
        let wait = Failure::Command {
            what: "wait for the command",
            source: io::Error::other("ECHILD"),
        };
        assert_eq!(
            Chain(&wait).to_string(),
            "cannot wait for the command: ECHILD"
        );
        let api = Failure::from(octostore_core::Error::storage_caused(
            "sqlite",
            io::Error::other("disk I/O error"),
        ));
        assert_eq!(
            Chain(&api).to_string(),
            "storage failure: sqlite: disk I/O error"
        );
    }

    /// As the local store makes them, and as the remote client rebuilds them from a server's
    /// `field`.
    #[test]
    fn an_api_field_is_said_as_its_flag() {
        for (err, said) in [
            (
                Error::invalid("max_requests", "must be between 1 and 10000, got 0"),
                "invalid --max: must be between 1 and 10000, got 0",
            ),
            (
                Error::invalid("ttl_seconds", "must be positive"),
                "invalid --ttl: must be positive",
            ),
            (
                Error::TooLarge {
                    field: "description",
                    size: 9,
                    limit: 8,
                },
                "--description is 9 bytes, more than the limit of 8 bytes",
            ),
            // An argument, not a flag: said as it is.
            (
                Error::invalid("name", "must be 1 to 128 characters long, got 0"),
                "invalid name: must be 1 to 128 characters long, got 0",
            ),
        ] {
            assert_eq!(Failure::from(err).to_string(), said);
        }
    }
}
