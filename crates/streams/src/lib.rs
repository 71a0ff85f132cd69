//! freshet-streams: typed streams over the Freshet log.
//!
//! A stream is declared with `CREATE STREAM` ([`ddl`]), recorded in the [`catalog`], and
//! stored as partitions of the embedded log plus a dead-letter log ([`stream`]). Input
//! (NDJSON, CSV, Parquet) is decoded straight to Arrow and validated row by row
//! ([`decode`]); good rows are split by a stable hash of the partition key
//! ([`partitioner`]) and appended as Arrow IPC frames ([`payload`]); bad rows go to the
//! dead-letter stream with their reason ([`dlq`]). Nothing is dropped silently.
//!
//! Not here: views, SQL queries, watermark tracking (the engine), HTTP and the CLI (the
//! binary).
#![deny(missing_docs)]

pub mod catalog;
mod commit_order;
pub mod datadir;
pub mod ddl;
pub mod decode;
pub mod def;
pub mod dlq;
pub mod duration;
pub mod error;
pub mod idempotency;
pub mod ingest;
pub mod input;
pub mod inspect;
pub mod jetstream;
pub mod outcome;
pub mod partitioner;
pub mod payload;
pub mod stream;

pub use datadir::DataDir;
pub use decode::FileDecoder;
pub use def::StreamDef;
pub use error::{Result, StreamError};
pub use ingest::Format;
pub use stream::{AppendOutcome, Stream};
