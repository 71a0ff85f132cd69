//! `freshet ingest`: files of generated Nexmark bids mixed with every kind of bad row, in
//! NDJSON, CSV and Parquet. Good rows are all appended, each bad row lands in the
//! dead-letter stream with its reason, position and raw bytes, and the log verifies.

use super::support::{
    BID_COLUMNS, Env, Expected, assert_dead_letters, assert_rejects_listed, display, mixed_csv,
    mixed_ndjson,
};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;
use std::sync::Arc;

/// Enough bids that, with the oversized row, the file spans two of the ingest pipeline's
/// 4 MiB chunks, so line numbers are checked across a chunk boundary.
const BIDS: u64 = 14_000;

#[test]
fn ndjson_file_with_every_kind_of_bad_row() {
    let env = Env::new();
    let good = env.generate_bids(BIDS);
    env.create_bid_stream();
    let mixed = mixed_ndjson(&good);
    assert!(
        mixed.text.len() > 4 * 1024 * 1024,
        "the input spans two chunks"
    );
    let file = env.write("mixed.ndjson", &mixed.text);

    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["stream"], "bid");
    assert_eq!(summary["source"], display(&file));
    assert_eq!(summary["bytes"], mixed.text.len() as u64);
    assert_eq!(summary["accepted"], mixed.accepted, "{summary}");
    assert_eq!(summary["rejected"], mixed.rejects.len() as u64, "{summary}");
    assert_rejects_listed(&summary["rejects"], &mixed.rejects);

    assert_eq!(env.events("bid"), mixed.accepted);
    assert_eq!(env.dead_letter_count("bid"), mixed.rejects.len() as u64);
    let dead = env.dead_letters("bid");
    assert_dead_letters(&dead, &mixed.rejects, &display(&file));
    let null_reasons: Vec<&str> = dead
        .iter()
        .filter(|d| d["code"] == "null_in_not_null")
        .map(|d| d["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(null_reasons.len(), 2);
    assert!(null_reasons[0].contains("`bidder`"), "{}", null_reasons[0]);
    assert!(
        null_reasons[1].contains("`price`"),
        "names the missing field: {}",
        null_reasons[1]
    );
    let info = env.stream_info("bid");
    assert_eq!(info["partitions"], 4);
    assert_eq!(info["partition_key"], "auction");
    assert_eq!(info["event_time"], "date_time");
    assert_eq!(info["watermark_delay_ms"], 4000);
    let parts = info["partition_info"].as_array().expect("partitions");
    assert_eq!(parts.len(), 4);
    assert!(
        parts.iter().all(|p| p["end"].as_u64().expect("end") > 0),
        "bids of many auctions spread over every partition: {info}"
    );
    env.assert_log_verifies();
}

#[test]
fn dlq_pages_with_from_and_limit() {
    let env = Env::new();
    env.create_bid_stream();
    let mixed = mixed_ndjson(&env.generate_bids(100));
    let file = env.write("mixed.ndjson", &mixed.text);
    env.ok(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    let page = env.ok_json(&["dlq", "bid", "--from", "2", "--limit", "3"]);
    let rows = page["dead_letters"].as_array().expect("dead_letters");
    let offsets: Vec<u64> = rows
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![2, 3, 4]);
    let lines: Vec<u64> = rows
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    let want: Vec<u64> = mixed.rejects[2..5].iter().map(|e| e.line).collect();
    assert_eq!(lines, want);
}

#[test]
fn ingest_into_an_unknown_stream_fails_clearly() {
    let env = Env::new();
    env.create_bid_stream();
    let file = env.write("one.ndjson", format!("{}\n", env.generate_bids(1)[0]));
    let run = env.run(&["ingest", "nosuch", file.to_str().expect("UTF-8 path")]);
    assert_eq!(
        run.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("unknown stream `nosuch`"),
        "stderr names the stream: {}",
        run.stderr
    );
    assert_eq!(env.stream_names(), vec!["bid"], "nothing was created");
    assert_eq!(env.events("bid"), 0);

    let missing = env.path("missing.ndjson");
    let run = env.run(&["ingest", "bid", missing.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);

    let run = env.run(&["dlq", "nosuch"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("unknown stream `nosuch`"),
        "{}",
        run.stderr
    );
}

#[test]
fn csv_file_with_header_ingests_with_the_same_counts() {
    let env = Env::new();
    let good = env.generate_bids(BIDS);
    env.create_bid_stream();
    let ndjson = mixed_ndjson(&good);
    let csv = mixed_csv(&good);
    assert_eq!(csv.accepted, ndjson.accepted);
    assert_eq!(csv.rejects.len(), ndjson.rejects.len());
    // No extension it recognises: the format comes from --format.
    let file = env.write("mixed.txt", &csv.text);
    let path = file.to_str().expect("UTF-8 path");

    let run = env.run(&["ingest", "bid", path]);
    assert_eq!(run.code, Some(1), "an unknown extension needs --format");
    assert!(run.stderr.contains("--format"), "{}", run.stderr);

    let summary = env.ok_json(&["ingest", "bid", path, "--format", "csv"]);
    assert_eq!(summary["accepted"], csv.accepted, "{summary}");
    assert_eq!(summary["rejected"], csv.rejects.len() as u64, "{summary}");
    assert_rejects_listed(&summary["rejects"], &csv.rejects);
    assert_eq!(env.events("bid"), csv.accepted);
    assert_dead_letters(&env.dead_letters("bid"), &csv.rejects, &display(&file));
    env.assert_log_verifies();
}

/// One row of the Parquet file (see [`write_parquet`] for the column types).
struct ParquetRow {
    auction: String,
    bidder: Option<i64>,
    price: Option<i64>,
    channel: String,
    url: String,
    date_time_ms: i64,
    extra: String,
}

impl ParquetRow {
    fn from_ndjson(line: &str) -> ParquetRow {
        let v: Value = serde_json::from_str(line).expect("generated bids are JSON");
        let text = |c: &str| v[c].as_str().expect("a text column").to_string();
        ParquetRow {
            auction: v["auction"].to_string(),
            bidder: v["bidder"].as_i64(),
            price: v["price"].as_i64(),
            channel: text("channel"),
            url: text("url"),
            date_time_ms: chrono::DateTime::parse_from_rfc3339(&text("date_time"))
                .expect("generated times are RFC 3339")
                .timestamp_millis(),
            extra: text("extra"),
        }
    }

    fn bad(auction: &str, bidder: Option<i64>, price: Option<i64>, date_time_ms: i64) -> Self {
        ParquetRow {
            auction: auction.into(),
            bidder,
            price,
            channel: "c".into(),
            url: "u".into(),
            date_time_ms,
            extra: "e".into(),
        }
    }
}

/// The good bids and a few bad rows as one Parquet batch. `auction` is text (cast to BIGINT
/// on ingest, so "x" is a wrong type); the others have the stream's types but `bidder` and
/// `price` are nullable. Returns the file, the rows to accept and the rows to reject.
fn write_parquet(env: &Env, good: &[String]) -> (std::path::PathBuf, u64, Vec<Expected>) {
    let t0 = 1_436_918_400_000i64;
    let mut rows: Vec<ParquetRow> = good.iter().map(|l| ParquetRow::from_ndjson(l)).collect();
    let accepted = rows.len() as u64;
    let inserts = [
        (10, "wrong_type", ParquetRow::bad("x", Some(1), Some(1), t0)),
        (
            500,
            "null_in_not_null",
            ParquetRow::bad("1", None, Some(1), t0),
        ),
        (
            1500,
            "null_in_not_null",
            ParquetRow::bad("1", Some(1), None, t0),
        ),
        // The first millisecond of 3000 and the last of 1899.
        (
            3000,
            "timestamp_out_of_range",
            ParquetRow::bad("1", Some(1), Some(1), 32_503_680_000_000),
        ),
        (
            4000,
            "timestamp_out_of_range",
            ParquetRow::bad("1", Some(1), Some(1), -2_208_988_800_001),
        ),
    ];
    let mut expected = Vec::new();
    for (at, code, row) in inserts {
        rows.insert(at, row);
        expected.push(Expected {
            line: at as u64 + 1,
            code,
            raw: String::new(),
        });
    }
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new(BID_COLUMNS[0], DataType::Utf8, false),
        Field::new(BID_COLUMNS[1], DataType::Int64, true),
        Field::new(BID_COLUMNS[2], DataType::Int64, true),
        Field::new(BID_COLUMNS[3], DataType::Utf8, false),
        Field::new(BID_COLUMNS[4], DataType::Utf8, false),
        Field::new(BID_COLUMNS[5], timestamp, false),
        Field::new(BID_COLUMNS[6], DataType::Utf8, false),
    ]));
    let text = |f: fn(&ParquetRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.auction),
        Arc::new(rows.iter().map(|r| r.bidder).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.price).collect::<Int64Array>()),
        text(|r| &r.channel),
        text(|r| &r.url),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.date_time_ms),
        )),
        text(|r| &r.extra),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("a valid batch");
    let path = env.path("bids.parquet");
    let file = std::fs::File::create(&path).expect("create the Parquet file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("a Parquet writer");
    writer.write(&batch).expect("write the batch");
    writer.close().expect("finish the Parquet file");
    (path, accepted, expected)
}

#[test]
fn parquet_file_ingests_with_the_same_counts() {
    let env = Env::new();
    let good = env.generate_bids(5_000);
    env.create_bid_stream();
    let (file, accepted, expected) = write_parquet(&env, &good);

    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["accepted"], accepted, "{summary}");
    assert_eq!(summary["rejected"], expected.len() as u64, "{summary}");
    assert_rejects_listed(&summary["rejects"], &expected);
    assert_eq!(env.events("bid"), accepted);

    let dead = env.dead_letters("bid");
    assert_eq!(dead.len(), expected.len());
    for (row, want) in dead.iter().zip(&expected) {
        assert_eq!(row["line"], want.line, "{row}");
        assert_eq!(row["code"], want.code, "{row}");
        assert_eq!(row["source"], display(&file));
        // A Parquet row has no raw text; it is kept rendered as JSON.
        let raw: Value = serde_json::from_str(row["raw"].as_str().expect("raw"))
            .unwrap_or_else(|e| panic!("raw of a Parquet reject is JSON ({e}): {row}"));
        assert_eq!(raw["channel"], "c", "{row}");
    }
    env.assert_log_verifies();
}

#[test]
fn dlq_of_a_stream_without_rejects_is_empty() {
    let env = Env::new();
    env.create_bid_stream();
    assert_eq!(
        env.dead_letters("bid"),
        Vec::<Value>::new(),
        "before any ingest"
    );
    let file = env.write("bids.ndjson", env.generate_bids(100).join("\n"));
    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["rejected"], 0);
    // The dead-letter log now exists but holds nothing: reading it must end, not spin.
    assert_eq!(
        env.dead_letters("bid"),
        Vec::<Value>::new(),
        "after a clean ingest"
    );
    assert_eq!(env.ok(&["dlq", "bid"]).trim(), "no dead letters in bid");
    assert_eq!(env.dead_letter_count("bid"), 0);
}

#[test]
fn a_line_longer_than_a_chunk_is_dead_lettered_not_fatal() {
    let env = Env::new();
    env.create_bid_stream();
    let good = env.generate_bids(10);
    let huge = super::support::bid_json(
        "1",
        "2",
        "3",
        r#""2015-07-15T00:00:00.000Z""#,
        &format!(r#""{}""#, "h".repeat(10 << 20)),
    );
    let text = format!(
        "{}\n{huge}\n{}\n",
        good[..5].join("\n"),
        good[5..].join("\n")
    );
    let file = env.write("huge-line.ndjson", &text);
    let summary = env.ok_json(&["ingest", "bid", file.to_str().expect("UTF-8 path")]);
    assert_eq!(summary["accepted"], 10, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    let dead = env.dead_letters("bid");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["code"], "row_too_large");
    assert_eq!(dead[0]["line"], 6);
    assert_eq!(dead[0]["raw_truncated"], true);
    assert_eq!(env.events("bid"), 10);
}

#[test]
fn gen_to_streams_keeps_the_nexmark_proportions() {
    let env = Env::new();
    let out = env.ok(&["gen", "nexmark", "--events", "1000", "--to-streams"]);
    assert!(out.contains("generated 1000 events"), "{out}");
    // Nexmark interleaves 1 person, 3 auctions and 46 bids in every 50 events.
    assert_eq!(env.events("person"), 20, "{out}");
    assert_eq!(env.events("auction"), 60, "{out}");
    assert_eq!(env.events("bid"), 920, "{out}");
}
