//! freshet-log: the embedded, partitioned, segmented, append-only event log (DESIGN §5).
//!
//! A stream is a set of partitions; a [`Partition`] is a directory of segment files plus a
//! sparse offset index per segment. Each append writes one checksummed [`frame`] whose
//! payload is opaque here (Freshet stores Arrow IPC). Appends are group-committed under a
//! per-partition [`FsyncPolicy`]; opening a partition recovers from a crash (a torn tail is
//! truncated and reported, other damage refused with the file, byte position and offset).
//! Retention removes old sealed segments but never one a registered consumer still needs.
//!
//! All file access goes through the [`Storage`] trait, with a real [`FileStorage`] and a
//! fault-injecting in-memory [`MemStorage`].
//!
//! Deliberately not here: async, Arrow, schemas, and the mapping of streams to partitions
//! (that is `freshet-streams`). One process writes a partition at a time; the caller holds
//! a lock to guarantee it.
#![deny(missing_docs)]

mod consumers;
mod error;
pub mod frame;
mod inspect;
mod partition;
mod reader;
mod segment;
pub mod storage;
mod verify;

pub use consumers::Consumers;
pub use error::{LogError, Result};
pub use frame::{Frame, FrameHeader, ProducerTag};
pub use inspect::inspect_partition;
pub use partition::{
    AppendRecord, Appended, FsyncPolicy, Partition, PartitionConfig, PartitionStats,
    RecoveryReport, RetentionReport,
};
pub use reader::PartitionReader;
pub use segment::{IndexEntry, TornTail, tail_headers};
pub use storage::{CrashMode, FileStorage, MemStorage, Storage, StorageFile};
pub use verify::{Problem, VerifyReport, verify_partition};
