//! What an append tells its caller: where the rows went and which were rejected. Also what
//! the idempotency table stores, so that a retried request gets the same answer.

use serde::{Deserialize, Serialize};

/// A rejected row as reported to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectSummary {
    /// 1-based line in the request body or file.
    pub line: u64,
    /// Stable reason code.
    pub code: String,
    /// Reason for people.
    pub reason: String,
}

/// Offsets a commit wrote to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    /// Partition index.
    pub partition: u32,
    /// First offset written.
    pub start: u64,
    /// One past the last offset written.
    pub end: u64,
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// Rows appended to the stream.
    pub accepted: u64,
    /// Rows sent to the dead-letter stream.
    pub rejected: u64,
    /// The first `HTTP_REJECTS_LISTED_MAX` rejected rows with their reasons.
    pub rejects: Vec<RejectSummary>,
    /// Whether the list of rejects was cut short (the count is always exact).
    pub rejects_truncated: bool,
    /// Where the rows went.
    pub partitions: Vec<PartitionRange>,
    /// Where the rejects went in the dead-letter log.
    pub dead_letters: Option<PartitionRange>,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}
