//! `octostore flag ...`.

use std::process::ExitCode;

use octostore_core::{Api, FlagName, Percentage, Result, Subject};
use octostore_http::dto::{Deleted, FlagEvaluation, FlagInfo, FlagList};

use super::{flag_targeting, negative, print};
use crate::args::{FlagCommand, Global};
use crate::failure::Failure;
use crate::target::Target;

fn describe(flag: &FlagInfo) -> String {
    let state = if flag.enabled { "enabled" } else { "disabled" };
    let mut text = format!("{} {state}", flag.name);
    if let Some(p) = flag.percentage {
        text.push_str(&format!(" percentage={p}"));
    }
    // Its targeting, counted: `flag rule list` and the others show it.
    for (what, count) in [
        ("rules", flag.rules.len()),
        ("variants", flag.variants.len()),
        ("prerequisites", flag.prerequisites.len()),
    ] {
        if count > 0 {
            text.push_str(&format!(" {what}={count}"));
        }
    }
    text
}

/// `flag enable` and `flag disable`: the flag's percentage is kept.
fn set_enabled(global: &Global, api: &dyn Api, name: &str, enabled: bool) -> Result<()> {
    let flag = api.set_flag_enabled(&FlagName::parse(name)?, enabled)?;
    let info = FlagInfo::from(&flag);
    print(global.json, &info, || describe(&info));
    Ok(())
}

pub fn run(global: &Global, command: FlagCommand) -> Result<ExitCode, Failure> {
    // Their arguments parsed before the store is opened.
    let command = match command {
        FlagCommand::Rule(command) => return flag_targeting::rule(global, command),
        FlagCommand::Segment(command) => return flag_targeting::segment(global, command),
        FlagCommand::Variant(command) => return flag_targeting::variant(global, command),
        FlagCommand::Prereq(command) => return flag_targeting::prereq(global, command),
        FlagCommand::Eval(args) => return flag_targeting::eval(global, args),
        command => command,
    };
    let target = Target::open(global)?;
    let api = target.api();
    match command {
        FlagCommand::Set {
            name,
            enable,
            disable: _,
            percentage,
        } => {
            let percentage = percentage.map(Percentage::new).transpose()?;
            let flag = api.set_flag(&FlagName::parse(&name)?, enable, percentage)?;
            let info = FlagInfo::from(&flag);
            print(global.json, &info, || describe(&info));
        }
        FlagCommand::Enable { name } => set_enabled(global, api, &name, true)?,
        FlagCommand::Disable { name } => set_enabled(global, api, &name, false)?,
        FlagCommand::Get { name, subject } => {
            let name = FlagName::parse(&name)?;
            let subject = subject.as_deref().map(Subject::parse).transpose()?;
            let enabled = api.evaluate_flag(&name, subject.as_ref())?;
            let evaluation = FlagEvaluation {
                name: name.to_string(),
                enabled,
            };
            print(global.json, &evaluation, || {
                if enabled { "on" } else { "off" }.to_owned()
            });
            if !enabled {
                return Ok(negative());
            }
        }
        FlagCommand::Delete { name } => {
            let name = FlagName::parse(&name)?;
            api.delete_flag(&name)?;
            print(global.json, &Deleted { deleted: true }, || {
                format!("deleted {name}")
            });
        }
        FlagCommand::Rule(_)
        | FlagCommand::Segment(_)
        | FlagCommand::Variant(_)
        | FlagCommand::Prereq(_)
        | FlagCommand::Eval(_) => unreachable!("run above"),
        FlagCommand::List => {
            let flags = api.flags()?;
            let list = FlagList {
                flags: flags.iter().map(FlagInfo::from).collect(),
            };
            print(global.json, &list, || {
                let lines: Vec<String> = list.flags.iter().map(describe).collect();
                lines.join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
