//! What a stream is: its schema, event-time column, watermark rule, partitioning and
//! storage options. Persisted in the catalog; validated once when created.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use freshet_log::{FsyncPolicy, PartitionConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One column of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// The SQL type as written.
    pub sql_type: String,
    /// The Arrow type it maps to.
    pub data_type: DataType,
    /// Whether the column may be NULL (false for `NOT NULL`).
    pub nullable: bool,
}

/// When appended events become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Nothing is acknowledged before it is on disk (the default).
    Always,
    /// Synced at most `fsync_interval` after being written.
    Interval,
    /// Left to the operating system.
    Never,
}

/// Storage and timing options from `WITH (...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Durability policy.
    pub fsync: FsyncMode,
    /// Sync interval under `fsync = 'interval'`, in ms.
    pub fsync_interval_ms: u64,
    /// Segment size at which a segment is sealed.
    pub segment_bytes: u64,
    /// Retention by age, in ms since ingest.
    pub retention_age_ms: Option<u64>,
    /// Retention by size, per partition.
    pub retention_bytes: Option<u64>,
    /// A partition with no events for this long stops holding the stream's watermark back.
    pub idle_timeout_ms: u64,
    /// Where the stream's log is when it is not the embedded one: NATS JetStream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<Box<JetStreamDef>>,
}

/// A stream whose log is NATS JetStream: one JetStream stream per partition, partition `p`
/// on subject `<subject>.<p>`, offsets its sequence numbers (docs/scale-out.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamDef {
    /// The servers, `nats://host:port` joined by commas.
    pub servers: String,
    /// The subject prefix; partition `p` is `<subject>.<p>`.
    pub subject: String,
    /// Replicas of each JetStream stream Freshet creates.
    pub replicas: u32,
    /// Each partition's JetStream stream's creation time as the server reported it when
    /// the stream was declared: a stream deleted and created again since is refused.
    #[serde(default)]
    pub created: Vec<String>,
}

impl JetStreamDef {
    /// The subject of partition `p`.
    pub fn partition_subject(&self, p: u32) -> String {
        format!("{}.{p}", self.subject)
    }

    /// The JetStream stream that holds partition `p` (stream names cannot hold dots).
    pub fn stream_name(&self, p: u32) -> String {
        format!("FRESHET_{}_{p}", self.subject.replace(['.', '-'], "_"))
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 100,
            segment_bytes: freshet_types::limits::SEGMENT_BYTES_DEFAULT,
            retention_age_ms: None,
            retention_bytes: None,
            idle_timeout_ms: 30_000,
            jetstream: None,
        }
    }
}

/// A declared stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDef {
    /// Stream name (lower-case unless quoted).
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<ColumnDef>,
    /// The event-time column (a TIMESTAMP column).
    pub event_time: String,
    /// Watermark = max event time seen − this bounded out-of-orderness, in ms.
    pub watermark_delay_ms: u64,
    /// Number of partitions.
    pub partitions: u32,
    /// Column whose stable hash picks the partition; `None` spreads batches round-robin.
    pub partition_key: Option<String>,
    /// Storage and timing options.
    pub options: StreamOptions,
    /// The statement that created the stream, as written.
    pub ddl: String,
}

impl StreamDef {
    /// The Arrow schema of the stream's events.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Index of the event-time column.
    pub fn event_time_index(&self) -> usize {
        self.column_index(&self.event_time)
            .expect("the event-time column was validated at CREATE STREAM")
    }

    /// Index of the partition-key column, if any.
    pub fn partition_key_index(&self) -> Option<usize> {
        self.partition_key.as_ref().map(|k| {
            self.column_index(k)
                .expect("the partition key was validated at CREATE STREAM")
        })
    }

    /// The log configuration of each partition.
    pub fn partition_config(&self) -> PartitionConfig {
        PartitionConfig {
            fsync: match self.options.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => {
                    FsyncPolicy::Interval(Duration::from_millis(self.options.fsync_interval_ms))
                }
                FsyncMode::Never => FsyncPolicy::Never,
            },
            segment_bytes: self.options.segment_bytes,
            retention_age: self.options.retention_age_ms.map(Duration::from_millis),
            retention_bytes: self.options.retention_bytes,
            ..PartitionConfig::default()
        }
    }
}

/// The Arrow type of event-time columns: milliseconds since the epoch.
pub fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}
