//! Group commit for a serial backend: one thread runs the operations that callers queue up,
//! all those waiting at once inside one [`Store::group`], so that many clients share each
//! commit (and each fsync) instead of taking turns at the file's one write lock. Every
//! caller hears its outcome only after the commit that made it durable.
//!
//! The queue is bounded, and each operation carries its caller's deadline and presence: an
//! operation is run only while its caller still waits for it, and a group waits for the file
//! no longer than its last caller does. So a file held by another process, or a flood of
//! requests, costs callers a prompt [`Error::Unavailable`], never a late grant that nobody
//! hears of.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Weak};
use std::time::Instant;

use crate::store::Store;
use crate::values::error::{Error, Result};

/// At most this many operations share one commit, which bounds the wait of the first.
const MAX_GROUP: usize = 256;

/// A queued operation and its caller.
struct Job {
    caller: Caller,
    run: Run,
}

/// Runs an operation given the store (or answers the reason it is not run) and returns what
/// delivers its outcome once the group's commit is known.
type Run = Box<dyn FnOnce(Result<&Store>) -> Delivery + Send>;
type Delivery = Box<dyn FnOnce(&Result<()>) + Send>;

/// Until when a caller waits for its operation, and whether it is still there to hear the
/// answer.
#[derive(Debug, Clone)]
pub struct Caller {
    deadline: Instant,
    presence: Option<Weak<()>>,
}

impl Caller {
    /// A caller that waits until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            presence: None,
        }
    }

    /// The caller is gone once `presence` and every clone of it are dropped (a server drops
    /// it with the request whose client disconnected).
    pub fn present_while(self, presence: &Arc<()>) -> Self {
        Self {
            presence: Some(Arc::downgrade(presence)),
            ..self
        }
    }

    /// `Ok` while the caller still waits for the operation; otherwise why it is no longer
    /// worth running ([`Error::Unavailable`]).
    pub fn still_waiting(&self) -> Result<()> {
        if self
            .presence
            .as_ref()
            .is_some_and(|p| p.strong_count() == 0)
        {
            Err(Error::Unavailable("the caller had gone".into()))
        } else if Instant::now() >= self.deadline {
            Err(Error::Unavailable(
                "its deadline passed before the store could run it".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// A queue of operations on a store, run by a thread of its own and committed in groups.
/// Cheap to clone; the thread ends when the last clone is dropped, after the queued work.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::SyncSender<Job>,
    capacity: usize,
}

impl Committer {
    /// Starts the thread that runs operations on `store`, with room for `capacity` queued
    /// operations (at least one).
    pub fn start(store: Store, capacity: usize) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (queue, jobs) = mpsc::sync_channel::<Job>(capacity);
        std::thread::Builder::new()
            .name("octostore-committer".into())
            .spawn(move || run(&store, &jobs))?;
        Ok(Self { queue, capacity })
    }

    /// Queues `work` for `caller`; `done` receives its result once it is committed, or the
    /// commit's error in its place, or [`Error::Unavailable`] without `work` having run if
    /// the caller had gone or its deadline passed first. If the queue is full, answers
    /// [`Error::Unavailable`] at once and neither runs. If `work` panics, `done` is dropped
    /// without being called.
    pub fn submit<R: Send + 'static>(
        &self,
        caller: Caller,
        work: impl FnOnce(&Store) -> Result<R> + Send + 'static,
        done: impl FnOnce(Result<R>) + Send + 'static,
    ) -> Result<()> {
        let run = Box::new(move |store: Result<&Store>| -> Delivery {
            let result = store.and_then(work);
            Box::new(move |committed: &Result<()>| match committed {
                Ok(()) => done(result),
                Err(e @ Error::Unavailable(_)) => done(Err(e.again())),
                Err(e) => done(Err(Error::storage_caused("the commit failed", e.again()))),
            })
        });
        self.queue
            .try_send(Job { caller, run })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => {
                    Error::Unavailable(format!("{} operations are already queued", self.capacity))
                }
                // The thread lives as long as this sender and never unwinds (jobs are caught).
                mpsc::TrySendError::Disconnected(_) => {
                    unreachable!("the committer thread outlives its queue")
                }
            })
    }
}

fn run(store: &Store, jobs: &mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut deliveries = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = jobs.recv() {
        group.push(first);
        group.extend(jobs.try_iter().take(MAX_GROUP - 1));
        let give_up_at = group.iter().map(|job| job.caller.deadline).max();
        let give_up_at = give_up_at.expect("a group has a first job");
        let committed = store.group(give_up_at, || {
            for Job { caller, run } in group.drain(..) {
                let store = caller.still_waiting().map(|()| store);
                // A panicking job loses only its own delivery; its writes are undone.
                if let Ok(delivery) = catch_unwind(AssertUnwindSafe(|| run(store))) {
                    deliveries.push(delivery);
                }
            }
        });
        for delivery in deliveries.drain(..) {
            delivery(&committed);
        }
    }
}
