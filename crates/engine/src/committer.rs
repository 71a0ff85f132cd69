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

/// What the commit thread is asked to do.
enum Job {
    /// Write a checkpoint.
    Commit {
        commit: Box<Commit>,
        /// Retry until this is set, instead of [`COMMIT_ATTEMPTS`] times.
        patience: Option<Arc<AtomicBool>>,
    },
    /// Give up the right to write the view ([`ResultStore::release_writer`]).
    Release,
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
        self.submit(
            Job::Commit {
                commit: Box::new(commit),
                patience,
            },
            "a commit was sent before the previous one landed",
        )?;
        self.in_flight = Some(positions);
        Ok(())
    }

    /// Hands `job` to the thread; `busy` is the bug when a commit is still in flight.
    fn submit(&mut self, job: Job, busy: &str) -> Result<()> {
        if self.in_flight.is_some() {
            return Err(EngineError::Bug(busy.into()));
        }
        let gone = || EngineError::Bug("the commit thread is gone".into());
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())
    }

    /// Gives up the right to write the view once every commit has landed (a worker
    /// handing the view to another).
    pub fn release(&mut self) -> Result<()> {
        self.submit(
            Job::Release,
            "the view was released with a commit in flight",
        )?;
        let (outcome, _) = self
            .results
            .recv()
            .map_err(|_| EngineError::Bug("the commit thread stopped mid-release".into()))?;
        outcome?;
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
        let (commit, patience) = match job {
            Job::Commit { commit, patience } => (commit, patience),
            Job::Release => {
                let started = Instant::now();
                let outcome = store.release_writer(view).map(|()| started.elapsed());
                if results.send((outcome, 0)).is_err() {
                    return;
                }
                continue;
            }
        };
        abort_if_asked(FaultPoint::BeforeCommit);
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        let outcome = loop {
            match store.commit(view, &commit) {
                Ok(()) => break Ok(started.elapsed()),
                Err(e) if e.retriable() && retry_again(patience.as_deref(), attempt) => {
                    attempt += 1;
                    tracing::warn!(view, attempt, error = %e, "store commit failed; retrying");
                    pause(
                        patience.as_deref(),
                        delay + Duration::from_millis(jitter_ms(delay)),
                    );
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => break Err(e),
            }
        };
        if outcome.is_ok() {
            abort_if_asked(FaultPoint::AfterCommit);
        }
        if results.send((outcome, u64::from(attempt))).is_err() {
            return;
        }
    }
}

/// Where the crash tests may have a process abort: `FRESHET_ABORT_AT=before_commit:N` aborts
/// it as its Nth commit (counted over the process's views) is about to start,
/// `after_commit:N` as soon as its Nth commit has landed, before anything else happens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FaultPoint {
    BeforeCommit,
    AfterCommit,
}

fn abort_if_asked(point: FaultPoint) {
    static ASKED: std::sync::OnceLock<Option<(FaultPoint, u64)>> = std::sync::OnceLock::new();
    static REACHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let asked = ASKED.get_or_init(|| {
        let text = std::env::var("FRESHET_ABORT_AT").ok()?;
        let parsed = text.split_once(':').and_then(|(name, n)| {
            let point = match name {
                "before_commit" => FaultPoint::BeforeCommit,
                "after_commit" => FaultPoint::AfterCommit,
                _ => return None,
            };
            Some((point, n.parse().ok()?))
        });
        if parsed.is_none() {
            tracing::warn!(
                value = text,
                "FRESHET_ABORT_AT ignored: expected before_commit:N or after_commit:N"
            );
        }
        parsed
    });
    if let Some((at, n)) = *asked
        && at == point
        && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == n
    {
        tracing::error!(point = ?std::env::var("FRESHET_ABORT_AT"), "aborting as FRESHET_ABORT_AT asks");
        std::process::abort();
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
