//! `octostore lock run NAME --ttl S -- CMD...`: `flock` for a cluster. Acquire, run the
//! command in a process group of its own with the lease in its environment, renew at a third
//! of the TTL, release once the group is gone.
//!
//! The promise: no process of the group runs once the server may grant the lock to another.
//! The lease's local end (its *deadline*) is the monotonic instant just before the acquire or
//! the latest confirmed renewal was sent, plus the TTL; the server counts the TTL from when it
//! handled that request, which is later. Each renewal is waited for on a thread of its own
//! until the deadline at most, whatever the transport (an HTTP call, or a file busy with
//! another writer), and a confirmation arriving after it counts as a lost lease. Without a
//! confirmed renewal by `--term-grace` before the deadline (or with a refused one) the group
//! gets SIGTERM, then SIGKILL at the deadline less [`kill_margin`], and the exit code is 6.
//! This assumes the two clocks tick at the same rate to within 0.1 % (ntpd slews by at most
//! 0.05 %; chrony, correcting a large offset, may slew faster) and the server's does not
//! jump. Exit code 6 also when a renewal in flight as the command exits is not confirmed by
//! the deadline. What the command leaves running in its group is ended (SIGTERM, SIGKILL a
//! grace later) before the lock is released.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use octostore_core::values::error::Chain;
use octostore_core::{Api, Error, Lease, Result, Ttl};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::RunArgs;
use crate::failure::Failure;

/// Exit code when the lease was lost while the command ran.
const LEASE_LOST: u8 = 6;
/// The longest default `--term-grace` (otherwise a third of the TTL).
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The longest pause between retries of a failing renewal.
const RETRY: Duration = Duration::from_secs(1);
/// How often the group is looked at once the command itself has exited.
const GROUP_POLL: Duration = Duration::from_millis(5);
/// The environment variables holding the caller's credentials.
const TOKEN_VARIABLES: [&str; 2] = ["OCTOSTORE_TOKEN", "OCTOSTORE_TOKEN_FILE"];

/// How long before the deadline every process of the group is sent SIGKILL: time for the
/// kernel to end them (250 ms), and 0.1 % of the TTL for the clocks' rates to differ.
fn kill_margin(ttl: Duration) -> Duration {
    Duration::from_millis(250) + ttl / 1000
}

pub fn run(
    api: Arc<dyn Api + Send + Sync>,
    args: &RunArgs,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let ttl = args.acquire.ttl;
    let schedule = Schedule::new(ttl, args.term_grace)?;
    let (grant, sent) =
        super::lock::acquire(&*api, &args.acquire, super::lock::Wait::Forever, as_json)?;
    let lease = grant.lease;
    let deadline = schedule.deadline(sent);
    let outcome = if Instant::now() >= schedule.term_at(deadline) {
        eprintln!(
            "octostore: the lease on {} was granted too late to run the command before its end",
            lease.name
        );
        Ok(ExitCode::from(LEASE_LOST))
    } else {
        Holder::start(api.clone(), &lease, ttl, schedule, sent, args).and_then(Holder::run)
    };
    // Waiting longer is pointless: by then the lease has ended anyway.
    let (name, id) = (lease.name.clone(), lease.lease_id);
    match answer_by(Instant::now() + schedule.ttl, move || {
        api.release(&name, id)
    }) {
        Some(Ok(()) | Err(Error::NotFound { .. })) => {}
        Some(Err(e)) => eprintln!("octostore: could not release {}: {}", lease.name, Chain(&e)),
        None => eprintln!("octostore: the release of {} had no answer", lease.name),
    }
    outcome
}

/// Runs `call` on a thread of its own; its answer if it comes by `until`, else `None` (the
/// thread is left to finish alone).
fn answer_by<T: Send + 'static>(
    until: Instant,
    call: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (answer, answered) = mpsc::channel();
    std::thread::spawn(move || answer.send(call()));
    answered
        .recv_timeout(until.saturating_duration_since(Instant::now()))
        .ok()
}

/// When a lease ends and what happens before, by this process's monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    ttl: Duration,
    grace: Duration,
}

impl Schedule {
    fn new(ttl: Ttl, grace: Option<Duration>) -> Result<Self> {
        let ttl = Duration::from_secs(ttl.as_secs().into());
        let grace = grace.unwrap_or((ttl / 3).min(DEFAULT_GRACE));
        if grace > ttl / 2 {
            return Err(Error::invalid(
                "term_grace",
                "must be at most half the TTL, to leave time for renewals",
            ));
        }
        Ok(Self { ttl, grace })
    }

    /// The end of a lease acquired or renewed by a request sent at `sent`.
    fn deadline(self, sent: Instant) -> Instant {
        sent + self.ttl
    }

    /// When to renew a lease acquired or renewed by a request sent at `sent`.
    fn renew_at(self, sent: Instant) -> Instant {
        sent + self.ttl / 3
    }

    /// A renewal sent at `sent` and confirmed at `answered`, while the lease ran until
    /// `deadline`: the new deadline, or `None` if the confirmation came too late (the lease
    /// may have ended, and the lock been granted to another, before the server saw it).
    fn confirmed(self, deadline: Instant, sent: Instant, answered: Instant) -> Option<Instant> {
        (answered < deadline).then(|| self.deadline(sent))
    }

    /// When the group is told to stop if no renewal was confirmed.
    fn term_at(self, deadline: Instant) -> Instant {
        (deadline - self.grace).min(self.kill_at(deadline))
    }

    /// When every process of the group must be ended.
    fn kill_at(self, deadline: Instant) -> Instant {
        deadline - kill_margin(self.ttl)
    }

    /// How long after a retry is due.
    fn retry(self) -> Duration {
        RETRY.min(self.ttl / 6)
    }
}

/// What the holder's threads tell it.
enum Event {
    /// The command itself exited.
    Exited(io::Result<ExitStatus>),
    /// The command was stopped (ctrl-z at the terminal, for instance).
    Stopped,
    /// The renewal sent at `sent` answered.
    Renewed {
        sent: Instant,
        result: Result<Lease>,
    },
    /// A signal to pass on to the group.
    Signal(libc::c_int),
}

/// The command's group and the lease it runs under, until both are done with.
struct Holder {
    api: Arc<dyn Api + Send + Sync>,
    lease: Lease,
    ttl: Ttl,
    schedule: Schedule,
    /// The command's process group (its pid).
    group: libc::pid_t,
    /// The terminal given to the group, to be taken back.
    terminal: Option<RawFd>,
    events: Receiver<Event>,
    sender: Sender<Event>,
    signals: signal_hook::iterator::Handle,
    deadline: Instant,
    /// When to send the next renewal.
    renew_at: Instant,
    /// The instant the renewal in flight was sent.
    pending: Option<Instant>,
    /// The last renewal's failure, for the report if the lease ends.
    failure: Option<Error>,
    /// When the group was told to stop (SIGTERM).
    stopped_at: Option<Instant>,
    killed: bool,
    lost: bool,
    status: Option<io::Result<ExitStatus>>,
    /// Whether no process of the group is left (looked at once the command has exited).
    group_gone: bool,
}

impl Holder {
    fn start(
        api: Arc<dyn Api + Send + Sync>,
        lease: &Lease,
        ttl: Ttl,
        schedule: Schedule,
        sent: Instant,
        args: &RunArgs,
    ) -> Result<Self, Failure> {
        // Before the command starts: a signal from now on is passed on, not fatal to us.
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|source| Failure::Command {
                what: "handle signals",
                source,
            })?;
        // Processes of the group orphaned by the command become this process's children, so
        // that their exits are seen here (Linux; elsewhere init reaps them).
        #[cfg(target_os = "linux")]
        // SAFETY: prctl with these arguments only sets a flag of this process.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        let program = &args.command[0];
        let mut command = Command::new(program);
        command
            .args(&args.command[1..])
            .env("OCTOSTORE_LOCK", lease.name.as_str())
            .env("OCTOSTORE_LEASE_ID", lease.lease_id.to_string())
            .env("OCTOSTORE_FENCING_TOKEN", lease.fencing_token.to_string())
            .process_group(0);
        if !args.pass_token {
            for variable in TOKEN_VARIABLES {
                command.env_remove(variable);
            }
        }
        let terminal = foreground_terminal();
        if let Some(terminal) = terminal {
            // SAFETY: the closure makes only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    give_terminal(terminal, libc::getpid());
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .map_err(|e| Error::invalid("command", format!("cannot run {program}: {e}")))?;
        let (sender, events) = mpsc::channel();
        let exited = sender.clone();
        let group = child.id() as libc::pid_t;
        std::thread::spawn(move || watch(group, &exited));
        let handle = signals.handle();
        let forward = sender.clone();
        std::thread::spawn(move || {
            for signal in signals.forever() {
                let _ = forward.send(Event::Signal(signal));
            }
        });
        Ok(Self {
            api,
            lease: lease.clone(),
            ttl,
            terminal,
            schedule,
            group,
            events,
            sender,
            signals: handle,
            deadline: schedule.deadline(sent),
            renew_at: schedule.renew_at(sent),
            pending: None,
            failure: None,
            stopped_at: None,
            killed: false,
            lost: false,
            status: None,
            group_gone: false,
        })
    }

    /// Keeps the lease and watches the group until both are done; the exit code.
    fn run(mut self) -> Result<ExitCode, Failure> {
        while !self.step() {}
        self.signals.close();
        if let Some(terminal) = self.terminal {
            // SAFETY: getpgrp has no preconditions.
            give_terminal(terminal, unsafe { libc::getpgrp() });
        }
        if self.lost {
            eprintln!(
                "octostore: lost the lease on {} while the command ran",
                self.lease.name
            );
            return Ok(ExitCode::from(LEASE_LOST));
        }
        let status = self
            .status
            .expect("done only once the command exited")
            .map_err(|source| Failure::Command {
                what: "wait for the command",
                source,
            })?;
        Ok(match status.code() {
            Some(code) => ExitCode::from(code as u8),
            None => ExitCode::from(128 + status.signal().unwrap_or(0) as u8),
        })
    }

    /// Acts on what is due, then waits for the next event or instant; whether all is done.
    fn step(&mut self) -> bool {
        let now = Instant::now();
        if self.pending.is_some() && now >= self.deadline {
            self.pending = None;
            self.lose("its renewal had no answer by the lease's end", now);
        }
        if !self.lost
            && !self.group_gone
            && self.stopped_at.is_none()
            && now >= self.schedule.term_at(self.deadline)
        {
            self.lose("no renewal was confirmed in time", now);
        }
        if !self.killed && !self.group_gone && now >= self.kill_by() {
            self.signal(libc::SIGKILL);
            self.killed = true;
        }
        if self.status.is_some() && !self.group_gone {
            self.group_gone = group_gone(self.group);
            if !self.group_gone && self.stopped_at.is_none() {
                // What the command left running must not outlive the lock.
                self.stop(now);
            }
        }
        if self.renewing() && self.pending.is_none() && now >= self.renew_at {
            self.renew(now);
        }
        if self.status.is_some() && self.group_gone && self.pending.is_none() {
            return true;
        }
        if self.killed && now >= self.deadline {
            eprintln!("octostore: processes of the command outlived SIGKILL");
            self.lost = true;
            return true;
        }
        let wake = [
            (self.renewing() && self.pending.is_none()).then_some(self.renew_at),
            (self.stopped_at.is_none() && !self.group_gone)
                .then(|| self.schedule.term_at(self.deadline)),
            (!self.killed && !self.group_gone).then(|| self.kill_by()),
            (self.pending.is_some() || self.killed).then_some(self.deadline),
            (self.status.is_some() && !self.group_gone).then_some(now + GROUP_POLL),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the deadline is always ahead until done");
        match self
            .events
            .recv_timeout(wake.saturating_duration_since(now))
        {
            Ok(Event::Exited(status)) => self.status = Some(status),
            Ok(Event::Stopped) => self.stopped(),
            Ok(Event::Renewed { sent, result }) if self.pending == Some(sent) => {
                self.pending = None;
                self.renewed(sent, result);
            }
            Ok(Event::Renewed { .. }) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Event::Signal(signal)) => {
                if !self.group_gone {
                    self.signal(signal);
                }
            }
            Err(RecvTimeoutError::Disconnected) => unreachable!("the holder keeps a sender"),
        }
        false
    }

    /// The command was stopped: with a terminal, this process stops too, so that the shell
    /// sees its job stopped and takes the terminal back (the lease is not renewed meanwhile);
    /// once continued, it gives the terminal back to the group and continues it, unless the
    /// lease has meanwhile run out (the group is then ended as it is, stopped).
    fn stopped(&self) {
        let Some(terminal) = self.terminal else {
            return;
        };
        // SAFETY: getpgrp, raise and kill have no memory effects.
        unsafe {
            give_terminal(terminal, libc::getpgrp());
            libc::raise(libc::SIGSTOP);
        }
        give_terminal(terminal, self.group);
        if Instant::now() < self.schedule.term_at(self.deadline) {
            self.signal(libc::SIGCONT);
        }
    }

    /// Whether renewals are still sent: not once the lease is lost or the group killed.
    fn renewing(&self) -> bool {
        !self.lost && !self.killed
    }

    /// When the group gets SIGKILL: before the deadline, and a grace after SIGTERM at most.
    fn kill_by(&self) -> Instant {
        let kill_at = self.schedule.kill_at(self.deadline);
        match self.stopped_at {
            Some(at) => kill_at.min(at + self.schedule.grace),
            None => kill_at,
        }
    }

    fn renew(&mut self, now: Instant) {
        self.pending = Some(now);
        let (api, sender, ttl) = (self.api.clone(), self.sender.clone(), self.ttl);
        let (name, id) = (self.lease.name.clone(), self.lease.lease_id);
        std::thread::spawn(move || {
            let result = api.renew(&name, id, ttl);
            let _ = sender.send(Event::Renewed { sent: now, result });
        });
    }

    fn renewed(&mut self, sent: Instant, result: Result<Lease>) {
        let now = Instant::now();
        match result {
            Ok(_) => match self.schedule.confirmed(self.deadline, sent, now) {
                Some(deadline) => {
                    self.deadline = deadline;
                    self.renew_at = self.schedule.renew_at(sent);
                    self.failure = None;
                }
                None => self.lose("its renewal was confirmed after the lease's end", now),
            },
            Err(e @ Error::NotFound { .. }) => {
                self.failure = Some(e);
                self.lose("its renewal was refused", now);
            }
            Err(e) => {
                if !self.lost {
                    eprintln!("octostore: renewal failed, retrying: {}", Chain(&e));
                }
                self.failure = Some(e);
                self.renew_at = now + self.schedule.retry();
            }
        }
    }

    /// The lease is lost, or about to be: the group is told to stop.
    fn lose(&mut self, why: &str, now: Instant) {
        if self.lost {
            return;
        }
        self.lost = true;
        match &self.failure {
            Some(e) => eprintln!(
                "octostore: the lease on {}: {why} ({})",
                self.lease.name,
                Chain(e)
            ),
            None => eprintln!("octostore: the lease on {}: {why}", self.lease.name),
        }
        if self.stopped_at.is_none() {
            self.stop(now);
        }
    }

    fn stop(&mut self, now: Instant) {
        self.stopped_at = Some(now);
        if !self.group_gone {
            self.signal(libc::SIGTERM);
        }
    }

    /// Sends `signal` to every process of the group.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) has no memory effects; the group is the command's, not yet seen gone.
        unsafe {
            libc::kill(-self.group, signal);
        }
    }
}

/// Reports the command's stops and, once, its exit (reaping it).
fn watch(pid: libc::pid_t, events: &Sender<Event>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`.
        if unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let _ = events.send(Event::Exited(Err(error)));
            return;
        }
        if libc::WIFSTOPPED(status) {
            let _ = events.send(Event::Stopped);
        } else {
            let _ = events.send(Event::Exited(Ok(ExitStatus::from_raw(status))));
            return;
        }
    }
}

/// The terminal whose foreground this process is in, if any. A command run in a process group
/// of its own reads it only once that group is in the foreground (else SIGTTIN stops it), so
/// the group is given the terminal, as a shell gives it to a job, and it is taken back at the
/// end.
fn foreground_terminal() -> Option<RawFd> {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read the state of the descriptor or process.
    (0..3).find(|&fd| unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() })
}

/// Makes `group` the terminal's foreground, which a process outside the foreground may do only
/// with SIGTTOU blocked. Async-signal-safe: it runs in the child between fork and exec.
fn give_terminal(terminal: RawFd, group: libc::pid_t) {
    // SAFETY: the signal sets live on this stack; tcsetpgrp only changes the terminal's group.
    unsafe {
        let mut ttou: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &ttou, &mut before);
        libc::tcsetpgrp(terminal, group);
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
}

/// Whether no process of the command's group is left, once the command itself was reaped;
/// reaps those of its processes that became ours.
fn group_gone(group: libc::pid_t) -> bool {
    // SAFETY: waitpid and kill with these arguments have no memory effects; a null status
    // pointer is allowed.
    unsafe {
        while libc::waitpid(-group, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        libc::kill(-group, 0) != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(ttl: i64) -> Schedule {
        Schedule::new(Ttl::seconds(ttl).unwrap(), None).unwrap()
    }

    #[test]
    fn a_renewal_confirmed_after_the_deadline_is_a_lost_lease() {
        let s = schedule(3);
        let start = Instant::now();
        let deadline = s.deadline(start);
        let sent = start + Duration::from_secs(1);
        assert_eq!(
            s.confirmed(deadline, sent, deadline - Duration::from_millis(1)),
            Some(sent + Duration::from_secs(3)),
            "the new deadline counts from the send, not the answer"
        );
        assert_eq!(s.confirmed(deadline, sent, deadline), None);
        assert_eq!(
            s.confirmed(deadline, sent, deadline + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn the_group_is_told_then_killed_before_the_deadline() {
        for ttl in [1, 3, 60, 3600] {
            let s = schedule(ttl);
            let sent = Instant::now();
            let deadline = s.deadline(sent);
            assert!(s.renew_at(sent) < s.term_at(deadline), "ttl {ttl}");
            assert!(s.term_at(deadline) <= s.kill_at(deadline), "ttl {ttl}");
            assert!(s.kill_at(deadline) < deadline, "ttl {ttl}");
        }
        let s = schedule(3);
        let deadline = s.deadline(Instant::now());
        assert_eq!(deadline - s.term_at(deadline), Duration::from_secs(1));
        assert_eq!(deadline - s.kill_at(deadline), Duration::from_millis(253));
        let s = schedule(3600);
        let deadline = s.deadline(Instant::now());
        assert_eq!(s.grace, DEFAULT_GRACE);
        assert_eq!(deadline - s.kill_at(deadline), Duration::from_millis(3850));
    }

    #[test]
    fn a_grace_over_half_the_ttl_is_refused() {
        let ttl = Ttl::seconds(10).unwrap();
        assert!(Schedule::new(ttl, Some(Duration::from_secs(5))).is_ok());
        assert!(Schedule::new(ttl, Some(Duration::from_secs(6))).is_err());
    }
}
