//! Views, rows and commits the store tests write: `counts` (events per user and one-minute
//! window, the shape of most views), `totals` (a key and a UInt64 that can overflow a SQL
//! integer), and a table with a column of every supported type. Shared by the contract
//! tests and each backend's own tests.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::json;
use std::sync::Arc;

use crate::ResultStore;
use crate::model::{
    Commit, LateEvent, PartitionProgress, Progress, ResultBatch, ResultQuery, ResultTable, RowState,
};

pub(crate) fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A view counting events per user and window.
pub(crate) fn counts_table() -> ResultTable {
    ResultTable {
        view: "counts".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("window_start", utc_ms(), false),
            Field::new("window_end", utc_ms(), false),
            Field::new("n", DataType::Int64, false),
        ])),
        key: vec!["user".into(), "window_start".into(), "window_end".into()],
    }
}

/// Rows of `counts`: (user, window start in minutes, count); windows last one minute.
pub(crate) fn counts(
    schema: &SchemaRef,
    rows: &[(Option<&str>, i64, i64)],
    state: RowState,
) -> ResultBatch {
    let minute = 60_000;
    let users: StringArray = rows.iter().map(|r| r.0).collect();
    let starts: TimestampMillisecondArray = rows.iter().map(|r| Some(r.1 * minute)).collect();
    let ends: TimestampMillisecondArray = rows.iter().map(|r| Some((r.1 + 1) * minute)).collect();
    let ns: Int64Array = rows.iter().map(|r| Some(r.2)).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(users),
            Arc::new(starts.with_timezone("UTC")),
            Arc::new(ends.with_timezone("UTC")),
            Arc::new(ns),
        ],
    )
    .expect("valid batch");
    ResultBatch { batch, state }
}

pub(crate) fn progress(next_offset: u64, watermark_ms: i64) -> Progress {
    Progress {
        partitions: vec![
            PartitionProgress {
                stream: "clicks".into(),
                partition: 0,
                next_offset,
                watermark_ms: Some(watermark_ms),
            },
            PartitionProgress {
                stream: "clicks".into(),
                partition: 1,
                next_offset: next_offset * 2,
                watermark_ms: None,
            },
        ],
        watermark_ms: Some(watermark_ms),
        stats: json!({"late_dropped": next_offset}),
    }
}

pub(crate) fn upserts_only(upserts: Vec<ResultBatch>, progress: Progress) -> Commit {
    Commit {
        deletes: vec![],
        upserts,
        state_puts: vec![],
        state_deletes: vec![],
        state_reset: false,
        late: vec![],
        progress,
    }
}

/// A commit of `batch`'s rows, all final, reaching offset `next_offset`.
pub(crate) fn final_commit(batch: RecordBatch, next_offset: u64) -> Commit {
    upserts_only(
        vec![ResultBatch {
            batch,
            state: RowState::Final,
        }],
        progress(next_offset, 0),
    )
}

/// The late event at offset 42 of partition 3 of `clicks`.
pub(crate) fn late_event() -> LateEvent {
    LateEvent {
        stream: "clicks".into(),
        partition: 3,
        offset: 42,
        event_time_ms: 1_000,
        reason: "after_allowed_lateness".into(),
        row_json: r#"{"user":"a"}"#.into(),
    }
}

/// A commit of `late` events only, reaching offset `next_offset`.
pub(crate) fn late_only(late: Vec<LateEvent>, next_offset: u64) -> Commit {
    Commit {
        deletes: vec![],
        late,
        ..upserts_only(vec![], progress(next_offset, 0))
    }
}

/// One `counts` row: (user, window start minute, n, state).
pub(crate) type CountRow = (Option<String>, i64, i64, String);

/// The `counts` rows and whether more exist.
pub(crate) fn read_counts(store: &dyn ResultStore, query: &ResultQuery) -> (Vec<CountRow>, bool) {
    let rows = store.read_results("counts", query).expect("read");
    let batch = &rows.batch;
    let users = batch.column(0).as_string::<i32>();
    let starts = batch.column(1).as_primitive::<TimestampMillisecondType>();
    let ns = batch.column(3).as_primitive::<Int64Type>();
    let states = batch.column(4).as_string::<i32>();
    let out = (0..batch.num_rows())
        .map(|i| {
            (
                (!users.is_null(i)).then(|| users.value(i).to_owned()),
                starts.value(i) / 60_000,
                ns.value(i),
                states.value(i).to_owned(),
            )
        })
        .collect();
    (out, rows.has_more)
}

pub(crate) fn all() -> ResultQuery {
    ResultQuery::default()
}

/// Six `counts` rows: users a and b, windows starting at minutes 0, 1 and 2.
pub(crate) fn six_counts(store: &mut dyn ResultStore) {
    let table = counts_table();
    store.create_view(&table).expect("create");
    let rows = [
        (Some("b"), 0, 4),
        (Some("a"), 0, 1),
        (Some("a"), 1, 2),
        (Some("b"), 1, 5),
        (Some("a"), 2, 3),
        (Some("b"), 2, 6),
    ];
    let batch = counts(&table.schema, &rows, RowState::Final);
    store
        .commit("counts", &upserts_only(vec![batch], progress(6, 0)))
        .expect("commit");
}

/// The counts of `rows`, in order.
pub(crate) fn ns(rows: &[CountRow]) -> Vec<i64> {
    rows.iter().map(|r| r.2).collect()
}

/// A view whose second column can overflow SQL integers.
pub(crate) fn totals_table() -> ResultTable {
    ResultTable {
        view: "totals".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("total", DataType::UInt64, false),
        ])),
        key: vec!["k".into()],
    }
}

pub(crate) fn totals(table: &ResultTable, rows: &[(i64, u64)]) -> ResultBatch {
    let keys: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
    let values: UInt64Array = rows.iter().map(|r| Some(r.1)).collect();
    ResultBatch {
        batch: RecordBatch::try_new(
            Arc::clone(&table.schema),
            vec![Arc::new(keys), Arc::new(values)],
        )
        .expect("valid batch"),
        state: RowState::Provisional,
    }
}

/// The view `types`, keyed by `k`, with a column of every supported type, and three rows of
/// it: extremes, nulls, and small values. `ns` is an instant in nanoseconds (the other time
/// columns hold it in their units) and `ns_max` the largest nanosecond value written.
pub(crate) fn every_type(ns: i64, ns_max: i64) -> (ResultTable, RecordBatch) {
    let fields = vec![
        Field::new("k", DataType::Int64, false),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("ls", DataType::LargeUtf8, true),
        Field::new("sv", DataType::Utf8View, true),
        Field::new("ts_s", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("ts_ms", utc_ms(), true),
        Field::new(
            "ts_us",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "ts_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            true,
        ),
        Field::new("d", DataType::Date32, true),
        Field::new("dec", DataType::Decimal128(10, 2), true),
        Field::new("bin", DataType::Binary, true),
        Field::new("lbin", DataType::LargeBinary, true),
        Field::new("bv", DataType::BinaryView, true),
    ];
    let schema = Arc::new(Schema::new(fields));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Int8Array::from(vec![Some(i8::MIN), None, Some(i8::MAX)])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), None, Some(7)])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
        Arc::new(UInt8Array::from(vec![Some(u8::MAX), None, Some(0)])),
        Arc::new(UInt16Array::from(vec![Some(u16::MAX), None, Some(0)])),
        Arc::new(UInt32Array::from(vec![Some(u32::MAX), None, Some(0)])),
        Arc::new(UInt64Array::from(vec![
            Some(i64::MAX as u64),
            None,
            Some(0),
        ])),
        Arc::new(Float32Array::from(vec![Some(1.5f32), None, Some(-0.25)])),
        Arc::new(Float64Array::from(vec![
            Some(f64::MAX),
            None,
            Some(f64::INFINITY),
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
        Arc::new(LargeStringArray::from(vec![Some("large"), None, Some("x")])),
        Arc::new(StringViewArray::from(vec![
            Some("a string longer than twelve bytes"),
            None,
            Some("short"),
        ])),
        Arc::new(TimestampSecondArray::from(vec![
            Some(ns / 1_000_000_000),
            None,
            Some(-1),
        ])),
        Arc::new(
            TimestampMillisecondArray::from(vec![Some(ns / 1_000_000), None, Some(0)])
                .with_timezone("UTC"),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(ns / 1_000),
            None,
            Some(-1),
        ])),
        Arc::new(
            TimestampNanosecondArray::from(vec![Some(ns), None, Some(ns_max)])
                .with_timezone("+02:00"),
        ),
        Arc::new(Date32Array::from(vec![Some(19_782), None, Some(-1)])),
        Arc::new(
            Decimal128Array::from(vec![Some(12_345), None, Some(-5)])
                .with_precision_and_scale(10, 2)
                .expect("valid decimal"),
        ),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            None,
            Some(&b""[..]),
        ])),
        Arc::new(LargeBinaryArray::from(vec![
            Some(&b"xyz"[..]),
            None,
            Some(&b"1"[..]),
        ])),
        Arc::new(BinaryViewArray::from(vec![
            Some(&b"view"[..]),
            None,
            Some(&b"v"[..]),
        ])),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("valid batch");
    let table = ResultTable {
        view: "types".into(),
        schema,
        key: vec!["k".into()],
    };
    (table, batch)
}
