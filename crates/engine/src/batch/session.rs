//! `SESSION` windows in batch. A session's bounds depend on the keys it is grouped by, which
//! a table function does not see; so before planning, each `FROM SESSION(stream, ts, gap)`
//! read by a `SELECT … GROUP BY keys, window_start, window_end` is replaced by a derived
//! table that finds the sessions per key with window functions: a row opens a session when
//! it is its key's first or comes more than a gap after the previous row (in event-time
//! order; a row exactly one gap after the previous one stays in its session, as in Flink); the session is `[its first row's time, its last row's time + gap)`, the bounds
//! the streaming operator gives once it has merged every row.

use freshet_streams::StreamDef;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, GroupByExpr, Query, Select, SetExpr, Statement, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use std::collections::HashMap;

/// `sql` in Freshet's window spelling ([`crate::flink_windows`]) with every `SESSION(...)`
/// it can rewrite replaced; as it was if there is none (or it does not parse: DataFusion
/// then reports the error).
pub fn rewrite(sql: &str, streams: &HashMap<String, StreamDef>) -> String {
    let sql = crate::flink_windows::rewrite(sql);
    let Ok(mut statements) = Parser::parse_sql(&GenericDialect {}, &sql) else {
        return sql;
    };
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        return sql;
    };
    let mut changed = false;
    rewrite_query(query, streams, &mut changed);
    if changed {
        statements[0].to_string()
    } else {
        sql
    }
}

fn rewrite_query(query: &mut Query, streams: &HashMap<String, StreamDef>, changed: &mut bool) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, streams, changed);
        }
    }
    rewrite_set_expr(&mut query.body, streams, changed);
}

fn rewrite_set_expr(body: &mut SetExpr, streams: &HashMap<String, StreamDef>, changed: &mut bool) {
    match body {
        SetExpr::Select(select) => rewrite_select(select, streams, changed),
        SetExpr::Query(query) => rewrite_query(query, streams, changed),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, streams, changed);
            rewrite_set_expr(right, streams, changed);
        }
        _ => {}
    }
}

/// The plain column names a SELECT groups by, window columns aside.
fn group_keys(select: &Select) -> Option<Vec<String>> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return None;
    };
    let mut keys = Vec::new();
    for e in exprs {
        let name = match e {
            Expr::Identifier(ident) => ident.value.clone(),
            Expr::CompoundIdentifier(parts) => parts.last()?.value.clone(),
            _ => return None,
        };
        if name != "window_start" && name != "window_end" {
            keys.push(name);
        }
    }
    Some(keys)
}

fn rewrite_select(select: &mut Select, streams: &HashMap<String, StreamDef>, changed: &mut bool) {
    let keys = group_keys(select);
    for from in &mut select.from {
        rewrite_factor(&mut from.relation, keys.as_deref(), streams, changed);
        for join in &mut from.joins {
            rewrite_factor(&mut join.relation, keys.as_deref(), streams, changed);
        }
    }
}

fn argument(arg: &FunctionArg) -> Option<&Expr> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    }
}

fn rewrite_factor(
    factor: &mut TableFactor,
    keys: Option<&[String]>,
    streams: &HashMap<String, StreamDef>,
    changed: &mut bool,
) {
    let replacement = match factor {
        TableFactor::Derived { subquery, .. } => {
            rewrite_query(subquery, streams, changed);
            return;
        }
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } if name.to_string().eq_ignore_ascii_case("session") => {
            let (Some(keys), [stream, time, gap]) = (keys, args.args.as_slice()) else {
                return;
            };
            let (Some(Expr::Identifier(stream)), Some(Expr::Identifier(time)), Some(gap)) =
                (argument(stream), argument(time), argument(gap))
            else {
                return;
            };
            let Some(def) = streams.get(&stream.value) else {
                return;
            };
            let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
            let columns = def
                .columns
                .iter()
                .map(|c| quote(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let ts = quote(&time.value);
            let by = if keys.is_empty() {
                String::new()
            } else {
                format!(
                    "PARTITION BY {}",
                    keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
                )
            };
            let comma = if keys.is_empty() { "" } else { ", " };
            let alias = alias
                .as_ref()
                .map_or_else(|| quote(&stream.value), |a| a.name.to_string());
            let sql = format!(
                "SELECT * FROM (SELECT {columns}, \
                 MIN({ts}) OVER ({by}{p2} __freshet_session) AS window_start, \
                 MAX({ts}) OVER ({by}{p2} __freshet_session) + {gap} AS window_end \
                 FROM (SELECT *, SUM(__freshet_opens) OVER ({by} ORDER BY {ts} \
                 ROWS UNBOUNDED PRECEDING) AS __freshet_session \
                 FROM (SELECT *, CASE WHEN lag({ts}) OVER ({by} ORDER BY {ts}) IS NULL \
                 OR {ts} - lag({ts}) OVER ({by} ORDER BY {ts}) > {gap} THEN 1 ELSE 0 END \
                 AS __freshet_opens FROM {stream}) AS __freshet_o) AS __freshet_s) AS {alias}",
                p2 = if keys.is_empty() {
                    "PARTITION BY"
                } else {
                    comma
                },
                stream = quote(&stream.value),
            );
            let Ok(mut parsed) = Parser::parse_sql(&GenericDialect {}, &sql) else {
                return;
            };
            let Some(Statement::Query(query)) = parsed.pop() else {
                return;
            };
            let SetExpr::Select(select) = *query.body else {
                return;
            };
            let Some(from) = select.from.into_iter().next() else {
                return;
            };
            from.relation
        }
        _ => return,
    };
    *factor = replacement;
    *changed = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_grouped_by_keys_become_window_functions() {
        let streams = HashMap::from([("bid".to_owned(), bid())]);
        let sql = "SELECT bidder, window_start, window_end, COUNT(*) AS n \
                   FROM SESSION(bid, date_time, INTERVAL '2' SECOND) \
                   GROUP BY bidder, window_start, window_end";
        let out = rewrite(sql, &streams);
        assert!(
            out.contains("PARTITION BY \"bidder\" ORDER BY \"date_time\""),
            "{out}"
        );
        assert!(!out.to_ascii_uppercase().contains("SESSION("), "{out}");
        // Nothing to rewrite: the same text.
        let plain = "SELECT COUNT(*) FROM bid";
        assert_eq!(rewrite(plain, &streams), plain);
    }

    fn bid() -> StreamDef {
        freshet_streams::ddl::parse_stream_statement(
            "CREATE STREAM bid (bidder BIGINT NOT NULL, price BIGINT, date_time TIMESTAMP NOT NULL, \
             WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND)",
        )
        .ok()
        .flatten()
        .and_then(|s| match s {
            freshet_streams::ddl::StreamStatement::Create { def, .. } => Some(def),
            _ => None,
        })
        .expect("a stream definition")
    }
}
