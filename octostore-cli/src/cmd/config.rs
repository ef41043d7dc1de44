//! `octostore config ...`.

use std::process::ExitCode;

use octostore_core::{Api, ConfigKey, Description, Error, HistoryPage, Result};
use octostore_http::dto::{
    ConfigInfo, ConfigList, ConfigListItem, Deleted, History, SchemaInfo, VersionInfo,
};

use super::print;
use crate::args::{ConfigCommand, Global, SchemaCommand};
use crate::failure::Failure;
use crate::target::Target;

pub fn run(global: &Global, command: ConfigCommand) -> Result<ExitCode, Failure> {
    if let ConfigCommand::Get {
        key, watch: true, ..
    } = &command
    {
        return super::watch::config(global, &ConfigKey::parse(key)?);
    }
    let target = Target::open(global)?;
    let api = target.api();
    match command {
        ConfigCommand::Set {
            key,
            value,
            description,
            if_version,
        } => {
            let key = ConfigKey::parse(&key)?;
            let value = serde_json::from_str(&value).map_err(|e| not_json(&key, &value, &e))?;
            let description = description.map(Description::new).transpose()?;
            let entry = api.put_config_if(&key, value, description, if_version)?;
            let entry = ConfigInfo::from(entry);
            print(global.json, &entry, || {
                format!("{} version={}", entry.key, entry.version)
            });
        }
        ConfigCommand::Rollback {
            key,
            version,
            if_version,
        } => {
            let key = ConfigKey::parse(&key)?;
            let entry = ConfigInfo::from(api.rollback_config(&key, version, if_version)?);
            print(global.json, &entry, || {
                format!("{} version={}", entry.key, entry.version)
            });
        }
        ConfigCommand::Diff { key, from, to } => {
            let diff = api.diff_config(&ConfigKey::parse(&key)?, from, to)?;
            print(global.json, &diff.patch, || {
                let lines: Vec<String> = (diff.patch.0.iter())
                    .map(|op| serde_json::to_string(op).expect("a patch serializes"))
                    .collect();
                lines.join("\n")
            });
        }
        ConfigCommand::Get { key, version, .. } => {
            let entry = ConfigInfo::from(api.get_config(&ConfigKey::parse(&key)?, version)?);
            // The value alone, as JSON, so `$(octostore config get KEY)` is the value.
            print(global.json, &entry, || entry.value.to_string());
        }
        ConfigCommand::History { key, limit, after } => {
            let key = ConfigKey::parse(&key)?;
            let versions = if limit.is_none() && after.is_none() {
                api.config_history(&key)?
            } else {
                let page = api.config_history_page(&key, HistoryPage::new(after, limit)?)?;
                if let Some(next) = page.next {
                    eprintln!(
                        "more: octostore config history {key} --after {} --limit {}",
                        next.after(),
                        next.limit()
                    );
                }
                page.versions
            };
            let history = History {
                versions: versions.into_iter().map(VersionInfo::from).collect(),
            };
            print(global.json, &history, || {
                let lines: Vec<String> = history
                    .versions
                    .iter()
                    .map(|v| {
                        let by = v.created_by.as_deref().unwrap_or("-");
                        let at = v.created_at.to_rfc3339();
                        format!("{} {at} {by} {}", v.version, v.value)
                    })
                    .collect();
                lines.join("\n")
            });
        }
        ConfigCommand::Delete { key, purge } => {
            let key = ConfigKey::parse(&key)?;
            match purge {
                true => api.purge_config(&key)?,
                false => api.delete_config(&key)?,
            }
            print(global.json, &Deleted { deleted: true }, || {
                format!("deleted {key}")
            });
        }
        ConfigCommand::Undelete { key } => {
            let entry = ConfigInfo::from(api.undelete_config(&ConfigKey::parse(&key)?)?);
            print(global.json, &entry, || {
                format!("{} version={}", entry.key, entry.version)
            });
        }
        ConfigCommand::Schema { command } => schema(global, api, command)?,
        ConfigCommand::List { deleted } => {
            let configs = match deleted {
                true => api.deleted_configs()?,
                false => api.configs()?,
            };
            let list = ConfigList {
                configs: configs.into_iter().map(ConfigListItem::from).collect(),
            };
            print(global.json, &list, || {
                let lines: Vec<String> = list
                    .configs
                    .iter()
                    .map(|c| {
                        let mut line = format!(
                            "{} version={} updated_at={}",
                            c.key,
                            c.version,
                            c.updated_at.to_rfc3339()
                        );
                        if let Some(at) = c.deleted_at {
                            line.push_str(&format!(" deleted_at={}", at.to_rfc3339()));
                        }
                        line
                    })
                    .collect();
                lines.join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `octostore config schema ...`.
fn schema(global: &Global, api: &dyn Api, command: SchemaCommand) -> Result<(), Failure> {
    match command {
        SchemaCommand::Set { key, schema, force } => {
            let key = ConfigKey::parse(&key)?;
            let text = match schema.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| Error::invalid("schema", format!("cannot read {path}: {e}")))?,
                None => schema,
            };
            let schema = serde_json::from_str(&text)
                .map_err(|e| Error::invalid("schema", format!("not JSON ({e})")))?;
            let set = SchemaInfo::new(&key, api.set_config_schema(&key, schema, force)?);
            print(global.json, &set, || format!("schema set for {key}"));
        }
        SchemaCommand::Get { key } => {
            let key = ConfigKey::parse(&key)?;
            let got = SchemaInfo::new(&key, api.config_schema(&key)?);
            // The schema alone, as JSON, as `config get` prints a value.
            print(global.json, &got, || got.schema.to_string());
        }
        SchemaCommand::Delete { key } => {
            let key = ConfigKey::parse(&key)?;
            api.delete_config_schema(&key)?;
            print(global.json, &Deleted { deleted: true }, || {
                format!("deleted the schema of {key}")
            });
        }
    }
    Ok(())
}

/// The error for a `config set` value `text` that is not JSON. Text that does not begin as an
/// object, array or string does was most likely meant as a string: the error shows it quoted.
fn not_json(key: &ConfigKey, text: &str, e: &serde_json::Error) -> Error {
    let mut reason = format!("not JSON ({e})");
    if !text.trim_start().starts_with(['{', '[', '"']) {
        let string = serde_json::to_string(text).expect("a string serializes");
        // Single-quoted for the shell, each ' in it as '\''.
        let quoted = format!("'{}'", string.replace('\'', r"'\''"));
        reason.push_str(&format!(
            "; to store the text, quote it as a JSON string: octostore config set {key} {quoted}"
        ));
    }
    Error::invalid("value", reason)
}
