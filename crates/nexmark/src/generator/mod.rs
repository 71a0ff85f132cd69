//! The generator: turns ranges of event numbers into one Arrow batch per event kind.
//!
//! Event number `n` (0, 1, 2, ...) is a position on the global timeline. With out-of-order
//! groups of size `G` it carries event id `e = floor(n/G)·G + (n·953 mod G)` (for `G = 1`,
//! `e = n`); everything about the event (kind, ids, values, `date_time = ts(e)`) is a pure
//! function of the seed and `e`. A generator that is split `i` of `k` takes the event
//! numbers `i, i+k, i+2k, ...`, so `k` splits together produce exactly the events of one.
//!
//! Columns are written straight into pre-sized vectors and byte buffers and handed to Arrow
//! without copying; no per-event allocation happens. The generator does no I/O and keeps no
//! clock: pacing events against wall time is the caller's business.

mod auction;
mod bid;
mod columns;
mod config;
mod person;
mod shared;
mod split;

pub use config::GeneratorConfig;
pub use split::{Batches, EVENTS_PER_CALL_MAX, Generator};
