//! Why a command failed: an operation's error, from the store or the server, or one of the
//! CLI's own, which no store or server had a part in. `main.rs` maps each to an exit code.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// An operation failed, on the local store or the server (also a value refused before
    /// one was sent).
    Api(octostore_core::Error),
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

impl From<octostore_core::Error> for Failure {
    fn from(err: octostore_core::Error) -> Self {
        Failure::Api(err)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Api(err) => err.fmt(f),
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
            Failure::Api(err) => err.source(),
            Failure::Bind { source, .. }
            | Failure::Runtime(source)
            | Failure::Command { source, .. } => Some(source),
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
}
