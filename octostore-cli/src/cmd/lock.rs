//! `octostore lock ...`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use octostore_core::{
    AcquireStatus, Api, ClientId, Error, LeaseId, ListedLock, LockGrant, LockName, LockPage,
    LockStatus, Result,
};
use octostore_http::dto::{
    LockConflict, LockInfo, LockList, LockNotHeld, LockResponse, LockState, Released,
};

use super::{out, print};
use crate::args::{AcquireArgs, Global, LeaseArgs, LockCommand};
use crate::failure::Failure;
use crate::lease_file;
use crate::target::Target;

pub fn run(global: &Global, command: LockCommand) -> Result<ExitCode, Failure> {
    let target = Target::open(global)?;
    let api = target.api();
    match command {
        LockCommand::Acquire {
            acquire: args,
            lease_file,
        } => {
            let (grant, _) = acquire(api, &args, Wait::Once, global.json)?;
            let lease = LockResponse::new(grant.status, &grant.lease);
            if let Some(path) = &lease_file {
                keep(api, &grant, &lease, path)?;
            }
            print_lease(global.json, &lease);
        }
        LockCommand::Release { lease: args } => {
            let (name, id) = lease_of(&args)?;
            let released = api.release(&name, id);
            match (&released, &args.lease_file) {
                (Ok(()), Some(path)) => forget(path),
                (Err(Error::NotFound { .. }), Some(path)) => {
                    eprintln!(
                        "octostore: the lease in {} was already gone (expired or released); \
                         removing the file",
                        path.display()
                    );
                    forget(path);
                }
                _ => {}
            }
            released?;
            let released = Released {
                status: LockState::Released,
                message: "Lock released".into(),
            };
            print(global.json, &released, || format!("released {name}"));
        }
        LockCommand::Renew { lease: args, ttl } => {
            let (name, id) = lease_of(&args)?;
            let lease = LockResponse::new(AcquireStatus::Held, &api.renew(&name, id, ttl)?);
            if let Some(path) = &args.lease_file {
                lease_file::write(path, &lease)?;
            }
            print_lease(global.json, &lease);
        }
        LockCommand::Status { name } => {
            let name = LockName::parse(&name)?;
            match api.lock_status(&name)? {
                LockStatus::Held(lease) => {
                    print_lease(global.json, &LockResponse::new(AcquireStatus::Held, &lease));
                }
                LockStatus::Available => {
                    let free = LockNotHeld {
                        status: LockState::Available,
                        name: name.to_string(),
                        message: Some("Lock not currently held".into()),
                        waiters: None,
                    };
                    print(global.json, &free, || format!("available {name}"));
                }
            }
        }
        LockCommand::List { all } => {
            let locks: Vec<LockInfo> = match all {
                true => every_lease(api)?.iter().map(LockInfo::from).collect(),
                false => api.locks()?.iter().map(LockInfo::from).collect(),
            };
            let list = LockList {
                total: locks.len(),
                locks,
                next: None,
            };
            print(global.json, &list, || {
                let lines: Vec<String> = list
                    .locks
                    .iter()
                    .map(|l| {
                        let line = format!(
                            "{} lease_id={} fencing_token={} expires_at={}",
                            l.name,
                            l.lease_id,
                            l.fencing_token,
                            l.expires_at.to_rfc3339()
                        );
                        match l.waiters {
                            Some(waiters) => {
                                format!("{line} holder={} waiters={waiters}", l.holder)
                            }
                            None => line,
                        }
                    })
                    .collect();
                lines.join("\n")
            });
        }
        LockCommand::Run(args) => {
            return super::lock_run::run(target.into_api(), &args, global.json)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every user's live leases, by name, with their locks' waiters, read a page after another.
fn every_lease(api: &dyn Api) -> Result<Vec<ListedLock>> {
    let mut leases = Vec::new();
    let mut page = LockPage::new(None, Some(LockPage::MAX_LIMIT as u64))?;
    loop {
        let read = api.all_locks(&page)?;
        leases.extend(read.locks);
        match read.next {
            Some(next) => page = next,
            None => return Ok(leases),
        }
    }
}

fn print_lease(as_json: bool, lease: &LockResponse) {
    print(as_json, lease, || {
        let status = if lease.status == LockState::Acquired {
            "acquired"
        } else {
            "held"
        };
        format!(
            "{status} {} lease_id={} fencing_token={} expires_at={} holder={}",
            lease.name,
            lease.lease_id,
            lease.fencing_token,
            lease.expires_at.to_rfc3339(),
            lease.holder
        )
    });
}

/// Writes the lease just acquired to `path`. If it cannot, a lease this acquire made is given
/// back, since nobody could release it but its TTL (one the caller held before, `held`, is
/// left alone).
fn keep(api: &dyn Api, grant: &LockGrant, lease: &LockResponse, path: &Path) -> Result<()> {
    let kept = lease_file::write(path, lease);
    if kept.is_err()
        && grant.status == AcquireStatus::Acquired
        && api.release(&grant.lease.name, grant.lease.lease_id).is_ok()
    {
        eprintln!(
            "octostore: released {}: its lease could not be written",
            grant.lease.name
        );
    }
    kept
}

/// The lock and lease `args` name: NAME and `--lease`, or the lease in `--lease-file` (whose
/// lock must be NAME, if given).
fn lease_of(args: &LeaseArgs) -> Result<(LockName, LeaseId)> {
    let name = args.name.as_deref().map(LockName::parse).transpose()?;
    match (name, args.lease, &args.lease_file) {
        (Some(name), Some(id), None) => Ok((name, LeaseId(id))),
        (name, None, Some(path)) => {
            let lease = lease_file::read(path)?;
            let held = LockName::parse(&lease.name)?;
            match name {
                Some(name) if name != held => Err(Error::invalid(
                    "lease_file",
                    format!(
                        "{} holds a lease on lock {held}, not {name}",
                        path.display()
                    ),
                )),
                _ => Ok((held, LeaseId(lease.lease_id))),
            }
        }
        _ => unreachable!("clap requires --lease with NAME, or --lease-file"),
    }
}

/// Removes a lease file whose lease is released or gone; a file that cannot be removed is
/// said, the release stands.
fn forget(path: &Path) {
    if let Err(e) = lease_file::remove(path) {
        eprintln!("octostore: cannot remove {}: {e}", path.display());
    }
}

/// How long an acquire tries while another holds the lock, unless `-n` or `--wait` says.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// One try (`lock acquire`).
    Once,
    /// Until the lock is free (`lock run`, as `flock`).
    Forever,
}

/// Acquires, waiting while another holds the lock for as long as `args` say (by default,
/// `wait`); the grant, and the instant just before the request that won it was sent (the
/// lease ends no sooner than that instant plus the TTL). A waiting acquire tries once, says
/// on stderr that it waits, then waits in the lock's queue ([`Api::acquire_within`]: the
/// server's, or this process's on a file); a lock still held in the end is [`held`]. Every
/// run without `--client-id` is its own client, so two scripts sharing a token exclude each
/// other.
pub fn acquire(
    api: &dyn Api,
    args: &AcquireArgs,
    wait: Wait,
    as_json: bool,
) -> Result<(LockGrant, Instant), Failure> {
    let name = LockName::parse(&args.name)?;
    let client_id = match &args.client_id {
        Some(id) => ClientId::parse(id)?,
        None => ClientId::parse(&format!("cli-{}", uuid::Uuid::new_v4().simple()))?,
    };
    let start = Instant::now();
    // How long to wait; `None`: until the lock is ours.
    let patience = match (args.no_wait, args.wait, wait) {
        (true, _, _) | (false, None, Wait::Once) => Some(Duration::ZERO),
        (false, Some(wait), _) => Some(wait),
        (false, None, Wait::Forever) => None,
    };
    let outcome = match api.acquire(&name, args.ttl, Some(&client_id)) {
        Err(e @ Error::LockHeld { .. }) if patience != Some(Duration::ZERO) => {
            eprintln!("octostore: {e}; waiting");
            let left = patience.map_or(Duration::MAX, |p| p.saturating_sub(start.elapsed()));
            let sent = Instant::now();
            api.acquire_within(&name, args.ttl, Some(&client_id), left)
                .map(|grant| (grant, sent))
        }
        outcome => outcome.map(|grant| (grant, start)),
    };
    match outcome {
        Err(e @ Error::LockHeld { .. }) => Err(held(e, args, as_json)),
        outcome => Ok(outcome?),
    }
}

/// The failure of an acquire that found the lock held by another (`error`): the command's
/// `--conflict-exit-code`, and with `--json` the API's 409 answer on stdout.
fn held(error: Error, args: &AcquireArgs, as_json: bool) -> Failure {
    if as_json {
        if let Error::LockHeld {
            name,
            holder,
            expires_at,
        } = &error
        {
            let conflict = LockConflict::new(name, holder, *expires_at);
            out(&serde_json::to_string(&conflict).expect("API objects serialize"));
        }
    }
    Failure::Held {
        error,
        exit_code: args.conflict_exit_code,
    }
}
