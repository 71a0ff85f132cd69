//! Decoding input (NDJSON, CSV, Parquet) straight to Arrow against a stream's schema, with
//! per-row validation. Good rows come out as one record batch in the stream's schema; each
//! bad row comes out as a [`Reject`] with a reason code, a message, its raw bytes and its
//! line (or row) number. A bad row never costs the good rows around it.
//!
//! Clean input is decoded a whole chunk at a time (NDJSON first by `direct`, one pass per
//! line into the column types, then by Arrow's vectorised decoders; CSV by Arrow's); only
//! when that fails are the lines bisected to find the bad rows, so clean input pays nothing
//! for validation beyond a few vectorised null and range checks.

mod checks;
mod csv;
mod direct;
mod file;
mod format;
mod ndjson;
mod parquet;
mod text;

pub use self::csv::CsvDecoder;
pub use self::file::FileDecoder;
pub(crate) use self::file::{LineChunks, read_header_line};
pub use self::format::Format;
pub use self::ndjson::NdjsonDecoder;
pub use self::parquet::{ParquetDecoder, decode_parquet_file};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

/// Why a row was rejected. The codes are stable: scripts and the HTTP API use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// Not valid JSON, not a single JSON object, or a malformed CSV record.
    BadJson,
    /// A malformed CSV record (wrong number of fields, bad quoting).
    BadCsv,
    /// A value of the wrong type for its column.
    WrongType,
    /// NULL or missing in a NOT NULL column (or in the event-time column).
    NullInNotNull,
    /// An event time before 1900 or after 2999.
    TimestampOutOfRange,
    /// A row larger than `limits::ROW_BYTES_MAX`.
    RowTooLarge,
    /// A message another program published to a partition its partition key does not
    /// hash to (JetStream streams).
    WrongPartition,
}

impl RejectCode {
    /// The stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectCode::BadJson => "bad_json",
            RejectCode::BadCsv => "bad_csv",
            RejectCode::WrongType => "wrong_type",
            RejectCode::NullInNotNull => "null_in_not_null",
            RejectCode::TimestampOutOfRange => "timestamp_out_of_range",
            RejectCode::RowTooLarge => "row_too_large",
            RejectCode::WrongPartition => "wrong_partition",
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why, as a stable code.
    pub code: RejectCode,
    /// Why, for people.
    pub reason: String,
    /// 1-based line (NDJSON, CSV) or row (Parquet) number in its source.
    pub line: u64,
    /// The row as it arrived (Parquet rows are rendered as JSON).
    pub raw: Vec<u8>,
}

/// The outcome of decoding one chunk of input.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// The good rows, in the stream's schema, in input order; None if there are none.
    pub batch: Option<RecordBatch>,
    /// The bad rows, in input order.
    pub rejects: Vec<Reject>,
}

impl Decoded {
    /// Number of good rows.
    pub fn accepted(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows())
    }
}

/// The good batches, the lines they hold (indexes into the line list) and the rejects
/// that [`bisect`] collects.
#[derive(Default)]
pub(crate) struct Bisected {
    pub batches: Vec<RecordBatch>,
    pub kept: Vec<usize>,
    pub rejects: Vec<Reject>,
}

impl Bisected {
    /// The good rows as one batch of `schema`.
    pub fn concat(
        &mut self,
        schema: &arrow_schema::SchemaRef,
    ) -> crate::error::Result<Option<RecordBatch>> {
        Ok(match self.batches.len() {
            0 => None,
            1 => self.batches.pop(),
            _ => Some(arrow_select::concat::concat_batches(schema, &self.batches)?),
        })
    }
}

/// What one decoding attempt over lines `[from, to)` gives: their batch, or the code and
/// reason to reject them with (used once bisection has isolated a single line).
pub(crate) type Attempt = std::result::Result<RecordBatch, (RejectCode, String)>;

/// Decode lines `[from, to)` with `attempt`; on failure split the range in halves until
/// each bad line stands alone and is rejected. Clean input costs one attempt.
pub(crate) fn bisect(
    text: &[u8],
    lines: &[(u64, usize, usize)],
    from: usize,
    to: usize,
    attempt: &dyn Fn(usize, usize) -> crate::error::Result<Attempt>,
    out: &mut Bisected,
) -> crate::error::Result<()> {
    match attempt(from, to)? {
        Ok(batch) => {
            out.batches.push(batch);
            out.kept.extend(from..to);
        }
        Err((code, reason)) if to - from == 1 => {
            let (line, s, e) = lines[from];
            out.rejects.push(Reject {
                code,
                reason,
                line,
                raw: text[s..e].to_vec(),
            });
        }
        Err(_) => {
            let mid = from + (to - from) / 2;
            bisect(text, lines, from, mid, attempt, out)?;
            bisect(text, lines, mid, to, attempt, out)?;
        }
    }
    Ok(())
}

/// The UTF-8 byte-order mark some tools write at the start of text files.
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Byte ranges of the non-blank lines of `text`, with their 1-based line numbers, and the
/// rejects for lines over the size limit.
pub(crate) fn split_lines(
    text: &[u8],
    first_line: u64,
    rejects: &mut Vec<Reject>,
) -> Vec<(u64, usize, usize)> {
    let mut lines = Vec::new();
    // A UTF-8 byte-order mark may open a file or a body; it is not part of the first row.
    let mut start = if first_line == 1 && text.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    let mut line = first_line;
    let mut push = |s: usize, mut e: usize, line: u64, lines: &mut Vec<(u64, usize, usize)>| {
        if e > s && text[e - 1] == b'\r' {
            e -= 1;
        }
        if text[s..e].iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if e - s > freshet_types::limits::ROW_BYTES_MAX {
            rejects.push(Reject {
                code: RejectCode::RowTooLarge,
                reason: format!(
                    "row of {} bytes exceeds the limit of {} bytes (ROW_BYTES_MAX)",
                    e - s,
                    freshet_types::limits::ROW_BYTES_MAX
                ),
                line,
                raw: text[s..e].to_vec(),
            });
            return;
        }
        lines.push((line, s, e));
    };
    for nl in memchr::memchr_iter(b'\n', text) {
        push(start, nl, line, &mut lines);
        start = nl + 1;
        line += 1;
    }
    if start < text.len() {
        push(start, text.len(), line, &mut lines);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{StreamStatement, parse_stream_statement};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMillisecondType};

    /// The first column's values, as integers.
    fn first_column(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    fn def() -> crate::def::StreamDef {
        let sql = "CREATE STREAM t (id BIGINT NOT NULL, name VARCHAR, ts TIMESTAMP NOT NULL,
                   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)";
        match parse_stream_statement(sql).unwrap() {
            Some(StreamStatement::Create { def, .. }) => def,
            _ => unreachable!(),
        }
    }

    #[test]
    fn ndjson_good_rows_and_every_kind_of_bad_row() {
        let big = format!(
            "{{\"id\":9,\"ts\":1,\"name\":\"{}\"}}",
            "x".repeat(freshet_types::limits::ROW_BYTES_MAX)
        );
        let text = format!(
            "{{\"id\":1,\"name\":\"a\",\"ts\":\"2015-07-15T00:00:00.000Z\"}}\n\
             {{\"id\":2,\"ts\":1436918400001,\"extra\":true}}\n\
             {{\"id\": 3, \"ts\": \n\
             {{\"id\":\"four\",\"ts\":1}}\n\
             \n\
             {{\"id\":null,\"ts\":1}}\n\
             {{\"name\":\"no id\",\"ts\":1}}\n\
             {big}\n\
             {{\"id\":6,\"ts\":99999999999999999}}\n\
             [1,2]\n\
             {{\"id\":7,\"ts\":1}}{{\"id\":8,\"ts\":1}}\n\
             {{\"id\":9,\"ts\":\"not a time\"}}\n\
             {{\"id\":10,\"ts\":2}}\r\n"
        );
        let d = NdjsonDecoder::new(&def())
            .decode(text.as_bytes(), 1)
            .unwrap();
        let batch = d.batch.unwrap();
        let ids = first_column(&batch);
        assert_eq!(ids, vec![1, 2, 10]);
        let ts = batch.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(0), 1_436_918_400_000);
        assert_eq!(ts.value(1), 1_436_918_400_001);
        let got: Vec<(u64, RejectCode)> = d.rejects.iter().map(|r| (r.line, r.code)).collect();
        assert_eq!(
            got,
            vec![
                (3, RejectCode::BadJson),
                (4, RejectCode::WrongType),
                (6, RejectCode::NullInNotNull),
                (7, RejectCode::NullInNotNull),
                (8, RejectCode::RowTooLarge),
                (9, RejectCode::TimestampOutOfRange),
                (10, RejectCode::BadJson),
                (11, RejectCode::BadJson),
                (12, RejectCode::WrongType),
            ]
        );
        assert_eq!(d.rejects[1].raw, br#"{"id":"four","ts":1}"#);
        assert!(
            d.rejects[2].reason.contains("`id`"),
            "{}",
            d.rejects[2].reason
        );
    }

    /// Issue 18: a fraction sent to an integer column is rejected, as in CSV, not
    /// truncated; whole numbers in any notation are taken, out-of-range ones are not.
    #[test]
    fn ndjson_integers_are_whole_and_in_range() {
        let sql = "CREATE STREAM t (id BIGINT NOT NULL, small SMALLINT, name VARCHAR,
                   price DECIMAL(10,2), ts TIMESTAMP NOT NULL, WATERMARK FOR ts AS ts)";
        let Some(StreamStatement::Create { def, .. }) = parse_stream_statement(sql).unwrap() else {
            unreachable!()
        };
        let text = "{\"id\":1.5,\"ts\":1}\n\
                    {\"id\":\"7\",\"ts\":1}\n\
                    {\"id\":2e3,\"ts\":1}\n\
                    {\"id\":-0.25,\"ts\":1}\n\
                    {\"id\":9007199254740993,\"small\":-32768,\"ts\":1}\n\
                    {\"id\":1,\"small\":32768,\"ts\":1}\n\
                    {\"id\":9223372036854775807,\"ts\":1}\n\
                    {\"id\":9223372036854775808,\"ts\":1}\n\
                    {\"id\":true,\"ts\":1}\n\
                    {\"id\":7.0,\"ts\":1}\n\
                    {\"id\":1.0000000000000002,\"ts\":1}\n\
                    {\"id\":1e-20,\"ts\":1}\n\
                    {\"id\":1e65536,\"ts\":1}\n\
                    {\"id\":\"x\",\"ts\":1}\n\
                    {\"id\":8,\"name\":42,\"price\":\"12.5\",\"ts\":1}\n\
                    {\"id\":9,\"price\":1e99999,\"ts\":1}\n";
        let d = NdjsonDecoder::new(&def).decode(text.as_bytes(), 1).unwrap();
        let batch = d.batch.unwrap();
        let ids = first_column(&batch);
        assert_eq!(ids, vec![7, 2000, 9007199254740993, i64::MAX, 7, 8]);
        // A number sent to a text column is taken as its JSON text.
        assert_eq!(batch.column(2).as_string::<i32>().value(5), "42");
        let price = batch
            .column(3)
            .as_primitive::<arrow_array::types::Decimal128Type>();
        assert_eq!(price.value(5), 1250);
        let small = batch
            .column(1)
            .as_primitive::<arrow_array::types::Int16Type>();
        assert_eq!(small.value(2), -32768);
        let got: Vec<(u64, RejectCode, &str)> = d
            .rejects
            .iter()
            .map(|r| (r.line, r.code, r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    RejectCode::WrongType,
                    "column `id`: 1.5 is not a whole number, so not a BIGINT"
                ),
                (
                    4,
                    RejectCode::WrongType,
                    "column `id`: -0.25 is not a whole number, so not a BIGINT"
                ),
                (
                    6,
                    RejectCode::WrongType,
                    "column `small`: 32768 is out of range for SMALLINT"
                ),
                (
                    8,
                    RejectCode::WrongType,
                    "column `id`: 9223372036854775808 is out of range for BIGINT"
                ),
                (
                    9,
                    RejectCode::WrongType,
                    "column `id`: \"true\" is not a number, so not a BIGINT"
                ),
                (
                    11,
                    RejectCode::WrongType,
                    "column `id`: 1.0000000000000002 is not a whole number, so not a BIGINT"
                ),
                (
                    12,
                    RejectCode::WrongType,
                    "column `id`: 1e-20 is not a whole number, so not a BIGINT"
                ),
                (
                    13,
                    RejectCode::WrongType,
                    "column `id`: 1e65536 is out of range for BIGINT"
                ),
                (
                    14,
                    RejectCode::WrongType,
                    "column `id`: \"x\" is not a number, so not a BIGINT"
                ),
                (
                    16,
                    RejectCode::WrongType,
                    "column `price`: cannot read \"1e99999\" as DECIMAL(10,2)"
                ),
            ]
        );
    }

    #[test]
    fn csv_converts_per_row() {
        let def = def();
        let dec = CsvDecoder::new(&def, b"ts,id,name\n").unwrap();
        let text = b"2015-07-15T00:00:00Z,1,a\n1436918400001,2,\nnope,3,c\n5,x,d\n1,2,3,4\n6,,e\n";
        let d = dec.decode(text, 2).unwrap();
        let batch = d.batch.unwrap();
        let ids = first_column(&batch);
        assert_eq!(ids, vec![1, 2]);
        assert!(batch.column(1).is_null(1), "empty field is NULL");
        let got: Vec<(u64, RejectCode)> = d.rejects.iter().map(|r| (r.line, r.code)).collect();
        assert_eq!(
            got,
            vec![
                (4, RejectCode::WrongType),
                (5, RejectCode::WrongType),
                (6, RejectCode::BadCsv),
                (7, RejectCode::NullInNotNull),
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_row() {
        let def = def();
        let ndjson = b"\xEF\xBB\xBF{\"id\":1,\"ts\":1}\n{\"id\":2,\"ts\":2}\n";
        let d = NdjsonDecoder::new(&def).decode(ndjson, 1).unwrap();
        assert_eq!(d.accepted(), 2, "{:?}", d.rejects);
        let csv = CsvDecoder::new(&def, b"\xEF\xBB\xBFid,ts\n").unwrap();
        let d = csv.decode(b"1,1\n", 2).unwrap();
        assert_eq!(d.accepted(), 1, "{:?}", d.rejects);
    }
}
