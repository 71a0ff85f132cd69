//! The leaf operator: rows of one stream, optionally assigned to windows.
//!
//! A windowed source adds `window_start`/`window_end` (copying a row once per hopping
//! window) and applies the view's late-data policy: a row whose window ends at or before
//! the source's window watermark (stream watermark − allowed lateness) can no longer change
//! a result, so it is dropped or dead-lettered here, counted either way. Under
//! `late_data = 'update'` a row whose window the stream watermark has passed, but not the
//! window watermark, amends an already written provisional row and is counted as updated.

use crate::Ctx;
use crate::error::{EngineError, Result};
use crate::options::LatePolicy;
use crate::rows::{Change, Origin, Rows};
use crate::window::WindowKind;
use arrow_array::{
    Array, ArrayRef, RecordBatch, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use freshet_store::{LateEvent, RowState};
use freshet_types::{RowOffsets, Watermark, Window};
use std::sync::Arc;

/// A stream read by a view.
pub struct Source {
    /// The stream's name.
    pub stream: String,
    /// Index of the event-time column in the stream's schema.
    pub time_column: usize,
    /// The window function applied, if any.
    pub window: Option<WindowKind>,
    /// Columns to produce, as indices into the stream's columns followed by
    /// `window_start`, `window_end`.
    pub projection: Vec<usize>,
    /// Output schema.
    pub schema: SchemaRef,
    /// The stream's watermark, as last told.
    pub watermark: Option<Watermark>,
    /// Allowed lateness of the view (windows close, and rows framed by `ROWS BETWEEN` are
    /// released, this far behind the watermark).
    pub lateness_ms: i64,
}

/// Event times as milliseconds, whatever the timestamp unit.
pub fn times_ms(col: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let ms = match col.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => col.clone(),
        _ => arrow_cast::cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
    };
    Ok(ms
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| EngineError::Bug("event time is not a timestamp".into()))?
        .clone())
}

impl Source {
    /// Window ends at or before this are complete: no row of them will be accepted.
    pub fn window_watermark(&self) -> Option<Watermark> {
        self.watermark.map(|w| w.less(self.lateness_ms))
    }

    /// Rows of `batch` (partition `partition`, its rows at `offsets`) in this source's shape.
    pub fn on_input(
        &mut self,
        partition: u32,
        offsets: &RowOffsets,
        batch: &RecordBatch,
        ctx: &mut Ctx,
    ) -> Result<Vec<Rows>> {
        let n = batch.num_rows();
        let Some(kind) = self.window else {
            let columns: Vec<ArrayRef> = self
                .projection
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            let origin = Origin::new(
                UInt32Array::from(vec![partition; n]),
                match offsets {
                    RowOffsets::Dense { first, len } => {
                        UInt64Array::from_iter_values(*first..*first + *len as u64)
                    }
                    RowOffsets::Listed(o) => UInt64Array::from(o.to_vec()),
                },
                UInt32Array::from(vec![0; n]),
            );
            return Ok(vec![Rows {
                batch: RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    columns,
                    &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
                )?,
                origin: Some(origin),
                change: Change::Upsert(RowState::Final),
            }]);
        };
        let times = times_ms(batch.column(self.time_column))?;
        let per = kind.windows_per_event();
        let closed = self.window_watermark();
        let mut rows: Vec<u32> = Vec::with_capacity(n * per);
        let mut starts: Vec<i64> = Vec::with_capacity(n * per);
        let mut ends: Vec<i64> = Vec::with_capacity(n * per);
        let mut copies: Vec<u32> = Vec::with_capacity(n * per);
        // Under `late_data = 'update'` a window is written once the stream watermark passes
        // its end; an event that still joins it amends a written row.
        let amending = (ctx.late_policy == LatePolicy::Update)
            .then_some(self.watermark)
            .flatten();
        for i in 0..n {
            let t = times.value(i);
            let mut amends = false;
            for k in 0..per {
                let w = kind.window(t, k);
                let (s, e) = (w.start(), w.end());
                if closed.is_some_and(|c| c.completes(e)) {
                    self.late(batch, partition, offsets.get(i), i, t, w, ctx)?;
                    continue;
                }
                amends |= amending.is_some_and(|w| w.completes(e));
                rows.push(i as u32);
                starts.push(s);
                ends.push(e);
                copies.push(k as u32);
            }
            ctx.stats.late_updated += u64::from(amends);
        }
        let idx = UInt32Array::from(rows);
        let width = batch.num_columns();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &c in &self.projection {
            columns.push(if c < width {
                if per == 1 && idx.len() == n {
                    batch.column(c).clone()
                } else {
                    arrow_select::take::take(batch.column(c), &idx, None)?
                }
            } else if c == width {
                Arc::new(TimestampMillisecondArray::from(starts.clone()))
            } else {
                Arc::new(TimestampMillisecondArray::from(ends.clone()))
            });
        }
        let len = idx.len();
        let origin = Origin::new(
            UInt32Array::from(vec![partition; len]),
            UInt64Array::from_iter_values(idx.values().iter().map(|&i| offsets.get(i as usize))),
            UInt32Array::from(copies),
        );
        Ok(vec![Rows {
            batch: RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(len)),
            )?,
            origin: Some(origin),
            change: Change::Upsert(RowState::Final),
        }])
    }

    #[allow(clippy::too_many_arguments)]
    fn late(
        &self,
        batch: &RecordBatch,
        partition: u32,
        offset: u64,
        i: usize,
        t: i64,
        window: Window,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.set_aside(|| {
            Ok(LateEvent {
                stream: self.stream.clone(),
                partition,
                offset,
                event_time_ms: t,
                reason: format!(
                    "window [{}, {}) was already final: the watermark minus allowed \
                     lateness had reached {}",
                    fmt_ms(window.start()),
                    fmt_ms(window.end()),
                    fmt_ms(self.window_watermark().unwrap_or(Watermark::MIN).0)
                ),
                row_json: row_json(batch, i)?,
            })
        })
    }
}

/// RFC 3339 text of an event time in ms.
pub fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// One row as a JSON object.
pub fn row_json(batch: &RecordBatch, i: usize) -> Result<String> {
    let one = batch.slice(i, 1);
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    writer.write(&one)?;
    writer.finish()?;
    let text =
        String::from_utf8(writer.into_inner()).map_err(|e| EngineError::Bug(e.to_string()))?;
    Ok(text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}
