//! The dead-letter stream: one per stream, a single-partition log in `<stream>/dlq/`
//! holding every rejected row with its reason, raw bytes and source position. Its frames'
//! event times are the ingest times of the rejects.

use crate::decode::Reject;
use crate::error::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt64Type};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use freshet_types::limits::DLQ_RAW_BYTES_MAX;
use serde::Serialize;
use std::sync::{Arc, LazyLock};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Binary, false),
        Field::new("raw_truncated", DataType::Boolean, false),
        Field::new(
            "ingest_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
});

/// The schema of every dead-letter stream.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Rejects as a dead-letter batch. Raw bytes beyond `DLQ_RAW_BYTES_MAX` are cut and the
/// row is marked `raw_truncated`.
pub fn to_batch(source: &str, rejects: &[Reject], ingest_time_ms: i64) -> Result<RecordBatch> {
    let n = rejects.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            source, n,
        ))),
        Arc::new(UInt64Array::from_iter_values(
            rejects.iter().map(|r| r.line),
        )),
        Arc::new(StringArray::from_iter_values(
            rejects.iter().map(|r| r.code.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rejects.iter().map(|r| r.reason.as_str()),
        )),
        Arc::new(BinaryArray::from_iter_values(
            rejects
                .iter()
                .map(|r| &r.raw[..r.raw.len().min(DLQ_RAW_BYTES_MAX)]),
        )),
        Arc::new(BooleanArray::from(
            rejects
                .iter()
                .map(|r| r.raw.len() > DLQ_RAW_BYTES_MAX)
                .collect::<Vec<_>>(),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            std::iter::repeat_n(ingest_time_ms, n),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// One dead-letter row, for listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Offset in the dead-letter log.
    pub offset: u64,
    /// Where the row came from: a file path or `http:<request id>`.
    pub source: String,
    /// 1-based line (or Parquet row) in the source.
    pub line: u64,
    /// Stable reason code.
    pub code: String,
    /// Reason for people.
    pub reason: String,
    /// The raw row (lossy UTF-8).
    pub raw: String,
    /// Whether `raw` was cut at `DLQ_RAW_BYTES_MAX`.
    pub raw_truncated: bool,
    /// When it was rejected, ms since the epoch.
    pub ingest_time: i64,
}

/// Rows of a dead-letter batch whose first row has offset `base`.
pub fn from_batch(batch: &RecordBatch, base: u64) -> Vec<DeadLetter> {
    let c = |i: usize| batch.column(i);
    let source = c(0).as_string::<i32>();
    let line = c(1).as_primitive::<UInt64Type>();
    let code = c(2).as_string::<i32>();
    let reason = c(3).as_string::<i32>();
    let raw = c(4).as_binary::<i32>();
    let truncated = c(5).as_boolean();
    let at = c(6).as_primitive::<TimestampMillisecondType>();
    (0..batch.num_rows())
        .map(|i| DeadLetter {
            offset: base + i as u64,
            source: source.value(i).to_string(),
            line: line.value(i),
            code: code.value(i).to_string(),
            reason: reason.value(i).to_string(),
            raw: String::from_utf8_lossy(raw.value(i)).into_owned(),
            raw_truncated: truncated.value(i),
            ingest_time: at.value(i),
        })
        .collect()
}
