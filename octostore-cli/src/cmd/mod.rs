//! One module per command group, and how they print.

pub mod completions;
pub mod config;
pub mod flag;
pub mod limit;
pub mod lock;
pub mod lock_run;
pub mod serve;
pub mod token;

use std::process::ExitCode;

use serde::Serialize;

/// Prints `json` with `--json`, else the human line(s) `human` makes.
pub fn print<T: Serialize>(as_json: bool, json: &T, human: impl FnOnce() -> String) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string(json).expect("API objects serialize")
        );
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Exit code 1: a negative answer (held by another, rate limited, flag off).
pub fn negative() -> ExitCode {
    ExitCode::from(1)
}
