//! A worker that paces itself with a rate limit.
//!
//! The worker has a queue of jobs and may start at most 10 in any minute. Before each job it
//! asks the limit (`check`); a denial is not an error but a [`Decision`](octostore_core::Decision)
//! saying how long to wait (`retry_after_seconds`), and the worker sleeps that long and asks
//! again. No job is started early and no time is wasted polling.
//!
//! The store runs on a [`ManualClock`]: sleeping and working advance the clock instead of
//! taking real time, so the example finishes at once and prints the same figures every run.
//!
//! ```sh
//! cargo run -p octostore-core --example throttled_worker
//! ```

use std::sync::Arc;

use chrono::Duration;
use octostore_core::{Api, Error, LimitName, Login, ManualClock, RatePolicy, Store};

const JOBS: u32 = 25;

fn main() -> Result<(), Error> {
    let clock = Arc::new(ManualClock::default());
    let store = Store::in_memory_with_clock(clock.clone());
    let worker = store.session(store.create_user(&Login::parse("worker")?)?);
    let limit = LimitName::parse("jobs")?;
    let policy = RatePolicy::new(10, 60)?;
    let start = store.now();
    let seconds = || (store.now() - start).num_seconds();
    let mut starts = Vec::new();
    let mut waits = 0;

    for job in 1..=JOBS {
        loop {
            let decision = worker.check(&limit, policy)?;
            if decision.allowed {
                break;
            }
            let wait = decision
                .retry_after_seconds
                .expect("a denial says when to retry");
            let t = seconds();
            println!("t={t:>3}s job {job:>2}: throttled, sleeping {wait} s");
            clock.advance(Duration::seconds(wait as i64));
            waits += 1;
        }
        starts.push(seconds());
        // The job itself: one second of work.
        clock.advance(Duration::seconds(1));
    }

    let busiest_minute = starts
        .iter()
        .map(|&t| starts.iter().filter(|&&u| (t..t + 60).contains(&u)).count())
        .max()
        .unwrap_or(0);
    println!(
        "{JOBS} jobs done in {} s of simulated time after {waits} throttled checks; \
         at most {busiest_minute} started in any 60 s",
        seconds()
    );
    Ok(())
}
