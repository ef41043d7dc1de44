//! Threads for reads that may be large (config history pages and lists, with their JSON), at
//! the lowest CPU priority (Linux's `SCHED_IDLE`: the least share of a busy core, and any
//! other thread that wakes runs at once in their place): on a busy machine, a user reading
//! megabytes in a loop gets the CPU the small operations of the others leave, and those are
//! scheduled first. Such a thread never holds what the others wait for (the reads are
//! authenticated on the blocking pool before they come here). At most [`THREADS`] such reads run at once; more
//! wait in a queue.

use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;

/// How many large reads run at once: as many as SQLite's read connections.
const THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The queue of large reads. Cheap to clone; the threads end with the last clone.
#[derive(Clone)]
pub(crate) struct LargeReads {
    queue: mpsc::Sender<Job>,
}

impl LargeReads {
    /// Starts the threads.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..THREADS {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("octostore-read-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let next = jobs.lock().recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// `work`'s outcome, run on one of the threads; `None` if it panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (sender, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            if let Ok(value) = outcome {
                let _ = sender.send(value);
            }
        });
        self.queue.send(job).ok()?;
        answer.await.ok()
    }
}

/// Gives the calling thread the lowest CPU priority (Linux: each thread has its own
/// policy); elsewhere, or if refused, the thread keeps the process's.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler reads the parameter it is given; gettid has no arguments.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(libc::gettid(), libc::SCHED_IDLE, &param) != 0 {
            tracing::warn!("cannot lower the priority of the large reads' threads");
        }
    }
}
