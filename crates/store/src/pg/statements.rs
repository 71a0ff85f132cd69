//! The SQL text that writes and orders a view's result rows in PostgreSQL: the `unnest`
//! upsert and the key order. Built once per view; no I/O here.

use super::types::{array_type, column_type};
use crate::definition::Definition;
use crate::sql::{quote_ident, results_upsert_sql};

/// `$1` is `_state`, `$2` `_updated_at`, then one array per column.
pub(super) fn upsert_sql(schema: &str, view: &str, def: &Definition) -> String {
    let selected = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("u.c{i}::{}", column_type(&c.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let arrays = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 3, array_type(&c.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let aliases = (0..def.columns.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    results_upsert_sql(
        &format!("{schema}.{}", quote_ident(view)),
        &def.columns,
        &def.key_names(),
        &format!(
            "SELECT {selected}, $1::text, $2::timestamptz FROM unnest({arrays}) AS u({aliases})"
        ),
    )
}

/// The key columns in the order results are read and indexed: ascending, nulls first.
pub(super) fn key_order(def: &Definition) -> String {
    def.key_names()
        .into_iter()
        .map(|name| format!("{} NULLS FIRST", quote_ident(name)))
        .collect::<Vec<_>>()
        .join(", ")
}
