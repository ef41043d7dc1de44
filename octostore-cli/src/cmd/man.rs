//! `octostore man`: the manual page of octostore and of every command, as one roff page.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::args::Cli;

pub fn run() -> ExitCode {
    // Into memory first: a reader gone (`| head`) then ends quietly in `out_bytes`.
    super::out_bytes(&page());
    ExitCode::SUCCESS
}

/// The page: clap_mangen's page of `octostore` (its options are the global ones), then a
/// section per command, depth first, with the command's own options and notes.
fn page() -> Vec<u8> {
    let mut root = Cli::command();
    root.build();
    let mut page = Vec::new();
    render(&root, &mut page);
    let mut commands = Vec::new();
    gather(&root, &mut commands);
    for command in commands {
        // The globals are on the first page; each command lists only its own options.
        let own = command.clone().mut_args(|arg| {
            let global = arg.is_global_set();
            arg.hide(global)
        });
        let mut section = Vec::new();
        render(&own, &mut section);
        let title = command.get_bin_name().unwrap_or(command.get_name());
        page.extend_from_slice(format!(".SH \"{}\"\n", title.to_uppercase()).as_bytes());
        // The command's page, its title dropped and its sections made subsections.
        for line in String::from_utf8_lossy(&section).lines() {
            if line.starts_with(".TH ") {
                continue;
            }
            match line.strip_prefix(".SH ") {
                Some(heading) => page.extend_from_slice(format!(".SS {heading}\n").as_bytes()),
                None => page.extend_from_slice(format!("{line}\n").as_bytes()),
            }
        }
    }
    page
}

fn render(command: &clap::Command, into: &mut Vec<u8>) {
    clap_mangen::Man::new(command.clone())
        .render(into)
        .expect("writing to memory cannot fail");
}

/// Every command under `command`, depth first (`lock`, then `lock acquire`...).
fn gather<'a>(command: &'a clap::Command, into: &mut Vec<&'a clap::Command>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        into.push(sub);
        gather(sub, into);
    }
}
