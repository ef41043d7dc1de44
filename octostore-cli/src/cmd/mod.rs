//! One module per command group, and how they print.

pub mod completions;
pub mod config;
pub mod events;
pub mod flag;
pub mod flag_targeting;
pub mod limit;
pub mod lock;
pub mod lock_run;
pub mod man;
pub mod serve;
pub mod token;
pub mod watch;

use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

/// Writes `text` and a newline to stdout: every line a command prints goes through here.
pub fn out(text: &str) {
    out_bytes(format!("{text}\n").as_bytes());
}

/// Writes `bytes` to stdout. A reader that went away (`octostore … | head -1`) ends the
/// process at once and quietly, with exit 0, as ripgrep does (`println!` would panic: exit
/// 101 and a backtrace); another failure (a full disk) is said, with exit 7. Ending here
/// leaves nothing half done: each command prints after its operation has committed (`token
/// rotate`, which has a file to write after, prints with [`try_out`]).
///
/// Not SIGPIPE's default disposition (the other usual cure, dying silently of the signal):
/// std ignores SIGPIPE so that writes fail with `EPIPE` instead, and sockets too may raise
/// it. std sends with `MSG_NOSIGNAL`, but hyper writes with `writev`, which has no such flag:
/// with the default disposition, a client hanging up mid-answer would kill `serve`, and a
/// server closing a connection would kill a remote command or `lock run` (leaving its command
/// running and its lease held). `lock run`'s command starts with the default disposition
/// anyway: std restores it in every process it spawns.
pub fn out_bytes(bytes: &[u8]) {
    if let Err(e) = try_out(bytes) {
        end_on(&e);
    }
}

/// Writes `bytes` to stdout, or says why it could not.
pub fn try_out(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush())
}

/// Ends the process after a failed write to stdout (see [`out_bytes`]).
pub fn end_on(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("octostore: cannot write the output: {e}");
    std::process::exit(7);
}

/// Prints `json` with `--json`, else the human line(s) `human` makes.
pub fn print<T: Serialize>(as_json: bool, json: &T, human: impl FnOnce() -> String) {
    if as_json {
        out(&serde_json::to_string(json).expect("API objects serialize"));
    } else {
        let text = human();
        if !text.is_empty() {
            out(&text);
        }
    }
}

/// Exit code 1: a negative answer (held by another, rate limited, flag off, events to
/// resync).
pub fn negative() -> ExitCode {
    ExitCode::from(1)
}
