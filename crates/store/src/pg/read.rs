//! Reading a PostgreSQL store: pages of a view's results, its status and its checkpoint.
//!
//! A status or a checkpoint is read in one read-only `REPEATABLE READ` transaction, so its
//! parts come from one commit; under MVCC a reader never waits for a writer. Result rows
//! are read in key order with the types [`super::types::read_cell`] takes, and go through
//! the same column builders as SQLite's.

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Transaction};

use super::catalog::load_definition;
use super::statements::key_order;
use super::store::PgStore;
use super::types::{self, Cell, PgTime, from_micros, read_cell, read_expression, scalar_type};
use crate::StoreError;
use crate::cells::Page;
use crate::changes::{self, ChangeLog};
use crate::definition::{
    Filter, FilterValue, TIMESTAMP_EXPECTED, filter_error, filters, unknown_view,
};
use crate::error::PostgresContext;
use crate::model::{Checkpoint, Progress, ResultQuery, ResultRows, Task, ViewStatus};
use crate::schema::{Column, ColumnType, STATE_COLUMN, UPDATED_AT_COLUMN};
use crate::sql::{
    Internal, ProgressRow, StatusRow, decode_progress, quote_ident, view_status, where_clause,
};
use freshet_types::limits::{CHANGE_READ_ENTRIES_MAX, RESULT_ROWS_PER_PAGE_MAX};

/// [`ResultStore::read_results`](crate::ResultStore::read_results).
pub(super) fn read_results(
    store: &PgStore,
    view: &str,
    query: &ResultQuery,
) -> Result<ResultRows, StoreError> {
    let def = store.definition(view)?;
    let mut conditions = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    for filter in filters(view, &def, query) {
        let (column, op, expression) = match filter? {
            Filter::Equals {
                column,
                value,
                text,
            } => {
                let (value, expression) =
                    filter_param(view, column, text, value, params.len() + 1)?;
                params.push(value);
                (column, "=", expression)
            }
            // Times compare in microseconds, finer than the bound: no rounding needed.
            Filter::Time { column, op, ms, .. } => {
                params.push(Box::new(PgTime(ms * 1_000)));
                let expression = format!("${}::{}", params.len(), scalar_type(&column.ty));
                (column, op, expression)
            }
        };
        conditions.push(format!("{} {op} {expression}", quote_ident(&column.name)));
    }
    let limit = query.limit.min(RESULT_ROWS_PER_PAGE_MAX);
    let names = def
        .columns
        .iter()
        .map(|column| read_expression(&quote_ident(&column.name), &column.ty))
        .chain([quote_ident(STATE_COLUMN), quote_ident(UPDATED_AT_COLUMN)])
        .collect::<Vec<_>>()
        .join(", ");
    let order = key_order(&def);
    let filter = where_clause(&conditions);
    params.push(Box::new(limit as i64 + 1));
    params.push(Box::new(i64::try_from(query.offset).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {names} FROM {}{filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
        store.table(view),
        params.len() - 1,
        params.len()
    );
    let at = || format!("reading the results of view '{view}'");
    let rows = store.with_client(|client, _| {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        client.query(&sql, &refs).context(at)
    })?;

    let mut page = Page::new(view, &def.columns, rows.len().min(limit));
    let has_more = rows.len() > limit;
    for row in rows.iter().take(limit) {
        let last = page.columns.len() - 1;
        for i in 0..=last {
            let (builder, column) = (&mut page.builders[i], page.columns[i]);
            let cell = read_cell(row, i, &column.ty).context(at)?;
            let appended = match (cell, &column.ty) {
                (Cell::Value(value), _) => builder.append(value),
                // `_updated_at` keeps milliseconds; a row written by hand may carry
                // more, which are cut.
                (Cell::Time(micros), _) if i == last => {
                    builder.append_time(micros.map(|m| m.div_euclid(1_000)))
                }
                (Cell::Time(micros), ColumnType::Timestamp { unit, .. }) => {
                    match micros.map(|m| from_micros(m, *unit)) {
                        Some(None) => Err(format!("the time {micros:?} µs")),
                        Some(Some(value)) => builder.append_time(Some(value)),
                        None => builder.append_time(None),
                    }
                }
                (Cell::Time(days), _) => builder.append_time(days),
            };
            appended.map_err(|found| page.unexpected(i, found))?;
        }
    }
    page.finish(has_more)
}

/// [`ResultStore::status`](crate::ResultStore::status).
pub(super) fn status(store: &PgStore, view: &str) -> Result<ViewStatus, StoreError> {
    let internal = &store.internal;
    store.with_client(|client, _| {
        let at = || format!("reading the status of view '{view}'");
        let mut tx = snapshot(client, internal, view, at)?;
        let progress = read_progress(&mut tx, store, view, None)?;
        tx.commit().context(at)?;
        Ok(view_status(view, progress))
    })
}

/// [`ResultStore::read_changes`](crate::ResultStore::read_changes): the log's bounds and
/// its entries from one snapshot.
pub(super) fn read_changes(
    store: &PgStore,
    view: &str,
    after_seq: u64,
    limit: usize,
) -> Result<ChangeLog, StoreError> {
    let internal = &store.internal;
    store.with_client(|client, _| {
        let at = || format!("reading the changes of view '{view}'");
        let mut tx = snapshot(client, internal, view, at)?;
        let bounds = tx
            .query_one(&internal.change_bounds(), &[&view])
            .context(at)?;
        let (oldest_seq, latest_seq) = changes::bounds(view, bounds.get(0), bounds.get(1))?;
        let limit = limit.min(CHANGE_READ_ENTRIES_MAX);
        let mut entries = Vec::new();
        if limit > 0 && latest_seq.is_some_and(|latest| latest > after_seq) {
            let rows = tx
                .query(
                    &internal.select_changes(),
                    &[&view, &changes::seq_to_sql(after_seq), &(limit as i64)],
                )
                .context(at)?;
            for row in rows {
                let row = (
                    row.get(0),
                    row.get(1),
                    row.get(2),
                    row.get(3),
                    row.get(4),
                    row.get(5),
                );
                entries.push(changes::decode_entry(view, row)?);
            }
        }
        tx.commit().context(at)?;
        Ok(ChangeLog {
            oldest_seq,
            latest_seq,
            entries,
        })
    })
}

/// [`ResultStore::load`](crate::ResultStore::load).
pub(super) fn load(store: &PgStore, view: &str) -> Result<Checkpoint, StoreError> {
    let internal = &store.internal;
    store.with_client(|client, _| {
        let at = || format!("loading view '{view}'");
        let mut tx = snapshot(client, internal, view, at)?;
        let progress =
            read_progress(&mut tx, store, view, Some(store.task))?.map(|(progress, _)| progress);
        let state = tx
            .query(
                &format!(
                    "SELECT key, value FROM {}.freshet_state WHERE view = $1 AND task = $2 \
                     ORDER BY key",
                    store.schema
                ),
                &[&view, &store.task.name()],
            )
            .context(at)?
            .into_iter()
            .map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)))
            .collect();
        tx.commit().context(at)?;
        Ok(Checkpoint { progress, state })
    })
}

/// [`ResultStore::tasks`](crate::ResultStore::tasks).
pub(super) fn tasks(store: &PgStore, view: &str) -> Result<Vec<Task>, StoreError> {
    let count: Option<i32> = store.with_client(|client, _| {
        client
            .query_one(
                &format!(
                    "SELECT max(tasks) FROM {}.freshet_view_status WHERE view = $1 \
                     AND task <> 'view'",
                    store.schema
                ),
                &[&view],
            )
            .context(|| format!("reading the tasks of view '{view}'"))
            .map(|row| row.get(0))
    })?;
    Ok(match count.and_then(|c| u32::try_from(c).ok()) {
        Some(count) => (0..count)
            .map(|index| Task::Partition { index, count })
            .collect(),
        None => vec![Task::Whole],
    })
}

/// A read-only transaction over one consistent snapshot, for a view that must exist.
fn snapshot<'c>(
    client: &'c mut Client,
    internal: &Internal,
    view: &str,
    at: impl Fn() -> String,
) -> Result<Transaction<'c>, StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .context(&at)?;
    if load_definition(&mut tx, internal, view)?.is_none() {
        return Err(unknown_view(view));
    }
    Ok(tx)
}

/// Reads a view's committed progress and commit time, if it ever committed: of `task`
/// alone (a writer resuming it), or of the whole view (`None`). A view run per partition is
/// its tasks together: every task's partitions, the least watermark (unknown until every
/// task has one), the oldest task's commit time, and its stats a JSON array with each
/// task's object, in partition order.
fn read_progress(
    tx: &mut Transaction<'_>,
    store: &PgStore,
    view: &str,
    task: Option<Task>,
) -> Result<Option<(Progress, i64)>, StoreError> {
    let at = || format!("reading the progress of view '{view}'");
    let select = format!(
        "SELECT task, tasks, watermark_ms, committed_at_ms, stats FROM {}.freshet_view_status \
         WHERE view = $1 AND ($2::text IS NULL OR task = $2)",
        store.schema
    );
    let mut tasks: Vec<(String, i32, StatusRow)> = tx
        .query(&select, &[&view, &task.map(Task::name)])
        .context(at)?
        .into_iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                StatusRow {
                    watermark_ms: row.get(2),
                    committed_at_ms: row.get(3),
                    stats: row.get(4),
                },
            )
        })
        .collect();
    tasks.sort_by_key(|(name, _, _)| (name.len(), name.clone()));
    let mut rows: Vec<ProgressRow> = tx
        .query(&store.internal.select_progress(), &[&view])
        .context(at)?
        .into_iter()
        .map(|row| {
            (
                row.get(0),
                i64::from(row.get::<_, i32>(1)),
                row.get(2),
                row.get(3),
            )
        })
        .filter(|row: &ProgressRow| {
            task.is_none_or(|t| u32::try_from(row.1).is_ok_and(|p| t.reads(p)))
        })
        .collect();
    let status = match tasks.len() {
        0 => return Ok(None),
        // One task's own status: a writer resuming it, or a view that runs as one task.
        1 if task.is_some() || tasks[0].1 == 1 => tasks.pop().expect("one task").2,
        _ => merge_tasks(tasks, &mut rows),
    };
    decode_progress(view, status, rows).map(Some)
}

/// The status of a view run per partition from its tasks' (in partition order), and its
/// progress rows. A task that has not committed yet counts as having read nothing of its
/// partition of each stream (offset 0, so the view's lag counts all of it) and holds a
/// null in the stats array (so what the view reflects is unknown), and the view's
/// watermark is unknown until every task has one.
fn merge_tasks(tasks: Vec<(String, i32, StatusRow)>, rows: &mut Vec<ProgressRow>) -> StatusRow {
    let count = tasks.iter().map(|(_, count, _)| *count).max().unwrap_or(1);
    let committed_at_ms = tasks
        .iter()
        .map(|(_, _, t)| t.committed_at_ms)
        .min()
        .unwrap_or(i64::MAX);
    let watermark_ms = tasks
        .iter()
        .map(|(_, _, t)| t.watermark_ms)
        .try_fold(i64::MAX, |least, w| w.map(|w| least.min(w)));
    let mut by_index: std::collections::BTreeMap<i64, StatusRow> = tasks
        .into_iter()
        .filter_map(|(name, _, t)| Some((name.strip_prefix('p')?.parse().ok()?, t)))
        .collect();
    let streams: std::collections::BTreeSet<String> =
        rows.iter().map(|(stream, ..)| stream.clone()).collect();
    let mut stats = Vec::new();
    let mut complete = true;
    for index in 0..i64::from(count) {
        match by_index.remove(&index) {
            Some(t) => stats.push(t.stats),
            None => {
                complete = false;
                stats.push(serde_json::Value::Null);
                for stream in &streams {
                    rows.push((stream.clone(), index, 0, None));
                }
            }
        }
    }
    rows.sort();
    StatusRow {
        watermark_ms: watermark_ms.filter(|_| complete),
        committed_at_ms,
        stats: serde_json::Value::Array(stats),
    }
}

/// A filter value as a parameter of the column's scalar type, and the SQL that reads it.
fn filter_param(
    view: &str,
    column: &Column,
    text: &str,
    value: FilterValue,
    n: usize,
) -> Result<(Box<dyn ToSql + Sync>, String), StoreError> {
    let cast = format!("${n}::{}", scalar_type(&column.ty));
    let value: Box<dyn ToSql + Sync> = match value {
        FilterValue::Integer(i) => Box::new(i),
        FilterValue::Boolean(b) => Box::new(b),
        FilterValue::Float(f) => Box::new(f),
        FilterValue::Text(t) => Box::new(t),
        FilterValue::Time(value, unit) => {
            Box::new(PgTime(types::to_micros(value, unit).ok_or_else(|| {
                filter_error(view, column, text, TIMESTAMP_EXPECTED)
            })?))
        }
        FilterValue::Date(days) => Box::new(types::PgDate(days)),
        FilterValue::Decimal(t) => return Ok((Box::new(t), format!("{cast}::numeric"))),
    };
    Ok((value, cast))
}
