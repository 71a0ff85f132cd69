//! The bounded pool of a PostgreSQL store's reader connections: every store opened from one
//! [`PgLocation`](super::PgLocation) (and its clones) shares it, so a process never holds
//! more than `pool_max` reader connections to that store, whatever the number of threads
//! reading.
//!
//! - A reader holds a connection only for the length of one call, then gives it back; an
//!   idle connection is handed to the next reader as it is (read-only sessions are all
//!   alike). One idle for a while is checked first (`Lease::idle_for`).
//! - A reader that finds every connection in use waits at most the pool's wait, then gets
//!   [`StoreError::Busy`].
//! - A writer holds one connection of its own for as long as it lives (the writer lock of
//!   each view it writes is a session-level lock on that connection). Writers are not
//!   counted against `pool_max`: there is one per running view and one for DDL, so they
//!   are bounded by the catalog, and readers can never be starved by them, nor a view kept
//!   from starting by readers.
//!
//! The pool opens no connection itself: it counts them. Connecting happens outside its
//! lock, and a connection that could not be made gives its place back.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::store::Connection;
use crate::StoreError;

/// The shared count of connections and the idle reader connections.
pub(super) struct Pool {
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    returned: Condvar,
}

#[derive(Default)]
struct State {
    /// Connections counted: in use, idle, or being opened.
    open: usize,
    /// Read-only connections no one is using, with when they were given back.
    idle: Vec<(Connection, Instant)>,
}

/// A place in the pool (or a writer's own connection), with the connection that fills it
/// once connected.
pub(super) struct Lease {
    pool: Arc<Pool>,
    pub(super) conn: Connection,
    /// A reader's: counted against the bound, and its connection serves another reader
    /// once this one is done.
    reader: bool,
    /// How long the connection had been idle in the pool (a reused reader connection).
    pub(super) idle_for: Option<Duration>,
}

impl Pool {
    pub(super) fn new(max: usize, wait: Duration) -> Arc<Pool> {
        assert!(max > 0, "a pool of no connection serves no one");
        Arc::new(Pool {
            max,
            wait,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        })
    }

    /// The most connections the pool allows.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// A place for a reader (`read_only`, which may reuse an idle connection), waiting at
    /// most the pool's wait, or a writer's own connection. `store` names the store in the
    /// error.
    pub(super) fn lease(
        self: &Arc<Self>,
        read_only: bool,
        store: &dyn std::fmt::Display,
    ) -> Result<Lease, StoreError> {
        if !read_only {
            return Ok(self.leased(Connection::default(), false, None));
        }
        let deadline = Instant::now() + self.wait;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((conn, since)) = state.idle.pop() {
                return Ok(self.leased(conn, true, Some(since.elapsed())));
            }
            if state.open < self.max {
                state.open += 1;
                return Ok(self.leased(Connection::default(), true, None));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Busy {
                    message: format!(
                        "all {} reader connections to {store} stayed in use for {} ms; try \
                         again, or raise pool_max= in the store URL",
                        self.max,
                        self.wait.as_millis()
                    ),
                });
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn leased(
        self: &Arc<Self>,
        conn: Connection,
        reader: bool,
        idle_for: Option<Duration>,
    ) -> Lease {
        Lease {
            pool: self.clone(),
            conn,
            reader,
            idle_for,
        }
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.open, state.idle.len())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let conn = std::mem::take(&mut self.conn);
        if !self.reader {
            return; // a writer's own connection closes with it
        }
        let alive = conn.client.as_ref().is_some_and(|c| !c.is_closed());
        let mut state = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        let closing = if alive && !std::thread::panicking() {
            state.idle.push((conn, Instant::now()));
            None
        } else {
            state.open -= 1;
            Some(conn)
        };
        drop(state);
        self.pool.returned.notify_one();
        drop(closing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_holds_and_a_full_pool_answers_busy_after_the_wait() {
        let pool = Pool::new(2, Duration::from_millis(50));
        let a = pool.lease(true, &"s").unwrap();
        let b = pool.lease(true, &"s").unwrap();
        // A writer's connection is its own: not counted, never refused.
        let writer = pool.lease(false, &"s").unwrap();
        assert_eq!(pool.counts(), (2, 0));
        drop(writer);
        assert_eq!(pool.counts(), (2, 0));
        let Err(e) = pool.lease(true, &"s") else {
            panic!("busy")
        };
        assert!(matches!(e, StoreError::Busy { .. }), "{e}");
        assert!(e.retriable());
        assert!(e.to_string().contains("pool_max"), "{e}");
        // A lease without a live connection gives its place back.
        drop(a);
        assert_eq!(pool.counts(), (1, 0));
        let c = pool.lease(true, &"s").unwrap();
        assert_eq!(pool.counts(), (2, 0));
        drop((b, c));
        assert_eq!(pool.counts(), (0, 0));
    }

    #[test]
    fn a_waiter_gets_the_place_a_lease_gives_back() {
        let pool = Pool::new(1, Duration::from_secs(10));
        let held = pool.lease(true, &"s").unwrap();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.lease(true, &"s").map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        waiter.join().unwrap().expect("the waiter got the place");
        assert_eq!(pool.counts(), (0, 0));
    }
}
