//! The vectorised row checks every decoder ends with: NOT NULL columns (and the event-time
//! column, always required) have values, and event times lie in the accepted range.

use super::{Decoded, Reject, RejectCode};
use crate::def::StreamDef;
use crate::error::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use freshet_types::limits::{EVENT_TIME_MAX_MS, EVENT_TIME_MIN_MS};
use std::sync::Arc;

/// The schema decoders decode into: the stream's, with every column nullable, so a missing
/// value becomes a NULL the checks can attribute to its row instead of failing the batch.
pub(crate) fn lenient_schema(def: &StreamDef) -> SchemaRef {
    Arc::new(Schema::new(
        def.columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Moves the rows of `batch` that have a reason in `wrong` to `rejects` (`wrong_type`), and
/// returns the others with `kept`, the indexes into `lines` of the batch's rows, narrowed
/// to match. `lines` are `(line number, start, end)` in `text`.
pub(crate) fn set_aside_wrong_types(
    batch: RecordBatch,
    wrong: Vec<Option<String>>,
    kept: Vec<usize>,
    lines: &[(u64, usize, usize)],
    text: &[u8],
    rejects: &mut Vec<Reject>,
) -> Result<(RecordBatch, Vec<usize>)> {
    if wrong.iter().all(Option::is_none) {
        return Ok((batch, kept));
    }
    let keep: Vec<bool> = wrong.iter().map(Option::is_none).collect();
    for (row, reason) in wrong.into_iter().enumerate() {
        if let Some(reason) = reason {
            let (line, s, e) = lines[kept[row]];
            rejects.push(Reject {
                code: RejectCode::WrongType,
                reason,
                line,
                raw: text[s..e].to_vec(),
            });
        }
    }
    let batch =
        arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep.clone()))?;
    let kept = kept
        .into_iter()
        .zip(keep)
        .filter_map(|(row, k)| k.then_some(row))
        .collect();
    Ok((batch, kept))
}

/// Check `batch` (in the lenient schema), move failing rows to `rejects`, and return the
/// good rows in the stream's schema. `line_of(row)` and `raw_of(row)` locate a row.
pub(crate) fn finish(
    def: &StreamDef,
    schema: &SchemaRef,
    batch: Option<RecordBatch>,
    mut rejects: Vec<Reject>,
    line_of: impl Fn(usize) -> u64,
    raw_of: impl Fn(usize) -> Vec<u8>,
) -> Result<Decoded> {
    let Some(batch) = batch else {
        rejects.sort_by_key(|r| r.line);
        return Ok(Decoded {
            batch: None,
            rejects,
        });
    };
    let rows = batch.num_rows();
    let et = def.event_time_index();
    let mut bad: Vec<Option<(RejectCode, String)>> = Vec::new();
    let mut any_bad = false;
    for (i, col) in def.columns.iter().enumerate() {
        let required = !col.nullable || i == et;
        let array = batch.column(i);
        if required && array.null_count() > 0 {
            if bad.is_empty() {
                bad = vec![None; rows];
            }
            for (row, slot) in bad.iter_mut().enumerate() {
                if slot.is_none() && array.is_null(row) {
                    *slot = Some((
                        RejectCode::NullInNotNull,
                        format!("column `{}` is missing or NULL but is NOT NULL", col.name),
                    ));
                    any_bad = true;
                }
            }
        }
    }
    let times = batch.column(et).as_primitive::<TimestampMillisecondType>();
    let (min, max) = (
        arrow_arith::aggregate::min(times),
        arrow_arith::aggregate::max(times),
    );
    let out_of_range = |t: i64| !(EVENT_TIME_MIN_MS..=EVENT_TIME_MAX_MS).contains(&t);
    if min.is_some_and(out_of_range) || max.is_some_and(out_of_range) {
        if bad.is_empty() {
            bad = vec![None; rows];
        }
        for (row, slot) in bad.iter_mut().enumerate() {
            if slot.is_none() && times.is_valid(row) && out_of_range(times.value(row)) {
                *slot = Some((
                    RejectCode::TimestampOutOfRange,
                    format!(
                        "event time {} ms in column `{}` is outside 1900-01-01..2999-12-31",
                        times.value(row),
                        def.event_time
                    ),
                ));
                any_bad = true;
            }
        }
    }
    let good = if any_bad {
        let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<_>>());
        for (row, slot) in bad.into_iter().enumerate() {
            if let Some((code, reason)) = slot {
                rejects.push(Reject {
                    code,
                    reason,
                    line: line_of(row),
                    raw: raw_of(row),
                });
            }
        }
        arrow_select::filter::filter_record_batch(&batch, &keep)?
    } else {
        batch
    };
    rejects.sort_by_key(|r| r.line);
    let good = (good.num_rows() > 0)
        .then(|| RecordBatch::try_new(schema.clone(), good.columns().to_vec()))
        .transpose()?;
    Ok(Decoded {
        batch: good,
        rejects,
    })
}
