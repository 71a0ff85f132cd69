//! The SQLite store's tables, and creating and dropping views.
//!
//! The store's own tables ([`INTERNAL_DDL`]) are created when a writer opens the file; a
//! view's results table when the view is created, typed by the column's SQLite affinity and
//! keyed by the view's key. Creating a view again with the same definition does nothing;
//! dropping one removes its table and its rows in every internal table, in one transaction.
//! Only tables this store registered are ever dropped.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::sync::Arc;

use super::cache::ViewDef;
use super::catalog::load_view_def;
use super::store::SqliteStore;
use crate::StoreError;
use crate::definition::{Definition, check_view_name, now_ms, table_columns};
use crate::error::SqliteContext;
use crate::model::ResultTable;
use crate::schema::{Column, ColumnType, STATE_COLUMN, UPDATED_AT_COLUMN};
use crate::sql::{Internal, VIEW_TABLES, quote_ident, quote_list};

/// The store's own tables, created by `open()`. Every statement is idempotent, so a file of
/// an older schema version gains the tables added since (version 2: `freshet_changes`).
pub(super) const INTERNAL_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS freshet_views (
    view          TEXT PRIMARY KEY,
    key_columns   TEXT NOT NULL,
    schema        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS freshet_progress (
    view         TEXT NOT NULL,
    stream       TEXT NOT NULL,
    "partition"  INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    watermark_ms INTEGER,
    PRIMARY KEY (view, stream, "partition")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS freshet_view_status (
    view            TEXT PRIMARY KEY,
    watermark_ms    INTEGER,
    committed_at_ms INTEGER NOT NULL,
    stats           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS freshet_state (
    view  TEXT NOT NULL,
    key   BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS freshet_late_events (
    view        TEXT NOT NULL,
    stream      TEXT NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    event_time  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    "row"       TEXT NOT NULL,
    PRIMARY KEY (view, stream, "partition", "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS freshet_changes (
    view            TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    committed_at_ms INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    progress        TEXT,
    deletes         BLOB,
    upserts         BLOB,
    PRIMARY KEY (view, seq)
);
"#;

/// The SQLite column type (and so affinity) a column's values are stored with.
fn sqlite_type(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32
        | ColumnType::UInt64
        | ColumnType::Boolean => "INTEGER",
        ColumnType::Float32 | ColumnType::Float64 => "REAL",
        ColumnType::Utf8
        | ColumnType::LargeUtf8
        | ColumnType::Utf8View
        | ColumnType::Timestamp { .. }
        | ColumnType::Date32
        | ColumnType::Decimal128 { .. } => "TEXT",
        ColumnType::Binary | ColumnType::LargeBinary | ColumnType::BinaryView => "BLOB",
    }
}

/// `CREATE TABLE` for a view's results.
fn create_results_table(view: &str, columns: &[Column], key: &[&str]) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (\n", quote_ident(view));
    for column in columns {
        // A primary key of one column declared INTEGER is the table's rowid, where a NULL
        // key would become a new row number at every write (and a key that was never NULL
        // may become nullable when the view's definition widens): such a key is declared
        // BIGINT, of the same integer affinity.
        let ty = match sqlite_type(&column.ty) {
            "INTEGER" if key == [column.name.as_str()] => "BIGINT",
            ty => ty,
        };
        sql.push_str(&format!("    {} {ty},\n", quote_ident(&column.name)));
    }
    sql.push_str(&format!(
        "    {STATE_COLUMN} TEXT NOT NULL CHECK ({STATE_COLUMN} IN ('provisional', 'final')),\n"
    ));
    sql.push_str(&format!("    {UPDATED_AT_COLUMN} TEXT NOT NULL,\n"));
    sql.push_str(&format!(
        "    PRIMARY KEY ({})\n)",
        quote_list(key.iter().copied())
    ));
    sql
}

/// [`ResultStore::create_view`](crate::ResultStore::create_view).
pub(super) fn create_view(store: &mut SqliteStore, table: &ResultTable) -> Result<(), StoreError> {
    store.check_writable()?;
    let view = table.view.as_str();
    check_view_name(view)?;
    let (columns, key) = table_columns(table)?;
    let at = || format!("creating view '{view}'");
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(at)?;
    let def = match load_view_def(&tx, view)? {
        Some(existing) => match existing.redefined(view, &columns, &table.key)? {
            None => existing,
            Some(merged) => {
                let (_, schema_json) = merged.to_json()?;
                tx.execute(
                    &Internal::SQLITE.update_definition(),
                    params![view, schema_json],
                )
                .context(at)?;
                ViewDef::new(view, merged)
            }
        },
        None => {
            // Table names are case-insensitive in SQLite: "Bids" and "bids" collide.
            let taken: Option<String> = tx
                .query_row(
                    "SELECT name FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                    [view],
                    |row| row.get(0),
                )
                .optional()
                .context(at)?;
            if let Some(taken) = taken {
                return Err(StoreError::user(format!(
                    "cannot create view '{view}': the result store already has a table \
                     named '{taken}' (table names are case-insensitive)"
                )));
            }
            let def = Definition { columns, key };
            let (key_json, schema_json) = def.to_json()?;
            tx.execute(
                &Internal::SQLITE.insert_definition(),
                params![view, key_json, schema_json, now_ms()],
            )
            .context(at)?;
            tracing::info!(view, "result table created");
            ViewDef::new(view, def)
        }
    };
    let key_names = def.key_names();
    tx.execute_batch(&create_results_table(view, &def.columns, &key_names))
        .context(at)?;
    tx.commit().context(at)?;
    store.views.insert(view.to_owned(), Arc::new(def));
    Ok(())
}

/// [`ResultStore::drop_view`](crate::ResultStore::drop_view).
pub(super) fn drop_view(store: &mut SqliteStore, view: &str) -> Result<(), StoreError> {
    store.check_writable()?;
    check_view_name(view)?;
    let at = || format!("dropping view '{view}'");
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(at)?;
    // Only a registered view's table is dropped, never a table someone else made.
    let registered = tx
        .query_row(
            "SELECT 1 FROM freshet_views WHERE view = ?1",
            [view],
            |_| Ok(()),
        )
        .optional()
        .context(at)?
        .is_some();
    if registered {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote_ident(view)))
            .context(at)?;
    }
    for table in VIEW_TABLES {
        tx.execute(&Internal::SQLITE.delete_view_rows(table), [view])
            .context(at)?;
    }
    let [mark, delete] = Internal::SQLITE.mark_dropped();
    tx.execute(&mark, rusqlite::params![view, now_ms()])
        .context(at)?;
    tx.execute(&delete, [view]).context(at)?;
    tx.commit().context(at)?;
    store.views.remove(view);
    // The view's cached upsert would point at a table that is gone.
    store.conn.flush_prepared_statement_cache();
    if registered {
        tracing::info!(view, "result table dropped");
    }
    Ok(())
}
