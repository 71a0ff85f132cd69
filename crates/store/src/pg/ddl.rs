//! A PostgreSQL store's results tables, and creating and dropping views.
//!
//! A results table is typed ([`super::types::column_type`]), compares text bytewise and
//! is keyed by a unique index with `NULLS NOT DISTINCT`, ordered nulls first, so that rows
//! come back in the order SQLite gives and a key holding a null is one row like any other.
//! Creating and dropping run in one transaction each, under the schema's DDL lock, since
//! several processes may create and drop views at once (a drop also takes the view's
//! layout lock, as takers of its leases do, and waits at most `DROP_WAIT`). Only tables
//! this store registered are ever dropped.

use std::sync::Arc;

use super::catalog::load_definition;
use super::connection::ddl_lock_key;
use super::location::check_identifier;
use super::statements::{key_order, upsert_sql};
use super::store::{PgStore, PgView};
use super::types::{column_type, scalar_type};
use crate::StoreError;
use crate::definition::{Definition, check_view_name, now_ms, table_columns};
use crate::error::PostgresContext;
use crate::model::ResultTable;
use crate::schema::{ColumnType, STATE_COLUMN, UPDATED_AT_COLUMN};
use crate::sql::{VIEW_TABLES, quote_ident};

/// The results table and its key. Text is compared bytewise (`COLLATE "C"`) and the key
/// orders nulls first, so that rows come back in the order SQLite gives; the key is a unique
/// index with `NULLS NOT DISTINCT`, so that a key holding a null is replaced like any other.
fn create_table_sql(schema: &str, view: &str, def: &Definition) -> String {
    let table = format!("{schema}.{}", quote_ident(view));
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {table} (\n");
    for column in &def.columns {
        let collate = if matches!(scalar_type(&column.ty), "text")
            && !matches!(column.ty, ColumnType::Decimal128 { .. })
        {
            " COLLATE \"C\""
        } else {
            ""
        };
        sql.push_str(&format!(
            "    {} {}{collate},\n",
            quote_ident(&column.name),
            column_type(&column.ty)
        ));
    }
    sql.push_str(&format!(
        "    {STATE_COLUMN} text NOT NULL CHECK ({STATE_COLUMN} IN ('provisional', 'final')),\n\
         \x20   {UPDATED_AT_COLUMN} timestamptz NOT NULL\n);\n"
    ));
    let index = format!(
        "freshet_key_{:016x}",
        xxhash_rust::xxh3::xxh3_64(view.as_bytes())
    );
    sql.push_str(&format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({}) NULLS NOT DISTINCT;",
        quote_ident(&index),
        key_order(def)
    ));
    sql
}

/// [`ResultStore::create_view`](crate::ResultStore::create_view).
pub(super) fn create_view(store: &mut PgStore, table: &ResultTable) -> Result<(), StoreError> {
    store.check_writable()?;
    let view = table.view.as_str();
    check_view_name(view)?;
    check_identifier("view", view)?;
    let (columns, key) = table_columns(table)?;
    for column in &columns {
        check_identifier("column", &column.name)?;
    }
    let internal = &store.internal;
    let def = store.with_client(|client, _| {
        let at = || format!("creating view '{view}'");
        let mut tx = client.transaction().context(at)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&ddl_lock_key(&store.location.schema)],
        )
        .context(at)?;
        let def = match load_definition(&mut tx, internal, view)? {
            Some(existing) => match existing.redefined(view, &columns, &table.key)? {
                None => existing,
                Some(merged) => {
                    let (_, schema_json) = merged.to_json()?;
                    tx.execute(&internal.update_definition(), &[&view, &schema_json])
                        .context(at)?;
                    merged
                }
            },
            // A worker (a holder whose leases lapse) runs the views `freshet sql` created
            // and never creates one: a view it finds missing was dropped while its
            // catalog still listed it.
            None if store.location.holder.ttl.is_some() => {
                return Err(StoreError::user(format!(
                    "view '{view}' is not in {}: it was dropped, or not created there; a \
                     worker runs the views `freshet sql --store` created",
                    store.location
                )));
            }
            None => {
                // Names are compared without case so that a view moves between stores.
                let taken = tx
                    .query_opt(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = $1 AND lower(table_name) = lower($2)",
                        &[&store.location.schema, &view],
                    )
                    .context(at)?;
                if let Some(taken) = taken {
                    return Err(StoreError::user(format!(
                        "cannot create view '{view}': schema {} already has a table named \
                         '{}' (view names are compared without case)",
                        store.location.schema,
                        taken.get::<_, String>(0)
                    )));
                }
                let def = Definition { columns, key };
                let (key_json, schema_json) = def.to_json()?;
                tx.execute(
                    &internal.insert_definition(),
                    &[&view, &key_json, &schema_json, &now_ms()],
                )
                .context(at)?;
                tracing::info!(view, store = %store.location, "result table created");
                def
            }
        };
        tx.batch_execute(&create_table_sql(&store.schema, view, &def))
            .context(at)?;
        tx.commit().context(at)?;
        Ok(def)
    })?;
    store.views.insert(
        view.to_owned(),
        Arc::new(PgView {
            upsert_sql: upsert_sql(&store.schema, view, &def),
            def: Arc::new(def),
        }),
    );
    Ok(())
}

/// The longest a drop waits for a lock (a commit in flight, a reader of the results
/// table): then it fails, and the statement can be run again.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`ResultStore::drop_view`](crate::ResultStore::drop_view).
pub(super) fn drop_view(store: &mut PgStore, view: &str) -> Result<(), StoreError> {
    store.check_writable()?;
    check_view_name(view)?;
    let internal = &store.internal;
    let table = store.table(view);
    store.with_client(|client, _| {
        let at = || format!("dropping view '{view}'");
        let mut tx = client.transaction().context(at)?;
        // Bounded: the schema's DDL lock held while the table waits for its readers would
        // keep every view of every process from starting.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            DROP_WAIT.as_millis()
        ))
        .context(at)?;
        // After any creation (the schema's DDL lock) and any taking of a lease of the view
        // (its layout lock) in flight, in the order they take them.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&ddl_lock_key(&store.location.schema)],
        )
        .context(at)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&super::lease::layout_lock_key(&store.location.schema, view)],
        )
        .context(at)?;
        // The lease rows first (in key order, as every statement that locks several does),
        // as a commit takes them (its lease, then the results
        // table): a commit in flight ends before the table is dropped, never waiting for
        // it. They stay, released one epoch on: epochs never repeat, so a writer of the
        // dropped view can never pass for the holder of a view created again.
        tx.execute(
            &format!(
                "SELECT 1 FROM {}.freshet_leases WHERE view = $1 ORDER BY task FOR UPDATE",
                store.schema
            ),
            &[&view],
        )
        .context(at)?;
        tx.execute(
            &format!(
                "UPDATE {}.freshet_leases SET owner = NULL, epoch = epoch + 1, \
                 expires_at = NULL, backend_pid = NULL, backend_start = NULL WHERE view = $1",
                store.schema
            ),
            &[&view],
        )
        .context(at)?;
        let known = load_definition(&mut tx, internal, view)?.is_some();
        if known {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .context(at)?;
        }
        for table in VIEW_TABLES {
            tx.execute(&internal.delete_view_rows(table), &[&view])
                .context(at)?;
        }
        let [mark, delete] = internal.mark_dropped();
        tx.execute(&mark, &[&view, &now_ms()]).context(at)?;
        tx.execute(&delete, &[&view]).context(at)?;
        tx.commit().context(at)
    })?;
    store.views.remove(view);
    Ok(())
}

/// [`ResultStore::publish_catalog`](crate::ResultStore::publish_catalog): the files
/// replace the last copy in `freshet_catalog`, in one transaction under the schema's DDL
/// lock.
pub(super) fn publish_catalog(
    store: &mut PgStore,
    files: &[(String, Vec<u8>)],
) -> Result<(), StoreError> {
    store.check_writable()?;
    let s = store.schema.clone();
    store.with_client(|client, _| {
        let at = || "publishing the catalog".to_owned();
        let mut tx = client.transaction().context(at)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&ddl_lock_key(&store.location.schema)],
        )
        .context(at)?;
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        tx.execute(
            &format!("DELETE FROM {s}.freshet_catalog WHERE name <> ALL($1)"),
            &[&names],
        )
        .context(at)?;
        for (name, doc) in files {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.freshet_catalog (name, doc, updated_at_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, \
                     updated_at_ms = excluded.updated_at_ms"
                ),
                &[name, doc, &now_ms()],
            )
            .context(at)?;
        }
        tx.commit().context(at)
    })
}
