//! Group commit for a serial backend: one thread runs the operations that callers queue up,
//! all those waiting at once inside one [`Store::group`], so that many clients share each
//! commit (and each fsync) instead of taking turns at the file's one write lock. Every
//! caller hears its outcome only after the commit that made it durable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::store::Store;

/// At most this many operations share one commit, which bounds the wait of the first.
const MAX_GROUP: usize = 256;

/// Runs one queued operation and returns what delivers its outcome once the group's commit
/// is known.
type Job = Box<dyn FnOnce(&Store) -> Delivery + Send>;
type Delivery = Box<dyn FnOnce(&Result<()>) + Send>;

/// A queue of operations on a store, run by a thread of its own and committed in groups.
/// Cheap to clone; the thread ends when the last clone is dropped, after the queued work.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the thread that runs operations on `store`.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("octostore-committer".into())
            .spawn(move || run(&store, &jobs))?;
        Ok(Self { queue })
    }

    /// Queues `work`; `done` receives its result once it is committed, or the commit's error
    /// in its place. If `work` panics, `done` is dropped without being called.
    pub fn submit<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<R> + Send + 'static,
        done: impl FnOnce(Result<R>) + Send + 'static,
    ) {
        let job: Job = Box::new(move |store| {
            let result = work(store);
            Box::new(move |committed: &Result<()>| match committed {
                Ok(()) => done(result),
                Err(e) => done(Err(Error::Storage(format!("the commit failed: {e}")))),
            })
        });
        // The thread lives as long as this sender and never unwinds (jobs are caught).
        self.queue
            .send(job)
            .unwrap_or_else(|_| unreachable!("the committer thread outlives its queue"));
    }
}

fn run(store: &Store, jobs: &mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut deliveries = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = jobs.recv() {
        group.push(first);
        group.extend(jobs.try_iter().take(MAX_GROUP - 1));
        let committed = store.group(|| {
            for job in group.drain(..) {
                // A panicking job loses only its own delivery; its writes are undone.
                if let Ok(delivery) = catch_unwind(AssertUnwindSafe(|| job(store))) {
                    deliveries.push(delivery);
                }
            }
        });
        for delivery in deliveries.drain(..) {
            delivery(&committed);
        }
    }
}
