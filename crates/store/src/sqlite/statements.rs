//! The SQL text that writes a view's result rows in SQLite: the multi-row upsert and the
//! delete by key. Built once per view (see [`super::cache::ViewDef`]); no I/O here.

use crate::schema::Column;
use crate::sql::{quote_ident, results_upsert_sql};

/// Most parameters one statement binds; SQLite's limit is 32766.
const STATEMENT_PARAMETERS_MAX: usize = 32_000;

/// Rows one multi-row upsert writes. One statement per row pays SQLite's per-statement cost
/// (cursor set-up, reset) on every row; beyond a few dozen rows the gain is gone.
const UPSERT_CHUNK_ROWS: usize = 64;

/// Rows per multi-row upsert for a table of `columns` columns.
pub(super) fn upsert_chunk_rows(columns: usize) -> usize {
    (STATEMENT_PARAMETERS_MAX / columns.max(1)).clamp(1, UPSERT_CHUNK_ROWS)
}

/// The parameter (1-based) holding column `column` of row `row` in [`upsert_sql`].
pub(super) fn upsert_parameter(columns: usize, row: usize, column: usize) -> usize {
    3 + row * columns + column
}

/// The upsert of `rows` result rows. Parameter 1 is `_state` and 2 is `_updated_at`, shared
/// by all rows; the columns of each row follow in order (see [`upsert_parameter`]). A row
/// whose key is already stored has every non-key column replaced.
pub(super) fn upsert_sql(view: &str, columns: &[Column], key: &[&str], rows: usize) -> String {
    let values = (0..rows)
        .map(|row| {
            let cells = (0..columns.len())
                .map(|column| format!("?{}", upsert_parameter(columns.len(), row, column)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({cells}, ?1, ?2)")
        })
        .collect::<Vec<_>>()
        .join(", ");
    results_upsert_sql(
        &quote_ident(view),
        columns,
        key,
        &format!("VALUES {values}"),
    )
}

/// Deletes the row with the given key values, nulls included. SQLite treats nulls in a
/// primary key as distinct, so `ON CONFLICT` never fires for a key holding a null; rows with
/// such keys are replaced by deleting them first. Parameters are the key columns in order.
pub(super) fn delete_by_key_sql(view: &str, key: &[&str]) -> String {
    let conditions = key
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{} IS ?{}", quote_ident(name), i + 1))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("DELETE FROM {} WHERE {}", quote_ident(view), conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    #[test]
    fn upsert_updates_every_non_key_column() {
        let columns = [
            Column {
                name: "k".into(),
                ty: ColumnType::Int64,
                nullable: false,
            },
            Column {
                name: "v\"x".into(),
                ty: ColumnType::Float64,
                nullable: true,
            },
        ];
        assert_eq!(
            upsert_sql("my view", &columns, &["k"], 2),
            "INSERT INTO \"my view\" (\"k\", \"v\"\"x\", \"_state\", \"_updated_at\") \
             VALUES (?3, ?4, ?1, ?2), (?5, ?6, ?1, ?2) ON CONFLICT (\"k\") DO UPDATE SET \
             \"v\"\"x\" = excluded.\"v\"\"x\", \"_state\" = excluded.\"_state\", \
             \"_updated_at\" = excluded.\"_updated_at\""
        );
    }
}
