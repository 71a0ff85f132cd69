//! What the decoder targets share: a stream with a column of every type and the count of
//! rows a decoder must account for.

use freshet_streams::ddl::{StreamStatement, parse_stream_statement};
use freshet_streams::def::StreamDef;

/// A stream with one column of every type a stream may declare.
pub fn every_type() -> StreamDef {
    let sql = "CREATE STREAM t (
        id BIGINT NOT NULL, i INT, s SMALLINT, t TINYINT, d DOUBLE, r REAL, b BOOLEAN,
        name VARCHAR, txt TEXT, ts TIMESTAMP NOT NULL, tz TIMESTAMP WITH TIME ZONE, day DATE,
        amount DECIMAL(10,2), raw BYTEA,
        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
    ) WITH (partitions = 2, partition_key = 'id')";
    match parse_stream_statement(sql).expect("the fuzz stream parses") {
        Some(StreamStatement::Create { def, .. }) => def,
        _ => panic!("not a CREATE STREAM"),
    }
}

/// A stream with a column of every type NDJSON's fast path reads (`decode::direct`).
pub fn fast_path_types() -> StreamDef {
    let sql = "CREATE STREAM t (
        id BIGINT NOT NULL, i INT, s SMALLINT, t TINYINT, d DOUBLE, r REAL, b BOOLEAN,
        name VARCHAR, ts TIMESTAMP NOT NULL, tz TIMESTAMP WITH TIME ZONE,
        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
    )";
    match parse_stream_statement(sql).expect("the fuzz stream parses") {
        Some(StreamStatement::Create { def, .. }) => def,
        _ => panic!("not a CREATE STREAM"),
    }
}

/// Rows in `text` a decoder must either accept or reject: its non-blank lines (a line's
/// trailing `\r` does not count, nor a UTF-8 byte-order mark opening the source, `bom`).
pub fn rows(text: &[u8], bom: bool) -> usize {
    let text = match bom {
        true => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
        false => text,
    };
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    if text.last() == Some(&b'\n') {
        lines.pop();
    }
    lines
        .into_iter()
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}
