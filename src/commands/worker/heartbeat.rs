//! A worker's heartbeat: every third of the lease's time to live, on a connection of its
//! own, it records the worker as live and renews the leases it holds, but only while the
//! main thread shows it is working: a main thread quiet for [`stall_limit`] (a deadlock, a
//! read that never returns) stops the heartbeats, so that its views are taken over, as
//! they are when the whole process pauses or dies. The limit is far above a legitimate
//! turn (a batch run over a large backlog, opening many views): the gate only has to
//! catch a thread that will not come back, since fencing keeps writes safe whatever it
//! says.

use super::{Report, lock};
use anyhow::Context;
use freshet_store::Cluster;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The shortest time the main thread may be quiet before it is taken as stuck.
const STALL_MIN: Duration = Duration::from_secs(120);

/// How long the main thread may be quiet before the heartbeats stop: six leases, and at
/// least [`STALL_MIN`].
pub fn stall_limit(ttl: Duration) -> Duration {
    (ttl * 6).max(STALL_MIN)
}

/// The heartbeat thread and what it shares with the main thread.
pub struct Heartbeat {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    started: Instant,
    /// When the main thread last said it works, ms since `started`.
    alive_ms: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl Heartbeat {
    /// Records a first heartbeat (so that the worker counts itself live from its first
    /// round), then starts the thread.
    pub fn start(
        mut cluster: Cluster,
        listen: String,
        ttl: Duration,
        report: Arc<Mutex<Report>>,
    ) -> anyhow::Result<Heartbeat> {
        cluster
            .heartbeat(&listen)
            .context("cannot register the worker")?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            alive_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let beat = shared.clone();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || beat.run(cluster, &listen, ttl, &report))
            .context("cannot start the heartbeat thread")?;
        Ok(Heartbeat {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The main thread works (called every turn of its loop).
    pub fn alive(&self) {
        self.shared
            .alive_ms
            .store(self.shared.now_ms(), Ordering::Relaxed);
    }

    /// Stops the thread and waits for it: no heartbeat lands afterwards.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn run(&self, mut cluster: Cluster, listen: &str, ttl: Duration, report: &Mutex<Report>) {
        let every = ttl / 3;
        let stall_ms = stall_limit(ttl).as_millis() as u64;
        let mut next = Instant::now() + every;
        let mut stuck = false;
        while !self.stop.load(Ordering::SeqCst) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let quiet_ms = self
                .now_ms()
                .saturating_sub(self.alive_ms.load(Ordering::Relaxed));
            if quiet_ms > stall_ms {
                if !stuck {
                    tracing::warn!(
                        quiet_ms,
                        "the worker's main thread looks stuck; heartbeats stop until it \
                         turns again, so that its views can be taken over"
                    );
                }
                // Checked again at the next poll: a heartbeat as soon as it turns.
                stuck = true;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            stuck = false;
            next = Instant::now() + every;
            if let Err(e) = cluster.heartbeat(listen) {
                tracing::warn!(error = %e, "heartbeat failed; the leases lapse unless one lands in time");
                lock(report).heartbeat_failures += 1;
            }
        }
    }
}
