//! Writing a PostgreSQL store: commits and repairs, each one transaction.
//!
//! A commit's result rows are reduced to the last write of each key (as writing them row
//! by row would leave them) and sent one array per column through
//! `INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE`, at most [`UPSERT_ROWS_MAX`]
//! rows per statement; state, late events and progress travel the same way, so a commit
//! is a handful of statements whatever its size. Deletes by key (nulls matching nulls)
//! come first, one statement per batch, in a commit as in a repair; a repair then upserts
//! and leaves progress, state and status untouched.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use postgres::types::ToSql;
use postgres::{Statement, Transaction};
use std::collections::HashMap;
use std::sync::Arc;

use super::connection::prepared;
use super::store::{PgStore, PgView};
use super::types::{PgTime, array_type, column_array, column_type};
use crate::StoreError;
use crate::changes::{ChangeRetention, Changed, NewChange, seq_to_sql};
use crate::definition::{Definition, now_ms};
use crate::error::PostgresContext;
use crate::model::{Commit, ResultBatch, RowState};
use crate::sql::{Dialect, Internal, LATE_EVENT_COLUMNS, offset_to_sql, quote_ident};

/// Rows per upsert statement: bounds the arrays one statement carries.
const UPSERT_ROWS_MAX: usize = 10_000;

/// [`ResultStore::commit`](crate::ResultStore::commit).
pub(super) fn commit(store: &mut PgStore, view: &str, commit: &Commit) -> Result<(), StoreError> {
    store.check_writable()?;
    let pg = store.writer_view(view)?;
    let (schema, internal) = (&store.schema, &store.internal);
    let table = store.table(view);
    let committed_at_ms = now_ms();
    let retention = store.retention;
    let task = store.task.name();
    let tasks = i32::try_from(store.task.count()).unwrap_or(i32::MAX);
    store.with_client(|client, statements| {
        let at = || format!("committing view '{view}'");
        let mut tx = client.transaction().context(at)?;
        store.check_lease(&mut tx, statements, view)?;
        let deleted = write_deletes(&mut tx, view, &pg, &table, &commit.deletes)?;
        let rows = write_results(
            &mut tx,
            statements,
            view,
            &pg,
            &commit.upserts,
            PgTime(committed_at_ms.saturating_mul(1_000)),
        )?;
        if commit.state_reset {
            let sql = format!("DELETE FROM {schema}.freshet_state WHERE view = $1 AND task = $2");
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            tx.execute(&statement, &[&view, &task]).context(at)?;
        }
        if !commit.state_deletes.is_empty() {
            // A join with the keys, not `key = ANY($3)`: a generic plan may scan the
            // table and test every row against the whole array.
            let sql = format!(
                "DELETE FROM {schema}.freshet_state s USING unnest($3::bytea[]) AS k(key) \
                 WHERE s.view = $1 AND s.task = $2 AND s.key = k.key"
            );
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            let mut keys: Vec<&[u8]> = commit.state_deletes.iter().map(Vec::as_slice).collect();
            keys.sort_unstable();
            tx.execute(&statement, &[&view, &task, &keys]).context(at)?;
        }
        if !commit.state_puts.is_empty() {
            // The last put of a key wins, as it would put by put; in key order, so that
            // the index is written in order rather than all over its pages.
            let mut puts: std::collections::BTreeMap<&[u8], &[u8]> =
                std::collections::BTreeMap::new();
            for (key, value) in &commit.state_puts {
                puts.insert(key, value);
            }
            let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) = puts.into_iter().unzip();
            let sql = format!(
                "INSERT INTO {schema}.freshet_state (view, task, key, value) \
                 SELECT $1, $2, k, v FROM unnest($3::bytea[], $4::bytea[]) AS u(k, v) \
                 ON CONFLICT (view, task, key) DO UPDATE SET value = excluded.value"
            );
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            tx.execute(&statement, &[&view, &task, &keys, &values])
                .context(at)?;
        }
        if !commit.late.is_empty() {
            let late = &commit.late;
            let streams: Vec<&str> = late.iter().map(|l| l.stream.as_str()).collect();
            let partitions: Vec<i64> = late.iter().map(|l| i64::from(l.partition)).collect();
            let offsets = late
                .iter()
                .map(|l| offset_to_sql(l.offset, Dialect::Postgres))
                .collect::<Result<Vec<_>, _>>()?;
            let times: Vec<PgTime> = late
                .iter()
                .map(|l| PgTime(l.event_time_ms.saturating_mul(1_000)))
                .collect();
            let reasons: Vec<&str> = late.iter().map(|l| l.reason.as_str()).collect();
            let rows: Vec<&str> = late.iter().map(|l| l.row_json.as_str()).collect();
            let sql = format!(
                "INSERT INTO {schema}.freshet_late_events ({LATE_EVENT_COLUMNS}) SELECT $1, s, p, o, t, r, j FROM unnest($2::text[], $3::bigint[], \
                 $4::bigint[], $5::timestamptz[], $6::text[], $7::text[]) \
                 AS u(s, p, o, t, r, j) ON CONFLICT DO NOTHING"
            );
            let statement = prepared(&mut tx, statements, &sql).context(at)?;
            tx.execute(
                &statement,
                &[
                    &view,
                    &streams,
                    &partitions,
                    &offsets,
                    &times,
                    &reasons,
                    &rows,
                ],
            )
            .context(at)?;
        }
        let parts = &commit.progress.partitions;
        let streams: Vec<&str> = parts.iter().map(|p| p.stream.as_str()).collect();
        let partitions: Vec<i64> = parts.iter().map(|p| i64::from(p.partition)).collect();
        let offsets = parts
            .iter()
            .map(|p| offset_to_sql(p.next_offset, Dialect::Postgres))
            .collect::<Result<Vec<_>, _>>()?;
        let watermarks: Vec<Option<i64>> = parts.iter().map(|p| p.watermark_ms).collect();
        let sql = internal.upsert_progress(
            "SELECT $1, s, p, o, w FROM unnest($2::text[], $3::bigint[], $4::bigint[], \
             $5::bigint[]) AS u(s, p, o, w)",
        );
        let statement = prepared(&mut tx, statements, &sql).context(at)?;
        tx.execute(
            &statement,
            &[&view, &streams, &partitions, &offsets, &watermarks],
        )
        .context(at)?;
        let sql = format!(
            "INSERT INTO {schema}.freshet_view_status (view, task, tasks, watermark_ms, \
             committed_at_ms, stats) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (view, task) DO UPDATE SET tasks = excluded.tasks, \
             watermark_ms = excluded.watermark_ms, committed_at_ms = excluded.committed_at_ms, \
             stats = excluded.stats"
        );
        let statement = prepared(&mut tx, statements, &sql).context(at)?;
        tx.execute(
            &statement,
            &[
                &view,
                &task,
                &tasks,
                &commit.progress.watermark_ms,
                &committed_at_ms,
                &commit.progress.stats,
            ],
        )
        .context(at)?;
        let changed = Changed::commit(commit);
        record_change(
            &mut tx,
            statements,
            internal,
            (view, &pg.def),
            &changed,
            committed_at_ms,
            retention,
        )?;
        tx.commit().context(at)?;
        tracing::debug!(view, rows, deleted, "committed");
        Ok(())
    })
}

/// Deletes the rows of `table` with the keys of `deletes` (nulls in a key match nulls),
/// one statement per batch; returns how many keys were given.
fn write_deletes(
    tx: &mut Transaction<'_>,
    view: &str,
    pg: &PgView,
    table: &str,
    deletes: &[RecordBatch],
) -> Result<usize, StoreError> {
    if deletes.is_empty() {
        return Ok(0);
    }
    let at = || format!("deleting results of view '{view}'");
    let key = &pg.def.key;
    // Rows whose key equals one of the given keys, nulls matching nulls. `=` on columns
    // that cannot be null lets the primary key's index find the rows; IS NOT DISTINCT
    // FROM, needed where a key column may be null, cannot use it.
    let matches = key
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let column = &pg.def.columns[k];
            let equals = if column.nullable {
                "IS NOT DISTINCT FROM"
            } else {
                "="
            };
            format!(
                "t.{} {equals} u.c{i}::{}",
                quote_ident(&column.name),
                column_type(&column.ty)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let arrays = key
        .iter()
        .enumerate()
        .map(|(i, &k)| format!("${}::{}", i + 1, array_type(&pg.def.columns[k].ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let aliases = (0..key.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("DELETE FROM {table} AS t USING unnest({arrays}) AS u({aliases}) WHERE {matches}");
    let mut keys = 0;
    for batch in deletes {
        pg.def.check_batch(view, batch)?;
        let params = key
            .iter()
            .map(|&k| column_array(&pg.def.columns[k], batch.column(k)))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        tx.execute(&sql, &refs).context(at)?;
        keys += batch.num_rows();
    }
    Ok(keys)
}

/// [`ResultStore::repair`](crate::ResultStore::repair).
pub(super) fn repair(
    store: &mut PgStore,
    view: &str,
    upserts: &[ResultBatch],
    deletes: &[RecordBatch],
) -> Result<(), StoreError> {
    store.check_writable()?;
    let pg = store.writer_view(view)?;
    let table = store.table(view);
    let (internal, retention) = (&store.internal, store.retention);
    store.with_client(|client, statements| {
        let at = || format!("repairing view '{view}'");
        let repaired_at_ms = now_ms();
        let mut tx = client.transaction().context(at)?;
        // As a commit's: a repairer that lost the view's lease writes nothing.
        store.check_lease(&mut tx, statements, view)?;
        write_deletes(&mut tx, view, &pg, &table, deletes)?;
        write_results(
            &mut tx,
            statements,
            view,
            &pg,
            upserts,
            PgTime(repaired_at_ms.saturating_mul(1_000)),
        )?;
        let changed = Changed::repair(deletes, upserts);
        record_change(
            &mut tx,
            statements,
            internal,
            (view, &pg.def),
            &changed,
            repaired_at_ms,
            retention,
        )?;
        tx.commit().context(at)
    })
}

/// Adds the change-log entry of a commit or repair, if it changed rows, and prunes the
/// view's log to `retention`; inside the commit's transaction. The view's row in
/// `freshet_views` is locked first: a repair and a commit of the view (two connections of
/// the writing process) then number their entries one after the other instead of both
/// taking the same number.
fn record_change(
    tx: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    internal: &Internal,
    (view, def): (&str, &Definition),
    changed: &Changed<'_>,
    at_ms: i64,
    retention: ChangeRetention,
) -> Result<(), StoreError> {
    let Some(change) = NewChange::encode(def, changed, retention.entry_bytes)? else {
        return Ok(());
    };
    let at = || format!("recording the changes of view '{view}'");
    let sql = format!(
        "SELECT 1 FROM {} WHERE view = $1 FOR UPDATE",
        internal.table("freshet_views")
    );
    let statement = prepared(tx, statements, &sql).context(at)?;
    tx.execute(&statement, &[&view]).context(at)?;
    let statement = prepared(tx, statements, &internal.insert_change()).context(at)?;
    let seq: i64 = tx
        .query_one(
            &statement,
            &[
                &view,
                &at_ms,
                &change.kind.as_str(),
                &change.progress,
                &change.deletes,
                &change.upserts,
            ],
        )
        .context(at)?
        .get(0);
    let statement = prepared(tx, statements, &internal.prune_changes()).context(at)?;
    tx.execute(
        &statement,
        &[
            &view,
            &seq,
            &seq_to_sql(retention.commits),
            &at_ms.saturating_sub(retention.age_ms),
            &seq_to_sql(retention.bytes),
        ],
    )
    .context(at)?;
    Ok(())
}

/// A row of a commit: (upsert batch, row in it).
type RowAt = (usize, usize);

/// The rows of a commit with each key once, at its last write, grouped by state: writing
/// them in any order gives what writing every row in order would.
fn last_writes(
    def: &Definition,
    upserts: &[ResultBatch],
) -> Result<Vec<(RowState, Vec<RowAt>)>, StoreError> {
    let fields = def
        .key
        .iter()
        .map(|&k| SortField::new(def.columns[k].ty.to_arrow()))
        .collect();
    let converter = RowConverter::new(fields)
        .map_err(|error| StoreError::bug(format!("encoding result keys: {error}")))?;
    let mut last: HashMap<Box<[u8]>, (RowState, usize, usize)> = HashMap::new();
    let mut order = Vec::new();
    for (b, upsert) in upserts.iter().enumerate() {
        let keys: Vec<ArrayRef> = def
            .key
            .iter()
            .map(|&k| Arc::clone(upsert.batch.column(k)))
            .collect();
        let rows = converter
            .convert_columns(&keys)
            .map_err(|error| StoreError::bug(format!("encoding result keys: {error}")))?;
        for row in 0..upsert.batch.num_rows() {
            let key: Box<[u8]> = rows.row(row).as_ref().into();
            match last.get_mut(&key) {
                Some(slot) => *slot = (upsert.state, b, row),
                None => {
                    order.push(key.clone());
                    last.insert(key, (upsert.state, b, row));
                }
            }
        }
    }
    let mut provisional = Vec::new();
    let mut final_rows = Vec::new();
    for key in &order {
        let (state, b, row) = last[key];
        match state {
            RowState::Provisional => provisional.push((b, row)),
            RowState::Final => final_rows.push((b, row)),
        }
    }
    Ok([
        (RowState::Provisional, provisional),
        (RowState::Final, final_rows),
    ]
    .into_iter()
    .filter(|(_, rows)| !rows.is_empty())
    .collect())
}

fn write_results(
    tx: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    view: &str,
    pg: &PgView,
    upserts: &[ResultBatch],
    updated_at: PgTime,
) -> Result<usize, StoreError> {
    let at = || format!("writing the results of view '{view}'");
    for upsert in upserts {
        pg.def.check_batch(view, &upsert.batch)?;
    }
    let statement = prepared(tx, statements, &pg.upsert_sql).context(at)?;
    let mut written = 0;
    for (state, rows) in last_writes(&pg.def, upserts)? {
        for chunk in rows.chunks(UPSERT_ROWS_MAX) {
            let columns = (0..pg.def.columns.len())
                .map(|c| {
                    let arrays: Vec<&dyn arrow_array::Array> =
                        upserts.iter().map(|u| u.batch.column(c).as_ref()).collect();
                    arrow_select::interleave::interleave(&arrays, chunk).map_err(|error| {
                        StoreError::bug(format!("gathering the rows of view '{view}': {error}"))
                    })
                })
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let state_text = state.as_str();
            let mut params: Vec<Box<dyn ToSql + Sync + '_>> =
                vec![Box::new(state_text), Box::new(updated_at)];
            for (column, array) in pg.def.columns.iter().zip(&columns) {
                params.push(column_array(column, array)?);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            tx.execute(&statement, &refs).context(at)?;
            written += chunk.len();
        }
    }
    Ok(written)
}
