//! Reconciliation: a view recomputed in batch (DataFusion over the log) for a time range,
//! compared row by row with its stored final results, and optionally repaired.
//!
//! Only windows that lie wholly inside the range and that the view has finalised are
//! compared: `window_start >= from` and `window_end <= min(to, watermark - allowed
//! lateness)`. The batch run reads exactly the events of the range, so each such window is
//! recomputed from all of its events. Rows are matched by the view's key; values compare as
//! text, floating-point ones within a relative 1e-9 (aggregation order differs between the
//! engines).

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, SchemaRef};
use freshet_store::{ResultBatch, ResultQuery, ResultStore, RowState};
use freshet_streams::StreamDef;
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::batch::{BatchSession, HistoryFile, TimeRange, Views, in_range};
use crate::compile::{ResultKey, origin_key, under_filters};
use crate::error::{EngineError, Result};
use crate::node::Op;
use crate::runner::{compile_view_over, result_table};
use crate::views::ViewCatalog;

/// Differences kept as examples, per kind.
const SAMPLES_PER_KIND: usize = 10;

/// What one reconciliation found.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    /// The view.
    pub view: String,
    /// Start of the windows compared, in ms since the epoch.
    pub from_ms: i64,
    /// End of the windows compared: the range's end, or the view's finalised watermark if
    /// earlier.
    pub to_ms: i64,
    /// Rows equal in the store and in the batch run.
    pub matched: u64,
    /// Rows present in both with different values.
    pub mismatched: u64,
    /// Rows the batch run has and the store lacks.
    pub missing: u64,
    /// Final rows the store has and the batch run does not.
    pub extra: u64,
    /// `matched / (matched + mismatched + missing + extra)`; 1 when nothing was compared.
    pub ratio: f64,
    /// Up to ten examples of each kind of difference.
    pub samples: Vec<Sample>,
    /// Rows written or deleted by `--repair`.
    pub repaired: u64,
    /// Rows read from history files (`Request::history`).
    pub history_rows: u64,
    /// History rows at or after the log's first event, left to the log.
    pub history_left_to_log: u64,
}

impl Reconciliation {
    /// Whether the stored results equal the batch run.
    pub fn clean(&self) -> bool {
        self.mismatched + self.missing + self.extra == 0
    }
}

/// One difference.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// `mismatched`, `missing` or `extra`.
    pub kind: &'static str,
    /// The key, as `column=value` pairs.
    pub key: String,
    /// The stored row's other columns, if stored.
    pub stored: Option<String>,
    /// The batch run's, if it has the row.
    pub recomputed: Option<String>,
}

/// Rows as text: the key and the other columns of each.
struct TextRows {
    batch: RecordBatch,
    keys: Vec<String>,
    values: Vec<Vec<String>>,
}

fn text_rows(batch: RecordBatch, key: &[usize], names: &[String]) -> Result<TextRows> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut keys = Vec::with_capacity(batch.num_rows());
    let mut values = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        keys.push(
            key.iter()
                .map(|&k| format!("{}={}", names[k], formatters[k].value(row)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        values.push(
            (0..formatters.len())
                .filter(|c| !key.contains(c))
                .map(|c| formatters[c].value(row).to_string())
                .collect(),
        );
    }
    drop(formatters);
    Ok(TextRows {
        batch,
        keys,
        values,
    })
}

fn same_value(a: &str, b: &str, float: bool) -> bool {
    if a == b {
        return true;
    }
    if !float {
        return false;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
        _ => false,
    }
}

fn describe(names: &[String], key: &[usize], values: &[String]) -> String {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| !key.contains(i))
        .zip(values)
        .map(|((_, name), value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to reconcile.
pub struct Request<'a> {
    /// The data directory.
    pub root: &'a Path,
    /// Its streams.
    pub streams: &'a [StreamDef],
    /// Its views.
    pub catalog: &'a ViewCatalog,
    /// The view.
    pub view: &'a str,
    /// Windows starting at or after this, in ms since the epoch.
    pub from_ms: i64,
    /// Windows ending at or before this.
    pub to_ms: i64,
    /// Write the batch values over the differences.
    pub repair: bool,
    /// Called with the batch session's byte counter once it exists, for progress reports.
    pub on_scan: Option<&'a dyn Fn(Arc<std::sync::atomic::AtomicU64>)>,
    /// Files of the streams' events from before their logs.
    pub history: &'a [HistoryFile],
}

/// Recomputes `request.view` in batch and compares it with `store`.
pub fn reconcile(request: &Request<'_>, store: &mut dyn ResultStore) -> Result<Reconciliation> {
    let view = request.view;
    let def = request
        .catalog
        .get(view)
        .ok_or_else(|| EngineError::Sql(format!("unknown view '{view}'")))?;
    let compiled = compile_view_over(request.streams, request.catalog, def)?;
    let table = result_table(def, &compiled);
    // A view keyed by input position (a join's rows) is compared as a multiset of rows:
    // batch execution has no input positions.
    let hidden: Vec<String> = match compiled.key {
        ResultKey::Origin(positions) => origin_key(positions).into_iter().map(|(n, _)| n).collect(),
        ResultKey::Columns(_) => Vec::new(),
    };
    if compiled.root.reaches_across_ranges() {
        return Err(EngineError::Sql(format!(
            "view '{view}' frames or ranks rows across time ranges (a window function OVER \
             (...), or a top-N not per window): a batch run over a range would see only that \
             range's rows, so it cannot be reconciled by range"
        )));
    }
    if matches!(under_filters(&compiled.root).op, Op::TopN { .. }) && request.repair {
        return Err(EngineError::Sql(format!(
            "view '{view}' ranks rows, and a batch run breaks ties in the ORDER BY its own \
             way, so its rows may differ from the stored ones without either being wrong; it \
             can be reconciled but not repaired"
        )));
    }
    let by_position = !hidden.is_empty();
    if by_position && request.repair {
        let keyed_by = match under_filters(&compiled.root).op {
            Op::Aggregate { .. } => "a hash of its group key (grouping sets, or no GROUP BY)",
            _ => "input position (its rows are not aggregated)",
        };
        return Err(EngineError::Sql(format!(
            "view '{view}' is keyed by {keyed_by}, which a batch run does not reproduce; it \
             can be reconciled but not repaired"
        )));
    }
    let schema: SchemaRef = Arc::new(arrow_schema::Schema::new(
        table
            .schema
            .fields()
            .iter()
            .filter(|f| !hidden.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for window in ["window_start", "window_end"] {
        if !names.iter().any(|n| n == window) {
            return Err(EngineError::Sql(format!(
                "view '{view}' has no {window} column: reconciliation compares windows over a \
                 time range, so it needs a windowed view"
            )));
        }
    }
    let key: Vec<usize> = if by_position {
        (0..names.len()).collect()
    } else {
        table
            .key
            .iter()
            .filter_map(|k| names.iter().position(|n| n == k))
            .collect()
    };
    let float: Vec<bool> = (0..names.len())
        .filter(|c| !key.contains(c))
        .map(|c| {
            matches!(
                schema.field(c).data_type(),
                DataType::Float16 | DataType::Float32 | DataType::Float64
            )
        })
        .collect();

    // Windows the view has finalised: those ending before its watermark less lateness.
    let status = store.status(view)?;
    let finalised = status
        .progress
        .as_ref()
        .and_then(|p| p.watermark_ms)
        .map(|w| {
            if w == i64::MAX {
                w
            } else {
                w.saturating_sub(def.options.allowed_lateness_ms as i64)
            }
        });
    let from = request.from_ms;
    let to = finalised.map_or(from, |f| request.to_ms.min(f)).max(from);

    let mut recomputed = Vec::new();
    let mut history = (0, 0);
    if to > from {
        let session = BatchSession::new(
            request.root,
            request.streams,
            Views::Recomputed(&request.catalog.earlier_than(view)),
            TimeRange {
                from_ms: Some(from),
                to_ms: Some(to),
            },
            request.history,
        )?;
        if let Some(on_scan) = request.on_scan {
            on_scan(session.scanned());
        }
        let (_, batches) = session.query(&def.query)?;
        for batch in &batches {
            let batch = in_range(batch, &schema, (from, to), i64::MIN, false)?;
            if batch.num_rows() > 0 {
                recomputed.push(text_rows(batch, &key, &names)?);
            }
        }
        history = (
            session.history().rows.load(Ordering::Relaxed),
            session.history().overlapping.load(Ordering::Relaxed),
        );
    }
    let mut stored = Vec::new();
    let mut offset = 0;
    let mut more = to > from;
    while more {
        let page = store.read_results(
            view,
            &ResultQuery {
                from_ms: Some(from),
                to_ms: Some(to),
                limit: RESULT_ROWS_PER_PAGE_MAX,
                offset,
                ..ResultQuery::default()
            },
        )?;
        offset += page.batch.num_rows();
        let rows = in_range(&page.batch, &schema, (from, to), i64::MIN, true)?;
        if rows.num_rows() > 0 {
            stored.push(text_rows(rows, &key, &names)?);
        }
        more = page.has_more && page.batch.num_rows() > 0;
    }

    if by_position {
        // Equal rows are told apart by their occurrence, so that counts must match too.
        for side in [&mut recomputed, &mut stored] {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for rows in side.iter_mut() {
                for k in rows.keys.iter_mut() {
                    let n = seen.entry(k.clone()).or_default();
                    *n += 1;
                    k.push_str(&format!(" (#{n})"));
                }
            }
        }
    }
    let mut by_key: HashMap<&str, (usize, usize, bool)> = HashMap::new();
    for (b, rows) in stored.iter().enumerate() {
        for (r, k) in rows.keys.iter().enumerate() {
            by_key.insert(k.as_str(), (b, r, false));
        }
    }
    let mut report = Reconciliation {
        view: view.to_owned(),
        from_ms: from,
        to_ms: to,
        matched: 0,
        mismatched: 0,
        missing: 0,
        extra: 0,
        ratio: 1.0,
        samples: Vec::new(),
        repaired: 0,
        history_rows: history.0,
        history_left_to_log: history.1,
    };
    let mut samples: HashMap<&'static str, usize> = HashMap::new();
    let mut sample = |report: &mut Reconciliation, s: Sample| {
        let n = samples.entry(s.kind).or_default();
        if *n < SAMPLES_PER_KIND {
            *n += 1;
            report.samples.push(s);
        }
    };
    // (batch, row) of recomputed rows to write, and of stored rows to delete.
    let mut writes: Vec<(usize, usize)> = Vec::new();
    for (b, rows) in recomputed.iter().enumerate() {
        for (r, k) in rows.keys.iter().enumerate() {
            match by_key.get_mut(k.as_str()) {
                Some((sb, sr, seen)) => {
                    *seen = true;
                    let theirs = &stored[*sb].values[*sr];
                    let ours = &rows.values[r];
                    let equal = ours
                        .iter()
                        .zip(theirs)
                        .zip(&float)
                        .all(|((a, b), &f)| same_value(a, b, f));
                    if equal {
                        report.matched += 1;
                    } else {
                        report.mismatched += 1;
                        writes.push((b, r));
                        sample(
                            &mut report,
                            Sample {
                                kind: "mismatched",
                                key: k.clone(),
                                stored: Some(describe(&names, &key, theirs)),
                                recomputed: Some(describe(&names, &key, ours)),
                            },
                        );
                    }
                }
                None => {
                    report.missing += 1;
                    writes.push((b, r));
                    sample(
                        &mut report,
                        Sample {
                            kind: "missing",
                            key: k.clone(),
                            stored: None,
                            recomputed: Some(describe(&names, &key, &rows.values[r])),
                        },
                    );
                }
            }
        }
    }
    let mut deletes: Vec<(usize, usize)> = Vec::new();
    for (b, rows) in stored.iter().enumerate() {
        for (r, k) in rows.keys.iter().enumerate() {
            if by_key.get(k.as_str()).is_some_and(|(_, _, seen)| !seen) {
                report.extra += 1;
                deletes.push((b, r));
                sample(
                    &mut report,
                    Sample {
                        kind: "extra",
                        key: k.clone(),
                        stored: Some(describe(&names, &key, &rows.values[r])),
                        recomputed: None,
                    },
                );
            }
        }
    }
    let compared = report.matched + report.mismatched + report.missing + report.extra;
    if compared > 0 {
        report.ratio = report.matched as f64 / compared as f64;
    }
    if request.repair && !report.clean() {
        let gather = |rows: &[TextRows], at: &[(usize, usize)]| -> Result<Vec<RecordBatch>> {
            if at.is_empty() {
                return Ok(Vec::new());
            }
            let columns = (0..schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> =
                        rows.iter().map(|r| r.batch.column(c).as_ref()).collect();
                    Ok(arrow_select::interleave::interleave(&arrays, at)?)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            Ok(vec![RecordBatch::try_new(Arc::clone(&schema), columns)?])
        };
        let upserts: Vec<ResultBatch> = gather(&recomputed, &writes)?
            .into_iter()
            .map(|batch| ResultBatch {
                batch,
                state: RowState::Final,
            })
            .collect();
        let removed = gather(&stored, &deletes)?;
        store.repair(view, &upserts, &removed)?;
        report.repaired = (writes.len() + deletes.len()) as u64;
    }
    Ok(report)
}
