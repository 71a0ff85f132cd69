//! The system table `freshet_freshness`: one row per view with what `GET /v1/status` shows
//! of it (mode, watermark, lag, staleness against its SLA, last commit, counters), made at
//! each query that reads it from the same figures the HTTP API and the metrics use
//! (`views::all_figures`).

use crate::server::state::App;
use crate::server::views::{ViewFigures, all_figures};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;

/// The table's name.
pub const TABLE: &str = "freshet_freshness";

/// Whether `sql` may read the table (it is made only for queries that name it).
pub fn mentioned(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains(TABLE)
}

/// The table now.
pub fn table(app: &App) -> anyhow::Result<RecordBatch> {
    let figures = all_figures(app).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(batch(&figures)?)
}

fn batch(figures: &[ViewFigures]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let int = |f: &dyn Fn(&ViewFigures) -> Option<u64>| -> ArrayRef {
        Arc::new(
            figures
                .iter()
                .map(|v| f(v).map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                .collect::<Int64Array>(),
        )
    };
    let text = |f: &dyn Fn(&ViewFigures) -> Option<String>| -> ArrayRef {
        Arc::new(figures.iter().map(f).collect::<StringArray>())
    };
    let utc = Some(Arc::from("+00:00"));
    let time = DataType::Timestamp(TimeUnit::Millisecond, utc.clone());
    let schema = Schema::new(vec![
        Field::new("view", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("period_ms", DataType::Int64, false),
        Field::new("watermark", DataType::Utf8, true),
        Field::new("watermark_ms", DataType::Int64, true),
        Field::new("lag_events", DataType::Int64, true),
        Field::new("committed_at", time, true),
        Field::new("staleness_ms", DataType::Int64, true),
        Field::new("sla_ms", DataType::Int64, false),
        Field::new("sla_met", DataType::Boolean, false),
        Field::new("input_events", DataType::Int64, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("late_dropped", DataType::Int64, false),
        Field::new("state_bytes", DataType::Int64, false),
    ]);
    let committed_at = figures
        .iter()
        .map(|v| v.freshness.committed_at_ms)
        .collect::<TimestampMillisecondArray>()
        .with_timezone_opt(utc);
    let columns: Vec<ArrayRef> = vec![
        text(&|v| Some(v.def.name.clone())),
        text(&|v| Some(v.mode().to_owned())),
        int(&|v| Some(v.stats.period_ms)),
        text(&|v| v.freshness.watermark.clone()),
        Arc::new(
            figures
                .iter()
                .map(|v| v.freshness.watermark_ms)
                .collect::<Int64Array>(),
        ),
        int(&|v| v.freshness.lag_events),
        Arc::new(committed_at),
        Arc::new(
            figures
                .iter()
                .map(|v| v.freshness.staleness_ms)
                .collect::<Int64Array>(),
        ),
        int(&|v| Some(v.freshness.sla_ms)),
        Arc::new(
            figures
                .iter()
                .map(|v| Some(v.freshness.sla_met))
                .collect::<BooleanArray>(),
        ),
        int(&|v| Some(v.stats.input_events)),
        int(&|v| Some(v.stats.rows_written)),
        int(&|v| Some(v.stats.late_dropped)),
        int(&|v| Some(v.stats.state_bytes)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns)
}
