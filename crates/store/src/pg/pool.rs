//! The bounded pool of a PostgreSQL store's connections: every store opened from one
//! [`PgLocation`](super::PgLocation) (and its clones) shares it, so a process never holds
//! more than `pool_max` connections to that store, whatever the number of threads reading.
//!
//! - A writer holds one connection for as long as it lives: the writer lock of each view
//!   it writes is a session-level lock on that connection.
//! - A reader holds a connection only for the length of one call, then gives it back; an
//!   idle reader connection is handed to the next reader as it is (read-only sessions are
//!   all alike).
//! - A caller that finds every connection in use waits at most the pool's wait, then gets
//!   [`StoreError::Busy`]. A writer that finds the pool full of idle reader connections
//!   closes one to take its place.
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
    /// Read-only connections no one is using.
    idle: Vec<Connection>,
}

/// A place in the pool, with the connection that fills it (once connected).
pub(super) struct Lease {
    pool: Arc<Pool>,
    pub(super) conn: Connection,
    /// Whether the connection can serve another reader once this one is done.
    shareable: bool,
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

    /// A place for a reader (`read_only`, which may reuse an idle connection) or a writer,
    /// waiting at most the pool's wait. `store` names the store in the error.
    pub(super) fn lease(
        self: &Arc<Self>,
        read_only: bool,
        store: &dyn std::fmt::Display,
    ) -> Result<Lease, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if read_only && let Some(conn) = state.idle.pop() {
                return Ok(self.leased(conn, read_only));
            }
            if state.open < self.max {
                state.open += 1;
                return Ok(self.leased(Connection::default(), read_only));
            }
            if !read_only && let Some(idle) = state.idle.pop() {
                // The writer takes the idle connection's place; closing it talks to the
                // server, so not under the lock.
                drop(state);
                drop(idle);
                return Ok(self.leased(Connection::default(), read_only));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Busy {
                    message: format!(
                        "all {} connections to {store} stayed in use for {} ms; try again, \
                         or raise pool_max= in the store URL",
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

    fn leased(self: &Arc<Self>, conn: Connection, shareable: bool) -> Lease {
        Lease {
            pool: self.clone(),
            conn,
            shareable,
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
        let alive = conn.client.as_ref().is_some_and(|c| !c.is_closed());
        let mut state = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        let closing = if self.shareable && alive {
            state.idle.push(conn);
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
        let b = pool.lease(false, &"s").unwrap();
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
        let held = pool.lease(false, &"s").unwrap();
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
