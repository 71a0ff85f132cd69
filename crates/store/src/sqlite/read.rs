//! Reading a SQLite store: pages of a view's results, its status and its checkpoint, each
//! from one committed snapshot.
//!
//! Every read runs in one read transaction ([`SqliteStore::in_snapshot`]), so a page and
//! the status read with it come from the same commit, and one WAL read lock is taken
//! rather than one per statement; under WAL a reader never waits for the writer. A
//! read-only connection keeps each view's status until another connection commits (see
//! [`super::catalog`]); the writer's own commits do not move `data_version`, so it reads
//! statuses afresh.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::store::SqliteStore;
use crate::StoreError;
use crate::cells::Page;
use crate::changes::{self, ChangeLog};
use crate::definition::{Filter, FilterValue, TIMESTAMP_EXPECTED, filter_error, filters};
use crate::error::SqliteContext;
use crate::model::{Checkpoint, Progress, ResultQuery, ResultRows, ViewStatus};
use crate::schema::{
    Column, STATE_COLUMN, TimeText, UPDATED_AT_COLUMN, Unit, format_date, format_timestamp,
};
use crate::sql::{Internal, StatusRow, decode_progress, quote_ident, view_status, where_clause};
use freshet_types::limits::{CHANGE_READ_ENTRIES_MAX, RESULT_ROWS_PER_PAGE_MAX};

/// [`ResultStore::read_results`](crate::ResultStore::read_results).
pub(super) fn read_results(
    store: &SqliteStore,
    view: &str,
    query: &ResultQuery,
) -> Result<ResultRows, StoreError> {
    let at = || format!("reading the results of view '{view}'");
    store.in_snapshot(&at, || store.results_page(view, query))
}

/// [`ResultStore::status`](crate::ResultStore::status).
pub(super) fn status(store: &SqliteStore, view: &str) -> Result<ViewStatus, StoreError> {
    let at = || format!("reading the status of view '{view}'");
    store.in_snapshot(&at, || store.current_status(view))
}

/// [`ResultStore::read_page`](crate::ResultStore::read_page): status and rows from one
/// snapshot.
pub(super) fn read_page(
    store: &SqliteStore,
    view: &str,
    query: &ResultQuery,
) -> Result<(ViewStatus, ResultRows), StoreError> {
    let at = || format!("reading the results of view '{view}'");
    store.in_snapshot(&at, || {
        Ok((
            store.current_status(view)?,
            store.results_page(view, query)?,
        ))
    })
}

/// [`ResultStore::read_changes`](crate::ResultStore::read_changes): the log's bounds and
/// its entries from one snapshot.
pub(super) fn read_changes(
    store: &SqliteStore,
    view: &str,
    after_seq: u64,
    limit: usize,
) -> Result<ChangeLog, StoreError> {
    let at = || format!("reading the changes of view '{view}'");
    store.in_snapshot(&at, || {
        store.check_view_exists(view)?;
        let internal = &Internal::SQLITE;
        let (min, max): (Option<i64>, Option<i64>) = store
            .conn
            .prepare_cached(&internal.change_bounds())
            .and_then(|mut statement| statement.query_row([view], |r| Ok((r.get(0)?, r.get(1)?))))
            .context(at)?;
        let (oldest_seq, latest_seq) = changes::bounds(view, min, max)?;
        let limit = limit.min(CHANGE_READ_ENTRIES_MAX);
        let mut entries = Vec::new();
        if limit > 0 && latest_seq.is_some_and(|latest| latest > after_seq) {
            let mut statement = store
                .conn
                .prepare_cached(&internal.select_changes())
                .context(at)?;
            let rows = statement
                .query_map(
                    rusqlite::params![view, changes::seq_to_sql(after_seq), limit as i64],
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
                .context(at)?;
            for row in rows {
                entries.push(changes::decode_entry(view, row.context(at)?)?);
            }
        }
        Ok(ChangeLog {
            oldest_seq,
            latest_seq,
            entries,
        })
    })
}

/// [`ResultStore::load`](crate::ResultStore::load).
pub(super) fn load(store: &SqliteStore, view: &str) -> Result<Checkpoint, StoreError> {
    let at = || format!("loading the checkpoint of view '{view}'");
    // One read transaction, so progress and state come from the same commit.
    let tx = store.conn.unchecked_transaction().context(at)?;
    store.check_view_exists(view)?;
    let progress = read_progress(&tx, view)?.map(|(progress, _)| progress);
    let mut statement = tx
        .prepare_cached(&Internal::SQLITE.select_state())
        .context(at)?;
    let state = statement
        .query_map([view], |row| Ok((row.get(0)?, row.get(1)?)))
        .context(at)?
        .collect::<Result<Vec<(Vec<u8>, Vec<u8>)>, _>>()
        .context(at)?;
    drop(statement);
    tx.finish().context(at)?;
    Ok(Checkpoint { progress, state })
}

impl SqliteStore {
    /// Runs `f` inside one read transaction: one snapshot, and one WAL read lock taken and
    /// released rather than one per statement. A writer inside a transaction of its own
    /// just runs `f`; a read-only connection never holds one between calls, so one found
    /// open (left by a failure) is rolled back first rather than read from forever.
    fn in_snapshot<T>(
        &self,
        at: &dyn Fn() -> String,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = |sql: &str| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute([]))
                .map(|_| ())
        };
        if !self.conn.is_autocommit() {
            if !self.read_only {
                return f();
            }
            run("ROLLBACK").context(at)?;
        }
        run("BEGIN").context(at)?;
        let result = f();
        let end = run(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if end.is_err() && !self.conn.is_autocommit() {
            // Still open: end it, so that the next read starts a fresh snapshot.
            let _ = run("ROLLBACK");
        }
        let value = result?;
        end.context(at)?;
        Ok(value)
    }

    /// A page of results; inside a transaction (see
    /// [`ResultStore::read_results`](crate::ResultStore::read_results)).
    fn results_page(&self, view: &str, query: &ResultQuery) -> Result<ResultRows, StoreError> {
        let def = self.view_def(view)?;
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for filter in filters(view, &def, query) {
            let (column, op) = match filter? {
                Filter::Equals {
                    column,
                    value,
                    text,
                } => {
                    values.push(filter_value(view, column, text, value)?);
                    (column, "=")
                }
                Filter::Time {
                    column,
                    unit,
                    op,
                    ms,
                    round_up,
                } => {
                    values.push(time_bound(ms, unit, round_up));
                    (column, op)
                }
            };
            conditions.push(format!(
                "{} {op} ?{}",
                quote_ident(&column.name),
                values.len()
            ));
        }
        let limit = query.limit.min(RESULT_ROWS_PER_PAGE_MAX);
        let names = def
            .columns
            .iter()
            .map(|column| quote_ident(&column.name))
            .chain([quote_ident(STATE_COLUMN), quote_ident(UPDATED_AT_COLUMN)])
            .collect::<Vec<_>>()
            .join(", ");
        let order = def
            .key
            .iter()
            .map(|&k| quote_ident(&def.columns[k].name))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = where_clause(&conditions);
        // One row past the limit tells whether there are more. LIMIT and OFFSET are
        // literals: SQLite re-prepares a statement whose LIMIT parameter is bound again,
        // which cost more than the key lookup itself.
        let sql = format!(
            "SELECT {names} FROM {}{filter} ORDER BY {order} LIMIT {} OFFSET {}",
            quote_ident(view),
            limit + 1,
            i64::try_from(query.offset).unwrap_or(i64::MAX),
        );

        let at = || format!("reading the results of view '{view}'");
        let mut page = Page::new(view, &def.columns, limit.min(1024));

        let mut statement = self.conn.prepare_cached(&sql).context(at)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(values))
            .context(at)?;
        let mut count = 0usize;
        let mut has_more = false;
        while let Some(row) = rows.next().context(at)? {
            if count == limit {
                has_more = true;
                break;
            }
            for i in 0..page.builders.len() {
                let value = row.get_ref(i).context(at)?;
                page.builders[i]
                    .append(value)
                    .map_err(|found| page.unexpected(i, found))?;
            }
            count += 1;
        }
        page.finish(has_more)
    }

    /// A view's status as stored; inside a transaction.
    fn read_status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        self.check_view_exists(view)?;
        Ok(view_status(view, read_progress(&self.conn, view)?))
    }

    /// A view's status: a read-only connection's cached copy while nothing was committed
    /// since it was read, else the stored one; inside a transaction.
    fn current_status(&self, view: &str) -> Result<ViewStatus, StoreError> {
        // A writer's own commits do not move `data_version`: only read-only connections
        // keep statuses.
        if !self.read_only {
            return self.read_status(view);
        }
        if let Some(status) = self.read_cache()?.statuses.get(view) {
            return Ok(status.clone());
        }
        let status = self.read_status(view)?;
        self.read_cache
            .borrow_mut()
            .statuses
            .insert(view.to_owned(), status.clone());
        Ok(status)
    }
}

/// Reads a view's committed progress and commit time, if it ever committed.
fn read_progress(conn: &Connection, view: &str) -> Result<Option<(Progress, i64)>, StoreError> {
    let at = || format!("reading the progress of view '{view}'");
    let status: Option<(Option<i64>, i64, String)> = conn
        .prepare_cached(&Internal::SQLITE.select_status())
        .and_then(|mut statement| {
            statement
                .query_row([view], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .context(at)?;
    let Some((watermark_ms, committed_at_ms, stats)) = status else {
        return Ok(None);
    };
    let stats = serde_json::from_str(&stats).map_err(|error| {
        StoreError::corrupt(format!(
            "freshet_view_status holds unreadable stats for view '{view}': {error}"
        ))
    })?;
    let mut statement = conn
        .prepare_cached(&Internal::SQLITE.select_progress())
        .context(at)?;
    let rows = statement
        .query_map([view], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .context(at)?
        .collect::<Result<Vec<_>, _>>()
        .context(at)?;
    let status = StatusRow {
        watermark_ms,
        committed_at_ms,
        stats,
    };
    decode_progress(view, status, rows).map(Some)
}

/// A filter value (given as `text`) in the stored form of `column`.
fn filter_value(
    view: &str,
    column: &Column,
    text: &str,
    value: FilterValue,
) -> Result<Value, StoreError> {
    let mut time = TimeText::new();
    Ok(match value {
        FilterValue::Integer(i) => Value::Integer(i),
        FilterValue::Boolean(b) => Value::Integer(i64::from(b)),
        FilterValue::Float(f) => Value::Real(f),
        FilterValue::Text(t) | FilterValue::Decimal(t) => Value::Text(t),
        FilterValue::Time(value, unit) => {
            if !format_timestamp(value, unit, &mut time) {
                return Err(filter_error(view, column, text, TIMESTAMP_EXPECTED));
            }
            Value::Text(time.as_str().to_owned())
        }
        FilterValue::Date(days) => {
            if !format_date(days, &mut time) {
                return Err(filter_error(view, column, text, "a date (YYYY-MM-DD)"));
            }
            Value::Text(time.as_str().to_owned())
        }
    })
}

/// A (clamped) time filter bound in the stored text form of a timestamp column of `unit`.
fn time_bound(ms: i64, unit: Unit, round_up: bool) -> Value {
    let mut text = TimeText::new();
    let formatted = format_timestamp(unit.convert_ms(ms, round_up), unit, &mut text);
    assert!(formatted, "a clamped bound is within the years 0000-9999");
    Value::Text(text.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResultStore;
    use crate::contract_tests::fixtures::{
        all, counts, counts_table, progress, six_counts, upserts_only,
    };
    use crate::model::RowState;
    use crate::sqlite::store::temp_store;

    /// A page and its status come from one snapshot: a commit landing between the two
    /// reads is seen by neither, and by the next read.
    #[test]
    fn a_page_and_its_status_come_from_one_snapshot() {
        let (dir, mut writer) = temp_store();
        six_counts(&mut writer);
        let reader =
            SqliteStore::open_read_only(&dir.path().join("results.db")).expect("open a reader");
        let later = counts(
            &counts_table().schema,
            &[(Some("c"), 9, 7)],
            RowState::Final,
        );
        let at = || "a snapshot".to_owned();
        let (status, page) = reader
            .in_snapshot(&at, || {
                let status = reader.current_status("counts")?;
                writer
                    .commit("counts", &upserts_only(vec![later], progress(7, 0)))
                    .expect("commit between the two reads");
                Ok((status, reader.results_page("counts", &all())?))
            })
            .expect("read in one snapshot");
        assert_eq!(status.progress, Some(progress(6, 0)));
        assert_eq!(page.batch.num_rows(), 6, "the page saw a later commit");
        let (status, page) = reader.read_page("counts", &all()).expect("read again");
        assert_eq!(status.progress, Some(progress(7, 0)));
        assert_eq!(page.batch.num_rows(), 7);
    }
}
