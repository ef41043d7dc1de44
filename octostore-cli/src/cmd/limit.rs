//! `octostore limit ...`.

use std::process::ExitCode;

use octostore_core::{Decision, LimitName, RatePolicy, Result};
use octostore_http::dto::{LimitDecision, LimitInfo, LimitList, LimitReset};

use super::{negative, print};
use crate::args::{Global, LimitCommand};
use crate::failure::Failure;
use crate::target::Target;

pub fn run(global: &Global, command: LimitCommand) -> Result<ExitCode, Failure> {
    let target = Target::open(global)?;
    let api = target.api();
    match command {
        LimitCommand::Check { name, max, window } => {
            let decision = api.check(&LimitName::parse(&name)?, RatePolicy::new(max, window)?)?;
            return Ok(print_decision(global.json, &decision));
        }
        LimitCommand::Status { name } => {
            let decision = api.limit_status(&LimitName::parse(&name)?)?;
            return Ok(print_decision(global.json, &decision));
        }
        LimitCommand::Reset { name } => {
            let name = LimitName::parse(&name)?;
            api.reset_limit(&name)?;
            print(global.json, &LimitReset { reset: true }, || {
                format!("reset {name}")
            });
        }
        LimitCommand::List => {
            let limits = api.limits()?;
            let list = LimitList {
                limits: limits.iter().map(LimitInfo::from).collect(),
            };
            print(global.json, &list, || {
                let lines: Vec<String> = list
                    .limits
                    .iter()
                    .map(|l| {
                        format!(
                            "{} count={}/{} window={}s remaining={} reset_at={}",
                            l.name,
                            l.current_count,
                            l.max_requests,
                            l.window_seconds,
                            l.remaining,
                            l.reset_at.to_rfc3339()
                        )
                    })
                    .collect();
                lines.join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the decision; exit 1 when not allowed.
fn print_decision(as_json: bool, decision: &Decision) -> ExitCode {
    print(as_json, &LimitDecision::from(decision), || {
        match decision.retry_after_seconds {
            None => format!(
                "allowed remaining={} reset_at={}",
                decision.remaining,
                decision.reset_at.to_rfc3339()
            ),
            Some(wait) => format!(
                "denied remaining={} retry_after={wait}s reset_at={}",
                decision.remaining,
                decision.reset_at.to_rfc3339()
            ),
        }
    });
    if decision.allowed {
        ExitCode::SUCCESS
    } else {
        negative()
    }
}
