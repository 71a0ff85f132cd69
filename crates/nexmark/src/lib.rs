//! Freshet's Nexmark workload: a deterministic, columnar generator of the `person`,
//! `auction` and `bid` streams, their Arrow schemas and `CREATE STREAM` statements, and a
//! fast NDJSON encoder for the generated batches.
//!
//! The arithmetic is Apache Beam's reference generator (see `NEXMARK.md`): event kinds by
//! `id mod 50`, dense person and auction ids, hot and cold foreign keys, log-uniform prices
//! and `extra` padding toward 200/500/100-byte rows. Unlike Beam, the randomness is
//! counter-based (keyed by seed, event id and draw index), so every event is a pure
//! function of the seed and its id: any number of interleaved splits produce exactly the
//! events of one generator, and any batch can be regenerated.
//!
//! This crate does not pace events against wall-clock time, write to any stream, or do any
//! I/O; it only computes events and encodes them.
//!
//! ```
//! use freshet_nexmark::{EventKind, Generator, GeneratorConfig, write_ndjson};
//!
//! let config = GeneratorConfig { max_events: Some(1000), ..GeneratorConfig::default() };
//! let mut generator = Generator::new(config, 0, 1);
//! let mut ndjson = Vec::new();
//! while let Some(batches) = generator.next_batches(256, Some(EventKind::Bid)) {
//!     if let Some(bids) = &batches.bid {
//!         write_ndjson(EventKind::Bid, bids, &mut ndjson);
//!     }
//! }
//! // 46 of every 50 events are bids.
//! assert_eq!(ndjson.iter().filter(|&&b| b == b'\n').count(), 920);
//! ```
#![deny(missing_docs)]

mod format;
mod generator;
pub mod model;
mod ndjson;
mod rng;
mod schema;
mod text;

pub use generator::{Batches, EVENTS_PER_CALL_MAX, Generator, GeneratorConfig};
pub use ndjson::write_ndjson;
pub use schema::{EventKind, ddl};

/// Event time of event 0 by default: 2015-07-15T00:00:00Z, in ms since the epoch.
pub const BASE_TIME_MS: i64 = 1_436_918_400_000;

#[cfg(test)]
mod tests;
