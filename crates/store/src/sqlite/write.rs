//! Writing a SQLite store: commits (deleted and upserted result rows, state, late events,
//! progress and status in one `BEGIN IMMEDIATE … COMMIT`) and repairs (deletes, then
//! upserts, progress untouched).
//!
//! Result rows go in multi-row upserts of up to 64 rows, bound cell by cell straight from
//! the Arrow arrays ([`Cells`]); the rest one by one. SQLite treats nulls in a primary key
//! as distinct, so a row whose key holds a null is deleted by key (`IS`) before it is
//! written. Taking the write lock at `BEGIN` means a busy store fails before anything was
//! written, never halfway; on any error the transaction rolls back.

use arrow_array::RecordBatch;
use rusqlite::{Connection, Statement, TransactionBehavior, params};

use super::cache::ViewDef;
use super::statements::upsert_parameter;
use super::store::SqliteStore;
use crate::StoreError;
use crate::cells::Cells;
use crate::changes::{ChangeRetention, Changed, NewChange, seq_to_sql};
use crate::definition::Definition;
use crate::definition::now_ms;
use crate::error::SqliteContext;
use crate::model::{Commit, ResultBatch};
use crate::schema::{TimeText, Unit, format_timestamp};
use crate::sql::{Dialect, Internal, LATE_EVENT_COLUMNS, offset_to_sql};

/// `ms` as the `_updated_at` text rows are written with.
fn updated_at_text(ms: i64) -> String {
    let mut text = TimeText::new();
    let formatted = format_timestamp(ms, Unit::Millisecond, &mut text);
    assert!(formatted, "the wall clock is within the years 0000-9999");
    text.as_str().to_owned()
}

/// [`ResultStore::commit`](crate::ResultStore::commit).
pub(super) fn commit(
    store: &mut SqliteStore,
    view: &str,
    commit: &Commit,
) -> Result<(), StoreError> {
    store.check_writable()?;
    let def = store.cached_view_def(view)?;
    let at = || format!("committing view '{view}'");
    let committed_at_ms = now_ms();
    let updated_at = updated_at_text(committed_at_ms);

    // IMMEDIATE takes the write lock now: a busy store fails here, before any write.
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(at)?;
    let deleted = write_deletes(&tx, view, &def, &commit.deletes)?;
    let rows = write_upserts(&tx, view, &def, &commit.upserts, &updated_at)?;
    // Deletes first: a key both deleted and put in one commit (state removed, then
    // created again) keeps the put's value.
    if commit.state_reset {
        tx.execute(
            &Internal::SQLITE.delete_view_rows("freshet_state"),
            params![view],
        )
        .context(at)?;
    }
    if !commit.state_deletes.is_empty() {
        let mut delete = tx
            .prepare_cached("DELETE FROM freshet_state WHERE view = ?1 AND key = ?2")
            .context(at)?;
        for key in &commit.state_deletes {
            delete.execute(params![view, key]).context(at)?;
        }
    }
    if !commit.state_puts.is_empty() {
        let mut put = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO freshet_state (view, key, value) VALUES (?1, ?2, ?3)",
            )
            .context(at)?;
        for (key, value) in &commit.state_puts {
            put.execute(params![view, key, value]).context(at)?;
        }
    }
    if !commit.late.is_empty() {
        let mut insert = tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO freshet_late_events ({LATE_EVENT_COLUMNS}) {}",
                Dialect::Sqlite.values(7)
            ))
            .context(at)?;
        let mut event_time = TimeText::new();
        for late in &commit.late {
            if !format_timestamp(late.event_time_ms, Unit::Millisecond, &mut event_time) {
                return Err(StoreError::bug(format!(
                    "late event at offset {} of stream '{}' has event time {} ms, outside \
                     the years 0000-9999",
                    late.offset, late.stream, late.event_time_ms
                )));
            }
            insert
                .execute(params![
                    view,
                    late.stream,
                    late.partition,
                    offset_to_sql(late.offset, Dialect::Sqlite)?,
                    event_time.as_str(),
                    late.reason,
                    late.row_json
                ])
                .context(at)?;
        }
    }
    {
        let mut progress = tx
            .prepare_cached(&Internal::SQLITE.upsert_progress(&Dialect::Sqlite.values(5)))
            .context(at)?;
        for partition in &commit.progress.partitions {
            progress
                .execute(params![
                    view,
                    partition.stream,
                    partition.partition,
                    offset_to_sql(partition.next_offset, Dialect::Sqlite)?,
                    partition.watermark_ms
                ])
                .context(at)?;
        }
        let stats = serde_json::to_string(&commit.progress.stats)
            .map_err(|error| StoreError::bug(format!("serialising stats: {error}")))?;
        tx.prepare_cached(&Internal::SQLITE.upsert_status())
            .and_then(|mut statement| {
                statement.execute(params![
                    view,
                    commit.progress.watermark_ms,
                    committed_at_ms,
                    stats
                ])
            })
            .context(at)?;
    }
    let changed = Changed::commit(commit);
    record_change(
        &tx,
        view,
        &def.def,
        &changed,
        committed_at_ms,
        store.retention,
    )?;
    tx.commit().context(at)?;
    tracing::debug!(
        view,
        rows,
        deleted,
        state_puts = commit.state_puts.len(),
        state_deletes = commit.state_deletes.len(),
        late = commit.late.len(),
        "committed"
    );
    Ok(())
}

/// [`ResultStore::repair`](crate::ResultStore::repair).
pub(super) fn repair(
    store: &mut SqliteStore,
    view: &str,
    upserts: &[ResultBatch],
    deletes: &[RecordBatch],
) -> Result<(), StoreError> {
    store.check_writable()?;
    let def = store.cached_view_def(view)?;
    let at = || format!("repairing view '{view}'");
    let repaired_at_ms = now_ms();
    let updated_at = updated_at_text(repaired_at_ms);
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(at)?;
    write_deletes(&tx, view, &def, deletes)?;
    write_upserts(&tx, view, &def, upserts, &updated_at)?;
    let changed = Changed::repair(deletes, upserts);
    record_change(
        &tx,
        view,
        &def.def,
        &changed,
        repaired_at_ms,
        store.retention,
    )?;
    tx.commit().context(at)
}

/// Adds the change-log entry of a commit or repair, if it changed rows, and prunes the
/// view's log to `retention`; inside the commit's transaction.
fn record_change(
    tx: &Connection,
    view: &str,
    def: &Definition,
    changed: &Changed<'_>,
    at_ms: i64,
    retention: ChangeRetention,
) -> Result<(), StoreError> {
    let Some(change) = NewChange::encode(def, changed, retention.entry_bytes)? else {
        return Ok(());
    };
    let at = || format!("recording the changes of view '{view}'");
    let progress = change.progress.as_ref().map(serde_json::Value::to_string);
    let seq: i64 = tx
        .prepare_cached(&Internal::SQLITE.insert_change())
        .and_then(|mut statement| {
            statement.query_row(
                params![
                    view,
                    at_ms,
                    change.kind.as_str(),
                    progress,
                    change.deletes,
                    change.upserts
                ],
                |row| row.get(0),
            )
        })
        .context(at)?;
    tx.prepare_cached(&Internal::SQLITE.prune_changes())
        .and_then(|mut statement| {
            statement.execute(params![
                view,
                seq,
                seq_to_sql(retention.commits),
                at_ms.saturating_sub(retention.age_ms),
                seq_to_sql(retention.bytes)
            ])
        })
        .context(at)?;
    Ok(())
}

/// Deletes the rows with the keys of `deletes` (nulls in a key match nulls); returns how
/// many keys were given.
fn write_deletes(
    tx: &Connection,
    view: &str,
    def: &ViewDef,
    deletes: &[RecordBatch],
) -> Result<usize, StoreError> {
    if deletes.is_empty() {
        return Ok(0);
    }
    let at = || format!("deleting results of view '{view}'");
    let mut text = TimeText::new();
    let mut delete = tx.prepare_cached(&def.delete_sql).context(at)?;
    let mut keys = 0;
    for batch in deletes {
        let cells = batch_cells(view, def, batch)?;
        for row in 0..batch.num_rows() {
            for (i, &k) in def.key.iter().enumerate() {
                cells[k].bind(&mut delete, i + 1, row, &mut text)?;
            }
            delete.raw_execute().context(at)?;
        }
        keys += batch.num_rows();
    }
    Ok(keys)
}

/// Checks a batch against its table and downcasts its columns.
fn batch_cells<'a>(
    view: &str,
    def: &'a ViewDef,
    batch: &'a RecordBatch,
) -> Result<Vec<Cells<'a>>, StoreError> {
    def.check_batch(view, batch)?;
    def.columns
        .iter()
        .zip(batch.columns())
        .map(|(column, array)| Cells::new(column, array))
        .collect()
}

/// Binds row `row` of a batch into slot `slot` of a (multi-row) upsert.
fn bind_row(
    statement: &mut Statement<'_>,
    cells: &[Cells<'_>],
    slot: usize,
    row: usize,
    text: &mut TimeText,
) -> Result<(), StoreError> {
    for (column, cell) in cells.iter().enumerate() {
        cell.bind(
            statement,
            upsert_parameter(cells.len(), slot, column),
            row,
            text,
        )?;
    }
    Ok(())
}

/// Writes the result rows of one commit; returns how many.
///
/// Rows go in multi-row statements of `chunk_rows` rows, the rest one by one. A row whose
/// key holds a null is deleted first and written alone, because `ON CONFLICT` never fires
/// for it (nulls are distinct in a key); such a row cannot share a key with a row without
/// nulls, so writing it out of order changes nothing.
fn write_upserts(
    tx: &Connection,
    view: &str,
    def: &ViewDef,
    upserts: &[ResultBatch],
    updated_at: &str,
) -> Result<usize, StoreError> {
    if upserts.is_empty() {
        return Ok(0);
    }
    let at = || format!("writing the results of view '{view}'");
    let mut one = tx.prepare_cached(&def.upsert_one_sql).context(at)?;
    let mut chunk = None;
    let mut delete = None;
    let mut text = TimeText::new();
    let mut pending = Vec::with_capacity(def.chunk_rows);
    let mut rows = 0;
    for result in upserts {
        let batch = &result.batch;
        let cells = batch_cells(view, def, batch)?;
        let state = result.state.as_str();
        // Bindings survive each execution's reset, so these are bound once per batch.
        one.raw_bind_parameter(1, state).context(at)?;
        one.raw_bind_parameter(2, updated_at).context(at)?;
        if chunk.is_none() && def.chunk_rows > 1 && batch.num_rows() >= def.chunk_rows {
            chunk = Some(tx.prepare_cached(&def.upsert_chunk_sql).context(at)?);
        }
        for row in 0..batch.num_rows() {
            if def.key.iter().any(|&k| cells[k].is_null(row)) {
                let statement = match &mut delete {
                    Some(statement) => statement,
                    None => delete.insert(tx.prepare_cached(&def.delete_sql).context(at)?),
                };
                for (i, &k) in def.key.iter().enumerate() {
                    cells[k].bind(statement, i + 1, row, &mut text)?;
                }
                statement.raw_execute().context(at)?;
                bind_row(&mut one, &cells, 0, row, &mut text)?;
                one.raw_execute().context(at)?;
                continue;
            }
            pending.push(row);
            if pending.len() == def.chunk_rows
                && let Some(statement) = &mut chunk
            {
                statement.raw_bind_parameter(1, state).context(at)?;
                statement.raw_bind_parameter(2, updated_at).context(at)?;
                for (slot, &row) in pending.iter().enumerate() {
                    bind_row(statement, &cells, slot, row, &mut text)?;
                }
                statement.raw_execute().context(at)?;
                pending.clear();
            }
        }
        for row in pending.drain(..) {
            bind_row(&mut one, &cells, 0, row, &mut text)?;
            one.raw_execute().context(at)?;
        }
        rows += batch.num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use crate::ResultStore;
    use crate::contract_tests::fixtures::{
        all, every_type, final_commit, late_event, late_only, totals_table,
    };
    use crate::sqlite::store::temp_store;

    #[test]
    fn nanoseconds_and_stored_text_are_what_the_sqlite3_shell_reads() {
        let (_dir, mut store) = temp_store();
        // 2024-03-01T12:34:56.789123456Z: SQLite keeps every nanosecond.
        let ns = 1_709_296_496_789_123_456i64;
        let (table, batch) = every_type(ns, i64::MAX);
        store.create_view(&table).expect("create");
        let commit = final_commit(batch.clone(), 1);
        store.commit("types", &commit).expect("commit");
        let read = store.read_results("types", &all()).expect("read").batch;
        for (i, field) in table.schema.fields().iter().enumerate() {
            assert_eq!(read.column(i), batch.column(i), "column {}", field.name());
        }

        // The stored text is what a person with the sqlite3 shell sees.
        let (ts_s, ts_ms, ts_ns, d, dec, b): (String, String, String, String, String, i64) = store
            .conn
            .query_row(
                "SELECT ts_s, ts_ms, ts_ns, d, dec, b FROM types WHERE k = 1",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .expect("raw row");
        assert_eq!(ts_s, "2024-03-01 12:34:56");
        assert_eq!(ts_ms, "2024-03-01 12:34:56.789");
        assert_eq!(ts_ns, "2024-03-01 12:34:56.789123456");
        assert_eq!(d, "2024-02-29");
        assert_eq!(dec, "123.45");
        assert_eq!(b, 1);
        let epoch: i64 = store
            .conn
            .query_row("SELECT unixepoch(ts_ms) FROM types WHERE k = 1", [], |r| {
                r.get(0)
            })
            .expect("SQLite reads the stored time");
        assert_eq!(epoch, ns / 1_000_000_000);
    }

    #[test]
    fn late_events_are_stored_as_the_sqlite3_shell_reads_them() {
        let (_dir, mut store) = temp_store();
        store.create_view(&totals_table()).expect("create");
        let late = late_event();
        let commit = late_only(vec![late.clone()], 43);
        store.commit("totals", &commit).expect("commit");
        let (event_time, row): (String, String) = store
            .conn
            .query_row(
                "SELECT event_time, row FROM freshet_late_events WHERE offset = 42",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("late row, read with unquoted column names as in the sqlite3 shell");
        assert_eq!(event_time, "1970-01-01 00:00:01.000");
        assert_eq!(row, late.row_json);
    }
}
