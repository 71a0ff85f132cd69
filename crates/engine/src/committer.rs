//! Commits on a thread of their own: the view goes on reading and processing while the
//! store writes its last checkpoint. At most one commit is in flight; the next waits for it,
//! so checkpoints land in order and the buffered work stays bounded (one commit's rows).
//!
//! Exactly-once is unchanged: a checkpoint is still one store transaction, and the log's
//! consumer positions move only once it has landed. A crash with a commit in flight leaves
//! the store at the previous checkpoint or at this one, never between.

use freshet_store::{Commit, ResultStore, StoreError};
use freshet_types::Offset;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};

/// Attempts at a commit that fails with a retriable store error before the view gives up,
/// unless it was told to retry until stopped.
pub const COMMIT_ATTEMPTS: u32 = 8;

/// One checkpoint to write.
struct Job {
    commit: Commit,
    /// Retry until this is set, instead of [`COMMIT_ATTEMPTS`] times.
    patience: Option<Arc<AtomicBool>>,
}

/// A checkpoint that landed.
pub struct Landed {
    /// How long the store took, retries included.
    pub took: Duration,
    /// Retriable failures it waited out.
    pub retries: u64,
    /// The read positions it made durable, one per input partition in the runner's order.
    pub positions: Vec<Offset>,
}

/// The commit thread of one view.
pub struct Committer {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<(Result<Duration, StoreError>, u64)>,
    thread: Option<JoinHandle<()>>,
    /// The positions of the commit in flight, if one is.
    in_flight: Option<Vec<Offset>>,
}

impl Committer {
    /// Starts the thread that writes `view`'s checkpoints into `store`.
    pub fn start(view: &str, store: Box<dyn ResultStore>) -> Result<Committer> {
        let (jobs, job_queue) = sync_channel::<Job>(1);
        let (results_tx, results) = sync_channel(1);
        let name = view.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("commit {view}"))
            .spawn(move || write_checkpoints(&name, store, &job_queue, &results_tx))
            .map_err(|source| EngineError::Io {
                context: format!("start the commit thread of view '{view}'"),
                source,
            })?;
        Ok(Committer {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
            in_flight: None,
        })
    }

    /// Hands a checkpoint to the thread. The previous one must have been waited for.
    pub fn send(
        &mut self,
        commit: Commit,
        patience: Option<Arc<AtomicBool>>,
        positions: Vec<Offset>,
    ) -> Result<()> {
        if self.in_flight.is_some() {
            return Err(EngineError::Bug(
                "a commit was sent before the previous one landed".into(),
            ));
        }
        let gone = || EngineError::Bug("the commit thread is gone".into());
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Job { commit, patience })
            .map_err(|_| gone())?;
        self.in_flight = Some(positions);
        Ok(())
    }

    /// Waits for the commit in flight, if any: what landed, or the store's error.
    pub fn wait(&mut self) -> Result<Option<Landed>> {
        let Some(positions) = self.in_flight.take() else {
            return Ok(None);
        };
        let (outcome, retries) = self
            .results
            .recv()
            .map_err(|_| EngineError::Bug("the commit thread stopped mid-commit".into()))?;
        let took = outcome?;
        Ok(Some(Landed {
            took,
            retries,
            positions,
        }))
    }
}

impl Drop for Committer {
    /// Lets the commit in flight land before the store is released (so that a view opened
    /// again in this process never loads a checkpoint that is about to change).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_checkpoints(
    view: &str,
    mut store: Box<dyn ResultStore>,
    jobs: &Receiver<Job>,
    results: &SyncSender<(Result<Duration, StoreError>, u64)>,
) {
    while let Ok(job) = jobs.recv() {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        let outcome = loop {
            match store.commit(view, &job.commit) {
                Ok(()) => break Ok(started.elapsed()),
                Err(e) if e.retriable() && retry_again(job.patience.as_deref(), attempt) => {
                    attempt += 1;
                    tracing::warn!(view, attempt, error = %e, "store commit failed; retrying");
                    pause(
                        job.patience.as_deref(),
                        delay + Duration::from_millis(jitter_ms(delay)),
                    );
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => break Err(e),
            }
        };
        if results.send((outcome, u64::from(attempt))).is_err() {
            return;
        }
    }
}

/// Whether to retry after `attempt` failed attempts: a bounded number of times, or, with
/// `patience`, until it is set (a stopped view gives up at once, so that a shutdown during
/// an outage is quick; the work is recomputed after a restart).
fn retry_again(patience: Option<&AtomicBool>, attempt: u32) -> bool {
    match patience {
        None => attempt < COMMIT_ATTEMPTS,
        Some(stop) => !stop.load(Ordering::SeqCst),
    }
}

/// Sleeps `d`, waking early once a patient view is asked to stop.
fn pause(patience: Option<&AtomicBool>, d: Duration) {
    let until = Instant::now() + d;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if patience.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

fn jitter_ms(d: Duration) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % (d.as_millis() as u64 / 2 + 1)
}
