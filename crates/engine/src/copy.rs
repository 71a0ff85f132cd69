//! `COPY view TO 'file'` and `COPY (query) TO 'file'`, PostgreSQL's syntax: parsed here into
//! a query and a file; `freshet sql` and `POST /v1/sql` run the query in batch, as
//! `freshet query` does, and write the file.

use crate::error::{EngineError, Result};
use sqlparser::ast::{CopyOption, CopySource, CopyTarget};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::path::PathBuf;

/// What a `COPY ... TO` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Parquet (Snappy).
    Parquet,
    /// An Arrow IPC file.
    Arrow,
    /// CSV with a header line.
    Csv,
    /// `{"columns": [...], "rows": [...]}`, as `freshet query --format json`.
    Json,
}

/// A parsed `COPY ... TO 'file'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStatement {
    /// The query whose result is written.
    pub query: String,
    /// The file (relative to the process's working directory).
    pub path: PathBuf,
    /// From `(FORMAT ...)`, else from the file's extension.
    pub format: CopyFormat,
}

/// Parses `sql` if it is a COPY statement; `None` if it is not one.
pub fn parse_copy(sql: &str) -> Result<Option<CopyStatement>> {
    let first = sql.split_whitespace().next().unwrap_or("");
    if !first.eq_ignore_ascii_case("copy") {
        return Ok(None);
    }
    let bad = |m: String| EngineError::Sql(m);
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| bad(format!("cannot parse the COPY statement: {e}")))?;
    let Some(sqlparser::ast::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values: _,
    }) = parsed.pop().filter(|_| parsed.is_empty())
    else {
        return Err(bad("expected one COPY statement".into()));
    };
    let CopyTarget::File { filename } = target else {
        return Err(bad(
            "COPY writes a file: COPY view TO 'file.parquet' [(FORMAT parquet|arrow|csv|json)]"
                .into(),
        ));
    };
    if !to {
        return Err(bad(
            "COPY FROM is not supported: ingest files with freshet ingest or POST \
             /v1/streams/{name}/events"
                .into(),
        ));
    }
    if !legacy_options.is_empty() {
        return Err(bad("write COPY options as (FORMAT ...)".into()));
    }
    let query = match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let columns = match columns.is_empty() {
                true => "*".to_string(),
                false => columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            format!("SELECT {columns} FROM {table_name}")
        }
        CopySource::Query(query) => query.to_string(),
    };
    let path = PathBuf::from(filename);
    let mut format = None;
    for option in options {
        match option {
            CopyOption::Format(name) => format = Some(format_named(&name.value)?),
            other => {
                return Err(bad(format!(
                    "COPY option {other} is not supported; only FORMAT is"
                )));
            }
        }
    }
    let format = match format {
        Some(format) => format,
        None => {
            let extension = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            format_named(&extension).map_err(|_| {
                bad(format!(
                    "say the format of {}: (FORMAT parquet|arrow|csv|json), or name the file \
                     .parquet, .arrow, .csv or .json",
                    path.display()
                ))
            })?
        }
    };
    Ok(Some(CopyStatement {
        query,
        path,
        format,
    }))
}

fn format_named(name: &str) -> Result<CopyFormat> {
    match name.to_ascii_lowercase().as_str() {
        "parquet" => Ok(CopyFormat::Parquet),
        "arrow" | "ipc" | "feather" => Ok(CopyFormat::Arrow),
        "csv" => Ok(CopyFormat::Csv),
        "json" => Ok(CopyFormat::Json),
        other => Err(EngineError::Sql(format!(
            "COPY cannot write format '{other}': parquet, arrow, csv or json"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_of_a_view_or_a_query_to_a_file() {
        let copy = parse_copy("COPY counts TO '/tmp/c.parquet'").expect("parses");
        assert_eq!(
            copy,
            Some(CopyStatement {
                query: "SELECT * FROM counts".into(),
                path: "/tmp/c.parquet".into(),
                format: CopyFormat::Parquet,
            })
        );
        let copy = parse_copy("copy (SELECT a FROM v WHERE a > 1) to 'x.out' (FORMAT arrow)")
            .expect("parses")
            .expect("a COPY");
        assert_eq!(copy.query, "SELECT a FROM v WHERE a > 1");
        assert_eq!(copy.format, CopyFormat::Arrow);
        let copy = parse_copy("COPY v (a, b) TO 'x.CSV'")
            .expect("parses")
            .expect("a COPY");
        assert_eq!(copy.query, "SELECT a, b FROM v");
        assert_eq!(copy.format, CopyFormat::Csv);
        assert_eq!(parse_copy("SHOW VIEWS").expect("not a COPY"), None);
    }

    #[test]
    fn what_copy_cannot_do_is_refused_clearly() {
        for (sql, says) in [
            ("COPY v FROM '/tmp/x.csv'", "COPY FROM"),
            ("COPY v TO STDOUT", "writes a file"),
            ("COPY v TO 'x.txt'", "say the format"),
            ("COPY v TO 'x.parquet' (FORMAT xml)", "format 'xml'"),
            ("COPY v TO 'x.csv' (DELIMITER ';')", "only FORMAT"),
            ("COPY v TO", "cannot parse"),
        ] {
            let e = parse_copy(sql).expect_err(sql);
            assert!(e.to_string().contains(says), "{sql}: {e}");
        }
    }
}
