//! `octostore lock run NAME --ttl S -- CMD...`: `flock` for a cluster. Acquire, run the
//! command with the lease in its environment, renew at a third of the TTL, release at exit.
//!
//! If the lease is lost (renewal refused, or failing until the lease's deadline), the command
//! gets SIGTERM, then SIGKILL after a grace period, and the exit code is 6: whatever it was
//! doing is no longer protected by the lock. SIGINT, SIGTERM and SIGHUP sent to `octostore`
//! are passed on to the command, and the lock is released before `octostore` exits.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use octostore_core::{Api, Error, Lease, Result, Ttl};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::AcquireArgs;

/// Exit code when the lease was lost while the command ran.
const LEASE_LOST: u8 = 6;
/// How long a command gets between SIGTERM and SIGKILL once the lease is lost.
const GRACE: Duration = Duration::from_secs(5);
/// The longest pause between retries of a failing renewal.
const RETRY: Duration = Duration::from_secs(1);

pub fn run(api: &(dyn Api + Sync), args: &AcquireArgs, command: &[String]) -> Result<ExitCode> {
    let lease = super::lock::acquire(api, args)?.lease;
    let ttl = Ttl::seconds(args.ttl)?;
    let outcome = run_holding(api, &lease, ttl, command);
    match api.release(&lease.name, lease.lease_id) {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => eprintln!("octostore: could not release {}: {e}", lease.name),
    }
    outcome
}

fn run_holding(
    api: &(dyn Api + Sync),
    lease: &Lease,
    ttl: Ttl,
    command: &[String],
) -> Result<ExitCode> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .env("OCTOSTORE_LOCK", lease.name.as_str())
        .env("OCTOSTORE_LEASE_ID", lease.lease_id.to_string())
        .env("OCTOSTORE_FENCING_TOKEN", lease.fencing_token.to_string())
        .spawn()
        .map_err(|e| Error::invalid("command", format!("cannot run {}: {e}", command[0])))?;
    let pid = child.id() as libc::pid_t;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Storage(format!("cannot handle signals: {e}")))?;
    let signal_handle = signals.handle();

    std::thread::scope(|scope| {
        scope.spawn(move || {
            for signal in signals.forever() {
                send(pid, signal);
            }
        });
        let (exited, exit_seen) = mpsc::channel::<()>();
        let renewer = scope.spawn(move || keep_renewed(api, lease, ttl, pid, &exit_seen));
        let status = child.wait();
        let _ = exited.send(());
        let lost = renewer.join().expect("the renewer does not panic");
        signal_handle.close();
        let status =
            status.map_err(|e| Error::Storage(format!("cannot wait for the command: {e}")))?;
        Ok(if lost {
            eprintln!(
                "octostore: lost the lease on {} while the command ran",
                lease.name
            );
            ExitCode::from(LEASE_LOST)
        } else if let Some(code) = status.code() {
            ExitCode::from(code as u8)
        } else {
            ExitCode::from(128 + status.signal().unwrap_or(0) as u8)
        })
    })
}

fn send(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; `pid` is our child's.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Renews at a third of the TTL until the command exits; returns whether the lease was lost,
/// in which case the command has been told to stop.
fn keep_renewed(
    api: &(dyn Api + Sync),
    lease: &Lease,
    ttl: Ttl,
    pid: libc::pid_t,
    exited: &Receiver<()>,
) -> bool {
    let period = ttl.duration().to_std().expect("a TTL is positive") / 3;
    let mut deadline = Instant::now() + ttl.duration().to_std().expect("a TTL is positive");
    let mut wait = period;
    loop {
        match exited.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return false,
        }
        let attempt = Instant::now();
        match api.renew(&lease.name, lease.lease_id, ttl) {
            Ok(_) => {
                deadline = attempt + ttl.duration().to_std().expect("a TTL is positive");
                wait = period;
            }
            Err(Error::NotFound { .. }) => break,
            Err(e) if attempt >= deadline => {
                eprintln!("octostore: renewal failed until the lease ended: {e}");
                break;
            }
            Err(e) => {
                eprintln!("octostore: renewal failed, retrying: {e}");
                wait = RETRY.min(deadline - attempt);
            }
        }
    }
    send(pid, libc::SIGTERM);
    if let Err(RecvTimeoutError::Timeout) = exited.recv_timeout(GRACE) {
        send(pid, libc::SIGKILL);
    }
    true
}
